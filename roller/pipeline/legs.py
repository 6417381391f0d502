"""Legs: the travel along the muscle cut into runs in one direction.

Integrating the velocity gives the contact point's position along the muscle. A *leg* is travel
in one direction: it starts where the roller last stood (speed below ``onset_speed_m_s``) once
the position has moved ``start_travel_m`` from there, and it ends

* at a reversal: once the roller has come back ``reversal_m`` from its farthest point, the leg
  ends at that farthest point and the next leg starts there; or
* at a stop: once the speed has stayed below ``stop_speed_m_s`` for ``stop_s``; the leg ends
  where the roller first (nearly) stood, so that breathing just after the stop, which may push a
  few mm further, does not stretch it.

Working on position with these small hysteresis distances makes the cut immune to noise and to
breathing (a few mm of rocking never travels ``start_travel_m`` from a still point before the
stop rule re-anchors it), and the slow creep of a slightly wrong gyro offset is re-anchored
away too. Strokes are the legs of at least 2 cm (:mod:`roller.pipeline.strokes`); holds are the
time between legs that travel more than 1 cm (:mod:`roller.pipeline.holds`).

For each frame the tracker also reports ``moving_since`` (start of the motion in progress, or
NaN when still), ``big`` (the leg in progress has travelled ``big_travel_m``) and
``still_since`` (end of the last big leg) for the hold detector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from roller.settings import setting

NAN = math.nan


@dataclass(frozen=True)
class LegSettings:
    start_travel_m: float = setting(0.006, unit="m", minimum=0.0005,
                                    doc="travel from a still point that starts a leg")
    reversal_m: float = setting(0.006, unit="m", minimum=0.0005,
                                doc="travel back from the farthest point that ends a leg")
    onset_speed_m_s: float = setting(0.004, unit="m/s", minimum=0.0,
                                     doc="below this the roller counts as standing")
    stop_speed_m_s: float = setting(0.005, unit="m/s", minimum=0.0,
                                    doc="speed under which a leg may end at a stop")
    stop_s: float = setting(0.3, unit="s", minimum=0.0,
                            doc="how long under the stop speed ends a leg")
    settle_speed_m_s: float = setting(0.0015, unit="m/s", minimum=0.0,
                                      doc="a leg that ends at a stop ends where the speed "
                                          "first fell under this (the roller stood)")
    big_travel_m: float = setting(0.01, unit="m", minimum=0.001,
                                  doc="travel that ends a hold")


@dataclass(frozen=True)
class Leg:
    start: float
    end: float
    distance_m: float
    direction: int
    peak_speed_m_s: float
    emitted_at: float


class LegTracker:
    """Follows the position along the muscle and cuts it into :class:`Leg` s."""

    def __init__(self, settings: LegSettings | None = None, *, start_t: float = 0.0) -> None:
        self.settings = settings or LegSettings()
        self.position_m = 0.0
        self.direction = 0
        self._anchor_p = 0.0
        self._anchor_t = start_t
        self._ext_p = 0.0
        self._ext_t = start_t
        self._peak = 0.0
        self._peak_back = 0.0
        self._quiet_t: float | None = start_t
        self._settle_t: float | None = start_t
        self._big = False
        self.still_since = start_t
        self.legs_seen = 0

    def update(self, t: list[float], known_at: list[float], v: list[float], dt: list[float],
               ) -> tuple[list[Leg], list[float], list[bool], list[float]]:
        """Run over frames (end time, time known, velocity [m/s], length [s]).

        Returns the legs that ended, and per frame ``moving_since``, ``big``, ``still_since``.
        """
        s_ = self.settings
        start_travel, reversal = s_.start_travel_m, s_.reversal_m
        onset, stop_speed, stop_s, big_travel = (s_.onset_speed_m_s, s_.stop_speed_m_s,
                                                 s_.stop_s, s_.big_travel_m)
        settle_speed = s_.settle_speed_m_s
        p = self.position_m
        d = self.direction
        anchor_p, anchor_t = self._anchor_p, self._anchor_t
        ext_p, ext_t = self._ext_p, self._ext_t
        peak, peak_back = self._peak, self._peak_back
        quiet_t, big, still_since = self._quiet_t, self._big, self.still_since
        settle_t = self._settle_t
        legs: list[Leg] = []
        moving: list[float] = []
        bigs: list[bool] = []
        stills: list[float] = []
        for ti, ki, vi, di in zip(t, known_at, v, dt, strict=True):
            p += vi * di
            s = vi if vi >= 0 else -vi
            if s < stop_speed:
                if quiet_t is None:
                    quiet_t = ti
                if settle_t is None and s < settle_speed:
                    settle_t = ti
            else:
                quiet_t = None
                settle_t = None
            if d == 0:
                if s < onset:
                    anchor_p = p
                    anchor_t = ti
                    peak = 0.0
                elif s > peak:
                    peak = s
                moved = p - anchor_p
                if moved >= start_travel or moved <= -start_travel:
                    d = 1 if moved > 0 else -1
                    ext_p, ext_t = p, ti
                    peak_back = 0.0
            else:
                if (p - ext_p) * d >= 0:
                    ext_p, ext_t = p, ti
                    peak_back = 0.0
                    if s > peak:
                        peak = s
                elif vi * d < 0:
                    if s > peak_back:
                        peak_back = s
                elif s > peak:
                    peak = s
                if not big and (ext_p - anchor_p) * d >= big_travel:
                    big = True
                if (ext_p - p) * d >= reversal:
                    legs.append(Leg(anchor_t, ext_t, abs(ext_p - anchor_p), d, peak, ki))
                    if big:
                        still_since = ext_t
                    d = -d
                    anchor_p, anchor_t = ext_p, ext_t
                    ext_p, ext_t = p, ti
                    peak, peak_back = peak_back, 0.0
                    big = False
                    if (ext_p - anchor_p) * d >= big_travel:
                        big = True
                elif quiet_t is not None and ti - quiet_t >= stop_s:
                    end = ext_t if settle_t is None or settle_t > ext_t else settle_t
                    legs.append(Leg(anchor_t, end, abs(ext_p - anchor_p), d, peak, ki))
                    if big:
                        still_since = end
                    d = 0
                    anchor_p, anchor_t = p, ti
                    peak = 0.0
                    big = False
            moving.append(anchor_t if (d != 0 or s >= onset) else NAN)
            bigs.append(big)
            stills.append(still_since)
        self.position_m = p
        self.direction = d
        self._anchor_p, self._anchor_t = anchor_p, anchor_t
        self._ext_p, self._ext_t = ext_p, ext_t
        self._peak, self._peak_back = peak, peak_back
        self._quiet_t, self._big, self.still_since = quiet_t, big, still_since
        self._settle_t = settle_t
        self.legs_seen += len(legs)
        return legs, moving, bigs, stills

    def finish(self, t_end: float) -> list[Leg]:
        """Close the leg in progress at the end of a recording."""
        if self.direction == 0:
            return []
        leg = Leg(self._anchor_t, self._ext_t, abs(self._ext_p - self._anchor_p),
                  self.direction, self._peak, t_end)
        self.direction = 0
        return [leg]

    @property
    def rolling(self) -> bool:
        """A leg is in progress."""
        return self.direction != 0

    def state(self) -> dict:
        return {"position_m": self.position_m, "direction": self.direction,
                "leg_start": self._anchor_t, "leg_travel_m": abs(self._ext_p - self._anchor_p),
                "still_since": self.still_since, "legs_seen": self.legs_seen}
