"""Refused HTTP requests, counted by reason and logged at a bounded rate.

A flood of bad requests (a scanner on the LAN, a page hammering the command endpoint) must not
fill the journal: each reason logs its first refusal at once, then at most one line per
``interval_s`` that says how many more there were. The counts are kept for the life of the
server (``counts()``), so tests and the shutdown line can report them.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger("roller.http")


class RefusalLog:
    """``note(reason, detail)`` for every refused request; thread-safe."""

    def __init__(self, *, interval_s: float = 10.0,
                 clock: Callable[[], float] = time.monotonic, name: str = "display") -> None:
        self.interval_s = interval_s
        self.name = name
        self._clock = clock
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._last_logged: dict[str, float] = {}
        self._unlogged: dict[str, int] = {}
        self.lines_logged = 0

    def note(self, reason: str, detail: str) -> bool:
        """Count one refusal; log it unless ``reason`` was logged less than ``interval_s`` ago.
        True when it was logged."""
        now = self._clock()
        with self._lock:
            self._counts[reason] = self._counts.get(reason, 0) + 1
            last = self._last_logged.get(reason)
            if last is not None and now - last < self.interval_s:
                self._unlogged[reason] = self._unlogged.get(reason, 0) + 1
                return False
            more = self._unlogged.pop(reason, 0)
            self._last_logged[reason] = now
            self.lines_logged += 1
        since = f" (and {more} more like it in the last {now - last:.0f} s)" if more else ""
        log.warning("%s: refused a request (%s): %s%s", self.name, reason, detail, since)
        return True

    def counts(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())
