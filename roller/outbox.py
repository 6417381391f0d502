"""An on-disk outbox: QoS 1 messages wait in SQLite until the broker has acknowledged them.

Why: events (strokes, holds, too-fast excursions) and session summaries must survive a broker
restart, a network drop and a restart of the service itself. The publisher writes each such
message here first (one committed transaction, WAL journal, ``synchronous=FULL``), hands it to
the MQTT client, and deletes it only when the broker's PUBACK arrives. After a crash, whatever
was not acknowledged is sent again, in the order it was written.

Policy (documented in docs/mqtt.md):

- Order: messages are delivered in the order they were added (``id`` order). QoS 1 means *at
  least once*: after a reconnect or restart a message may arrive twice; subscribers drop
  duplicates by ``seq``.
- Numbering: ``add(numbered=True)`` stamps the payload with the next per-device ``seq`` in the
  same transaction as the insert, so sequence numbers are gap-free unless the outbox drops.
- Bound: at most ``max_messages`` rows. When full, the *oldest* not-yet-sent event is dropped
  (the newest data matters most to a coach) and counted in ``dropped`` (persisted, with the
  last dropped ``seq``); the publisher reports drops on the ``error`` topic and in ``health``.
- Retained state (``session``, ``coach``): only the newest value of a topic matters, so
  ``add(supersede=True)`` removes older copies of the same topic not yet handed to the client.
- ``live`` messages (QoS 0) never come here.

The outbox is used from one thread (the service loop); a lock makes other uses safe too.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roller.errors import RollerError

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    numbered INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""

MAX_PAYLOAD_BYTES = 256 * 1024
"""Largest payload accepted (a summary is a few hundred bytes; this catches a runaway caller)."""


class OutboxError(RollerError, OSError):
    """The outbox file cannot be opened or written (disk full, wrong permissions, corrupt)."""


@dataclass(frozen=True)
class Message:
    """One stored message. ``id`` orders delivery; ``seq`` is the payload's number (or None)."""

    id: int
    topic: str
    payload: bytes
    retain: bool
    seq: int | None = None


class Outbox:
    """SQLite-backed FIFO of messages awaiting a broker acknowledgement.

    ``path``: the database file (created with its directory). ``max_messages``: the bound.
    """

    def __init__(self, path: str | Path, *, max_messages: int = 50_000) -> None:
        if max_messages < 1:
            raise ValueError(f"max_messages must be at least 1, got {max_messages}")
        self.path = Path(path)
        self.max_messages = max_messages
        self._lock = threading.RLock()
        self._claimed_upto = 0
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._db.executescript(SCHEMA)
            self._reload()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc

    # -- writing -------------------------------------------------------------------------
    def add(self, topic: str, payload: dict[str, Any] | bytes, *, retain: bool = False,
            numbered: bool = False, supersede: bool = False) -> Message:
        """Store one message durably and return it.

        ``payload``: a JSON-ready dict (serialised here) or raw bytes. ``numbered``: stamp the
        dict with ``seq``, the next per-device sequence number (persisted, never reused).
        ``supersede``: drop older copies of ``topic`` that have not been handed out yet.
        """
        if numbered and not isinstance(payload, dict):
            raise TypeError("a numbered message needs a dict payload to carry its seq")
        with self._lock, self._transaction():
            seq = None
            if numbered:
                seq = self._meta("seq") + 1
                self._set_meta("seq", seq)
                payload = {"seq": seq, **payload}
            data = payload if isinstance(payload, bytes) else _to_json(payload)
            if len(data) > MAX_PAYLOAD_BYTES:
                raise ValueError(f"payload for {topic} is {len(data)} bytes, more than "
                                 f"{MAX_PAYLOAD_BYTES}")
            if supersede:
                cur = self._db.execute("DELETE FROM outbox WHERE topic = ? AND id > ?",
                                       (topic, self._claimed_upto))
                self._count -= cur.rowcount
            while self._count >= self.max_messages:
                self._drop_oldest()
            cur = self._db.execute(
                "INSERT INTO outbox (topic, payload, retain, numbered) VALUES (?, ?, ?, ?)",
                (topic, data, int(retain), int(numbered)))
            self._count += 1
            self._max_id = int(cur.lastrowid or 0)
            return Message(self._max_id, topic, data, retain, seq)

    def _drop_oldest(self) -> None:
        row = self._db.execute(
            "SELECT id, payload, numbered FROM outbox WHERE id > ? ORDER BY numbered DESC, id "
            "LIMIT 1", (self._claimed_upto,)).fetchone()
        if row is None:  # everything is in flight: drop the oldest of those instead
            row = self._db.execute(
                "SELECT id, payload, numbered FROM outbox ORDER BY id LIMIT 1").fetchone()
        ident, data, numbered = row
        self._db.execute("DELETE FROM outbox WHERE id = ?", (ident,))
        self._count -= 1
        self._set_meta("dropped", self._meta("dropped") + 1)
        if numbered:
            seq = _seq_of(data)
            if seq is not None:
                self._set_meta("last_dropped_seq", seq)

    # -- reading and acknowledging ---------------------------------------------------------
    def claim(self, limit: int) -> list[Message]:
        """The next ``limit`` messages not handed out yet in this process, in order; they count
        as handed out from now on (until the process restarts or :meth:`unclaim_from`)."""
        with self._lock:
            if self._max_id <= self._claimed_upto:  # nothing new: skip the query
                return []
            rows = self._db.execute(
                "SELECT id, topic, payload, retain, numbered FROM outbox WHERE id > ? "
                "ORDER BY id LIMIT ?", (self._claimed_upto, max(0, limit))).fetchall()
            if rows:
                self._claimed_upto = rows[-1][0]
            return [Message(i, t, p, bool(r), _seq_of(p) if n else None)
                    for i, t, p, r, n in rows]

    def unclaim_from(self, ident: int) -> None:
        """Message ``ident`` and those after it were not taken by the client after all (it
        refused them): hand them out again on the next :meth:`claim`."""
        with self._lock:
            self._claimed_upto = min(self._claimed_upto, ident - 1)

    def ack(self, ids: list[int] | tuple[int, ...]) -> None:
        """The broker has these: forget them."""
        if not ids:
            return
        with self._lock, self._transaction():
            cur = self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in ids])
            self._count -= max(0, cur.rowcount)

    def peek_all(self) -> list[Message]:
        """Every stored message in order (for tests and `roller` diagnostics)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, topic, payload, retain, numbered FROM outbox ORDER BY id").fetchall()
        return [Message(i, t, p, bool(r), _seq_of(p) if n else None) for i, t, p, r, n in rows]

    # -- counters ---------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return self._count

    @property
    def unclaimed(self) -> int:
        """Messages waiting that have not been handed to the client yet."""
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM outbox WHERE id > ?",
                                    (self._claimed_upto,)).fetchone()[0]

    @property
    def dropped(self) -> int:
        """How many messages were dropped because the outbox was full (ever, persisted)."""
        with self._lock:
            return self._meta("dropped")

    @property
    def last_dropped_seq(self) -> int:
        with self._lock:
            return self._meta("last_dropped_seq")

    @property
    def last_seq(self) -> int:
        """The last ``seq`` given out (0 before the first numbered message)."""
        with self._lock:
            return self._meta("seq")

    def close(self) -> None:
        with self._lock, contextlib.suppress(sqlite3.Error):
            self._db.close()

    # -- helpers ------------------------------------------------------------------------------
    def _reload(self) -> None:
        """Counters from the file (at open, and after a failed transaction)."""
        self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._max_id = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]
        self._meta_cache = dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _meta(self, key: str) -> int:
        return int(self._meta_cache.get(key, 0))

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute("INSERT INTO meta (key, value) VALUES (?, ?) "
                         "ON CONFLICT(key) DO UPDATE SET value = excluded.value", (key, value))
        self._meta_cache[key] = value

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path, self._reload)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error; SQLite errors become OutboxError."""

    def __init__(self, db: sqlite3.Connection, path: Path, on_rollback: Any) -> None:
        self._db = db
        self._path = path
        self._on_rollback = on_rollback

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: {exc}") from exc

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return False
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self._path}: {err}") from err
        self._rollback()
        if isinstance(exc, sqlite3.Error):
            raise OutboxError(f"outbox {self._path}: {exc}") from exc
        return False

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")
            self._on_rollback()


def _to_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _seq_of(data: bytes) -> int | None:
    try:
        value = json.loads(data).get("seq")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
