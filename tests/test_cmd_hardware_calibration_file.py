"""The calibration file: round trip, default location, and clear errors when it is broken."""

from __future__ import annotations

import json

import numpy as np
import pytest

from roller.base.errors import RollerError
from roller.pipeline.calibration import Calibration, CalibrationError, default_path


def test_round_trip_normalises_the_axis(tmp_path):
    path = tmp_path / "sub" / "cal.json"
    saved = Calibration(gyro_bias_rad_s=np.array([0.01, -0.02, 0.3]), roll_axis=(0, 0, 2),
                        confident=True)
    assert saved.save(path) == path
    loaded = Calibration.load(path)
    assert loaded == saved
    assert loaded.roll_axis == (0.0, 0.0, 1.0)
    assert not (tmp_path / "sub" / "cal.json.tmp").exists()


def test_default_path_is_in_the_state_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("STATE_DIRECTORY", str(tmp_path))
    assert default_path() == tmp_path / "calibration.json"
    Calibration().save()
    assert Calibration.load() == Calibration()
    assert Calibration.load_or_none(tmp_path / "absent.json") is None


@pytest.mark.parametrize("content,problem", [
    ("{", "not valid JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"gyro_bias_rad_s": [1, 2]}', "gyro_bias_rad_s must be 3 numbers"),
    ('{"gyro_bias_rad_s": [1, 2, "x"]}', "gyro_bias_rad_s must be 3 numbers"),
    ('{"gyro_bias_rad_s": [0, 0, 0], "roll_axis": [0, 0, 0]}', "non-zero"),
    ('{"gyro_bias_rad_s": [0, 0, 0], "confident": "yes"}', "confident"),
    ('{"gyro_bias_rad_s": [0, 0, 0], "bias": 1}', "unknown key 'bias'"),
    ('{"format": 7, "gyro_bias_rad_s": [0, 0, 0]}', "format 7 is not supported"),
    ('{"roll_axis": null}', "gyro_bias_rad_s is missing"),
])
def test_malformed_file_names_the_file_and_the_problem(tmp_path, content, problem):
    path = tmp_path / "calibration.json"
    path.write_text(content)
    with pytest.raises(CalibrationError) as info:
        Calibration.load(path)
    assert str(path) in str(info.value) and problem in str(info.value)
    assert isinstance(info.value, RollerError) and isinstance(info.value, ValueError)


def test_missing_file_says_how_to_make_one(tmp_path):
    with pytest.raises(CalibrationError, match="run `roller calibrate`"):
        Calibration.load(tmp_path / "nope.json")


def test_saved_file_is_plain_json(tmp_path):
    path = Calibration((0.1, 0.2, 0.3), None, False).save(tmp_path / "c.json")
    assert json.loads(path.read_text()) == {"format": 1, "gyro_bias_rad_s": [0.1, 0.2, 0.3],
                                            "roll_axis": None, "confident": False}
