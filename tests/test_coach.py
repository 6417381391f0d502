"""The coach on scripted sessions: a ManualClock and scripted live states and events."""

from __future__ import annotations

import dataclasses
import json

import pytest

from firmware_bridge.clock import ManualClock
from roller.coaching.coach import Coach, CoachSettings, CoachState
from roller.coaching.prompts import PAIN_ADVICE
from roller.coaching.routine import load_routine, parse_routine
from roller.coaching.session import SessionSettings
from roller.coaching.session_commands import SessionCommands
from roller.contract.command_table import CommandError
from roller.pipeline.events import Hold, HoldStarted, LiveState, Stroke, TooFast, TooFastAlert

TICK_S = 0.1


def live(t: float, phase: str = "idle", *, speed: float = 0.0, strokes: int = 0,
         hold_s: float = 0.0, too_fast: bool = False) -> LiveState:
    return LiveState(t=t, speed_m_s=speed, velocity_m_s=speed, phase=phase,  # type: ignore[arg-type]
                     stroke_count=strokes, hold_time_s=hold_s, too_fast=too_fast,
                     calibrated=True)


class Script:
    """Drives a coach tick by tick (10 Hz) on a manual clock, like the service loop would."""

    def __init__(self, coach: Coach, clock: ManualClock) -> None:
        self.coach = coach
        self.clock = clock
        self.strokes = 0
        self.hold_start: float | None = None
        self.states: list[CoachState] = []
        self.door = SessionCommands.for_coach(coach)

    def command(self, verb: str, payload: dict | None = None) -> CoachState:
        """A command through the one door, as MQTT delivers it; the coach's state after it."""
        self.door.run(verb, json.dumps(payload).encode() if payload is not None else b"")
        return self.coach.snapshot()

    def tick(self, phase: str = "idle", events=(), *, speed: float = 0.0,
             too_fast: bool = False) -> CoachState:
        self.clock.advance(TICK_S)
        now = self.clock.monotonic()
        if phase == "holding":
            if self.hold_start is None:
                self.hold_start = now
        else:
            self.hold_start = None
        hold_s = now - self.hold_start if self.hold_start is not None else 0.0
        state = self.coach.update(list(events), live(now, phase, speed=speed,
                                                     strokes=self.strokes, hold_s=hold_s,
                                                     too_fast=too_fast), now)
        self.states.append(state)
        return state

    def run(self, seconds: float, phase: str = "idle", **kw) -> CoachState:
        state = None
        for _ in range(round(seconds / TICK_S)):
            state = self.tick(phase, **kw)
        assert state is not None
        return state

    def roll(self, seconds: float, speed: float = 0.025) -> CoachState:
        """Roll with one stroke event per second."""
        state = None
        for i in range(round(seconds / TICK_S)):
            events = []
            if i % 10 == 9:
                now = self.clock.monotonic() + TICK_S
                self.strokes += 1
                events.append(Stroke(start=now - 1.0, end=now, distance_m=speed,
                                     peak_speed_m_s=speed * 1.2, mean_speed_m_s=speed,
                                     direction=1 if self.strokes % 2 else -1, emitted_at=now))
            state = self.tick("rolling", events, speed=speed)
        assert state is not None
        return state


def two_step_routine(target_s: float = 10.0):
    """Two steps whose dose is ``target_s`` of rolling (no hold needed)."""
    dose = {"dose_rolling_s": target_s, "dose_holds": 0, "dose_rolling_only_s": target_s}
    return parse_routine({
        "name": "t", "title": "Test", "closing": "All done here.",
        "steps": [
            {"id": "g_r", "title": "Glutes right", "muscle": "glutes", "side": "right",
             "position": "sit right", "cues": ["cue one", "cue two"],
             "target_active_s": target_s} | dose,
            {"id": "g_l", "title": "Glutes left", "muscle": "glutes", "side": "left",
             "position": "sit left", "target_active_s": target_s} | dose,
        ]})


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(1000.0)


SESSION_KEYS = {f.name for f in dataclasses.fields(SessionSettings)}


def make(clock: ManualClock, routine=None, **settings) -> Script:
    """A coach on its own session; ``settings`` are [coach] or [session] keys (sessions of a
    second or more are kept, unless ``min_record_active_s`` says otherwise)."""
    settings.setdefault("min_record_active_s", 1.0)
    session = {k: settings.pop(k) for k in list(settings) if k in SESSION_KEYS}
    coach = Coach(routine or two_step_routine(), CoachSettings(**settings), clock,
                  wall_clock=lambda: 1_700_000_000.0,
                  session_settings=SessionSettings(**session))
    return Script(coach, clock)


def test_ready_until_rolling_starts_then_idle_does_not_count(clock) -> None:
    s = make(clock)
    state = s.run(5)
    assert state.state == "ready" and state.cue == "ready"
    assert "start" in state.prompt.lower()
    state = s.roll(3)
    assert state.state == "active" and state.step["id"] == "g_r"
    assert state.cue == "rolling" and state.prompt == "cue one"
    # about 3 s of rolling counted (the first tick starts the session)
    assert state.step_active_s == pytest.approx(2.9, abs=0.11)
    idle = s.run(20)
    assert idle.step_active_s == pytest.approx(state.step_active_s)  # idle doesn't count
    assert idle.cue == "keep_going"
    assert idle.sides_s["right"] == pytest.approx(state.step_active_s)
    assert idle.strokes == 3


def test_ready_asks_for_stillness_until_calibrated(clock) -> None:
    s = make(clock)
    state = s.coach.update([], LiveState(t=0, speed_m_s=0, velocity_m_s=0, phase="idle",
                                         stroke_count=0, hold_time_s=0, too_fast=False,
                                         calibrated=False), clock.monotonic())
    assert state.cue == "calibrating" and "still" in state.prompt
    assert s.run(1).cue == "ready"  # the script's live states are calibrated


def test_without_auto_start_it_waits_for_the_start_command(clock) -> None:
    s = make(clock, auto_start=False)
    assert s.roll(3).state == "ready"
    s.run(1)
    state = s.command("start")
    assert state.state == "active" and state.cue == "position"
    assert state.prompt == "sit right"


def test_too_fast_prompt_follows_the_alert_and_fades(clock) -> None:
    s = make(clock)
    s.roll(2)
    now = clock.monotonic()
    alert = TooFastAlert(start=now - 0.3, speed_m_s=0.11, limit_m_s=0.05, emitted_at=now)
    state = s.tick("rolling", [alert], speed=0.11, too_fast=True)
    assert state.cue == "too_fast" and state.too_fast
    assert "slow down" in state.prompt.lower() and "11 cm/s" in state.detail
    s.run(1, "rolling", speed=0.11, too_fast=True)
    state = s.tick("rolling", [TooFast(start=now - 0.3, end=now + 1.0, peak_speed_m_s=0.12,
                                       limit_m_s=0.05, emitted_at=now)], speed=0.02)
    assert state.cue == "too_fast"  # the prompt stays a few seconds after the excursion
    state = s.roll(4)
    assert state.cue == "rolling" and not state.too_fast
    summary = s.command("stop").summary
    assert summary["too_fast_count"] == 1
    assert summary["too_fast_s"] == pytest.approx(1.3)
    assert summary["peak_speed_m_s"] == pytest.approx(0.12)


def test_hold_breathing_countdown_then_reached_then_long(clock) -> None:
    routine = two_step_routine(target_s=200)
    s = make(clock, routine)
    s.roll(2)
    s.run(2.9)  # the stillness the pipeline needs to recognise a hold: not counted yet...
    state = s.tick("holding", [HoldStarted(start=clock.monotonic() - 3.0,
                                           emitted_at=clock.monotonic())])
    assert state.cue == "hold" and state.hold is not None
    assert state.breath == "in"
    seen = {state.breath}
    for _ in range(100):  # 10 s of holding
        state = s.tick("holding")
        seen.add(state.breath)
        assert state.cue == "hold"
    assert seen == {"in", "out"}
    assert state.hold["remaining_s"] == pytest.approx(20 - state.hold["elapsed_s"])
    assert 9.9 < state.hold["elapsed_s"] < 10.2
    state = s.run(10.1, "holding")
    assert state.cue == "hold_reached" and "20 seconds reached" in state.prompt
    assert state.hold["remaining_s"] == 0
    state = s.run(10, "holding")
    assert state.cue == "hold_long"
    # ...then credited once: 2 s rolling + 3 s + ~30.2 s holding
    assert state.step_active_s == pytest.approx(2 + 3 + 30.2, abs=0.25)
    state = s.tick("rolling", [Hold(start=clock.monotonic() - 33.2, end=clock.monotonic(),
                                    emitted_at=clock.monotonic())])
    assert state.hold is None and state.breath is None
    summary = s.command("stop").summary
    assert summary["holds"] == 1 and summary["longest_hold_s"] == pytest.approx(33.2)


def test_switch_sides_then_next_step_then_routine_done(clock) -> None:
    s = make(clock, transition_s=5)
    state = s.roll(10.2)
    assert state.state == "transition" and state.cue == "switch_sides"
    assert "left side" in state.prompt and state.detail == "sit left"
    state = s.roll(3)  # rolling while changing position does not count
    assert state.state == "transition"
    assert state.sides_s["left"] == 0
    state = s.run(2.1)
    assert state.state == "active" and state.step["id"] == "g_l"
    assert state.cue == "position" and state.step_active_s == 0
    state = s.roll(10.1)
    assert state.state == "done" and state.cue == "routine_done"
    assert state.prompt == "All done here."
    assert state.routine_progress == 1.0
    summary = state.summary
    assert summary["end_reason"] == "completed"
    assert summary["sides_s"]["left"] == pytest.approx(10, abs=0.15)
    assert summary["sides_s"]["right"] == pytest.approx(10, abs=0.15)
    assert summary["left_share"] == pytest.approx(0.5, abs=0.01)
    assert [st["completed"] for st in summary["steps"]] == [True, True]
    # the session's strokes, those while changing position too; the steps' are their own
    assert summary["strokes"] == 23 == s.coach.session.strokes
    assert sum(st["strokes"] for st in summary["steps"]) == 20
    assert summary["active_s"] == s.coach.session.active_s
    assert summary["mean_speed_m_s"] == pytest.approx(0.025)
    assert s.coach.pop_summary().end_reason == "completed"
    assert s.coach.pop_summary() is None  # handed over once
    json.dumps(state.to_dict())  # the MQTT payload is plain JSON


def test_step_done_prompt_names_the_next_muscle(clock) -> None:
    routine = load_routine()
    s = make(clock, routine)
    s.roll(routine.steps[0].dose_rolling_only_s + 0.2)  # the dose, by rolling alone
    s.run(10)  # transition
    state = s.roll(routine.steps[1].dose_rolling_only_s + 0.2)
    assert state.cue == "step_done" and "Next: Piriformis, right side" in state.prompt


def test_pause_resume_next_and_stop(clock) -> None:
    s = make(clock, auto_advance=False)
    s.roll(4)
    state = s.command("pause")
    assert state.state == "paused" and state.cue == "paused"
    assert s.roll(5).step_active_s == pytest.approx(state.step_active_s)
    state = s.command("resume")
    assert state.state == "active"
    s.roll(7)
    state = s.run(30)
    assert state.state == "transition"  # waits for next without auto_advance
    state = s.command("next")
    assert state.state == "active" and state.step["id"] == "g_l"
    s.roll(2)
    state = s.command("start_pause")
    assert state.state == "paused"
    state = s.command("start_pause")
    assert state.state == "active"
    state = s.command("next")  # skip the last step
    assert state.state == "done"
    steps = state.summary["steps"]
    assert steps[0]["completed"] and not steps[0]["skipped"]
    assert steps[1]["skipped"] and not steps[1]["completed"]
    with pytest.raises(CommandError, match="cannot stop: the session is finished") as refused:
        s.command("stop")  # the state forbids it: refused, nothing changes
    assert refused.value.code == "not_possible" and s.coach.state == "done"


def test_stop_ends_with_summary(clock) -> None:
    s = make(clock)
    s.roll(6)
    state = s.command("stop")
    assert state.state == "done" and state.cue == "stopped"
    assert state.summary["end_reason"] == "stopped"
    assert state.summary["started_at"] == 1_700_000_000.0
    assert state.summary["duration_s"] == pytest.approx(6, abs=0.15)


def test_pain_stops_at_once_with_advice(clock) -> None:
    s = make(clock)
    s.roll(12)
    state = s.command("pain")
    assert state.state == "done" and state.cue == "pain_stop"
    assert "stop" in state.prompt.lower() and "breathe" in state.prompt.lower()
    assert "physiotherapist" in state.detail
    assert state.summary["end_reason"] == "pain" and state.summary["advice"] == PAIN_ADVICE
    assert s.coach.pop_summary().end_reason == "pain"
    # rolling on right after does not restart a session by itself
    assert s.roll(5).state == "done"
    # pain before any session still gives the advice, with nothing to record
    other = make(ManualClock())
    state = other.command("pain")
    assert state.cue == "pain_stop" and state.summary is None
    assert other.coach.pop_summary() is None


def test_a_new_session_auto_starts_only_after_a_quiet_spell(clock) -> None:
    s = make(clock, restart_rest_s=30)
    s.roll(3)
    s.command("stop")
    s.run(10)
    assert s.roll(1).state == "done"
    s.run(31)
    state = s.roll(1)
    assert state.state == "active" and state.step_active_s < 1.5


def test_a_session_too_short_to_keep_is_neither_shown_nor_stored(clock) -> None:
    s = make(clock, min_record_active_s=10)
    s.roll(2)
    state = s.command("stop")
    assert state.state == "done" and state.summary is None  # not shown...
    assert s.coach.pop_summary() is None                   # ...and not stored: one rule
    assert s.coach.session.routine is None
    s.run(31)
    s.roll(11)
    state = s.command("stop")
    assert state.summary is not None                        # shown...
    assert s.coach.pop_summary().active_s == state.summary["active_s"]  # ...and stored


def test_commands_are_validated_once_and_refused_with_a_kind(clock) -> None:
    s = make(clock)
    refusals = {
        "unknown_command": (("jump", None), "unknown command 'jump'"),
        "bad_payload": (("start", {"step": "x"}),
                        "cmd/start: step: expected one of g_r, g_l, got 'x'"),
    }
    for code, ((verb, payload), message) in refusals.items():
        with pytest.raises(CommandError, match=message) as refused:
            s.command(verb, payload)
        assert refused.value.code == code
    for verb, payload in (("start", {"speed": 3}), ("pause", {"now": True})):
        with pytest.raises(CommandError) as refused:
            s.command(verb, payload)
        assert refused.value.code == "bad_payload", refused.value
    for verb in ("pause", "resume", "stop"):
        with pytest.raises(CommandError, match=f"cannot {verb}: the session is idle") as no:
            s.command(verb)
        assert no.value.code == "not_possible"
    assert s.coach.session.state == "idle"  # nothing refused changed anything
    state = s.command("start", {"step": "g_l"})
    assert state.step["id"] == "g_l"
    with pytest.raises(CommandError, match="a session is already running") as again:
        s.command("start")
    assert again.value.code == "not_possible"
    s.command("stop")
    with pytest.raises(CommandError, match="next step: the session is finished") as done:
        s.command("next")
    assert done.value.code == "not_possible"


def test_the_slow_down_prompt_names_the_configured_target(clock) -> None:
    for target in (0.025, 0.04):
        coach = Coach(two_step_routine(), CoachSettings(), clock, speed_target_m_s=target)
        s = Script(coach, clock)
        s.roll(2)
        now = clock.monotonic()
        alert = TooFastAlert(start=now - 0.3, speed_m_s=0.11, limit_m_s=0.08, emitted_at=now)
        state = s.tick("rolling", [alert], speed=0.11, too_fast=True)
        assert state.cue == "too_fast"
        figure = f"{target * 100:.1f}".removesuffix(".0")
        assert f"about {figure} centimetres each second" in state.prompt
        assert "inch" not in state.prompt
        assert f"aim for {target * 100:.1f} cm/s" in state.detail


def test_a_stall_between_updates_counts_at_most_the_gap_limit(clock) -> None:
    s = make(clock, max_update_gap_s=1.0)
    s.roll(2)
    clock.advance(30)  # the service loop stalled
    state = s.tick("rolling")
    assert state.step_active_s == pytest.approx(2 - TICK_S + 1.0, abs=0.11)


def dose_routine(rolling_s: float = 5.0, holds: int = 1, rolling_only_s: float = 10.0):
    """Two steps whose dose is ``rolling_s`` of rolling and ``holds`` holds of 20 s, or
    ``rolling_only_s`` of rolling alone."""
    data = two_step_routine()
    return dataclasses.replace(data, steps=tuple(
        dataclasses.replace(st, dose_rolling_s=rolling_s, dose_holds=holds,
                            dose_rolling_only_s=rolling_only_s) for st in data.steps))


def test_a_step_ends_when_its_hold_reaches_the_window_and_the_dose_is_met(clock) -> None:
    s = make(clock, dose_routine(), transition_s=4.0)
    s.roll(5.2)
    assert s.coach.snapshot().dose == pytest.approx(
        {"rolling_s": 5.0, "rolling_target_s": 5.0, "rolling_only_s": 10.0, "holds": 0,
         "holds_target": 1, "hold_min_s": 20.0, "progress": 0.5, "met": False}, abs=0.25)
    start = clock.monotonic()
    state = s.tick("holding", [HoldStarted(start=start, emitted_at=start + TICK_S)])
    holding = [s.tick("holding") for _ in range(150)]  # 15 s more: the hold is short of 20 s
    assert all(st.state == "active" and st.hold is not None for st in holding)
    assert holding[-1].step_active_s > 15
    assert holding[-1].cue == "hold"
    state = s.run(5.1, "holding")  # the hold reaches 20 s: the dose is met, the step ends
    assert state.state == "transition" and state.cue == "switch_sides"
    assert state.prompt.startswith("Dose met")
    assert s.coach.announcer.current.text == "Dose met, switch sides."
    assert state.hold is None  # no countdown between steps
    ended_at = max(st.t_s for st in s.states if st.state == "active")
    first = next(st for st in s.states if st.hold is not None)
    assert ended_at - first.t_s >= 19.9
    # the hold goes on into the next step: it is still the first step's
    s.run(6, "holding")
    late = s.run(2, "holding")
    assert late.state == "active" and late.step["id"] == "g_l"
    assert late.hold is None and late.step_active_s == 0.0
    assert late.cue == "position"
    end = clock.monotonic()
    state = s.tick("idle", [Hold(start=start, end=end, emitted_at=end)])
    s.roll(11)
    summary = s.coach.snapshot().summary
    assert summary is not None
    steps = {st["id"]: st for st in summary["steps"]}
    assert steps["g_r"]["holds_s"] == [pytest.approx(end - start)]
    assert steps["g_l"]["holds_s"] == []


def test_a_short_hold_is_not_a_dose_and_a_rest_keeps_the_dose(clock) -> None:
    s = make(clock, dose_routine())
    s.roll(6)
    start = clock.monotonic()
    s.tick("holding", [HoldStarted(start=start, emitted_at=start + TICK_S)])
    state = s.run(4, "holding")
    end = clock.monotonic()
    state = s.tick("rolling", [Hold(start=start, end=end, emitted_at=end)])
    assert state.state == "active" and state.dose["holds"] == 0  # 4 s is not a dose's hold
    rolled = state.dose["rolling_s"]
    state = s.run(30)  # a rest, and a pause: the dose stays
    s.command("pause")
    state = s.command("resume")
    assert state.dose["rolling_s"] == pytest.approx(rolled) and not state.dose["met"]
    state = s.roll(10.2 - rolled)  # rolling alone completes it at 10 s
    assert state.state == "transition"
    records = s.coach._records
    assert records[0].holds_s == [pytest.approx(end - start)]


def test_next_speaks_the_next_steps_position(clock) -> None:
    s = make(clock)
    s.roll(3)
    state = s.command("next")
    assert state.step["id"] == "g_l"
    assert state.speech is not None and state.speech["kind"] == "position"
    assert state.speech["text"] == "Glutes left. sit left"
    assert state.speech["decided_s"] == pytest.approx(clock.monotonic())


def test_a_hold_past_its_window_counts_when_the_session_ends_during_it(clock) -> None:
    """Issue 17 item 5: the hold reached its 20 s and the person stopped while still on the
    spot: the summary, its step and the session count it (the pipeline's end of it comes
    later and is not counted twice)."""
    s = make(clock, dose_routine(rolling_only_s=100.0))
    s.roll(3)
    start = clock.monotonic()
    s.tick("holding", [HoldStarted(start=start, emitted_at=start + TICK_S)])
    s.run(21, "holding")
    summary = s.command("stop").summary
    assert summary["holds"] == 1 == s.coach.session.holds
    assert summary["longest_hold_s"] == pytest.approx(21, abs=0.2)
    assert summary["steps"][0]["holds_s"] == [pytest.approx(21, abs=0.2)]
    assert summary["doses"]["glutes"]["right"]["holds"] == 1
    end = clock.monotonic()
    s.tick("rolling", [Hold(start=start, end=end, emitted_at=end)])
    assert s.coach.session.holds == 1
