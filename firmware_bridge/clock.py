"""The clock seam: production uses the system's monotonic clock, tests inject a manual one.

Drivers, the service loop and the coach take a ``clock`` argument instead of calling
``time.monotonic()`` so that a test can run ten simulated minutes in a fraction of a second and
so that an emulated chip's FIFO fills exactly as fast as the driver thinks time passes.
"""

from __future__ import annotations

import threading
import time
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float:
        """Seconds on a clock that never goes backwards."""

    def sleep(self, seconds: float) -> None:
        """Wait ``seconds``: really, or by advancing a simulated clock."""

    def unix_s(self) -> float:
        """Wall-clock time [s since 1970]: only to label what is sent and to compare with
        another machine's labels, never to measure a duration."""


class SystemClock:
    """The real monotonic clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def unix_s(self) -> float:
        return time.time()


class ManualClock:
    """A clock that moves only when told to: ``sleep`` and ``advance`` add to it.

    Thread-safe, so a test can advance it while a service thread reads it.
    """

    def __init__(self, start_s: float = 0.0, *, unix_start_s: float = 1_700_000_000.0) -> None:
        self._now = float(start_s)
        self._unix_offset_s = float(unix_start_s) - self._now
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._now

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, seconds))

    def unix_s(self) -> float:
        """``unix_start_s`` plus the time advanced since (a fixed date, so tests repeat)."""
        with self._lock:
            return self._now + self._unix_offset_s

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock cannot go backwards (advance by {seconds} s)")
        with self._lock:
            self._now += seconds
