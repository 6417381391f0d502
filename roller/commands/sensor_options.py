"""The sensor options that ``roller detect``, ``record`` and ``calibrate`` share.

``[sensor]`` comes from the config file (``--config``, else ``$ROLLER_CONFIG``, else the built-in
defaults), with ``--bus``, ``--address`` and ``--rate`` applied on top and validated like the
file. It lives on the application side because it reads the whole configuration; the hardware
layer only knows :class:`~firmware_bridge.sensor.SensorSettings`.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from roller.base.settings import from_mapping

if TYPE_CHECKING:
    from firmware_bridge.sensor import SensorSettings
    from roller.service.config import RollerConfig


def add_sensor_arguments(parser: Any) -> None:
    """The options ``roller detect``, ``record`` and ``calibrate`` share (argparse)."""
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config file for [sensor] (default: $ROLLER_CONFIG, else "
                             "built-in defaults)")
    parser.add_argument("--bus", type=int, metavar="N", help="I2C bus number (/dev/i2c-N)")
    parser.add_argument("--address", type=lambda text: int(text, 0), metavar="ADDR",
                        help="I2C address of the IMU, e.g. 0x68 (default: scan)")
    parser.add_argument("--rate", type=float, metavar="HZ",
                        help="output data rate [Hz], 100 to 1000")
    parser.add_argument("--simulate", action="store_true",
                        help="use an emulated IMU fed by a simulated person (no hardware)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the simulated session (with --simulate)")


def settings_from_args(args: Any) -> tuple[SensorSettings, RollerConfig]:
    """``[sensor]`` from the config file with the command-line overrides applied, and the
    whole config. Overrides are validated like the file (ConfigError names the option)."""
    # Lazy: the config imports every section's module; `roller --help` builds the parsers only.
    from firmware_bridge.sensor import SensorSettings
    from roller.service.config import load_config

    config = load_config(getattr(args, "config", None))
    settings = config.sensor
    overrides = {key: value for key, value in (("bus", args.bus), ("address", args.address),
                                               ("output_rate_hz", args.rate))
                 if value is not None}
    if overrides:
        merged = {**dataclasses.asdict(settings), **overrides}
        settings = from_mapping(SensorSettings, merged, where="command line", prefix="sensor.")
    return settings, config
