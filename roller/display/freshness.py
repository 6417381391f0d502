"""Is a roller's ``live`` reading current? The display's watch on each roller's live feed.

Two ways a reading shown as current can be old:

* **silence**: no ``live`` for a while (the roller, its network or the broker is gone, and TCP
  has not noticed yet). ``age_s`` is the time since the last one arrived, on this machine's
  monotonic clock.
* **lateness**: readings arrive, but late (a link that buffered them during a stall delivers a
  burst). A reading's ``t_s`` is on the roller's monotonic clock, which means nothing here, but
  its *differences* do: ``offset = arrival - t_s`` is smallest for the readings that travelled
  fastest. :class:`LiveFreshness` keeps that smallest offset as the baseline, and ``lag_s =
  offset - baseline`` is how much later than the fastest a reading came. The baseline creeps
  up by ``drift_allowance`` (1 ms per s) so two clocks drifting apart never turn into a
  growing lag, and restarts when ``t_s`` goes backwards (the roller rebooted).

A roller is ``stale`` when ``age_s`` or ``lag_s`` exceeds ``stale_after_s``. The first reading
after the display starts sets the baseline: if that one was late, lateness is measured from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

DEFAULT_STALE_AFTER_S = 3.0
"""Without a live reading (10 a second) for this long, or one this late, a roller is stale."""


@dataclass
class LiveFreshness:
    """The freshness of one roller's ``live`` feed; times [s] on the display's monotonic
    clock (``now``) and the roller's (``t_s``)."""

    stale_after_s: float = DEFAULT_STALE_AFTER_S
    drift_allowance: float = 1e-3
    """How fast the baseline may creep up [s/s]: more than any two clocks drift apart."""
    last_arrival: float | None = None
    last_t_s: float | None = None
    baseline: float | None = None
    baseline_at: float = 0.0
    lag_s: float | None = None

    def saw(self, t_s: Any, now: float) -> float | None:
        """A live reading stamped ``t_s`` arrived at ``now``; returns its lag [s] (None when
        ``t_s`` is not a finite number: only silence is judged then)."""
        self.last_arrival = now
        if isinstance(t_s, bool) or not isinstance(t_s, int | float) or not math.isfinite(t_s):
            self.lag_s = None
            return None
        offset = now - float(t_s)
        restarted = self.last_t_s is not None and t_s < self.last_t_s - 1.0
        if self.baseline is None or restarted:
            self.baseline = offset
        else:
            crept = self.baseline + self.drift_allowance * max(0.0, now - self.baseline_at)
            self.baseline = min(offset, crept)
        self.baseline_at = now
        self.last_t_s = float(t_s)
        self.lag_s = max(0.0, offset - self.baseline)
        return self.lag_s

    def age_s(self, now: float) -> float | None:
        """Time since the last live reading arrived [s] (None before the first)."""
        return None if self.last_arrival is None else max(0.0, now - self.last_arrival)

    def stale(self, now: float) -> bool:
        age = self.age_s(now)
        return age is None or age > self.stale_after_s or \
            (self.lag_s is not None and self.lag_s > self.stale_after_s)

    def state(self, now: float) -> dict[str, Any]:
        """``{"age_s", "lag_s", "stale"}`` for the page (ages rounded to 1 ms)."""
        age = self.age_s(now)
        return {"age_s": None if age is None else round(age, 3),
                "lag_s": None if self.lag_s is None else round(self.lag_s, 3),
                "stale": self.stale(now)}
