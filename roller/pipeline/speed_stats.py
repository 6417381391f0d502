"""Session statistics, defined once: how fast a person rolled and how long too fast.

The session payload, the coach's summary (and so the history) and ``roller analyze`` all read
their speed figures from a :class:`SpeedStats` fed with the same pipeline events, so the
"mean speed" on the display, in ``roller history`` and in ``roller analyze`` is one number:

* ``mean_speed_m_s``: the time-weighted mean speed while rolling -- the strokes' distance over
  the strokes' duration. (A mean over strokes would let many short quick strokes outweigh the
  slow long ones the person spent most of the time in.)
* ``median_speed_m_s``: the time-weighted median of the strokes' mean speeds -- half of the
  rolling time was spent in strokes slower than this.
* ``peak_speed_m_s``: the fastest moment, from the strokes' peaks and the too-fast excursions'.
* ``too_fast_s`` / ``too_fast_count``: time spent above the go-slow limit, and how many times.

Speeds along the muscle [m/s], times [s], distances [m].
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from roller.pipeline.events import Stroke, TooFast


@dataclass
class SpeedStats:
    """Accumulates strokes and too-fast excursions; its memory grows with the strokes only."""

    strokes: int = 0
    distance_m: float = 0.0
    rolling_s: float = 0.0
    """Time spent in strokes [s] (the weight of the mean and the median)."""
    peak_speed_m_s: float = 0.0
    too_fast_count: int = 0
    too_fast_s: float = 0.0
    _speeds: list[tuple[float, float]] = field(default_factory=list, repr=False)
    """(mean speed [m/s], duration [s]) of each stroke, for the median."""

    def add(self, event: object) -> None:
        """Count a :class:`~roller.pipeline.events.Stroke` or
        :class:`~roller.pipeline.events.TooFast`; other
        events are ignored."""
        if isinstance(event, Stroke):
            self.add_stroke(event)
        elif isinstance(event, TooFast):
            self.add_too_fast(event)

    def add_stroke(self, stroke: Stroke) -> None:
        duration = max(stroke.end - stroke.start, 0.0)
        self.strokes += 1
        self.distance_m += stroke.distance_m
        self.rolling_s += duration
        self.peak_speed_m_s = max(self.peak_speed_m_s, stroke.peak_speed_m_s)
        self._speeds.append((stroke.mean_speed_m_s, duration))

    def add_too_fast(self, excursion: TooFast) -> None:
        self.too_fast_count += 1
        self.too_fast_s += max(excursion.end - excursion.start, 0.0)
        self.peak_speed_m_s = max(self.peak_speed_m_s, excursion.peak_speed_m_s)

    def merge(self, other: SpeedStats) -> None:
        """Add another's figures (a session from its steps)."""
        self.strokes += other.strokes
        self.distance_m += other.distance_m
        self.rolling_s += other.rolling_s
        self.peak_speed_m_s = max(self.peak_speed_m_s, other.peak_speed_m_s)
        self.too_fast_count += other.too_fast_count
        self.too_fast_s += other.too_fast_s
        self._speeds.extend(other._speeds)

    @property
    def mean_speed_m_s(self) -> float | None:
        """Time-weighted mean speed while rolling [m/s]; None without strokes."""
        if not self.strokes:
            return None
        if self.rolling_s <= 0:
            return sum(v for v, _ in self._speeds) / len(self._speeds)
        return self.distance_m / self.rolling_s

    @property
    def median_speed_m_s(self) -> float | None:
        """Time-weighted median of the strokes' mean speeds [m/s]; None without strokes."""
        if not self._speeds:
            return None
        ordered = sorted(self._speeds)
        total = sum(w for _, w in ordered)
        if total <= 0:
            speeds = [v for v, _ in ordered]
            n = len(speeds)
            return speeds[n // 2] if n % 2 else 0.5 * (speeds[n // 2 - 1] + speeds[n // 2])
        half, seen = 0.5 * total, 0.0
        for i, (v, w) in enumerate(ordered):
            seen += w
            if seen > half:
                return v
            if seen == half:  # exactly between two strokes: halfway between their speeds
                return 0.5 * (v + ordered[i + 1][0]) if i + 1 < len(ordered) else v
        return ordered[-1][0]

    @property
    def peak_or_none_m_s(self) -> float | None:
        """The peak, None when nothing was seen."""
        return self.peak_speed_m_s if self.strokes or self.too_fast_count else None

    def to_dict(self) -> dict[str, Any]:
        """The figures under their payload names (speeds m/s, times s)."""
        return {"mean_speed_m_s": self.mean_speed_m_s, "median_speed_m_s": self.median_speed_m_s,
                "peak_speed_m_s": self.peak_or_none_m_s, "too_fast_s": self.too_fast_s,
                "too_fast_count": self.too_fast_count}
