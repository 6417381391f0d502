"""The demo's simulated person through the real pipeline and coach (issue 17 item 4): when the
session starts, when the too-fast pass comes, when each step's dose is met (and what the person
was doing then), when the routine ends, and what the pipeline still sees after the end.

Times are seconds from the sensor's start (``roller demo`` starts the service a second or two
after it prints its delay). The coach runs on its own session with ``[session] auto_start``,
as in ``roller demo`` when nobody presses Start.

    .venv/bin/python benchmarks/bench_demo_person.py [--seed 0]
"""

from __future__ import annotations

import argparse

import numpy as np

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import DEMO_START_DELAY_S, SimulatedRoller, demo_scenario
from roller.coaching.coach import Coach, CoachSettings
from roller.coaching.routine import load_routine
from roller.pipeline import Pipeline, PipelineSettings
from roller.pipeline.events import Stroke, TooFastAlert

RATE_HZ = 200.0
BLOCK = 20  # 0.1 s per update, the service's pace


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    scenario = demo_scenario(seed=args.seed)
    sim = SimulatedRoller(scenario, seed=args.seed)
    active_s = sum(seg.duration_s for seg in scenario.segments[:-1])
    t = np.arange(0.0, active_s + 120.0, 1.0 / RATE_HZ)
    samples = sim.imu(t)
    pipeline = Pipeline(PipelineSettings())
    clock = ManualClock(0.0)
    coach = Coach(load_routine(), CoachSettings(), clock)
    started = ended = None
    strokes: list[float] = []
    fast: list[float] = []
    steps: list[tuple[float, str, str]] = []
    prev = None
    for i in range(0, len(t), BLOCK):
        events = pipeline.update(t[i:i + BLOCK], samples[i:i + BLOCK])
        now = float(t[min(i + BLOCK, len(t)) - 1])
        clock.advance(max(now - clock.monotonic(), 0.0))
        strokes += [now for e in events if isinstance(e, Stroke)]
        fast += [now for e in events if isinstance(e, TooFastAlert)]
        state = coach.update(events, pipeline.live, now)
        if started is None and coach.session.state == "running":
            started = now
        if ended is None and coach.session.state == "finished":
            ended = now
        step = state.step["id"] if state.step else None
        if state.state in ("transition", "done") and (state.state, step) != prev:
            steps.append((now, step or "(end)", pipeline.live.phase))
        prev = (state.state, step)
    summary = coach.session.routine or {}
    print(f"person lies still for {DEMO_START_DELAY_S:.0f} s, first stroke at "
          f"{strokes[0]:.1f} s; session started at {started:.1f} s")
    print("too-fast alerts at " + ", ".join(f"{x:.1f} s" for x in fast) +
          f" ({fast[0] - started:.1f} s into the session)")
    for at, step, phase in steps:
        print(f"  {at:6.1f} s  dose met: {step:<18} the person was {phase}")
    print(f"session ended at {ended:.1f} s ({(ended - started) / 60:.1f} min, "
          f"{summary.get('end_reason')}): {summary.get('strokes')} strokes, "
          f"{summary.get('holds')} holds, {summary.get('too_fast_count')} too fast")
    after = [x for x in strokes + fast if x > ended]
    print(f"strokes or too-fast alerts in the {t[-1] - ended:.0f} s after the end: {len(after)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
