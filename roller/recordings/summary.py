"""What ``roller analyze`` reports about one recording, built from the pipeline's events.

(A recording is not a session: the coached session's record is
:class:`roller.coaching.records.SessionSummary`, the one summary the display, MQTT and the
history share; both take their speed figures from the same
:class:`~roller.pipeline.speed_stats.SpeedStats`.)

:class:`RecordingReport` collects events as they stream out of the pipeline (its memory grows
with the number of strokes and holds, never with the number of samples) and reports strokes,
holds, time spent rolling and holding, speed statistics and the too-fast excursions, as text for
people or as one JSON object for programs. The session speed figures (time-weighted mean and
median while rolling, peak, time too fast) come from
:class:`roller.pipeline.speed_stats.SpeedStats`,
the same definition the live session, the coach's summary and the history use. Times are on
the recording's own clock [s]; speeds along the muscle [m/s]; distances [m].
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from roller.pipeline.events import Event, Hold, Stroke, TooFast, TooFastAlert
from roller.pipeline.speed_stats import SpeedStats


def _r(x: float, digits: int = 4) -> float:
    return round(float(x), digits)


@dataclass
class RecordingReport:
    """Everything ``roller analyze`` reports about one recording."""

    max_speed_m_s: float
    radius_m: float
    body: str = "roller"
    start: float | None = None
    end: float | None = None
    strokes: list[Stroke] = field(default_factory=list)
    holds: list[Hold] = field(default_factory=list)
    too_fast: list[TooFast] = field(default_factory=list)
    alerts: list[TooFastAlert] = field(default_factory=list)
    samples: int = 0
    calibration: dict[str, Any] | None = None
    pipeline_state: dict[str, Any] | None = None
    """The pipeline's internal state at the end (``roller analyze --debug``)."""

    def add(self, events: Iterable[Event]) -> None:
        for ev in events:
            if isinstance(ev, Stroke):
                self.strokes.append(ev)
            elif isinstance(ev, Hold):
                self.holds.append(ev)
            elif isinstance(ev, TooFast):
                self.too_fast.append(ev)
            elif isinstance(ev, TooFastAlert):
                self.alerts.append(ev)

    def saw_samples(self, first_t: float, last_t: float, count: int) -> None:
        """Note the time span of a block of samples."""
        if self.start is None:
            self.start = first_t
        self.end = last_t
        self.samples += count

    # -- figures -----------------------------------------------------------------------------

    @property
    def duration_s(self) -> float:
        return 0.0 if self.start is None or self.end is None else self.end - self.start

    @property
    def time_rolling_s(self) -> float:
        return sum(s.end - s.start for s in self.strokes)

    @property
    def time_holding_s(self) -> float:
        return sum(h.end - h.start for h in self.holds)

    @property
    def distance_m(self) -> float:
        return sum(s.distance_m for s in self.strokes)

    def session_stats(self) -> SpeedStats:
        """The session figures (:mod:`roller.pipeline.speed_stats`) from these strokes and
        excursions."""
        stats = SpeedStats()
        for ev in (*self.strokes, *self.too_fast):
            stats.add(ev)
        return stats

    def speed_stats(self) -> dict[str, Any]:
        """Statistics over strokes [m/s]: the session figures of :mod:`roller.pipeline.speed_stats`
        (``mean_speed_m_s``, ``median_speed_m_s``, ``peak_speed_m_s``, ``too_fast_s``), plus the
        typical (median) and fastest stroke peak and how many strokes peaked above the limit.
        ``mean_m_s`` is ``mean_speed_m_s`` under its old name."""
        session = {k: None if v is None else _r(v)
                   for k, v in self.session_stats().to_dict().items()}
        if not self.strokes:
            return {"strokes": 0, "median_peak_m_s": None, "max_peak_m_s": None,
                    "mean_m_s": None, "strokes_over_limit": 0, "limit_m_s": self.max_speed_m_s,
                    **session}
        peaks = sorted(s.peak_speed_m_s for s in self.strokes)
        n = len(peaks)
        median = peaks[n // 2] if n % 2 else 0.5 * (peaks[n // 2 - 1] + peaks[n // 2])
        return {"strokes": n, "median_peak_m_s": _r(median), "max_peak_m_s": _r(peaks[-1]),
                "mean_m_s": session["mean_speed_m_s"],
                "strokes_over_limit": sum(p > self.max_speed_m_s for p in peaks),
                "limit_m_s": self.max_speed_m_s, **session}

    # -- output ------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of ``roller analyze --json``."""
        return {
            "strokes": [{"start": _r(s.start, 3), "end": _r(s.end, 3),
                         "distance_m": _r(s.distance_m), "peak_speed_m_s": _r(s.peak_speed_m_s),
                         "mean_speed_m_s": _r(s.mean_speed_m_s), "direction": s.direction,
                         "emitted_at": _r(s.emitted_at, 3)} for s in self.strokes],
            "holds": [{"start": _r(h.start, 3), "end": _r(h.end, 3),
                       "duration_s": _r(h.end - h.start, 3)} for h in self.holds],
            "too_fast": [{"start": _r(e.start, 3), "end": _r(e.end, 3),
                          "peak_speed_m_s": _r(e.peak_speed_m_s),
                          "emitted_at": _r(e.emitted_at, 3)} for e in self.too_fast],
            "start": None if self.start is None else _r(self.start, 3),
            "end": None if self.end is None else _r(self.end, 3),
            "duration_s": _r(self.duration_s, 3),
            "samples": self.samples,
            "time_rolling_s": _r(self.time_rolling_s, 3),
            "time_holding_s": _r(self.time_holding_s, 3),
            "distance_m": _r(self.distance_m),
            "speed": self.speed_stats(),
            "settings": {"radius_m": self.radius_m, "max_speed_m_s": self.max_speed_m_s,
                         "body": self.body},
            "calibration": self.calibration,
            **({"pipeline_state": self.pipeline_state} if self.pipeline_state else {}),
        }

    def to_text(self) -> str:
        """A readable report for a person (times as m:ss from the start of the recording)."""
        lines = []
        t0 = self.start or 0.0
        d = self.duration_s
        lines.append(f"session: {_clock(d)} ({self.samples} samples), {self.body} radius "
                     f"{self.radius_m * 100:.1f} cm, go-slow limit {self.max_speed_m_s * 100:.1f}"
                     " cm/s")
        share = (lambda x: f" ({x / d:.0%} of the session)") if d > 0 else (lambda x: "")
        lines.append(f"rolling: {_clock(self.time_rolling_s)}{share(self.time_rolling_s)}, "
                     f"{_count(len(self.strokes), 'stroke')}, "
                     f"{self.distance_m * 100:.0f} cm in all")
        lines.append(f"holding: {_clock(self.time_holding_s)}{share(self.time_holding_s)}, "
                     f"{_count(len(self.holds), 'hold')}")
        st = self.speed_stats()
        if st["strokes"]:
            lines.append(f"speed: mean while rolling {st['mean_speed_m_s'] * 100:.1f} cm/s, "
                         f"median {st['median_speed_m_s'] * 100:.1f} cm/s, peak "
                         f"{st['peak_speed_m_s'] * 100:.1f} cm/s; typical stroke peak "
                         f"{st['median_peak_m_s'] * 100:.1f} cm/s")
        if self.too_fast:
            lines.append(f"too fast: {_count(len(self.too_fast), 'time')} above "
                         f"{self.max_speed_m_s * 100:.1f} cm/s, {st['too_fast_s']:.1f} s in all")
            for e in self.too_fast:
                lines.append(f"  at {_clock(e.start - t0)} for {e.end - e.start:.1f} s, peak "
                             f"{e.peak_speed_m_s * 100:.1f} cm/s")
        else:
            lines.append("too fast: never -- nicely slow")
        if self.holds:
            lines.append("holds:")
            for h in self.holds:
                lines.append(f"  {_clock(h.start - t0)} - {_clock(h.end - t0)} "
                             f"({h.end - h.start:.0f} s)")
        if self.strokes:
            lines.append("strokes (start, length, distance, peak speed):")
            for s in self.strokes:
                arrow = "+" if s.direction > 0 else "-"
                lines.append(f"  {_clock(s.start - t0)} {s.end - s.start:4.1f} s {arrow}"
                             f"{s.distance_m * 100:4.1f} cm  {s.peak_speed_m_s * 100:4.1f} cm/s")
        return "\n".join(lines)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" + ("" if n == 1 else "s")


def _clock(seconds: float) -> str:
    """``m:ss.s`` for a time or duration in seconds."""
    if not math.isfinite(seconds):
        return "?"
    sign = "-" if seconds < 0 else ""
    # Round to tenths before splitting, or 119.97 s would print as 1:60.0.
    minutes, tenths = divmod(round(abs(seconds) * 10), 600)
    return f"{sign}{minutes}:{tenths / 10:04.1f}"
