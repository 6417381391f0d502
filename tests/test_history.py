"""Session history in a real SQLite file, and the ``roller history`` command."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from small_disk import small_disk

from firmware_bridge.clock import ManualClock
from roller.base.errors import RollerError
from roller.cli import main
from roller.coaching.coach import Coach, CoachSettings
from roller.coaching.history import History, HistoryError, HistorySettings, HistoryWriteError
from roller.coaching.records import SessionSummary
from roller.coaching.routine import parse_routine
from roller.coaching.session import SessionSettings
from roller.coaching.session_commands import SessionCommands
from roller.pipeline.events import Hold, LiveState, Stroke, TooFast, TooFastAlert

ROUTINE = parse_routine({
    "name": "t", "title": "Test routine",
    "steps": [
        {"id": "g_r", "title": "Glutes right", "muscle": "glutes", "side": "right",
         "position": "sit", "target_active_s": 20},
        {"id": "g_l", "title": "Glutes left", "muscle": "glutes", "side": "left",
         "position": "sit", "target_active_s": 20},
    ]})


def session(right_s: float, left_s: float, *, wall: float = 1_700_000_000.0,
            end: str = "stop") -> SessionSummary:
    """Run a coach: roll ``right_s`` on the right (with a too-fast excursion and a hold),
    skip to the left, roll ``left_s``, then ``end``."""
    clock = ManualClock(50.0)
    coach = Coach(ROUTINE, CoachSettings(), clock,
                  session_settings=SessionSettings(min_record_active_s=0), wall_clock=lambda: wall)

    def roll(seconds: float, events_at: dict[int, list]) -> None:
        for i in range(round(seconds * 10)):
            clock.advance(0.1)
            now = clock.monotonic()
            # the hold ending at tick 8 was seen (phase holding) before it ended: a hold
            # never seen is an empty roller's stillness and counts for nothing
            live = LiveState(t=now, speed_m_s=0.03, velocity_m_s=0.03,
                             phase="holding" if i == 7 and 8 in events_at else "rolling",
                             stroke_count=0, hold_time_s=0.0, too_fast=False, calibrated=True)
            coach.update(events_at.get(i, []), live, now)

    stroke = Stroke(start=0, end=1, distance_m=0.03, peak_speed_m_s=0.04, mean_speed_m_s=0.03,
                    direction=1, emitted_at=1)
    roll(right_s, {5: [stroke, TooFastAlert(start=0, speed_m_s=0.09, limit_m_s=0.05,
                                            emitted_at=0)],
                   8: [TooFast(start=0, end=0.8, peak_speed_m_s=0.1, limit_m_s=0.05,
                               emitted_at=0), Hold(start=1, end=26, emitted_at=26), stroke]})
    door = SessionCommands.for_coach(coach)
    door.run("next")
    roll(left_s, {3: [stroke]})
    if coach.session.state != "finished":  # a routine done by its last step ended itself
        door.run(end)
    summary = coach.pop_summary()
    assert summary is not None
    return summary


def test_record_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "state" / "history.sqlite3"
    with History(path) as h:
        first = h.record(session(10, 12, wall=1_700_000_000), device_id="mat1")
        second = h.record(session(8, 8, wall=1_700_000_600, end="pain"), device_id="mat2")
        assert (first, second) == (1, 2)
        assert h.count() == 2
    # a new connection sees what was committed: the file is real
    with History(path) as h:
        rows = h.sessions()
        assert [r.id for r in rows] == [2, 1]  # newest first
        assert [r.id for r in h.sessions(device_id="mat1")] == [1]
        one = h.session(1)
        r = one.session
        assert r.routine == "t" and r.end_reason == "stopped" and r.device_id == "mat1"
        assert r.right_s == pytest.approx(10, abs=0.15)
        assert r.left_s == pytest.approx(12, abs=0.15)
        assert r.left_share == pytest.approx(12 / 22, abs=0.01)
        assert r.strokes == 3 and r.holds == 1 and r.longest_hold_s == 25
        assert r.too_fast_count == 1 and r.too_fast_s == pytest.approx(0.8)
        assert r.mean_speed_m_s == pytest.approx(0.03)
        assert r.peak_speed_m_s == pytest.approx(0.1)
        right, left = one.steps
        assert right["step_id"] == "g_r" and right["skipped"] == 1 and right["holds_s"] == [25]
        assert left["side"] == "left" and left["strokes"] == 1
        assert h.session(2).session.advice  # the pain advice is kept
        with pytest.raises(KeyError):
            h.session(99)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2


def test_a_foreign_file_is_refused_by_name(tmp_path: Path) -> None:
    junk = tmp_path / "notes.sqlite3"
    with sqlite3.connect(junk) as db:
        db.execute("CREATE TABLE notes (x)")
    with pytest.raises(HistoryError, match=r"notes\.sqlite3: not a roller history"):
        History(junk)
    text = tmp_path / "text.sqlite3"
    text.write_text("hello, this is not a database at all" * 100)
    with pytest.raises(HistoryError, match=r"text\.sqlite3"):
        History(text)


def test_settings_path_is_relative_to_the_state_dir(tmp_path: Path) -> None:
    assert HistorySettings().path(tmp_path) == tmp_path / "history.sqlite3"
    assert HistorySettings(file="/x/h.db").path(tmp_path) == Path("/x/h.db")


def test_roller_history_lists_and_shows(tmp_path: Path, capsys) -> None:
    db = tmp_path / "h.sqlite3"
    assert main(["history", "--db", str(db)]) == 0
    assert "no sessions yet" in capsys.readouterr().err
    with History(db) as h:
        h.record(session(5, 15), device_id="mat1")
        h.record(session(10, 10, wall=1_700_000_900), device_id="mat1")
    assert main(["history", "--db", str(db)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["id", "date", "routine"]
    assert lines[1].split()[0] == "2" and lines[2].split()[0] == "1"
    assert "75%/25%" in lines[2]  # left/right
    assert main(["history", "--db", str(db), "show", "1"]) == 0
    out = capsys.readouterr().out
    assert "Session 1: Test routine on mat1" in out
    assert "left 75% / right 25% (more on the left)" in out
    assert "Glutes right" in out and "skipped" in out
    assert main(["history", "--db", str(db), "--json", "show", "2"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["id"] == 2 and data["left_share"] == pytest.approx(0.5, abs=0.02)
    assert len(data["steps"]) == 2
    assert main(["history", "--db", str(db), "show", "7"]) == 1
    assert "no session 7" in capsys.readouterr().err
    assert main(["history", "--db", str(db), "list", "--limit", "1", "--json"]) == 0
    assert [s["id"] for s in json.loads(capsys.readouterr().out)] == [2]


def test_a_pi_user_reads_the_services_history(tmp_path: Path, monkeypatch) -> None:
    import argparse

    from roller.commands.history import history_path

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "home-state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("ROLLER_CONFIG", raising=False)
    args = argparse.Namespace(db=None, config=None)
    service_dir = tmp_path / "var-lib-roller"
    mine = tmp_path / "home-state" / "roller" / "history.sqlite3"
    assert history_path(args, service_dir) == mine  # nothing anywhere: the user's own
    service_dir.mkdir()
    History(service_dir / "history.sqlite3").close()
    assert history_path(args, service_dir) == service_dir / "history.sqlite3"
    History(mine).close()
    assert history_path(args, service_dir) == mine  # the user's own wins when it exists


# -- disk faults (issue 12): a RollerError the service reports, never a raw sqlite3 error ----
def test_a_full_disk_gives_a_history_write_error_and_the_history_goes_on(tmp_path: Path) -> None:
    summary = session(10, 12)
    with small_disk(tmp_path) as disk, History(disk.path / "history.sqlite3") as h:
        h.record(summary, device_id="mat1")
        disk.fill()
        with pytest.raises(HistoryWriteError, match="could not store the session") as err:
            for _ in range(50):  # SQLite may fit a row or two in free pages first
                h.record(summary, device_id="mat1")
        assert isinstance(err.value, RollerError) and "full" in str(err.value)
        stored = h.count()  # still readable, nothing half-written
        assert all(len(h.session(r.id).steps) == 2 for r in h.sessions(limit=None))
        disk.free()
        h.record(summary, device_id="mat1")  # room again: the same object stores the next one
        assert h.count() == stored + 1


def test_a_read_only_database_gives_a_history_write_error(tmp_path: Path) -> None:
    with History(tmp_path / "h.sqlite3") as h:
        h._db.execute("PRAGMA query_only = 1")  # SQLite refuses writes: SQLITE_READONLY
        with pytest.raises(HistoryWriteError, match="readonly"):
            h.record(session(10, 12), device_id="mat1")
        h._db.execute("PRAGMA query_only = 0")
        h.record(session(10, 12), device_id="mat1")
        assert h.count() == 1


def test_a_new_history_on_a_full_disk_says_so(tmp_path: Path) -> None:
    with small_disk(tmp_path) as disk:
        disk.fill()
        with pytest.raises(HistoryError, match=r"cannot write the history|cannot open"):
            History(disk.path / "history.sqlite3")


# -- issue 18: options in any order, the demo's sessions found -------------------------------
def test_options_work_before_and_after_the_action(tmp_path: Path, capsys) -> None:
    db = tmp_path / "h.sqlite3"
    with History(db) as h:
        h.record(session(5, 15), device_id="mat1")
    for argv in (["history", "show", "1", "--db", str(db), "--json"],
                 ["history", "--json", "show", "1", "--db", str(db)],
                 ["history", "--db", str(db), "show", "--json", "1"]):
        assert main(argv) == 0, argv
        assert json.loads(capsys.readouterr().out)["id"] == 1
    assert main(["history", "list", "--db", str(db), "--limit", "5"]) == 0
    assert capsys.readouterr().out.splitlines()[1].split()[0] == "1"


def test_roller_history_finds_the_demos_sessions(tmp_path: Path, monkeypatch, capsys) -> None:
    from roller.commands.history import demo_history_path

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.delenv("ROLLER_CONFIG", raising=False)
    demo = demo_history_path()
    assert demo == tmp_path / "state" / "roller" / "demo" / "history.sqlite3"
    with History(demo) as h:  # where `roller demo` keeps them
        h.record(session(5, 15), device_id="demo")
    assert main(["history"]) == 0  # none of one's own: the demo's, and a word saying so
    captured = capsys.readouterr()
    assert captured.out.splitlines()[1].split()[0] == "1"
    assert f"showing the sessions of `roller demo` from {demo}" in captured.err
    assert main(["history", "show", "1", "--demo", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["device_id"] == "demo"
    mine = tmp_path / "state" / "roller" / "history.sqlite3"
    with History(mine) as h:
        h.record(session(8, 8), device_id="mat1")
        h.record(session(8, 8), device_id="mat1")
    assert main(["history"]) == 0  # one's own first, and where the demo's are
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 3
    assert "roller history --demo" in captured.err and str(demo) in captured.err


def test_a_version_1_history_is_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with History(path) as h:
        h.record(session(5, 5), device_id="mat1")
    with sqlite3.connect(path) as db:  # back to the first release's schema
        db.execute("ALTER TABLE sessions DROP COLUMN distance_m")
        db.execute("ALTER TABLE steps DROP COLUMN distance_m")
        db.execute("PRAGMA user_version = 1")
    with History(path) as h:
        assert h.session(1).session.distance_m is None
        h.record(session(5, 5), device_id="mat1")
        assert h.count() == 2
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
