"""The MQTT contract, frozen: a golden transcript of a seeded simulated session.

``build_service(config, simulate=True, seed=SEED)`` on a ManualClock runs a coached session of
:data:`DURATION_S` simulated seconds (strokes, holds, too-fast passes, coach steps, a pause, a
skipped step, refused commands, then an orderly shutdown) against a real mosquitto. An MQTT 5
client subscribed to ``#`` (retain-as-published, so the retain flag is the publisher's) records
every message: topic, QoS, retain flag and payload. Wall-clock times and random session ids
are normalised; times on the manual clock are kept, so any change in what is sent, when (in
simulated time) or how it is shaped fails the test. Numbers are taken at
:data:`FLOAT_DIGITS` significant digits, so the transcript does not depend on numpy's last
digits.

MQTT orders messages per topic, not across topics (a QoS 0 ``live`` may overtake a QoS 1 event
in flight), so the transcript lists each topic's messages in the order they arrived, topics in
the order they first appeared.

An intended contract change regenerates the file: ``ROLLER_UPDATE_GOLDEN=1 pytest
tests/test_golden_transcript.py``; say in the commit which lines changed and why.
"""

from __future__ import annotations

import itertools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.subscribeoptions import SubscribeOptions

from firmware_bridge.clock import ManualClock
from roller.mqtt.client import MqttSettings
from roller.service.config import DeviceSettings, RollerConfig
from roller.service.wiring import build_service

GOLDEN = Path(__file__).resolve().parent / "golden" / "mqtt_transcript.jsonl"
SEED = 7
STEP_S = 0.05
"""Simulated time per service step [s] (the loop runs every 0.03 s live; coarser is faster
here and changes nothing the contract says)."""
DURATION_S = 150.0
"""Simulated session length [s]: enough for strokes, holds, too-fast passes and a step change."""

COMMANDS: tuple[tuple[float, str, bytes], ...] = (
    (2.0, "dance", b""),            # unknown verb -> error unknown_command
    (3.0, "start", b"[1]"),          # not an object -> error bad_payload
    (40.0, "pause", b""),
    (45.0, "pause", b""),            # already paused -> error not_possible
    (48.0, "resume", b"{}"),
    (100.0, "next", b""),
)
"""(simulated time [s], verb, payload): commands sent over MQTT while the session runs."""

WALL_CLOCK_KEYS = frozenset({"time_unix_s", "started_unix_s", "ended_unix_s", "started_at",
                             "ended_at"})
"""Payload fields holding wall-clock times (the run's date): normalised to ``"<wall>"``."""
SESSION_ID_KEYS = frozenset({"session_id"})
"""Fields holding a session id (a date and random hex): numbered by first appearance."""
INSTANCE_KEYS = frozenset({"instance"})
"""``health``'s instance (a machine hash and a random id per run): normalised."""
EPOCH_KEYS = frozenset({"epoch"})
"""The outbox's epoch (random per outbox file): normalised to ``"<epoch>"``."""
DELIVERY_KEYS = frozenset({"outbox_pending"})
"""Figures that depend on how fast the broker acknowledged (real time, not the manual clock):
how many messages were still waiting when health was built. Normalised to ``"<delivery>"``."""
FLOAT_DIGITS = 9
"""Numbers are compared at 9 significant digits. Figures computed with numpy (means, medians,
filtered speeds) change in their 16th-17th digit from one numpy version to the next (summation
order, SIMD paths); nine digits is far finer than anything the contract means (a speed to
1 nm/s), and far coarser than that noise."""
FLOAT_ZERO = 1e-9
"""A number closer to zero than this is written as 0.0: cancellation noise (1e-17 against
-2e-17) has no significant digits to keep."""


class Recorder:
    """An MQTT 5 client on ``#`` that keeps every message with its publisher's retain flag."""

    def __init__(self, host: str, port: int) -> None:
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id="golden-recorder", protocol=mqtt.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.connect(host, port, keepalive=10)
        self.client.loop_start()
        self.client.subscribe("#", options=SubscribeOptions(qos=1, retainAsPublished=True))
        if not subscribed.wait(10):
            raise RuntimeError(f"the recorder could not subscribe on {host}:{port}")

    def _on_message(self, client: Any, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append({"topic": msg.topic, "qos": msg.qos, "retain": bool(msg.retain),
                                  "payload": bytes(msg.payload)})

    def count(self) -> int:
        with self._lock:
            return len(self.messages)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class Normaliser:
    """Replaces wall-clock times and session ids so that two runs compare equal."""

    def __init__(self) -> None:
        self.sessions: dict[str, str] = {}

    def __call__(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self(v) for v in value]
        if key in WALL_CLOCK_KEYS and value is not None:
            return "<wall>"
        if key in DELIVERY_KEYS and value is not None:
            return "<delivery>"
        if key in EPOCH_KEYS and value is not None:
            return "<epoch>"
        if key in INSTANCE_KEYS and value:
            return "<instance>"
        if key in SESSION_ID_KEYS and value is not None:
            return self.sessions.setdefault(value, f"<session {len(self.sessions) + 1}>")
        if isinstance(value, float):
            return at_precision(value)
        return value


def at_precision(value: float) -> float:
    """``value`` at :data:`FLOAT_DIGITS` significant digits (0.0 near zero, never -0.0)."""
    if abs(value) < FLOAT_ZERO:
        return 0.0
    return float(f"{value:.{FLOAT_DIGITS}g}") + 0.0


def transcript_lines(messages: list[dict[str, Any]]) -> list[str]:
    """One JSON line per message, grouped by topic (first appearance), in arrival order."""
    normalise = Normaliser()
    order: dict[str, list[dict[str, Any]]] = {}
    for m in messages:
        order.setdefault(m["topic"], []).append(m)
    lines = []
    for topic, msgs in order.items():
        for m in msgs:
            raw: bytes = m["payload"]
            try:
                payload: Any = json.loads(raw) if raw else None
                form = "json"
            except ValueError:
                payload, form = raw.decode("utf-8", errors="replace"), "text"
            if form == "json" and not isinstance(payload, dict | list):
                payload, form = raw.decode(), "text"  # e.g. an empty or numeric command
            lines.append(json.dumps({"topic": topic, "qos": m["qos"], "retain": m["retain"],
                                     form: normalise(payload)},
                                    separators=(",", ":"), sort_keys=True))
    return lines


def _settle(service: Any, timeout_s: float = 10.0) -> None:
    """Wait (in real time) until the broker has acknowledged everything in the outbox, so the
    next step finds the outbox as empty as a live loop would and health counts agree."""
    deadline = time.monotonic() + timeout_s
    while True:
        service.publisher.pump()
        if len(service.publisher.outbox) == 0:
            return
        assert time.monotonic() < deadline, "the broker did not acknowledge the outbox"
        time.sleep(0.001)


def _pending_commands(service: Any) -> int:
    return len(service.inbox)


def record_session(broker: Any, state_dir: Path) -> list[str]:
    recorder = Recorder(broker.host, broker.port)
    config = RollerConfig(
        device=DeviceSettings(id="golden", name="Golden roller"),
        mqtt=MqttSettings(host=broker.host, port=broker.port, keepalive_s=5,
                          reconnect_min_delay_s=0.05, reconnect_max_delay_s=0.25),
        state_dir=str(state_dir))
    clock = ManualClock(1000.0)
    service = build_service(config, simulate=True, seed=SEED, clock=clock)
    sender = recorder.client
    try:
        service.publisher.start()
        assert service.publisher.wait_connected(10)
        time.sleep(0.2)  # the service's SUBSCRIBE cmd/+ is acknowledged
        commands = list(COMMANDS)
        steps = round(DURATION_S / STEP_S)
        for i in range(steps):
            t = (i + 1) * STEP_S
            while commands and commands[0][0] <= t:
                _, verb, payload = commands.pop(0)
                before = _pending_commands(service)
                sender.publish(f"roller/golden/cmd/{verb}", payload, qos=1).wait_for_publish(5)
                deadline = time.monotonic() + 5
                while _pending_commands(service) <= before:
                    assert time.monotonic() < deadline, f"cmd/{verb} did not arrive"
                    time.sleep(0.001)
            clock.advance(STEP_S)
            service.step()
            _settle(service)
    finally:
        service.close()
    deadline = time.monotonic() + 10
    while not any(m["topic"] == "roller/golden/status" and m["payload"] == b"offline"
                  for m in recorder.snapshot()):
        assert time.monotonic() < deadline, "offline never arrived"
        time.sleep(0.01)
    quiet, n = time.monotonic(), recorder.count()
    while time.monotonic() - quiet < 0.3:  # nothing more in flight
        time.sleep(0.02)
        if recorder.count() != n:
            quiet, n = time.monotonic(), recorder.count()
    recorder.close()
    return transcript_lines(recorder.snapshot())


def test_the_mqtt_transcript_of_a_seeded_session_is_unchanged(broker, tmp_path):
    lines = record_session(broker, tmp_path / "state")
    text = "\n".join(lines) + "\n"
    if os.environ.get("ROLLER_UPDATE_GOLDEN"):
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    # The session must exercise the contract, or the golden file proves little.
    topics = {json.loads(line)["topic"].removeprefix("roller/golden/") for line in lines}
    assert {"status", "health", "live", "session", "coach", "error", "event/stroke",
            "event/hold", "event/hold_started", "event/too_fast_alert", "event/too_fast",
            "cmd/pause"} <= topics, sorted(topics)
    steps = {json.loads(line)["json"]["step_index"] for line in lines
             if json.loads(line)["topic"].endswith("/coach")}
    assert len(steps - {None}) >= 2, steps
    golden = GOLDEN.read_text().splitlines()
    if golden != lines:
        diff = next(i for i, (a, b) in enumerate(itertools.zip_longest(golden, lines))
                    if a != b)
        raise AssertionError(f"the MQTT transcript differs from {GOLDEN.name} at line "
                             f"{diff + 1} ({len(lines)} lines now, {len(golden)} golden):\n"
                             f"golden: {golden[diff] if diff < len(golden) else '<none>'}\n"
                             f"now:    {lines[diff] if diff < len(lines) else '<none>'}")
