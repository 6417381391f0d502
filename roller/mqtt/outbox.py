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
- Epoch: numbered payloads carry ``epoch`` beside ``seq``, a random id stored with the file.
  A new or lost outbox file starts a new epoch (``seq`` from 1), and so does a stretch where
  the disk refused writes (those numbers were never made durable). ``seq`` compares only within
  one epoch: a subscriber keys its duplicate check by ``(epoch, seq)`` and starts afresh when
  the epoch changes.
- Disk faults degrade, they do not stop: when SQLite refuses a write (disk full, read-only, I/O
  error) the outbox keeps new messages in memory (at most ``max_memory_messages``, the oldest
  unsent event dropped and counted beyond that) and records acknowledgements in memory, retries
  the disk every ``retry_interval_s``, and writes everything out in one transaction when the
  disk takes it again. ``disk_error`` says why it is in memory (None when it is not).

The outbox is used from one thread (the service loop); a lock makes other uses safe too.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roller.base.disk_faults import is_disk_fault
from roller.base.errors import RollerError

log = logging.getLogger(__name__)

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

    def __init__(self, path: str | Path, *, max_messages: int = 50_000,
                 max_memory_messages: int = 10_000, retry_interval_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_messages < 1 or max_memory_messages < 1:
            raise ValueError(f"max_messages and max_memory_messages must be at least 1, got "
                             f"{max_messages} and {max_memory_messages}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_memory_messages = max_memory_messages
        self.retry_interval_s = retry_interval_s
        self._clock = clock
        self._lock = threading.RLock()
        self._claimed_upto = 0
        self._memory: list[_Row] = []  # messages the disk has not taken yet, in id order
        self._acked_in_memory: set[int] = set()  # stored rows acknowledged, not yet deleted
        self._disk_error: str | None = None
        self._retry_at = 0.0
        self._new_epoch_due = False
        self._db: sqlite3.Connection | None = None
        self._count = self._max_id = 0
        self._meta_cache: dict[str, Any] = {}
        try:
            self._db = self._connect()
            self._reload()
            if not self._meta_cache.get("epoch"):  # a new file (or one from before epochs)
                with self._transaction():
                    self._set_meta("epoch", new_epoch())
                    self._write_meta()
        except (sqlite3.Error, OSError) as exc:
            if not is_disk_fault(exc):  # not a database, corrupt: a person must look
                raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
            # A full or read-only disk at start: run from memory, open the file later.
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()
            self._db = None
            self._count = self._max_id = 0
            self._meta_cache = {"epoch": new_epoch()}
            self._go_to_memory(OutboxError(f"cannot open the outbox {self.path}: {exc}"))
            self._new_epoch_due = False  # the epoch above is new already

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA busy_timeout=5000")
            db.executescript(SCHEMA)
        except BaseException:
            db.close()
            raise
        return db

    # -- writing -------------------------------------------------------------------------
    def add(self, topic: str, payload: dict[str, Any] | bytes, *, retain: bool = False,
            numbered: bool = False, supersede: bool = False) -> Message:
        """Store one message (durably, or in memory while the disk refuses) and return it.

        ``payload``: a JSON-ready dict (serialised here) or raw bytes. ``numbered``: stamp the
        dict with ``epoch`` and ``seq``, the next per-device sequence number (persisted, never
        reused within an epoch). ``supersede``: drop older copies of ``topic`` that have not
        been handed out yet.
        """
        if numbered and not isinstance(payload, dict):
            raise TypeError("a numbered message needs a dict payload to carry its seq")
        with self._lock:
            if self._disk_ok():
                try:
                    return self._add_to_disk(topic, payload, retain, numbered, supersede)
                except OutboxError as exc:
                    self._go_to_memory(exc)
            return self._add_to_memory(topic, payload, retain, numbered, supersede)

    def _stamp(self, payload: dict[str, Any] | bytes, numbered: bool,
               topic: str) -> tuple[bytes, int | None]:
        seq = None
        if numbered:
            assert isinstance(payload, dict)
            seq = self._meta("seq") + 1
            self._set_meta("seq", seq)
            payload = {"epoch": self.epoch, "seq": seq, **payload}
        data = payload if isinstance(payload, bytes) else _to_json(payload)
        if len(data) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"payload for {topic} is {len(data)} bytes, more than "
                             f"{MAX_PAYLOAD_BYTES}")
        return data, seq

    def _add_to_disk(self, topic: str, payload: dict[str, Any] | bytes, retain: bool,
                     numbered: bool, supersede: bool) -> Message:
        with self._transaction():
            data, seq = self._stamp(payload, numbered, topic)
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
            self._write_meta()
            return Message(self._max_id, topic, data, retain, seq)

    def _add_to_memory(self, topic: str, payload: dict[str, Any] | bytes, retain: bool,
                       numbered: bool, supersede: bool) -> Message:
        snapshot = self._snapshot()
        try:
            if numbered and self._new_epoch_due:
                # These numbers may never reach the file: if the process ends before the disk
                # is back, the file's numbering resumes from an older seq. A fresh epoch keeps
                # the two apart for subscribers.
                self._set_meta("epoch", new_epoch())
                self._new_epoch_due = False
            data, seq = self._stamp(payload, numbered, topic)
        except BaseException:
            self._restore(snapshot)
            raise
        if supersede:
            kept = [r for r in self._memory if not (r.topic == topic and r.id > self._claimed_upto)]
            self._count -= len(self._memory) - len(kept)
            self._memory = kept
        while len(self._memory) >= self.max_memory_messages:
            self._drop_oldest_in_memory()
        self._max_id += 1
        self._memory.append(_Row(self._max_id, topic, data, retain, numbered))
        self._count += 1
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
        self._count_drop(data, numbered)

    def _drop_oldest_in_memory(self) -> None:
        waiting = [r for r in self._memory if r.id > self._claimed_upto]
        victim = next((r for r in waiting if r.numbered), None) or \
            (waiting[0] if waiting else self._memory[0])
        self._memory.remove(victim)
        self._count -= 1
        self._count_drop(victim.payload, victim.numbered)

    def _count_drop(self, data: bytes, numbered: bool | int) -> None:
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
            self._disk_ok()  # a due retry writes the memory out first
            if self._max_id <= self._claimed_upto or limit <= 0:  # nothing new: no query
                return []
            rows: list[Message] = []
            try:
                if self._db is None:  # the file could not be opened yet
                    raise sqlite3.OperationalError("the outbox file is not open")
                found = self._db.execute(
                    "SELECT id, topic, payload, retain, numbered FROM outbox WHERE id > ? "
                    "ORDER BY id LIMIT ?",
                    (self._claimed_upto, limit + len(self._acked_in_memory))).fetchall()
            except sqlite3.Error as exc:  # the file cannot even be read: memory only
                self._go_to_memory(OutboxError(f"outbox {self.path}: {exc}"))
                found = []
            rows = [Message(i, t, p, bool(r), _seq_of(p) if n else None)
                    for i, t, p, r, n in found if i not in self._acked_in_memory]
            rows.extend(r.message() for r in self._memory if r.id > self._claimed_upto)
            rows = rows[:limit]
            if rows:
                self._claimed_upto = rows[-1].id
            return rows

    def unclaim_from(self, ident: int) -> None:
        """Message ``ident`` and those after it were not taken by the client after all (it
        refused them): hand them out again on the next :meth:`claim`."""
        with self._lock:
            self._claimed_upto = min(self._claimed_upto, ident - 1)

    def ack(self, ids: list[int] | tuple[int, ...]) -> None:
        """The broker has these: forget them (in memory at once, on disk when it allows)."""
        if not ids:
            return
        with self._lock:
            in_memory = {r.id for r in self._memory}.intersection(ids)
            if in_memory:
                self._memory = [r for r in self._memory if r.id not in in_memory]
                self._count -= len(in_memory)
            stored = [i for i in ids if i not in in_memory and i not in self._acked_in_memory]
            if not stored or self._db is None:  # without a file every message is in memory
                return
            if self._disk_ok():
                try:
                    with self._transaction():
                        cur = self._db.executemany("DELETE FROM outbox WHERE id = ?",
                                                   [(i,) for i in stored])
                        self._count -= max(0, cur.rowcount)
                    return
                except OutboxError as exc:
                    self._go_to_memory(exc)
            self._acked_in_memory.update(stored)
            self._count -= len(stored)

    def peek_all(self) -> list[Message]:
        """Every stored message in order (for tests and `roller` diagnostics)."""
        with self._lock:
            try:
                found = [] if self._db is None else self._db.execute(
                    "SELECT id, topic, payload, retain, numbered FROM outbox ORDER BY id"
                ).fetchall()
            except sqlite3.Error:
                found = []
            rows = [Message(i, t, p, bool(r), _seq_of(p) if n else None)
                    for i, t, p, r, n in found if i not in self._acked_in_memory]
            return rows + [r.message() for r in self._memory]

    # -- disk faults ----------------------------------------------------------------------------
    @property
    def disk_error(self) -> str | None:
        """Why messages are being kept in memory (the disk's last refusal), or None when the
        file takes writes. The service reports it on ``error`` and in ``health``."""
        with self._lock:
            return self._disk_error

    @property
    def in_memory(self) -> int:
        """Messages held in memory because the disk refused them."""
        with self._lock:
            return len(self._memory)

    @property
    def epoch(self) -> str:
        """The numbering epoch: ``seq`` compares only between messages of one epoch."""
        with self._lock:
            return str(self._meta_cache.get("epoch") or "")

    def retry_disk(self, *, force: bool = True) -> bool:
        """Try to write what is in memory to the file: now (``force``), or only if
        ``retry_interval_s`` has passed since the last refusal (cheap enough to call from every
        loop of the service). True when the file takes writes and nothing is left in memory."""
        with self._lock:
            if force:
                self._retry_at = -math.inf
            return self._disk_ok()

    def _disk_ok(self) -> bool:
        """True when the file takes writes. While in memory, retries (writing the memory out)
        once ``retry_interval_s`` has passed since the last refusal."""
        if self._disk_error is None:
            return True
        if self._clock() < self._retry_at:
            return False
        held = len(self._memory)
        try:
            if self._db is None:
                self._open_late()
            else:
                self._write_out_memory()
        except OutboxError as exc:
            self._go_to_memory(exc)
            return False
        log.warning("outbox %s: the disk takes writes again; the %d message(s) kept in memory "
                    "are stored", self.path, held)
        self._disk_error = None
        return True

    def _go_to_memory(self, exc: OutboxError) -> None:
        if self._disk_error is None:
            log.warning("outbox %s: the disk refused a write (%s); keeping messages in memory "
                        "(at most %d) and retrying every %g s", self.path, exc.__cause__ or exc,
                        self.max_memory_messages, self.retry_interval_s)
            self._new_epoch_due = True
        self._disk_error = str(exc.__cause__ or exc)
        self._retry_at = self._clock() + self.retry_interval_s

    def _open_late(self) -> None:
        """The file could not be opened at start and can now: what it holds (an earlier run's
        undelivered messages) goes after what this run queued in memory, renumbered so ids
        stay unique and claims stay valid; the counters merge, the memory's epoch wins."""
        try:
            db = self._connect()
        except (sqlite3.Error, OSError) as exc:
            raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
        try:
            file_meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            offset = self._max_id
            db.execute("BEGIN IMMEDIATE")
            db.execute("UPDATE outbox SET id = -id")
            db.execute("UPDATE outbox SET id = ? - id", (offset,))
            db.executemany(
                "INSERT INTO outbox (id, topic, payload, retain, numbered) VALUES (?, ?, ?, ?, ?)",
                [(r.id, r.topic, r.payload, int(r.retain), int(r.numbered))
                 for r in self._memory])
            meta = dict(self._meta_cache)
            meta["dropped"] = int(file_meta.get("dropped", 0)) + int(meta.get("dropped", 0))
            if not meta.get("last_dropped_seq"):
                meta["last_dropped_seq"] = int(file_meta.get("last_dropped_seq", 0))
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO "
                           "UPDATE SET value = excluded.value", list(meta.items()))
            count, max_id = db.execute("SELECT COUNT(*), COALESCE(MAX(id), 0) FROM outbox"
                                       ).fetchone()
            db.execute("UPDATE sqlite_sequence SET seq = MAX(seq, ?) WHERE name = 'outbox'",
                       (max_id,))
            db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            db.close()
            raise OutboxError(f"outbox {self.path}: {exc}") from exc
        self._db = db
        self._meta_cache = meta
        self._count, self._max_id = int(count), max(int(max_id), self._max_id)
        self._memory = []
        self._acked_in_memory = set()

    def _write_out_memory(self) -> None:
        """One transaction: the acknowledgements kept in memory, the messages, the counters."""
        with self._transaction():
            self._db.executemany("DELETE FROM outbox WHERE id = ?",
                                 [(i,) for i in sorted(self._acked_in_memory)])
            self._db.executemany(
                "INSERT INTO outbox (id, topic, payload, retain, numbered) VALUES (?, ?, ?, ?, ?)",
                [(r.id, r.topic, r.payload, int(r.retain), int(r.numbered))
                 for r in self._memory])
            while self._count > self.max_messages:  # the file's bound, applied once back
                self._drop_oldest()
            self._write_meta()
        self._memory = []
        self._acked_in_memory = set()

    # -- counters ---------------------------------------------------------------------------
    def __len__(self) -> int:
        with self._lock:
            return self._count

    @property
    def unclaimed(self) -> int:
        """Messages waiting that have not been handed to the client yet."""
        with self._lock:
            try:
                stored = [] if self._db is None else self._db.execute(
                    "SELECT id FROM outbox WHERE id > ?", (self._claimed_upto,)).fetchall()
            except sqlite3.Error:
                stored = []
            return sum(1 for (i,) in stored if i not in self._acked_in_memory) + sum(
                1 for r in self._memory if r.id > self._claimed_upto)

    @property
    def dropped(self) -> int:
        """How many messages were dropped because the outbox (or, while the disk refused
        writes, the memory) was full: ever, persisted."""
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
        """Write out what is in memory if the disk allows (one last try), then close."""
        with self._lock:
            if self._memory or self._acked_in_memory:
                self.retry_disk()
            if self._memory:
                log.warning("outbox %s: closing with %d message(s) the disk never took: they "
                            "are lost (%s)", self.path, len(self._memory), self._disk_error)
            if self._db is not None:
                with contextlib.suppress(sqlite3.Error):
                    self._db.close()

    # -- helpers ------------------------------------------------------------------------------
    def _reload(self) -> None:
        """Counters from the file (at open, and after a failed transaction)."""
        self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._max_id = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]
        self._meta_cache = dict(self._db.execute("SELECT key, value FROM meta").fetchall())

    def _meta(self, key: str) -> int:
        return int(self._meta_cache.get(key, 0))

    def _snapshot(self) -> tuple[int, int, dict[str, Any]]:
        return self._count, self._max_id, dict(self._meta_cache)

    def _restore(self, snapshot: tuple[int, int, dict[str, Any]]) -> None:
        self._count, self._max_id, meta = snapshot
        self._meta_cache = dict(meta)

    def _set_meta(self, key: str, value: int | str) -> None:
        """Change a counter in memory; :meth:`_write_meta` stores the counters in the file."""
        self._meta_cache[key] = value

    def _write_meta(self) -> None:
        self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                             "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                             list(self._meta_cache.items()))

    def _transaction(self) -> _Transaction:
        """A write transaction; on failure the counters return to what they were before it
        (the memory, not the file, is the truth while the disk refuses writes)."""
        snapshot = self._snapshot()
        return _Transaction(self._db, self.path, lambda: self._restore(snapshot))


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


@dataclass(frozen=True)
class _Row:
    """A message kept in memory while the disk refuses writes."""

    id: int
    topic: str
    payload: bytes
    retain: bool
    numbered: bool

    def message(self) -> Message:
        return Message(self.id, self.topic, self.payload, self.retain,
                       _seq_of(self.payload) if self.numbered else None)




def new_epoch() -> str:
    """A fresh numbering epoch: 12 random hex digits (no clock: a Pi without an RTC may boot
    in 1970)."""
    return secrets.token_hex(6)


def _to_json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _seq_of(data: bytes) -> int | None:
    try:
        value = json.loads(data).get("seq")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None
