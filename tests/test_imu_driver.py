"""The IMU drivers against register-level emulated chips, on a manual clock."""

from __future__ import annotations

import errno

import numpy as np
import pytest

from firmware_bridge.chips import CHIP_VARIANTS, EMULATED_VARIANTS, FAMILY_VARIANTS, make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.detection import detect
from firmware_bridge.emulated import EmulatedBus
from firmware_bridge.imu import DriverSettings
from firmware_bridge.imu.base import FifoImuDriver
from firmware_bridge.physics import STANDARD_GRAVITY_M_S2

G = STANDARD_GRAVITY_M_S2


def wavy(t: np.ndarray) -> np.ndarray:
    """Smooth motion within every range: a slow roll about z with gravity on z."""
    t = np.asarray(t, dtype=float)
    out = np.zeros((t.size, 6))
    out[:, 0] = 0.8 * np.sin(0.7 * t)
    out[:, 1] = -0.5 * np.cos(1.1 * t)
    out[:, 2] = G
    out[:, 3] = 0.05 * np.sin(2.0 * t)
    out[:, 4] = -0.02
    out[:, 5] = 1.5 * np.sin(0.5 * t)
    return out


def ramp(t: np.ndarray) -> np.ndarray:
    """Every sample different (gyro z climbs 1 count per ms at +-1000 dps): loss or
    duplication shows as a broken sequence."""
    t = np.asarray(t, dtype=float)
    out = np.zeros((t.size, 6))
    out[:, 2] = G
    out[:, 5] = np.radians((t % 30.0) * 30.0)   # wraps every 30 s, stays below 1000 dps
    return out


def rig(variant: str, source=wavy, *, rate_error: float = 0.0, settings=None, t0: float = 50.0):
    clock = ManualClock(t0)
    chip = make_chip(variant, source, clock=clock, record=True, rate_error=rate_error)
    bus = EmulatedBus([chip])
    driver = detect(bus, clock=clock, settings=settings)
    return clock, chip, bus, driver


def run(clock: ManualClock, driver: FifoImuDriver, seconds: float, step_s: float):
    ts, ss = [], []
    steps = round(seconds / step_s)
    for _ in range(steps):
        clock.advance(step_s)
        t, s = driver.read()
        assert t.shape[0] == s.shape[0]
        assert s.shape[1] == 6
        ts.append(t)
        ss.append(s)
    return np.concatenate(ts), np.concatenate(ss)


EXPECTED_NAMES = {variant: chip.name for variant, chip in EMULATED_VARIANTS.items()}
"""What detection must call each emulated variant: the registry row that lists it (the
emulators keep their own WHO_AM_I answers, so this checks the registry against them)."""


@pytest.mark.parametrize("variant", CHIP_VARIANTS)
def test_every_variant_reads_values_in_si_units_within_quantisation(variant):
    clock, chip, _bus, driver = rig(variant)
    assert driver.chip == EXPECTED_NAMES[variant]
    t, s = run(clock, driver, 20.0, 0.02)
    true_t = chip.samples_produced_times()
    assert t.size == true_t.size == chip.produced > 0
    period = 1.0 / driver.output_rate_hz
    assert np.all(np.diff(t) > 0)
    assert np.max(np.abs(t - true_t)) <= 1.01 * period
    accel_lsb, gyro_lsb = chip.scales_si()
    expected = wavy(true_t - chip.source_t0)
    err = np.abs(s - expected)
    assert np.all(err[:, :3] <= 0.51 * accel_lsb + 1e-12)
    assert np.all(err[:, 3:] <= 0.51 * gyro_lsb + 1e-12)
    # and the scale is really the configured one: 4 g and 1000 deg/s by default (ST's
    # datasheet sensitivities leave some headroom: 35 mdps/LSB reaches 1147 deg/s)
    assert 0.99 <= accel_lsb / (4 * G / 32768) <= 1.2
    assert 0.99 <= gyro_lsb / (np.radians(1000) / 32768) <= 1.2


@pytest.mark.parametrize("variant,rate", [("MPU-6050", 1000.0), ("MPU-6500", 500.0),
                                          ("MPU-6050", 100.0), ("LSM6DS3", 1000.0),
                                          ("LSM6DSO", 200.0), ("ICM-20948", 1000.0),
                                          ("ICM-20948", 200.0)])
def test_output_rate_is_what_the_chip_can_do(variant, rate):
    settings = DriverSettings(output_rate_hz=rate)
    clock, chip, _bus, driver = rig(variant, settings=settings)
    expected = {("MPU-6050", 1000.0): 1000.0, ("MPU-6500", 500.0): 500.0,
                ("MPU-6050", 100.0): 100.0, ("LSM6DS3", 1000.0): 833.0,
                ("LSM6DSO", 200.0): 208.0, ("ICM-20948", 1000.0): 1125.0,
                ("ICM-20948", 200.0): 1125.0 / 6}[(variant, rate)]
    assert driver.output_rate_hz == expected
    assert chip.output_rate_hz == expected
    t, _ = run(clock, driver, 5.0, 0.01)
    assert t.size == chip.produced
    assert np.median(np.diff(t)) == pytest.approx(1 / expected, rel=0.01)


@pytest.mark.parametrize("variant", FAMILY_VARIANTS)
def test_no_sample_lost_or_duplicated_at_1khz_over_simulated_minutes(variant):
    clock, chip, _bus, driver = rig(variant, ramp)
    rng = np.random.default_rng(1)
    limit = driver.max_read_interval_s
    ts, ss = [], []
    elapsed = 0.0
    while elapsed < 180.0:
        step = float(rng.uniform(0.0005, limit))
        clock.advance(step)
        elapsed += step
        t, s = driver.read()
        ts.append(t)
        ss.append(s)
    t, s = np.concatenate(ts), np.concatenate(ss)
    raw = chip.samples_produced_raw()
    assert driver.health.overflows == 0 and driver.health.fifo_faults == 0
    assert t.size == raw.shape[0] == chip.produced
    assert np.all(np.diff(t) > 0)
    _, gyro_lsb = chip.scales_si()
    np.testing.assert_allclose(s[:, 5] / gyro_lsb, raw[:, 5], atol=1e-6)


def test_max_read_interval_follows_the_fifo_size():
    *_, mpu6050 = rig("MPU-6050")
    assert mpu6050.max_read_interval_s == pytest.approx(1024 // 12 / 1000 * 0.75)
    assert 0.05 < mpu6050.max_read_interval_s < 0.085
    *_, mpu6500 = rig("MPU-6500")
    assert mpu6500.max_read_interval_s == pytest.approx(512 // 12 / 1000 * 0.75)
    *_, clone = rig("clone-0x98")           # FIFO size unknown: the small one is assumed
    assert clone.max_read_interval_s == pytest.approx(mpu6500.max_read_interval_s)


@pytest.mark.parametrize("rate_error", [0.02, -0.03])
def test_timestamps_do_not_drift_when_the_chip_oscillator_is_off(rate_error):
    clock, chip, _bus, driver = rig("MPU-6050", rate_error=rate_error)
    t, _ = run(clock, driver, 300.0, 0.03)
    true_t = chip.samples_produced_times()
    assert t.size == true_t.size
    error = np.abs(t - true_t)
    assert error[-10000:].max() < 1.5e-3         # within ~1 sample after 5 minutes
    assert np.all(np.diff(t) > 0)


@pytest.mark.parametrize("variant", FAMILY_VARIANTS)
def test_overflow_is_counted_reported_and_recovered(variant):
    clock, chip, _bus, driver = rig(variant)
    run(clock, driver, 1.0, 0.02)
    clock.advance(driver.max_read_interval_s * 3)            # the host was too slow
    t, s = driver.read()
    assert t.size == 0 and s.shape == (0, 6)
    assert driver.health.overflows == 1
    assert driver.health.samples_lost_estimate > 0
    assert "overflow" in (driver.health.last_error or "")
    last_before = chip.produced
    t2, _ = run(clock, driver, 2.0, 0.02)
    assert t2.size > 0.95 * 2.0 * driver.output_rate_hz
    assert chip.produced - last_before >= t2.size
    assert driver.health.connected
    # after the reset the timestamps are anchored again: they match the true times
    true_t = chip.samples_produced_times()[-t2.size:]
    assert np.max(np.abs(t2 - true_t)) <= 1.01 / driver.output_rate_hz


def test_forced_overflow_misaligns_mpu_fifo_and_the_driver_never_returns_garbage():
    clock, chip, _bus, driver = rig("MPU-6050")
    run(clock, driver, 0.5, 0.02)
    chip.force_overflow()
    assert len(chip.fifo) % 12 != 0 or chip.fifo_consumed_bytes % 12 != 0
    t, _ = driver.read()
    assert t.size == 0
    assert driver.health.overflows == 1
    t, s = run(clock, driver, 1.0, 0.02)
    assert t.size > 900
    assert np.all(np.abs(s[:, 2] - G) < 0.01)          # aligned frames: z is gravity


@pytest.mark.parametrize("code", [errno.EREMOTEIO, errno.EIO])
def test_transient_bus_errors_are_retried_without_losing_samples(code):
    clock, chip, bus, driver = rig("MPU-6050", ramp)
    run(clock, driver, 1.0, 0.02)
    clock.advance(0.02)
    bus.fail_next(2, error=code)
    t, _ = driver.read()
    assert t.size == 20 + 6          # 2 ms + 4 ms of backoff on the manual clock
    assert driver.health.retries == 2
    assert driver.health.reinits == 0
    assert str(code) in driver.health.last_error or "I/O" in driver.health.last_error
    t_rest, _ = run(clock, driver, 1.0, 0.02)
    assert t_rest.size == 1000
    assert driver.health.samples == chip.produced


def test_backoff_uses_the_injected_clock():
    clock, _chip, bus, driver = rig("LSM6DSO")
    clock.advance(0.02)
    before = clock.monotonic()
    bus.fail_next(3)
    t, _ = driver.read()
    assert t.size > 0
    # 2 ms + 4 ms + 8 ms of backoff, slept on the manual clock
    assert clock.monotonic() - before == pytest.approx(0.014)


def test_repeated_failures_reinitialise_the_chip():
    clock, _chip, bus, driver = rig("LSM6DS3")
    run(clock, driver, 0.5, 0.02)
    for _ in range(3):
        clock.advance(0.02)
        bus.fail_next(4)                      # more than the 3 retries: the read fails
        t, _ = driver.read()
        assert t.size == 0
    assert driver.health.reinits == 1
    assert driver.health.connected
    t, _ = run(clock, driver, 1.0, 0.02)
    assert t.size >= 800


def test_unplugged_sensor_is_reported_and_picked_up_again():
    clock, chip, _bus, driver = rig("MPU-6050")
    run(clock, driver, 0.5, 0.02)
    chip.unplug()
    t, s = run(clock, driver, 3.0, 0.02)        # never raises
    assert t.size == 0 and s.shape == (0, 6)
    assert driver.health.connected is False
    assert driver.health.disconnects == 1
    assert "not answering" in driver.health.last_error
    chip.replug()                               # power-cycled: asleep, unconfigured
    t, s = run(clock, driver, 3.0, 0.02)
    assert driver.health.connected is True
    assert t.size > 1800                        # found again within the reconnect interval
    assert np.all(np.abs(s[:, 2] - G) < 0.01)
    assert np.all(np.diff(t) > 0)


def test_fifo_count_stuck_at_zero_is_detected_and_cured_by_reinitialising():
    clock, chip, _bus, driver = rig("MPU-6050")
    run(clock, driver, 0.5, 0.02)
    chip.stick_fifo_count(True)                 # count frozen (at 0 right after a read)
    t, _ = run(clock, driver, 0.3, 0.02)
    assert driver.health.fifo_faults >= 3
    assert driver.health.reinits == 1           # the reset cleared the fault
    assert "stalled or FIFO count stuck" in driver.health.last_error or \
        driver.health.last_error == "chip re-initialised"
    t, _ = run(clock, driver, 1.0, 0.02)
    assert t.size == 1000


def test_fifo_count_stuck_high_is_never_read_as_data():
    clock, chip, _bus, driver = rig("MPU-6050")
    run(clock, driver, 0.5, 0.02)
    clock.advance(0.06)
    chip.stick_fifo_count(True)                 # frozen at ~60 frames
    t, _ = driver.read()
    assert t.size == 60
    clock.advance(0.005)                        # only 5 more can exist
    t, _ = driver.read()
    assert t.size == 0
    assert driver.health.fifo_faults == 1
    assert "stuck FIFO count" in driver.health.last_error


def test_misaligned_fifo_count_resets_the_fifo():
    clock, _chip, bus, driver = rig("MPU-6050")
    run(clock, driver, 0.5, 0.02)
    clock.advance(0.01)
    bus.write_byte_data(0x68, 0x74, 0x55)        # a stray byte written into FIFO_R_W
    t, _ = driver.read()
    assert t.size == 0
    assert driver.health.fifo_faults == 1
    assert "misaligned" in driver.health.last_error
    t, s = run(clock, driver, 0.5, 0.02)
    assert t.size >= 480
    assert np.all(np.abs(s[:, 2] - G) < 0.01)


def test_lsm6ds3_pattern_out_of_step_is_not_read_as_data():
    clock, _chip, bus, driver = rig("LSM6DS3")
    run(clock, driver, 0.5, 0.02)
    clock.advance(0.02)
    bus.read_i2c_block_data(0x6A, 0x3E, 2)       # someone else read one word
    t, _ = driver.read()
    assert t.size == 0
    assert "pattern" in driver.health.last_error
    t, s = run(clock, driver, 0.5, 0.02)
    assert t.size > 380
    assert np.all(np.abs(s[:, 2] - G) < 0.01)


def test_lsm6dso_unpaired_tagged_word_is_dropped_and_counted():
    clock, _chip, bus, driver = rig("LSM6DSO")
    run(clock, driver, 0.5, 0.02)
    clock.advance(0.02)
    bus.read_i2c_block_data(0x6A, 0x78, 7)       # one word gone: its partner is alone
    t, s = driver.read()
    assert driver.health.fifo_faults == 1
    assert t.size >= 14
    assert np.all(np.abs(s[:, 2] - G) < 0.01)


def test_accel_saturates_at_full_scale_like_the_adc():
    def hard_knock(t):
        out = wavy(t)
        out[:, 0] = 10 * G                          # beyond +-4 g
        out[:, 5] = -np.radians(3000)               # beyond +-1000 dps
        return out

    clock, chip, _bus, driver = rig("MPU-6050", hard_knock)
    _, s = run(clock, driver, 0.1, 0.02)
    accel_lsb, gyro_lsb = chip.scales_si()
    assert np.allclose(s[:, 0], 32767 * accel_lsb)
    assert np.allclose(s[:, 5], -32768 * gyro_lsb)


@pytest.mark.parametrize("variant", ["MPU-6050", "ICM-20948", "LSM6DS3", "LSM6DSO"])
@pytest.mark.parametrize("gyro,accel", [(500, 8), (2000, 16)])
def test_configured_ranges_reach_the_chip(variant, gyro, accel):
    settings = DriverSettings(gyro_range_dps=gyro, accel_range_g=accel)
    clock, chip, _bus, driver = rig(variant, settings=settings)
    accel_lsb, gyro_lsb = chip.scales_si()
    assert 0.99 <= accel_lsb / (accel * G / 32768) <= 1.2
    assert 0.99 <= gyro_lsb / (np.radians(gyro) / 32768) <= 1.2
    _t, s = run(clock, driver, 1.0, 0.02)
    expected = wavy(chip.samples_produced_times() - chip.source_t0)
    assert np.all(np.abs(s[:, 3:] - expected[:, 3:]) <= 0.51 * gyro_lsb + 1e-12)


def test_long_bursts_use_i2c_rdwr_in_few_transfers():
    clock, _chip, bus, driver = rig("MPU-6050")
    clock.advance(0.06)                          # 60 frames = 720 bytes
    before_transfers, before_bytes = bus.transfers, bus.bytes_read
    t, _ = driver.read()
    assert t.size == 60
    assert bus.bytes_read - before_bytes == 2 + 720     # count + one FIFO burst
    assert bus.transfers - before_transfers == 3        # INT_STATUS, count, burst


def test_close_makes_read_return_nothing():
    clock, _chip, _bus, driver = rig("MPU-6050")
    driver.close()
    clock.advance(0.05)
    t, s = driver.read()
    assert t.size == 0 and s.shape == (0, 6)


def test_icm20948_unplugged_mid_bank_switch_is_found_again():
    clock, chip, bus, driver = rig("ICM-20948")
    run(clock, driver, 0.5, 0.02)
    chip.unplug()
    run(clock, driver, 2.0, 0.02)
    assert not driver.health.connected
    chip.replug()
    bus.write_byte_data(0x68, 0x7F, 0x20)         # left in bank 2 by someone: WHO_AM_I hidden
    t, s = run(clock, driver, 2.0, 0.02)
    assert driver.health.connected
    assert t.size > 500
    assert np.all(np.abs(s[:, 2] - G) < 0.01)


def test_a_closed_bus_is_reported_not_raised():
    clock, _chip, bus, driver = rig("LSM6DSO")
    run(clock, driver, 0.2, 0.02)
    bus.close()                                  # EBADF: not worth retrying
    t, _ = run(clock, driver, 2.0, 0.02)
    assert t.size == 0
    assert driver.health.connected is False
    assert driver.health.retries == 0


class _IgnoresOneRegister(EmulatedBus):
    """A bus to a chip that silently keeps its power-on value in one register, as a poor clone
    or a flaky wire can: the write is acknowledged but nothing changes."""

    def __init__(self, chips, register: int) -> None:
        super().__init__(chips)
        self.ignored = register

    def write_byte_data(self, i2c_addr, register, value, force=None) -> None:
        if register != self.ignored:
            super().write_byte_data(i2c_addr, register, value, force)


@pytest.mark.parametrize(("variant", "register", "name"), [
    ("MPU-6050", 0x1C, "ACCEL_CONFIG"), ("LSM6DSO", 0x10, "CTRL1_XL")])
def test_a_configuration_the_chip_does_not_keep_is_refused_by_name(variant, register, name):
    from firmware_bridge.errors import SensorError

    clock = ManualClock(0.0)
    bus = _IgnoresOneRegister([make_chip(variant, wavy, clock=clock)], register)
    with pytest.raises(SensorError) as info:
        detect(bus, clock=clock)
    message = str(info.value)
    assert f"register 0x{register:02X} but read back" in message, name
    assert variant.split("-")[0] in message
