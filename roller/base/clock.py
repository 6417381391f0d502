"""The clock seam for the application: re-exported from :mod:`firmware_bridge.clock`.

Production passes :class:`SystemClock`; tests pass :class:`ManualClock` and move it by hand, so
every timing rule (a report interval, a keepalive, a freshness limit) runs in simulated time.
The clock lives in the bottom layer because the drivers take it too; this module lets the
application's packages (``mqtt``, ``display``) take it without importing the hardware layer.
"""

from __future__ import annotations

from firmware_bridge.clock import Clock, ManualClock, SystemClock

__all__ = ["Clock", "ManualClock", "SystemClock"]
