"""Session history: every finished session in a SQLite file in the state directory.

The service hands each :class:`~roller.coaching.records.SessionSummary` to
:meth:`History.record` when a session ends: the one summary the display shows and MQTT carries,
whose fields are the ``sessions`` columns (:meth:`SessionSummary.columns`). ``roller history``
lists and shows them. One row per session in ``sessions`` (the totals, the active time per
side, speed statistics, time too fast), one row per routine step in ``steps`` and one per hold
in ``holds``. Durations are in s, speeds in m/s, dates in seconds since the Unix epoch (UTC).

The schema carries a version (``PRAGMA user_version``) so later releases can migrate it; a file
that is not a history database raises :class:`HistoryError` naming the file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roller.base.disk_faults import is_disk_fault
from roller.base.errors import RollerError
from roller.base.settings import setting
from roller.coaching.records import SessionSummary, balance

SCHEMA_VERSION = 2
"""1: the first release; 2 adds ``distance_m`` (null where the summary had none) to sessions
and steps."""

_SCHEMA = """
CREATE TABLE sessions (
    id INTEGER PRIMARY KEY,
    device_id TEXT NOT NULL,
    routine TEXT NOT NULL,
    routine_title TEXT NOT NULL,
    started_at REAL NOT NULL,
    ended_at REAL NOT NULL,
    duration_s REAL NOT NULL,
    end_reason TEXT NOT NULL,
    active_s REAL NOT NULL,
    left_s REAL NOT NULL,
    right_s REAL NOT NULL,
    none_s REAL NOT NULL,
    strokes INTEGER NOT NULL,
    holds INTEGER NOT NULL,
    longest_hold_s REAL NOT NULL,
    too_fast_count INTEGER NOT NULL,
    too_fast_s REAL NOT NULL,
    mean_speed_m_s REAL,
    median_speed_m_s REAL,
    peak_speed_m_s REAL,
    advice TEXT NOT NULL DEFAULT '',
    distance_m REAL
);
CREATE INDEX sessions_started ON sessions (started_at);
CREATE TABLE steps (
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    step_id TEXT NOT NULL,
    title TEXT NOT NULL,
    muscle TEXT NOT NULL,
    side TEXT NOT NULL,
    prop TEXT NOT NULL,
    target_s REAL NOT NULL,
    active_s REAL NOT NULL,
    rolling_s REAL NOT NULL,
    holding_s REAL NOT NULL,
    strokes INTEGER NOT NULL,
    holds INTEGER NOT NULL,
    longest_hold_s REAL NOT NULL,
    too_fast_count INTEGER NOT NULL,
    too_fast_s REAL NOT NULL,
    mean_speed_m_s REAL,
    peak_speed_m_s REAL NOT NULL,
    completed INTEGER NOT NULL,
    skipped INTEGER NOT NULL,
    distance_m REAL,
    PRIMARY KEY (session_id, position)
);
CREATE TABLE holds (
    session_id INTEGER NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    n INTEGER NOT NULL,
    duration_s REAL NOT NULL,
    PRIMARY KEY (session_id, position, n)
);
"""

_MIGRATIONS = {
    1: "ALTER TABLE sessions ADD COLUMN distance_m REAL;"
       "ALTER TABLE steps ADD COLUMN distance_m REAL;",
}
"""Schema version -> the SQL that brings it to the next version."""


@dataclass(frozen=True)
class HistorySettings:
    """Config section ``[history]``: where and whether finished sessions are kept."""

    enabled: bool = setting(True, doc="store every finished session")
    file: str = setting("history.sqlite3",
                        doc="the SQLite file; a relative name is inside the state directory")

    def path(self, state_dir: str | os.PathLike[str]) -> Path:
        """The history file for this state directory."""
        p = Path(self.file).expanduser()
        return p if p.is_absolute() else Path(state_dir) / p


class HistoryError(RollerError, OSError):
    """The history file cannot be opened or is not a roller history database."""


class HistoryWriteError(HistoryError):
    """A finished session could not be stored (disk full, read-only, I/O error). Nothing of it
    was stored (one transaction) and the history stays usable: the service reports it as
    ``history_failed`` on ``error`` and coaches on."""


class HistoryReadError(HistoryError):
    """The history could not be read (I/O error, a file damaged since it was opened)."""


@dataclass(frozen=True)
class SessionRow:
    """One stored session: the columns of ``sessions`` (durations s, speeds m/s)."""

    id: int
    device_id: str
    routine: str
    routine_title: str
    started_at: float
    ended_at: float
    duration_s: float
    end_reason: str
    active_s: float
    left_s: float
    right_s: float
    none_s: float
    strokes: int
    holds: int
    longest_hold_s: float
    too_fast_count: int
    too_fast_s: float
    mean_speed_m_s: float | None
    median_speed_m_s: float | None
    peak_speed_m_s: float | None
    advice: str
    distance_m: float | None = None
    """Distance rolled along the muscle [m]; None when the summary carried none (sessions
    stored before schema 2, or a coach whose steps report no ``distance_m``)."""

    @property
    def left_share(self) -> float | None:
        """Left share of left+right active time, 0.5 = even; None without either side."""
        return balance({"left": self.left_s, "right": self.right_s})


@dataclass(frozen=True)
class SessionDetail:
    """A session with its steps (dicts of the ``steps`` columns, each with its ``holds_s``)."""

    session: SessionRow
    steps: tuple[dict[str, Any], ...]

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.session.__dict__)
        d["left_share"] = self.session.left_share
        d["steps"] = [dict(s) for s in self.steps]
        return d


class History:
    """The session history in the SQLite file at ``path`` (created with its folder if new)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path)
        except (OSError, sqlite3.Error) as exc:
            raise HistoryError(f"{self.path}: cannot open the history: {exc}") from None
        self._db.row_factory = sqlite3.Row
        try:
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if is_disk_fault(exc):
                raise HistoryError(f"{self.path}: cannot write the history ({exc})") from None
            raise HistoryError(f"{self.path}: not a roller history database ({exc})") from None

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        if version == 0:
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if tables:
                raise sqlite3.DatabaseError("it holds other tables")
            with self._db:
                self._db.executescript(_SCHEMA)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            return
        if version in _MIGRATIONS:
            with self._db:
                while version in _MIGRATIONS:
                    self._db.executescript(_MIGRATIONS[version])
                    version += 1
                self._db.execute(f"PRAGMA user_version = {version}")
            return
        raise sqlite3.DatabaseError(
            f"schema version {version} is newer than this program's ({SCHEMA_VERSION})")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._db:
            yield self._db

    def record(self, summary: SessionSummary, *, device_id: str) -> int:
        """Store a finished session; returns its id. One transaction: all or nothing.
        Raises :class:`HistoryWriteError` (never a raw sqlite3 error) when SQLite refuses."""
        try:
            return self._record(summary, device_id)
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.rollback()
            raise HistoryWriteError(f"{self.path}: could not store the session ({exc})") \
                from None

    def _record(self, summary: SessionSummary, device_id: str) -> int:
        s = summary
        columns = {"device_id": device_id, **s.columns()}
        with self._tx() as db:
            cur = db.execute(
                f"INSERT INTO sessions ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})", tuple(columns.values()))
            session_id = int(cur.lastrowid)  # type: ignore[arg-type]
            for position, st in enumerate(s.steps):
                db.execute(
                    "INSERT INTO steps (session_id, position, step_id, title, muscle, side, prop,"
                    " target_s, active_s, rolling_s, holding_s, strokes, holds, longest_hold_s,"
                    " too_fast_count, too_fast_s, mean_speed_m_s, peak_speed_m_s, completed,"
                    " skipped, distance_m) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (session_id, position, st["id"], st["title"], st["muscle"], st["side"],
                     st["prop"], st["target_s"], st["active_s"], st["rolling_s"],
                     st["holding_s"], st["strokes"], len(st["holds_s"]), st["longest_hold_s"],
                     st["too_fast_count"], st["too_fast_s"], st["mean_speed_m_s"],
                     st["peak_speed_m_s"], int(st["completed"]), int(st["skipped"]),
                     st.get("distance_m")))
                db.executemany(
                    "INSERT INTO holds (session_id, position, n, duration_s) VALUES (?,?,?,?)",
                    [(session_id, position, n, d) for n, d in enumerate(st["holds_s"])])
        return session_id

    def sessions(self, *, limit: int | None = 20, device_id: str | None = None,
                 since_unix_s: float | None = None) -> list[SessionRow]:
        """The newest sessions first (all of them with ``limit=None``); ``since_unix_s``: only
        those started then or later [s since the Unix epoch]."""
        with self._reading():
            return self._sessions(limit, device_id, since_unix_s)

    def _sessions(self, limit: int | None, device_id: str | None,
                  since_unix_s: float | None = None) -> list[SessionRow]:
        sql = "SELECT * FROM sessions"
        where: list[str] = []
        args: list[Any] = []
        if device_id is not None:
            where.append("device_id = ?")
            args.append(device_id)
        if since_unix_s is not None:
            where.append("started_at >= ?")
            args.append(since_unix_s)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [SessionRow(**dict(row)) for row in self._db.execute(sql, args)]

    def session(self, session_id: int) -> SessionDetail:
        """One session with its steps and holds; KeyError when there is no such id."""
        with self._reading():
            return self._session(session_id)

    @contextmanager
    def _reading(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            raise HistoryReadError(f"{self.path}: could not read the history ({exc})") from None

    def _session(self, session_id: int) -> SessionDetail:
        row = self._db.execute("SELECT * FROM sessions WHERE id = ?", (session_id,)).fetchone()
        if row is None:
            raise KeyError(session_id)
        steps = []
        for st in self._db.execute(
                "SELECT * FROM steps WHERE session_id = ? ORDER BY position", (session_id,)):
            d = dict(st)
            d.pop("session_id")
            d["holds_s"] = [h[0] for h in self._db.execute(
                "SELECT duration_s FROM holds WHERE session_id = ? AND position = ? ORDER BY n",
                (session_id, st["position"]))]
            steps.append(d)
        return SessionDetail(SessionRow(**dict(row)), tuple(steps))

    def count(self) -> int:
        with self._reading():
            return int(self._db.execute("SELECT count(*) FROM sessions").fetchone()[0])
