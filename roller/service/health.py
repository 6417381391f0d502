"""Is the sensor answering? The service's watch on its driver, and the ``health`` payload.

:class:`HealthMonitor` notes when samples last arrived and decides when the sensor counts as
faulty: the driver reports itself disconnected, or no samples came for
``service.sensor_stale_s``. It reports each change once (a :class:`SensorChange`), so an error
is published and systemd told once per fault, not every step.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roller.base.clock import Clock, SystemClock
from roller.contract.messages import health_payload

if TYPE_CHECKING:
    from firmware_bridge.imu.base import ImuDriver
    from roller.pipeline.events import LiveState


@dataclass(frozen=True)
class SensorChange:
    """The sensor went faulty (``ok`` False, ``message`` says why) or recovered."""

    ok: bool
    message: str


class HealthMonitor:
    """Watches ``driver`` for faults; builds the ``health`` payload.

    ``started_at`` and every ``now`` are on the service's monotonic clock [s]; ``clock``
    labels the payload with its wall-clock time (``time_unix_s``: another process compares it
    with its own, see :mod:`roller.mqtt.duplicate_device`).
    """

    def __init__(self, driver: ImuDriver, *, device_id: str, sensor_stale_s: float,
                 started_at: float, clock: Clock | None = None) -> None:
        self.driver = driver
        self.clock = clock or SystemClock()
        self.device_id = device_id
        self.sensor_stale_s = sensor_stale_s
        self.started_at = started_at
        self.last_sample_at = started_at
        self.sensor_ok: bool | None = None
        """None until the first check, then whether the sensor answers."""

    def saw_samples(self, now: float) -> None:
        self.last_sample_at = now

    def fault(self, message: str) -> SensorChange | None:
        """A fault seen by the caller (a failed read); a change only if it was not faulty."""
        if self.sensor_ok is False:
            return None
        self.sensor_ok = False
        return SensorChange(False, message)

    def check(self, now: float) -> SensorChange | None:
        """Is the sensor connected and delivering? Returns the change, if any."""
        health = self.driver.health
        connected = bool(health.connected)
        stale = now - self.last_sample_at > self.sensor_stale_s
        ok = connected and not stale
        change = None
        if ok != self.sensor_ok:
            if not ok:
                why = health.last_error or (
                    f"no samples for {now - self.last_sample_at:.1f} s" if stale
                    else "sensor disconnected")
                change = self.fault(f"sensor fault: {why}")
            elif self.sensor_ok is False:
                change = SensorChange(True, "sensor recovered")
            self.sensor_ok = ok
        return change

    def key(self, live: LiveState | None, outbox_dropped: int) -> tuple[Any, ...]:
        """What makes ``health`` worth republishing at once when it changes (cheap to get)."""
        h = self.driver.health
        return (self.sensor_ok, h.connected, h.last_error, h.reinits, outbox_dropped,
                live.calibrated if live is not None else None,
                live.speed_clipped if live is not None else None)

    def payload(self, now: float, *, live: LiveState | None, mqtt: Mapping[str, Any],
                events_published: int, instance: str = "") -> dict[str, Any]:
        """The ``health`` payload: sensor, delivery (``mqtt``: the publisher's stats) and loop
        figures; ``instance`` is the publisher's (``<machine>-<run>``). Degraded while the
        sensor is faulty, after outbox drops, while the outbox cannot write to disk, while
        another process uses our device id, while the broker link has a problem and for a
        while after the MQTT client had to be rebuilt (dead, stuck or failing)."""
        sensor: dict[str, Any] = {"chip": self.driver.chip,
                                  "output_rate_hz": self.driver.output_rate_hz}
        sensor.update(dataclasses.asdict(self.driver.health))
        sensor["connected"] = bool(self.sensor_ok is not False and sensor.get("connected", True))
        sensor["last_sample_age_s"] = round(now - self.last_sample_at, 3)
        degraded = (not sensor["connected"] or mqtt["outbox_dropped"] > 0
                    or mqtt.get("outbox_disk_error") is not None
                    or mqtt.get("duplicate_of") is not None
                    or mqtt.get("link_problem") is not None
                    or mqtt.get("client_failure") is not None)
        return health_payload(device_id=self.device_id, degraded=degraded,
                              uptime_s=now - self.started_at, sensor=sensor, mqtt=mqtt,
                              events_published=events_published,
                              calibrated=bool(live.calibrated) if live is not None else False,
                              time_unix_s=self.clock.unix_s(), instance=instance,
                              speed_clipped=bool(live.speed_clipped) if live is not None
                              else False)
