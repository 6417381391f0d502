"""open_sensor: the production loader, simulated through the real driver, and its errors."""

from __future__ import annotations

import dataclasses
import typing

import numpy as np
import pytest

from firmware_bridge.clock import ManualClock
from firmware_bridge.errors import BusOpenError, ConfigError
from firmware_bridge.imu import DriverSettings
from firmware_bridge.imu.base import FifoImuDriver
from firmware_bridge.sensor import SensorSettings, open_sensor
from firmware_bridge.settings import from_mapping
from firmware_bridge.simulator import SimulatedRoller, person_scenario


def test_simulated_sensor_goes_through_the_real_driver_and_matches_the_simulation():
    clock = ManualClock(1000.0)
    scenario = person_scenario(60.0, seed=3)
    driver = open_sensor(SensorSettings(output_rate_hz=500), simulate=True, scenario=scenario,
                         seed=3, clock=clock)
    assert isinstance(driver, FifoImuDriver)
    assert driver.chip == "MPU-6050" and driver.output_rate_hz == 500.0
    ts, ss = [], []
    for _ in range(200):
        clock.advance(0.05)
        t, s = driver.read()
        ts.append(t)
        ss.append(s)
    t, s = np.concatenate(ts), np.concatenate(ss)
    assert 4995 <= t.size <= 5000          # 10 s at 500 Hz, after 0.13 s of chip start-up
    truth = SimulatedRoller(scenario, seed=3).ideal_imu(t - 1000.0)
    # the noise-free motion is within noise, bias and quantisation of what the driver read
    assert np.median(np.abs(s[:, :3] - truth[:, :3])) < 0.3
    assert np.median(np.linalg.norm(s[:, :3], axis=1)) == pytest.approx(9.81, abs=0.3)
    driver.close()
    t, _ = driver.read()
    assert t.size == 0


@pytest.mark.parametrize("chip,name", [("lsm6ds3", "LSM6DS3"), ("lsm6dso", "LSM6DSO/LSM6DSOX"),
                                       ("mpu9250", "MPU-9250")])
def test_simulate_follows_the_configured_chip(chip, name):
    clock = ManualClock()
    driver = open_sensor(SensorSettings(chip=chip), simulate=True,
                         scenario=person_scenario(10.0), clock=clock)
    assert driver.chip == name


def test_configured_address_is_the_only_one_tried():
    clock = ManualClock()
    driver = open_sensor(SensorSettings(address=0x69), simulate=True,
                         scenario=person_scenario(10.0), clock=clock)
    assert driver.address == 0x69


def test_missing_bus_says_to_enable_i2c():
    with pytest.raises(BusOpenError) as info:
        open_sensor(SensorSettings(bus=250))
    assert "/dev/i2c-250" in str(info.value)
    assert "raspi-config" in str(info.value)
    assert isinstance(info.value, OSError)


def test_settings_are_validated_with_key_and_expected_value():
    with pytest.raises(ConfigError, match=r"sensor.gyro_range_dps: expected one of 500, 1000"):
        from_mapping(SensorSettings, {"gyro_range_dps": 250}, prefix="sensor.")
    with pytest.raises(ConfigError, match=r"sensor.output_rate_hz: expected a value from 100"):
        from_mapping(SensorSettings, {"output_rate_hz": 5000}, prefix="sensor.")
    with pytest.raises(ConfigError, match=r"sensor\.chip"):
        from_mapping(SensorSettings, {"chip": "bmi160"}, prefix="sensor.")
    ok = from_mapping(SensorSettings, {"address": 0x6B, "output_rate_hz": 1000})
    assert ok.address == 0x6B and ok.output_rate_hz == 1000.0


def test_st_chip_strapped_to_an_unusual_address_is_still_identified():
    clock = ManualClock()
    driver = open_sensor(SensorSettings(address=0x69, chip="lsm6ds3"), simulate=True,
                         scenario=person_scenario(10.0), clock=clock)
    assert (driver.chip, driver.address) == ("LSM6DS3", 0x69)


def test_the_sensor_settings_share_the_drivers_declarations():
    # [sensor] shows some of the driver's settings: same documentation, unit, range and type;
    # only the output rate's default differs.
    driver = {f.name: f for f in dataclasses.fields(DriverSettings)}
    hints = typing.get_type_hints(SensorSettings)
    shared = [f for f in dataclasses.fields(SensorSettings) if f.name in driver]
    assert {f.name for f in shared} == {"output_rate_hz", "gyro_range_dps", "accel_range_g",
                                        "reconnect_interval_s"}
    for f in shared:
        assert f.metadata == driver[f.name].metadata
        assert hints[f.name] == typing.get_type_hints(DriverSettings)[f.name]
    assert SensorSettings().output_rate_hz == 200.0
    assert SensorSettings(output_rate_hz=500.0).driver_settings().output_rate_hz == 500.0
