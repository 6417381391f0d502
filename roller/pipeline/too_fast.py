"""Too fast: speed above the go-slow limit for at least ``min_duration_s`` (default 0.3 s).

An excursion starts where the speed crosses the limit (interpolated between frame centres) and
ends where it falls back under it; it only ends once the speed is clearly below (``hysteresis``)
so that noise around the limit does not split one excursion into several. The live
:class:`~roller.pipeline.events.TooFastAlert` goes out once per excursion, at the first frame that
shows
the speed has been above the limit for the minimum time; the
:class:`~roller.pipeline.events.TooFast`
summary follows when the excursion ends.
"""

from __future__ import annotations

from dataclasses import dataclass

from roller.base.settings import setting
from roller.pipeline.events import Event, TooFast, TooFastAlert


@dataclass(frozen=True)
class TooFastSettings:
    limit_m_s: float = setting(0.05, unit="m/s", minimum=0.001, maximum=2.0,
                               doc="go-slow limit: faster than this is 'too fast'")
    min_duration_s: float = setting(0.3, unit="s", minimum=0.0, maximum=10.0,
                                    doc="how long above the limit before alerting")
    hysteresis_m_s: float = setting(0.002, unit="m/s", minimum=0.0,
                                    doc="how far under the limit the speed must fall to end it")


class TooFastDetector:
    def __init__(self, settings: TooFastSettings | None = None) -> None:
        self.settings = settings or TooFastSettings()
        self.active = False       # in an excursion
        self.alerted = False
        self.start = 0.0
        self.end: float | None = None   # first crossing back under the limit, while dipping
        self.peak = 0.0
        self.emitted_at = 0.0
        self._prev_t: float | None = None
        self._prev_s = 0.0
        self.count = 0

    def update(self, t_mid: list[float], known_at: list[float], speed: list[float],
               ) -> list[Event]:
        """Per frame: centre time [s], when known [s], unsigned speed [m/s]."""
        s_ = self.settings
        limit, min_s, low = s_.limit_m_s, s_.min_duration_s, s_.limit_m_s - s_.hysteresis_m_s
        out: list[Event] = []
        prev_t, prev_s = self._prev_t, self._prev_s
        for ti, ki, si in zip(t_mid, known_at, speed, strict=True):
            if not self.active:
                if si > limit:
                    self.active = True
                    self.alerted = False
                    self.start = _crossing(prev_t, prev_s, ti, si, limit)
                    self.end = None
                    self.peak = si
            else:
                if si > self.peak:
                    self.peak = si
                if si > limit:
                    self.end = None
                elif self.end is None:
                    self.end = _crossing(prev_t, prev_s, ti, si, limit)
                if si < low:
                    if not self.alerted and self.end - self.start >= min_s:
                        # a short excursion that only the interpolated end shows was long
                        # enough: alert now, late rather than never
                        self.alerted = True
                        self.emitted_at = ki
                        out.append(TooFastAlert(start=self.start, speed_m_s=si,
                                                limit_m_s=limit, emitted_at=ki))
                    if self.alerted:
                        out.append(TooFast(start=self.start, end=self.end, peak_speed_m_s=self.peak,
                                           limit_m_s=limit, emitted_at=self.emitted_at))
                        self.count += 1
                    self.active = False
            if self.active and not self.alerted and self.end is None and \
                    ti - self.start >= min_s:
                self.alerted = True
                self.emitted_at = ki
                out.append(TooFastAlert(start=self.start, speed_m_s=si, limit_m_s=limit,
                                        emitted_at=ki))
            prev_t, prev_s = ti, si
        self._prev_t, self._prev_s = prev_t, prev_s
        return out

    def skip(self, t_mid: float, speed: float) -> None:
        """Frames known to stay under the limit outside an excursion: only remember the last
        (for interpolating the next crossing). Same result as :meth:`update`, less work."""
        self._prev_t, self._prev_s = t_mid, speed

    def finish(self, t_end: float) -> list[Event]:
        if not (self.active and self.alerted):
            self.active = False
            return []
        self.active = False
        self.count += 1
        end = self.end if self.end is not None else t_end
        return [TooFast(start=self.start, end=end, peak_speed_m_s=self.peak,
                        limit_m_s=self.settings.limit_m_s, emitted_at=self.emitted_at)]

    @property
    def alerting(self) -> bool:
        """An alerted excursion is in progress."""
        return self.active and self.alerted

    def state(self) -> dict:
        return {"active": self.active, "alerted": self.alerted,
                "start": self.start if self.active else None, "peak_m_s": self.peak,
                "count": self.count}


def _crossing(t0: float | None, s0: float, t1: float, s1: float, level: float) -> float:
    """Time where the speed crossed ``level`` between two frames (linear interpolation)."""
    if t0 is None or s1 == s0:
        return t1
    frac = (level - s0) / (s1 - s0)
    return t0 + min(1.0, max(0.0, frac)) * (t1 - t0)
