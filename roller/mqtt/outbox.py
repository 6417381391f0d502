"""An on-disk outbox: QoS 1 messages wait in SQLite until the broker has acknowledged them.

Why: events (strokes, holds, too-fast excursions) and session summaries must survive a broker
restart, a network drop and a restart of the service itself. The publisher writes each such
message here first (one committed transaction in the WAL), hands it to the MQTT client, and
deletes it only when the broker's PUBACK arrives. After a crash, whatever was not acknowledged
is sent again, in the order it was written.

Durability, sized for an SD card (docs/mqtt.md, "What a crash and a power cut can lose"):

- Every :meth:`add` is committed to the WAL before it returns (``synchronous=NORMAL``: no sync
  per commit). A crash of the process (SIGKILL, an exception, the OOM killer) loses nothing
  committed: the kernel holds the written pages and the next open reads them.
- A sync (``fdatasync`` of the WAL) makes them survive a power cut. It runs at most every
  ``sync_interval_s``, and only while the file holds an event committed since the last sync
  that the broker has not acknowledged yet: an event the broker has needs no sync. So a power
  cut loses at most the events of the last ``sync_interval_s`` that were not delivered yet.
- Acknowledgements are written in the next transaction, or after ``sync_interval_s`` at the
  latest: a crash re-sends at most that much (QoS 1 is at least once anyway).
- A run that ended without :meth:`close` in an earlier boot (a power cut, a kernel crash) may
  have lost numbers it gave out: the next open starts a new epoch (below), so a number the
  broker already has is never given to another event. A crash within one boot keeps the epoch.
- New files use 1 KiB pages and no AUTOINCREMENT table, and only changed counters are
  rewritten: a commit is a frame or two of 1 KiB, not three of 4 KiB.

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

- The file is watched: at each write transaction the outbox checks that its path still names
  the file it opened (device and inode). A file deleted or replaced under it (a cleanup script,
  a restored backup) is noticed at once: what the old file still held is kept in memory, a new
  file with a new epoch is opened at the path and takes it all, and :attr:`file_problem` says
  what happened (the service reports it on ``error`` and in ``health``).

The outbox is used from one thread (the service loop); a lock makes other uses safe too. Time
comes from the injected clock (``clock.monotonic()``, :class:`roller.base.clock.Clock`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from roller.base.clock import SystemClock
from roller.base.disk_faults import is_disk_fault
from roller.base.errors import RollerError

if TYPE_CHECKING:
    from roller.base.clock import Clock

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY,
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

PAGE_SIZE_BYTES = 1024
"""Page size of a new file: a message is a few hundred bytes, and each commit writes whole pages
to the WAL (SQLite's default of 4 KiB quadruples what an SD card is given to write)."""

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
"""Linux's id of the running boot: tells a crash of the process (same boot, the kernel kept every
committed page) from a power cut (another boot, the last unsynced commits may be gone)."""

LINK_UP_WINDOW_S = 5.0
"""Retained state is held back from the file (see :meth:`Outbox._hold`) only while the broker
acknowledged something this recently [s]."""

OFFLINE_STATE_INTERVAL_S = 5.0
"""Without a broker, retained state is written to the file at most this often [s] (its first
value at once): each write of a ~1 kB coach state costs a few pages."""

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
                 sync_interval_s: float = 1.0, clock: Clock | None = None) -> None:
        if max_messages < 1 or max_memory_messages < 1:
            raise ValueError(f"max_messages and max_memory_messages must be at least 1, got "
                             f"{max_messages} and {max_memory_messages}")
        if not 0.0 <= sync_interval_s <= 60.0:
            raise ValueError(f"sync_interval_s must be from 0 to 60 s, got {sync_interval_s}")
        self.path = Path(path)
        self.max_messages = max_messages
        self.max_memory_messages = max_memory_messages
        self.retry_interval_s = retry_interval_s
        self.sync_interval_s = sync_interval_s
        """The longest a committed, unacknowledged event waits for its sync [s]: what a power
        cut can lose (a crash of the process loses nothing committed)."""
        self._clock = clock or SystemClock()
        self._lock = threading.RLock()
        self._claimed_upto = 0
        self._memory: list[_Row] = []  # messages the disk has not taken yet, in id order
        self._acked_in_memory: set[int] = set()  # stored rows acknowledged, not yet deleted
        self._acks_due_at = math.inf  # when acknowledgements kept in memory go to the file
        self._write_due_at = math.inf  # when held retained state goes to the file
        self._acked_at = -math.inf  # the last acknowledgement: the broker is taking messages
        self._unsynced: set[int] = set()  # events committed since the last sync, not acked
        self._sync_due_at = math.inf
        self._wal_fd: int | None = None
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) of the open file
        self.file_problem: str | None = None
        """What happened to the file last (deleted or replaced while running), or None. The
        service reports it on ``error`` and in ``health``."""
        self.syncs = 0
        """How many times the WAL was synced (fdatasync) since the start."""
        self.file_replacements = 0
        """How often the file was found deleted or replaced and a new one opened."""
        self._disk_error: str | None = None
        self._retry_at = 0.0
        self._new_epoch_due = False
        self._db: sqlite3.Connection | None = None
        self._count = self._max_id = 0
        self._meta_cache: dict[str, Any] = {}
        self._meta_stored: dict[str, Any] = {}  # what the file holds: only changes are written
        try:
            self._db = self._connect()
            self._reload()
            try:
                self._begin_run()
            except OutboxError as exc:  # the file reads but refuses writes: deliver what it
                if not is_disk_fault(exc.__cause__ or exc):  # holds, keep new ones in memory
                    raise
                self._go_to_memory(exc)
        except (sqlite3.Error, OSError) as exc:
            cause = exc.__cause__ if isinstance(exc, OutboxError) else exc
            if not is_disk_fault(cause or exc):  # not a database, corrupt: a person must look
                self._close_db()
                raise OutboxError(f"cannot open the outbox {self.path}: {exc}") from exc
            # A full or read-only disk at start: run from memory, open the file later.
            self._close_db()
            self._count = self._max_id = 0
            self._meta_cache = {"epoch": new_epoch()}
            self._meta_stored = {}
            self._go_to_memory(OutboxError(f"cannot open the outbox {self.path}: {exc}"))
            self._new_epoch_due = False  # the epoch above is new already

    def _begin_run(self) -> None:
        """Start this run in the file: a new epoch for a new file, and for one whose last run
        ended without closing it in an earlier boot (a power cut may have taken numbers the
        broker already has); mark the file open in this boot."""
        boot = _boot_id()
        opened = self._meta_cache.get("open_boot")
        if not self._meta_cache.get("epoch"):  # a new file (or one from before epochs)
            self._set_meta("epoch", new_epoch())
        elif opened and opened != boot:
            log.warning("outbox %s: the last run did not close it and the machine has restarted "
                        "since (a power cut?): its last unsynced commits may be lost, so "
                        "numbering starts a new epoch", self.path)
            self._set_meta("epoch", new_epoch())
            self._set_meta("seq", 0)
        self._set_meta("open_boot", boot)
        with self._transaction():
            self._write_meta()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        new = not self.path.exists() or self.path.stat().st_size == 0
        db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        try:
            if new:  # only an empty file can take a page size (before WAL mode is set)
                db.execute(f"PRAGMA page_size={PAGE_SIZE_BYTES}")
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")  # commits unsynced: see the docstring
            db.execute("PRAGMA busy_timeout=5000")
            db.execute("PRAGMA journal_size_limit=1048576")  # the WAL shrinks back to 1 MiB
            db.executescript(SCHEMA)
            st = os.stat(self.path)
        except BaseException:
            db.close()
            raise
        self._identity = (st.st_dev, st.st_ino)
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
            self._housekeep()
            self._file_unchanged()  # each write checks that the file is still ours
            if self._disk_ok():
                try:
                    if supersede and not numbered:
                        linked = self._clock.monotonic() - self._acked_at <= LINK_UP_WINDOW_S
                        stale = self._stored_unsent(topic)
                        held = any(r.topic == topic for r in self._memory)
                        if linked or stale or held:  # offline, a newer value: now and then
                            self._forget(stale)
                            return self._hold(topic, payload, retain, self.sync_interval_s
                                              if linked else OFFLINE_STATE_INTERVAL_S)
                    return self._add_to_disk(topic, payload, retain, numbered, supersede)
                except OutboxError as exc:
                    self._go_to_memory(exc)
            return self._add_to_memory(topic, payload, retain, numbered, supersede)

    def _hold(self, topic: str, payload: dict[str, Any] | bytes, retain: bool,
              delay_s: float) -> Message:
        """Retained state (``supersede``): kept in memory and written to the file only if the
        broker has not acknowledged it within ``delay_s``. Only its newest value matters, and
        one the broker has needs no copy on disk: while the broker acknowledges (within
        :data:`LINK_UP_WINDOW_S`) the coach's and session's state (a write a second) never
        reach the card (``delay_s`` = ``sync_interval_s``). Without a broker the first value
        of a topic is written at once and newer ones every :data:`OFFLINE_STATE_INTERVAL_S`,
        replacing it: the state a restart would send lags by that much at most."""
        msg = self._add_to_memory(topic, payload, retain, False, True)
        self._write_due_at = min(self._write_due_at, self._clock.monotonic() + delay_s)
        return msg

    def _stored_unsent(self, topic: str) -> list[int]:
        """The file's copies of ``topic`` not handed out yet (a read, no write)."""
        if self._db is None:
            return []
        found = self._db.execute("SELECT id FROM outbox WHERE topic = ? AND id > ?",
                                 (topic, self._claimed_upto)).fetchall()
        return [i for (i,) in found if i not in self._acked_in_memory]

    def _forget(self, ids: list[int]) -> None:
        """Stored rows a newer value supersedes: no longer handed out nor counted, deleted
        with the next write (no write of their own; after a crash they are sent instead of
        the newer value the crash lost, which is the next best)."""
        self._acked_in_memory.update(ids)
        self._count -= len(ids)

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
            acked = self._delete_acked()  # the acknowledgements kept back ride along
            data, seq = self._stamp(payload, numbered, topic)
            if supersede:
                cur = self._db.execute("DELETE FROM outbox WHERE topic = ? AND id > ?",
                                       (topic, self._claimed_upto))
                self._count -= cur.rowcount
            while self._count >= self.max_messages:
                self._drop_oldest()
            self._max_id += 1  # ids are given here: no AUTOINCREMENT table to rewrite
            self._db.execute(
                "INSERT INTO outbox (id, topic, payload, retain, numbered) VALUES (?, ?, ?, ?, ?)",
                (self._max_id, topic, data, int(retain), int(numbered)))
            self._count += 1
            self._write_meta()
        self._acked_written(acked)
        if numbered:
            self._needs_sync(self._max_id)
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
        self._memory.append(_Row(self._max_id, topic, data, retain, numbered, supersede))
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
            self._housekeep()
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
            rows.sort(key=lambda m: m.id)  # held retained state sits between stored events
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
        """The broker has these: forget them (in memory at once; in the file with the next
        write, or after ``sync_interval_s`` at the latest: a crash before that sends them
        again, which QoS 1 allows)."""
        if not ids:
            return
        with self._lock:
            self._acked_at = self._clock.monotonic()
            in_memory = {r.id for r in self._memory}.intersection(ids)
            if in_memory:
                self._memory = [r for r in self._memory if r.id not in in_memory]
                self._count -= len(in_memory)
            stored = [i for i in ids if i not in in_memory and i not in self._acked_in_memory]
            self._unsynced.difference_update(ids)  # the broker has them: no sync needed
            if not self._unsynced:
                self._sync_due_at = math.inf
            if not stored or self._db is None:  # without a file every message is in memory
                return
            stored = self._still_stored(stored)  # one dropped meanwhile is not counted twice
            self._acked_in_memory.update(stored)
            self._count -= len(stored)
            if self._acks_due_at == math.inf:
                self._acks_due_at = self._clock.monotonic() + self.sync_interval_s
            self._housekeep()

    def _still_stored(self, ids: list[int]) -> list[int]:
        """Those of ``ids`` the file still holds (a read, by primary key)."""
        marks = ",".join("?" * len(ids))
        try:
            found = {i for (i,) in self._db.execute(
                f"SELECT id FROM outbox WHERE id IN ({marks})", ids).fetchall()}
        except sqlite3.Error:  # cannot even read: count them as the caller says
            return ids
        return [i for i in ids if i in found]

    def flush(self) -> None:
        """Write the retained state and acknowledgements kept back and sync the file now (for
        callers that want a durable point); the disk's refusal keeps things in memory."""
        with self._lock:
            if self._disk_error is None and self._db is not None and self._memory:
                self._write_held()
            if self._disk_error is None and self._db is not None:
                self._write_acks()
            if self._disk_error is None and self._db is not None:
                self._sync()

    # -- the cheap, timed work: acknowledgements, syncs, the file's identity ---------------
    def _housekeep(self) -> None:
        """Write acknowledgements and sync when due (every public call checks; both cost a
        clock read when nothing is due)."""
        if self._disk_error is not None or self._db is None or (
                self._write_due_at == self._acks_due_at == self._sync_due_at == math.inf):
            return  # nothing pending: not even a clock read (this runs several times a tick)
        now = self._clock.monotonic()
        if now >= self._write_due_at:
            self._write_held()
        if now >= self._acks_due_at and self._disk_error is None:
            self._write_acks()
        if now >= self._sync_due_at and self._disk_error is None:
            self._sync()

    def _write_held(self) -> None:
        """Retained state the broker has not taken within ``sync_interval_s`` goes to the file
        (with the acknowledgements kept back), in one transaction."""
        self._write_due_at = math.inf
        if not self._memory or not self._file_unchanged():
            return
        try:
            self._write_out_memory()
        except OutboxError as exc:
            self._go_to_memory(exc)

    def _write_acks(self) -> None:
        if not self._acked_in_memory:
            self._acks_due_at = math.inf
            return
        if not self._file_unchanged():
            return
        try:
            with self._transaction():
                acked = self._delete_acked()
                self._write_meta()
        except OutboxError as exc:
            self._go_to_memory(exc)
            return
        self._acked_written(acked)

    def _delete_acked(self) -> list[int]:
        """Inside a transaction: delete the rows acknowledged since the last write."""
        acked = sorted(self._acked_in_memory)
        if acked:
            self._db.executemany("DELETE FROM outbox WHERE id = ?", [(i,) for i in acked])
        return acked

    def _acked_written(self, acked: list[int]) -> None:
        self._acked_in_memory.difference_update(acked)
        if not self._acked_in_memory:
            self._acks_due_at = math.inf

    def _needs_sync(self, ident: int) -> None:
        """Event ``ident`` is committed but not synced: sync within ``sync_interval_s`` unless
        the broker acknowledges it first."""
        self._unsynced.add(ident)
        if self._sync_due_at == math.inf:
            self._sync_due_at = self._clock.monotonic() + self.sync_interval_s
            if self.sync_interval_s == 0:
                self._sync()

    def _sync(self) -> None:
        """fdatasync the WAL: every commit so far survives a power cut."""
        self._unsynced.clear()
        self._sync_due_at = math.inf
        if self._db is None or not self._file_unchanged():
            return
        try:
            if self._wal_fd is None:  # kept open: one open per file, not per sync
                self._wal_fd = os.open(f"{self.path}-wal", os.O_RDONLY | os.O_CLOEXEC)
            os.fdatasync(self._wal_fd)
            self.syncs += 1
        except OSError as exc:
            self._go_to_memory(OutboxError(f"outbox {self.path}: cannot sync the WAL: {exc}"))

    def _file_unchanged(self) -> bool:
        """True when the path still names the file we write (one stat). A file deleted or
        replaced under us is replaced by a new one holding what we still have; False then."""
        if self._db is None or self._identity is None:
            return True
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self._replace_lost_file("deleted")
            return False
        except OSError:  # cannot tell (a permission, an I/O error): the write will say
            return True
        if (st.st_dev, st.st_ino) == self._identity:
            return True
        self._replace_lost_file("replaced by another file")
        return False

    def _replace_lost_file(self, what: str) -> None:
        """The file we wrote is gone from its path: keep what it held (the old connection still
        reads it), open a new file there with a new epoch, and write it all into that."""
        try:
            found = self._db.execute("SELECT id, topic, payload, retain, numbered FROM outbox "
                                     "ORDER BY id").fetchall()
        except sqlite3.Error as exc:
            log.error("outbox %s: cannot read the lost file (%s)", self.path, exc)
            found = []
        kept = [_Row(i, t, bytes(p), bool(r), bool(n)) for i, t, p, r, n in found
                if i not in self._acked_in_memory]
        self._memory = sorted(kept + self._memory, key=lambda r: r.id)
        self._acked_in_memory = set()
        self._acks_due_at = math.inf
        self._unsynced.clear()
        self._sync_due_at = math.inf
        self._close_db()
        self._set_meta("epoch", new_epoch())
        self._set_meta("seq", 0)
        self._meta_stored = {}
        self._new_epoch_due = False
        self.file_replacements += 1
        self.file_problem = (f"the outbox file {self.path} was {what} while running: a new file "
                             f"with a new epoch ({self.epoch}) takes the {len(self._memory)} "
                             f"message(s) still waiting")
        log.error("%s", self.file_problem)
        try:
            self._open_late()
        except OutboxError as exc:
            self._go_to_memory(exc)
            self._new_epoch_due = False  # the epoch above is new already

    def _close_db(self) -> None:
        if self._wal_fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._wal_fd)
            self._wal_fd = None
        if self._db is not None:
            with contextlib.suppress(sqlite3.Error):
                self._db.close()
            self._db = None
        self._identity = None

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
            return sorted(rows + [r.message() for r in self._memory], key=lambda m: m.id)

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
            return len(self._memory) if self._disk_error is not None else 0

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
            self._housekeep()
            return self._disk_ok()

    def _disk_ok(self) -> bool:
        """True when the file takes writes. While in memory, retries (writing the memory out)
        once ``retry_interval_s`` has passed since the last refusal."""
        if self._disk_error is None:
            return True
        if self._clock.monotonic() < self._retry_at:
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
        self._retry_at = self._clock.monotonic() + self.retry_interval_s

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
            if db.execute("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'"
                          ).fetchone():  # a file from before ids were given here
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
        self._meta_stored = dict(meta)
        self._count, self._max_id = int(count), max(int(max_id), self._max_id)
        self._memory = []
        self._acked_in_memory = set()
        self._sync_due_at = self._clock.monotonic()  # what waited in memory: synced next

    def _write_out_memory(self) -> None:
        """One transaction: the acknowledgements kept in memory, the messages, the counters.
        Events among them (they waited in memory for a disk that refused) are synced next."""
        events = [r.id for r in self._memory if r.numbered]
        with self._transaction():
            self._delete_acked()
            for row in self._memory:  # retained state: the older unsent copies in the file go
                if row.supersede:
                    cur = self._db.execute(
                        "DELETE FROM outbox WHERE topic = ? AND id > ? AND id < ?",
                        (row.topic, self._claimed_upto, row.id))
                    self._count -= cur.rowcount
            self._db.executemany(
                "INSERT INTO outbox (id, topic, payload, retain, numbered) VALUES (?, ?, ?, ?, ?)",
                [(r.id, r.topic, r.payload, int(r.retain), int(r.numbered))
                 for r in self._memory])
            while self._count > self.max_messages:  # the file's bound, applied once back
                self._drop_oldest()
            self._write_meta()
        self._memory = []
        self._acked_in_memory = set()
        self._acks_due_at = math.inf
        if events:
            self._unsynced.update(events)
            self._sync_due_at = self._clock.monotonic()

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
        """Write out what is in memory if the disk allows (one last try), the acknowledgements
        kept back, mark the file closed (a clean end: the next run keeps the epoch), sync,
        close."""
        with self._lock:
            if self._memory and self._disk_error is None and self._db is not None:
                self._write_held()  # retained state held back: the file takes it now
            if self._memory or (self._acked_in_memory and self._disk_error is not None):
                self.retry_disk()
            if self._memory:
                log.warning("outbox %s: closing with %d message(s) the disk never took: they "
                            "are lost (%s)", self.path, len(self._memory), self._disk_error)
            if self._db is not None and self._disk_error is None and self._file_unchanged():
                try:
                    with self._transaction():
                        self._acked_written(self._delete_acked())
                        self._set_meta("open_boot", "")
                        self._set_meta("max_id", self._max_id)  # ids are not given twice
                        self._write_meta()
                except OutboxError as exc:
                    log.warning("outbox %s: could not mark it closed: %s", self.path, exc)
            self._close_db()  # SQLite checkpoints and syncs the last connection's WAL

    # -- helpers ------------------------------------------------------------------------------
    def _reload(self) -> None:
        """Counters from the file (at open, and after a failed transaction)."""
        self._count = self._db.execute("SELECT COUNT(*) FROM outbox").fetchone()[0]
        self._max_id = self._db.execute("SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]
        self._meta_cache = dict(self._db.execute("SELECT key, value FROM meta").fetchall())
        self._max_id = max(self._max_id, self._meta("max_id"))
        self._meta_stored = dict(self._meta_cache)

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
        """Inside a transaction: the counters that changed since the file last took them
        (:meth:`_transaction` records them as stored once it commits)."""
        changed = [(k, v) for k, v in self._meta_cache.items() if self._meta_stored.get(k) != v]
        if changed:
            self._db.executemany("INSERT INTO meta (key, value) VALUES (?, ?) "
                                 "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                                 changed)

    def _transaction(self) -> _Transaction:
        """A write transaction; on failure the counters return to what they were before it
        (the memory, not the file, is the truth while the disk refuses writes)."""
        snapshot = self._snapshot()
        return _Transaction(self._db, self.path, lambda: self._restore(snapshot),
                            self._committed)

    def _committed(self) -> None:
        self._meta_stored = dict(self._meta_cache)


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on error; SQLite errors become OutboxError."""

    def __init__(self, db: sqlite3.Connection, path: Path, on_rollback: Any,
                 on_commit: Any) -> None:
        self._db = db
        self._path = path
        self._on_rollback = on_rollback
        self._on_commit = on_commit

    def __enter__(self) -> None:
        try:
            self._db.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self._path}: {exc}") from exc

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error as err:
                self._rollback()
                raise OutboxError(f"outbox {self._path}: {err}") from err
            self._on_commit()
            return False
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
    """A message kept in memory (the disk refuses writes, or retained state held back)."""

    id: int
    topic: str
    payload: bytes
    retain: bool
    numbered: bool
    supersede: bool = False
    """When written to the file, older unsent copies of ``topic`` there go."""

    def message(self) -> Message:
        return Message(self.id, self.topic, self.payload, self.retain,
                       _seq_of(self.payload) if self.numbered else None)




def _boot_id() -> str:
    """This boot's id (Linux), or ``"unknown"``: then every unclosed file counts as a power
    cut's, the safe side."""
    try:
        return BOOT_ID_FILE.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


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
