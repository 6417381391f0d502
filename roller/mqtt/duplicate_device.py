"""Duplicate-device detection: is another process publishing with our device id?

Every running service publishes ``health`` (retained) with its ``instance``, ``<machine>-<run>``:
a hash of the machine and a random token drawn once per process, so two processes differ even
on one machine (two services from one config, two Pis cloned from one SD card: they share
/etc/machine-id). Each service listens to its own health topic, and :class:`DuplicateWatch`
judges what arrives there:

- another instance's health arriving **live** means a second process with our id is running
  now, whichever machine it runs on;
- another instance's **retained** health counts when it was sent after we started (on this
  machine the clocks agree exactly; our own previous run always sent its last health before),
  or, from another machine, within :data:`RETAINED_RECENT_S` of now (two services whose equal
  client ids keep kicking each other off the broker see each other's health only retained).

A duplicate is reported on ``error`` when first seen and again at most every
:data:`REPORT_INTERVAL_S` while it lasts, and keeps ``health`` degraded for
:data:`DUPLICATE_MEMORY_S` after the last sighting. Times on the injected clock.
"""

from __future__ import annotations

import math
from collections.abc import Callable

from roller.base.clock import Clock
from roller.base.machine import machine_hash, run_token
from roller.base.untrusted import PayloadError, decode_json

DUPLICATE_MEMORY_S = 120.0
"""How long a sighting of another roller with our device id keeps ``health`` degraded [s]
(it publishes health at least every ``service.health_interval_s``, 10 s by default)."""

REPORT_INTERVAL_S = 60.0
"""A duplicate that lasts is reported on ``error`` again at most this often [s]."""

RETAINED_RECENT_S = 60.0
"""Another machine's retained health sent within this long [s] counts as running now."""

MAX_HEALTH_BYTES = 64 * 1024
MAX_HEALTH_DEPTH = 8


def new_instance() -> str:
    """This process's ``<machine>-<run>`` id."""
    return f"{machine_hash()}-{run_token()}"


class DuplicateWatch:
    """Judges health messages on our own topic; ``report(code, message, **details)``
    publishes on ``error``."""

    def __init__(self, device_id: str, report: Callable[..., None], *, clock: Clock,
                 instance: str | None = None) -> None:
        self.device_id = device_id
        self.report = report
        self.clock = clock
        self.instance = instance or new_instance()
        self.started_unix_s = clock.unix_s()
        self._seen: tuple[str, float] | None = None  # (other instance, monotonic s)
        self._reported: tuple[str, float] = ("", -math.inf)

    @property
    def duplicate_of(self) -> str | None:
        """Another instance seen publishing with our device id in the last
        :data:`DUPLICATE_MEMORY_S`, or None."""
        seen = self._seen
        if seen is None or self.clock.monotonic() - seen[1] > DUPLICATE_MEMORY_S:
            return None
        return seen[0]

    def saw_health(self, raw: bytes, *, retained: bool) -> None:
        """A message on our own ``health`` topic (any bytes: anyone may publish there)."""
        try:
            body = decode_json(raw, max_bytes=MAX_HEALTH_BYTES, max_depth=MAX_HEALTH_DEPTH)
        except PayloadError:
            return
        other = body.get("instance") if isinstance(body, dict) else None
        if not isinstance(other, str) or not other or other == self.instance:
            return
        if retained and not self._running_now(other, body.get("time_unix_s")):
            return
        other = other[:80]
        now = self.clock.monotonic()
        self._seen = (other, now)
        last_other, last_at = self._reported
        if other != last_other or now - last_at >= REPORT_INTERVAL_S:
            self._reported = (other, now)
            self.report("duplicate_device", f"another roller process ({other}) publishes as "
                        f"{self.device_id!r}: two services share this device id, so their "
                        "events and seq numbers mix; run one service per device id, and set a "
                        "distinct [device] id on each roller", other_instance=other)

    def _running_now(self, other: str, sent: object) -> bool:
        """Is a retained health of ``other`` (sent at ``sent``, Unix s) from a process that
        runs now (see the module docstring)?"""
        if not isinstance(sent, int | float) or isinstance(sent, bool) or not math.isfinite(sent):
            return False
        same_machine = other.split("-", 1)[0] == self.instance.split("-", 1)[0]
        if same_machine:
            return sent > self.started_unix_s
        return abs(self.clock.unix_s() - sent) < RETAINED_RECENT_S
