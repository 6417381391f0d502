"""The emulated bus and chips behave like smbus2 and like the datasheets, byte for byte."""

from __future__ import annotations

import errno

import numpy as np
import pytest
from smbus2 import i2c_msg

from firmware_bridge.chips import make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.emulated import EmulatedBus, EmulatedLsm6ds3, EmulatedLsm6dso, EmulatedMpu6050
from firmware_bridge.physics import STANDARD_GRAVITY_M_S2

G = STANDARD_GRAVITY_M_S2


def known(t: np.ndarray) -> np.ndarray:
    """Accel (0.5 g, -0.25 g, 1 g), gyro (100, -50, 250) deg/s."""
    out = np.zeros((np.asarray(t).size, 6))
    out[:, :3] = np.array([0.5, -0.25, 1.0]) * G
    out[:, 3:] = np.radians([100.0, -50.0, 250.0])
    return out


def test_nothing_at_an_address_is_remote_io_error_like_linux():
    bus = EmulatedBus()
    with pytest.raises(OSError) as info:
        bus.read_byte_data(0x68, 0x75)
    assert info.value.errno == errno.EREMOTEIO


def test_block_reads_are_limited_to_32_bytes_like_smbus2():
    clock = ManualClock()
    bus = EmulatedBus([EmulatedMpu6050(clock=clock)])
    with pytest.raises(ValueError, match="32"):
        bus.read_i2c_block_data(0x68, 0x3B, 33)
    with pytest.raises(ValueError, match="32"):
        bus.write_i2c_block_data(0x68, 0x00, list(range(33)))


def test_who_am_i_of_every_variant():
    clock = ManualClock()
    expected = {"MPU-6050": 0x68, "MPU-6500": 0x70, "MPU-9250": 0x71, "clone-0x70": 0x70,
                "clone-0x71": 0x71, "clone-0x98": 0x98}
    for variant, who in expected.items():
        bus = EmulatedBus([make_chip(variant, clock=clock)])
        assert bus.read_byte_data(0x68, 0x75) == who
    assert EmulatedBus([EmulatedLsm6ds3(clock=clock)]).read_byte_data(0x6A, 0x0F) == 0x69
    assert EmulatedBus([EmulatedLsm6dso(clock=clock)]).read_byte_data(0x6A, 0x0F) == 0x6C


def test_fail_next_injects_nack_then_eio_then_recovers():
    clock = ManualClock()
    bus = EmulatedBus([EmulatedMpu6050(clock=clock)])
    bus.fail_next(1)
    with pytest.raises(OSError) as nack:
        bus.read_byte_data(0x68, 0x75)
    assert nack.value.errno == 121
    bus.fail_next(1, error=errno.EIO)
    with pytest.raises(OSError) as eio:
        bus.write_byte_data(0x68, 0x6B, 0)
    assert eio.value.errno == 5
    assert bus.read_byte_data(0x68, 0x75) == 0x68


def test_unplug_nacks_and_replug_comes_back_power_cycled():
    clock = ManualClock()
    chip = EmulatedMpu6050(clock=clock)
    bus = EmulatedBus([chip])
    bus.write_byte_data(0x68, 0x6B, 0x01)          # awake
    chip.unplug()
    with pytest.raises(OSError):
        bus.read_byte_data(0x68, 0x6B)
    chip.replug()
    assert bus.read_byte_data(0x68, 0x6B) == 0x40  # reset value: asleep


def mpu_running(clock, variant="MPU-6050", source=known, **kwargs):
    chip = make_chip(variant, source, clock=clock, **kwargs)
    bus = EmulatedBus([chip])
    bus.write_byte_data(0x68, 0x6B, 0x01)          # wake, PLL clock
    bus.write_byte_data(0x68, 0x19, 0)             # 1 kHz
    bus.write_byte_data(0x68, 0x1A, 1)             # DLPF on
    bus.write_byte_data(0x68, 0x1B, 2 << 3)        # +-1000 dps
    bus.write_byte_data(0x68, 0x1C, 1 << 3)        # +-4 g
    bus.write_byte_data(0x68, 0x23, 0x78)          # accel + gyro into the FIFO
    bus.write_byte_data(0x68, 0x6A, 0x44)          # FIFO on + reset
    return chip, bus


def test_mpu_fifo_frames_are_big_endian_accel_then_gyro_at_the_configured_scale():
    clock = ManualClock()
    _chip, bus = mpu_running(clock)
    clock.advance(0.0105)
    high, low = bus.read_i2c_block_data(0x68, 0x72, 2)
    assert (high << 8 | low) == 10 * 12
    write, read = i2c_msg.write(0x68, [0x74]), i2c_msg.read(0x68, 120)
    bus.i2c_rdwr(write, read)
    frames = np.frombuffer(bytes(read), dtype=">i2").reshape(10, 6)
    np.testing.assert_array_equal(frames[0], [4096, -2048, 8192, 3280, -1640, 8200])
    assert bus.read_i2c_block_data(0x68, 0x72, 2) == [0, 0]


def test_mpu_live_output_registers_hold_the_latest_sample():
    clock = ManualClock()
    _chip, bus = mpu_running(clock)
    clock.advance(0.005)
    bus.read_byte_data(0x68, 0x75)                 # any transfer brings the chip up to date
    data = bytes(bus.read_i2c_block_data(0x68, 0x3B, 14))
    ax, ay, az, _temp, gx, gy, gz = np.frombuffer(data, dtype=">i2")
    assert (ax, ay, az, gx, gy, gz) == (4096, -2048, 8192, 3280, -1640, 8200)


def test_mpu_overflow_sets_the_flag_drops_oldest_bytes_and_clears_on_read():
    clock = ManualClock()
    chip, bus = mpu_running(clock)
    clock.advance(0.2)                              # 200 frames into 1024 bytes
    assert bus.read_byte_data(0x68, 0x3A) & 0x10
    assert not bus.read_byte_data(0x68, 0x3A) & 0x10
    high, low = bus.read_i2c_block_data(0x68, 0x72, 2)
    assert (high << 8 | low) == 1024
    assert chip.fifo_consumed_bytes % 12 != 0       # the head is now mid-frame


def test_mpu6500_fifo_holds_512_bytes():
    clock = ManualClock()
    _chip, bus = mpu_running(clock, "MPU-6500")
    clock.advance(0.2)
    high, low = bus.read_i2c_block_data(0x68, 0x72, 2)
    assert (high << 8 | low) == 512


def test_stuck_fifo_count_freezes_the_count_registers():
    clock = ManualClock()
    chip, bus = mpu_running(clock)
    clock.advance(0.003)
    chip.stick_fifo_count()
    clock.advance(0.010)
    assert bus.read_i2c_block_data(0x68, 0x72, 2) == [0, 36]
    assert len(chip.fifo) == 13 * 12
    chip.stick_fifo_count(False)
    assert bus.read_i2c_block_data(0x68, 0x72, 2) == [0, 13 * 12]


def test_sample_clock_runs_at_the_oscillator_rate():
    clock = ManualClock()
    chip, _bus = mpu_running(clock, rate_error=0.01)
    clock.advance(10.0)
    chip.advance()
    assert chip.produced == 10100


def lsm_running(chip_cls, clock, source=known):
    chip = chip_cls(source, clock=clock)
    bus = EmulatedBus([chip])
    bus.write_byte_data(0x6A, 0x12, 0x44)          # BDU, IF_INC
    bus.write_byte_data(0x6A, 0x10, (7 << 4) | (0b10 << 2))   # 833 Hz, +-4 g
    bus.write_byte_data(0x6A, 0x11, (7 << 4) | (0b10 << 2))   # 833 Hz, +-1000 dps
    if chip_cls is EmulatedLsm6ds3:
        bus.write_byte_data(0x6A, 0x08, 0x09)      # no decimation for gyro and accel
        bus.write_byte_data(0x6A, 0x0A, (7 << 3) | 0b110)      # FIFO 833 Hz, continuous
    else:
        bus.write_byte_data(0x6A, 0x09, 0x77)      # BDR 833 Hz both
        bus.write_byte_data(0x6A, 0x0A, 0b110)     # continuous
    return chip, bus


def test_lsm6ds3_fifo_is_a_pattern_of_little_endian_words_gyro_first():
    clock = ManualClock()
    _chip, bus = lsm_running(EmulatedLsm6ds3, clock)
    clock.advance(10.5 / 833)
    s1, s2, s3, s4 = bus.read_i2c_block_data(0x6A, 0x3A, 4)
    assert s1 | (s2 & 0x0F) << 8 == 60             # words
    assert (s3, s4) == (0, 0)                      # pattern position 0
    data = bytes(bus.read_i2c_block_data(0x6A, 0x3E, 12))
    words = np.frombuffer(data, dtype="<i2")
    np.testing.assert_array_equal(words, [2857, -1429, 7143, 4098, -2049, 8197])
    bus.read_i2c_block_data(0x6A, 0x3E, 4)         # two more words
    assert bus.read_byte_data(0x6A, 0x3C) == 2


def test_lsm6ds3_bypass_mode_empties_the_fifo_and_overrun_is_flagged():
    clock = ManualClock()
    _chip, bus = lsm_running(EmulatedLsm6ds3, clock)
    clock.advance(2.0)                             # 1666 frames into 682
    assert bus.read_byte_data(0x6A, 0x3B) & 0x40   # OVER_RUN
    bus.write_byte_data(0x6A, 0x0A, (7 << 3) | 0)  # bypass
    s1, s2 = bus.read_i2c_block_data(0x6A, 0x3A, 2)
    assert s1 == 0 and s2 & 0x10 and not s2 & 0x40    # empty, no overrun


def test_lsm6dso_fifo_words_are_tagged_with_sensor_and_time_slot():
    clock = ManualClock()
    _chip, bus = lsm_running(EmulatedLsm6dso, clock)
    clock.advance(5.5 / 833)
    s1, s2 = bus.read_i2c_block_data(0x6A, 0x3A, 2)
    assert s1 | (s2 & 0x03) << 8 == 10
    msgs = (i2c_msg.write(0x6A, [0x78]), i2c_msg.read(0x6A, 70))
    bus.i2c_rdwr(*msgs)
    words = np.frombuffer(bytes(msgs[1]), dtype=np.uint8).reshape(10, 7)
    sensors = words[:, 0] >> 3
    slots = (words[:, 0] >> 1) & 3
    assert list(sensors) == [1, 2] * 5
    assert list(slots) == [0, 0, 1, 1, 2, 2, 3, 3, 0, 0]
    values = words[:, 1:].copy().view("<i2")
    np.testing.assert_array_equal(values[0], [2857, -1429, 7143])      # gyro
    np.testing.assert_array_equal(values[1], [4098, -2049, 8197])      # accel
    for tag in words[:, 0]:
        assert bin(int(tag)).count("1") % 2 == 0       # parity bit makes the count even


def test_lsm6dso_overflow_latches_until_status_is_read():
    clock = ManualClock()
    _chip, bus = lsm_running(EmulatedLsm6dso, clock)
    clock.advance(1.0)                                 # 833 slots into 256
    s2 = bus.read_byte_data(0x6A, 0x3B)
    assert s2 & 0x40 and s2 & 0x08
    assert not bus.read_byte_data(0x6A, 0x3B) & 0x08
    s1, s2 = bus.read_i2c_block_data(0x6A, 0x3A, 2)
    assert s1 | (s2 & 3) << 8 == 512


def test_software_reset_restores_register_defaults():
    clock = ManualClock()
    chip, bus = lsm_running(EmulatedLsm6dso, clock)
    bus.write_byte_data(0x6A, 0x12, 0x01)
    assert bus.read_byte_data(0x6A, 0x10) == 0
    assert bus.read_byte_data(0x6A, 0x12) == 0x04
    assert chip.output_rate_hz is None


def test_icm20948_registers_are_banked():
    clock = ManualClock()
    bus = EmulatedBus([make_chip("ICM-20948", known, clock=clock)])
    assert bus.read_byte_data(0x68, 0x00) == 0xEA          # WHO_AM_I, bank 0
    assert bus.read_byte_data(0x68, 0x06) == 0x41          # PWR_MGMT_1: asleep
    bus.write_byte_data(0x68, 0x7F, 0x20)                  # bank 2
    assert bus.read_byte_data(0x68, 0x7F) == 0x20
    assert bus.read_byte_data(0x68, 0x00) == 0x00          # GYRO_SMPLRT_DIV, not WHO_AM_I
    assert bus.read_byte_data(0x68, 0x01) == 0x01          # GYRO_CONFIG_1 reset value
    bus.write_byte_data(0x68, 0x7F, 0x00)
    assert bus.read_byte_data(0x68, 0x00) == 0xEA


def test_icm20948_fifo_frames_at_1125_hz_big_endian():
    clock = ManualClock()
    bus = EmulatedBus([make_chip("ICM-20948", known, clock=clock)])
    bus.write_byte_data(0x68, 0x06, 0x01)                  # awake
    bus.write_byte_data(0x68, 0x7F, 0x20)
    bus.write_byte_data(0x68, 0x01, (2 << 1) | 1)          # +-1000 dps, DLPF on
    bus.write_byte_data(0x68, 0x14, (1 << 1) | 1)          # +-4 g, DLPF on
    bus.write_byte_data(0x68, 0x7F, 0x00)
    bus.write_byte_data(0x68, 0x67, 0x1E)                  # accel + gyro into the FIFO
    bus.write_byte_data(0x68, 0x03, 0x40)                  # USER_CTRL.FIFO_EN
    bus.write_byte_data(0x68, 0x68, 0x1F)                  # FIFO held in reset ...
    clock.advance(0.01)
    high, low = bus.read_i2c_block_data(0x68, 0x70, 2)
    assert (high << 8 | low) == 0
    bus.write_byte_data(0x68, 0x68, 0x00)                  # ... and released
    clock.advance(20.5 / 1125)
    high, low = bus.read_i2c_block_data(0x68, 0x70, 2)
    assert (high << 8 | low) == 20 * 12
    frame = np.frombuffer(bytes(bus.read_i2c_block_data(0x68, 0x72, 12)), dtype=">i2")
    np.testing.assert_array_equal(frame, [4096, -2048, 8192, 3280, -1640, 8200])
    clock.advance(0.2)
    assert bus.read_byte_data(0x68, 0x1B) & 0x1F            # FIFO_OVERFLOW_INT
    high, low = bus.read_i2c_block_data(0x68, 0x70, 2)
    assert (high << 8 | low) == 512
