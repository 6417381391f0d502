"""Write a simulated roller session as a recording file, with its ground truth beside it.

The simulator (:mod:`firmware_bridge.simulator`) only produces samples; the recording format is
the application's (:mod:`roller.recordings.recording`), so the code that puts the two together
lives here,
above both. Run ``python -m roller.recordings.simulate OUT.csv --seconds 300`` to write ``OUT.csv``
and its
ground truth ``OUT.truth.json`` (strokes, holds and too-fast excursions of the true motion).
"""

from __future__ import annotations

import argparse
import json
import sys

from firmware_bridge.simulator import SimulatedRoller, person_scenario
from roller.recordings.recording import RecordingWriter


def write_recording(sim: SimulatedRoller, path: str, rate_hz: float, *, jitter_s: float = 0.0,
                    drop_fraction: float = 0.0, chunk_s: float = 60.0) -> int:
    """Write ``sim``'s whole session as a recording file, a minute at a time (flat memory).
    Returns the number of samples written."""
    n = 0
    with RecordingWriter(path) as writer:
        start = 0.0
        while start <= sim.duration_s:
            stop = min(sim.duration_s, start + chunk_s)
            t, samples = sim.recording(rate_hz, jitter_s=jitter_s,
                                       drop_fraction=drop_fraction, start_s=start,
                                       end_s=stop - (0.5 / rate_hz if stop < sim.duration_s
                                                     else 0.0))
            writer.write(t, samples)
            n += t.size
            if stop >= sim.duration_s:
                break
            start = stop
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m roller.recordings.simulate",
        description="Write a simulated roller session as a recording, with its ground truth "
                    "in OUT.truth.json beside it.")
    parser.add_argument("out", help="recording to write (CSV)")
    parser.add_argument("--seconds", type=float, default=300.0, help="session length [s]")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--rate", type=float, default=200.0, help="sample rate [Hz]")
    parser.add_argument("--radius", type=float, default=0.075, help="roller radius [m]")
    parser.add_argument("--ball", action="store_true", help="a massage ball, not a roller")
    parser.add_argument("--jitter", type=float, default=0.0, help="timestamp jitter [s]")
    parser.add_argument("--drop", type=float, default=0.0, help="fraction of samples lost")
    parser.add_argument("--max-speed", type=float, default=0.05,
                        help="go-slow limit used for the truth's too-fast list [m/s]")
    args = parser.parse_args(argv)
    scenario = person_scenario(args.seconds, seed=args.seed, radius_m=args.radius,
                               body="ball" if args.ball else "roller",
                               max_speed_m_s=args.max_speed)
    sim = SimulatedRoller(scenario, seed=args.seed)
    n = write_recording(sim, args.out, args.rate, jitter_s=args.jitter, drop_fraction=args.drop)
    truth_path = _truth_path(args.out)
    with open(truth_path, "w", encoding="utf-8") as fh:
        json.dump({"scenario": {"duration_s": sim.duration_s, "radius_m": scenario.radius_m,
                                "body": scenario.body, "seed": args.seed,
                                "rate_hz": args.rate},
                   **sim.truth(max_speed_m_s=args.max_speed).to_dict()}, fh, indent=1)
    print(f"wrote {n} samples ({sim.duration_s:.0f} s) to {args.out}, truth to {truth_path}")
    return 0


def _truth_path(out: str) -> str:
    return (out[:-4] if out.endswith(".csv") else out) + ".truth.json"


if __name__ == "__main__":
    sys.exit(main())
