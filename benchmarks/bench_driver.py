"""Driver + emulated bus at 1 kHz for 10 simulated minutes: is every sample read, at what CPU cost?

For each chip family an emulated chip is fed by the simulated roller (a person doing a
routine) and read by the real driver on a ManualClock advanced in steps of the driver's longest
safe read interval (the worst pace the service may use). Printed per chip:

* samples produced by the chip vs samples returned by ``read()`` (must be equal), overflows;
* CPU time per second of data for the driver alone (the chip's samples are generated before
  each read, outside the timing: this is what the Pi pays, minus the real I2C transfer time),
  and for the whole loop including the emulation and the simulated motion.

Run: .venv/bin/python benchmarks/bench_driver.py [--minutes 10] [--rate 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from firmware_bridge.chips import FAMILY_VARIANTS, make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.detection import detect
from firmware_bridge.emulated import EmulatedBus
from firmware_bridge.imu import DriverSettings
from firmware_bridge.simulator import SimulatedRoller, person_scenario

CHIPS = FAMILY_VARIANTS


def bench(variant: str, minutes: float, rate_hz: float, roller: SimulatedRoller) -> dict:
    clock = ManualClock()
    chip = make_chip(variant, roller.imu, clock=clock)
    bus = EmulatedBus([chip])
    driver = detect(bus, clock=clock, settings=DriverSettings(output_rate_hz=rate_hz))
    step = driver.max_read_interval_s
    produced_before = chip.produced          # none yet: the FIFO was reset at configuration
    duration = minutes * 60.0
    reads = 0
    returned = 0
    last_t = -np.inf
    monotonic = True
    driver_cpu = 0.0
    wall_cpu_start = time.process_time()
    while clock.monotonic() < duration:
        clock.advance(step)
        chip.advance()                        # generate the samples outside the timed part
        start = time.process_time()
        t, _samples = driver.read()
        driver_cpu += time.process_time() - start
        reads += 1
        returned += t.size
        if t.size:
            monotonic &= bool(t[0] > last_t and np.all(np.diff(t) > 0))
            last_t = t[-1]
    total_cpu = time.process_time() - wall_cpu_start
    data_s = returned / driver.output_rate_hz
    return {
        "chip": driver.chip, "rate_hz": driver.output_rate_hz, "read_interval_ms": step * 1e3,
        "reads": reads, "produced": chip.produced - produced_before, "returned": returned,
        "overflows": driver.health.overflows, "fifo_faults": driver.health.fifo_faults,
        "monotonic": monotonic, "transfers": bus.transfers, "bytes": bus.bytes_read,
        "driver_cpu_ms_per_s": 1e3 * driver_cpu / data_s,
        "total_cpu_ms_per_s": 1e3 * total_cpu / data_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--rate", type=float, default=1000.0)
    args = parser.parse_args()
    roller = SimulatedRoller(person_scenario(args.minutes * 60.0 + 5.0, seed=1), seed=1)
    print(f"driver + emulated bus, {args.minutes:g} simulated minutes, requested "
          f"{args.rate:g} Hz, reads every max_read_interval_s")
    header = (f"{'chip':<18}{'rate':>7}{'read ms':>9}{'reads':>8}{'produced':>10}"
              f"{'returned':>10}{'equal':>7}{'ovf':>5}{'I2C xfers':>11}{'kB read':>9}"
              f"{'driver CPU':>12}{'all CPU':>10}")
    print(header)
    print(f"{'':<64}{'':>11}{'':>9}{'ms per s of data':>22}")
    ok = True
    for variant in CHIPS:
        r = bench(variant, args.minutes, args.rate, roller)
        equal = r["produced"] == r["returned"] and r["monotonic"]
        ok &= equal and r["overflows"] == 0
        print(f"{r['chip']:<18}{r['rate_hz']:>7g}{r['read_interval_ms']:>9.1f}{r['reads']:>8}"
              f"{r['produced']:>10}{r['returned']:>10}{'yes' if equal else 'NO':>7}"
              f"{r['overflows']:>5}{r['transfers']:>11}{r['bytes'] / 1024:>9.0f}"
              f"{r['driver_cpu_ms_per_s']:>12.2f}{r['total_cpu_ms_per_s']:>10.2f}")
    print("all samples read, none lost or duplicated" if ok else "SAMPLES LOST OR DUPLICATED")


if __name__ == "__main__":
    main()
