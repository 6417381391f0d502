"""The service's publishing: numbered events and retained state through the outbox, nothing lost.

What goes where (topics, QoS, retain flags and payload builders in :mod:`roller.contract.messages`,
documented in docs/mqtt.md):

- :meth:`Publisher.publish_event` -- QoS 1 through the SQLite :class:`~roller.mqtt.outbox.Outbox`,
  numbered with a per-device ``seq``; removed from disk only once the broker acknowledged it.
- :meth:`Publisher.publish_retained` -- retained QoS 1 state (``session``, ``coach``) through
  the outbox too; a newer value supersedes an older one still waiting.
- :meth:`Publisher.publish_live` -- QoS 0, never stored: a live reading is worthless later.
- ``status`` -- retained ``online`` on every (re)connect, ``offline`` as the last will and on a
  clean :meth:`Publisher.close`.

The other jobs live beside it: the broker link and its watch in
:mod:`roller.mqtt.connection` (built by :mod:`roller.mqtt.client`), what arrives in
:mod:`roller.mqtt.command_intake`, a second process with our device id in
:mod:`roller.mqtt.duplicate_device`, the outbox's faults in :mod:`roller.mqtt.outbox_reports`,
Home Assistant's announcement in :mod:`roller.mqtt.homeassistant`.

Threads: paho runs its network loop in its own thread. Callbacks only set flags, queue
acknowledged message ids and hand commands to ``on_command``; the owner's loop calls
:meth:`Publisher.pump` (every service step) to watch the link, move acknowledgements to the
outbox and hand waiting messages to the client, so SQLite is touched from one thread.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from collections.abc import Mapping
from typing import Any

import paho.mqtt.client as mqtt

from roller.base.clock import Clock, SystemClock
from roller.base.untrusted import RateLimitedLog, shorten
from roller.contract import messages as contract
from roller.contract.messages import Topics, publishable_topic
from roller.mqtt.client import MqttSettings
from roller.mqtt.command_intake import CommandIntake, CommandSink, subscriptions
from roller.mqtt.connection import Connection, Will
from roller.mqtt.duplicate_device import DuplicateWatch
from roller.mqtt.outbox import Message, Outbox
from roller.mqtt.outbox_reports import OutboxReports
from roller.mqtt.payloads import encode, jsonable

log = logging.getLogger("roller.mqtt.publisher")

MAX_QUEUED_DIRECT = 1000
"""Messages sent outside the outbox (error, health, ...) that paho may hold while offline."""

MAX_PAYLOAD_BYTES = 268_435_455
"""The largest payload MQTT can carry (its remaining-length limit); paho refuses more."""

COMMAND_ERRORS = frozenset({"unknown_command", "bad_payload", "not_possible",
                            "too_many_commands", "retained_command"})
"""``error`` codes about refused commands: a flood of them is logged at a limited rate."""

FAILURE_MEMORY_S = 120.0
"""How long a rebuilt (dead, stuck or failing) MQTT client keeps ``health`` degraded [s]."""

FLUSH_POLL_S = 0.01
"""How long :meth:`Publisher.flush` waits for an acknowledgement between pumps [s]."""


class Publisher:
    """Publishes one roller's topics; keeps QoS 1 messages in ``outbox`` until acknowledged.

    ``topics``: the names (device id, prefix). ``discovery``: the Home Assistant device config
    to announce (retained) on every connect and whenever Home Assistant says ``online``; None
    leaves discovery alone, ``{}`` removes a previous announcement. ``on_command(verb, payload)``
    is called from the network thread for each ``cmd/<verb>`` message: keep it quick (queue it).
    ``instance``: this process's ``<machine>-<run>`` id in ``health`` (default: this machine's
    hash and a random run id). ``clock``: the timing rules' clock (the link watch, report
    intervals, the duplicate memory; with a real broker, a real clock).
    """

    def __init__(self, settings: MqttSettings, topics: Topics, outbox: Outbox, *,
                 password: str | None = None, discovery: dict[str, Any] | None = None,
                 on_command: CommandSink | None = None, instance: str | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.topics = topics
        self.outbox = outbox
        self.clock = clock or SystemClock()
        self._discovery = discovery
        self._acked: collections.deque[int] = collections.deque()
        self._ack_arrived = threading.Event()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox id
        self.live_sent = 0
        self.live_skipped = 0
        self.errors_sent: collections.Counter[str] = collections.Counter()
        """``error`` reports by code since the start."""
        self.undeliverable = 0
        """Stored messages dropped because no broker can ever take them."""
        self._command_log = RateLimitedLog(log, interval_s=60.0, burst=5,
                                           clock=self.clock)
        self._error_log = RateLimitedLog(log, interval_s=60.0, burst=10,
                                         clock=self.clock)
        self._closed = False
        self.reports = OutboxReports(outbox, self.publish_error, clock=self.clock, logger=log)
        self.duplicates = DuplicateWatch(topics.device_id, self.publish_error, clock=self.clock,
                                         instance=instance)
        self.intake = CommandIntake(topics, self.duplicates, report=self.publish_error,
                                    announce=self._announce, logger=log, clock=self.clock)
        self.intake.on_command = on_command
        self.link = Connection(
            settings, client_id=settings.client_id or f"roller-{topics.device_id}",
            password=password, logger=log, on_up=self._on_up, on_message=self.intake.handle,
            on_published=self._on_published, on_rebuilt=self._requeue_inflight,
            limits=self._limits, clock=self.clock,
            will=Will(topics.status, contract.status_payload(False), qos=contract.qos("status"),
                      retain=contract.retain("status")))
        self.link_problem: str | None = None
        """What is wrong with the broker link now (None: nothing), as of the last pump."""

    def _limits(self, client: mqtt.Client) -> None:
        client.max_inflight_messages_set(self.settings.max_inflight)
        # paho keeps QoS 1 messages in memory while the link is down: bound that too. Outbox
        # messages never exceed max_inflight there (the rest wait on disk); the margin is for
        # error, health, status and discovery messages.
        client.max_queued_messages_set(self.settings.max_inflight + MAX_QUEUED_DIRECT)

    # -- collaborators' figures -----------------------------------------------------------
    @property
    def client(self) -> mqtt.Client:
        """The paho client in use now (a new one after a rebuild)."""
        return self.link.client

    @property
    def on_command(self) -> CommandSink | None:
        return self.intake.on_command

    @on_command.setter
    def on_command(self, sink: CommandSink | None) -> None:
        self.intake.on_command = sink

    @property
    def instance(self) -> str:
        return self.duplicates.instance

    @instance.setter
    def instance(self, value: str) -> None:
        self.duplicates.instance = value

    @property
    def connects(self) -> int:
        return self.link.connects

    @property
    def retained_commands(self) -> int:
        return self.intake.retained_commands

    @property
    def duplicate_of(self) -> str | None:
        return self.duplicates.duplicate_of

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; returns at once, also if the broker is down."""
        self.link.start()

    @property
    def connected(self) -> bool:
        return self.link.connected

    def wait_connected(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` for the broker connection; True if connected."""
        return self.link.wait_connected(timeout_s)

    def close(self) -> None:
        """Deliver what the broker will take within ``shutdown_flush_s``, publish ``offline``,
        disconnect. What is still pending stays in the outbox for the next start."""
        if self._closed:
            return
        self._closed = True  # the pump now only takes acknowledgements
        try:
            if self.connected:
                self.flush(self.settings.shutdown_flush_s)
                info = self.client.publish(self.topics.status, contract.status_payload(False),
                                           qos=contract.qos("status"),
                                           retain=contract.retain("status"))
                info.wait_for_publish(max(0.5, self.settings.shutdown_flush_s))
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("could not publish offline on shutdown: %s", exc)
        finally:
            self.link.close()

    # -- publishing ---------------------------------------------------------------------------
    def publish_event(self, kind: str, payload: Mapping[str, Any]) -> Message:
        """Store and send one event on ``event/<kind>`` (QoS 1). The payload gains ``seq``
        (per device, persisted), ``device_id``, ``kind`` and ``time_unix_s`` (wall clock when it
        was stored [s])."""
        body = contract.event_envelope(self.topics.device_id, kind, self.clock.unix_s(),
                                       jsonable(dict(payload)))
        msg = self.outbox.add(self.topics.event(kind), body, numbered=True)
        self.pump()
        return msg

    def publish_retained(self, name: str, payload: Mapping[str, Any]) -> Message:
        """Store and send retained state ``name`` (``session``, ``coach``), QoS 1. A newer
        value replaces an older one that has not been sent yet."""
        msg = self.outbox.add(self.topics.retained(name), encode(payload),
                              retain=contract.retain(name), supersede=True)
        self.pump()
        return msg

    def publish_live(self, payload: Mapping[str, Any]) -> bool:
        """Send one ``live`` message at QoS 0; False (and counted) when not connected."""
        if not self.connected:
            self.live_skipped += 1
            return False
        info = self._send(self.topics.live, encode(payload), qos=contract.qos("live"),
                          retain=contract.retain("live"))
        ok = info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS
        if ok:
            self.live_sent += 1
        else:
            self.live_skipped += 1
        return ok

    def publish_error(self, code: str, message: str, **details: Any) -> None:
        """A JSON report on ``error`` (QoS 1, not retained, not stored across restarts): what
        went wrong (``code``, ``message``) and whatever helps (``details``)."""
        body = contract.error_payload(self.topics.device_id, code, message, self.clock.unix_s(),
                                      **details)
        self.errors_sent[code] += 1
        # A flood of refused commands must not flood the journal: a few lines a minute, the
        # rest counted (``commands_refused`` in health) and summed up in one line.
        limiter = self._command_log if code in COMMAND_ERRORS else self._error_log
        limiter(logging.WARNING, "error %s: %s", code, message)
        self._send(self.topics.error, encode(body), qos=contract.qos("error"),
                   retain=contract.retain("error"))

    def publish_health(self, payload: Mapping[str, Any]) -> None:
        """Retained ``health`` (QoS 1, not stored): sensor and delivery health."""
        if self.connected:
            self._send(self.topics.health, encode(payload), qos=contract.qos("health"),
                       retain=contract.retain("health"))

    def _send(self, topic: str, payload: bytes, *, qos: int, retain: bool
              ) -> mqtt.MQTTMessageInfo | None:
        """``client.publish`` for messages outside the outbox; None (logged, counted) when the
        client refuses it at once (paho raises ValueError for a topic or payload no broker
        takes): a message we cannot send must not stop the caller."""
        try:
            return self.client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            self.undeliverable += 1
            self._error_log(logging.WARNING, "could not publish on %r: %s", topic[:100], exc)
            return None

    # -- the pump -----------------------------------------------------------------------------
    def pump(self) -> int:
        """Watch the link (a dead or stuck client is rebuilt), move broker acknowledgements to
        the outbox and hand waiting messages to the client. Call it often from the owner's
        loop; returns how many messages were handed over."""
        self.link_problem = self.link.watch()
        self.reports.watch_disk()
        acked = []
        while self._acked:
            ident = self._inflight.pop(self._acked.popleft(), None)
            if ident is not None:
                acked.append(ident)
        self.outbox.ack(acked)
        if not self.connected or self._closed:
            return 0
        handed = 0
        room = self.settings.max_inflight - len(self._inflight)
        if room > 0:
            for msg in self.outbox.claim(room):
                info = self._publish_stored(msg)
                if info is None:  # can never be published: dropped, the queue goes on
                    continue
                if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    # NO_CONN: paho keeps it and sends it when the link is back.
                    self._inflight[info.mid] = msg.id
                    handed += 1
                else:
                    log.warning("client refused message %d (%s); retrying later",
                                msg.id, mqtt.error_string(info.rc))
                    self.outbox.unclaim_from(msg.id)
                    break
        self.reports.report_drops()
        return handed

    def _publish_stored(self, msg: Message) -> mqtt.MQTTMessageInfo | None:
        """Hand one outbox message to the client, or drop it (acknowledged away, counted,
        reported on ``error``) when no broker could ever take it: a malformed topic (mosquitto
        would disconnect us, and the message would come back after every reconnect) or a
        payload beyond MQTT's limit. Returns None when dropped."""
        why = None
        if not publishable_topic(msg.topic):
            why = "a malformed topic"
        elif len(msg.payload) > MAX_PAYLOAD_BYTES:
            why = f"a payload of {len(msg.payload)} bytes (MQTT takes {MAX_PAYLOAD_BYTES})"
        else:
            try:
                info = self.client.publish(msg.topic, msg.payload, qos=contract.STORED_QOS,
                                           retain=msg.retain)
            except (ValueError, TypeError) as exc:
                why = f"the client refused it ({exc})"
            else:
                if info.rc != mqtt.MQTT_ERR_PAYLOAD_SIZE:
                    return info
                why = "a payload too large for the client"
        self.outbox.ack([msg.id])
        self.undeliverable += 1
        self.publish_error("undeliverable", f"stored message {msg.id} dropped: {why} can never "
                           "be published", topic=shorten(msg.topic, 200, quote=False),
                           dropped_total=self.undeliverable)
        return None

    def _requeue_inflight(self) -> None:
        """A new client replaced a dead one: what the old one held unacknowledged goes out
        again from the outbox (a duplicate at worst; subscribers drop it by ``seq``)."""
        if self._inflight:
            self.outbox.unclaim_from(min(self._inflight.values()))
        self._inflight.clear()
        self._acked.clear()

    def flush(self, timeout_s: float) -> bool:
        """Pump until the outbox is empty or about ``timeout_s`` [s] of real time passed
        (waiting for the broker's acknowledgements: real waits, whatever the clock); True if
        empty."""
        for _ in range(max(1, math.ceil(timeout_s / FLUSH_POLL_S))):
            self.pump()
            if len(self.outbox) == 0:
                return True
            self._ack_arrived.wait(FLUSH_POLL_S)
            self._ack_arrived.clear()
        self.pump()
        return len(self.outbox) == 0

    @property
    def pending(self) -> int:
        """Messages in the outbox (not yet acknowledged by the broker)."""
        return len(self.outbox)

    def stats(self) -> dict[str, Any]:
        """Delivery counters for ``health``."""
        link = self.link
        return {"connected": self.connected, "connects": link.connects,
                **self.reports.stats(),
                "undeliverable": self.undeliverable, "live_sent": self.live_sent,
                "live_skipped": self.live_skipped,
                "commands_refused": sum(n for code, n in self.errors_sent.items()
                                        if code in COMMAND_ERRORS),
                "retained_commands": self.intake.retained_commands,
                "duplicate_of": self.duplicate_of,
                "last_disconnect_reason": link.last_disconnect_reason,
                "link_problem": self.link_problem,
                "client_rebuilds": link.rebuilds,
                "client_failure": self.client_failure,
                "callback_failures": link.callback_failures + self.intake.failures}

    @property
    def client_failure(self) -> str | None:
        """Why the MQTT client was last rebuilt, within :data:`FAILURE_MEMORY_S` of it."""
        at = self.link.last_failure_at
        if self.link.last_failure is None or self.clock.monotonic() - at > FAILURE_MEMORY_S:
            return None
        return self.link.last_failure

    @property
    def degraded(self) -> bool:
        """Delivery is not as it should be: the outbox dropped messages or runs from memory,
        another roller uses our device id, or the MQTT client had to be rebuilt lately."""
        return (self.outbox.dropped > 0 or self.outbox.disk_error is not None
                or self.duplicate_of is not None or self.client_failure is not None)

    # -- Home Assistant -----------------------------------------------------------------------
    def set_discovery(self, discovery: dict[str, Any] | None) -> None:
        """Change the discovery config and announce it now if connected."""
        self._discovery = discovery
        if self.connected:
            self._announce()

    def _announce(self) -> None:
        if self._discovery is None:
            return
        payload = encode(self._discovery) if self._discovery else b""
        self._send(self.topics.discovery, payload, qos=contract.DISCOVERY_QOS, retain=True)

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_up(self, client: mqtt.Client) -> None:
        # Our own health too: another process's health there means a second roller with our
        # device id (see roller.mqtt.duplicate_device).
        client.subscribe(subscriptions(self.topics, home_assistant=self._discovery is not None))
        client.publish(self.topics.status, contract.status_payload(True),
                       qos=contract.qos("status"), retain=contract.retain("status"))
        self._announce()

    def _on_published(self, mid: int) -> None:
        self._acked.append(mid)
        self._ack_arrived.set()
