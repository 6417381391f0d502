"""Two sensor clocks -> samples on the gyro's times, as the pipeline reads them.

A phone samples its accelerometer and gyro on separate clocks at uneven rates (50-500 Hz), and
a network delivers them in batches that can come late, twice or out of order. The merger:

* keeps each stream sorted and drops samples at or before the last one already taken (a
  duplicated or late batch adds nothing, and says so in :attr:`StreamMerger.dropped_late`);
* interpolates the accelerometer at the gyro's times, as the file reader does
  (:func:`roller.recordings.phone_export.read_export`): the gyro carries the speed, so its
  samples are kept as they are;
* emits a gyro sample only once the accelerometer has a sample after it (so interpolation never
  extrapolates) and only if the two accelerometer samples around it are at most
  ``max_accel_gap_s`` apart: across a gap (the phone slept, Wi-Fi dropped) nothing is made up,
  the gyro samples there are dropped and the pipeline sees a gap;
* bounds what it holds: a gyro stream whose accelerometer stopped (iOS can pause one stream)
  is dropped after ``max_wait_s`` rather than kept for ever.

Times here are the phone's [s]; the caller maps them to ours (:mod:`roller.phone.phone_clock`).
"""

from __future__ import annotations

import numpy as np

EMPTY_T = np.zeros(0)


class _Stream:
    """One sensor's pending samples, sorted, with nothing at or before ``floor``."""

    def __init__(self) -> None:
        self.t = EMPTY_T
        self.v = np.zeros((0, 3))
        self.floor = -np.inf
        self.dropped_late = 0

    def add(self, t: np.ndarray, v: np.ndarray) -> None:
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        v = np.asarray(v, dtype=np.float64).reshape(-1, 3)
        good = np.isfinite(t) & np.all(np.isfinite(v), axis=1) & (t > self.floor)
        self.dropped_late += int(np.count_nonzero(np.isfinite(t) & (t <= self.floor)))
        t, v = t[good], v[good]
        if t.size == 0:
            return
        t = np.concatenate((self.t, t))
        v = np.concatenate((self.v, v))
        order = np.argsort(t, kind="stable")
        t, v = t[order], v[order]
        keep = np.concatenate(([True], np.diff(t) > 0))  # the same time twice: a duplicate
        self.dropped_late += int(np.count_nonzero(~keep))
        self.t, self.v = t[keep], v[keep]

    def cut(self, upto: int) -> None:
        if upto > 0:
            self.floor = float(self.t[upto - 1])
            self.t, self.v = self.t[upto:], self.v[upto:]


class StreamMerger:
    """Feed :meth:`add_accel` and :meth:`add_gyro` in any order; :meth:`take` returns what is
    ready: ``(t (N,) phone s, samples (N, 6) [m/s^2, rad/s])``."""

    def __init__(self, *, max_accel_gap_s: float = 0.25, max_wait_s: float = 2.0) -> None:
        self.max_accel_gap_s = max_accel_gap_s
        self.max_wait_s = max_wait_s
        self._acc = _Stream()
        self._gyr = _Stream()
        self.dropped_in_gaps = 0
        """Gyro samples with no accelerometer close around them (dropped, never invented)."""

    @property
    def dropped_late(self) -> int:
        """Samples that came again or after newer ones had been taken."""
        return self._acc.dropped_late + self._gyr.dropped_late

    @property
    def newest_accel_t(self) -> float | None:
        return float(self._acc.t[-1]) if self._acc.t.size else None

    def reset(self) -> None:
        """Forget everything (a new phone session: its clock restarted)."""
        self.__init__(max_accel_gap_s=self.max_accel_gap_s, max_wait_s=self.max_wait_s)

    def add_accel(self, t: np.ndarray, values: np.ndarray) -> None:
        self._acc.add(t, values)

    def add_gyro(self, t: np.ndarray, values: np.ndarray) -> None:
        self._gyr.add(t, values)

    def take(self) -> tuple[np.ndarray, np.ndarray]:
        """Every gyro sample the accelerometer now covers, with the accelerometer there."""
        acc_t, acc_v = self._acc.t, self._acc.v
        gt, gv = self._gyr.t, self._gyr.v
        if acc_t.size == 0:
            self._expire_waiting()
            return EMPTY_T, np.zeros((0, 6))
        ready = int(np.searchsorted(gt, acc_t[-1], side="right"))
        t, g = gt[:ready], gv[:ready]
        self._gyr.cut(ready)
        # the accelerometer pair around each gyro time: acc_t[lo] <= t <= acc_t[hi]
        hi = np.minimum(np.searchsorted(acc_t, t, side="left"), acc_t.size - 1)
        exact = acc_t[hi] == t
        lo = np.where(exact, hi, np.maximum(hi - 1, 0))
        inside = exact | (acc_t[lo] < t)
        ok = inside & (acc_t[hi] - acc_t[lo] <= self.max_accel_gap_s)
        self.dropped_in_gaps += int(np.count_nonzero(~ok))
        t, g, lo, hi = t[ok], g[ok], lo[ok], hi[ok]
        span = acc_t[hi] - acc_t[lo]
        w = np.where(span > 0, (t - acc_t[lo]) / np.where(span > 0, span, 1.0), 0.0)
        a = acc_v[lo] + (acc_v[hi] - acc_v[lo]) * w[:, None]
        # keep max_wait_s of accelerometer (and the sample before) for gyro samples that
        # arrive after it, in a later batch
        keep_from = int(np.searchsorted(acc_t, acc_t[-1] - self.max_wait_s, side="left"))
        self._acc.cut(max(keep_from - 1, 0))
        self._expire_waiting()
        if t.size == 0:
            return EMPTY_T, np.zeros((0, 6))
        return t, np.hstack((a, g))

    def _expire_waiting(self) -> None:
        """Gyro samples waiting longer than ``max_wait_s`` (by the gyro's own clock) for an
        accelerometer that stopped are dropped: holding them would grow without bound."""
        gt = self._gyr.t
        if gt.size and gt[-1] - gt[0] > self.max_wait_s:
            stale = int(np.searchsorted(gt, gt[-1] - self.max_wait_s, side="left"))
            self.dropped_in_gaps += stale
            self._gyr.cut(stale)
