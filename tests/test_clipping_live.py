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


def _session_clipped_then_not(clip_rad_s: float):
    """A simulated session whose gyro reads at most ``clip_rad_s`` per channel for its first
    half (as if that were its full scale) and everything after: the second half proves the
    first half's plateaus were not a full scale."""
    from firmware_bridge.simulator import SimulatedRoller, person_scenario

    sim = SimulatedRoller(person_scenario(240.0, seed=8, random_mounting=False,
                                          fast_fraction=0.5), seed=8)
    t, samples = sim.recording(200.0)
    first = t < t[0] + 0.5 * (t[-1] - t[0])
    samples[first, 3:] = np.clip(samples[first, 3:], -clip_rad_s, clip_rad_s)
    return t, samples, first


def test_a_learnt_full_scale_is_dropped_as_soon_as_the_channel_reads_more() -> None:
    from roller.pipeline import Pipeline, PipelineSettings
    from roller.recordings.analysis import analyze_chunks, warnings_for

    clip = 0.6
    t, samples, first = _session_clipped_then_not(clip)
    pipeline = Pipeline(PipelineSettings())
    learnt_at = None
    for i in range(0, int(first.sum()), 500):
        pipeline.update(t[i:i + 500], samples[i:i + 500])
        if learnt_at is None and pipeline.clipping.learnt.any():
            learnt_at = t[i]
    assert learnt_at is not None, "the clipped first half should teach a full scale"
    k = int(np.flatnonzero(pipeline.clipping.learnt)[0])
    assert pipeline.clipping.level[k] <= clip
    assert pipeline.clipping.clipped_frames > 0
    # the first frame past the learnt level drops it, and what it alone marked is uncounted
    rest = ~first
    over = np.flatnonzero(np.abs(samples[rest, k]) > 1.2 * clip)
    assert over.size
    pipeline.update(t[rest][:over[0] + 50], samples[rest][:over[0] + 50])
    assert not pipeline.clipping.learnt[k] and pipeline.clipping.dropped >= 1
    # over the whole recording (any block size): no full scale, no clipping warning
    for block in (97, 4096):
        chunks = ((t[i:i + block], samples[i:i + block]) for i in range(0, t.size, block))
        summary = analyze_chunks(chunks, PipelineSettings(), debug=True)
        state = summary.pipeline_state["clipping"]
        assert state["dropped"] >= 1
        assert not any(state["learnt_from_data"]), state
        assert warnings_for(summary) == [], block


def test_unclipped_simulated_sessions_give_no_clipping_warning() -> None:
    from firmware_bridge.simulator import DEG, SimulatedRoller, person_scenario
    from roller.pipeline import PipelineSettings
    from roller.recordings.analysis import analyze_chunks, warnings_for

    for seed in (1, 2, 3):
        scenario = person_scenario(300.0, seed=seed, breathing_m=(0.004, 0.006),
                                   lean_rad=(20 * DEG, 30 * DEG))
        t, samples = SimulatedRoller(scenario, seed=seed).recording(100.0)
        chunks = ((t[i:i + 1000], samples[i:i + 1000]) for i in range(0, t.size, 1000))
        summary = analyze_chunks(chunks, PipelineSettings())
        assert warnings_for(summary) == [], seed
