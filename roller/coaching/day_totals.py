"""Today's rolling: the day's totals (active time, holds, distance) and the last session, as
home dashboards show them (Home Assistant's daily entities read them from the ``state`` topic).

The totals must never go down during a day (Home Assistant takes a smaller total for a new
meter cycle and counts it again) and must come out the same after a restart:

- the finished sessions of the day come from the history, read once when first asked and again
  whenever the local date changes (also when the clock jumps: a Pi without a clock battery
  learns the date from the network after booting); sessions that end later are added from
  their own figures as they end, so nothing is read per tick;
- the session under way adds its figures as it goes, once its active time reaches
  ``[session] min_record_active_s``: from then on it is a session the coach summarises and the
  history keeps, so its minutes do not vanish when it ends (a shorter bump of the roller never
  counts);
- a session counts for the local date it started on, as the history files it: one that runs
  across midnight keeps counting to the day before until it ends, and then the totals start
  the new day (from zero, or from that day's sessions).

The last session is the newest in the history at first, then the summary of each session that
ends (what the history stores).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from roller.coaching.history import HistoryError

if TYPE_CHECKING:
    from roller.coaching.history import History, SessionRow
    from roller.coaching.records import SessionSummary
    from roller.coaching.session import Session

log = logging.getLogger("roller.coaching.day_totals")


@dataclass(frozen=True)
class DayTotals:
    """What was rolled on one local date: finished sessions and the one under way."""

    day: dt.date
    active_s: float
    """Time rolling or holding [s]."""
    holds: int
    distance_m: float
    """Distance rolled along the muscles [m]."""
    sessions: int


@dataclass(frozen=True)
class _Figures:
    active_s: float
    holds: int
    distance_m: float


def local_date(unix_s: float) -> dt.date:
    """The local calendar date at ``unix_s`` [s since the Unix epoch]."""
    return dt.datetime.fromtimestamp(unix_s).date()


def _midnight(day: dt.date) -> float:
    """The Unix time [s] of local midnight starting ``day``."""
    return dt.datetime.combine(day, dt.time()).timestamp()


def _key(started_unix_s: float | None) -> float:
    """A session's key: its wall-clock start to the millisecond (the history's ``started_at``
    is the session's ``started_unix_s``)."""
    return round(started_unix_s or 0.0, 3)


def last_session_of_summary(summary: SessionSummary) -> dict[str, Any]:
    """The last-session figures of a summary that just ended (see :func:`last_session_of_row`)."""
    return {"started_unix_s": summary.started_at, "ended_unix_s": summary.ended_at,
            "routine_title": summary.routine_title, "end_reason": summary.end_reason,
            "active_s": summary.active_s, "strokes": summary.strokes, "holds": summary.holds,
            "distance_m": summary.distance_m, "too_fast_s": summary.too_fast_s,
            "mean_speed_m_s": summary.mean_speed_m_s, "left_share": summary.left_share}


def last_session_of_row(row: SessionRow) -> dict[str, Any]:
    """The last-session figures of a stored session: the same keys as
    :func:`last_session_of_summary` (durations s, distance m, speeds m/s)."""
    return {"started_unix_s": row.started_at, "ended_unix_s": row.ended_at,
            "routine_title": row.routine_title, "end_reason": row.end_reason,
            "active_s": row.active_s, "strokes": row.strokes, "holds": row.holds,
            "distance_m": row.distance_m, "too_fast_s": row.too_fast_s,
            "mean_speed_m_s": row.mean_speed_m_s, "left_share": row.left_share}


class TodaysRolling:
    """Today's totals and the last session for the device ``device_id``, from ``history``
    (None: this run's sessions only) and the session the service runs. Call :meth:`observe`
    every step (it acts only when a session ends) and :meth:`totals` when the figures are
    needed; ``date_of`` turns a Unix time into the local date (injectable for tests)."""

    def __init__(self, history: History | None, *, device_id: str,
                 date_of: Callable[[float], dt.date] = local_date) -> None:
        self.history = history
        self.device_id = device_id
        self.date_of = date_of
        self.reads = 0
        """History reads so far (one at the start, one per change of date)."""
        self._day: dt.date | None = None
        self._finished: dict[float, _Figures] = {}
        """The day's finished sessions by :func:`_key`: the history's and this run's."""
        self._ended_here: dict[float, tuple[dt.date, _Figures]] = {}
        """Sessions that ended in this run, with their day (kept should the history not have
        stored them: a write error, or no history)."""
        self._counted: tuple[str, dt.date] | None = None
        """The session under way (id) and the day it counts for, once it counts."""
        self._last: dict[str, Any] | None = None
        self._last_read = False

    # -- the session -----------------------------------------------------------------------
    def observe(self, session: Session, summary: SessionSummary | None,
                unix_s: float) -> None:
        """One service step: ``session`` as it is now, ``summary`` when a coached session
        ended in this step, ``unix_s`` the wall clock [s]."""
        if summary is not None:
            self._last = last_session_of_summary(summary)
            self._last_read = True
        counted = self._counted
        if session.live and self._counts(session):
            if counted is None or counted[0] != session.id:
                self._counted = (str(session.id), self.date_of(unix_s))
            return
        if counted is not None and session.id == counted[0] and session.state == "finished":
            figures = self._figures(session)
            self._ended_here[_key(session.started_unix_s)] = (counted[1], figures)
            if counted[1] == self._day:
                self._finished[_key(session.started_unix_s)] = figures
        if (counted is not None and session.id != counted[0]) or not session.live:
            self._counted = None

    @staticmethod
    def _counts(session: Session) -> bool:
        return session.active_s >= session.settings.min_record_active_s

    @staticmethod
    def _figures(session: Session) -> _Figures:
        return _Figures(session.active_s, session.holds, session.stats.distance_m)

    # -- the figures -----------------------------------------------------------------------
    def totals(self, session: Session, unix_s: float) -> DayTotals:
        """The totals of the day the session under way counts for, else of today's date at
        ``unix_s``, with the session under way."""
        live = self._counted if session.live and self._counted is not None and \
            self._counted[0] == session.id else None
        day = live[1] if live is not None else self.date_of(unix_s)
        if day != self._day:
            self._start_day(day)
        parts = list(self._finished.values())
        if live is not None:
            parts.append(self._figures(session))
        return DayTotals(day, active_s=math.fsum(p.active_s for p in parts),
                         holds=sum(p.holds for p in parts),
                         distance_m=math.fsum(p.distance_m for p in parts),
                         sessions=len(parts))

    def last_session(self) -> dict[str, Any] | None:
        """The newest finished session's figures (:func:`last_session_of_summary`), None when
        there is none."""
        if not self._last_read:
            self._last_read = True
            rows = self._read(limit=1)
            if rows:
                self._last = last_session_of_row(rows[0])
        return self._last

    def _start_day(self, day: dt.date) -> None:
        self._day = day
        start, end = _midnight(day), _midnight(day + dt.timedelta(days=1))
        finished = {_key(s): f for s, (d, f) in self._ended_here.items() if d == day}
        for row in self._read(since_unix_s=start):
            if row.started_at < end:
                finished[_key(row.started_at)] = _Figures(
                    row.active_s, row.holds, row.distance_m or 0.0)
        self._finished = finished
        self._ended_here = {k: v for k, v in self._ended_here.items() if v[0] >= day}

    def _read(self, *, limit: int | None = None,
              since_unix_s: float | None = None) -> list[SessionRow]:
        if self.history is None:
            return []
        self.reads += 1
        try:
            return self.history.sessions(limit=limit, device_id=self.device_id,
                                         since_unix_s=since_unix_s)
        except HistoryError as exc:  # the totals go on with this run's sessions
            log.warning("could not read today's sessions from the history: %s", exc)
            return []

