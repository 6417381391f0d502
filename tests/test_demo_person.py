"""The demo's simulated person through the real service (issue 17 item 4): build_service with
``person="demo"`` (an emulated chip, the pipeline, the coach, the history, a real mosquitto) on a
ManualClock, as ``roller demo`` runs it.

The person lies still for :data:`DEMO_START_DELAY_S`, so no session starts before then (unless
Start is pressed); the session starts with the first strokes; a too-fast pass comes within the
routine's first minute; the routine completes with every step's dose met while the person
holds; after the end nothing rolls, so nothing too fast is seen or said."""

from __future__ import annotations

from pathlib import Path

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import DEMO_START_DELAY_S
from roller.commands import demo
from roller.mqtt.client import MqttSettings
from roller.pipeline.events import Stroke, TooFastAlert
from roller.service.config import DeviceSettings, RollerConfig
from roller.service.wiring import build_service

STEP_S = 0.1
T0 = 100.0


def run_demo_person(broker, tmp_path: Path, *, start_at_s: float | None) -> dict:
    """Run the service with the demo's person for 10.5 simulated minutes; press Start
    ``start_at_s`` after the service started (None: never). Returns what was seen, times
    from the service's start [s]."""
    config = RollerConfig(
        device=DeviceSettings(id="demo"),
        mqtt=MqttSettings(host=broker.host, port=broker.port, keepalive_s=2),
        state_dir=str(tmp_path / "state"))
    clock = ManualClock(T0)
    svc = build_service(config, simulate=True, seed=0, clock=clock, person="demo")
    svc.publisher.start()
    assert svc.publisher.wait_connected(5)
    seen: dict = {"strokes": [], "too_fast": [], "states": [], "coach": []}
    try:
        while clock.monotonic() - T0 < 630.0:
            now = clock.monotonic() - T0
            if start_at_s is not None and now >= start_at_s and svc.session.state == "idle":
                svc.submit_command("start", b"", source="gpio")
            clock.advance(STEP_S)
            events = svc.step()
            now = clock.monotonic() - T0
            seen["strokes"] += [now for e in events if isinstance(e, Stroke)]
            seen["too_fast"] += [now for e in events if isinstance(e, TooFastAlert)]
            state = svc.session.state
            if not seen["states"] or seen["states"][-1][1] != state:
                seen["states"].append((now, state))
            coach = svc.coach.snapshot(clock.monotonic())
            seen["coach"].append((now, coach.state, coach.too_fast, coach.cue))
        seen["summary"] = svc.session.routine
        seen["end_reason"] = svc.session.end_reason
    finally:
        svc.close()
    return seen


def check_the_routine(seen: dict, started_s: float) -> None:
    states = seen["states"]
    ended_s = next(t for t, s in states if s == "finished")
    assert seen["end_reason"] == "completed"
    # the person starts rolling after the delay, one too-fast pass in the first minute
    first_stroke = seen["strokes"][0]
    assert DEMO_START_DELAY_S < first_stroke < DEMO_START_DELAY_S + 5
    assert len(seen["too_fast"]) == 1
    assert 0 < seen["too_fast"][0] - max(started_s, first_stroke - 5) < 60
    # every step met its dose, the holds the person made (one per side) counted
    summary = seen["summary"]
    assert all(step["completed"] and step["dose_met"] for step in summary["steps"])
    assert [len(step["holds_s"]) for step in summary["steps"]] == [1] * 7
    assert summary["holds"] == 7 and summary["too_fast_count"] == 1
    # after the end the person lies still: no stroke, no too-fast pass, nothing too fast shown
    assert not [t for t in seen["strokes"] + seen["too_fast"] if t > ended_s]
    after = [c for c in seen["coach"] if c[0] > ended_s]
    assert after and all(state == "done" and not fast for _, state, fast, _ in after)
    assert [s for _, s in states][-1] == "finished"  # no new session: the person lies still
    assert 8 * 60 < ended_s - started_s < 10 * 60


def test_the_session_starts_with_the_demo_persons_first_strokes(broker, tmp_path) -> None:
    seen = run_demo_person(broker, tmp_path, start_at_s=None)
    states = seen["states"]
    assert states[0][1] == "idle"
    started_s = next(t for t, s in states if s == "running")
    # no session while the person lies still; it starts with the first strokes
    assert DEMO_START_DELAY_S < started_s <= seen["strokes"][0] + 0.2
    check_the_routine(seen, started_s)


def test_start_pressed_before_the_person_rolls(broker, tmp_path: Path) -> None:
    seen = run_demo_person(broker, tmp_path, start_at_s=10.0)
    states = seen["states"]
    started_s = next(t for t, s in states if s == "running")
    assert 10.0 <= started_s < 10.5 and not [t for t in seen["strokes"] if t < started_s]
    check_the_routine(seen, started_s)


def test_the_demo_prints_the_persons_delay() -> None:
    assert demo.DEMO_START_DELAY_S == DEMO_START_DELAY_S
