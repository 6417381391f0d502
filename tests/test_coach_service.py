"""The coach inside the real service: build_service (simulated IMU, pipeline, coach, history)
on a ManualClock, a real mosquitto, commands over MQTT, the coach topic and the history file."""

from __future__ import annotations

import json
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge.clock import ManualClock
from roller.coaching.history import History
from roller.mqtt.client import MqttSettings
from roller.pipeline import PipelineSettings
from roller.service.config import DeviceSettings, RollerConfig
from roller.service.wiring import build_service

STEP_S = 0.05


class Watcher:
    """An independent MQTT client: keeps the newest payload of each topic, sends commands."""

    def __init__(self, broker) -> None:
        self.latest: dict[str, bytes] = {}
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"watch-{time.monotonic_ns()}")
        self.client.on_message = lambda c, u, m: self.latest.__setitem__(m.topic, m.payload)
        self.client.connect(broker.host, broker.port)
        self.client.subscribe("roller/coached/#", qos=1)
        self.client.loop_start()

    def json(self, topic: str) -> dict | None:
        raw = self.latest.get(f"roller/coached/{topic}")
        return json.loads(raw) if raw else None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture
def service(broker, tmp_path: Path):
    config = RollerConfig(
        device=DeviceSettings(id="coached"),
        mqtt=MqttSettings(host=broker.host, port=broker.port, keepalive_s=2,
                          reconnect_min_delay_s=0.05, reconnect_max_delay_s=0.25),
        state_dir=str(tmp_path / "state"))
    clock = ManualClock(100.0)
    svc = build_service(config, simulate=True, seed=4, clock=clock)
    svc.publisher.start()
    assert svc.publisher.wait_connected(5)
    yield svc, clock, tmp_path / "state" / "history.sqlite3"
    svc.close()


def run_for(svc, clock: ManualClock, seconds: float) -> None:
    for _ in range(round(seconds / STEP_S)):
        clock.advance(STEP_S)
        svc.step()


def wait(predicate, svc, clock, timeout_s: float = 5.0) -> bool:
    """Step the service (small simulated steps) until ``predicate()``, in real time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        clock.advance(STEP_S)
        svc.step()
        if predicate():
            return True
        time.sleep(0.01)
    return False


def test_the_service_coaches_publishes_and_records_a_pain_stop(service, broker) -> None:
    svc, clock, history_path = service
    assert svc.coach is not None and svc.coach.routine.name == "lower_back_hips"
    assert "pain" in svc.commands
    watcher = Watcher(broker)
    try:
        run_for(svc, clock, 60.0)
        assert svc.coach.state in ("active", "transition")
        assert wait(lambda: (watcher.json("coach") or {}).get("state") in ("active",
                                                                          "transition"),
                    svc, clock)
        coach = watcher.json("coach")
        assert coach["routine"] == "lower_back_hips"
        assert coach["step"]["id"] in ("glutes_right", "glutes_left")
        assert coach["speed_limit_m_s"] == PipelineSettings().max_speed_m_s
        assert coach["sides_s"]["right"] > 5
        # pain, from any MQTT client
        watcher.client.publish("roller/coached/cmd/pain", b"", qos=1).wait_for_publish(5)
        assert wait(lambda: svc.coach.state == "done", svc, clock)
        assert wait(lambda: (watcher.json("coach") or {}).get("cue") == "pain_stop", svc, clock)
        coach = watcher.json("coach")
        assert "Stop rolling" in coach["prompt"] and coach["summary"]["end_reason"] == "pain"
        assert wait(lambda: ((watcher.json("session") or {}).get("routine") or {})
                    .get("end_reason") == "pain", svc, clock)
        assert watcher.json("session")["state"] == "finished"
        assert watcher.json("session")["end_reason"] == "pain"
    finally:
        watcher.close()
    with History(history_path) as history:
        rows = history.sessions()
        assert len(rows) == 1
        assert rows[0].end_reason == "pain" and rows[0].device_id == "coached"
        assert rows[0].right_s > 5 and rows[0].advice


def test_buttons_and_mqtt_share_the_coach_commands(service) -> None:
    svc, clock, _ = service
    svc.submit_command("start", b"", source="gpio")
    run_for(svc, clock, 1.0)
    assert svc.coach.state == "active" and svc.session.state == "running"
    svc.submit_command("start_pause", b"", source="gpio")
    run_for(svc, clock, 0.2)
    assert svc.coach.state == "paused" and svc.session.state == "paused"
    svc.submit_command("start_pause", b"", source="gpio")
    svc.submit_command("next", b"", source="mqtt")
    run_for(svc, clock, 0.2)
    assert svc.coach.state == "active" and svc.coach.current_step.id == "glutes_left"
    svc.submit_command("stop", b"", source="mqtt")
    run_for(svc, clock, 0.2)
    assert svc.coach.state == "done" and svc.session.state == "finished"


def test_start_at_a_chosen_step(service) -> None:
    svc, clock, _ = service
    svc.submit_command("start", b'{"step": "ql_right"}', source="mqtt")
    run_for(svc, clock, 0.2)
    assert svc.coach.state == "active" and svc.coach.current_step.id == "ql_right"
    assert svc.session.state == "running"
    svc.submit_command("stop", b"", source="mqtt")
    svc.submit_command("start", b'{"step": "nowhere"}', source="mqtt")
    run_for(svc, clock, 0.2)
    assert svc.coach.state == "done" and svc.session.state == "finished"  # refused, unchanged
