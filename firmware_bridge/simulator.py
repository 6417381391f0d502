"""A simulated foam roller (or massage ball) with an IMU inside: a physical motion model.

What the person does is a :class:`Scenario`: a sequence of segments (:class:`StrokeSegment`,
:class:`HoldSegment`, :class:`RestSegment`, :class:`TwistSegment`). From it,
:class:`SimulatedRoller` derives the body's true motion and what an IMU glued inside reads.

The physics (see ``guidance.md``):

* The roller lies on the floor with its long axis horizontal and rolls without slipping. If the
  contact point travels ``s`` metres along the muscle, the roller has turned ``s / radius``
  radians about its long axis, so speed along the muscle = roll rate x radius.
* While it rolls, gravity (as seen by the sensor) rotates about the long axis at exactly the roll
  rate; the accelerometer also sees the small linear acceleration of the roller's centre.
* Leaning during a hold tilts the roller's axis out of the horizontal by a few degrees and yaws
  it about the vertical: rotation about axes *other* than the roll axis, which moves nothing.
  Breathing rocks the roller a few millimetres back and forth.
* A ball rolls about a horizontal axis perpendicular to its path; spinning it about the vertical
  (:class:`TwistSegment`) moves nothing.
* The sensor is mounted any way round (``mounting_rotvec``), its gyro has a zero-rate offset of
  up to tens of deg/s that drifts as the chip warms, and both sensors are noisy.

World frame: X along the muscle (the direction of travel), Y horizontal, Z up. The roller's own
frame has x along its long axis. Orientation of the body in the world:
``R = Rz(yaw) @ Rx(tilt) @ Ry(roll_angle) @ B`` where ``B`` is the body's resting orientation
(for a roller: long axis along world Y). Everything here is analytic in time, so :meth:`imu`
can be sampled at any times, in any order of calls, by a recorder or an emulated chip alike.

Run ``python -m firmware_bridge.simulator OUT.csv --seconds 300`` to write a recording and its
ground truth (``OUT.truth.json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

GRAVITY_M_S2 = 9.80665
DEG = math.pi / 180.0

# ----------------------------------------------------------------------------- segments


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

# ----------------------------------------------------------------------------- scenario


@dataclass(frozen=True)
class Scenario:
    """A physical session: what the person does, and the body and sensor that record it."""

    segments: tuple[Segment, ...]
    radius_m: float = 0.075
    body: Literal["roller", "ball"] = "roller"
    mounting_rotvec: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Rotation from the body frame to the sensor frame, as a rotation vector [rad]."""
    gyro_bias_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Zero-rate offset at power-on, sensor axes [rad/s]."""
    gyro_bias_drift_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """How far the offset moves as the chip warms up (reached with ``warmup_time_s``) [rad/s]."""
    warmup_time_s: float = 600.0
    """Time constant of the warm-up drift [s]."""
    gyro_noise_rad_s: float = 0.002
    """White noise on each gyro reading, standard deviation per sample [rad/s]."""
    accel_noise_m_s2: float = 0.03
    """White noise on each accelerometer reading, standard deviation per sample [m/s^2]."""
    accel_bias_m_s2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Accelerometer zero-g offset, sensor axes [m/s^2]."""
    gyro_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Gyro sensitivity of each sensor axis relative to nominal (MEMS parts: +-3 %)."""

    @property
    def duration_s(self) -> float:
        return float(sum(seg.duration_s for seg in self.segments))


@dataclass(frozen=True)
class TruthStroke:
    start: float
    end: float
    distance_m: float
    peak_speed_m_s: float
    mean_speed_m_s: float
    direction: int
    """+1 when travelling along world +X."""


@dataclass(frozen=True)
class TruthHold:
    start: float
    end: float


@dataclass(frozen=True)
class TruthTooFast:
    start: float
    end: float
    peak_speed_m_s: float


@dataclass(frozen=True)
class GroundTruth:
    """What really happened, by the same definitions the pipeline uses."""

    strokes: tuple[TruthStroke, ...]
    holds: tuple[TruthHold, ...]
    too_fast: tuple[TruthTooFast, ...]
    max_speed_m_s: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- rotations


def rotation_matrix(rotvec: Sequence[float]) -> np.ndarray:
    """3x3 rotation matrix for a rotation vector [rad] (Rodrigues)."""
    r = np.asarray(rotvec, dtype=float)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.eye(3)
    k = r / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * (kx @ kx)


def random_rotvec(rng: np.random.Generator) -> tuple[float, float, float]:
    """A uniformly random orientation, as a rotation vector [rad]."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    angle = 2 * math.acos(min(1.0, q[0]))
    s = math.sqrt(max(1e-18, 1 - q[0] ** 2))
    axis = q[1:] / s
    return tuple(float(x) for x in axis * angle)  # type: ignore[return-value]


def _rot_x(angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate each row of ``v`` (N,3) about x by ``angle`` (N,)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.column_stack([v[:, 0], c * v[:, 1] - s * v[:, 2], s * v[:, 1] + c * v[:, 2]])


def _rot_y(angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.column_stack([c * v[:, 0] + s * v[:, 2], v[:, 1], -s * v[:, 0] + c * v[:, 2]])


# Resting orientation of a roller: its long axis (body x) along world Y, body y up, body z
# along world X. Columns are the world images of the body axes.
_ROLLER_REST = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])

# ----------------------------------------------------------------------------- the roller


class SimulatedRoller:
    """The body's true motion and an IMU's readings, for a :class:`Scenario`.

    ``imu(t)`` is a pure function of ``(scenario, seed, t)``: the motion is analytic and the
    noise comes from a generator seeded by ``seed`` and the first time asked for.
    """

    def __init__(self, scenario: Scenario, *, seed: int = 0, real_noise=None) -> None:
        """``real_noise``: a :class:`firmware_bridge.real_noise.RealNoise` (any callable
        t -> (N, 6) residual) to replay in place of the scenario's gyro offset and noise."""
        self.real_noise = real_noise
        if not scenario.segments:
            raise ValueError("a scenario needs at least one segment")
        self.scenario = scenario
        self.seed = seed
        durations = np.array([seg.duration_s for seg in scenario.segments], dtype=float)
        self._starts = np.concatenate([[0.0], np.cumsum(durations)[:-1]])
        self._ends = self._starts + durations
        self.duration_s = float(self._ends[-1])
        # Position and heading carried from one segment to the next.
        s0, yaw0 = [], []
        s, yaw = 0.0, 0.0
        for seg in scenario.segments:
            s0.append(s)
            yaw0.append(yaw)
            end = seg.motion(np.array([seg.duration_s]))
            s += float(end["s"][0])
            yaw += float(end["yaw"][0]) if isinstance(seg, TwistSegment) else 0.0
        self._s0 = np.array(s0)
        self._yaw0 = np.array(yaw0)
        self._mount = rotation_matrix(scenario.mounting_rotvec)
        if scenario.body == "roller":
            self._rest = _ROLLER_REST
        else:
            self._rest = rotation_matrix(random_rotvec(np.random.default_rng([seed, 7])))

    # -- true motion ---------------------------------------------------------------------

    def motion(self, t: np.ndarray) -> dict[str, np.ndarray]:
        """True state at times ``t`` [s]: travel ``s`` [m] along the muscle, its rate ``v``
        [m/s] and acceleration ``a`` [m/s^2], and the lean angles and rates [rad, rad/s]."""
        t = np.asarray(t, dtype=float).reshape(-1)
        out = {k: np.zeros_like(t) for k in
               ("s", "v", "a", "tilt", "tilt_rate", "yaw", "yaw_rate")}
        if t.size == 0:
            return out
        order = None
        if t.size > 1 and np.any(np.diff(t) < 0):
            order = np.argsort(t, kind="stable")
            t = t[order]
        tc = np.clip(t, 0.0, self.duration_s)
        bounds = np.searchsorted(tc, self._starts, side="left")
        bounds = np.append(bounds, t.size)
        for i, seg in enumerate(self.scenario.segments):
            lo, hi = bounds[i], bounds[i + 1]
            if lo >= hi:
                continue
            tau = np.clip(tc[lo:hi] - self._starts[i], 0.0, seg.duration_s)
            m = seg.motion(tau)
            for k in out:
                out[k][lo:hi] = m[k]
            out["s"][lo:hi] += self._s0[i]
            out["yaw"][lo:hi] += self._yaw0[i]
        outside = (t < 0) | (t > self.duration_s)
        for k in ("v", "a", "tilt_rate", "yaw_rate"):
            out[k][outside] = 0.0
        if order is not None:
            inverse = np.empty_like(order)
            inverse[order] = np.arange(order.size)
            out = {k: v[inverse] for k, v in out.items()}
        return out

    def gyro_bias(self, t: np.ndarray) -> np.ndarray:
        """The gyro's zero-rate offset at times ``t``, sensor axes (N, 3) [rad/s]."""
        sc = self.scenario
        t = np.asarray(t, dtype=float).reshape(-1, 1)
        warm = 1.0 - np.exp(-np.maximum(t, 0.0) / sc.warmup_time_s)
        return np.asarray(sc.gyro_bias_rad_s) + warm * np.asarray(sc.gyro_bias_drift_rad_s)

    def ideal_imu(self, t: np.ndarray) -> np.ndarray:
        """(N, 6) readings of a perfect IMU: specific force [m/s^2] then angular rate [rad/s],
        sensor axes, no bias and no noise."""
        m = self.motion(t)
        r = self.scenario.radius_m
        roll = m["s"] / r
        roll_rate = m["v"] / r
        tilt = m["tilt"] if self.scenario.body == "roller" else np.zeros_like(roll)
        tilt_rate = m["tilt_rate"] if self.scenario.body == "roller" else np.zeros_like(roll)
        yaw_rate = m["yaw_rate"]
        n = roll.size
        # Angular velocity, expressed step by step in the frames of R = Rz Rx Ry B.
        u = np.column_stack([tilt_rate,
                             roll_rate + yaw_rate * np.sin(tilt),
                             yaw_rate * np.cos(tilt)])
        w_body = _rot_y(-roll, u) @ self._rest
        # Specific force: linear acceleration along the path plus the reaction to gravity.
        f = np.column_stack([m["a"], np.zeros(n), np.full(n, GRAVITY_M_S2)])
        f_body = _rot_y(-roll, _rot_x(-tilt, f)) @ self._rest
        return np.column_stack([f_body @ self._mount.T, w_body @ self._mount.T])

    def imu(self, t: np.ndarray) -> np.ndarray:
        """(N, 6) what a noisy IMU reads at times ``t`` [s]: accel [m/s^2] incl. gravity, then
        gyro [rad/s] incl. bias and drift, in sensor axes. Deterministic for (seed, t)."""
        t = np.asarray(t, dtype=float).reshape(-1)
        out = self.ideal_imu(t)
        if t.size == 0:
            return out
        sc = self.scenario
        if self.real_noise is not None:
            out[:, 3:] *= np.asarray(sc.gyro_scale)
            return out + self.real_noise(t)
        key = round(float(t[0]) * 1e6) & 0xFFFFFFFF
        rng = np.random.default_rng([self.seed, key, t.size])
        out[:, :3] += np.asarray(sc.accel_bias_m_s2)
        out[:, :3] += rng.normal(0.0, sc.accel_noise_m_s2, size=(t.size, 3))
        out[:, 3:] *= np.asarray(sc.gyro_scale)
        out[:, 3:] += self.gyro_bias(t)
        out[:, 3:] += rng.normal(0.0, sc.gyro_noise_rad_s, size=(t.size, 3))
        return out

    # -- what a recorder logs --------------------------------------------------------------

    def recording(self, rate_hz: float, *, jitter_s: float = 0.0, drop_fraction: float = 0.0,
                  start_s: float = 0.0, end_s: float | None = None,
                  ) -> tuple[np.ndarray, np.ndarray]:
        """Host-timestamped samples as a recorder would log them: ``(t (N,), samples (N, 6))``.

        The chip samples at exactly ``rate_hz``; the host's timestamps wander by ``jitter_s``
        (standard deviation, kept below half a period so order holds) and a ``drop_fraction``
        of samples is lost, partly singly and partly in bursts (FIFO overflows).
        """
        if rate_hz <= 0:
            raise ValueError("rate_hz must be positive")
        end = self.duration_s if end_s is None else end_s
        k0 = math.ceil(start_s * rate_hz - 1e-9)
        k1 = math.floor(end * rate_hz + 1e-9)
        k = np.arange(k0, k1 + 1)
        t_chip = k / rate_hz
        rng = np.random.default_rng([self.seed, 99, int(rate_hz * 1000)])
        keep = np.ones(k.size, dtype=bool)
        if drop_fraction > 0 and k.size:
            keep &= rng.random(k.size) >= drop_fraction / 2
            bursts = max(1, int(drop_fraction / 2 * k.size / 20))
            starts = rng.integers(0, k.size, size=bursts)
            lengths = rng.integers(5, 36, size=bursts)
            for s0, n in zip(starts, lengths, strict=True):
                keep[s0:s0 + n] = False
            keep[0] = True
        t_chip = t_chip[keep]
        samples = self.imu(t_chip)
        t_host = t_chip.copy()
        if jitter_s > 0:
            limit = 0.45 / rate_hz
            t_host += np.clip(rng.normal(0.0, jitter_s, t_chip.size), -limit, limit)
        return t_host, samples

    def write_recording(self, path: str, rate_hz: float, *, jitter_s: float = 0.0,
                        drop_fraction: float = 0.0, chunk_s: float = 60.0) -> int:
        """Write the whole session as a recording file, a minute at a time (flat memory).
        Returns the number of samples written."""
        from roller.recording import RecordingWriter

        n = 0
        with RecordingWriter(path) as writer:
            start = 0.0
            while start <= self.duration_s:
                stop = min(self.duration_s, start + chunk_s)
                t, samples = self.recording(rate_hz, jitter_s=jitter_s,
                                            drop_fraction=drop_fraction, start_s=start,
                                            end_s=stop - (0.5 / rate_hz if stop < self.duration_s
                                                          else 0.0))
                writer.write(t, samples)
                n += t.size
                if stop >= self.duration_s:
                    break
                start = stop
        return n

    # -- ground truth ------------------------------------------------------------------------

    def truth(self, *, max_speed_m_s: float = 0.05, stroke_min_distance_m: float = 0.02,
              hold_min_duration_s: float = 3.0, too_fast_min_duration_s: float = 0.3,
              ) -> GroundTruth:
        """Strokes, holds and too-fast excursions of the true motion.

        * stroke: a stroke segment (travel in one direction from rest to rest, or to a
          reversal) of at least ``stroke_min_distance_m``;
        * hold: the time between strokes, when at least ``hold_min_duration_s`` long (breathing
          and leaning stay well inside 1 cm of travel);
        * too fast: true speed above ``max_speed_m_s`` for at least
          ``too_fast_min_duration_s``; start and end are the crossings.
        """
        strokes: list[TruthStroke] = []
        too_fast: list[TruthTooFast] = []
        quiet: list[tuple[float, float]] = []
        for i, seg in enumerate(self.scenario.segments):
            t0, t1 = float(self._starts[i]), float(self._ends[i])
            if isinstance(seg, StrokeSegment) and abs(seg.distance_m) >= stroke_min_distance_m:
                grid = np.linspace(0.0, seg.duration_s, max(3, int(seg.duration_s * 2000)))
                speed = np.abs(seg.motion(grid)["v"])
                strokes.append(TruthStroke(
                    start=t0, end=t1, distance_m=abs(seg.distance_m),
                    peak_speed_m_s=float(speed.max()),
                    mean_speed_m_s=abs(seg.distance_m) / (t1 - t0),
                    direction=1 if seg.distance_m > 0 else -1))
                too_fast.extend(_excursions(grid + t0, speed, max_speed_m_s,
                                            too_fast_min_duration_s))
            elif quiet and abs(quiet[-1][1] - t0) < 1e-9:
                quiet[-1] = (quiet[-1][0], t1)
            else:
                quiet.append((t0, t1))
        holds = tuple(TruthHold(a, b) for a, b in quiet if b - a >= hold_min_duration_s)
        return GroundTruth(tuple(strokes), holds, tuple(too_fast), max_speed_m_s)


def _excursions(t: np.ndarray, speed: np.ndarray, limit: float, min_s: float,
                ) -> list[TruthTooFast]:
    """Runs of ``speed`` above ``limit`` lasting ``min_s`` or more, with interpolated
    crossings (``speed`` is sampled finely at times ``t``)."""
    above = speed > limit
    if not above.any():
        return []
    edges = np.diff(above.astype(np.int8), prepend=0, append=0)
    out = []
    for lo, hi in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        start = float(t[lo]) if lo == 0 else _cross(t[lo - 1], speed[lo - 1], t[lo],
                                                     speed[lo], limit)
        end = float(t[hi - 1]) if hi == t.size else _cross(t[hi - 1], speed[hi - 1], t[hi],
                                                           speed[hi], limit)
        if end - start >= min_s:
            out.append(TruthTooFast(start, end, float(speed[lo:hi].max())))
    return out


def _time_above(stroke: StrokeSegment, limit: float) -> float:
    """How long the stroke's speed stays above ``limit`` in one go, at most [s]."""
    grid = np.linspace(0.0, stroke.duration_s, max(3, int(stroke.duration_s * 2000)))
    runs = _excursions(grid, np.abs(stroke.motion(grid)["v"]), limit, 0.0)
    return max((r.end - r.start for r in runs), default=0.0)


def _cross(t0: float, s0: float, t1: float, s1: float, level: float) -> float:
    return float(t0 + (level - s0) / (s1 - s0) * (t1 - t0))


# ----------------------------------------------------------------------------- a person


def person_scenario(duration_s: float, *, seed: int = 0, radius_m: float = 0.075,
                    body: Literal["roller", "ball"] = "roller", start_rolling: bool = False,
                    fast_fraction: float = 0.2, max_speed_m_s: float = 0.05,
                    gyro_bias_max_rad_s: float = 20 * DEG, gyro_noise_rad_s: float = 0.003,
                    accel_noise_m_s2: float = 0.04, random_mounting: bool = True,
                    wobble_max: float = 0.25) -> Scenario:
    """A plausible person doing a lower-back routine for about ``duration_s`` seconds.

    Sets of slow strokes (2-4 cm/s over 4-12 cm) back and forth, with an uneven hand (speed
    swinging by up to ``wobble_max``), now and then a set that is too fast (8-15 cm/s), holds
    of 20-30 s on tender spots with breathing and leaning, short rests; with a ball, twists on
    the spot now and then. The sensor is mounted at random, with a gyro
    offset of up to ``gyro_bias_max_rad_s`` per axis that drifts as the chip warms, accelerometer
    offsets of up to 0.3 m/s^2 and gyro sensitivity errors of up to 2 %.
    ``start_rolling`` begins in the middle of rolling, with no still moment first.
    Speeds avoid the ambiguous band just around ``max_speed_m_s``.
    """
    rng = np.random.default_rng([seed, 1])
    segments: list[Segment] = []
    total = 0.0

    def add(seg: Segment) -> None:
        nonlocal total
        segments.append(seg)
        total += seg.duration_s

    if not start_rolling:   # still periods are either clearly short or clearly a hold
        add(RestSegment(float(rng.choice([rng.uniform(0.5, 2.0), rng.uniform(4.5, 8.0)]))))
    direction = 1.0 if rng.random() < 0.5 else -1.0
    while total < duration_s:
        fast = rng.random() < fast_fraction
        n = int(rng.integers(4, 11))
        amplitude = float(rng.uniform(0.04, 0.12))
        for _ in range(n):
            distance = amplitude * float(rng.uniform(0.8, 1.0))
            if fast:
                speed = float(rng.uniform(1.6, 3.0)) * max_speed_m_s
                ramp = float(rng.uniform(0.15, 0.3))
                wobble_cap = 1 - 1.25 * max_speed_m_s / speed   # stays clearly too fast
            else:
                speed = float(rng.uniform(0.4, 0.75)) * max_speed_m_s
                # now and then a gentle pass: speeding up and slowing down all the way
                ramp = float(rng.uniform(0.25, 0.6)) if rng.random() < 0.7 else 10.0
                wobble_cap = 0.8 * max_speed_m_s / speed - 1    # stays clearly slow enough
            wobble = float(rng.uniform(0.0, max(0.0, min(wobble_max, wobble_cap))))
            stroke = StrokeSegment(direction * distance, speed, ramp, wobble=wobble,
                                   wobble_cycles=int(rng.integers(1, 4)))
            while fast and _time_above(stroke, max_speed_m_s) < 0.45:
                # clearly longer than the 0.3 s that makes an alert: no ambiguous cases
                stroke = dataclasses.replace(stroke, distance_m=stroke.distance_m * 1.2)
            add(stroke)
            direction = -direction
            if rng.random() < 0.2:
                add(RestSegment(float(rng.uniform(0.3, 1.2))))
        roll = rng.random()
        if roll < 0.55:
            add(HoldSegment(float(rng.uniform(20.0, 30.0)),
                            breathing_m=float(rng.uniform(0.001, 0.005)),
                            breathing_period_s=float(rng.uniform(3.0, 5.5)),
                            lean_rad=float(rng.uniform(1.0, 6.0)) * DEG,
                            lean_period_s=float(rng.uniform(5.0, 10.0)),
                            yaw_rad=float(rng.uniform(0.0, 5.0)) * DEG))
        elif roll < 0.8:
            add(RestSegment(float(rng.uniform(5.0, 12.0))))
        if body == "ball" and rng.random() < 0.5:
            add(TwistSegment(float(rng.uniform(1.0, 1.5)),
                             float(rng.uniform(-1.5, 1.5))))
            add(RestSegment(float(rng.uniform(0.3, 0.5)) if roll >= 0.8
                            else float(rng.uniform(0.5, 1.5))))
        elif roll >= 0.8 and segments and isinstance(segments[-1], StrokeSegment):
            # keep strokes in the same direction apart: a stop must separate them
            add(RestSegment(float(rng.uniform(0.8, 1.5))))
    bias = rng.uniform(-gyro_bias_max_rad_s, gyro_bias_max_rad_s, size=3)
    drift = rng.uniform(-2.0, 2.0, size=3) * DEG
    mounting = random_rotvec(rng) if random_mounting else (0.0, 0.0, 0.0)
    accel_bias = rng.uniform(-0.3, 0.3, size=3)
    scale = 1.0 + rng.uniform(-0.02, 0.02, size=3)
    return Scenario(segments=tuple(segments), radius_m=radius_m, body=body,
                    mounting_rotvec=mounting,
                    gyro_bias_rad_s=tuple(float(x) for x in bias),  # type: ignore[arg-type]
                    gyro_bias_drift_rad_s=tuple(float(x) for x in drift),  # type: ignore[arg-type]
                    warmup_time_s=float(rng.uniform(300.0, 900.0)),
                    gyro_noise_rad_s=gyro_noise_rad_s, accel_noise_m_s2=accel_noise_m_s2,
                    accel_bias_m_s2=tuple(float(x) for x in accel_bias),  # type: ignore[arg-type]
                    gyro_scale=tuple(float(x) for x in scale))  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- command line


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m firmware_bridge.simulator",
        description="Write a simulated roller session as a recording, with its ground truth "
                    "in OUT.truth.json beside it.")
    parser.add_argument("out", help="recording to write (CSV)")
    parser.add_argument("--seconds", type=float, default=300.0, help="session length [s]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=200.0, help="sample rate [Hz]")
    parser.add_argument("--radius", type=float, default=0.075, help="roller radius [m]")
    parser.add_argument("--ball", action="store_true", help="a massage ball, not a roller")
    parser.add_argument("--jitter", type=float, default=0.0, help="timestamp jitter [s]")
    parser.add_argument("--drop", type=float, default=0.0, help="fraction of samples lost")
    parser.add_argument("--max-speed", type=float, default=0.05,
                        help="go-slow limit used for the truth's too-fast list [m/s]")
    args = parser.parse_args(argv)
    scenario = person_scenario(args.seconds, seed=args.seed, radius_m=args.radius,
                               body="ball" if args.ball else "roller",
                               max_speed_m_s=args.max_speed)
    sim = SimulatedRoller(scenario, seed=args.seed)
    n = sim.write_recording(args.out, args.rate, jitter_s=args.jitter, drop_fraction=args.drop)
    truth_path = _truth_path(args.out)
    with open(truth_path, "w", encoding="utf-8") as fh:
        json.dump({"scenario": {"duration_s": sim.duration_s, "radius_m": scenario.radius_m,
                                "body": scenario.body, "seed": args.seed,
                                "rate_hz": args.rate},
                   **sim.truth(max_speed_m_s=args.max_speed).to_dict()}, fh, indent=1)
    print(f"wrote {n} samples ({sim.duration_s:.0f} s) to {args.out}, truth to {truth_path}")
    return 0


def _truth_path(out: str) -> str:
    return (out[:-4] if out.endswith(".csv") else out) + ".truth.json"


__all__ = [
    "GRAVITY_M_S2", "GroundTruth", "HoldSegment", "RestSegment", "Scenario", "Segment",
    "SimulatedRoller", "StrokeSegment", "TruthHold", "TruthStroke", "TruthTooFast",
    "TwistSegment", "person_scenario", "random_rotvec", "rotation_matrix",
]

if __name__ == "__main__":
    sys.exit(main())
