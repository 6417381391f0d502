"""Legs: the travel along the muscle cut into runs in one direction.

Integrating the velocity gives the contact point's position along the muscle. A *leg* is travel
in one direction: it is recognised once the position has moved ``start_travel_m`` from where the
roller last stood (speed below ``onset_speed_m_s``), and it ends

* at a reversal: once the roller has come back ``reversal_m`` from its farthest point, the leg
  ends at that farthest point and the next leg starts there; or
* at a stop: once the speed has stayed below ``stop_speed_m_s`` for ``stop_s`` and has come down
  to ``low_speed_m_s``; or, under a shaking hand, by travel: once the position has stayed within
  ``shake_travel_m`` for ``shake_window_s`` while the velocity changed sign at least
  ``shake_reversals`` times. A real hand on a stopped roller shakes it by about +-1 mm at
  +-10 mm/s, which keeps the speed above any sensible stop speed although the roller goes
  nowhere; a smooth stop or a slow pass never turns back and forth like that, so it is judged
  by speed as before.

Working on position with these small hysteresis distances makes the cut immune to noise and to
breathing (a few mm of rocking never travels ``start_travel_m`` from a still point before the
stop rule re-anchors it), and the slow creep of a slightly wrong gyro offset is re-anchored
away too. Strokes are the legs of at least 2 cm (:mod:`roller.pipeline.strokes`); holds are the
time between legs that travel more than 1.5 cm (:mod:`roller.pipeline.holds`).

Where exactly a leg starts and stops: a hand starts and stops a roller smoothly (acceleration
builds up from zero), so near a start or a stop the speed grows with the square of the time
from it. The speed is measured crossing two levels, ``low_speed_m_s`` and ``onset_speed_m_s``
(interpolated between frames), and the square law extrapolates back to where the speed was
zero: ``t0 = t_low - (t_onset - t_low) / (sqrt(onset / low) - 1)``. Without this a slow,
gentle stroke would look as if it began and ended up to a second late/early, and the still time
between strokes would look longer than it is. The extrapolation is capped (``max_extrapolation_s``)
so that breathing before a stroke cannot stretch it.

For each frame the tracker also reports ``quiet_until`` (the start of the motion in progress, or
when standing the time ``hold_lookback_s`` ago, as a motion noticed later may be dated back a
little), ``big`` (the leg in progress has travelled ``big_travel_m``) and ``still_since`` (end of
the last big leg) for the hold detector.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from dataclasses import dataclass

from roller.base.settings import setting


@dataclass(frozen=True)
class LegSettings:
    start_travel_m: float = setting(0.006, unit="m", minimum=0.0005,
                                    doc="travel from a still point that starts a leg")
    reversal_m: float = setting(0.006, unit="m", minimum=0.0005,
                                doc="travel back from the farthest point that ends a leg")
    onset_speed_m_s: float = setting(0.004, unit="m/s", minimum=0.0,
                                     doc="below this the roller counts as standing")
    low_speed_m_s: float = setting(0.0015, unit="m/s", minimum=0.0,
                                   doc="a second, lower level for extrapolating where the "
                                       "speed was zero (above the noise)")
    max_extrapolation_s: float = setting(1.0, unit="s", minimum=0.0,
                                         doc="the most a start or stop is moved by "
                                             "extrapolation")
    stop_speed_m_s: float = setting(0.005, unit="m/s", minimum=0.0,
                                    doc="speed under which a leg may end at a stop")
    stop_s: float = setting(0.3, unit="s", minimum=0.0,
                            doc="how long under the stop speed ends a leg")
    stop_wait_s: float = setting(1.2, unit="s", minimum=0.0,
                                 doc="how long under the stop speed ends a leg whose speed "
                                     "does not come down to the low level (breathing)")
    big_travel_m: float = setting(0.015, unit="m", minimum=0.002, maximum=0.2,
                                  doc="travel that ends a hold: deep breathing (up to 6 mm) "
                                      "with a 20-30 degree lean makes legs of up to about "
                                      "10 mm and must stay under it; a stroke is 20 mm")
    shake_window_s: float = setting(0.4, unit="s", minimum=0.05,
                                    doc="window over which a shaking stop is judged by travel")
    shake_travel_m: float = setting(0.003, unit="m", minimum=0.0,
                                    doc="the most the position may spread over that window "
                                        "for the roller to count as stopped")
    shake_reversals: int = setting(2, minimum=1,
                                   doc="sign changes of the velocity in the window that show "
                                       "shaking (a smooth stop has none)")
    hold_lookback_s: float = setting(0.25, unit="s", minimum=0.0,
                                     doc="margin before announcing a hold, for a motion noticed "
                                         "later being dated back")


@dataclass(frozen=True)
class Leg:
    start: float
    end: float
    distance_m: float
    direction: int
    peak_speed_m_s: float
    emitted_at: float


def _cross(t0: float, s0: float, t1: float, s1: float, level: float) -> float:
    """Time at which the speed crossed ``level`` between two frame centres."""
    if s1 == s0:
        return t1
    frac = (level - s0) / (s1 - s0)
    return t0 + min(1.0, max(0.0, frac)) * (t1 - t0)


class LegTracker:
    """Follows the position along the muscle and cuts it into :class:`Leg` s."""

    def __init__(self, settings: LegSettings | None = None, *, start_t: float = 0.0) -> None:
        self.settings = settings or LegSettings()
        s = self.settings
        self._k = 1.0 / (math.sqrt(s.onset_speed_m_s / s.low_speed_m_s) - 1.0) \
            if s.onset_speed_m_s > s.low_speed_m_s > 0 else 0.0
        self.position_m = 0.0
        self.direction = 0
        self._anchor_p = 0.0
        self._start_t = start_t      # where the leg (or motion) in progress began
        self._start_p = 0.0
        self._low_p = 0.0            # position when the speed was last under the low level
        self._ext_p = 0.0
        self._ext_t = start_t
        self._peak = 0.0
        self._peak_back = 0.0
        self._quiet_t: float | None = start_t
        self._big = False
        self._prev_tc = start_t
        self._prev_s = 0.0
        # level crossings of the latest rise (low, then onset) and fall (onset, then low)
        self._rise_low: float | None = None
        self._rise_on: float | None = None
        self._fall_on: float | None = None
        self._fall_low: float | None = None
        self._last_fast_t = start_t   # last frame moving forward faster than the onset level
        self.still_since = start_t
        self.legs_seen = 0
        self._recent: deque[tuple[float, float, int]] = deque()   # (t, position, sign of v)
        self._s1 = self._s2 = 0.0      # the two previous frames' speeds
        self._last_end: float | None = None

    def _onset_time(self, fallback: float) -> float:
        """Where the latest rise began (speed zero), by the square law; until the rise has
        crossed both levels, the earliest it may turn out to be (so a hold announced
        meanwhile is never contradicted by the final estimate)."""
        if self._rise_low is None:
            return fallback
        cap = self.settings.max_extrapolation_s
        back = cap if self._rise_on is None else \
            min(cap, self._k * (self._rise_on - self._rise_low))
        return self._rise_low - back

    def _fall_ended_leg(self) -> bool:
        """Has the latest fall come down to the low level since the leg's last fast forward
        motion (so it is the fall that is ending the leg in progress)?"""
        return self._fall_low is not None and self._fall_on is not None and \
            self._fall_on >= self._last_fast_t

    def _stop_time(self, fallback: float) -> float:
        """Where the latest fall ended (speed zero), by the square law, if it is the fall
        that is ending the leg in progress."""
        if not self._fall_ended_leg():
            return fallback
        assert self._fall_low is not None and self._fall_on is not None
        fwd = self._k * (self._fall_low - self._fall_on)
        return self._fall_low + min(fwd, self.settings.max_extrapolation_s)

    def update(self, t: list[float], known_at: list[float], v: list[float], dt: list[float],
               ) -> tuple[list[Leg], list[float], list[bool], list[float]]:
        """Run over frames (end time, time known, velocity [m/s], length [s]).

        Returns the legs that ended, and per frame ``quiet_until``, ``big``, ``still_since``.
        """
        s_ = self.settings
        start_travel, reversal = s_.start_travel_m, s_.reversal_m
        onset, low, stop_speed = s_.onset_speed_m_s, s_.low_speed_m_s, s_.stop_speed_m_s
        stop_s, stop_wait, big_travel = s_.stop_s, s_.stop_wait_s, s_.big_travel_m
        legs: list[Leg] = []
        moving: list[float] = []
        bigs: list[bool] = []
        stills: list[float] = []
        p = self.position_m
        d = self.direction
        window, shake_m, shake_n = s_.shake_window_s, s_.shake_travel_m, s_.shake_reversals
        recent = self._recent
        for ti, ki, vi, di in zip(t, known_at, v, dt, strict=True):
            p += vi * di
            s = vi if vi >= 0 else -vi
            recent.append((ti, p, 1 if vi > 0 else -1))
            # the peak is read from the speed over three frames (0.12 s): a single frame's
            # speed carries the sensor's vibration and noise, which a person's speed does not
            sp = (s + self._s1 + self._s2) / 3.0
            self._s2, self._s1 = self._s1, s
            while recent[0][0] < ti - window:
                recent.popleft()
            tc = ti - 0.5 * di
            ps, pt = self._prev_s, self._prev_tc
            # level crossings, interpolated between frame centres
            if s >= low:
                if ps < low:
                    self._rise_low = _cross(pt, ps, tc, s, low)
                    self._rise_on = None
                if s >= onset and ps < onset and self._rise_on is None:
                    self._rise_on = _cross(pt, ps, tc, s, onset)
            else:
                self._low_p = p
            if s < onset:
                if ps >= onset:
                    self._fall_on = _cross(pt, ps, tc, s, onset)
                    self._fall_low = None
                if s < low and ps >= low and self._fall_low is None:
                    self._fall_low = _cross(pt, ps, tc, s, low)
            self._prev_s, self._prev_tc = s, tc
            if s < stop_speed:
                if self._quiet_t is None:
                    self._quiet_t = ti
            else:
                self._quiet_t = None
            if d == 0:
                if s < onset:
                    self._anchor_p = p
                    self._peak = 0.0
                elif sp > self._peak:
                    self._peak = sp
                moved = p - self._anchor_p
                if moved >= start_travel or moved <= -start_travel:
                    d = 1 if moved > 0 else -1
                    self._start_t = self._onset_time(ti)
                    self._start_p = self._low_p
                    self._ext_p, self._ext_t = p, ti
                    self._peak_back = 0.0
            else:
                if vi * d > 0 and s >= onset:
                    self._last_fast_t = tc
                if (p - self._ext_p) * d >= 0:
                    self._ext_p, self._ext_t = p, ti
                    self._peak_back = 0.0
                    if sp > self._peak:
                        self._peak = sp
                elif vi * d < 0:
                    if sp > self._peak_back:
                        self._peak_back = sp
                elif sp > self._peak:
                    self._peak = sp
                if not self._big and (self._ext_p - self._start_p) * d >= big_travel:
                    self._big = True
                quiet = self._quiet_t
                if (self._ext_p - p) * d >= reversal:
                    # the leg ends where it stopped and the next starts where it set off
                    # (apart if the roller paused at the turn), both from the level crossings
                    end = self._stop_time(self._ext_t)
                    legs.append(self._leg(end, ki, d))
                    start = end
                    if self._rise_low is not None and self._fall_on is not None and \
                            self._rise_low >= self._fall_on and end != self._ext_t:
                        start = max(end, self._onset_time(end))
                    d = -d
                    self._last_fast_t = tc
                    self._start_t, self._start_p = start, self._ext_p
                    self._ext_p, self._ext_t = p, ti
                    self._peak, self._peak_back = self._peak_back, 0.0
                    self._big = (self._ext_p - self._start_p) * d >= big_travel
                elif (quiet is not None and ti - quiet >= stop_s and (
                        ti >= self._stop_time(ti) if self._fall_ended_leg()
                        else ti - quiet >= stop_wait)) or \
                        self._shaking(recent, ti - window, shake_m, shake_n):
                    # stopped: wait until the time it came to rest has passed, so that it is
                    # known whether the roller set off again before (then it is a reversal).
                    # Shaking: it stopped where it got farthest (its speed crossings are the
                    # shake's, not the stop's)
                    end = min(ti, self._stop_time(self._ext_t)) if quiet is not None and \
                        ti - quiet >= stop_s else self._ext_t
                    legs.append(self._leg(end, ki, d))
                    d = 0
                    self._anchor_p = p
                    self._peak = 0.0
                    self._big = False
            self.direction = d
            if d != 0:
                moving.append(self._start_t)
            elif s >= onset:
                moving.append(self._onset_time(ti))
            else:
                # standing (or breathing); a motion noticed later may be dated back a little
                # (a very gentle start, further: then the hold that ends is a little short)
                moving.append(ti - s_.hold_lookback_s)
            bigs.append(self._big)
            stills.append(self.still_since)
        self.position_m = p
        self.legs_seen += len(legs)
        return legs, moving, bigs, stills

    @staticmethod
    def _shaking(recent: deque, since: float, spread_m: float, reversals: int) -> bool:
        """Has the position stayed within ``spread_m`` over a full window while the
        velocity turned back and forth (a shaking hand on a roller that has stopped)?"""
        if len(recent) < 3 or recent[0][0] > since + 0.5 * (recent[1][0] - recent[0][0]) + 1e-9:
            return False
        ps = [r[1] for r in recent]
        if max(ps) - min(ps) > spread_m:
            return False
        flips = sum(1 for a, b in itertools.pairwise(recent) if a[2] != b[2])
        return flips >= reversals

    def _leg(self, end: float, emitted_at: float, direction: int) -> Leg:
        """Close the leg in progress at ``end``."""
        self._last_end = end
        if self._big:
            self.still_since = end
        return Leg(self._start_t, end, abs(self._ext_p - self._start_p), direction,
                   self._peak, emitted_at)

    def finish(self, t_end: float) -> list[Leg]:
        """Close the leg in progress at the end of a recording."""
        if self.direction == 0:
            return []
        leg = self._leg(self._ext_t, t_end, self.direction)
        self.direction = 0
        return [leg]

    @property
    def rolling(self) -> bool:
        """A leg is in progress."""
        return self.direction != 0

    @property
    def moving(self) -> bool:
        """The newest frame's speed is above the standing level (a leg may be starting)."""
        return self._prev_s >= self.settings.onset_speed_m_s

    @property
    def last_leg_end(self) -> float | None:
        """When the last leg ended [s], or None before any."""
        return self._last_end

    @property
    def now(self) -> float:
        """Centre time of the newest frame [s]."""
        return self._prev_tc

    def state(self) -> dict:
        return {"position_m": self.position_m, "direction": self.direction,
                "leg_start": self._start_t, "leg_travel_m": abs(self._ext_p - self._start_p),
                "still_since": self.still_since, "legs_seen": self.legs_seen}
