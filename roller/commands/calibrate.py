"""``roller calibrate``: measure the gyro offset at rest and the roll axis from a few strokes.

It asks the person to leave the roller still, then to roll a few slow strokes, and measures
both with :mod:`roller.pipeline.calibration_measurement` (where the method is explained). The
result is
saved as JSON (``roller.pipeline.calibration``) in the state directory, where the service reads it
at
start.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from roller.commands.sensor_options import add_sensor_arguments, settings_from_args

HELP = "measure the gyro offset at rest and the roll axis from a few strokes; save them"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_sensor_arguments(parser)
    parser.add_argument("--rest-seconds", type=float, default=5.0, metavar="S",
                        help="how long the roller must lie still [s] (default 5)")
    parser.add_argument("--seconds", type=float, default=15.0, metavar="S",
                        help="how long to roll strokes for the roll axis [s] (default 15)")
    parser.add_argument("--out", metavar="FILE",
                        help="where to save (default: <state dir>/calibration.json)")
    parser.add_argument("--fast", action="store_true",
                        help="with --simulate: run on a simulated clock, as fast as possible")


def run(args: argparse.Namespace) -> int:
    # Lazy: `roller --help` imports every command module; the drivers and the pipeline wait
    # for run().
    import numpy as np

    from firmware_bridge.clock import ManualClock, SystemClock
    from firmware_bridge.sensor import open_sensor
    from roller.pipeline.calibration import FILE_NAME, Calibration
    from roller.pipeline.calibration_measurement import (
        Reader,
        calibration_scenario,
        canonical_sign,
        choose_axis,
        pipeline_roll_axis,
        principal_axis,
    )

    if not (args.rest_seconds >= 1.0 and args.seconds >= 3.0):
        print("roller calibrate: --rest-seconds must be at least 1 and --seconds at least 3",
              file=sys.stderr)
        return 2
    if args.fast and not args.simulate:
        print("roller calibrate: --fast needs --simulate", file=sys.stderr)
        return 2
    settings, config = settings_from_args(args)
    out = args.out or config.state_path / FILE_NAME
    clock = ManualClock() if args.fast else SystemClock()
    scenario = calibration_scenario(args.rest_seconds, args.seconds, args.seed) \
        if args.simulate else None
    driver = open_sensor(settings, simulate=args.simulate, scenario=scenario, seed=args.seed,
                         clock=clock)
    reader = Reader(driver, clock)
    try:
        say(f"calibrating {driver.describe()}")
        say(f"1/2: lay the roller on the floor and leave it still for {args.rest_seconds:g} s")
        window = reader.still_window(args.rest_seconds, timeout_s=4 * args.rest_seconds + 20)
        if window is None:
            say("the roller did not stay still long enough: try again on a steady floor, "
                "without touching it")
            return 1
        bias = window[1][:, 3:].mean(axis=0)
        say(f"    gyro offset: {fmt(bias)} rad/s ({fmt(np.degrees(bias), 2)} deg/s)")
        say(f"2/2: roll slowly back and forth, a few strokes, for {args.seconds:g} s")
        t, s = reader.collect(args.seconds)
    finally:
        driver.close()
    pipeline_axis, pipeline_confident = pipeline_roll_axis(config, window, (t, s), bias)
    fit_axis, dominance, rms = principal_axis(s[:, 3:] - bias)
    say(f"    rotation: {rms:.2f} rad/s RMS, {100 * dominance:.0f}% about one axis")
    axis, confident, why = choose_axis(pipeline_axis, pipeline_confident, fit_axis, dominance,
                                       rms)
    calibration = Calibration(gyro_bias_rad_s=tuple(float(b) for b in bias),
                              roll_axis=None if axis is None else canonical_sign(axis),
                              confident=confident)
    path = calibration.save(out)
    axis_text = "unknown" if calibration.roll_axis is None else fmt(calibration.roll_axis)
    say(f"    roll axis (sensor frame): {axis_text}; {why}")
    print(f"saved {'confident' if confident else 'tentative'} calibration to {path}")
    return 0 if calibration.roll_axis is not None else 1


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def fmt(values: Any, digits: int = 4) -> str:
    return "(" + ", ".join(f"{float(v):+.{digits}f}" for v in values) + ")"
