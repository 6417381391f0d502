"""The speech policy: the announcer's rules with explicit times, then a whole simulated routine.

Deterministic: no clock is read; the routine runs on the simulator with a ManualClock
(tests/test_coach_simulated.py's ``coach_run``).
"""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from test_coach_simulated import coach_run, lively_seed

from roller.coaching.speech import Announcer, SpeechSettings, speaking_time_s
from roller.contract.cues import Priority


def drive(announcer: Announcer, until_s: float, step_s: float = 0.1, start_s: float = 0.0):
    """Call update every ``step_s`` from ``start_s`` to ``until_s``; the utterances decided."""
    out = []
    t = start_s
    while t <= until_s + 1e-9:
        u = announcer.update(round(t, 6))
        if u is not None:
            out.append(u)
        t += step_s
    return out


def test_speaking_time_follows_the_words() -> None:
    assert speaking_time_s("one two three four five", 2.5) == pytest.approx(2.0)
    assert speaking_time_s("Go.", 2.5) == pytest.approx(0.8)  # a floor for short words


def test_equal_or_lower_priority_waits_for_the_end_of_a_sentence() -> None:
    a = Announcer()
    a.offer("Glutes, right side. Sit on the roller and cross your ankle.", Priority.STEP,
            "position", 0.0)  # 11 words: 4.4 s
    first = a.update(0.0)
    assert first is not None and first.duration_s == pytest.approx(4.4)
    a.offer("That side is done.", Priority.STEP, "switch_sides", 1.0)
    said = drive(a, 3.0, start_s=0.1)
    assert said == []  # equal priority: it waits, then is stale (> 3 s) before the end
    a.offer("Stay on this spot and breathe deeply.", Priority.HOLD, "hold", 4.0)
    said = drive(a, 6.0, start_s=3.1)
    # spoken after the first one's end (4.4 s) and a breath (0.6 s)
    assert [u.text for u in said] == ["Stay on this spot and breathe deeply."]
    assert said[0].decided_s == pytest.approx(5.0)
    assert a.dropped_stale == 1


def test_higher_priority_interrupts_only_lower_sentences() -> None:
    a = Announcer()
    a.offer("Keep going: slow passes.", Priority.ENCOURAGEMENT, "rolling", 0.0)
    assert a.update(0.0) is not None
    a.offer("Slow down: about an inch each second.", Priority.SLOW_DOWN, "too_fast", 0.5)
    u = a.update(0.5)
    assert u is not None and u.kind == "too_fast"  # encouragement may be cut by a slow-down
    # a step's instructions are cut only for safety; a slow-down meanwhile is dropped
    a.offer("Piriformis. Same seat as for the glutes, lean onto the hip.", Priority.STEP,
            "position", 10.0)
    assert a.update(10.0).kind == "position"
    a.offer("Slow down: about an inch each second.", Priority.SLOW_DOWN, "too_fast", 11.0)
    assert a.update(11.0) is None
    a.offer("Stop rolling now.", Priority.SAFETY, "pain_stop", 12.0)
    assert a.update(12.0).kind == "pain_stop"
    # safety does not even wait for the breath after a sentence
    b = Announcer()
    b.offer("Go.", Priority.ENCOURAGEMENT, "rolling", 0.0)
    assert b.update(0.0) is not None
    b.offer("Maybe later.", Priority.HOLD, "hold", 0.9)
    b.offer("Stop rolling now.", Priority.SAFETY, "pain_stop", 0.9)
    assert b.update(0.9).kind == "pain_stop"  # 0.1 s after the end of "Go." (0.8 s)


def test_next_replaces_the_skipped_steps_position() -> None:
    from firmware_bridge.clock import ManualClock
    from roller.coaching.coach import Coach
    from roller.coaching.routine import load_routine
    from roller.coaching.session_commands import SessionCommands
    from roller.pipeline.events import LiveState

    clock = ManualClock(100.0)
    coach = Coach(load_routine(), clock=clock)
    rolling = LiveState(t=0, speed_m_s=0.02, velocity_m_s=0.02, phase="rolling",
                        stroke_count=0, hold_time_s=0, too_fast=False, calibrated=True)
    for _ in range(10):
        clock.advance(0.1)
        first = coach.update([], rolling, clock.monotonic()).speech
    assert first["kind"] == "position" and first["duration_s"] > 2  # still being said
    SessionCommands.for_coach(coach).run("next")
    skipped = coach.snapshot().speech
    second = coach.routine.steps[1]
    assert skipped["text"] == f"{second.spoken_title}. {second.spoken_position}"
    assert skipped["decided_s"] == clock.monotonic() and skipped["replaces_id"] == first["id"]


def test_no_sentence_more_than_twice_a_minute() -> None:
    a = Announcer()
    said = []
    for t in range(0, 120, 10):
        a.offer("Slow down: about an inch each second.", Priority.SLOW_DOWN, "too_fast", t)
        said += drive(a, t + 5, start_s=t)
    times = [u.decided_s for u in said]
    assert times == [0, 10, 60, 70]  # two, then quiet until the first is a minute old
    assert a.dropped_repeat == 8


def test_encouragement_needs_quiet_and_a_budget() -> None:
    a = Announcer(SpeechSettings(quiet_s=20.0, max_per_minute=6))
    said = []
    for t in range(0, 60, 4):  # a new cue every 4 s
        a.offer(f"Cue number {t}.", Priority.ENCOURAGEMENT, "rolling", t)
        said += drive(a, t + 3.9, start_s=t)
    gaps = [b.decided_s - a_.decided_s for a_, b in itertools.pairwise(said)]
    assert said and all(g >= 20.0 for g in gaps)
    # hold milestones are not held back by the quiet rule, but by the budget of 6 a minute
    b = Announcer()
    said = []
    for t in range(0, 60, 5):
        b.offer(f"Hold milestone {t}.", Priority.HOLD, "hold", t)
        said += drive(b, t + 4.9, start_s=t)
    assert len(said) == 6 and b.dropped_budget == 6


def _page_model(states):
    """What a page that speaks each new utterance once would do: (utterances, cut-offs).

    A cut-off is an utterance started before the previous one's estimated end.
    """
    said, seen = [], set()
    for st in states:
        sp = st.speech
        if sp and sp["id"] not in seen:
            seen.add(sp["id"])
            said.append(sp)
    cuts = [(a, b) for a, b in itertools.pairwise(said)
            if b["decided_s"] < a["decided_s"] + a["duration_s"]]
    return said, cuts


@pytest.fixture(scope="module")
def routine_speech():
    states, coach, _ = coach_run(600.0, seed=lively_seed(600.0))
    return states, coach


def test_a_simulated_routine_is_worth_listening_to(routine_speech) -> None:
    states, coach = routine_speech
    said, cuts = _page_model(states)
    summary = states[-1].summary
    assert summary["end_reason"] == "completed"
    active_min = summary["active_s"] / 60.0
    # about 6 spoken prompts per active minute at most
    assert len(said) / active_min <= 6.5, [u["text"] for u in said]
    # no sentence cut except by a safety or slow-down sentence
    assert [(a["kind"], b["kind"]) for a, b in cuts if b["priority"] < Priority.SLOW_DOWN] == []
    # the voice talks at most a third of the active time; nothing in brackets is read aloud
    assert sum(u["duration_s"] for u in said) <= summary["active_s"] / 3
    assert [u["text"] for u in said if "(" in u["text"]] == []
    # never stale (a step's instructions wait for the sentence before them, a little longer)
    settings = coach.announcer.settings
    for u in said:
        limit = settings.step_stale_s if u["kind"] == "position" else settings.stale_s
        assert u["decided_s"] - u["asked_s"] <= limit, u
    # no sentence more than twice in 60 s
    for u in said:
        same = [v for v in said if v["text"] == u["text"]
                and u["decided_s"] <= v["decided_s"] < u["decided_s"] + 60]
        assert len(same) <= 2, u["text"]
    # each step's position spoken when it begins, and not cut off
    cut_ids = {a["id"] for a, _ in cuts}
    for i, step in enumerate(coach.routine.steps):
        began = next(st.t_s for st in states if st.step_index == i and st.state == "active")
        spoken = [u for u in said if u["kind"] == "position"
                  and step.spoken_position in u["text"] and step.spoken_caution in u["text"]]
        assert spoken, f"the position (and caution) of {step.id} was never spoken"
        assert len(spoken[0]["text"].split()) <= 24, spoken[0]["text"]
        assert spoken[0]["asked_s"] == pytest.approx(began, abs=0.01)
        assert spoken[0]["id"] not in cut_ids, f"the position of {step.id} was cut off"
    # quiet stretches while the person does the right thing: a long silence in every step
    kinds = Counter(u["kind"] for u in said)
    assert kinds["position"] == len(coach.routine.steps)
    times = [u["decided_s"] for u in said]
    longest_quiet = max(b - a for a, b in itertools.pairwise(times))
    assert longest_quiet >= 15.0
