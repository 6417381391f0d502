"""Real sensor noise for the simulator: a real static recording's residual, replayed.

The simulator's white noise and smooth drift are kinder than a real chip: a real MPU-6050 at
rest shows offsets of several deg/s that drift with temperature, quantisation steps, bursts and
flicker noise. :class:`RealNoise` takes a recording of a real sensor lying still (the project's
recording format: ``t,ax,ay,az,gx,gy,gz`` in s, m/s^2, rad/s) and replays, under simulated
motion, what it read beyond the still truth: the gyro's whole reading (offset, drift and noise:
the true rate was zero) and the accelerometer's departure from its mean (noise and drift; the
mean is gravity plus the chip's offset, which stays as an offset). Times past the recording's
end wrap around. ``SimulatedRoller(scenario, real_noise=RealNoise.from_file(path))`` uses it
in place of the scenario's own bias and noise.

Kept apart from the simulator (and from ``roller``): reading a file is this module's business.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from firmware_bridge.physics import STANDARD_GRAVITY_M_S2


@dataclass(frozen=True)
class RealNoise:
    """A still sensor's residual, (N, 6) accel [m/s^2] then gyro [rad/s], at times ``t``."""

    t: np.ndarray
    residual: np.ndarray
    keep_accel_offset: bool = True

    @classmethod
    def from_file(cls, path: str | os.PathLike[str], *, keep_accel_offset: bool = True,
                  ) -> RealNoise:
        """Load a static recording; ``keep_accel_offset``: replay the accelerometer's offset
        from 1 g too (its mean minus gravity along the mean direction)."""
        with open(path, encoding="utf-8") as f:
            header = f.readline().strip().split(",")
        want = ["t", "ax", "ay", "az", "gx", "gy", "gz"]
        if sorted(header) != sorted(want) and not set(want) <= set(header):
            raise ValueError(f"{path}: expected the header {','.join(want)}, got "
                             f"{','.join(header)}")
        data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
        cols = [header.index(c) for c in want]
        return cls.from_samples(data[:, cols[0]], data[:, cols[1:]],
                                keep_accel_offset=keep_accel_offset)

    @classmethod
    def from_samples(cls, t: np.ndarray, samples: np.ndarray, *,
                     keep_accel_offset: bool = True) -> RealNoise:
        t = np.asarray(t, dtype=float)
        x = np.asarray(samples, dtype=float).reshape(-1, 6)
        if t.size < 2 or not np.all(np.diff(t) > 0):
            raise ValueError("a static recording needs at least 2 samples with increasing t")
        residual = x.copy()
        mean = x[:, :3].mean(axis=0)
        residual[:, :3] -= mean
        if keep_accel_offset:
            g = np.linalg.norm(mean)
            residual[:, :3] += mean * (1.0 - STANDARD_GRAVITY_M_S2 / g) if g > 0 else 0.0
        return cls(t - t[0], residual, keep_accel_offset)

    @property
    def duration_s(self) -> float:
        return float(self.t[-1])

    def __call__(self, t: np.ndarray) -> np.ndarray:
        """(N, 6) residual at simulated times ``t`` [s] (wrapping past the end): linear
        between the recording's samples."""
        tt = np.mod(np.asarray(t, dtype=float).reshape(-1), self.duration_s)
        out = np.empty((tt.size, 6))
        for k in range(6):
            out[:, k] = np.interp(tt, self.t, self.residual[:, k])
        return out
