"""Samples lost to transient I2C errors at 1 kHz, per emulated chip: prints the figures.

    .venv/bin/python benchmarks/bench_burst_errors.py [--seconds S] [--error-rate P] [--runs R]

Every emulated variant (clones included, and an MPU-6050 clone with a 1024-byte FIFO that
answers WHO_AM_I 0x70 at address 0x69) is read by the real driver on a manual clock, at the
service's pace (``--pace-ms``, default every 20 ms +-40 %; the one-shot tools read every
50 ms). A fraction ``--error-rate`` of *all* transfers
fails (``EmulatedBus.fail_randomly``: half an address NACK before any byte, half EIO part-way
through a read, which consumes what was sent). The chip records every sample it takes, each
one distinct, so each sample read is matched to the true one. Printed per chip, summed over
``--runs`` seeds:

* produced: samples the chip took; dropped by the chip: lost to a real FIFO overflow (with
  what the FIFO reset after it had to give up: the overflow left the content misaligned);
* consumed by failed bursts: taken off the FIFO by a read the bus then failed (unrecoverable);
* lost otherwise: neither of the above -- the driver's own loss (a false overflow, a reset):
  must be 0;
* the worst timestamp error against the true sample time, in sample periods (must be <= 1).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from firmware_bridge.chips import EMULATED_VARIANTS, make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.detection import detect
from firmware_bridge.emulated import EmulatedBus

G = 9.80665


def coded(t: np.ndarray) -> np.ndarray:
    """Every sample distinct: gyro z ramps ~10 counts per ms, gyro x counts the ramp's laps."""
    t = np.asarray(t, dtype=float)
    out = np.zeros((t.size, 6))
    out[:, 2] = G
    out[:, 5] = np.radians((t % 3.0) * 300.0)
    out[:, 3] = np.radians(np.floor(t / 3.0) * 2.0)
    return out


def run(variant: str, seconds: float, error_rate: float, seed: int,
        pace_s: float = 0.02) -> dict[str, float]:
    """Read ``variant`` for ``seconds`` every ``pace_s`` (+-40 %) with ``error_rate`` of
    transfers failing."""
    clock = ManualClock(50.0)
    chip = make_chip(variant, coded, clock=clock, record=True)
    bus = EmulatedBus([chip])
    driver = detect(bus, clock=clock)
    bus.fail_randomly(error_rate, seed=seed)
    rng = np.random.default_rng(seed + 1000)
    ts, ss = [], []
    end = clock.monotonic() + seconds
    while clock.monotonic() < end:
        clock.advance(pace_s * rng.uniform(0.6, 1.4))
        t, s = driver.read()
        ts.append(t)
        ss.append(s)
    bus.fail_randomly(0.0)
    t = np.concatenate(ts)
    s = np.concatenate(ss)
    true_t = chip.samples_produced_times()
    true_raw = chip.samples_produced_raw().astype(np.int64)
    _accel_lsb, gyro_lsb = chip.scales_si()
    key_true = true_raw[:, 3] * 65536 + true_raw[:, 5]
    got = np.round(s[:, 3:] / gyro_lsb).astype(np.int64)
    key_got = got[:, 0] * 65536 + got[:, 2]
    order = np.argsort(key_true, kind="stable")
    where = np.searchsorted(key_true[order], key_got)
    where = np.minimum(where, key_true.size - 1)
    matched = key_true[order][where] == key_got
    index = order[where[matched]]
    in_fifo_frames = len(chip.fifo) // chip.frame_bytes()     # not read yet: not lost
    produced = chip.produced
    read_ok = int(np.unique(index).size)
    dropped = round((chip.overflowed_bytes + chip.cleared_after_overflow_bytes)
                    / chip.frame_bytes())
    consumed = driver.health.burst_frames_lost
    lost_other = produced - read_ok - in_fifo_frames - dropped - consumed
    period = 1.0 / driver.output_rate_hz
    err = np.abs(t[matched] - true_t[index]) / period if index.size else np.zeros(1)
    return {"produced": produced, "read": read_ok, "unmatched": int((~matched).sum()),
            "dropped": dropped, "consumed": consumed, "lost_other": lost_other,
            "overflows": driver.health.overflows, "faults": driver.health.fifo_faults,
            "failures": bus.failures_injected, "worst_periods": float(err.max()),
            "address": chip.address}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--error-rate", type=float, default=0.01,
                        help="fraction of all transfers that fail")
    parser.add_argument("--runs", type=int, default=3, help="seeds per chip")
    parser.add_argument("--pace-ms", type=float, default=20.0,
                        help="mean read period [ms] (+-40 %%); roller record reads every 50")
    parser.add_argument("--chips", nargs="*", default=list(EMULATED_VARIANTS))
    args = parser.parse_args(argv)
    print(f"{args.error_rate:.1%} of transfers failing, {args.seconds:g} s x {args.runs} runs "
          f"per chip, read every {args.pace_ms:g} ms +-40 %")
    print(f"{'chip':16s} addr  produced  dropped-by-chip  consumed-by-bursts  LOST-OTHERWISE  "
          "unmatched  overflows  faults  worst |t err| [periods]")
    bad = 0
    for variant in args.chips:
        try:
            rows = [run(variant, args.seconds, args.error_rate, seed, args.pace_ms / 1000)
                    for seed in range(args.runs)]
        except Exception as exc:
            bad += 1
            print(f"{variant:16s} not usable: {type(exc).__name__}: {exc}")
            continue
        total = {k: sum(r[k] for r in rows) for k in ("produced", "dropped", "consumed",
                                                      "lost_other", "unmatched", "overflows",
                                                      "faults")}
        worst = max(r["worst_periods"] for r in rows)
        bad += total["lost_other"] != 0 or worst > 1.0 or total["unmatched"] != 0
        print(f"{variant:16s} 0x{rows[0]['address']:02X}  {total['produced']:8d}  "
              f"{total['dropped']:15d}  {total['consumed']:18d}  {total['lost_other']:14d}  "
              f"{total['unmatched']:9d}  {total['overflows']:9d}  {total['faults']:6d}  "
              f"{worst:.2f}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
