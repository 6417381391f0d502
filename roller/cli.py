"""The ``roller`` command: one console script, one module per subcommand.

Each subcommand lives in ``roller/commands/<name>.py`` and provides ``HELP`` (one line),
``add_arguments(parser)`` and ``run(args) -> int``. Command modules keep heavy imports inside
``run`` so that ``roller --help`` is instant.

Exit statuses: 0 success, 1 runtime failure, 2 bad input (usage, malformed recording),
78 bad configuration (EX_CONFIG), 130 interrupted.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys

from roller import __version__
from roller.base.errors import ConfigError, RecordingError, RollerError

COMMANDS = (
    "analyze",    # analyse a recording                           (pipeline)
    "record",     # record the sensor to a CSV file               (firmware_bridge)
    "detect",     # find and identify the IMU on the I2C bus      (firmware_bridge)
    "calibrate",  # gyro bias and roll axis, saved for the service (firmware_bridge)
    "run",        # the live service: sensor -> pipeline -> coach -> MQTT
    "display",    # the web display, fed over MQTT
    "history",    # past sessions from the SQLite history
    "demo",       # everything at once on a laptop, with a simulated roller
)

EX_USAGE = 2
EX_CONFIG = 78


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="roller", description="roller companion: a coach for foam rolling.")
    parser.add_argument("--version", action="version", version=f"roller {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module_name = f"roller.commands.{name}"
        if importlib.util.find_spec(module_name) is None:
            continue
        module = importlib.import_module(module_name)
        cmd = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args._run(args) or 0)
    except ConfigError as exc:
        print(f"roller {args.command}: configuration error: {exc}", file=sys.stderr)
        return EX_CONFIG
    except RecordingError as exc:
        print(f"roller {args.command}: bad recording: {exc}", file=sys.stderr)
        return EX_USAGE
    except RollerError as exc:
        print(f"roller {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `roller analyze x.csv --json | head`
        return 0


if __name__ == "__main__":
    sys.exit(main())
