"""What the pipeline tells the rest of the product: typed events and the live state.

Times are seconds on the clock of the samples fed in (a recording's own ``t``, or the driver's
monotonic clock live). ``emitted_at`` is the sample time at which the streaming pipeline knew
and emitted the event, so latency = ``emitted_at - start`` is measurable offline and live alike.
Speeds are along the muscle, in m/s; distances in m.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

Phase = Literal["idle", "rolling", "holding"]


@dataclass(frozen=True)
class Event:
    """Base of all pipeline events. ``kind`` names the MQTT topic ``event/<kind>``."""

    kind: ClassVar[str] = "event"

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict; the field names carry the units."""
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class Stroke(Event):
    """One pass in one direction of at least the minimum stroke distance (default 2 cm)."""

    kind: ClassVar[str] = "stroke"
    start: float
    """Time the travel began [s]."""
    end: float
    """Time it reversed or stopped [s]."""
    distance_m: float
    """Distance travelled along the muscle [m], always positive."""
    peak_speed_m_s: float
    mean_speed_m_s: float
    direction: int
    """+1 or -1: the sign of the roll about the roll axis (which is which depends on mounting)."""
    emitted_at: float


@dataclass(frozen=True)
class HoldStarted(Event):
    """The roller has stayed put long enough (default 3 s) to count as a hold: sent once, live."""

    kind: ClassVar[str] = "hold_started"
    start: float
    emitted_at: float


@dataclass(frozen=True)
class Hold(Event):
    """A finished hold on a tender spot: the roller stayed within about 1 cm for at least 3 s."""

    kind: ClassVar[str] = "hold"
    start: float
    end: float
    emitted_at: float

    @property
    def duration_s(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class TooFastAlert(Event):
    """Live alert: speed has been above the go-slow limit for the minimum time (default 0.3 s).

    Sent once per excursion, as soon as it is known; the matching :class:`TooFast` follows when
    the excursion ends.
    """

    kind: ClassVar[str] = "too_fast_alert"
    start: float
    """Time the speed crossed the limit [s]."""
    speed_m_s: float
    """Speed at the moment of emission [m/s]."""
    limit_m_s: float
    emitted_at: float


@dataclass(frozen=True)
class TooFast(Event):
    """A finished too-fast excursion, with its peak speed."""

    kind: ClassVar[str] = "too_fast"
    start: float
    end: float
    peak_speed_m_s: float
    limit_m_s: float
    emitted_at: float
    """When the alert for this excursion was emitted (not when it ended) [s]."""


@dataclass(frozen=True)
class LiveState:
    """A snapshot for displays, refreshed on every block: what is happening right now."""

    t: float
    """Sample time of the newest sample [s]."""
    speed_m_s: float
    """Current speed along the muscle, unsigned [m/s]."""
    velocity_m_s: float
    """Signed speed: + in the roll axis' positive direction [m/s]."""
    phase: Phase
    stroke_count: int
    hold_time_s: float
    """How long the current hold has lasted, 0 when not holding [s]."""
    too_fast: bool
    calibrated: bool
    """False until the gyro bias and roll axis are known well enough to trust the speed."""
    speed_clipped: bool = False
    """True when the newest frame had the gyro (or accelerometer) at its full scale: the
    speed shown is then a lower bound, the true one is higher."""

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
