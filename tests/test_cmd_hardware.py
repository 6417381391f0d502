"""roller detect / record / calibrate end to end, with --simulate (emulated chip, real driver)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from firmware_bridge.simulator import rotation_matrix
from roller.cli import main
from roller.pipeline.calibration import Calibration
from roller.pipeline.calibration_measurement import calibration_scenario
from roller.recordings import recording


@pytest.fixture(autouse=True)
def no_user_config(monkeypatch, tmp_path):
    monkeypatch.delenv("ROLLER_CONFIG", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)


def test_detect_simulated_identifies_and_reads(capsys):
    assert main(["detect", "--simulate", "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "0x68: MPU-6050 (WHO_AM_I 0x75 = 0x68)" in out
    assert "0x6A: no answer" in out
    assert "samples in 0.2 s" in out


def test_detect_without_i2c_says_what_to_check(capsys):
    assert main(["detect", "--bus", "250"]) == 1
    err = capsys.readouterr().err
    assert "/dev/i2c-250 does not exist" in err and "raspi-config" in err


def test_record_simulated_fast_writes_the_recording_format(tmp_path, capsys):
    out = tmp_path / "session.csv"
    assert main(["record", str(out), "--simulate", "--fast", "--seconds", "20",
                 "--rate", "1000"]) == 0
    t, s = recording.read(out)
    assert 19990 <= t.size <= 20000
    assert t[0] >= 0 and t[-1] <= 20.0
    assert np.all(np.diff(t) > 0)
    assert np.median(np.diff(t)) == pytest.approx(0.001, rel=0.01)
    assert np.median(np.linalg.norm(s[:, :3], axis=1)) == pytest.approx(9.81, abs=0.5)
    err = capsys.readouterr().err
    assert f"wrote {t.size} samples" in err


def test_record_in_real_time_with_config_chosen_chip(tmp_path, capsys):
    config = tmp_path / "roller.toml"
    config.write_text('[sensor]\nchip = "lsm6dso"\noutput_rate_hz = 104\n')
    out = tmp_path / "short.csv"
    assert main(["record", str(out), "--simulate", "--seconds", "0.6",
                 "--config", str(config)]) == 0
    t, _ = recording.read(out)
    assert 40 <= t.size <= 65                 # 0.6 s at 104 Hz, minus start-up
    assert "LSM6DSO/LSM6DSOX" in capsys.readouterr().err


def test_record_refuses_bad_options(tmp_path, capsys):
    out = str(tmp_path / "x.csv")
    assert main(["record", out, "--fast", "--seconds", "1"]) == 2
    assert "--fast needs --simulate" in capsys.readouterr().err
    assert main(["record", out, "--simulate", "--seconds", "1", "--rate", "5000"]) == 78
    assert "sensor.output_rate_hz" in capsys.readouterr().err
    assert main(["record", out, "--seconds", "1", "--bus", "250"]) == 1
    assert "raspi-config" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [0, 4])
def test_calibrate_simulated_finds_offset_and_roll_axis(tmp_path, capsys, seed):
    out = tmp_path / "cal.json"
    assert main(["calibrate", "--simulate", "--fast", "--seed", str(seed),
                 "--out", str(out)]) == 0
    calibration = Calibration.load(out)
    scenario = calibration_scenario(5.0, 15.0, seed)
    assert np.allclose(calibration.gyro_bias_rad_s, scenario.gyro_bias_rad_s, atol=0.002)
    true_axis = rotation_matrix(scenario.mounting_rotvec)[:, 0]
    assert abs(np.dot(calibration.roll_axis, true_axis)) > 0.995
    assert calibration.confident
    assert "saved confident calibration" in capsys.readouterr().out


def test_calibrate_saves_in_the_configured_state_dir(tmp_path):
    state = tmp_path / "my-state"
    config = tmp_path / "roller.toml"
    config.write_text(f'state_dir = "{state}"\n')
    assert main(["calibrate", "--simulate", "--fast", "--config", str(config),
                 "--seconds", "10"]) == 0
    data = json.loads((state / "calibration.json").read_text())
    assert data["format"] == 1 and len(data["gyro_bias_rad_s"]) == 3
