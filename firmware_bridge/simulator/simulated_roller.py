"""The simulated roller: the body's true motion from a scenario, and what its IMU reads.

:class:`SimulatedRoller` adds the sensor's mounting, the gyro's offset and warm-up drift, scale
errors and noise, and samples the result at a chip's rate with dropped samples and jitter.
"""

from __future__ import annotations

import math

import numpy as np

from firmware_bridge.physics import STANDARD_GRAVITY_M_S2 as GRAVITY_M_S2
from firmware_bridge.simulator.rotations import random_rotvec, rot_x, rot_y, rotation_matrix
from firmware_bridge.simulator.scenario import Scenario
from firmware_bridge.simulator.segments import StrokeSegment, TwistSegment
from firmware_bridge.simulator.truth import (
    GroundTruth,
    TruthHold,
    TruthStroke,
    TruthTooFast,
    excursions,
)

_ROLLER_REST = np.array([[0.0, 0.0, 1.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])


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
        w_body = rot_y(-roll, u) @ self._rest
        # Specific force: linear acceleration along the path plus the reaction to gravity.
        f = np.column_stack([m["a"], np.zeros(n), np.full(n, GRAVITY_M_S2)])
        f_body = rot_y(-roll, rot_x(-tilt, f)) @ self._rest
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
        if sc.vibration_m_s2 or sc.vibration_rad_s:
            out += self.vibration(t)
        return out

    def vibration(self, t: np.ndarray) -> np.ndarray:
        """(N, 6) the scenario's engine-like vibration at times ``t`` [s]: three harmonics of
        a 27 Hz fundamental, each along its own direction (fixed by the seed), their amplitude
        breathing by +-30 % over a few seconds. Deterministic for (seed, t)."""
        sc = self.scenario
        t = np.asarray(t, dtype=float).reshape(-1)
        rng = np.random.default_rng([self.seed, 0x5EB])
        out = np.zeros((t.size, 6))
        for order, share in ((1, 1.0), (2, 0.6), (3, 0.3)):
            f_hz = 27.0 * order * (1.0 + rng.uniform(-0.02, 0.02))
            phase = rng.uniform(0.0, 2 * np.pi)
            swell = 1.0 + 0.3 * np.sin(2 * np.pi * t / rng.uniform(3.0, 7.0) + phase)
            wave = share * swell * np.sin(2 * np.pi * f_hz * t + phase)
            for cols, amplitude in ((slice(0, 3), sc.vibration_m_s2),
                                    (slice(3, 6), sc.vibration_rad_s)):
                direction = rng.normal(size=3)
                direction /= np.linalg.norm(direction)
                out[:, cols] += amplitude * wave[:, None] * direction
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
                too_fast.extend(excursions(grid + t0, speed, max_speed_m_s,
                                            too_fast_min_duration_s))
            elif quiet and abs(quiet[-1][1] - t0) < 1e-9:
                quiet[-1] = (quiet[-1][0], t1)
            else:
                quiet.append((t0, t1))
        holds = tuple(TruthHold(a, b) for a, b in quiet if b - a >= hold_min_duration_s)
        return GroundTruth(tuple(strokes), holds, tuple(too_fast), max_speed_m_s)
