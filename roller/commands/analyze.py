"""``roller analyze FILE``: strokes, holds, speeds and too-fast moments of a recording.

The recording is streamed through the same pipeline the live service runs
(:mod:`roller.recordings.analysis`), in blocks, so memory stays flat however long the file is and
the
results are what the service would have reported live (``emitted_at_s`` says when). A readable
summary by default; ``--json`` prints exactly one JSON object (see
:meth:`roller.recordings.summary.RecordingReport.to_dict`; events in the MQTT event schema,
:func:`analysis_json`). A malformed recording ends with one error line naming the file, the
line and the problem, and exit status 2; so does a recording whose units do not fit (or a
``--units`` that cannot be read): every refusal of bad input is status 2.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys

from roller.base.settings import from_mapping

EX_USAGE = 2
"""Exit status for bad input (a malformed recording, units that do not fit)."""

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
    parser.add_argument("--plot", metavar="OUT",
                        help="also draw the chart (speed over time, go-slow band, strokes, "
                             "holds, too-fast passes) to OUT.png or OUT.svg; needs the plot "
                             "extra (matplotlib)")
    parser.add_argument("--debug", action="store_true",
                        help="with --json: add the pipeline's internal state")


def settings_from_args(args: argparse.Namespace):
    """The pipeline settings: the config's [pipeline] section (if --config), then options."""
    # Lazy, like the imports in run(): the pipeline is not needed to build `roller --help`.
    from roller.pipeline import PipelineSettings

    base: dict = {}
    if args.config:
        # Lazy: the config imports every section's module (MQTT, display, ...), which a plain
        # `roller analyze FILE` (and `roller --help`) need not load.
        from roller.service.config import load_config

        base = dataclasses.asdict(load_config(args.config).pipeline)
    overrides = {"radius_m": args.radius, "max_speed_m_s": args.max_speed,
                 "roll_axis": args.roll_axis, "gyro_bias_rad_s": args.gyro_bias,
                 "gyro_full_scale_rad_s": None if getattr(args, "gyro_range", None) is None
                 else math.radians(args.gyro_range)}
    base.update({k: v for k, v in overrides.items() if v is not None})
    if args.ball:
        base["body"] = "ball"
    return from_mapping(PipelineSettings, base, where="roller analyze options")


def run(args: argparse.Namespace) -> int:
    # Lazy: `roller --help` imports every command module; the pipeline waits for run().
    from roller.recordings.analysis import analyze, warnings_for
    from roller.recordings.units import Units, UnitsError

    settings = settings_from_args(args)
    try:
        units = Units.parse(args.units) if args.units else None
        if args.plot:  # the same analysis, its speed kept for the chart (roller/recordings/plot.py)
            from pathlib import Path

            from roller.recordings.plot import plot_recording

            summary, _ = plot_recording(args.file, settings, Path(args.plot), units=units)
            print(f"roller analyze: chart written to {args.plot}", file=sys.stderr)
        else:
            summary = analyze(args.file, settings, debug=args.debug, units=units)
    except UnitsError as exc:
        # bad input like a malformed recording (exit 2, as the README says), not a failure
        print(f"roller analyze: bad recording: {exc}", file=sys.stderr)
        return EX_USAGE
    warnings = warnings_for(summary)
    for line in warnings:
        print(f"roller analyze: warning: {args.file}: {line}", file=sys.stderr)
    if args.json:
        out = analysis_json(summary)
        out["warnings"] = warnings
        json.dump(out, sys.stdout, separators=(",", ":"))
        sys.stdout.write("\n")
    else:
        print(f"{args.file}:")
        print(summary.to_text())
    return 0


def analysis_json(summary) -> dict:
    """The ``--json`` object: :meth:`RecordingReport.to_dict` with each stroke, hold and
    too-fast excursion in the MQTT event schema (:func:`roller.contract.messages.analysis_event`:
    ``kind``, ``start_s``, ``end_s``, ``emitted_at_s``, ...) and the recording's own start and
    end as ``start_s`` and ``end_s``."""
    from roller.contract.messages import analysis_event

    body = summary.to_dict()
    for key, events in (("strokes", summary.strokes), ("holds", summary.holds),
                        ("too_fast", summary.too_fast)):
        body[key] = [analysis_event(e) for e in events]
    body["start_s"], body["end_s"] = body.pop("start"), body.pop("end")
    return body
