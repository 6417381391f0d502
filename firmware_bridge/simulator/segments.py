"""What a person does, piece by piece: a stroke, a hold, a rest, a ball's twist.

Each segment's ``motion(tau)`` gives its travel along the muscle and the body's tilt and yaw at
times ``tau`` from the segment's start, analytically (see the package docstring).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firmware_bridge.simulator.rotations import DEG


@dataclass(frozen=True)
class StrokeSegment:
    """One pass along the muscle: accelerate smoothly, cruise, decelerate smoothly to a stop.

    ``distance_m`` is signed (+ along world X). The speed rises and falls as a raised cosine
    over ``ramp_s`` at each end, so strokes accelerate and decelerate like a person's.
    ``wobble`` makes the hand uneven: the speed swings by that fraction, ``wobble_cycles``
    times over the stroke (a time warp, so distance and duration stay the same); the real peak
    is then above ``peak_speed_m_s`` (the truth reports the real one).
    """

    distance_m: float
    peak_speed_m_s: float
    ramp_s: float = 0.4
    wobble: float = 0.0
    wobble_cycles: int = 2

    def __post_init__(self) -> None:
        if self.peak_speed_m_s <= 0 or self.distance_m == 0:
            raise ValueError("a stroke needs a non-zero distance and a positive speed")
        if not 0 <= self.wobble < 1:
            raise ValueError("wobble must be in [0, 1)")

    @property
    def _ramp_cruise(self) -> tuple[float, float]:
        travel_time = abs(self.distance_m) / self.peak_speed_m_s  # = cruise + ramp
        ramp = min(self.ramp_s, travel_time)
        return ramp, travel_time - ramp

    @property
    def duration_s(self) -> float:
        ramp, cruise = self._ramp_cruise
        return 2 * ramp + cruise

    def motion(self, tau: np.ndarray) -> dict[str, np.ndarray]:
        if self.wobble == 0:
            return self._smooth(tau)
        k = 2 * math.pi * self.wobble_cycles / self.duration_s
        u = tau + self.wobble / k * np.sin(k * tau)
        du = 1 + self.wobble * np.cos(k * tau)
        ddu = -self.wobble * k * np.sin(k * tau)
        m = self._smooth(u)
        m["a"] = m["a"] * du * du + m["v"] * ddu
        m["v"] = m["v"] * du
        return m

    def _smooth(self, tau: np.ndarray) -> dict[str, np.ndarray]:
        ramp, cruise = self._ramp_cruise
        v = self.peak_speed_m_s
        sign = math.copysign(1.0, self.distance_m)
        w = math.pi / ramp
        s = np.empty_like(tau)
        vel = np.empty_like(tau)
        acc = np.empty_like(tau)
        up = tau < ramp
        mid = (tau >= ramp) & (tau < ramp + cruise)
        down = tau >= ramp + cruise
        tu = tau[up]
        s[up] = v / 2 * (tu - np.sin(w * tu) / w)
        vel[up] = v / 2 * (1 - np.cos(w * tu))
        acc[up] = v / 2 * w * np.sin(w * tu)
        s_ramp = v * ramp / 2
        tm = tau[mid] - ramp
        s[mid] = s_ramp + v * tm
        vel[mid] = v
        acc[mid] = 0.0
        td = np.minimum(tau[down] - ramp - cruise, ramp)
        s[down] = s_ramp + v * cruise + v / 2 * (td + np.sin(w * td) / w)
        vel[down] = v / 2 * (1 + np.cos(w * td))
        acc[down] = -v / 2 * w * np.sin(w * td)
        zero = np.zeros_like(tau)
        return {"s": sign * s, "v": sign * vel, "a": sign * acc,
                "tilt": zero, "tilt_rate": zero, "yaw": zero, "yaw_rate": zero}


def _bump(tau: np.ndarray, duration: float, cycles: int, amplitude: float,
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``amplitude * sin^2(pi * cycles * tau / duration)`` and its first two derivatives:
    ``cycles`` smooth excursions that start and end at zero with zero rate."""
    k = math.pi * cycles / duration
    x = amplitude * np.sin(k * tau) ** 2
    dx = amplitude * k * np.sin(2 * k * tau)
    ddx = 2 * amplitude * k * k * np.cos(2 * k * tau)
    return x, dx, ddx


@dataclass(frozen=True)
class HoldSegment:
    """Staying on a tender spot: breathing rocks the roller a few millimetres, and the person
    leans to explore angles (tilting and yawing the roller a few degrees). Nothing travels."""

    duration_s: float
    breathing_m: float = 0.003
    """Peak-to-peak rocking from breathing [m]."""
    breathing_period_s: float = 4.0
    lean_rad: float = 4 * DEG
    """Peak tilt of the roller's axis out of the horizontal while leaning [rad]."""
    lean_period_s: float = 7.0
    yaw_rad: float = 3 * DEG
    """Peak yaw about the vertical while leaning [rad]."""

    def motion(self, tau: np.ndarray) -> dict[str, np.ndarray]:
        d = self.duration_s
        breaths = max(1, round(d / self.breathing_period_s))
        leans = max(1, round(d / self.lean_period_s))
        s, v, a = _bump(tau, d, breaths, self.breathing_m)
        tilt, tilt_rate, _ = _bump(tau, d, leans, self.lean_rad)
        yaw, yaw_rate, _ = _bump(tau, d, leans + 1, self.yaw_rad)
        return {"s": s, "v": v, "a": a, "tilt": tilt, "tilt_rate": tilt_rate,
                "yaw": yaw, "yaw_rate": yaw_rate}


@dataclass(frozen=True)
class RestSegment:
    """The roller lies still (a pause between strokes, or nobody on it)."""

    duration_s: float

    def motion(self, tau: np.ndarray) -> dict[str, np.ndarray]:
        zero = np.zeros_like(tau)
        return {"s": zero, "v": zero, "a": zero, "tilt": zero, "tilt_rate": zero,
                "yaw": zero, "yaw_rate": zero}


@dataclass(frozen=True)
class TwistSegment:
    """Turn the body about the vertical by ``angle_rad`` (smoothly) without travelling: a ball
    spun on the spot, or a roller re-aimed on the floor. Its later strokes run along the new
    heading."""

    duration_s: float
    angle_rad: float

    def motion(self, tau: np.ndarray) -> dict[str, np.ndarray]:
        d = self.duration_s
        x = tau / d
        yaw = self.angle_rad * (x - np.sin(2 * math.pi * x) / (2 * math.pi))
        yaw_rate = self.angle_rad / d * (1 - np.cos(2 * math.pi * x))
        zero = np.zeros_like(tau)
        return {"s": zero, "v": zero, "a": zero, "tilt": zero, "tilt_rate": zero,
                "yaw": yaw, "yaw_rate": yaw_rate}


Segment = StrokeSegment | HoldSegment | RestSegment | TwistSegment
