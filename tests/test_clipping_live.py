"""The live path knows the driver's full scale: a gyro at it is marked clipped at once, and
health says so (issue 10 item 3)."""

from __future__ import annotations

import math

import numpy as np

from firmware_bridge.physics import STANDARD_GRAVITY_M_S2
from firmware_bridge.sensor import SensorSettings
from roller.contract.messages import health_payload
from roller.service.config import RollerConfig
from roller.service.wiring import make_pipeline, with_sensor_full_scale


def test_the_pipeline_takes_the_drivers_full_scale_unless_it_names_its_own() -> None:
    config = RollerConfig(sensor=SensorSettings(gyro_range_dps=500, accel_range_g=8))
    settings = with_sensor_full_scale(config.pipeline, config.sensor)
    assert math.isclose(settings.gyro_full_scale_rad_s, math.radians(500))
    assert math.isclose(settings.accel_full_scale_m_s2, 8 * STANDARD_GRAVITY_M_S2)
    pinned = with_sensor_full_scale(
        with_sensor_full_scale(config.pipeline, SensorSettings(gyro_range_dps=2000)),
        config.sensor)
    assert math.isclose(pinned.gyro_full_scale_rad_s, math.radians(2000))


def test_a_gyro_at_its_full_scale_reads_clipped_live_and_in_health() -> None:
    config = RollerConfig(sensor=SensorSettings(gyro_range_dps=500))
    pipeline = make_pipeline(config, None)
    rate_hz, full_scale = 200.0, math.radians(500)
    t = np.arange(0, 3.0, 1 / rate_hz)
    angle = np.cumsum(np.full(t.size, full_scale / rate_hz))
    samples = np.zeros((t.size, 6))
    samples[:, 1] = STANDARD_GRAVITY_M_S2 * np.sin(angle)   # gravity turns about x
    samples[:, 2] = STANDARD_GRAVITY_M_S2 * np.cos(angle)
    samples[:, 3] = full_scale                              # ... faster than the gyro can say
    still = t < 1.0
    samples[still, 1], samples[still, 2], samples[still, 3] = 0.0, STANDARD_GRAVITY_M_S2, 0.0
    pipeline.update(t[still], samples[still])
    assert not pipeline.live.speed_clipped
    pipeline.update(t[~still], samples[~still])
    assert pipeline.live.speed_clipped
    body = health_payload(device_id="mat", degraded=False, uptime_s=3.0, sensor={}, mqtt={},
                          events_published=0, calibrated=False, time_unix_s=0.0,
                          speed_clipped=pipeline.live.speed_clipped)
    assert body["speed_clipped"] is True
