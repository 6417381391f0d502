"""``roller detect --phone``, ``roller record --phone`` and our phyphox experiment file, against
the stand-in phyphox phone (real HTTP, real subprocesses)."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from roller.phone.experiment import EXPERIMENT_FILE, ExperimentServer, qr_text
from roller.phone.phyphox_standin import StandInPhyphox, simulated_phone_source
from roller.recordings.recording import read_chunks

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def phone():
    p = StandInPhyphox(simulated_phone_source(), port=0).start()
    yield p
    p.stop()


def roller(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    config = tmp_path / "empty.toml"
    config.write_text("")
    return subprocess.run([sys.executable, "-m", "roller.cli", *args, "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=60)


def test_detect_says_what_the_phone_sends(phone, tmp_path):
    r = roller(tmp_path, "detect", "--phone", f"phyphox:{phone.url}", "--seconds", "1.5")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "experiment 'Stand-in: roller'" in out
    assert "gyroscope buffers gyrX, gyrY, gyrZ at gyr_time" in out
    assert "gravity included" in out and "clock:" in out
    rates = dict(re.findall(r"(accelerometer|gyroscope): (\d+) Hz \(median", out))
    assert 90 <= int(rates["accelerometer"]) <= 110 and 180 <= int(rates["gyroscope"]) <= 220


def test_detect_names_an_experiment_that_will_not_do(tmp_path):
    with StandInPhyphox(simulated_phone_source(), port=0, layout="linear acceleration") as p:
        r = roller(tmp_path, "detect", "--phone", f"phyphox:{p.url}", "--seconds", "0.5")
    assert r.returncode == 1 and "without gravity" in r.stdout


def test_detect_an_unreachable_phone_says_what_to_check(tmp_path):
    r = roller(tmp_path, "detect", "--phone", "phyphox:http://127.0.0.1:9", "--seconds", "0.5")
    assert r.returncode == 1 and "Allow remote access" in r.stdout
    assert "Traceback" not in r.stderr


def test_record_a_phone_session_in_the_recording_format(phone, tmp_path):
    out = tmp_path / "phone.csv"
    r = roller(tmp_path, "record", "--phone", f"phyphox:{phone.url}", "--seconds", "2",
               str(out))
    assert r.returncode == 0, r.stderr
    t, s = next(read_chunks(out))
    assert 300 < t.size < 450  # 2 s of a 200 Hz gyro
    assert abs(float(s[:, :3].mean(axis=0) @ s[:, :3].mean(axis=0)) ** 0.5 - 9.8) < 1.5


def test_our_experiment_file_records_gravity_and_gyro_at_the_fastest_rate():
    root = ET.parse(EXPERIMENT_FILE).getroot()
    assert root.tag == "phyphox"
    sensors = {s.get("type"): s for s in root.iter("sensor")}
    assert set(sensors) == {"accelerometer", "gyroscope"}  # with g: not linear_acceleration
    assert all(s.get("rate") == "0" for s in sensors.values())
    for s in sensors.values():
        assert {o.get("component") for o in s.iter("output")} == {"x", "y", "z", "t"}
    containers = {c.text for c in root.iter("container")}
    assert {o.text for s in sensors.values() for o in s.iter("output")} <= containers
    assert {s.get("name") for s in root.iter("set")} == {"Accelerometer", "Gyroscope"}


def test_the_experiment_is_served_for_its_qr_code():
    server = ExperimentServer(host="127.0.0.1")
    try:
        url = server.url("127.0.0.1")
        with urllib.request.urlopen(url, timeout=5) as res:
            assert res.read() == EXPERIMENT_FILE.read_bytes()
        assert server.fetches == 1
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(url.replace("roller.phyphox", "etc/passwd"), timeout=5)
    finally:
        server.close()
    text = qr_text(url)
    assert text is None or text.count("\n") > 15  # segno is optional (compact: 2 rows a line)


def test_detect_a_sensor_logger_pusher(tmp_path):
    import json
    import threading
    import time

    from roller.phone.detection import detect_sensor_logger
    from roller.phone.settings import PhoneSettings

    lines: list[str] = []
    result: list[int] = []
    settings = PhoneSettings(app="sensor-logger", listen_host="127.0.0.1", listen_port=0)
    runner = threading.Thread(target=lambda: result.append(
        detect_sensor_logger(settings, 2.0, lines.append)))
    runner.start()
    deadline = time.monotonic() + 5
    while not lines and time.monotonic() < deadline:
        time.sleep(0.01)
    url = re.search(r"(http://\S+)", lines[0]).group(1)
    assert url.startswith("http://127.0.0.1:") and "/push?token=" in url
    now_ns = time.time_ns()
    payload = [{"name": name, "time": now_ns - (100 - i) * 10_000_000,
                "values": {"x": 0.0, "y": 0.0, "z": 9.81 if name != "gyroscope" else 0.01}}
               for name in ("gyroscope", "totalacceleration") for i in range(100)]
    req = urllib.request.Request(url, data=json.dumps({"sessionId": "s", "payload": payload})
                                 .encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=5) as res:
        assert res.status == 200
    runner.join(10)
    text = "\n".join(lines)
    assert result == [0], text
    assert "gyroscope: 100 readings, about 100 Hz" in text
    assert "gravity: included" in text and "clock:" in text
