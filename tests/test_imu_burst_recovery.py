"""A FIFO burst that fails loses nothing it did not consume (issue 10, item 5).

The emulated bus fails a burst before any byte (an address NACK: the FIFO gives up nothing) or
part-way (the chip has sent, and its FIFO has given up, some bytes). The ramp source makes every
sample different, so a lost, duplicated or misaligned sample shows in the values, and the chip
records the true time of every sample it took.
"""

from __future__ import annotations

import errno

import numpy as np
import pytest

from firmware_bridge.chips import EMULATED_VARIANTS, make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.detection import detect
from firmware_bridge.emulated import EmulatedBus

G = 9.80665
RECOVERING = ["MPU-6050", "MPU-6500", "ICM-20948", "LSM6DS3", "LSM6DSO"]


def ramp(t: np.ndarray) -> np.ndarray:
    """Gyro z climbs about 10 counts per sample at 1 kHz (every sample's value is its own
    for 3.3 s); accel z is gravity (a misaligned frame would put a gyro word there)."""
    t = np.asarray(t, dtype=float)
    out = np.zeros((t.size, 6))
    out[:, 2] = G
    out[:, 5] = np.radians((t % 3.3) * 300.0)
    return out


def rig(variant: str):
    clock = ManualClock(100.0)
    chip = make_chip(variant, ramp, clock=clock, record=True)
    bus = EmulatedBus([chip])
    return clock, chip, bus, detect(bus, clock=clock)


def read_for(clock, driver, seconds: float, step_s: float = 0.02):
    ts, ss = [], []
    for _ in range(round(seconds / step_s)):
        clock.advance(step_s)
        t, s = driver.read()
        ts.append(t)
        ss.append(s)
    return np.concatenate(ts), np.concatenate(ss)


def truth(chip):
    """True times and gyro z counts of every sample the chip took."""
    return (np.concatenate(chip.recorded_times),
            np.concatenate(chip.recorded_raw)[:, 5].astype(np.int64))


def counts(chip, samples: np.ndarray) -> np.ndarray:
    _accel_lsb, gyro_lsb = chip.scales_si()
    return np.round(samples[:, 5] / gyro_lsb).astype(np.int64)


def check_against_truth(chip, driver, t, s, lost: int) -> None:
    """Every sample read is a true one, in order, at its true time; exactly ``lost`` true
    samples (one contiguous run) are missing."""
    true_t, true_z = truth(chip)
    got_z = counts(chip, s)
    assert np.all(np.abs(s[:, 2] - G) < 0.01)          # frames aligned: z is gravity
    assert true_z.size - got_z.size == lost
    # the ramp's counts are unique within the test: locate every sample read
    where = np.searchsorted(true_z, got_z)
    assert np.all(true_z[np.minimum(where, true_z.size - 1)] == got_z)
    assert np.all(np.diff(where) >= 1)                 # in order, none twice
    gaps = np.diff(where) - 1
    assert int(gaps.sum()) + int(where[0]) + (true_z.size - 1 - int(where[-1])) == lost
    assert np.count_nonzero(gaps) <= 1                 # the lost ones are one run
    period = 1.0 / driver.output_rate_hz
    assert np.all(np.diff(t) > 0)
    assert np.max(np.abs(t - true_t[where])) <= 1.01 * period


@pytest.mark.parametrize("code", [errno.EREMOTEIO, errno.EIO])
@pytest.mark.parametrize("variant", RECOVERING)
def test_a_burst_failing_before_any_byte_loses_no_sample(variant, code):
    clock, chip, bus, driver = rig(variant)
    t_a, s_a = read_for(clock, driver, 0.5)
    clock.advance(0.01)
    bus.fail_next(1, error=code, reads_longer_than=16)   # the FIFO burst, not the status
    t_f, s_f = driver.read()
    assert bus.failures_injected == 1
    # read on after the failure: nothing was consumed, all 10 ms of samples come now
    assert t_f.size == round(0.01 * driver.output_rate_hz)
    t_b, s_b = read_for(clock, driver, 1.0)
    assert driver.health.burst_failures == 1
    assert driver.health.burst_frames_lost == 0
    assert driver.health.overflows == 0 and driver.health.fifo_faults == 0
    assert driver.health.samples == chip.produced      # every sample taken was read
    check_against_truth(chip, driver, np.concatenate([t_a, t_f, t_b]),
                        np.concatenate([s_a, s_f, s_b]), 0)


@pytest.mark.parametrize("variant", RECOVERING)
@pytest.mark.parametrize("after_bytes", [100, 12 * 7, 1])
def test_a_burst_failing_mid_way_loses_only_the_frames_it_consumed(variant, after_bytes):
    clock, chip, bus, driver = rig(variant)
    clock.advance(0.02)                      # 20 frames (a MPU-6500 FIFO holds 42)
    bus.fail_next(1, error=errno.EIO, after_bytes=after_bytes,
                  reads_longer_than=max(16, after_bytes))      # the burst, not the status
    t_a, s_a = driver.read()
    assert bus.failures_injected == 1
    t_b, s_b = read_for(clock, driver, 1.5)
    t, s = np.concatenate([t_a, t_b]), np.concatenate([s_a, s_b])
    frame = driver.frame_bytes
    if variant == "LSM6DS3":
        after_bytes -= after_bytes % 2       # that FIFO pops whole 16-bit words
    if variant == "LSM6DSO":
        after_bytes -= after_bytes % 7       # a tagged word leaves when its last byte is read
    lost = -(-after_bytes // frame)          # frames touched by the failed burst
    assert driver.health.burst_failures == 1
    assert driver.health.burst_frames_lost == lost
    assert driver.health.samples_lost_estimate == lost
    assert driver.health.fifo_faults == 0 and driver.health.overflows == 0
    assert driver.health.reinits == 0
    check_against_truth(chip, driver, t, s, lost)


@pytest.mark.parametrize("variant", ["MPU-6050", "LSM6DS3", "LSM6DSO"])
def test_the_frames_read_before_a_failed_burst_are_kept(variant):
    clock, chip, bus, driver = rig(variant)
    driver.max_burst_frames = 20    # so that one read takes several bursts
    clock.advance(0.06)             # 60 frames: three bursts
    # the second burst fails part-way (the first goes through, the status reads too)
    bus.fail_next(1, error=errno.EIO, after_bytes=30, reads_longer_than=20 * 12 - 1)
    first = bus.transfers
    t_a, s_a = driver.read()
    assert bus.failures_injected == 1 and bus.transfers > first
    # 30 bytes: two whole frames and part of a third (the tagged FIFO gives up whole 7-byte
    # words only: four words, two frames)
    lost = 2 if variant == "LSM6DSO" else 3
    # the first burst's frames, then the rest read on: all but the lost ones
    assert t_a.size == chip.produced - lost
    t_b, s_b = read_for(clock, driver, 0.5)
    assert driver.health.burst_frames_lost == lost
    check_against_truth(chip, driver, np.concatenate([t_a, t_b]),
                        np.concatenate([s_a, s_b]), lost)


def test_bursts_failing_at_random_lose_only_what_they_consumed():
    clock, chip, bus, driver = rig("MPU-6050")
    rng = np.random.default_rng(7)
    ts, ss = [], []
    for _ in range(500):
        clock.advance(0.02)
        if rng.random() < 0.05:
            cut = int(rng.integers(0, 200))
            bus.fail_next(1, error=errno.EIO, after_bytes=cut, reads_longer_than=max(16, cut))
        t, s = driver.read()
        ts.append(t)
        ss.append(s)
    t, s = np.concatenate(ts), np.concatenate(ss)
    lost = driver.health.burst_frames_lost
    assert driver.health.burst_failures == bus.failures_injected > 10
    assert chip.produced - t.size - chip.fifo_level_count() // 12 == lost, driver.health
    assert lost <= 17 * bus.failures_injected
    assert np.all(np.abs(s[:, 2] - G) < 0.01)
    assert np.all(np.diff(t) > 0)


@pytest.mark.parametrize("variant", list(EMULATED_VARIANTS))
def test_one_percent_of_transfers_failing_at_1khz_loses_only_what_failed_bursts_consumed(
        variant):
    """Every chip and clone (the 1024-byte-FIFO clone answering 0x70 at 0x69 among them), read
    at a jittery pace that a 512-byte FIFO survives and the late reads the one-shot tools make
    (which only a 1024-byte FIFO survives): no false overflow, no sample lost but those a
    failed burst took off the FIFO, every timestamp within one period of the truth."""
    clock = ManualClock(100.0)
    chip = make_chip(variant, ramp, clock=clock, record=True)
    bus = EmulatedBus([chip])
    driver = detect(bus, clock=clock)
    big_fifo = chip.fifo_capacity_bytes >= 1024
    bus.fail_randomly(0.01, seed=3)
    rng = np.random.default_rng(5)
    ts, ss = [], []
    for _ in range(100):     # about 2.5 s: the ramp's values stay unique
        # a late read now and then: 50-70 ms is more than a 512-byte FIFO holds at 1 kHz
        late = big_fifo and rng.random() < 0.1
        clock.advance(rng.uniform(0.05, 0.07) if late else rng.uniform(0.01, 0.03))
        t, s = driver.read()
        ts.append(t)
        ss.append(s)
    bus.fail_randomly(0.0)
    t, s = np.concatenate(ts), np.concatenate(ss)
    assert bus.failures_injected >= 2       # seeded: the same failures every run
    assert driver.health.overflows == 0 and chip.overflowed_bytes == 0
    lost = driver.health.burst_frames_lost
    true_t, true_z = truth(chip)
    got_z = counts(chip, s)
    where = np.searchsorted(true_z, got_z)
    assert np.all(true_z[np.minimum(where, true_z.size - 1)] == got_z)
    assert np.all(np.diff(where) >= 1)
    missing = int(where[-1]) + 1 - where.size
    assert missing == lost, driver.health
    assert np.all(np.diff(t) > 0)
    assert np.max(np.abs(t - true_t[where])) <= 1.0 / driver.output_rate_hz
