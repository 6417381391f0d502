"""Disk and drop reporting: the outbox's faults said once on ``error``, not every step.

:class:`OutboxReports` looks at the outbox after each pump: a disk that refuses writes is
reported once per outage (a nearly full disk flaps as acknowledged rows free pages: a refusal
within :data:`DISK_REPORT_INTERVAL_S` of the last report is the same outage) and logged when it
clears; events dropped because the outbox was full are reported with how many. Times on the
injected clock.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from roller.base.clock import Clock
from roller.mqtt.outbox import Outbox

DISK_REPORT_INTERVAL_S = 60.0
"""A disk that refuses again within this long of the last ``outbox_disk`` report is the same
outage (a nearly full disk flaps as acknowledged rows free pages): not reported twice."""

Report = Callable[..., None]
"""``report(code, message, **details)``: publishes on ``error``."""


class OutboxReports:
    """Reports ``outbox``'s disk faults and drops through ``report``."""

    def __init__(self, outbox: Outbox, report: Report, *, clock: Clock,
                 logger: logging.Logger) -> None:
        self.outbox = outbox
        self.report = report
        self.clock = clock
        self.log = logger
        self._reported_dropped = outbox.dropped
        self._reported_disk_error: str | None = None
        self._disk_reported_at = -math.inf

    def watch_disk(self) -> None:
        """Retry a refusing disk when due (cheap: the outbox keeps its own interval); report a
        new disk fault once on ``error`` and log when it clears."""
        box = self.outbox
        box.retry_disk(force=False)
        error = box.disk_error
        now = self.clock.monotonic()
        if error is not None and self._reported_disk_error is None and \
                now - self._disk_reported_at >= DISK_REPORT_INTERVAL_S:
            self._disk_reported_at = now
            self.report("outbox_disk", f"the outbox cannot write to disk ({error}); events wait "
                        f"in memory (at most {box.max_memory_messages}) until it can",
                        reason=error)
        elif error is None and self._reported_disk_error is not None:
            self.log.warning("the outbox writes to disk again (it could not: %s)",
                             self._reported_disk_error)
        self._reported_disk_error = error

    def report_drops(self) -> None:
        """Report events the full outbox dropped since the last report."""
        dropped = self.outbox.dropped
        if dropped > self._reported_dropped:
            self.report("outbox_full",
                        f"the outbox was full ({self.outbox.max_messages} messages): "
                        f"{dropped - self._reported_dropped} oldest unsent message(s) dropped",
                        dropped_total=dropped, last_dropped_seq=self.outbox.last_dropped_seq)
            self._reported_dropped = dropped

    def stats(self) -> dict[str, Any]:
        box = self.outbox
        return {"outbox_pending": len(box), "outbox_dropped": box.dropped,
                "last_seq": box.last_seq, "epoch": box.epoch,
                "outbox_in_memory": box.in_memory, "outbox_disk_error": box.disk_error}
