"""Frames: irregular samples turned into a regular stream of short, fixed-length frames.

Sensor samples come at 50-1000 Hz with jittered timestamps and gaps where samples were lost.
Everything after this stage works on *frames*: consecutive windows of ``frame_s`` (40 ms) on
the samples' own clock, starting at the first sample. For each frame we integrate the gyro over
time (trapezoid rule between consecutive samples, using their real ``dt``; a gap is bridged by a
straight line) and average the accelerometer the same way.

Why frames: the heavy per-sample work is a handful of numpy operations per block, and the
stateful stages (bias, axis, strokes, holds, too fast) run at a fixed 25 Hz whatever the sensor
rate. The frame grid depends only on the sample times, so results are the same however the
samples are split into blocks: a frame is complete once a sample at or after its end has
arrived, and :attr:`Frames.known_at` records that sample's time (when a live system knows it).

A gap longer than ``max_gap_s`` (the sensor unplugged, the Pi suspended for a day) is not bridged
by a straight line through thousands of empty frames: the frame before it is closed short and
framing resumes at the frame holding the next sample, on the same grid. Time and memory stay
bounded by the number of samples, whatever the gap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roller.base.settings import setting


@dataclass(frozen=True)
class FrameSettings:
    frame_s: float = setting(0.04, unit="s", minimum=0.005, maximum=0.5,
                             doc="frame length: the time resolution of every later stage")
    max_gap_s: float = setting(1.0, unit="s", minimum=0.05, maximum=3600.0,
                               doc="a longer gap between samples is not bridged: the frame "
                                   "before it is closed and framing resumes at the next sample")


@dataclass(frozen=True)
class Frames:
    """A run of consecutive complete frames (arrays of equal length)."""

    index: np.ndarray
    """Frame number since the first sample (int)."""
    t_end: np.ndarray
    """End of each frame on the samples' clock [s]."""
    known_at: np.ndarray
    """Time of the sample that completed the frame: when it could be known live [s]."""
    duration_s: np.ndarray
    """Time covered by samples (the frame length, except for a final partial frame) [s]."""
    rotation_rad: np.ndarray
    """(M, 3) gyro integrated over the frame, sensor axes [rad] (bias not removed)."""
    accel_m_s2: np.ndarray
    """(M, 3) mean specific force over the frame, sensor axes [m/s^2]."""
    samples: np.ndarray
    """How many samples fell in each frame."""
    clipped: np.ndarray
    """Whether a sensor was at its full scale in the frame (bool; set by
    :class:`~roller.pipeline.clipping.ClipDetector`, all False from the framer)."""

    def __len__(self) -> int:
        return int(self.index.size)

    def select(self, lo: int, hi: int) -> Frames:
        return Frames(self.index[lo:hi], self.t_end[lo:hi], self.known_at[lo:hi],
                      self.duration_s[lo:hi], self.rotation_rad[lo:hi],
                      self.accel_m_s2[lo:hi], self.samples[lo:hi], self.clipped[lo:hi])

    @staticmethod
    def concat(parts: list[Frames]) -> Frames:
        if not parts:
            return EMPTY
        return Frames(*(np.concatenate([getattr(p, f) for p in parts])
                        for f in ("index", "t_end", "known_at", "duration_s", "rotation_rad",
                                  "accel_m_s2", "samples", "clipped")))


def sum_by_group(rows: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """Sum the rows of ``rows`` (N, K) by ``group`` (N,) ids, sorted ascending, into
    (n_groups, K) (groups with no rows sum to zero). Much faster than ``np.add.at``."""
    out = np.zeros((n_groups, rows.shape[1]))
    if group.size:
        first = np.flatnonzero(np.diff(group, prepend=-1))
        out[group[first]] = np.add.reduceat(rows, first, axis=0)
    return out


EMPTY = Frames(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0),
               np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0, dtype=np.int64),
               np.zeros(0, dtype=bool))


class Framer:
    """Cuts a stream of samples into :class:`Frames`. ``update`` takes blocks of any size."""

    def __init__(self, settings: FrameSettings | None = None) -> None:
        self.settings = settings or FrameSettings()
        self._frame_s = float(self.settings.frame_s)
        self._origin: float | None = None
        self._last_t = 0.0
        self._last_x = np.zeros(6)
        self._open = 0                    # index of the frame still being filled
        self._acc = np.zeros(7)           # its sums: duration, rotation (3), accel x time (3)
        self._count = 0

    @property
    def origin(self) -> float | None:
        """Time of the first sample [s], or None before any."""
        return self._origin

    @property
    def last_t(self) -> float | None:
        return None if self._origin is None else self._last_t

    def update(self, t: np.ndarray, samples: np.ndarray) -> Frames:
        """Add samples ``t`` (N,) [s] and ``samples`` (N, 6) [m/s^2, rad/s]; return the frames
        this completes. Samples not later than the previous one are ignored."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        x = np.asarray(samples, dtype=np.float64).reshape(-1, 6)
        if t.size == 0:
            return EMPTY
        if self._origin is None:
            self._update(t[:1], x[:1])          # the first sample only sets the origin
            t, x = t[1:], x[1:]
            if t.size == 0:
                return EMPTY
        gap = self.settings.max_gap_s
        prev = np.concatenate(([self._last_t], t[:-1]))
        cuts = np.flatnonzero(t - prev > gap)
        if cuts.size == 0:
            return self._update(t, x)
        parts = []
        lo = 0
        for c in cuts.tolist():
            parts.append(self._update(t[lo:c], x[lo:c]))
            parts.append(self._resume(float(t[c]), x[c]))
            lo = c + 1
        parts.append(self._update(t[lo:], x[lo:]))
        return Frames.concat([p for p in parts if len(p)])

    def _resume(self, t: float, x: np.ndarray) -> Frames:
        """After a long gap: close the open frame where its samples end (known at ``t``) and
        start the frame that holds ``t``, with ``t`` as its first sample."""
        closed = EMPTY
        if self._acc[0] > 0:
            index = np.array([self._open], dtype=np.int64)
            closed = self._frames(index, np.array([self._last_t]), np.array([t]),
                                  self._acc[None, :].copy(), np.array([self._count]))
        assert self._origin is not None
        self._open = max(self._open + 1, int(np.floor((t - self._origin) / self._frame_s)))
        self._acc = np.zeros(7)
        self._count = 1
        self._last_t = t
        self._last_x = np.asarray(x, dtype=np.float64).copy()
        return closed

    def _update(self, t: np.ndarray, x: np.ndarray) -> Frames:
        if t.size == 0:
            return EMPTY
        if self._origin is None:
            self._origin = float(t[0])
            self._last_t = float(t[0])
            self._last_x = x[0].copy()
            self._open = 0
            self._count = 1
            t, x = t[1:], x[1:]
            if t.size == 0:
                return EMPTY
        if not (t[0] > self._last_t and bool((t[1:] > t[:-1]).all())):
            running = np.maximum.accumulate(np.concatenate([[self._last_t], t]))
            keep = t > running[:-1]
            t, x = t[keep], x[keep]
            if t.size == 0:
                return EMPTY
        f, o, base = self._frame_s, self._origin, self._open
        n = t.size
        tt = np.concatenate(([self._last_t], t))
        a = tt[:-1]
        xx = np.concatenate((self._last_x[None, :], x))
        twice_mean = xx[:-1] + xx[1:]   # twice each interval's mean reading (trapezoid rule)
        kb = np.floor((t - o) / f).astype(np.int64)
        ka = np.concatenate(([base], kb[:-1]))
        rows = kb - base
        nf = int(rows[-1]) + 1
        same = ka == kb
        weight_b = t - np.where(same, a, o + kb * f)
        sums = np.zeros((nf, 7))      # duration, rotation (3), accel x time (3)
        # rows are sorted: sum each frame's run of intervals in one call
        first = np.flatnonzero(np.diff(rows, prepend=-1))
        red = np.add.reduceat(twice_mean * (0.5 * weight_b)[:, None], first, axis=0)
        frame_rows = rows[first]
        sums[frame_rows, 0] = np.add.reduceat(weight_b, first)
        sums[frame_rows, 1:4] = red[:, 3:]
        sums[frame_rows, 4:7] = red[:, :3]
        cross = np.flatnonzero(~same)
        if cross.size:   # the part of an interval before a frame boundary
            vals = np.empty((cross.size, 7))
            vals[:, 0] = 1.0
            vals[:, 1:4] = twice_mean[cross, 3:] * 0.5
            vals[:, 4:7] = twice_mean[cross, :3] * 0.5
            weight_a = (o + (ka[cross] + 1) * f) - a[cross]
            np.add.at(sums, ka[cross] - base, vals * weight_a[:, None])
            for i in np.flatnonzero(kb[cross] - ka[cross] >= 2):   # gaps over whole frames
                j = cross[i]
                for k in range(int(ka[j]) + 1, int(kb[j])):
                    sums[k - base] += vals[i] * f
        counts = np.zeros(nf, dtype=np.int64)
        counts[rows[first]] = np.diff(np.append(first, n))
        sums[0] += self._acc
        counts[0] += self._count
        # the last frame stays open
        self._acc = sums[-1].copy()
        self._count = int(counts[-1])
        self._open = base + nf - 1
        self._last_t = float(t[-1])
        self._last_x = x[-1].copy()
        if nf == 1:
            return EMPTY
        index = np.arange(base, base + nf - 1, dtype=np.int64)
        known_at = t[np.searchsorted(kb, index, side="right")]
        return self._frames(index, o + (index + 1) * f, known_at, sums[:-1], counts[:-1])

    def finish(self) -> Frames:
        """The last, partial frame (if it covers any time): call at the end of a recording."""
        if self._origin is None or self._acc[0] <= 0:
            return EMPTY
        index = np.array([self._open], dtype=np.int64)
        t_end = np.array([self._last_t])
        frames = self._frames(index, t_end, t_end.copy(), self._acc[None, :].copy(),
                              np.array([self._count]))
        self._acc = np.zeros(7)
        self._count = 0
        return frames

    @staticmethod
    def _frames(index: np.ndarray, t_end: np.ndarray, known_at: np.ndarray, sums: np.ndarray,
                counts: np.ndarray) -> Frames:
        duration = sums[:, 0].copy()
        safe = np.where(duration > 0, duration, 1.0)
        return Frames(index=index, t_end=t_end, known_at=known_at, duration_s=duration,
                      rotation_rad=sums[:, 1:4].copy(), accel_m_s2=sums[:, 4:7] / safe[:, None],
                      samples=counts.astype(np.int64),
                      clipped=np.zeros(index.size, dtype=bool))
