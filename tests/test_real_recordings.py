"""The pipeline on recordings of real sensors, held to the truth each one supports.

The recordings and their truth live outside the repository (their licences are the sources'):
``../shared/real-imu/`` beside the checkout (or two levels up, for a git worktree), or the
directory named by ``ROLLER_REAL_IMU``. Each truth file's ``scored`` list says which figures its
reference supports; the scoring is ``benchmarks/accuracy.py``'s (``--real-only`` prints it).
Known shortfalls are strict xfails with their reason, so they show, and flip when fixed.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "accuracy.py"
_spec = importlib.util.spec_from_file_location("roller_accuracy_benchmark", _PATH)
assert _spec is not None and _spec.loader is not None
accuracy = sys.modules.get(_spec.name) or importlib.util.module_from_spec(_spec)
if _spec.name not in sys.modules:
    sys.modules[_spec.name] = accuracy
    _spec.loader.exec_module(accuracy)

DIRECTORY = accuracy.real_dir()
NAMES = accuracy.real_names(DIRECTORY) if DIRECTORY else []
pytestmark = pytest.mark.skipif(
    DIRECTORY is None, reason=f"real recordings not found: put them in ../shared/real-imu or "
                              f"set {accuracy.REAL_ENV}")

DISTANCE_TOLERANCE = {"car02_start_w1": 0.25, "car08_stop_go_w1": 0.25}
"""The car's truth is GNSS travel scaled to a roller (+-20 % in speed, cut by the window)."""
DEFAULT_DISTANCE_TOLERANCE = 0.05

KNOWN = {
    ("robot_pitch_mpu6050", "strokes"):
        "the robot's orientation puts the first stroke's start at 0.00 s, where the gyro "
        "shows no motion until 0.9 s (the two clocks disagree there)",
    ("robot_pitch_mpu6050", "false_strokes"): "the same first stroke, unmatched",
    ("robot_roll_mpu6500", "peak_speed"):
        "the gyro clips at 0.90 rad/s: the measured peak is a lower bound",
    ("car08_stop_go_w1", "peak_speed"):
        "a wheel hub's vibration raises the speed over 0.12 s above the GNSS speed's peak "
        "(41 %)",
}


@pytest.fixture(scope="module")
def scores():
    return {sc.name: sc for sc in accuracy.evaluate_real(DIRECTORY)} if DIRECTORY else {}


def cases():
    out = []
    for name in NAMES:
        import json

        truth = json.loads((DIRECTORY / f"{name}.truth.json").read_text())
        for figure in truth["scored"]:
            marks = []
            if (name, figure) in KNOWN:
                marks.append(pytest.mark.xfail(strict=True, reason=KNOWN[(name, figure)]))
            out.append(pytest.param(name, figure, marks=marks, id=f"{name}-{figure}"))
    return out


@pytest.mark.parametrize(("name", "figure"), cases())
def test_real_recording_meets_its_truth(scores, name, figure) -> None:
    sc = scores[name]
    print(sc.line())
    if figure == "strokes":
        assert sc.strokes_matched == sc.strokes_true
    elif figure == "distance":
        tol = DISTANCE_TOLERANCE.get(name, DEFAULT_DISTANCE_TOLERANCE)
        assert sc.distance_errors and max(sc.distance_errors) <= tol
    elif figure == "peak_speed":
        assert sc.peak_errors and max(sc.peak_errors) <= 0.20
    elif figure == "holds":
        assert sc.holds_matched == sc.holds_true == sc.holds_found
    elif figure == "false_strokes":
        assert sc.false_strokes == 0
    elif figure == "too_fast":
        assert sc.alerts_matched == sc.too_fast_true
    elif figure == "false_alarms":
        assert sc.false_alarms == 0
    else:
        pytest.fail(f"{name}: truth scores {figure!r}, which this test does not know")


def test_the_six_recordings_are_there() -> None:
    assert len(NAMES) >= 6, NAMES
