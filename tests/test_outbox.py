"""The SQLite outbox on real files: order, numbering, acknowledgement, the bound, persistence."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from small_disk import small_disk

from firmware_bridge.clock import ManualClock
from roller.mqtt.outbox import Outbox, OutboxError


def test_messages_come_out_in_order_and_stay_until_acknowledged(tmp_path):
    box = Outbox(tmp_path / "o.db")
    for i in range(5):
        box.add("t/e", {"i": i}, numbered=True)
    first = box.claim(3)
    assert [json.loads(m.payload)["i"] for m in first] == [0, 1, 2]
    assert [m.seq for m in first] == [1, 2, 3]
    rest = box.claim(10)
    assert [m.seq for m in rest] == [4, 5]
    assert box.claim(10) == []  # everything handed out
    box.ack([first[0].id, first[1].id])
    assert [m.seq for m in box.peek_all()] == [3, 4, 5]
    assert len(box) == 3


def test_unacknowledged_messages_and_seq_survive_a_restart(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path)
    msgs = [box.add("t/e", {"i": i}, numbered=True) for i in range(4)]
    box.claim(4)
    box.ack([msgs[0].id])
    box.close()
    again = Outbox(path)
    assert [m.seq for m in again.claim(10)] == [2, 3, 4]  # claims are per process
    assert again.add("t/e", {"i": 9}, numbered=True).seq == 5  # numbering continues
    assert again.last_seq == 5


def test_seq_is_in_the_stored_payload(tmp_path):
    box = Outbox(tmp_path / "o.db")
    m = box.add("t/e", {"distance_m": 0.1}, numbered=True)
    assert json.loads(m.payload) == {"epoch": box.epoch, "seq": 1, "distance_m": 0.1}


def test_full_outbox_drops_the_oldest_unsent_event_and_counts_it(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=3)
    box.add("t/session", b"s", retain=True)
    for i in range(4):
        box.add("t/e", {"i": i}, numbered=True)
    seqs = [m.seq for m in box.peek_all() if m.seq is not None]
    assert seqs == [3, 4]  # seq 1 and 2 were dropped, the retained summary kept
    assert next(m.topic for m in box.peek_all()) == "t/session"
    assert box.dropped == 2
    assert box.last_dropped_seq == 2
    assert len(box) == 3


def test_dropped_counter_is_persisted(tmp_path):
    box = Outbox(tmp_path / "o.db", max_messages=1)
    box.add("t/e", {"i": 0}, numbered=True)
    box.add("t/e", {"i": 1}, numbered=True)
    box.close()
    assert Outbox(tmp_path / "o.db", max_messages=1).dropped == 1


def test_supersede_keeps_only_the_newest_unsent_retained_value(tmp_path):
    box = Outbox(tmp_path / "o.db")
    box.add("t/session", b"1", retain=True, supersede=True)
    handed = box.claim(1)  # already with the client: must not be deleted under it
    box.add("t/session", b"2", retain=True, supersede=True)
    box.add("t/e", {"i": 0}, numbered=True)
    box.add("t/session", b"3", retain=True, supersede=True)
    assert [m.payload for m in box.peek_all() if m.topic == "t/session"] == [b"1", b"3"]
    assert handed[0].retain


def test_unclaim_hands_a_refused_message_out_again(tmp_path):
    box = Outbox(tmp_path / "o.db")
    for i in range(3):
        box.add("t/e", {"i": i}, numbered=True)
    got = box.claim(3)
    box.unclaim_from(got[1].id)
    assert [m.seq for m in box.claim(3)] == [2, 3]


def test_wal_journal_is_used(tmp_path):
    Outbox(tmp_path / "o.db").add("t", b"x")
    mode = sqlite3.connect(tmp_path / "o.db").execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_unwritable_location_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(OutboxError, match="cannot open the outbox"):
        Outbox(blocker / "o.db")


def test_numbered_message_needs_a_dict(tmp_path):
    with pytest.raises(TypeError):
        Outbox(tmp_path / "o.db").add("t", b"raw", numbered=True)


def test_nan_payload_is_rejected_rather_than_stored_as_invalid_json(tmp_path):
    with pytest.raises(ValueError):
        Outbox(tmp_path / "o.db").add("t", {"x": float("nan")})


def test_a_failed_add_changes_nothing(tmp_path):
    box = Outbox(tmp_path / "o.db")
    with pytest.raises(ValueError, match="bytes"):
        box.add("t/e", {"blob": "x" * 300_000}, numbered=True)  # too big: rolled back
    assert len(box) == 0 and box.last_seq == 0
    assert box.add("t/e", {"i": 0}, numbered=True).seq == 1


ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 3)),
    st.tuples(st.just("claim"), st.integers(0, 4)),
    st.tuples(st.just("ack"), st.integers(0, 4)),
    st.tuples(st.just("restart"), st.just(0)),
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=ops, bound=st.integers(2, 6))
def test_any_interleaving_keeps_order_and_loses_only_counted_drops(tmp_path_factory, ops, bound):
    """Model check: after any mix of adds, claims, acks and restarts, the outbox holds exactly
    the unacknowledged, undropped messages, in seq order; drops are the oldest unclaimed ones
    and are counted."""
    path = tmp_path_factory.mktemp("box") / "o.db"
    box = Outbox(path, max_messages=bound)
    waiting: list[int] = []  # seqs in the outbox, in order (the model)
    claimed: list[tuple[int, int]] = []  # (outbox id, seq) handed out, not yet acked
    dropped = 0
    next_seq = 1
    for op, n in ops:
        if op == "add":
            for _ in range(n):
                if len(waiting) >= bound:
                    unclaimed = [s for s in waiting if s not in {c[1] for c in claimed}]
                    victim = unclaimed[0] if unclaimed else waiting[0]
                    waiting.remove(victim)
                    claimed = [c for c in claimed if c[1] != victim]
                    dropped += 1
                assert box.add("t/e", {"n": next_seq}, numbered=True).seq == next_seq
                waiting.append(next_seq)
                next_seq += 1
        elif op == "claim":
            claimed += [(m.id, m.seq) for m in box.claim(n)]
        elif op == "ack":
            done, claimed = claimed[:n], claimed[n:]
            box.ack([i for i, _ in done])
            for _, s in done:
                waiting.remove(s)
        else:
            box.close()
            box = Outbox(path, max_messages=bound)
            claimed = []
        assert [m.seq for m in box.peek_all()] == waiting
        assert box.dropped == dropped and len(box) == len(waiting)
    box.close()


# -- disk faults (issue 12): degrade, do not stop ----------------------------------------------
def _seqs(box: Outbox) -> list[int | None]:
    return [m.seq for m in box.peek_all()]


def test_a_full_disk_keeps_events_in_memory_and_stores_them_when_space_returns(tmp_path):
    with small_disk(tmp_path) as disk:
        box = Outbox(disk.path / "o.db", retry_interval_s=0.0)
        for i in range(3):
            box.add("t/e", {"i": i}, numbered=True)
        epoch_before = box.epoch
        disk.fill()
        for i in range(3, 50):  # the disk refuses: kept in memory, nothing raised
            box.add("t/e", {"i": i, "pad": "x" * 200}, numbered=True)
        assert box.disk_error is not None and "full" in box.disk_error
        assert box.in_memory > 0 and len(box) == 50
        assert box.epoch != epoch_before  # those numbers are not durable: a new epoch
        assert _seqs(box) == list(range(1, 51))
        sent = box.claim(10)  # delivery goes on from memory and disk alike
        assert [m.seq for m in sent] == list(range(1, 11))
        box.ack([m.id for m in sent])  # acknowledgements too
        assert len(box) == 40
        disk.free()
        box.add("t/e", {"i": 50}, numbered=True)  # the next write finds room again
        assert box.disk_error is None and box.in_memory == 0
        box.close()
        again = Outbox(disk.path / "o.db")
        assert _seqs(again) == list(range(11, 52))
        assert again.epoch == box.epoch and again.last_seq == 51
        payload = json.loads(again.peek_all()[-1].payload)
        assert payload["epoch"] == box.epoch and payload["seq"] == 51
        again.close()


def test_a_read_only_database_is_the_same(tmp_path):
    """SQLite refusing with SQLITE_READONLY (``PRAGMA query_only``: a real refusal, the error
    a card remounted read-only gives; a tmpfs cannot be remounted read-only while the outbox
    holds it open)."""
    box = Outbox(tmp_path / "o.db", retry_interval_s=0.0)
    box.add("t/e", {"i": 0}, numbered=True)
    claimed = box.claim(1)
    box._db.execute("PRAGMA query_only = 1")
    box.ack([m.id for m in claimed])
    box.add("t/s", b"summary", retain=True, supersede=True)
    box.add("t/e", {"i": 1}, numbered=True)
    assert "readonly" in (box.disk_error or "") and box.in_memory == 2 and len(box) == 2
    assert [m.topic for m in box.claim(5)] == ["t/s", "t/e"]  # the acked row is not re-sent
    box._db.execute("PRAGMA query_only = 0")
    assert box.retry_disk()
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert [m.topic for m in again.peek_all()] == ["t/s", "t/e"]  # the ack reached the file
    again.close()


def test_memory_is_bounded_and_drops_are_counted(tmp_path):
    box = Outbox(tmp_path / "o.db", max_memory_messages=5, retry_interval_s=3600.0)
    box.add("t/e", {"i": 0}, numbered=True)
    box._db.execute("PRAGMA query_only = 1")  # SQLite itself refuses every write from now on
    for i in range(1, 21):
        box.add("t/e", {"i": i}, numbered=True)
    assert "readonly" in (box.disk_error or "")
    assert box.in_memory == 5 and box.dropped == 15 and box.last_dropped_seq == 16
    assert _seqs(box) == [1, 17, 18, 19, 20, 21]  # the newest kept, the stored row too
    box._db.execute("PRAGMA query_only = 0")
    assert box.retry_disk()
    box.close()
    again = Outbox(tmp_path / "o.db")
    assert _seqs(again) == [1, 17, 18, 19, 20, 21] and again.dropped == 15
    again.close()


def test_retries_wait_for_the_interval(tmp_path):
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db", retry_interval_s=5.0, clock=clock)
    box._db.execute("PRAGMA max_page_count = 1")  # a file that cannot grow: SQLITE_FULL
    box.add("t/e", {"i": 0, "pad": "x" * 5000}, numbered=True)
    assert box.disk_error is not None
    box._db.execute("PRAGMA max_page_count = 100000")
    clock.advance(4.9)
    box.add("t/e", {"i": 1}, numbered=True)
    assert box.in_memory == 2  # not retried yet
    assert not box.retry_disk(force=False) and box.in_memory == 2
    clock.advance(0.2)
    box.add("t/e", {"i": 2}, numbered=True)
    assert box.in_memory == 0 and box.disk_error is None and _seqs(box) == [1, 2, 3]


def test_a_lost_outbox_starts_a_new_epoch(tmp_path):
    path = tmp_path / "o.db"
    box = Outbox(path)
    box.add("t/e", {"i": 0}, numbered=True)
    first = box.epoch
    box.close()
    again = Outbox(path)
    assert again.epoch == first  # the same file: the same numbering
    again.close()
    for suffix in ("", "-wal", "-shm"):
        (tmp_path / f"o.db{suffix}").unlink(missing_ok=True)
    fresh = Outbox(path)
    assert fresh.epoch and fresh.epoch != first
    m = fresh.add("t/e", {"i": 1}, numbered=True)
    assert m.seq == 1 and json.loads(m.payload)["epoch"] == fresh.epoch


def test_numbers_given_out_in_memory_never_reuse_a_durable_epoch(tmp_path):
    """The process dies while the disk refuses: the file's numbering resumes under its own
    epoch, the numbers given out from memory carried another one."""
    path = tmp_path / "o.db"
    box = Outbox(path, retry_interval_s=3600.0)
    box.add("t/e", {"i": 0}, numbered=True)
    durable = box.epoch
    box._db.execute("PRAGMA query_only = 1")
    lost = box.add("t/e", {"i": 1}, numbered=True)
    assert json.loads(lost.payload)["epoch"] != durable
    box._db.close()  # a crash: nothing written out
    again = Outbox(path)
    resumed = again.add("t/e", {"i": 2}, numbered=True)
    assert (json.loads(resumed.payload)["epoch"], resumed.seq) == (durable, 2)
    assert (json.loads(lost.payload)["epoch"], lost.seq) != (durable, 2)


def test_an_outbox_that_cannot_be_opened_on_a_full_disk_starts_in_memory(tmp_path):
    """The restart after the card filled up: no crash loop. Events queue in memory and, once
    there is room, go to the file after what an earlier run left there."""
    with small_disk(tmp_path) as disk:
        old = Outbox(disk.path / "o.db")
        left = old.add("t/e", {"run": 1}, numbered=True)
        old.close()
        disk.fill()
        box = Outbox(disk.path / "o.db", retry_interval_s=0.0)  # must not raise
        assert box.disk_error is not None and box.epoch
        first = box.add("t/e", {"run": 2}, numbered=True)
        assert (first.seq, len(box)) == (1, 1)  # a new epoch: numbering starts again
        sent = box.claim(5)
        assert [m.id for m in sent] == [first.id]
        disk.free()
        second = box.add("t/e", {"run": 2, "n": 2}, numbered=True)
        assert box.disk_error is None
        # The earlier run's message follows what was queued in memory (renumbered), then the
        # new one; nothing is claimed twice.
        assert [json.loads(m.payload)["run"] for m in box.claim(5)] == [1, 2]
        assert [m.seq for m in box.peek_all()] == [1, left.seq, 2]
        box.ack([first.id, second.id])
        box.close()
        again = Outbox(disk.path / "o.db")
        assert [json.loads(m.payload) for m in again.peek_all()] == [
            {"epoch": old.epoch, "seq": 1, "run": 1}]
        assert again.epoch == box.epoch and again.last_seq == 2
        assert again.add("t/e", {"run": 3}, numbered=True).id > second.id
        again.close()


def test_a_file_that_is_not_an_outbox_still_stops_the_start(tmp_path):
    path = tmp_path / "o.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(OutboxError, match="cannot open the outbox"):
        Outbox(path)


fault_ops = st.lists(st.one_of(
    st.tuples(st.just("add"), st.integers(1, 4)),
    st.tuples(st.just("claim"), st.integers(0, 4)),
    st.tuples(st.just("ack"), st.integers(0, 4)),
    st.tuples(st.just("disk"), st.booleans()),  # SQLite refuses writes (True) or takes them
    st.tuples(st.just("restart"), st.just(0)),  # only while the disk takes writes
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=fault_ops, bound=st.integers(2, 8), memory=st.integers(1, 5))
def test_any_interleaving_with_disk_faults_loses_only_counted_drops(tmp_path_factory, ops,
                                                                    bound, memory):
    """Model check with the disk refusing and taking writes at random: what the outbox holds
    is always in order, every message added is held, acknowledged or counted as dropped, a
    claimed message is never handed out twice, and a restart with the disk back finds exactly
    what was held."""
    path = tmp_path_factory.mktemp("box") / "o.db"
    box = Outbox(path, max_messages=bound, max_memory_messages=memory, retry_interval_s=0.0)
    added = acked = 0
    claimed: list[int] = []
    handed: set[int] = set()
    refusing = False
    for op, n in ops:
        if op == "add":
            for _ in range(n):
                box.add("t/e", {"n": added}, numbered=True)
                added += 1
        elif op == "claim":
            got = box.claim(n)
            assert not handed.intersection(m.id for m in got)
            handed.update(m.id for m in got)
            claimed += [m.id for m in got]
        elif op == "ack":
            done, claimed = claimed[:n], claimed[n:]
            present = {m.id for m in box.peek_all()}
            acked += sum(1 for i in done if i in present)  # a dropped one is not held any more
            box.ack(done)
        elif op == "disk":
            refusing = n
            box._db.execute(f"PRAGMA query_only = {int(n)}")
        elif not refusing:
            box.close()
            assert box.in_memory == 0
            box = Outbox(path, max_messages=bound, max_memory_messages=memory,
                         retry_interval_s=0.0)
            claimed, handed = [], set()
        held = box.peek_all()
        assert [m.id for m in held] == sorted(m.id for m in held)
        assert len(held) == len(box) == added - acked - box.dropped
        if box.disk_error is None:
            assert len(box) <= bound
    box._db.execute("PRAGMA query_only = 0")
    assert box.retry_disk() and box.in_memory == 0
    held = [m.payload for m in box.peek_all()]
    box.close()
    again = Outbox(path)
    assert [m.payload for m in again.peek_all()] == held
    again.close()


# -- durability sized for an SD card (issue 21 item 5) ----------------------------------------
def _file_rows(path) -> list[tuple[str, bytes]]:
    """What another connection reads in the file: what a restart would find."""
    with sqlite3.connect(path) as db:
        rows = db.execute("SELECT topic, payload FROM outbox ORDER BY id").fetchall()
    db.close()
    return rows


def test_events_are_in_the_file_when_add_returns_and_synced_only_while_unacknowledged(
        tmp_path):
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db", sync_interval_s=1.0, clock=clock)
    first = box.add("t/e", {"i": 0}, numbered=True)
    assert len(_file_rows(tmp_path / "o.db")) == 1  # committed: a crash cannot lose it
    assert box.syncs == 0  # but not synced per commit
    box.claim(1)
    clock.advance(0.5)
    box.ack([first.id])  # the broker has it before its sync was due: no sync at all
    clock.advance(1.0)
    box.claim(1)
    assert box.syncs == 0
    assert _file_rows(tmp_path / "o.db") == []  # the acknowledgement reached the file in time
    for i in range(5):  # the broker is away: these wait, and are synced once, a second on
        box.add("t/e", {"i": i}, numbered=True)
        clock.advance(0.3)
        box.claim(0)
    assert box.syncs == 1
    clock.advance(1.0)
    box.claim(0)
    assert box.syncs == 2  # the last ones waited at most sync_interval_s
    box.claim(0)
    assert box.syncs == 2  # nothing new: nothing to sync
    box.close()


def test_retained_state_the_broker_takes_at_once_never_reaches_the_file(tmp_path):
    clock = ManualClock()
    path = tmp_path / "o.db"
    box = Outbox(path, sync_interval_s=1.0, clock=clock)
    event = box.add("t/e", {"i": 0}, numbered=True)
    box.ack([m.id for m in box.claim(5)])  # the broker acknowledges: the link is up
    state = box.add("t/coach", b"step 1", retain=True, supersede=True)
    assert [m.id for m in box.claim(5)] == [state.id]
    box.ack([state.id])
    clock.advance(2.0)
    box.claim(5)
    assert _file_rows(path) == []  # neither copy needed the card
    waiting = box.add("t/coach", b"step 2", retain=True, supersede=True)
    newer = box.add("t/coach", b"step 3", retain=True, supersede=True)  # replaces step 2
    assert [m.payload for m in box.peek_all()] == [b"step 3"] and len(box) == 1
    clock.advance(1.0)
    box.claim(0)  # not acknowledged within a second: written
    assert _file_rows(path) == [("t/coach", b"step 3")]
    assert waiting.id < newer.id and event.id < waiting.id
    box.close()
    assert [m.payload for m in Outbox(path).peek_all()] == [b"step 3"]


def test_without_a_broker_retained_state_is_written_at_once_then_every_few_seconds(tmp_path):
    clock = ManualClock()
    box = Outbox(tmp_path / "o.db", clock=clock)
    box.add("t/session", b"s1", retain=True, supersede=True)
    assert _file_rows(tmp_path / "o.db") == [("t/session", b"s1")]  # the first: at once
    for i in range(2, 6):  # newer values: in memory, replacing the stored one
        clock.advance(1.0)
        box.add("t/session", f"s{i}".encode(), retain=True, supersede=True)
        assert [m.payload for m in box.peek_all()] == [f"s{i}".encode()] and len(box) == 1
    assert _file_rows(tmp_path / "o.db") == [("t/session", b"s1")]
    clock.advance(2.0)
    box.claim(0)  # five seconds after s2 was held: the newest replaces the stored one at once
    assert _file_rows(tmp_path / "o.db") == [("t/session", b"s5")]
    box.add("t/session", b"s6", retain=True, supersede=True)
    box.flush()  # a durable point on request
    assert _file_rows(tmp_path / "o.db") == [("t/session", b"s6")]
    box.add("t/session", b"s7", retain=True, supersede=True)
    box.close()  # a clean stop writes what is held
    assert _file_rows(tmp_path / "o.db") == [("t/session", b"s7")]


def test_an_unclosed_file_from_another_boot_starts_a_new_epoch(tmp_path, monkeypatch):
    """A power cut may have taken the last unsynced numbers, which the broker may already
    have: the next boot numbers under a new epoch. A crash within one boot keeps it."""
    import roller.mqtt.outbox as outbox_module

    boot = tmp_path / "boot_id"
    boot.write_text("boot-1\n")
    monkeypatch.setattr(outbox_module, "BOOT_ID_FILE", boot)
    path = tmp_path / "o.db"
    box = Outbox(path)
    box.add("t/e", {"i": 0}, numbered=True)
    first = box.epoch
    box._db.close()  # the process dies: no close()
    again = Outbox(path)
    assert again.epoch == first and again.add("t/e", {"i": 1}, numbered=True).seq == 2
    again._db.close()
    boot.write_text("boot-2\n")  # the machine restarted in between
    after = Outbox(path)
    assert after.epoch != first
    assert after.add("t/e", {"i": 2}, numbered=True).seq == 1
    assert [m.seq for m in after.peek_all()] == [1, 2, 1]  # nothing stored is lost
    after.close()
    assert Outbox(path).epoch == after.epoch  # a clean close keeps it, in any boot


# -- the file deleted or replaced under a running outbox (issue 20 item 6) ----------------------
def _remove(path) -> None:
    for suffix in ("", "-wal", "-shm"):
        path.with_name(path.name + suffix).unlink(missing_ok=True)


@pytest.mark.parametrize("how", ["deleted", "replaced"])
def test_a_deleted_or_replaced_file_is_noticed_and_a_new_one_takes_everything(tmp_path, how):
    path = tmp_path / "o.db"
    box = Outbox(path)
    sent = [box.add("t/e", {"i": i}, numbered=True) for i in range(4)]
    in_flight = box.claim(2)  # handed to the client, not acknowledged yet
    box.ack([sent[0].id])
    old_epoch = box.epoch
    _remove(path)
    if how == "replaced":  # a restored copy, an editor's save: another file at the path
        path.write_bytes(b"")
    assert box.file_problem is None
    late = box.add("t/e", {"i": 4}, numbered=True)
    assert box.file_replacements == 1 and how in (box.file_problem or "")
    assert box.epoch != old_epoch and late.seq == 1  # a new epoch, numbered afresh
    assert json.loads(late.payload)["epoch"] == box.epoch
    # Nothing it held is lost: the unacknowledged ones, the in-flight one, the new one.
    assert [m.seq for m in box.peek_all()] == [2, 3, 4, 1]
    assert [m.id for m in box.claim(10)] == [sent[2].id, sent[3].id, late.id]
    box.ack([in_flight[1].id])  # an acknowledgement for an in-flight message still works
    assert [m.seq for m in box.peek_all()] == [3, 4, 1]
    box.close()
    again = Outbox(path)  # and it is all in the new file
    assert [json.loads(m.payload)["epoch"] for m in again.peek_all()] == [
        old_epoch, old_epoch, box.epoch]
    assert again.epoch == box.epoch and again.last_seq == 1
    again.close()


held_ops = st.lists(st.one_of(
    st.tuples(st.just("event"), st.integers(1, 3)),
    st.tuples(st.just("state"), st.sampled_from(["t/coach", "t/session"])),
    st.tuples(st.just("claim"), st.integers(0, 4)),
    st.tuples(st.just("ack"), st.integers(0, 4)),
    st.tuples(st.just("tick"), st.sampled_from([0.1, 0.6, 2.0])),
    st.tuples(st.just("crash"), st.just(0)),
), max_size=40)


@settings(max_examples=60, deadline=None)
@given(ops=held_ops)
def test_any_interleaving_of_events_held_state_acks_and_crashes_keeps_every_event(
        tmp_path_factory, ops):
    """Model check of the timed paths (held retained state, acknowledgements written later,
    syncs) with crashes of the process: an event is never lost unless acknowledged, what is
    held stays in order and counted, and no message is handed out twice."""
    path = tmp_path_factory.mktemp("held") / "o.db"
    clock = ManualClock()
    box = Outbox(path, clock=clock)
    waiting: dict[int, bytes] = {}  # event id -> payload, not acknowledged
    claimed: list[int] = []
    handed: set[int] = set()
    for op, arg in ops:
        if op == "event":
            for _ in range(arg):
                m = box.add("t/e", {"k": len(waiting)}, numbered=True)
                waiting[m.id] = m.payload
        elif op == "state":
            box.add(arg, b"state", retain=True, supersede=True)
        elif op == "claim":
            got = box.claim(arg)
            assert not handed.intersection(m.id for m in got)
            handed.update(m.id for m in got)
            claimed += [m.id for m in got]
        elif op == "ack":
            done, claimed = claimed[:arg], claimed[arg:]
            box.ack(done)
            for i in done:
                waiting.pop(i, None)
        elif op == "tick":
            clock.advance(arg)
            box.claim(0)
        else:  # the process dies: no close(); the next one finds the file as it is
            box._close_db()
            box = Outbox(path, clock=clock)
            claimed, handed = [], set()
            held = {m.payload for m in box.peek_all()}
            assert set(waiting.values()) <= held  # every unacknowledged event survived
            waiting = {m.id: m.payload for m in box.peek_all() if m.seq is not None}
        held = box.peek_all()
        assert [m.id for m in held] == sorted(m.id for m in held)
        assert len(held) == len(box)
        assert set(waiting.values()) <= {m.payload for m in held}
    box.close()


def test_a_file_that_refuses_writes_at_start_still_delivers_what_it_holds(tmp_path,
                                                                         monkeypatch):
    """A card that went read-only before the start: the earlier run's messages still go out,
    new ones wait in memory under a new epoch. (SQLite's ``query_only`` gives the refusal a
    read-only card gives; file modes do not bind root.)"""
    path = tmp_path / "o.db"
    old = Outbox(path)
    left = old.add("t/e", {"run": 1}, numbered=True)
    old.close()
    connect = Outbox._connect

    def read_only(self):
        db = connect(self)
        db.execute("PRAGMA query_only = 1")
        return db

    monkeypatch.setattr(Outbox, "_connect", read_only)
    box = Outbox(path, retry_interval_s=3600.0)
    assert "readonly" in (box.disk_error or "")
    new = box.add("t/e", {"run": 2}, numbered=True)
    assert [m.id for m in box.claim(5)] == [left.id, new.id]
    assert json.loads(new.payload)["epoch"] != old.epoch
