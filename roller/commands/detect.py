"""``roller detect``: which IMU is on the I2C bus, where, and does it read sensibly."""

from __future__ import annotations

import argparse
import sys

import numpy as np

from roller.commands.sensor_options import add_sensor_arguments, settings_from_args

HELP = "find and identify the IMU on the I2C bus, and take a short reading"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_sensor_arguments(parser)
    parser.add_argument("--seconds", type=float, default=0.5, metavar="S",
                        help="length of the test reading [s] (default 0.5)")


def run(args: argparse.Namespace) -> int:
    # Lazy: building the parser (every command's, `roller analyze` too) loads no driver.
    from firmware_bridge.clock import SystemClock
    from firmware_bridge.detection import DEFAULT_ADDRESSES, detect, scan
    from firmware_bridge.sensor import open_bus, simulated_bus
    from roller.service.pace import TOOL_READ_INTERVAL_S, read_period_s

    settings, _config = settings_from_args(args)
    clock = SystemClock()
    where = "emulated bus (--simulate)" if args.simulate else f"/dev/i2c-{settings.bus}"
    bus = simulated_bus(settings, seed=args.seed, clock=clock) if args.simulate \
        else open_bus(settings.bus)
    try:
        addresses = [settings.address] if settings.address is not None else DEFAULT_ADDRESSES
        print(f"scanning {where}:")
        for result in scan(bus, addresses):
            print(f"  0x{result.address:02X}: {result.description}")
        driver = detect(bus, addresses, chip=settings.chip, settings=settings.driver_settings(),
                        clock=clock)
        print(driver.describe())
        ts, ss = [], []
        deadline = clock.monotonic() + args.seconds
        while clock.monotonic() < deadline:
            clock.sleep(read_period_s(TOOL_READ_INTERVAL_S, driver.max_read_interval_s))
            t, s = driver.read()
            ts.append(t)
            ss.append(s)
        t, s = np.concatenate(ts), np.concatenate(ss)
        health = driver.health
        if t.size == 0:
            print(f"no samples in {args.seconds:g} s ({health.last_error or 'FIFO empty'}): "
                  "check the power and the wiring", file=sys.stderr)
            return 1
        rate = (t.size - 1) / (t[-1] - t[0]) if t.size > 1 else float("nan")
        accel = s[:, :3].mean(axis=0)
        gyro = s[:, 3:].mean(axis=0)
        print(f"read {t.size} samples in {args.seconds:g} s ({rate:.0f} Hz measured)")
        print(f"  accel mean [m/s^2]: {accel[0]:+.2f} {accel[1]:+.2f} {accel[2]:+.2f} "
              f"(|a| = {np.linalg.norm(accel):.2f}, 9.81 when still)")
        print(f"  gyro mean [rad/s]:  {gyro[0]:+.4f} {gyro[1]:+.4f} {gyro[2]:+.4f} "
              "(the offset when still; `roller calibrate` measures it)")
        if health.overflows or health.retries or health.fifo_faults:
            print(f"  faults: {health.overflows} overflows, {health.retries} retries, "
                  f"{health.fifo_faults} FIFO faults")
        return 0
    finally:
        bus.close()
