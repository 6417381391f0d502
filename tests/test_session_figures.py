"""Session figures defined once (issue 20 item 5): the session's ``active_s`` is the coach's
summary's and the history's for the same session, never more than the time the session ran,
and a session whose summary is shown is the session stored -- over seeded simulated sessions
through the real service (auto-start, pauses, every way a session ends) and over a scripted
coach (an auto-start by a recognised hold, an idle timeout, a session too short to keep)."""

from __future__ import annotations

from pathlib import Path

import pytest

from firmware_bridge.clock import ManualClock
from roller.coaching.coach import Coach, CoachSettings
from roller.coaching.history import History
from roller.coaching.routine import parse_routine
from roller.coaching.session import SessionSettings
from roller.coaching.session_commands import SessionCommands
from roller.contract.command_table import CommandError
from roller.mqtt.client import MqttSettings
from roller.pipeline.events import HoldStarted, LiveState, Stroke
from roller.service.config import DeviceSettings, RollerConfig
from roller.service.wiring import build_service

STEP_S = 0.1

SHORT_ROUTINE = """\
name = "short"
title = "Short"
closing = "Done."
[[steps]]
id = "a"
title = "Right"
muscle = "glutes"
side = "right"
position = "sit right"
target_active_s = 15
dose_rolling_s = 15
dose_holds = 0
dose_rolling_only_s = 15
hold_min_s = 5
hold_max_s = 10
[[steps]]
id = "b"
title = "Left"
muscle = "glutes"
side = "left"
position = "sit left"
target_active_s = 15
dose_rolling_s = 15
dose_holds = 0
dose_rolling_only_s = 15
hold_min_s = 5
hold_max_s = 10
"""

COMMANDS = {70.0: "start", 78.0: "pause", 84.0: "resume", 100.0: "stop", 106.0: "start",
            120.0: "pain", 128.0: "start", 136.0: "start_pause", 142.0: "start_pause"}
"""Simulated time [s] -> command: after the auto-started session (which the routine
completes), one stopped after a pause, one ended by pain, one under way at the shutdown."""


def ended(session: dict, summary: dict | None) -> dict:
    return {"session": session, "summary": summary}


@pytest.mark.parametrize("seed", [4, 11])
def test_session_coach_and_history_give_one_active_time(broker, tmp_path: Path, seed) -> None:
    routine = tmp_path / "short.toml"
    routine.write_text(SHORT_ROUTINE, encoding="utf-8")
    config = RollerConfig(
        device=DeviceSettings(id="figures"),
        mqtt=MqttSettings(host=broker.host, port=broker.port, keepalive_s=2,
                          reconnect_min_delay_s=0.05, reconnect_max_delay_s=0.25),
        session=SessionSettings(restart_rest_s=5.0, min_record_active_s=1.0),
        coach=CoachSettings(routine=str(routine), transition_s=2.0),
        state_dir=str(tmp_path / "state"))
    clock = ManualClock(100.0)
    svc = build_service(config, simulate=True, seed=seed, clock=clock)
    svc.publisher.start()
    assert svc.publisher.wait_connected(5)
    sessions: list[dict] = []
    t, last = 0.0, svc.session.state
    while t < 160.0:
        t = round(t + STEP_S, 3)
        clock.advance(STEP_S)
        if t in COMMANDS:
            svc.submit_command(COMMANDS[t])
        svc.step()
        if svc.session.state == "finished" and last != "finished" and svc.session.id:
            sessions.append(ended(svc.session.to_dict(clock.monotonic()),
                                  svc.coach.snapshot().summary))
        last = svc.session.state
    assert svc.session.live, "the run should end with a session under way"
    svc.close()
    sessions.append(ended(svc.session.to_dict(clock.monotonic()), svc.coach.snapshot().summary))

    reasons = [s["session"]["end_reason"] for s in sessions]
    assert reasons == ["completed", "stopped", "pain", "shutdown"], reasons
    with History(tmp_path / "state" / "history.sqlite3") as history:
        rows = list(reversed(history.sessions()))
    shown = [s for s in sessions if s["summary"] is not None]
    assert len(shown) == len(sessions) == len(rows)  # every session shown is stored
    for s, row in zip(sessions, rows, strict=True):
        session, summary = s["session"], s["summary"]
        assert session["active_s"] <= session["running_s"] + 1e-9, session
        assert summary["active_s"] == pytest.approx(session["active_s"], abs=5e-4)
        assert row.active_s == pytest.approx(summary["active_s"], abs=1e-9)
        assert row.end_reason == session["end_reason"] == summary["end_reason"]
        for key in ("strokes", "holds", "too_fast_count"):
            assert summary[key] == session[key] == getattr(row, key), key
        assert sum(summary["sides_s"].values()) <= summary["active_s"] + 1e-6
    assert sessions[0]["session"]["active_s"] > 30  # the routine's two steps, at least


def live(now: float, phase: str, hold_s: float = 0.0) -> LiveState:
    return LiveState(t=now, speed_m_s=0.02, velocity_m_s=0.02, phase=phase,  # type: ignore[arg-type]
                     stroke_count=0, hold_time_s=hold_s, too_fast=False, calibrated=True)


def test_an_auto_start_by_a_hold_counts_nothing_from_before_it(tmp_path: Path) -> None:
    """The person lies still on the roller; the pipeline recognises a hold 3 s later, which
    auto-starts the session: those 3 s were before the session and count for nobody."""
    clock = ManualClock(0.0)
    routine = parse_routine({"name": "r", "title": "R", "steps": [
        {"id": "a", "title": "A", "muscle": "glutes", "side": "right", "position": "sit",
         "target_active_s": 60, "hold_min_s": 5, "hold_max_s": 30}]})
    coach = Coach(routine, CoachSettings(), clock, wall_clock=lambda: 1.7e9,
                  session_settings=SessionSettings(idle_timeout_s=10.0, restart_rest_s=2.0,
                                                   min_record_active_s=5.0))
    door = SessionCommands.for_coach(coach)
    summaries = []

    def tick(phase: str, events=(), hold_s: float = 0.0) -> None:
        clock.advance(STEP_S)
        coach.update(list(events), live(clock.monotonic(), phase, hold_s), clock.monotonic())
        summary = coach.pop_summary()
        if summary is not None:
            summaries.append((summary, coach.session.to_dict(clock.monotonic())))

    for _ in range(30):
        tick("idle")
    now = clock.monotonic()
    tick("holding", [HoldStarted(start=now - 3.0, emitted_at=now + STEP_S)], hold_s=3.1)
    assert coach.session.state == "running"
    for i in range(80):
        tick("holding", hold_s=3.1 + (i + 1) * STEP_S)
    door.run("pause")
    for _ in range(20):
        tick("holding")
    door.run("resume")
    for i in range(40):
        t0 = clock.monotonic()
        tick("rolling", [Stroke(start=t0 - 1, end=t0, distance_m=0.02, peak_speed_m_s=0.03,
                                mean_speed_m_s=0.02, direction=1, emitted_at=t0)]
             if i % 10 == 9 else [])
    for _ in range(110):  # still for the idle timeout (10 s): the session ends by itself
        tick("idle")
    assert coach.session.end_reason == "idle"
    # a short bump afterwards: too short to keep, so neither shown nor stored
    for _ in range(20):
        tick("rolling")
    with pytest.raises(CommandError):
        door.run("resume")  # not paused: refused, nothing changes
    door.run("stop")
    assert coach.snapshot().summary is None and coach.pop_summary() is None

    assert len(summaries) == 1
    summary, session = summaries[0]
    # 8 s of the hold after the start, 4 s of rolling; the 3 s before the start and the pause
    # count for nobody
    assert session["active_s"] == pytest.approx(8.0 + 4.0, abs=0.11)
    assert session["active_s"] <= session["running_s"]
    assert summary.active_s == pytest.approx(session["active_s"], abs=5e-4)
    assert summary.steps[0]["active_s"] == pytest.approx(summary.active_s, abs=1e-6)
    with History(tmp_path / "h.sqlite3") as history:
        history.record(summary, device_id="d")
        assert history.sessions()[0].active_s == summary.active_s


def test_the_summary_fields_are_declared_once(tmp_path: Path) -> None:
    """The one SessionSummary's fields are what MQTT documents (SUMMARY_FIELDS) and what the
    history's ``sessions`` table holds: a field added in one place and not the others fails."""
    import dataclasses
    import sqlite3

    from roller.coaching.records import SessionSummary
    from roller.contract.messages import SUMMARY_FIELDS, summary_payload

    names = [f.name for f in dataclasses.fields(SessionSummary)]
    summary = SessionSummary(**{n: 0 for n in names} | {
        "sides_s": {"left": 1.0, "right": 1.0}, "steps": (), "end_reason": "stopped",
        "routine": "r", "routine_title": "R", "advice": ""})
    payload = summary_payload(summary.to_dict())
    documented = {f.name for f in SUMMARY_FIELDS}
    assert documented <= set(payload), documented - set(payload)
    assert set(payload) == documented  # one name per field, with its unit
    with History(tmp_path / "h.sqlite3") as history:
        history.record(summary, device_id="d")
    with sqlite3.connect(tmp_path / "h.sqlite3") as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(sessions)")}
    assert columns - {"id", "device_id"} == set(summary.columns())
