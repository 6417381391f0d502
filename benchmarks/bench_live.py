"""CPU cost of the live path: 1 kHz samples fed to the pipeline in 10 Hz blocks.

    .venv/bin/python benchmarks/bench_live.py [--minutes 10] [--rate 1000] [--block-hz 10]

A simulated session is recorded first (not timed); then the pipeline gets it block by block as
the service would (100 samples per block at 1 kHz / 10 Hz), reading ``live`` after every block
as the service does. Reports CPU time per second of input (target <= 10 ms on this machine; a Pi
Zero 2 is roughly ten times slower) and the slowest single block.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.simulator import SimulatedRoller, person_scenario
from roller.pipeline import Pipeline


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="sample rate [Hz]")
    parser.add_argument("--block-hz", type=float, default=10.0, help="blocks per second")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sim = SimulatedRoller(person_scenario(args.minutes * 60, seed=2), seed=2)
    t, samples = sim.recording(args.rate, jitter_s=0.2 / args.rate, drop_fraction=0.005)
    block = max(1, round(args.rate / args.block_hz))
    seconds = float(t[-1] - t[0])
    results = []
    for _ in range(args.repeat):
        pipeline = Pipeline()
        worst = 0.0
        events = 0
        start = time.process_time()
        for i in range(0, t.size, block):
            b0 = time.process_time()
            events += len(pipeline.update(t[i:i + block], samples[i:i + block]))
            _ = pipeline.live
            worst = max(worst, time.process_time() - b0)
        events += len(pipeline.finish())
        results.append((time.process_time() - start, worst, events))
    cpu, worst, events = min(results)
    print(f"input: {t.size} samples, {seconds / 60:.1f} min at {args.rate:.0f} Hz, "
          f"{block}-sample blocks ({args.block_hz:g} Hz), {events} events")
    print(f"CPU per second of input: {cpu / seconds * 1e3:.2f} ms   (target <= 10 ms; "
          f"best of {args.repeat})")
    print(f"slowest block: {worst * 1e3:.2f} ms (block period {1e3 / args.block_hz:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
