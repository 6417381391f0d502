"""Gyro bias tracking, aided by gravity: works while still, while holding and while rolling.

A cheap MEMS gyro reads an offset of several deg/s (up to 20 on an MPU-6050) that drifts as the
chip warms; at r = 7.5 cm one deg/s of offset reads as 1.3 mm/s of false speed, so the offset
must be known to a fraction of a deg/s and tracked through the session.

The accelerometer gives a reference that needs no stillness: seen from the sensor, gravity is a
fixed world vector, so between two frames it turns by exactly the (true) rotation the gyro
should have measured. For frame pairs ``lag_s`` apart we predict the later gravity direction
from the earlier one and the gyro's rotation (with the current offset estimate removed); the
mismatch ``y`` is, to first order, ``dt * (db x g)`` where ``db`` is the error of the estimate.
Every pair therefore measures the components of the offset perpendicular to gravity. A roller's
roll axis is always horizontal, so the component that matters (along the roll axis) is measured
all the time -- at rest, in a hold, and in the middle of a stroke -- and the components along
other directions are measured as the roller turns. Linear acceleration of the roller's centre
disturbs single pairs but cancels over a stroke (the roller starts and ends at rest).

The estimate is a recursive least-squares solution with exponential forgetting (``memory_s``),
updated once per epoch (2 s of frames) so it depends only on the frames, never on how samples
were split into blocks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from firmware_bridge.physics import STANDARD_GRAVITY_M_S2 as GRAVITY_M_S2
from roller.base.settings import setting
from roller.pipeline.frames import Frames, sum_by_group


@dataclass(frozen=True)
class BiasSettings:
    lag_s: float = setting(0.48, unit="s", minimum=0.05, maximum=5.0,
                           doc="time between the two gravity readings compared")
    memory_s: float = setting(40.0, unit="s", minimum=2.0,
                              doc="how long old evidence counts (the offset drifts slowly)")
    max_accel_error_m_s2: float = setting(
        2.0, unit="m/s^2", minimum=0.1,
        doc="frames whose acceleration differs from 1 g by more are not used (bumps)")
    prior_s: float = setting(0.05, unit="s", minimum=0.0,
                             doc="weight of the starting offset, as seconds of evidence")
    calibrated_prior_s: float = setting(10.0, unit="s", minimum=0.0,
                                        doc="the same, when the start comes from a calibration")
    confident_s: float = setting(2.5, unit="s", minimum=0.0,
                                 doc="evidence needed before the offset is trusted")
    relinearise_epochs: int = setting(8, minimum=1,
                                      doc="epochs that share one linearisation point")


def cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cross product of two (N, 3) arrays (faster than np.cross for small N)."""
    out = np.empty_like(a)
    out[:, 0] = a[:, 1] * b[:, 2] - a[:, 2] * b[:, 1]
    out[:, 1] = a[:, 2] * b[:, 0] - a[:, 0] * b[:, 2]
    out[:, 2] = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    return out


def rotate(vectors: np.ndarray, rotvecs: np.ndarray) -> np.ndarray:
    """Rotate each row of ``vectors`` by the matching rotation vector [rad] (Rodrigues)."""
    angle = np.linalg.norm(rotvecs, axis=1)
    safe = np.where(angle > 1e-12, angle, 1.0)
    k = rotvecs / safe[:, None]
    c = np.cos(angle)[:, None]
    s = np.sin(angle)[:, None]
    kv = cross(k, vectors)
    kdot = np.einsum("ij,ij->i", k, vectors)[:, None]
    return vectors * c + kv * s + k * kdot * (1 - c)


class BiasTracker:
    """The gyro's zero-rate offset [rad/s], sensor axes, tracked from gravity's rotation."""

    def __init__(self, settings: BiasSettings | None = None, *, frame_s: float,
                 initial_rad_s: np.ndarray | None = None, calibrated: bool = False) -> None:
        self.settings = s = settings or BiasSettings()
        self.frame_s = frame_s
        self.lag = max(1, round(s.lag_s / frame_s))
        lag_s = self.lag * frame_s
        # one second of pairs perpendicular to some direction adds this much information
        self._unit = lag_s * lag_s / frame_s
        self.bias = np.zeros(3) if initial_rad_s is None else np.asarray(initial_rad_s, float)
        self._initial = self.bias.copy()
        self._prior_weight = (s.calibrated_prior_s if calibrated else s.prior_s) * self._unit
        self._h = np.eye(3) * self._prior_weight
        self._z = self._h @ self.bias
        self._h_data = np.zeros((3, 3))   # the part that came from measurements
        self._clear_history()
        self._lin = self.bias.copy()      # linearisation point of the current group
        self._epochs_done = 0
        self.pairs_used = 0
        self.residual_rms = 0.0

    def learn_epochs(self, epochs: list[Frames], epoch_s: float) -> list[np.ndarray]:
        """Learn from complete epochs, in order; returns the offset after each one.

        Each epoch's evidence is added, the offset solved, then all evidence aged. Pairs are
        linearised around the estimate at the start of their group of ``relinearise_epochs``
        epochs rather than the previous epoch's, so a run of epochs (a long block read from a
        file) is handled in one vectorised step; once started the estimate moves slowly, so
        this costs nothing in accuracy.
        """
        out: list[np.ndarray] = []
        k = self.settings.relinearise_epochs
        forget = math.exp(-epoch_s / self.settings.memory_s)
        eps = 1e-3 * self._unit
        i = 0
        while i < len(epochs):
            if self._epochs_done % k == 0:
                self._lin = self.bias.copy()
            j = min(len(epochs), i + k - self._epochs_done % k)
            group = epochs[i:j]
            sizes = np.array([len(f) for f in group])
            per_epoch = self._evidence(self._with_history(Frames.concat(group)), self._lin,
                                       sizes)
            for h, z, n in per_epoch:
                self._h += h
                self._z += z
                self._h_data += h
                self.pairs_used += n
                self.bias = np.linalg.solve(self._h + np.eye(3) * eps,
                                            self._z + eps * self.bias)
                self._h *= forget
                self._z *= forget
                self._h_data *= forget
                self._epochs_done += 1
                out.append(self.bias.copy())
            i = j
        return out

    def relearn(self, frames: Frames, iterations: int = 3) -> None:
        """Start again from ``frames`` (every frame so far), re-linearising around each new
        solution. Used during start-up, when the first estimate may be 20 deg/s off and the
        first-order model of the early pairs would otherwise leave a lasting error."""
        prior_h = np.eye(3) * self._prior_weight
        prior_z = prior_h @ self._initial
        self._clear_history()
        if len(frames) == 0:
            return
        data = self._with_history(frames)
        whole = np.array([len(frames)])
        for _ in range(iterations):
            ((h, z, n),) = self._evidence(data, self.bias, whole)
            self.bias = np.linalg.solve(prior_h + h + np.eye(3) * 1e-3 * self._unit,
                                        prior_z + z + 1e-3 * self._unit * self.bias)
        ((h, z, n),) = self._evidence(data, self.bias, whole)
        self._h, self._z, self._h_data = prior_h + h, prior_z + z, h.copy()
        self.pairs_used = n
        self._lin = self.bias.copy()

    def _clear_history(self) -> None:
        self._hist_rot = np.zeros((0, 3))
        self._hist_dur = np.zeros(0)
        self._hist_g = np.zeros((0, 3))
        self._hist_ok = np.zeros(0, dtype=bool)
        self._hist_idx = np.zeros(0, dtype=np.int64)
        self._hist_clip = np.zeros(0, dtype=bool)

    def _with_history(self, frames: Frames) -> tuple[np.ndarray, ...]:
        """The frames, preceded by the last ``lag`` frames seen (which they pair with)."""
        acc = frames.accel_m_s2
        norm = np.linalg.norm(acc, axis=1)
        ok = np.abs(norm - GRAVITY_M_S2) < self.settings.max_accel_error_m_s2
        g = acc / np.where(norm > 0, norm, 1.0)[:, None]
        rot = np.concatenate([self._hist_rot, frames.rotation_rad])
        dur = np.concatenate([self._hist_dur, frames.duration_s])
        gg = np.concatenate([self._hist_g, g])
        okk = np.concatenate([self._hist_ok, ok])
        clip = np.concatenate([self._hist_clip, frames.clipped])
        idx = np.concatenate([self._hist_idx, frames.index])
        keep = min(self.lag, rot.shape[0])
        self._hist_rot = rot[-keep:]
        self._hist_dur = dur[-keep:]
        self._hist_g = gg[-keep:]
        self._hist_ok = okk[-keep:]
        self._hist_idx = idx[-keep:]
        self._hist_clip = clip[-keep:]
        return rot, dur, gg, okk, idx, clip

    def _evidence(self, data: tuple[np.ndarray, ...], bias: np.ndarray, sizes: np.ndarray,
                  ) -> list[tuple[np.ndarray, np.ndarray, int]]:
        """Normal equations (H, z with H b = z) of the frame pairs, linearised at ``bias``,
        summed per epoch (``sizes``: frames per epoch; a pair belongs to its later frame's)."""
        rot, dur, gg, okk, idx, clip = data
        lag = self.lag
        n_ep = sizes.size
        sums = np.zeros((n_ep, 12))
        counts = np.zeros(n_ep, dtype=np.int64)
        if rot.shape[0] > lag:
            # rotation and time from the middle of frame i to the middle of frame i + lag
            cum = np.cumsum(rot, axis=0) - rot * 0.5
            cdur = np.cumsum(dur) - dur * 0.5
            theta = cum[lag:] - cum[:-lag]
            dt = cdur[lag:] - cdur[:-lag]
            # pairs across a long gap in the samples (frames missing) say nothing
            use = okk[lag:] & okk[:-lag] & (dt > 0) & (idx[lag:] - idx[:-lag] == lag)
            if clip.any():
                # the gyro misses rotation in a clipped frame (and in the part-clipped frame
                # after it): a pair spanning one would teach that as an offset. (Not the frame
                # before it: that one may be the last of a block, and results must not depend
                # on the blocks.)
                near = clip.copy()
                near[1:] |= clip[:-1]
                c = np.concatenate(([0], np.cumsum(near)))
                use &= (c[lag + 1:] - c[:-lag - 1]) == 0
            # epoch of each pair's later frame (the new frames are the last sum(sizes) rows)
            first_new = rot.shape[0] - int(sizes.sum())
            epoch = np.searchsorted(np.cumsum(sizes), np.arange(lag, rot.shape[0]) - first_new,
                                    side="right")
            if use.any():
                theta, dt, epoch = theta[use], dt[use], epoch[use]
                g0, g1 = gg[:-lag][use], gg[lag:][use]
                pred = rotate(g0, -(theta - bias[None, :] * dt[:, None]))
                y = g1 - pred
                dt2 = dt * dt
                rows = np.empty((dt.size, 12))
                # dt^2 (I - p p^T) and dt (p x y) for every pair
                rows[:, :9] = (-dt2[:, None, None] * pred[:, :, None] * pred[:, None, :]
                               ).reshape(-1, 9)
                rows[:, [0, 4, 8]] += dt2[:, None]
                rows[:, 9:] = cross(pred, y) * dt[:, None]
                sums = sum_by_group(rows, epoch, n_ep)
                counts = np.bincount(epoch, minlength=n_ep)
                self.residual_rms = float(np.sqrt(np.mean(np.sum(y * y, axis=1)) /
                                                  np.mean(dt2)))
        out = []
        for e in range(n_ep):
            h = sums[e, :9].reshape(3, 3)
            out.append((h, h @ bias + sums[e, 9:], int(counts[e])))
        return out

    def evidence_s(self, direction: np.ndarray) -> float:
        """How much measured evidence backs the offset along ``direction``, in seconds of
        pairs perpendicular to gravity."""
        d = np.asarray(direction, float)
        d = d / (np.linalg.norm(d) or 1.0)
        return float(d @ self._h_data @ d) / self._unit

    def min_evidence_s(self, up: np.ndarray) -> float:
        """The least evidence over horizontal directions (perpendicular to ``up``)."""
        u = np.asarray(up, float)
        u = u / (np.linalg.norm(u) or 1.0)
        p = np.eye(3) - np.outer(u, u)
        w = np.linalg.eigvalsh(p @ self._h_data @ p)
        return float(w[1]) / self._unit   # w[0] ~ 0 belongs to ``up`` itself

    def state(self) -> dict:
        return {"bias_rad_s": self.bias.tolist(), "pairs_used": self.pairs_used,
                "residual_rms_rad_s": self.residual_rms}
