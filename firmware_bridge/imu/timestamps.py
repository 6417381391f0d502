"""Timestamps for FIFO samples: reconstructed from the output rate, anchored to read times.

A FIFO holds samples but not when they were taken. The chip samples on its own oscillator
(within a few percent of nominal), so counting samples at the nominal rate drifts away from the
host clock by seconds per hour. :class:`FifoTimestamper` therefore

* bounds the real sample period from every read: by the time the FIFO count was latched the
  chip had produced ``n`` samples since the FIFO was reset, but not ``n + 2`` (the first sample
  lands somewhere within one period of the reset), so ``(t_before - t0) / (n + 1) < period <
  (t_after - t0) / (n - 1)``; intersecting these intervals over the reads pins the period down
  to ~1/n of itself;
* places each batch after the previous one at that period, then clamps its last sample into
  the window the read allows (not after the count was read, not more than a period before):
  the timestamps cannot run away from the host clock, whatever the oscillator does.

Timestamps always strictly increase. After a FIFO reset (overflow, fault) :meth:`restart`
re-anchors; the gap that follows is real and honest.
"""

from __future__ import annotations

import numpy as np


class FifoTimestamper:
    """Times [s, monotonic] for samples read from a FIFO running at ``nominal_rate_hz``.

    ``max_rate_error`` is the oscillator tolerance allowed for (0.05 = +-5%).
    """

    def __init__(self, nominal_rate_hz: float, *, max_rate_error: float = 0.05) -> None:
        if not nominal_rate_hz > 0:
            raise ValueError(f"output rate must be positive, got {nominal_rate_hz!r} Hz")
        self.nominal_period_s = 1.0 / nominal_rate_hz
        self.max_rate_error = max_rate_error
        self.restart(0.0)

    def restart(self, t0: float) -> None:
        """The FIFO was emptied at ``t0`` [s]: the next sample is taken within a period of it."""
        self._t0 = t0
        self._count = 0
        self._period_lo = self.nominal_period_s * (1 - self.max_rate_error)
        self._period_hi = self.nominal_period_s * (1 + self.max_rate_error)
        self._last: float | None = None

    @property
    def period_s(self) -> float:
        """Best estimate of the chip's real sample period [s]."""
        return 0.5 * (self._period_lo + self._period_hi)

    @property
    def rate_hz(self) -> float:
        return 1.0 / self.period_s

    def skip(self, n: int) -> None:
        """``n`` samples were taken but lost (consumed by a failed read): the next samples
        come ``n`` periods later."""
        if n <= 0:
            return
        self._count += n
        period = self.period_s
        prev = self._last if self._last is not None else self._t0 - 0.5 * period
        self._last = prev + n * period

    def stamp(self, n: int, t_before: float, t_after: float) -> np.ndarray:
        """Times of ``n`` new samples whose FIFO count was read between ``t_before`` and
        ``t_after`` [s]."""
        if n <= 0:
            return np.empty(0)
        self._count += n
        total = self._count
        lo = (t_before - self._t0) / (total + 1)
        if lo > self._period_lo:
            self._period_lo = min(lo, self._period_hi)
        if total >= 2:
            hi = (t_after - self._t0) / (total - 1)
            if hi < self._period_hi:
                self._period_hi = max(hi, self._period_lo)
        period = self.period_s
        prev = self._last if self._last is not None else self._t0 - 0.5 * period
        last = prev + n * period
        # the newest sample existed when the count was read, and was at most a period old
        last = min(last, t_after)
        last = max(last, t_before - period)
        # never step back over what was already handed out
        last = max(last, prev + n * 0.5 * period)
        times = prev + (last - prev) * np.arange(1, n + 1) / n
        self._last = float(times[-1])
        return times
