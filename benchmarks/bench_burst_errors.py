"""Samples lost to transient I2C errors during FIFO bursts: prints the loss per chip.

    .venv/bin/python benchmarks/bench_burst_errors.py [--seconds S] [--error-rate P]

Each emulated chip is read every 20 ms for ``--seconds`` on a manual clock; a fraction
``--error-rate`` of reads has its FIFO burst fail, half of them before any byte (an address
NACK) and half part-way (EIO after 1-200 bytes). Only what a failed burst consumed can be lost.
"""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.chips import make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.detection import detect
from firmware_bridge.emulated import EmulatedBus

G = 9.80665


def still(t: np.ndarray) -> np.ndarray:
    return np.tile([0.0, 0.0, G, 0.0, 0.0, 0.1], (np.size(t), 1))


def measure(variant: str, seconds: float, error_rate: float, seed: int = 1) -> str:
    clock = ManualClock(10.0)
    chip = make_chip(variant, still, clock=clock)
    bus = EmulatedBus([chip])
    driver = detect(bus, clock=clock)
    rng = np.random.default_rng(seed)
    got = 0
    for _ in range(round(seconds / 0.02)):
        clock.advance(0.02)
        if rng.random() < error_rate:
            if rng.random() < 0.5:
                bus.fail_next(1, error=errno.EREMOTEIO, reads_longer_than=16)
            else:
                cut = int(rng.integers(1, 200))
                bus.fail_next(1, error=errno.EIO, after_bytes=cut,
                              reads_longer_than=max(16, cut))
        t, _ = driver.read()
        got += t.size
    lost = chip.produced - got - chip.fifo_level_count() // driver.frame_bytes
    h = driver.health
    return (f"{variant:10s} {chip.produced} sampled, lost {lost} ({lost / chip.produced:.3%}) "
            f"in {bus.failures_injected} failed bursts; health: burst_frames_lost "
            f"{h.burst_frames_lost}, fifo_faults {h.fifo_faults}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--error-rate", type=float, default=0.01,
                        help="fraction of reads whose burst fails")
    args = parser.parse_args(argv)
    for variant in ("MPU-6050", "MPU-6500", "ICM-20948", "LSM6DS3", "LSM6DSO"):
        print(measure(variant, args.seconds, args.error_rate))
    return 0


if __name__ == "__main__":
    sys.exit(main())
