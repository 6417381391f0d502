"""Command intake from MQTT: what arrives on the service's subscriptions, and where it goes.

The service subscribes to exactly three things (see :func:`subscriptions`): its commands
(``cmd/+``), its own ``health`` (to spot a second process with its device id) and, with Home
Assistant discovery on, Home Assistant's ``status``. :class:`CommandIntake` routes each
message: a command to ``on_command(verb, payload)`` (the service queues it; the verb and
payload are judged there, once), our health to the
:class:`~roller.mqtt.duplicate_device.DuplicateWatch`, Home Assistant's ``online`` to a new
announcement. A retained command is never run (see :meth:`CommandIntake._ignore_retained`).
Runs in paho's network thread: nothing here blocks.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import paho.mqtt.client as mqtt

from roller.base.clock import Clock
from roller.base.untrusted import RateLimitedLog, message_topic, topic_text
from roller.contract import messages as contract
from roller.contract.messages import Topics
from roller.mqtt.duplicate_device import DuplicateWatch

MAX_REMEMBERED_TOPICS = 256
"""Retained command topics remembered as already reported (a bound against a flood of them)."""

MAX_COMMAND_PAYLOAD_BYTES = 64 * 1024
"""What of a command payload is handed on (the command table refuses more than 4 kB anyway;
the broker's and the client's 1 MiB bound come first)."""

CommandSink = Callable[[str, bytes], None]


def subscriptions(topics: Topics, *, home_assistant: bool) -> list[tuple[str, int]]:
    """``(topic filter, QoS)`` the service subscribes to: nothing more than it reads."""
    return ([(topics.commands, contract.qos("cmd")), (topics.health, contract.qos("health"))]
            + ([(topics.ha_status, 1)] if home_assistant else []))


class CommandIntake:
    """Routes received messages (see the module docstring)."""

    def __init__(self, topics: Topics, duplicates: DuplicateWatch, *,
                 report: Callable[..., None], announce: Callable[[], None],
                 logger: logging.Logger, clock: Clock | None = None) -> None:
        self.topics = topics
        self.duplicates = duplicates
        self.report = report
        self.announce = announce
        self.on_command: CommandSink | None = None
        self.retained_commands = 0
        """Commands that arrived retained and were ignored."""
        self._retained_reported: set[str] = set()
        self.failures = 0
        """Messages whose handling raised (a bug): dropped, logged, the thread goes on."""
        self._error_log = RateLimitedLog(logger, interval_s=60.0, burst=10, clock=clock)

    def handle(self, msg: mqtt.MQTTMessage) -> None:
        """One received message. Whatever arrives, the network thread goes on."""
        try:
            self._route(msg)
        except Exception:
            self.failures += 1
            self._error_log(logging.ERROR, "message on %r could not be handled",
                            topic_text(msg), exc_info=True)

    def _route(self, msg: mqtt.MQTTMessage) -> None:
        topic = message_topic(msg)
        if topic is None:  # not UTF-8: no topic of ours
            return
        if topic == self.topics.ha_status:
            if msg.payload.strip() == b"online":
                self.announce()
            return
        if topic == self.topics.health:
            self.duplicates.saw_health(bytes(msg.payload), retained=bool(msg.retain))
            return
        verb = self.topics.verb_of(topic)
        if verb is None or self.on_command is None:
            return
        if msg.retain:
            self._ignore_retained(topic, verb)
            return
        self.on_command(verb, bytes(msg.payload[:MAX_COMMAND_PAYLOAD_BYTES]))

    def _ignore_retained(self, topic: str, verb: str) -> None:
        """A retained command is never run: it would act again at every reconnect and start
        (a crash-looping or surprising roller). Counted; reported once per topic. It is not
        cleared from the broker: an empty retained message would reach us as an (empty,
        valid) command."""
        self.retained_commands += 1
        if topic in self._retained_reported or \
                len(self._retained_reported) >= MAX_REMEMBERED_TOPICS:
            return
        self._retained_reported.add(topic)
        self.report("retained_command", f"cmd/{verb[:64]} arrived retained and was "
                    "ignored: commands act once, when sent; clear it with an empty "
                    f"retained message on {topic}", command=verb[:64], source="mqtt",
                    ignored_total=self.retained_commands)
