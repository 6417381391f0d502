"""The read-pace rule, declared once: how often a loop must read the IMU driver.

A FIFO driver holds at most ``max_read_interval_s`` of samples before it overflows (its FIFO
size over the output rate, see ``firmware_bridge.imu.base``). A loop reads at least twice as
often, so one late pass (a slow disk write, a busy CPU) never loses samples.
"""

from __future__ import annotations

TOOL_READ_INTERVAL_S = 0.05
"""The read period the one-shot tools (``roller record``, ``roller detect``) prefer [s]."""


def read_period_s(preferred_s: float, max_read_interval_s: float | None) -> float:
    """The loop period [s]: ``preferred_s``, but at most half the driver's
    ``max_read_interval_s`` (None or 0: no limit known)."""
    if max_read_interval_s:
        return min(preferred_s, max_read_interval_s / 2)
    return preferred_s
