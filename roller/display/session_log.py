"""The display's own history: every session it heard finish, with the chart of each.

The display never opens a roller's database (it may be on another machine, and it belongs to
another process): it keeps its own, from the messages every roller publishes anyway. A
roller's retained ``session`` topic says when a session finished, with its totals and the
coach's per-step summary; while a session runs, ``live`` (10 Hz speed), ``event/<kind>``
(strokes, holds, too-fast passes, each with its ``session_id``) and ``coach`` (the current
step) give its chart. So one display serves any number of rollers on one broker, each
session keyed by (device id, session id), and a retained message heard again after a restart
changes nothing.

Times on a chart are seconds from the first message of that session the display heard, on
the display's own clock (``received_at``); an event's own times (the roller's monotonic clock)
are moved onto it by the offset between the two clocks that the ``live`` messages show. The
speed is kept at :data:`TRACE_STEP_S` (the fastest reading of each step, so no too-fast
moment is lost). A session the display did not hear from the start has a partial chart; one
it heard only the end of has totals and no chart.

Stored in SQLite (the display's state directory, ``display-history.sqlite3``), one row per
session; the chart is zlib-compressed JSON, read only when a session is opened, so the
History view loads a year of daily sessions in one small query.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_NAME = "display-history.sqlite3"
SCHEMA_VERSION = 1
TRACE_STEP_S = 0.5
"""Speed samples kept per session: one per half second (the fastest of the step)."""
MAX_TRACE_POINTS = 4 * 3600 * 2
"""A chart keeps at most four hours of speed (a session longer than that is cut)."""
MAX_EVENTS = 20_000
"""Strokes, holds and too-fast passes kept per session at most."""
MAX_ROWS = 5000
"""Sessions returned to the page at most (14 years of daily sessions)."""

_SCHEMA = """
CREATE TABLE sessions (
    device TEXT NOT NULL,
    session_id TEXT NOT NULL,
    started_unix_s REAL NOT NULL,
    ended_unix_s REAL,
    end_reason TEXT,
    routine_title TEXT,
    active_s REAL NOT NULL,
    rolling_s REAL NOT NULL,
    hold_time_s REAL NOT NULL,
    holds INTEGER NOT NULL,
    strokes INTEGER NOT NULL,
    distance_m REAL,
    too_fast_count INTEGER NOT NULL,
    too_fast_s REAL NOT NULL,
    mean_speed_m_s REAL,
    left_s REAL NOT NULL,
    right_s REAL NOT NULL,
    steps TEXT NOT NULL,
    chart BLOB,
    PRIMARY KEY (device, session_id)
);
CREATE INDEX sessions_started ON sessions (device, started_unix_s);
"""

ROW_COLUMNS = ("session_id", "started_unix_s", "ended_unix_s", "end_reason", "active_s",
               "rolling_s", "hold_time_s", "holds", "strokes", "distance_m", "too_fast_count",
               "too_fast_s", "mean_speed_m_s", "left_s", "right_s", "doses", "has_chart")
"""The columns of :meth:`SessionLog.summaries` rows (times s, speeds m/s, distances m);
``doses`` is ``[[muscle, side, active_s], ...]``, one per step that counted."""


def _num(value: Any, default: float = 0.0) -> float:
    return float(value) if isinstance(value, int | float) and math.isfinite(value) and \
        not isinstance(value, bool) else default


def _opt(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) \
        and math.isfinite(value) else None


def _text(value: Any, limit: int = 120) -> str:
    return value[:limit] if isinstance(value, str) else ""


def _steps(routine: Any) -> list[dict[str, Any]]:
    """The per-step table of a coach's summary, checked field by field (it came off the
    broker)."""
    steps = routine.get("steps") if isinstance(routine, Mapping) else None
    out = []
    for st in steps if isinstance(steps, list) else []:
        if not isinstance(st, Mapping):
            continue
        holds = st.get("holds_s")
        out.append({
            "title": _text(st.get("title")), "muscle": _text(st.get("muscle"), 40),
            "side": _text(st.get("side"), 10), "target_s": _num(st.get("target_s")),
            "active_s": _num(st.get("active_s")), "rolling_s": _num(st.get("rolling_s")),
            "holding_s": _num(st.get("holding_s")), "strokes": int(_num(st.get("strokes"))),
            "holds": len(holds) if isinstance(holds, list) else 0,
            "too_fast_count": int(_num(st.get("too_fast_count"))),
            "too_fast_s": _num(st.get("too_fast_s")),
            "mean_speed_m_s": _opt(st.get("mean_speed_m_s")),
            "completed": bool(st.get("completed")), "skipped": bool(st.get("skipped"))})
        if len(out) >= 64:
            break
    return out


class SessionLog:
    """The sessions the display heard, in the SQLite file at ``path`` (None: in memory).
    Safe to use from several threads (one connection behind a lock)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = None if path is None else Path(path)
        target = ":memory:" if self.path is None else str(self.path)
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(target, check_same_thread=False)
        self._lock = threading.Lock()
        try:
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == 0:
                with self._db:
                    self._db.executescript(_SCHEMA)
                    self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            elif version != SCHEMA_VERSION:
                raise sqlite3.DatabaseError(f"{target}: display history schema {version}, "
                                            f"this program knows {SCHEMA_VERSION}")
        except sqlite3.Error:
            self._db.close()
            raise

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- writing ---------------------------------------------------------------------------
    def record_finished(self, device: str, session: Mapping[str, Any],
                        chart: Mapping[str, Any] | None = None) -> bool:
        """Store a finished session from its ``session`` payload (and its chart, if heard);
        False when the payload is not a finished session. Heard again (a retained message
        after a restart), the row is refreshed and a chart already kept stays."""
        sid = session.get("session_id")
        if session.get("state") != "finished" or not isinstance(sid, str) or not sid:
            return False
        started = _opt(session.get("started_unix_s"))
        if started is None:
            return False
        routine = session.get("routine") if isinstance(session.get("routine"), Mapping) \
            else {}
        steps = _steps(routine)
        sides = routine.get("sides_s") if isinstance(routine.get("sides_s"), Mapping) else {}
        rolling = sum(st["rolling_s"] for st in steps) if steps else \
            max(0.0, _num(session.get("active_s")) - _num(session.get("hold_time_s")))
        row = (device, sid[:100], started, _opt(session.get("ended_unix_s")),
               _text(session.get("end_reason"), 20), _text(routine.get("routine_title")),
               _num(session.get("active_s")), rolling, _num(session.get("hold_time_s")),
               int(_num(session.get("holds"))), int(_num(session.get("strokes"))),
               _opt(session.get("distance_m")), int(_num(session.get("too_fast_count"))),
               _num(session.get("too_fast_s")), _opt(session.get("mean_speed_m_s")),
               _num(sides.get("left")), _num(sides.get("right")), json.dumps(steps),
               None if chart is None else zlib.compress(json.dumps(chart).encode(), 6))
        with self._lock, self._db:
            self._db.execute(
                "INSERT INTO sessions VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT (device, session_id) DO UPDATE SET "
                "ended_unix_s=excluded.ended_unix_s, end_reason=excluded.end_reason, "
                "routine_title=excluded.routine_title, active_s=excluded.active_s, "
                "rolling_s=excluded.rolling_s, hold_time_s=excluded.hold_time_s, "
                "holds=excluded.holds, strokes=excluded.strokes, "
                "distance_m=excluded.distance_m, too_fast_count=excluded.too_fast_count, "
                "too_fast_s=excluded.too_fast_s, mean_speed_m_s=excluded.mean_speed_m_s, "
                "left_s=excluded.left_s, right_s=excluded.right_s, steps=excluded.steps, "
                "chart=coalesce(excluded.chart, sessions.chart)", row)
        return True

    # -- reading ---------------------------------------------------------------------------
    def devices(self) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute(
                "SELECT DISTINCT device FROM sessions ORDER BY device")]

    def summaries(self, device: str) -> list[list[Any]]:
        """One roller's sessions, oldest first, as rows of :data:`ROW_COLUMNS`."""
        with self._lock:
            cur = self._db.execute(
                "SELECT session_id, started_unix_s, ended_unix_s, end_reason, active_s, "
                "rolling_s, hold_time_s, holds, strokes, distance_m, too_fast_count, "
                "too_fast_s, mean_speed_m_s, left_s, right_s, steps, chart IS NOT NULL "
                "FROM sessions WHERE device = ? ORDER BY started_unix_s DESC LIMIT ?",
                (device, MAX_ROWS))
            rows = cur.fetchall()
        out = []
        for r in reversed(rows):
            doses = [[st["muscle"], st["side"], round(st["active_s"], 1)]
                     for st in json.loads(r[15]) if st["active_s"] > 0]
            out.append([*(round(v, 3) if isinstance(v, float) else v for v in r[:15]), doses,
                        bool(r[16])])
        return out

    def previous(self, device: str, session_id: str, limit: int = 5) -> list[dict[str, Any]]:
        """The sessions of ``device`` that started before ``session_id``, newest first: their
        ``rolling_s``, ``too_fast_s``, ``left_s``, ``right_s`` and ``started_unix_s``."""
        with self._lock:
            cur = self._db.execute(
                "SELECT started_unix_s, rolling_s, too_fast_s, left_s, right_s FROM sessions "
                "WHERE device = ? AND started_unix_s < (SELECT started_unix_s FROM sessions "
                "WHERE device = ? AND session_id = ?) ORDER BY started_unix_s DESC LIMIT ?",
                (device, device, session_id, limit))
            keys = ("started_unix_s", "rolling_s", "too_fast_s", "left_s", "right_s")
            return [dict(zip(keys, r, strict=True)) for r in cur]

    def session(self, device: str, session_id: str) -> dict[str, Any] | None:
        """One session with its steps and chart (None: not heard)."""
        with self._lock:
            r = self._db.execute(
                "SELECT session_id, started_unix_s, ended_unix_s, end_reason, routine_title, "
                "active_s, rolling_s, hold_time_s, holds, strokes, distance_m, "
                "too_fast_count, too_fast_s, mean_speed_m_s, left_s, right_s, steps, chart "
                "FROM sessions WHERE device = ? AND session_id = ?",
                (device, session_id)).fetchone()
        if r is None:
            return None
        keys = ("session_id", "started_unix_s", "ended_unix_s", "end_reason", "routine_title",
                "active_s", "rolling_s", "hold_time_s", "holds", "strokes", "distance_m",
                "too_fast_count", "too_fast_s", "mean_speed_m_s", "left_s", "right_s")
        out = dict(zip(keys, r[:16], strict=True))
        out["device"] = device
        out["steps"] = json.loads(r[16])
        out["chart"] = None if r[17] is None else json.loads(zlib.decompress(r[17]))
        return out


@dataclass
class _Recording:
    """What the display heard of one running session."""

    session_id: str
    t0: float
    """Display clock [Unix s] of the first message: the chart's 0."""
    speed: list[list[float]] = field(default_factory=list)
    strokes: list[list[float]] = field(default_factory=list)
    holds: list[list[float]] = field(default_factory=list)
    too_fast: list[list[float]] = field(default_factory=list)
    steps: list[list[Any]] = field(default_factory=list)
    """[start_s, end_s or None, title, side] per step span."""
    step_key: Any = None
    _bin: int = -1

    def chart(self, end_s: float) -> dict[str, Any]:
        steps = [[s, e if e is not None else end_s, title, side]
                 for s, e, title, side in self.steps]
        return {"t0_unix_s": round(self.t0, 3), "end_s": round(end_s, 2), "speed": self.speed,
                "strokes": self.strokes, "holds": self.holds, "too_fast": self.too_fast,
                "steps": steps}


class SessionRecorder:
    """Turns one broker's messages into :class:`SessionLog` rows with charts, for any number
    of rollers. Feed it the bridge's messages (:meth:`feed`); it is not thread-safe (one
    listener thread calls it)."""

    def __init__(self, log_: SessionLog) -> None:
        self.log = log_
        self._running: dict[str, _Recording] = {}
        self._offset: dict[str, float] = {}
        """Per device: display clock [Unix s] minus the roller's monotonic clock [s]."""
        self.stored = 0

    def feed(self, message: Mapping[str, Any]) -> None:
        if message.get("type") != "mqtt":
            return
        device = message.get("device")
        topic = message.get("topic")
        payload = message.get("payload")
        at = _num(message.get("received_at"), time.time())
        if not isinstance(device, str) or not isinstance(payload, Mapping):
            return
        if topic == "live":
            t = _opt(payload.get("t_s"))
            if t is not None:
                self._offset[device] = at - t
            rec = self._running.get(device)
            if rec is not None:
                self._speed(rec, at - rec.t0, _num(payload.get("speed_m_s")))
        elif topic == "coach":
            self._coach(device, payload, at)
        elif topic == "session":
            self._session(device, payload, at)
        elif isinstance(topic, str) and topic.startswith("event/"):
            self._event(device, topic[6:], payload)

    def _start(self, device: str, sid: str, at: float) -> _Recording:
        rec = self._running.get(device)
        if rec is None or rec.session_id != sid:
            rec = _Recording(sid, at)
            self._running[device] = rec
        return rec

    def _speed(self, rec: _Recording, t: float, speed_m_s: float) -> None:
        if t < 0 or len(rec.speed) >= MAX_TRACE_POINTS:
            return
        b = int(t / TRACE_STEP_S)
        cm_s = round(speed_m_s * 100, 2)
        if b == rec._bin and rec.speed:
            rec.speed[-1][1] = max(rec.speed[-1][1], cm_s)
        else:
            rec._bin = b
            rec.speed.append([round(b * TRACE_STEP_S, 2), cm_s])

    def _coach(self, device: str, c: Mapping[str, Any], at: float) -> None:
        sid = c.get("session_id")
        if c.get("state") not in ("active", "transition", "paused") or not isinstance(sid, str):
            return
        rec = self._start(device, sid, at)
        step = c.get("step") if isinstance(c.get("step"), Mapping) else None
        key = None if step is None else (c.get("step_index"), step.get("title"))
        if key == rec.step_key:
            return
        t = round(at - rec.t0, 2)
        if rec.steps and rec.steps[-1][1] is None:
            rec.steps[-1][1] = t
        if step is not None:
            rec.steps.append([t, None, _text(step.get("title")), _text(step.get("side"), 10)])
        rec.step_key = key

    def _event(self, device: str, kind: str, e: Mapping[str, Any]) -> None:
        rec = self._running.get(device)
        offset = self._offset.get(device)
        if rec is None or offset is None or e.get("session_id") != rec.session_id:
            return
        start = _opt(e.get("start_s"))
        end = _opt(e.get("end_s"))
        if start is None or end is None:
            return
        s, t = round(start + offset - rec.t0, 2), round(end + offset - rec.t0, 2)
        if len(rec.strokes) + len(rec.holds) + len(rec.too_fast) >= MAX_EVENTS:
            return
        if kind == "stroke":
            rec.strokes.append([s, t, round(_num(e.get("mean_speed_m_s")) * 100, 2)])
        elif kind == "hold":
            rec.holds.append([s, t])
        elif kind == "too_fast":
            rec.too_fast.append([s, t, round(_num(e.get("peak_speed_m_s")) * 100, 2)])

    def _session(self, device: str, s: Mapping[str, Any], at: float) -> None:
        sid = s.get("session_id")
        state = s.get("state")
        if state in ("running", "paused") and isinstance(sid, str):
            self._start(device, sid, at)
            return
        if state != "finished":
            return
        rec = self._running.get(device)
        chart = None
        if rec is not None and rec.session_id == sid:
            chart = rec.chart(round(at - rec.t0, 2))
            del self._running[device]
        try:
            if self.log.record_finished(device, s, chart):
                self.stored += 1
        except sqlite3.Error as exc:
            log.warning("display: could not keep the session %r of %s: %s", sid, device, exc)


class HistoryListener:
    """Feeds a :class:`SessionRecorder` from an :class:`~roller.display.bridge.MqttBridge` in
    its own thread, from :meth:`start` until the bridge closes."""

    def __init__(self, bridge: Any, recorder: SessionRecorder) -> None:
        self.bridge = bridge
        self.recorder = recorder
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        sub = self.bridge.subscribe()
        self._thread = threading.Thread(target=self._run, args=(sub,),
                                        name="roller-display-history", daemon=True)
        self._thread.start()

    def _run(self, sub: Any) -> None:
        try:
            while True:
                message = sub.queue.get()
                if message is None:
                    return
                try:
                    self.recorder.feed(message)
                except Exception:  # a bug must not stop the history
                    log.exception("display: a message could not be kept in the history")
        finally:
            self.bridge.unsubscribe(sub)

    def join(self, timeout_s: float) -> None:
        if self._thread is not None:
            self._thread.join(timeout_s)
