"""The one session lifecycle (issue 9 items 1, 2, 7): the retained ``session`` and ``coach``
never disagree on a seeded simulated run through the real service and a real broker; every
session with activity reaches the history however it ends; the speed figures are one
definition; old config keys still work."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import SimulatedRoller, person_scenario
from roller.base.errors import ConfigError
from roller.coaching.coach import Coach, CoachSettings
from roller.coaching.history import History
from roller.coaching.routine import load_routine
from roller.coaching.session import ActiveTime, Session, SessionSettings
from roller.coaching.session_commands import SessionCommands
from roller.mqtt.client import MqttSettings
from roller.pipeline import Pipeline, PipelineSettings
from roller.pipeline.events import LiveState, Stroke, TooFast
from roller.pipeline.speed_stats import SpeedStats
from roller.recordings.summary import RecordingReport as AnalyzeSummary
from roller.service.config import DeviceSettings, RollerConfig, load_config
from roller.service.wiring import build_service

STEP_S = 0.1
AGREES = {"ready": {"idle"}, "active": {"running"}, "transition": {"running"},
          "paused": {"paused"}, "done": {"finished"}}
"""coach.state -> the session states it may be published under."""


class Recorder:
    """An independent MQTT client that keeps every message of the device, in arrival order
    (one publisher connection at QoS 1: the order the service published them in)."""

    def __init__(self, broker, device: str) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._lock = threading.Lock()
        self.prefix = f"roller/{device}/"
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"rec-{time.monotonic_ns()}")
        self.client.on_message = self._on_message
        self.client.connect(broker.host, broker.port)
        self.client.subscribe(self.prefix + "#", qos=1)
        self.client.loop_start()

    def _on_message(self, client, userdata, m) -> None:
        with self._lock:
            self.messages.append((m.topic[len(self.prefix):], m.payload))

    def of(self, topic: str) -> list[dict]:
        with self._lock:
            return [json.loads(p) for t, p in self.messages if t == topic and p]

    def wait_for(self, predicate, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if predicate(list(self.messages)):
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def disagreements(messages: list[tuple[str, bytes]]) -> tuple[int, list[str]]:
    """Check every coach payload against the session payload retained when it was published:
    (coach payloads checked, what disagreed)."""
    session: dict | None = None
    checked, bad = 0, []
    for topic, payload in messages:
        if not payload or topic not in ("session", "coach"):
            continue
        body = json.loads(payload)
        if topic == "session":
            session = body
            continue
        checked += 1
        state = session["state"] if session is not None else "idle"
        sid = session["session_id"] if session is not None else None
        if state not in AGREES[body["state"]]:
            bad.append(f"coach {body['state']} ({body['cue']}) while session {state}")
        elif body["session_id"] != sid:
            bad.append(f"coach session {body['session_id']} while session {sid}")
        elif body["state"] == "done" and body["end_reason"] != session["end_reason"]:
            bad.append(f"coach ended {body['end_reason']}, session {session['end_reason']}")
    return checked, bad


@pytest.fixture
def seeded_run(broker, tmp_path: Path):
    """A seeded simulated person through build_service: auto-start, pause/resume, next, stop,
    a new session by command (the person stays on the roller: no rest, so no auto-start), then
    shutdown (SIGTERM's path) with that session under way."""
    device = "lifecycle"
    config = RollerConfig(
        device=DeviceSettings(id=device),
        mqtt=MqttSettings(host=broker.host, port=broker.port, keepalive_s=2,
                          reconnect_min_delay_s=0.05, reconnect_max_delay_s=0.25),
        session=SessionSettings(idle_timeout_s=10.0, restart_rest_s=5.0,
                                min_record_active_s=1.0),
        state_dir=str(tmp_path / "state"))
    clock = ManualClock(100.0)
    recorder = Recorder(broker, device)
    svc = build_service(config, simulate=True, seed=4, clock=clock)
    svc.publisher.start()
    assert svc.publisher.wait_connected(5)
    commands = {40.0: "pause", 48.0: "resume", 60.0: "next", 90.0: "stop", 110.0: "start",
                150.0: "start_pause", 155.0: "start_pause"}
    ends: list[str] = []
    t = 0.0
    last_state = svc.session.state
    while t < 260.0:
        t = round(t + STEP_S, 3)
        clock.advance(STEP_S)
        if t in commands:
            svc.submit_command(commands[t])
        svc.step()
        if svc.session.state == "finished" and last_state != "finished":
            ends.append(svc.session.end_reason or "")
        last_state = svc.session.state
    live_at_close = svc.session.live
    svc.close()  # what SIGTERM and Ctrl-C end in (Service.run's finally)
    assert recorder.wait_for(lambda ms: ("status", b"offline") in ms), "no offline status"
    yield recorder, ends, live_at_close, tmp_path / "state" / "history.sqlite3"
    recorder.close()


def test_retained_session_and_coach_never_disagree(seeded_run) -> None:
    recorder, ends, _, _ = seeded_run
    checked, bad = disagreements(recorder.messages)
    sessions = recorder.of("session")
    print(f"coach payloads checked: {checked}, session payloads: {len(sessions)}, "
          f"disagreements: {len(bad)}; sessions ended: {ends}")
    assert checked > 100 and not bad, bad[:5]
    # the run went through the whole lifecycle
    states = {s["state"] for s in sessions}
    assert {"running", "paused", "finished"} <= states
    assert ends == ["stopped"] and len({s["session_id"] for s in sessions}) == 2
    coach_states = {c["state"] for c in recorder.of("coach")}
    assert {"active", "paused", "done"} <= coach_states


def test_shutdown_ends_the_session_in_history_and_on_the_broker(seeded_run) -> None:
    recorder, ends, live_at_close, history_path = seeded_run
    assert live_at_close, "the scripted run should end with a session under way"
    final_session = recorder.of("session")[-1]
    final_coach = recorder.of("coach")[-1]
    assert final_session["state"] == "finished" and final_session["end_reason"] == "shutdown"
    assert final_coach["state"] == "done" and final_coach["cue"] == "shutdown"
    assert final_coach["end_reason"] == "shutdown"
    assert final_coach["summary"]["end_reason"] == "shutdown"
    assert final_coach["session_id"] == final_session["session_id"]
    with History(history_path) as history:
        reasons = [row.end_reason for row in history.sessions()]
    # every session with activity is stored, however it ended
    assert sorted(reasons) == sorted([*ends, "shutdown"]), (reasons, ends)


def test_the_session_the_coach_and_analyze_report_the_same_speeds() -> None:
    seed, duration = 5, 120.0
    sim = SimulatedRoller(person_scenario(duration, seed=seed), seed=seed)
    t, samples = sim.recording(200.0)
    pipeline = Pipeline(PipelineSettings())
    clock = ManualClock(float(t[0]))
    coach = Coach(load_routine(), CoachSettings(), clock, wall_clock=lambda: 1.7e9)
    analyze = AnalyzeSummary(max_speed_m_s=0.05, radius_m=0.075)
    for i in range(0, len(t), 20):
        events = pipeline.update(t[i:i + 20], samples[i:i + 20])
        now = float(t[min(i + 20, len(t)) - 1])
        clock.advance(max(now - clock.monotonic(), 0.0))
        coach.update(events, pipeline.live, now)
        analyze.add(events)
    SessionCommands.for_coach(coach).run("stop")
    summary = coach.session.routine
    session = coach.session.to_dict(clock.monotonic())
    speeds = analyze.speed_stats()
    assert session["strokes"] == analyze.speed_stats()["strokes"] > 10
    for key in ("mean_speed_m_s", "median_speed_m_s", "peak_speed_m_s"):
        assert session[key] == pytest.approx(speeds[key], abs=1e-4), key
    assert session["too_fast_s"] == pytest.approx(speeds["too_fast_s"], abs=1e-3)
    # the coach's summary carries the session's own figures
    for key in ("mean_speed_m_s", "median_speed_m_s", "peak_speed_m_s", "strokes"):
        assert summary[key] == pytest.approx(speeds[key], abs=1e-4), key
    assert session["mean_stroke_speed_m_s"] == session["mean_speed_m_s"]


def stroke(start: float, duration: float, speed: float) -> Stroke:
    return Stroke(start=start, end=start + duration, distance_m=speed * duration,
                  peak_speed_m_s=speed * 1.3, mean_speed_m_s=speed, direction=1,
                  emitted_at=start + duration)


def test_the_mean_speed_is_weighted_by_time() -> None:
    stats = SpeedStats()
    for i in range(4):  # four quick 1 s flicks at 10 cm/s, one slow 16 s pass at 2 cm/s
        stats.add(stroke(i, 1.0, 0.10))
    stats.add(stroke(10, 16.0, 0.02))
    stats.add(TooFast(start=1, end=2.5, peak_speed_m_s=0.15, limit_m_s=0.05, emitted_at=3))
    # 0.4 m + 0.32 m over 20 s (an unweighted mean over strokes would say 8.4 cm/s)
    assert stats.mean_speed_m_s == pytest.approx(0.036)
    assert stats.median_speed_m_s == pytest.approx(0.02)  # 16 of the 20 s were at 2 cm/s
    assert stats.peak_speed_m_s == pytest.approx(0.15)
    assert stats.too_fast_s == pytest.approx(1.5) and stats.too_fast_count == 1
    assert SpeedStats().to_dict()["mean_speed_m_s"] is None


def test_an_idle_timeout_ends_the_session_and_the_coachs_routine() -> None:
    clock = ManualClock(0.0)
    coach = Coach(load_routine(), CoachSettings(), clock, wall_clock=lambda: 1.7e9,
                  session_settings=SessionSettings(idle_timeout_s=30.0,
                                                   min_record_active_s=1.0))

    def tick(phase: str, events=()) -> None:
        clock.advance(0.1)
        live = LiveState(t=clock.monotonic(), speed_m_s=0.02, velocity_m_s=0.02,
                         phase=phase, stroke_count=0, hold_time_s=0.0,  # type: ignore[arg-type]
                         too_fast=False, calibrated=True)
        coach.update(list(events), live, clock.monotonic())

    for i in range(50):
        tick("rolling", [stroke(clock.monotonic() - 1, 1.0, 0.02)] if i % 10 == 9 else [])
    assert coach.state == "active" and coach.session.state == "running"
    for _ in range(299):
        tick("idle")
    assert coach.state == "active"
    tick("idle")
    state = coach.snapshot()
    assert coach.session.state == "finished" and coach.session.end_reason == "idle"
    assert state.state == "done" and state.cue == "idle_end" and state.end_reason == "idle"
    summary = coach.pop_summary()
    assert summary is not None and summary.end_reason == "idle"
    assert summary.active_s == pytest.approx(5.0, abs=0.2)
    assert summary.strokes == 5


def test_a_holds_recognition_lag_is_credited_once() -> None:
    active = ActiveTime()
    now, total = 0.0, 0.0
    for _ in range(15):  # 1.5 s of rolling (the grace after the last stroke) ...
        now += 0.1
        total += active.tick(now, 0.1, True)
    for _ in range(15):  # ... then 1.5 s shown idle, until the hold is recognised
        now += 0.1
        total += active.tick(now, 0.1, False)
    # the hold began when the stroke ended, 3 s ago: only the 1.5 s not counted are credited
    assert active.hold_credit(now - 3.0, now) == pytest.approx(1.5, abs=1e-6)
    assert total + active.hold_credit(now - 3.0, now) == pytest.approx(3.0, abs=1e-6)


def test_pain_before_any_session_needs_a_rest_before_rolling_starts_one() -> None:
    session = Session(SessionSettings(restart_rest_s=5.0))
    session.pain(0.0)
    assert session.state == "finished" and session.end_reason == "pain" and session.id is None
    assert not session.may_auto_start

    def live(phase: str) -> LiveState:
        return LiveState(t=0, speed_m_s=0, velocity_m_s=0, phase=phase,  # type: ignore[arg-type]
                         stroke_count=0, hold_time_s=0, too_fast=False, calibrated=True)

    session.observe_phase(live("rolling"), 1.0)
    assert session.state == "finished"
    for i in range(60):
        session.observe_phase(live("idle"), 1.1 + i * 0.1)
    session.observe_phase(live("rolling"), 8.0)
    assert session.state == "running" and session.id is not None


@pytest.mark.parametrize(("text", "key"), [
    ("[service]\nsession_idle_timeout_s = 120.0\n", "service.session_idle_timeout_s"),
    ("[coach]\nrestart_idle_s = 12.0\n", "coach.restart_idle_s"),
])
def test_the_old_session_keys_are_unknown_keys(tmp_path, text, key) -> None:
    # Nothing was released with them: they get the unknown-key error naming them.
    path = tmp_path / "roller.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == key


def test_each_state_accepts_exactly_the_declared_verbs_and_keeps_the_last_refusal() -> None:
    """contract.verbs.POSSIBLE_IN (what the page's and Home Assistant's buttons follow) is
    what the session door really accepts; a refusal stays in the session's ``last_error``
    until the next accepted command (issue 17 item 6)."""
    from roller.contract.command_table import CommandError
    from roller.contract.verbs import POSSIBLE_IN, VERBS

    def door_in(state: str) -> SessionCommands:
        clock = ManualClock(10.0)
        door = SessionCommands.for_coach(Coach(load_routine(), CoachSettings(), clock))
        for verb in {"idle": [], "running": ["start"], "paused": ["start", "pause"],
                     "finished": ["start", "stop"]}[state]:
            door.run(verb)
        assert door.session.state == state
        return door

    for state, accepted in POSSIBLE_IN.items():
        for verb in VERBS:
            door = door_in(state)
            try:
                door.run(verb)
                refused = None
            except CommandError as exc:
                refused = exc
            assert (refused is None) == (verb in accepted), (state, verb, refused)
            last = door.session.to_dict(10.0)["last_error"]
            assert last == (None if refused is None else str(refused)), (state, verb)
    door = door_in("finished")
    with pytest.raises(CommandError):
        door.run("stop")
    assert door.session.to_dict(10.0)["last_error"] == "cannot stop: the session is finished"
    door.run("start")
    assert door.session.to_dict(10.0)["last_error"] is None
