"""The simulated roller obeys the physics the pipeline relies on."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from firmware_bridge.simulator import (
    DEG,
    GRAVITY_M_S2,
    HoldSegment,
    RestSegment,
    Scenario,
    SimulatedRoller,
    StrokeSegment,
    TwistSegment,
    person_scenario,
    random_rotvec,
    rotation_matrix,
)
from roller.recordings import recording

DT = 0.0005


def _roll_axis(scenario: Scenario) -> np.ndarray:
    """The roller's long axis (body x) in sensor axes."""
    return rotation_matrix(scenario.mounting_rotvec)[:, 0]


@pytest.mark.parametrize("radius_m", [0.04, 0.075])
def test_integrated_roll_rate_times_radius_is_the_commanded_distance(radius_m: float) -> None:
    rng = np.random.default_rng(5)
    segs = (RestSegment(1.0), StrokeSegment(0.08, 0.03), StrokeSegment(-0.05, 0.12, 0.2),
            RestSegment(0.5))
    sc = Scenario(segs, radius_m=radius_m, mounting_rotvec=random_rotvec(rng))
    sim = SimulatedRoller(sc)
    t = np.arange(0.0, sim.duration_s, DT)
    gyro = sim.ideal_imu(t)[:, 3:]
    travel = np.cumsum(gyro @ _roll_axis(sc)) * DT * radius_m
    stroke_1_end = round((1.0 + segs[1].duration_s) / DT)
    assert travel[stroke_1_end] == pytest.approx(0.08, abs=5e-4)
    assert travel[-1] == pytest.approx(0.03, abs=5e-4)


def test_gravity_magnitude_and_rotation_about_the_roll_axis() -> None:
    sc = Scenario((StrokeSegment(0.3, 0.05, 0.3),), mounting_rotvec=(0.3, -1.2, 2.0))
    sim = SimulatedRoller(sc)
    t = np.arange(0.0, sim.duration_s, DT)
    accel = sim.ideal_imu(t)[:, :3]
    mid = (t > 0.5) & (t < sim.duration_s - 0.5)  # cruising: no linear acceleration
    assert np.allclose(np.linalg.norm(accel[mid], axis=1), GRAVITY_M_S2, atol=1e-9)
    # gravity stays perpendicular to the roll axis and turns through distance / radius
    axis = _roll_axis(sc)
    assert np.abs(accel @ axis).max() < 1e-9
    g0, g1 = accel[0], accel[-1]
    angle = math.acos(np.dot(g0, g1) / (np.linalg.norm(g0) * np.linalg.norm(g1)))
    turned = 0.3 / 0.075  # 4 rad: more than half a turn, so the angle between is 2 pi - 4
    assert angle == pytest.approx(2 * math.pi - turned, abs=1e-3)


def test_mounting_rotation_preserves_norms() -> None:
    segs = (StrokeSegment(0.1, 0.04), HoldSegment(6.0), StrokeSegment(-0.1, 0.1))
    plain = SimulatedRoller(Scenario(segs))
    rotated = SimulatedRoller(Scenario(segs, mounting_rotvec=(1.0, 2.0, -0.5)))
    t = np.linspace(0.0, plain.duration_s, 5000)
    a, b = plain.ideal_imu(t), rotated.ideal_imu(t)
    assert np.allclose(np.linalg.norm(a[:, :3], axis=1), np.linalg.norm(b[:, :3], axis=1))
    assert np.allclose(np.linalg.norm(a[:, 3:], axis=1), np.linalg.norm(b[:, 3:], axis=1))
    assert not np.allclose(a, b)


def test_leaning_in_a_hold_rotates_about_other_axes_and_travels_only_the_breathing() -> None:
    hold = HoldSegment(20.0, breathing_m=0.004, lean_rad=6 * DEG, yaw_rad=5 * DEG)
    sc = Scenario((hold,), mounting_rotvec=(0.4, 0.2, 0.9))
    sim = SimulatedRoller(sc)
    t = np.arange(0.0, sim.duration_s, DT)
    gyro = sim.ideal_imu(t)[:, 3:]
    roll = gyro @ _roll_axis(sc)
    other = np.linalg.norm(gyro - np.outer(roll, _roll_axis(sc)), axis=1)
    travel = np.cumsum(roll) * DT * sc.radius_m
    # a few mm of rocking (plus the yaw's sliver along the tilted axis), not a stroke
    assert np.ptp(travel) < 0.005
    assert other.max() > 1.5 * np.abs(roll).max()   # leaning outweighs the rocking


def test_ball_speed_is_horizontal_rotation_times_radius_and_spin_moves_nothing() -> None:
    segs = (StrokeSegment(0.06, 0.03), TwistSegment(2.0, 1.2), StrokeSegment(-0.06, 0.05))
    sc = Scenario(segs, radius_m=0.04, body="ball", mounting_rotvec=(0.7, -0.3, 1.1))
    sim = SimulatedRoller(sc, seed=3)
    t = np.arange(0.0, sim.duration_s, DT)
    imu = sim.ideal_imu(t)
    up = imu[:, :3] / np.linalg.norm(imu[:, :3], axis=1, keepdims=True)
    w = imu[:, 3:]
    horizontal = w - (w * up).sum(axis=1, keepdims=True) * up
    speed = np.linalg.norm(horizontal, axis=1) * sc.radius_m
    true = np.abs(sim.motion(t)["v"])
    assert np.abs(speed - true).max() < 2e-3
    twisting = (t > segs[0].duration_s + 0.1) & (t < segs[0].duration_s + 1.9)
    assert np.linalg.norm(w[twisting], axis=1).max() > 0.5     # it does spin
    assert speed[twisting].max() < 1e-9


def test_bias_noise_and_determinism() -> None:
    sc = Scenario((RestSegment(30.0),), gyro_bias_rad_s=(0.1, -0.2, 0.3),
                  gyro_bias_drift_rad_s=(0.02, 0.0, 0.0), warmup_time_s=10.0,
                  gyro_noise_rad_s=0.01, accel_noise_m_s2=0.05)
    sim = SimulatedRoller(sc, seed=4)
    t = np.arange(0.0, 30.0, 0.001)
    imu = sim.imu(t)
    assert np.array_equal(imu, SimulatedRoller(sc, seed=4).imu(t))
    assert not np.array_equal(imu, SimulatedRoller(sc, seed=5).imu(t))
    early, late = imu[t < 1.0, 3:].mean(axis=0), imu[t > 29.0, 3:].mean(axis=0)
    assert early == pytest.approx([0.1, -0.2, 0.3], abs=0.003)
    assert late[0] - early[0] == pytest.approx(0.02 * (1 - math.exp(-3)), abs=0.003)
    assert imu[:, 3].std() == pytest.approx(0.01 * 1.0, rel=0.3)


def test_recording_has_jitter_and_drops_but_increasing_time() -> None:
    sim = SimulatedRoller(person_scenario(60, seed=2), seed=2)
    t, samples = sim.recording(500.0, jitter_s=0.0004, drop_fraction=0.05)
    assert np.all(np.diff(t) > 0)
    assert samples.shape == (t.size, 6)
    expected = sim.duration_s * 500
    assert 0.9 * expected < t.size < 0.97 * expected
    assert np.diff(t).max() > 5 / 500          # a burst of drops leaves a gap


def test_truth_follows_the_definitions() -> None:
    segs = (RestSegment(2.0), StrokeSegment(0.1, 0.03), StrokeSegment(-0.1, 0.12, 0.2),
            StrokeSegment(0.015, 0.02), HoldSegment(10.0), StrokeSegment(0.05, 0.03),
            RestSegment(1.0))
    sim = SimulatedRoller(Scenario(segs))
    truth = sim.truth(max_speed_m_s=0.05)
    assert [s.direction for s in truth.strokes] == [1, -1, 1]      # the 1.5 cm one is no stroke
    assert truth.strokes[1].peak_speed_m_s == 0.12
    assert len(truth.too_fast) == 1
    tf = truth.too_fast[0]
    t = np.linspace(tf.start - 0.05, tf.end + 0.05, 20001)
    above = np.abs(sim.motion(t)["v"]) > 0.05
    assert t[above][0] == pytest.approx(tf.start, abs=1e-4)
    assert t[above][-1] == pytest.approx(tf.end, abs=1e-4)
    # the 1.5 cm nudge and the hold merge into one still period; the 1 s rest is too short
    assert len(truth.holds) == 1
    assert truth.holds[0].end == pytest.approx(truth.strokes[2].start)


def test_person_scenario_is_plausible() -> None:
    sc = person_scenario(600, seed=11)
    sim = SimulatedRoller(sc, seed=11)
    truth = sim.truth()
    assert sim.duration_s >= 600
    assert len(truth.strokes) > 40 and len(truth.holds) >= 3
    speeds = np.array([s.peak_speed_m_s for s in truth.strokes])
    assert np.median(speeds) < 0.05
    assert person_scenario(600, seed=11) == sc


def test_command_line_writes_a_recording_and_its_truth(tmp_path) -> None:
    out = tmp_path / "session.csv"
    proc = subprocess.run([sys.executable, "-m", "roller.recordings.simulate", str(out),
                           "--seconds", "20", "--rate", "100", "--seed", "3"],
                          capture_output=True, text=True, check=True)
    assert "wrote" in proc.stdout
    t, samples = recording.read(out)
    assert samples.shape[1] == 6 and t[-1] > 19
    truth = json.loads((tmp_path / "session.truth.json").read_text())
    assert {"strokes", "holds", "too_fast", "scenario"} <= set(truth)
