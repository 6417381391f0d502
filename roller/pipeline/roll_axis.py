"""The roll axis: which way round the sensor sits in the roller, found from the data.

The sensor may be glued in any orientation, so the roller's long axis is unknown in sensor axes.
Two facts find it: rolling is by far the largest rotation (tens to hundreds of deg/s, back and
forth), and the long axis stays horizontal. We take the angular velocity of every frame with the
current gyro offset removed, drop its part along gravity (a roller yawing on the floor, or the
offset's unmeasured vertical part, turns about the vertical, never about the roll axis), and
accumulate the second-moment matrix of what is left. Its principal eigenvector is the roll axis.
Leaning during holds (tilting the roller by a few degrees) adds only a little energy about the
other horizontal axis, so the eigenvalue ratio says how sure we are.

The offset estimate improves as the session goes on (at start-up its vertical part is still
unknown), so the frames are not stored with the offset of their day: the estimator keeps raw
sums from which the moment matrix is recomputed exactly for the newest offset at every epoch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from roller.pipeline.frames import Frames
from roller.settings import setting


@dataclass(frozen=True)
class RollAxisSettings:
    memory_s: float = setting(120.0, unit="s", minimum=1.0,
                              doc="how long old rotation counts")
    min_rate_rad_s: float = setting(0.1, unit="rad/s", minimum=0.0,
                                    doc="RMS rotation about the axis needed to trust it")
    min_ratio: float = setting(6.0, minimum=1.0,
                               doc="how much more rotation about the axis than about any other")


class RollAxisEstimator:
    """Unit roll axis in sensor axes (``axis``), and whether it can be trusted (``confident``)."""

    def __init__(self, settings: RollAxisSettings | None = None, *,
                 pinned: np.ndarray | None = None) -> None:
        self.settings = settings or RollAxisSettings()
        self._clear()
        self.pinned = pinned is not None
        if pinned is not None:
            a = np.asarray(pinned, dtype=float)
            self.axis: np.ndarray | None = a / np.linalg.norm(a)
            self.confident = True
        else:
            self.axis = None
            self.confident = False
        self.ratio = 0.0
        self.rms_rate_rad_s = 0.0

    def observe(self, frames: Frames) -> None:
        """Accumulate the frames' rotation and gravity (raw: the offset is applied later)."""
        if self.pinned or len(frames) == 0:
            return
        dur = frames.duration_s
        ok = dur > 0
        d = dur[ok]
        w = frames.rotation_rad[ok] / d[:, None]
        acc = frames.accel_m_s2[ok]
        g = acc / np.maximum(np.linalg.norm(acc, axis=1), 1e-9)[:, None]
        u = w - (w * g).sum(axis=1)[:, None] * g
        n = d.size
        gg = (g[:, :, None] * g[:, None, :]).reshape(n, 9)
        du = u * d[:, None]
        self._w += float(d.sum())
        self._u1 += du.sum(axis=0)
        self._u2 += du.T @ u
        self._t += (du.T @ gg).reshape(3, 3, 3)
        dgg = gg * d[:, None]
        self._g2 += dgg.sum(axis=0).reshape(3, 3)
        self._g4 += (dgg.T @ gg).reshape(3, 3, 3, 3)

    def moment(self, bias_rad_s: np.ndarray) -> np.ndarray:
        """Second moment of the offset-corrected rotation, perpendicular to gravity, over the
        remembered frames -- computed exactly for ``bias_rad_s`` from the raw sums, so a better
        offset estimate cleans up frames already seen."""
        b = np.asarray(bias_rad_s, dtype=float)
        uv = np.outer(self._u1, b) - self._t @ b   # sum of d u (P b)^T
        g2b = self._g2 @ b
        vv = (self._w * np.outer(b, b) - np.outer(b, g2b) - np.outer(g2b, b)
              + (self._g4.reshape(9, 9) @ np.outer(b, b).reshape(9)).reshape(3, 3))
        return self._u2 - uv - uv.T + vv

    def _clear(self) -> None:
        self._w = 0.0
        self._u1 = np.zeros(3)
        self._u2 = np.zeros((3, 3))
        self._t = np.zeros((3, 3, 3))
        self._g2 = np.zeros((3, 3))
        self._g4 = np.zeros((3, 3, 3, 3))

    def end_epoch(self, epoch_s: float, bias_rad_s: np.ndarray) -> None:
        """Refresh the axis with the current offset estimate, then age the evidence."""
        if self.pinned or self._w <= 0:
            return
        s = self.settings
        m = self.moment(bias_rad_s)
        vals, vecs = np.linalg.eigh(m)
        axis = vecs[:, 2]
        if self.axis is not None:
            if float(axis @ self.axis) < 0:
                axis = -axis
        elif axis[np.argmax(np.abs(axis))] < 0:
            axis = -axis
        self.axis = axis
        self.ratio = float(vals[2] / max(vals[1], 1e-12))
        self.rms_rate_rad_s = math.sqrt(max(float(vals[2]), 0.0) / self._w)
        self.confident = self.ratio >= s.min_ratio and self.rms_rate_rad_s >= s.min_rate_rad_s
        forget = math.exp(-epoch_s / s.memory_s)
        self._w *= forget
        self._u1 *= forget
        self._u2 *= forget
        self._t *= forget
        self._g2 *= forget
        self._g4 *= forget

    def state(self) -> dict:
        return {"axis": None if self.axis is None else self.axis.tolist(),
                "confident": self.confident, "pinned": self.pinned, "ratio": self.ratio,
                "rms_rate_rad_s": self.rms_rate_rad_s}
