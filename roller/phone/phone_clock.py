"""The phone's clock mapped onto ours (the service's monotonic clock), its drift tracked.

A phone stamps its samples with its own clock (phyphox: seconds since the experiment started;
Sensor Logger: ns since 1970 on the phone's wall clock). The service needs them on its own
monotonic clock. Each batch that arrives says "the phone's newest sample was taken at ``p`` and
it reached us at ``a``": ``a - p`` is the offset plus the network's delay, and the delay is
never negative, so the smallest ``a - p`` seen recently is the best estimate of the offset (the
lower envelope). The window slides, so the estimate follows the two clocks' drift (tens of ppm
for phones) and a delay spike never moves it.

The offset applied stays put while it is within ``deadband_s`` of the estimate, so the phone's
own time scale (what its samples were integrated against in ``roller analyze``) is kept as it
is; beyond that it moves toward the estimate at most ``max_slew`` seconds per second of phone
time (0.1 %: speeds change by as much while it does), so mapped times always increase when
phone times do and jitter in the estimate never jolts the speed. The drift is the slope of a
least-squares line through the estimates of the last minute. When every batch for
``stale_after_s`` arrives more than ``stale_jump_s`` later than the envelope predicts (phyphox's
experiment time stood still during a pause), the envelope is started afresh. After a gap longer than
``reanchor_gap_s`` (the phone slept, the experiment restarted) the mapping is anchored afresh.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass
class ClockReport:
    """What :meth:`PhoneClock.report` says: for ``roller detect`` and the health payload."""

    offset_s: float | None
    """Our monotonic time minus the phone's time [s] (None until a batch arrived)."""
    drift_ppm: float | None
    """How fast the offset changes, in parts per million (None until 30 s were seen)."""
    min_delay_spread_s: float | None
    """Spread of the recent ``a - p`` above their minimum (median) [s]: network jitter."""


class PhoneClock:
    """Maps phone times [s] to the service's clock [s]. Call :meth:`observe` for each batch,
    then :meth:`to_ours` for its sample times."""

    def __init__(self, *, window_s: float = 30.0, max_slew: float = 0.001,
                 deadband_s: float = 0.02,
                 reanchor_gap_s: float = 2.0, stale_jump_s: float = 0.5,
                 stale_after_s: float = 2.0) -> None:
        self.stale_jump_s = stale_jump_s
        self.stale_after_s = stale_after_s
        self._late_since: float | None = None
        self.window_s = window_s
        self.max_slew = max_slew
        self.deadband_s = deadband_s
        self._slewing = False
        self.reanchor_gap_s = reanchor_gap_s
        self._pairs: deque[tuple[float, float]] = deque()   # (arrival ours, a - p)
        self._offset: float | None = None
        self._last_phone_t: float | None = None
        self._history: deque[tuple[float, float]] = deque(maxlen=128)  # (phone t, estimate)
        self.reanchors = 0

    def reset(self) -> None:
        """Forget the mapping (a new phone session: its clock restarted)."""
        self._pairs.clear()
        self._history.clear()
        self._offset = None
        self._last_phone_t = None
        self._late_since = None

    def observe(self, newest_phone_t: float, arrived_at: float) -> None:
        """A batch whose newest sample was taken at ``newest_phone_t`` (phone clock [s])
        arrived at ``arrived_at`` (our clock [s])."""
        delay = arrived_at - newest_phone_t
        estimate = self.estimate_s
        if estimate is not None and delay - estimate > self.stale_jump_s:
            # Every batch for a while says the offset grew (phyphox's experiment time stands
            # still while paused, ours does not): the old envelope is stale, start afresh.
            if self._late_since is None:
                self._late_since = arrived_at
            elif arrived_at - self._late_since >= self.stale_after_s:
                self._pairs = deque(p for p in self._pairs if p[0] >= self._late_since)
                self._offset = None
                self._late_since = None
        else:
            self._late_since = None
        self._pairs.append((arrived_at, delay))
        while self._pairs and self._pairs[0][0] < arrived_at - self.window_s:
            self._pairs.popleft()

    @property
    def estimate_s(self) -> float | None:
        """The lower envelope of ``arrival - phone time`` over the window [s]."""
        return min(d for _a, d in self._pairs) if self._pairs else None

    def to_ours(self, phone_t: np.ndarray) -> np.ndarray:
        """Our clock's times [s] for the phone's increasing times ``phone_t`` [s]; call batch
        after batch in phone-time order (the offset slews with phone time, linearly across a
        batch, so mapped times increase wherever phone times do)."""
        phone_t = np.asarray(phone_t, dtype=np.float64)
        estimate = self.estimate_s
        if estimate is None:
            raise RuntimeError("PhoneClock.to_ours before any observe()")
        if phone_t.size == 0:
            return phone_t.copy()
        last, end = self._last_phone_t, float(phone_t[-1])
        if self._offset is None or last is None or float(phone_t[0]) - last > self.reanchor_gap_s \
                or float(phone_t[0]) < last:
            if self._offset is not None:
                self.reanchors += 1
            self._offset = estimate
            out = phone_t + estimate
        else:
            error = estimate - self._offset
            if abs(error) > self.deadband_s:
                self._slewing = True
            elif abs(error) < self.deadband_s / 4:
                self._slewing = False
            step = self.max_slew * max(0.0, end - last) if self._slewing else 0.0
            target = self._offset + min(step, max(-step, error))
            span = end - last
            frac = (phone_t - last) / span if span > 0 else np.ones_like(phone_t)
            out = phone_t + self._offset + (target - self._offset) * frac
            self._offset = target
        if not self._history or end - self._history[-1][0] >= 0.5:
            self._history.append((end, estimate))
        self._last_phone_t = end
        return out

    def report(self) -> ClockReport:
        drift = None
        if len(self._history) >= 3 and self._history[-1][0] - self._history[0][0] >= 30.0:
            p, o = np.array(self._history).T
            drift = float(np.polyfit(p - p[0], o, 1)[0]) * 1e6
        spread = None
        if self._pairs:
            ds = sorted(d for _a, d in self._pairs)
            spread = ds[len(ds) // 2] - ds[0]
        return ClockReport(self._offset, drift, spread)
