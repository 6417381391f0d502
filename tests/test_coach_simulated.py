"""The coach on the simulator: a simulated person's IMU -> the real pipeline -> the coach.

Deterministic: the simulated session has a fixed seed and the coach runs on a ManualClock set to
the recording's sample times, exactly as the service would drive it block by block.
"""

from __future__ import annotations

from collections import Counter

import pytest

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import SimulatedRoller, person_scenario
from roller.coaching.coach import Coach, CoachSettings, CoachState
from roller.coaching.routine import load_routine
from roller.coaching.session_commands import SessionCommands
from roller.pipeline import Pipeline, PipelineSettings

RATE_HZ = 200.0
BLOCK = 20  # samples per pipeline update: 0.1 s, the service's pace


def lively_seed(duration_s: float, first: int = 1) -> int:
    """The first seed from ``first`` whose simulated person rolls too fast at least 3 times in
    the first 250 s: the tests need too-fast passes, whatever the simulator's random draws."""
    for seed in range(first, first + 50):
        truth = SimulatedRoller(person_scenario(duration_s, seed=seed), seed=seed).truth()
        if sum(1 for x in truth.too_fast if x.start < 250) >= 3:
            return seed
    raise AssertionError("no simulated session with too-fast passes in 50 seeds")


def coach_run(duration_s: float, seed: int, *, commands: dict[float, str] | None = None,
              ) -> tuple[list[CoachState], Coach, SimulatedRoller]:
    sim = SimulatedRoller(person_scenario(duration_s, seed=seed), seed=seed)
    t, samples = sim.recording(RATE_HZ)
    pipeline = Pipeline(PipelineSettings())
    clock = ManualClock(float(t[0]))
    coach = Coach(load_routine(), CoachSettings(), clock, wall_clock=lambda: 1.7e9)
    door = SessionCommands.for_coach(coach)
    pending = sorted((commands or {}).items())
    states = []
    for i in range(0, len(t), BLOCK):
        events = pipeline.update(t[i:i + BLOCK], samples[i:i + BLOCK])
        now = float(t[min(i + BLOCK, len(t)) - 1])
        clock.advance(max(now - clock.monotonic(), 0.0))
        while pending and pending[0][0] <= now:
            door.run(pending.pop(0)[1])
        states.append(coach.update(events, pipeline.live, now))
    return states, coach, sim


@pytest.fixture(scope="module")
def full_routine():
    return coach_run(600.0, seed=lively_seed(600.0))


def test_a_simulated_person_completes_the_routine(full_routine) -> None:
    states, coach, sim = full_routine
    routine = coach.routine
    final = states[-1]
    assert final.state == "done" and final.cue == "routine_done"
    s = final.summary
    assert s["end_reason"] == "completed"
    assert all(step["completed"] for step in s["steps"])
    # every step ended with its dose met (rolling, plus a hold of its window or rolling
    # alone), and not long after: a step waits only for a hold under way to reach its window
    for step, target in zip(s["steps"], routine.steps, strict=True):
        holds = sum(1 for h in step["holds_s"] if h >= target.hold_min_s)
        assert step["dose_met"], step
        assert step["rolling_s"] >= target.dose_rolling_s - 0.2 and (
            holds >= target.dose_holds or step["rolling_s"] >= target.dose_rolling_only_s
            - 0.2 or step["holding_s"] >= target.hold_min_s), step
        assert step["rolling_s"] < target.dose_rolling_only_s + 0.5, step
    doses = s["doses"]
    assert set(doses) == {st.muscle for st in routine.steps}
    assert doses["glutes"]["left"]["rolling_s"] >= 30 and doses["glutes"]["left_share"] > 0.2
    assert s["left_share"] == pytest.approx(0.5, abs=0.2)
    # idle time does not count: the session lasted longer than its steps' active time and
    # the changes of position between them; its own active time never exceeds its length
    steps_active_s = sum(step["active_s"] for step in s["steps"])
    assert s["duration_s"] > steps_active_s + 6 * CoachSettings().transition_s - 1
    assert steps_active_s <= s["active_s"] <= s["duration_s"]
    assert s["active_s"] == coach.session.active_s
    # the steps came in the routine's order
    order = [st.step["id"] for st in states if st.state == "active"]
    assert list(dict.fromkeys(order)) == [step.id for step in routine.steps]
    # what the person did is counted
    truth = sim.truth()
    assert 0 < s["strokes"] <= len(truth.strokes)
    assert s["holds"] >= 1 and 20 <= s["longest_hold_s"] <= 35
    assert 1 <= s["too_fast_count"] <= len(truth.too_fast)
    assert s["peak_speed_m_s"] > 0.05


def test_prompts_follow_what_the_pipeline_sees(full_routine) -> None:
    states, _, _ = full_routine
    cues = Counter(st.cue for st in states)
    for cue in ("calibrating", "rolling", "too_fast", "hold", "hold_reached", "switch_sides",
                "step_done", "routine_done"):
        assert cues[cue] > 0, f"never prompted {cue}: {cues}"
    # a slow-down prompt appears within a second of the pipeline's live too-fast flag
    first_fast = next(i for i, st in enumerate(states)
                      if st.state == "active" and st.too_fast)
    assert states[first_fast].cue == "too_fast"
    # holds show a countdown with a breathing rhythm
    holds = [st for st in states if st.cue == "hold"]
    assert {st.breath for st in holds} == {"in", "out"}
    assert all(0 < st.hold["remaining_s"] <= st.hold["min_s"] for st in holds)
    # switching sides happens between the right and left glutes
    first_switch = next(st for st in states if st.cue == "switch_sides")
    assert first_switch.step["id"] == "glutes_right"
    assert first_switch.next_step["id"] == "glutes_left"


def test_pain_mid_session_on_the_simulator() -> None:
    states, coach, _ = coach_run(90.0, seed=2, commands={60.0: "pain"})
    final = states[-1]
    assert final.state == "done" and final.cue == "pain_stop"
    assert final.summary["end_reason"] == "pain"
    assert "professional" in final.summary["advice"] or "doctor" in final.summary["advice"]
    assert 0 < final.summary["active_s"] < 60
    summary = coach.pop_summary()
    assert summary is not None and summary.end_reason == "pain"
    # nothing counts after the pain stop
    after = [st for st in states if st.t_s > 60.5]
    assert after and all(st.state == "done" for st in after)


def test_the_same_seed_gives_the_same_session() -> None:
    a, _, _ = coach_run(60.0, seed=3)
    b, _, _ = coach_run(60.0, seed=3)
    # two runs are two sessions (each has its own unique id); everything else is the same
    assert [s.to_dict() | {"summary": None, "session_id": None} for s in a] == \
        [s.to_dict() | {"summary": None, "session_id": None} for s in b]
