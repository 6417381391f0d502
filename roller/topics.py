"""Every MQTT topic roller companion uses, named in one place.

A roller publishes under ``<prefix>/<device_id>/`` (by default ``roller/<device_id>/``), so many
rollers can share one broker (a clinic) and a display can subscribe to all of them with the
wildcards below (``roller/+/live``). ``docs/mqtt.md`` documents each topic and its payload.

=====================  =====  ======  =========================================================
topic                  QoS    retain  what
=====================  =====  ======  =========================================================
``status``             1      yes     ``online`` / ``offline`` (last will ``offline``)
``health``             0      yes     JSON: sensor and outbox health, ``ok`` / ``degraded``
``live``               0      no      JSON ~10 Hz: speed, phase, stroke count, hold time, ...
``event/<kind>``       1      no      JSON, one per pipeline event, numbered with ``seq``
``session``            1      yes     JSON: summary of the current or last session
``coach``              1      yes     JSON: current step, prompt, progress (the coach's payload)
``cmd/<verb>``         1      no      commands in: start, pause, resume, next, stop, ...
``error``              1      no      JSON: what went wrong (bad command, sensor fault, ...)
=====================  =====  ======  =========================================================
"""

from __future__ import annotations

import re
from dataclasses import dataclass

SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
"""What a device id (and a topic prefix level) may contain: safe in MQTT topics, Home Assistant
object ids and file names."""

SAFE_PREFIX = re.compile(r"^[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64})*$")

EVENT_KINDS = ("stroke", "hold_started", "hold", "too_fast_alert", "too_fast")
"""The pipeline's event kinds (``roller.events``); each is published on ``event/<kind>``."""

RETAINED_NAMES = ("session", "coach")
"""Retained JSON state topics that go through the outbox (``Publisher.publish_retained``)."""


def _check_level(name: str, value: str) -> str:
    if not SAFE_ID.match(value):
        raise ValueError(
            f"{name} must be 1-64 letters, digits, '_' or '-' (it becomes an MQTT topic level), "
            f"got {value!r}")
    return value


@dataclass(frozen=True)
class Topics:
    """The topic names of one roller (``device_id``) under ``prefix``."""

    device_id: str
    prefix: str = "roller"
    discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        _check_level("device id", self.device_id)
        if not SAFE_PREFIX.match(self.prefix):
            raise ValueError(f"topic prefix must be levels of letters, digits, '_' or '-' "
                             f"separated by '/', got {self.prefix!r}")

    @property
    def base(self) -> str:
        """``<prefix>/<device_id>``: the root of every topic of this roller."""
        return f"{self.prefix}/{self.device_id}"

    @property
    def status(self) -> str:
        return f"{self.base}/status"

    @property
    def health(self) -> str:
        return f"{self.base}/health"

    @property
    def live(self) -> str:
        return f"{self.base}/live"

    def event(self, kind: str) -> str:
        """``event/<kind>``; ``kind`` is an event kind (``stroke``, ...) or one a coach adds."""
        return f"{self.base}/event/{_check_level('event kind', kind)}"

    @property
    def events(self) -> str:
        """Wildcard for all events of this roller."""
        return f"{self.base}/event/+"

    def retained(self, name: str) -> str:
        """A retained JSON state topic (``session``, ``coach``)."""
        return f"{self.base}/{_check_level('retained topic name', name)}"

    @property
    def session(self) -> str:
        return self.retained("session")

    @property
    def coach(self) -> str:
        return self.retained("coach")

    def cmd(self, verb: str) -> str:
        return f"{self.base}/cmd/{_check_level('command verb', verb)}"

    @property
    def commands(self) -> str:
        """What the service subscribes to for commands: ``cmd/+``."""
        return f"{self.base}/cmd/+"

    def verb_of(self, topic: str) -> str | None:
        """The verb of a ``cmd/<verb>`` topic of this roller, or None for any other topic."""
        head = f"{self.base}/cmd/"
        if topic.startswith(head) and "/" not in topic[len(head):]:
            return topic[len(head):]
        return None

    @property
    def error(self) -> str:
        return f"{self.base}/error"

    # Home Assistant
    @property
    def discovery(self) -> str:
        """Device-based discovery config topic: ``homeassistant/device/<id>/config``."""
        return f"{self.discovery_prefix}/device/{self.device_id}/config"

    @property
    def ha_status(self) -> str:
        """Home Assistant's birth/last-will topic; ``online`` means announce again."""
        return f"{self.discovery_prefix}/status"


def all_rollers(name: str, prefix: str = "roller") -> str:
    """A wildcard for one topic of every roller on the broker: ``all_rollers("live")`` ->
    ``roller/+/live`` (for a display showing a whole clinic)."""
    return f"{prefix}/+/{name}"
