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

from roller.base.settings import setting
from roller.pipeline.frames import Frames, sum_by_group


@dataclass(frozen=True)
class RollAxisSettings:
    memory_s: float = setting(120.0, unit="s", minimum=1.0,
                              doc="how long old rotation counts")
    min_energy_rad2_s: float = setting(
        0.1, unit="rad^2/s", minimum=0.0,
        doc="rolling needed to trust the axis: the integral of the squared rate about it "
            "(a couple of 2 cm strokes)")
    min_ratio: float = setting(6.0, minimum=1.0,
                               doc="how much more rotation about the axis than about any other")


_U1, _U2, _T = slice(1, 4), slice(4, 13), slice(13, 40)
_G2, _G4 = slice(40, 49), slice(49, 130)
_SIZE = 130


class RollAxisEstimator:
    """Unit roll axis in sensor axes (``axis``), and whether it can be trusted (``confident``)."""

    def __init__(self, settings: RollAxisSettings | None = None, *,
                 pinned: np.ndarray | None = None, seed: np.ndarray | None = None) -> None:
        """``pinned``: use this axis and never learn (the user said so). ``seed``: start from
        this axis (a saved calibration) and trust it until the data gives a confident axis of
        its own, which then replaces it -- so a sensor glued in again, or moved to another
        roller, is found again instead of being measured about a stale axis for ever."""
        self.settings = settings or RollAxisSettings()
        # raw sums over frames, weighted by duration: 1, u, u u^T, u g g^T, g g^T, g g g g^T
        # (u: rotation rate perpendicular to gravity g, before removing the offset)
        self._sums = np.zeros(_SIZE)
        self.pinned = pinned is not None
        start = pinned if pinned is not None else seed
        self._seed: np.ndarray | None = None
        if start is not None:
            a = np.asarray(start, dtype=float)
            self.axis: np.ndarray | None = a / np.linalg.norm(a)
            self.confident = True
            if pinned is None:
                self._seed = self.axis
        else:
            self.axis = None
            self.confident = False
        self.ratio = 0.0
        self.energy_rad2_s = 0.0

    def learn_epochs(self, epochs: list[Frames], biases: list[np.ndarray],
                     epoch_s: float) -> list[np.ndarray | None]:
        """Learn from complete epochs in order, each refreshed with the offset estimate after
        it (``biases``); returns the axis after each one."""
        if self.pinned or not epochs:
            return [self.axis] * len(epochs)
        frames = Frames.concat(epochs)
        sizes = np.array([len(f) for f in epochs])
        epoch = np.repeat(np.arange(sizes.size), sizes)
        dur = frames.duration_s
        ok = (dur > 0) & ~frames.clipped   # a clipped rate points the wrong way
        d, epoch = dur[ok], epoch[ok]
        w = frames.rotation_rad[ok] / d[:, None]
        acc = frames.accel_m_s2[ok]
        g = acc / np.maximum(np.linalg.norm(acc, axis=1), 1e-9)[:, None]
        u = w - (w * g).sum(axis=1)[:, None] * g
        n = d.size
        gg = (g[:, :, None] * g[:, None, :]).reshape(n, 9)
        rows = np.empty((n, _SIZE))
        rows[:, 0] = 1.0
        rows[:, _U1] = u
        rows[:, _U2] = (u[:, :, None] * u[:, None, :]).reshape(n, 9)
        rows[:, _T] = (u[:, :, None] * gg[:, None, :]).reshape(n, 27)
        rows[:, _G2] = gg
        rows[:, _G4] = (gg[:, :, None] * gg[:, None, :]).reshape(n, 81)
        rows *= d[:, None]
        per_epoch = sum_by_group(rows, epoch, sizes.size)
        out: list[np.ndarray | None] = []
        forget = math.exp(-epoch_s / self.settings.memory_s)
        for e in range(sizes.size):
            self._sums += per_epoch[e]
            self._refresh(biases[e])
            self._sums *= forget
            out.append(self.axis)
        return out

    def moment(self, bias_rad_s: np.ndarray) -> np.ndarray:
        """Second moment of the offset-corrected rotation, perpendicular to gravity, over the
        remembered frames -- computed exactly for ``bias_rad_s`` from the raw sums, so a better
        offset estimate cleans up frames already seen."""
        b = np.asarray(bias_rad_s, dtype=float)
        sums = self._sums
        u1, u2 = sums[_U1], sums[_U2].reshape(3, 3)
        t, g2, g4 = sums[_T].reshape(3, 3, 3), sums[_G2].reshape(3, 3), sums[_G4].reshape(9, 9)
        uv = np.outer(u1, b) - t @ b   # sum of d u (P b)^T, P = I - g g^T per frame
        g2b = g2 @ b
        vv = (sums[0] * np.outer(b, b) - np.outer(b, g2b) - np.outer(g2b, b)
              + (g4 @ np.outer(b, b).reshape(9)).reshape(3, 3))
        return u2 - uv - uv.T + vv

    def _refresh(self, bias_rad_s: np.ndarray) -> None:
        if self._sums[0] <= 0:
            return
        s = self.settings
        vals, vecs = np.linalg.eigh(self.moment(bias_rad_s))
        axis = vecs[:, 2]
        if self.axis is not None:
            if float(axis @ self.axis) < 0:
                axis = -axis
        elif axis[np.argmax(np.abs(axis))] < 0:
            axis = -axis
        self.ratio = float(vals[2] / max(vals[1], 1e-12))
        self.energy_rad2_s = max(float(vals[2]), 0.0)
        learnt = self.ratio >= s.min_ratio and self.energy_rad2_s >= s.min_energy_rad2_s
        if learnt or self._seed is None:
            self.axis = axis
            self.confident = learnt
            self._seed = None  # the data has spoken: from now on the axis is the data's
        # else: keep the seed (and its confidence) until the data is sure

    def state(self) -> dict:
        return {"axis": None if self.axis is None else self.axis.tolist(),
                "confident": self.confident, "pinned": self.pinned,
                "seeded": self._seed is not None, "ratio": self.ratio,
                "energy_rad2_s": self.energy_rad2_s}
