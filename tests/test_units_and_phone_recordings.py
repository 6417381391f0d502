"""``roller analyze`` on recordings in the wrong units and on phone-app exports (issue 10).

The motion is a real recording (a real MPU-6050 turned by hand, from ``../shared/real-imu``)
rewritten in other units and in phyphox's and Sensor Logger's export layouts; the analysis must
find the same strokes as from the original, or stop with an error saying what to pass.
"""

from __future__ import annotations

import json
import math
import zipfile

import numpy as np
import pytest

from roller.cli import main
from roller.recordings.recording import read
from roller.recordings.units import Units, UnitsError, diagnose, inspect
from tests.test_real_recordings import DIRECTORY

pytestmark = pytest.mark.skipif(DIRECTORY is None, reason="real recordings not found")
NAME = "mpu6050_turns_y"


@pytest.fixture(scope="module")
def turns():
    return read(DIRECTORY / f"{NAME}.csv")


def analyse(capsys, *args: str) -> tuple[int, dict | None, str]:
    rc = main(["analyze", *args, "--radius", "0.05", "--max-speed", "0.1", "--json"])
    out, err = capsys.readouterr()
    return rc, (json.loads(out) if out.strip() else None), err


def write_csv(path, header: list[str], columns: list[np.ndarray], *, delimiter=",",
              decimal="."):
    with open(path, "w", encoding="utf-8") as f:
        f.write(delimiter.join(header) + "\n")
        for row in np.column_stack(columns):
            f.write(delimiter.join(f"{v:.9g}".replace(".", decimal) for v in row) + "\n")


def strokes(result: dict) -> list[tuple[float, float]]:
    return [(round(s["distance_m"], 3), round(s["start_s"], 1)) for s in result["strokes"]]


@pytest.fixture(scope="module")
def reference():
    """The original recording's analysis."""
    import argparse

    from roller.commands.analyze import analysis_json, settings_from_args
    from roller.recordings.analysis import analyze

    args = argparse.Namespace(config=None, radius=0.05, max_speed=0.1, roll_axis=None,
                              gyro_bias=None, ball=False, gyro_range=None)
    summary = analyze(str(DIRECTORY / f"{NAME}.csv"), settings_from_args(args))
    return analysis_json(summary)


def test_reference_has_the_two_turns(reference) -> None:
    assert len(reference["strokes"]) == 2
    assert all(abs(s["distance_m"] - 0.314) < 0.01 for s in reference["strokes"])


@pytest.mark.parametrize(("spec", "t_scale", "gyro_scale", "accel_scale", "found"), [
    ("t=ms", 1e3, 1.0, 1.0, "t=ms"),
    ("t=us", 1e6, 1.0, 1.0, "t=us"),
    ("t=ns", 1e9, 1.0, 1.0, "t=ns"),
    ("gyro=deg/s", 1.0, 180 / math.pi, 1.0, "gyro=deg/s"),
    ("accel=g", 1.0, 1.0, 1 / 9.80665, "accel=g"),
    ("t=ms,gyro=deg/s,accel=g", 1e3, 180 / math.pi, 1 / 9.80665, "t=ms"),
])
def test_wrong_units_are_recognised_and_explicit_units_accepted(
        tmp_path, capsys, turns, reference, spec, t_scale, gyro_scale, accel_scale, found):
    t, s = turns
    path = tmp_path / "converted.csv"
    write_csv(path, ["t", "ax", "ay", "az", "gx", "gy", "gz"],
              [t * t_scale, s[:, :3] * accel_scale, s[:, 3:] * gyro_scale])
    rc, result, err = analyse(capsys, str(path))
    assert rc == 2 and result is None      # bad input (issue 20): exit status 2
    assert found.split(",")[0] in err and "--units" in err
    rc, result, err = analyse(capsys, str(path), "--units", spec)
    assert rc == 0, err
    assert strokes(result) == strokes(reference)


def test_si_recordings_pass_the_units_check(turns) -> None:
    for name in ("mpu6050_static_10min", "car08_stop_go_w1", "robot_roll_mpu6500", NAME):
        t, s = read(DIRECTORY / f"{name}.csv")
        assert diagnose(inspect(t[:65536], s[:65536])) == [], name


def test_a_bad_units_option_says_what_is_expected() -> None:
    with pytest.raises(UnitsError, match="t=s\\|ms\\|us\\|ns"):
        Units.parse("t=minutes")
    assert Units.parse("gyro=dps").gyro == "deg/s"


def phyphox_files(folder, t, s, *, delimiter=",", decimal="."):
    folder.mkdir()
    # the accelerometer on its own clock, a little offset from the gyro's
    ta = t[::2] + 0.0007
    acc = np.column_stack([np.interp(ta, t, s[:, k]) for k in range(3)])
    write_csv(folder / "Accelerometer.csv",
              ['"Time (s)"', '"Acceleration x (m/s^2)"', '"Acceleration y (m/s^2)"',
               '"Acceleration z (m/s^2)"', '"Absolute acceleration (m/s^2)"'],
              [ta, acc, np.linalg.norm(acc, axis=1)], delimiter=delimiter, decimal=decimal)
    write_csv(folder / "Gyroscope.csv",
              ['"Time (s)"', '"Gyroscope x (rad/s)"', '"Gyroscope y (rad/s)"',
               '"Gyroscope z (rad/s)"', '"Absolute (rad/s)"'],
              [t, s[:, 3:], np.linalg.norm(s[:, 3:], axis=1)], delimiter=delimiter,
              decimal=decimal)
    return folder


@pytest.mark.parametrize(("delimiter", "decimal"), [(",", "."), (";", ","), ("\t", ".")])
def test_phyphox_export_folder_reads_like_the_recording(tmp_path, capsys, turns, reference,
                                                        delimiter, decimal):
    t, s = turns
    folder = phyphox_files(tmp_path / "phyphox", t + 3.0, s, delimiter=delimiter,
                           decimal=decimal)
    rc, result, err = analyse(capsys, str(folder))
    assert rc == 0, err
    got, want = strokes(result), strokes(reference)
    assert len(got) == len(want)
    assert all(abs(a[0] - b[0]) <= 0.005 for a, b in zip(got, want, strict=True))
    # one of its files names the export too
    rc, result2, err = analyse(capsys, str(folder / "Gyroscope.csv"))
    assert rc == 0 and strokes(result2) == got


def test_sensor_logger_zip_reads_like_the_recording(tmp_path, capsys, turns, reference):
    t, s = turns
    epoch_ns = 1_700_000_000_000_000_000
    folder = tmp_path / "sl"
    folder.mkdir()
    for name, cols in (("TotalAcceleration.csv", s[:, :3]), ("Gyroscope.csv", s[:, 3:]),
                       ("Accelerometer.csv", s[:, :3] * 0.01)):
        # Sensor Logger's order: time (ns), seconds_elapsed, z, y, x
        write_csv(folder / name, ["time", "seconds_elapsed", "z", "y", "x"],
                  [np.round(epoch_ns + t * 1e9), t + 0.25, cols[:, 2], cols[:, 1],
                   cols[:, 0]])
    archive = tmp_path / "sensor-logger.zip"
    with zipfile.ZipFile(archive, "w") as z:
        for p in folder.iterdir():
            z.write(p, arcname=f"session/{p.name}")
    rc, result, err = analyse(capsys, str(archive))
    assert rc == 0, err
    got, want = strokes(result), strokes(reference)
    assert [g[0] for g in got] == [w[0] for w in want]


def test_a_phone_export_without_gravity_is_refused_with_the_reason(tmp_path, capsys, turns):
    t, s = turns
    folder = tmp_path / "linear"
    folder.mkdir()
    write_csv(folder / "Gyroscope.csv", ["time", "seconds_elapsed", "z", "y", "x"],
              [t * 1e9, t, s[:, 5], s[:, 4], s[:, 3]])
    write_csv(folder / "Accelerometer.csv", ["time", "seconds_elapsed", "z", "y", "x"],
              [t * 1e9, t, s[:, 2] * 0, s[:, 1] * 0, s[:, 0] * 0])
    rc, result, err = analyse(capsys, str(folder))
    assert rc != 0 and result is None
    assert "TotalAcceleration" in err and "gravity" in err


def test_clipping_is_warned_about(capsys) -> None:
    path = DIRECTORY / "robot_pitch_mpu6050.csv"
    rc = main(["analyze", str(path), "--radius", "0.05", "--max-speed", "0.03",
               "--gyro-range", "50", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0
    assert "full scale" in err
    assert json.loads(out)["warnings"]


# -- vibrating sensors (issue 21): the units check judges rotation from smoothed gravity -------

@pytest.mark.parametrize("name", ["car02_start_w1", "car08_stop_go_w1"])
def test_real_recordings_of_a_vibrating_sensor_are_analysed(capsys, name) -> None:
    """An IMU on a car's wheel hub with the engine running: single accelerometer samples
    jump 6-12 degrees from one to the next, the gravity they average to does not."""
    rc = main(["analyze", str(DIRECTORY / f"{name}.csv"), "--radius", "0.05", "--json"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    truth = json.loads((DIRECTORY / f"{name}.truth.json").read_text())
    assert len(json.loads(out)["strokes"]) == len(truth["strokes"])


def vibrating_session(rate_hz: float = 120.0):
    """A roller lying still for a minute on a vibrating floor (engine-like, 3 m/s^2: single
    samples about 15 degrees apart), then rolled slowly back and forth. The check before issue
    21 (single samples compared) found the gyro showing 0.09 of gravity's rotation here."""
    from firmware_bridge.simulator import Scenario, SimulatedRoller
    from firmware_bridge.simulator.segments import RestSegment, StrokeSegment

    segments = (RestSegment(60.0), StrokeSegment(0.12, 0.03), StrokeSegment(-0.12, 0.03),
                RestSegment(10.0))
    sim = SimulatedRoller(Scenario(segments, radius_m=0.05, vibration_m_s2=3.0,
                                   vibration_rad_s=0.2), seed=4)
    return sim.recording(rate_hz)


def test_a_simulated_vibrating_sensor_is_analysed_and_its_wrong_units_still_named(
        tmp_path, capsys) -> None:
    t, s = vibrating_session()
    unit = s[:, :3] / np.linalg.norm(s[:, :3], axis=1)[:, None]
    jump = np.degrees(np.arccos(np.clip((unit[1:] * unit[:-1]).sum(axis=1), -1, 1)))
    assert np.median(jump) > 8.0                 # the vibration is really there
    path = tmp_path / "vibrating.csv"
    write_csv(path, ["t", "ax", "ay", "az", "gx", "gy", "gz"], [t, s[:, :3], s[:, 3:]])
    rc, result, err = analyse(capsys, str(path))
    assert rc == 0, err
    assert len(result["strokes"]) == 2
    for spec, columns in (("gyro=deg/s", [t, s[:, :3], np.degrees(s[:, 3:])]),
                          ("t=ms", [t * 1e3, s[:, :3], s[:, 3:]]),
                          ("accel=g", [t, s[:, :3] / 9.80665, s[:, 3:]])):
        write_csv(path, ["t", "ax", "ay", "az", "gx", "gy", "gz"], columns)
        rc, result, err = analyse(capsys, str(path))
        assert rc == 2 and result is None, spec
        assert spec in err and "--units" in err
