"""``roller record``: the sensor to a CSV recording (``t,ax,ay,az,gx,gy,gz``) for later analysis.

``t`` counts seconds from the start of the recording on the driver's monotonic clock, so gaps
(FIFO overflows, a sensor that stopped answering) stay visible as gaps. Progress goes to stderr
once a second; Ctrl-C ends the recording cleanly with everything read so far written.
"""

from __future__ import annotations

import argparse
import sys
import time

from roller.commands.sensor_options import add_sensor_arguments, settings_from_args
from roller.recordings.recording import RecordingWriter

HELP = "record the sensor to a CSV file (t, accel m/s^2, gyro rad/s)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("out", metavar="OUT.csv", help="file to write (overwritten)")
    parser.add_argument("--seconds", type=float, metavar="N",
                        help="stop after N seconds (default: until Ctrl-C)")
    add_sensor_arguments(parser)
    parser.add_argument("--fast", action="store_true",
                        help="with --simulate: run on a simulated clock, as fast as possible")


def run(args: argparse.Namespace) -> int:
    # Lazy: building the parser (every command's, `roller analyze` too) loads no driver.
    from firmware_bridge.clock import ManualClock, SystemClock
    from firmware_bridge.sensor import open_sensor
    from roller.service.pace import TOOL_READ_INTERVAL_S, read_period_s

    if args.seconds is not None and not args.seconds > 0:
        print("roller record: --seconds must be positive", file=sys.stderr)
        return 2
    if args.fast and not args.simulate:
        print("roller record: --fast needs --simulate (a real sensor runs in real time)",
              file=sys.stderr)
        return 2
    if args.fast and args.seconds is None:
        print("roller record: --fast needs --seconds", file=sys.stderr)
        return 2
    settings, _config = settings_from_args(args)
    clock = ManualClock() if args.fast else SystemClock()
    driver = open_sensor(settings, simulate=args.simulate, seed=args.seed, clock=clock)
    progress = Progress(args.out, driver.output_rate_hz)
    start = clock.monotonic()
    interval = read_period_s(TOOL_READ_INTERVAL_S, driver.max_read_interval_s)
    print(f"recording {driver.describe()} to {args.out}", file=sys.stderr)
    try:
        with RecordingWriter(args.out) as writer:
            try:
                while args.seconds is None or clock.monotonic() - start < args.seconds:
                    clock.sleep(interval)
                    t, samples = driver.read()
                    if args.seconds is not None:
                        keep = t - start <= args.seconds
                        t, samples = t[keep], samples[keep]
                    writer.write(t - start, samples)
                    progress.update(clock.monotonic() - start, writer.rows_written,
                                    driver.health)
            except KeyboardInterrupt:
                pass
        progress.done(clock.monotonic() - start, writer.rows_written, driver.health)
    finally:
        driver.close()
    return 0


class Progress:
    """One line on stderr, refreshed in place on a terminal, once a second of wall time."""

    def __init__(self, out: str, rate_hz: float) -> None:
        self.out = out
        self.rate_hz = rate_hz
        self.tty = sys.stderr.isatty()
        self._next_wall_s = time.monotonic() + 1.0
        self._warned_disconnect = False

    def update(self, elapsed_s: float, rows: int, health) -> None:
        if not health.connected and not self._warned_disconnect:
            self._warned_disconnect = True
            print(f"\nsensor not answering ({health.last_error}); still trying",
                  file=sys.stderr)
        if health.connected:
            self._warned_disconnect = False
        now = time.monotonic()              # wall time: --fast runs must not flood stderr
        if now < self._next_wall_s:
            return
        self._next_wall_s = now + 1.0
        line = f"{self.out}: {elapsed_s:6.1f} s, {rows} samples"
        if health.overflows:
            line += f", {health.overflows} overflows"
        print(("\r" + line) if self.tty else line, end="" if self.tty else "\n",
              file=sys.stderr, flush=True)

    def done(self, elapsed_s: float, rows: int, health) -> None:
        if self.tty:
            print(file=sys.stderr)
        lost = (f"; {health.overflows} FIFO overflows (about {health.samples_lost_estimate} "
                "samples lost)" if health.overflows else "")
        print(f"wrote {rows} samples ({elapsed_s:.1f} s at {self.rate_hz:g} Hz) to "
              f"{self.out}{lost}", file=sys.stderr)
