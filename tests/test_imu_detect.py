"""detect(): scan the usual addresses, identify by WHO_AM_I, explain what answered where."""

from __future__ import annotations

import pytest

from firmware_bridge.chips import make_chip
from firmware_bridge.clock import ManualClock
from firmware_bridge.detection import detect, scan
from firmware_bridge.emulated import EmulatedBus, EmulatedLsm6ds3, EmulatedMpu6050
from firmware_bridge.errors import ImuNotFoundError, SensorError


def test_empty_bus_lists_every_address_with_no_answer():
    with pytest.raises(ImuNotFoundError) as info:
        detect(EmulatedBus(), clock=ManualClock())
    message = str(info.value)
    for address in ("0x68", "0x69", "0x6A", "0x6B"):
        assert f"{address}: no answer" in message
    assert "wiring" in message
    assert set(info.value.answers) == {0x68, 0x69, 0x6A, 0x6B}


def test_unknown_chip_is_named_with_its_who_am_i():
    clock = ManualClock()
    chip = EmulatedMpu6050(clock=clock, address=0x69)
    chip.who_am_i = 0x12
    chip.regs[0x75] = 0x12
    with pytest.raises(ImuNotFoundError) as info:
        detect(EmulatedBus([chip]), clock=clock)
    message = str(info.value)
    assert "0x69: answered, but is not a supported IMU (register 0x75 = 0x12" in message
    assert "0x68: no answer" in message
    assert "MPU-6050 0x68" in message                     # says what we would accept


def test_lsm6ds3_found_at_its_alternate_address():
    clock = ManualClock()
    bus = EmulatedBus([EmulatedLsm6ds3(clock=clock, address=0x6B)])
    driver = detect(bus, clock=clock)
    assert (driver.chip, driver.address) == ("LSM6DS3", 0x6B)


def test_scan_reports_every_chip_on_the_bus():
    clock = ManualClock()
    bus = EmulatedBus([make_chip("MPU-9250", clock=clock),
                       make_chip("LSM6DSO", clock=clock)])
    results = {r.address: r for r in scan(bus)}
    assert results[0x68].chip.name == "MPU-9250"
    assert results[0x6A].chip.name == "LSM6DSO/LSM6DSOX"
    assert not results[0x69].answered


def test_required_chip_skips_others_and_explains_when_absent():
    clock = ManualClock()
    bus = EmulatedBus([make_chip("MPU-6050", clock=clock), make_chip("LSM6DS3", clock=clock)])
    assert detect(bus, chip="lsm6ds3", clock=clock).address == 0x6A
    with pytest.raises(ImuNotFoundError, match="no lsm6dso found"):
        detect(bus, chip="lsm6dso", clock=clock)
    with pytest.raises(SensorError, match="unknown chip 'bmi160'"):
        detect(bus, chip="bmi160", clock=clock)


def test_explicit_address_list_is_honoured():
    clock = ManualClock()
    bus = EmulatedBus([make_chip("MPU-6050", clock=clock)])
    with pytest.raises(ImuNotFoundError) as info:
        detect(bus, [0x69], clock=clock)
    assert set(info.value.answers) == {0x69}


def test_chip_that_ignores_configuration_is_refused_with_a_reason():
    clock = ManualClock()

    class DeafMpu(EmulatedMpu6050):
        def write_register(self, register, value):      # accepts nothing but a reset
            if register == 0x6B:
                super().write_register(register, value)

    bus = EmulatedBus([DeafMpu(clock=clock)])
    with pytest.raises(SensorError, match="read back"):
        detect(bus, clock=clock)


def test_detect_is_importable_from_firmware_bridge_imu_as_its_docs_say():
    from firmware_bridge import detection, imu
    from firmware_bridge.imu import detect as detect_from_imu

    assert detect_from_imu is detection.detect
    assert imu.scan is detection.scan


def test_a_gy521_clone_answering_0x70_at_0x69_is_read_with_its_1024_byte_fifo():
    """An MPU-6050 inside a part that answers like an MPU-6500: ACCEL_CONFIG2 does not keep
    what is written, so the driver sizes its reads for the 6050's 1024-byte FIFO."""
    clock = ManualClock()
    chip = make_chip("clone-0x70-6050", clock=clock)
    assert chip.address == 0x69 and chip.who_am_i == 0x70
    driver = detect(EmulatedBus([chip]), clock=clock)
    assert driver.address == 0x69 and driver.fifo_bytes == 1024
    other = ManualClock()
    genuine = detect(EmulatedBus([make_chip("MPU-6500", clock=other)]), clock=other)
    assert genuine.fifo_bytes == 512
    assert driver.max_read_interval_s == pytest.approx(2 * genuine.max_read_interval_s, rel=0.05)
    clock.advance(0.07)                  # more than 512 bytes, less than 1024: no overflow
    t, _ = driver.read()
    assert t.size == chip.produced and driver.health.overflows == 0
