"""``roller analyze FILE``: strokes, holds, speeds and too-fast moments of a recording.

The recording is streamed through the same pipeline the live service runs, in blocks, so memory
stays flat however long the file is and the results are what the service would have reported
live (``emitted_at`` says when). A readable summary by default; ``--json`` prints exactly one
JSON object (see :meth:`roller.summary.SessionSummary.to_dict`). A malformed recording ends with
one error line naming the file, the line and the problem, and exit status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys

HELP = "analyse a recording: strokes, holds, speed and too-fast moments"


def _positive(unit: str):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {unit}, got {text!r}") \
                from None
        if not value > 0 or value != value or value == float("inf"):
            raise argparse.ArgumentTypeError(f"expected a positive number in {unit}, "
                                             f"got {text!r}")
        return value
    return parse


def _vector(text: str) -> list[float]:
    parts = text.split(",")
    try:
        values = [float(p) for p in parts]
    except ValueError:
        values = []
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected three numbers X,Y,Z, got {text!r}")
    return values


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE",
                        help="recording (CSV: t,ax,ay,az,gx,gy,gz), or a phyphox or Sensor "
                             "Logger export (zip, folder or one of its CSV files)")
    parser.add_argument("--units", metavar="SPEC",
                        help="the recording's units if not s, m/s^2 and rad/s, e.g. "
                             "t=ms,gyro=deg/s,accel=g (default: checked against the data)")
    parser.add_argument("--radius", type=_positive("m"), metavar="M",
                        help="roller or ball radius in metres (default 0.075, or the config's)")
    parser.add_argument("--max-speed", type=_positive("m/s"), metavar="M_S",
                        help="go-slow limit in m/s (default 0.05, or the config's)")
    parser.add_argument("--ball", action="store_true",
                        help="the sensor is in a massage ball, not a roller")
    parser.add_argument("--roll-axis", type=_vector, metavar="X,Y,Z",
                        help="pin the roller's long axis in sensor axes (default: found from "
                             "the data)")
    parser.add_argument("--gyro-bias", type=_vector, metavar="X,Y,Z",
                        help="starting gyro offset in rad/s, sensor axes (default: found from "
                             "the data)")
    parser.add_argument("--gyro-range", type=_positive("deg/s"), metavar="DPS",
                        help="the gyro's full scale in deg/s, if known: rates there are marked "
                             "clipped (default: recognised from the data)")
    parser.add_argument("--config", metavar="FILE",
                        help="take the [pipeline] settings from this config file")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON object instead of the readable summary")
    parser.add_argument("--debug", action="store_true",
                        help="with --json: add the pipeline's internal state")


def settings_from_args(args: argparse.Namespace):
    """The pipeline settings: the config's [pipeline] section (if --config), then options."""
    from roller.pipeline import PipelineSettings
    from roller.settings import from_mapping

    base: dict = {}
    if args.config:
        from roller.config import load_config

        base = dataclasses.asdict(load_config(args.config).pipeline)
    overrides = {"radius_m": args.radius, "max_speed_m_s": args.max_speed,
                 "roll_axis": args.roll_axis, "gyro_bias_rad_s": args.gyro_bias,
                 "gyro_full_scale_rad_s": None if getattr(args, "gyro_range", None) is None
                 else math.radians(args.gyro_range)}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if args.ball:
        base["body"] = "ball"
    return from_mapping(PipelineSettings, base, where="roller analyze options")


def analyze(path: str, settings, *, debug: bool = False, units=None):
    """Stream ``path`` through a pipeline; return the :class:`SessionSummary`.

    The file is read in chunks by :func:`roller.recording.read_chunks`, so memory stays flat
    whatever the recording's length; a malformed file raises the
    :class:`~roller.errors.RecordingError` naming file, line and problem. A phone-app export
    (:mod:`roller.phone_recording`) is read whole. ``units``: a :class:`roller.units.Units`,
    or None to check the data against SI units (:class:`~roller.units.UnitsError` if they do
    not fit)."""
    from roller import units as units_mod
    from roller.phone_recording import find_export, read_export
    from roller.recording import read_chunks

    export = find_export(path)
    chunks = [read_export(export)] if export is not None else read_chunks(path)
    return _analyze(path, settings, units_mod.checked(chunks, path, units), debug=debug)


def _analyze(path: str, settings, chunks, *, debug: bool):
    from roller.pipeline import Pipeline
    from roller.summary import SessionSummary

    pipeline = Pipeline(settings)
    summary = SessionSummary(max_speed_m_s=settings.max_speed_m_s, radius_m=settings.radius_m,
                             body=settings.body)
    for t, samples in chunks:
        summary.saw_samples(float(t[0]), float(t[-1]), int(t.size))
        summary.add(pipeline.update(t, samples))
    summary.add(pipeline.finish())
    cal = pipeline.calibration
    summary.calibration = {"gyro_bias_rad_s": [round(b, 6) for b in cal.gyro_bias_rad_s],
                           "roll_axis": None if cal.roll_axis is None
                           else [round(a, 5) for a in cal.roll_axis],
                           "confident": cal.confident}
    if debug:
        summary.pipeline_state = pipeline.internal_state()
    summary.clipped_s = pipeline.clipping.clipped_frames * pipeline.frame_s
    return summary


def warnings_for(summary) -> list[str]:
    """What the reader must know about the numbers (clipping)."""
    clipped_s = getattr(summary, "clipped_s", 0.0)
    if clipped_s <= 0:
        return []
    return [f"the gyro (or accelerometer) was at its full scale for {clipped_s:.1f} s: speeds "
            "there are lower bounds and strokes there may be shorter than they were; use a "
            "larger gyro range (e.g. +-1000 deg/s)"]


def run(args: argparse.Namespace) -> int:
    from roller.units import Units

    settings = settings_from_args(args)
    units = Units.parse(args.units) if args.units else None
    summary = analyze(args.file, settings, debug=args.debug, units=units)
    warnings = warnings_for(summary)
    for line in warnings:
        print(f"roller analyze: warning: {args.file}: {line}", file=sys.stderr)
    if args.json:
        out = summary.to_dict()
        out["warnings"] = warnings
        json.dump(out, sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
    else:
        print(f"{args.file}:")
        print(summary.to_text())
    return 0
