"""The README's mosquitto ACL, in a real mosquitto with users: each roller writes only its own
topics, the display and Home Assistant read every roller and may send commands, nobody else's
state can be forged.

The ACL is taken from README.md at test time (the indented block after "`/etc/mosquitto/acl`"),
so the documented file is the one tested; the users' password file is made with Debian's
``mosquitto_passwd``. The roller is the real service (``roller run --simulate`` with
``[mqtt] username`` and ``password_file``): a command from Home Assistant's user must reach it.
"""

from __future__ import annotations

import getpass
import os
import queue
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.conftest import Broker

REPO = Path(__file__).resolve().parent.parent
USERS = {"mat-1": "pw-mat-1", "display": "pw-display", "homeassistant": "pw-ha"}


def readme_acl() -> str:
    """The ACL file as the README documents it."""
    lines = (REPO / "README.md").read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("`/etc/mosquitto/acl`"))
    block: list[str] = []
    for line in lines[start + 1:]:
        if not line.strip():
            if block:
                break
            continue
        if not line.startswith("    "):
            break
        block.append(line[4:])
    assert any(line.startswith("user ") for line in block), block
    return "\n".join(block) + "\n"


@pytest.fixture
def acl_broker(tmp_path: Path) -> Iterator[Broker]:
    """mosquitto with the README's ACL, the users in a password file, no anonymous access."""
    passwd_tool = shutil.which("mosquitto_passwd")
    if passwd_tool is None:
        pytest.fail("mosquitto_passwd is not installed (Debian's mosquitto package has it)")
    passwd = tmp_path / "passwd"
    for i, (user, password) in enumerate(USERS.items()):
        subprocess.run([passwd_tool, *(["-c"] if i == 0 else []), "-b", str(passwd), user,
                        password], check=True, capture_output=True, timeout=30)
    acl = tmp_path / "acl"
    acl.write_text(readme_acl(), encoding="utf-8")
    broker = Broker(tmp_path)
    broker.conf.write_text(
        f"listener {broker.port} 127.0.0.1\n"
        "allow_anonymous false\n"
        f"password_file {passwd}\n"
        f"acl_file {acl}\n"
        # Started as root, mosquitto would switch to its own user, who cannot read our files.
        f"user {getpass.getuser()}\n"
        "persistence false\n"
        "log_dest stderr\nlog_type error\nlog_type warning\n")
    broker.start()
    yield broker
    broker.stop()


class Client:
    """A paho client logged in as ``user``, keeping what it receives."""

    def __init__(self, broker: Broker, user: str, password: str | None = None) -> None:
        self.received: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.refused: int | None = None
        connected = queue.Queue[object]()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"acl-test-{user}-{time.monotonic_ns()}")
        self.client.username_pw_set(user, USERS.get(user) if password is None else password)
        self.client.on_message = lambda c, u, msg: self.received.put((msg.topic,
                                                                      bytes(msg.payload)))
        self.client.on_connect = lambda c, u, flags, reason, props: connected.put(reason)
        self.client.connect(broker.host, broker.port, keepalive=10)
        self.client.loop_start()
        self.reason = connected.get(timeout=10)

    def subscribe(self, topic: str) -> None:
        done = queue.Queue[object]()
        self.client.on_subscribe = lambda *a: done.put(a)
        self.client.subscribe(topic, qos=1)
        done.get(timeout=10)

    def publish(self, topic: str, payload: bytes, *, retain: bool = False) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)

    def wait_for(self, topic: str, timeout_s: float = 5.0) -> bytes | None:
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            try:
                got_topic, payload = self.received.get(timeout=left)
            except queue.Empty:
                break
            if got_topic == topic:
                return payload
        return None

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_the_readme_acl_lets_each_user_do_its_job_and_no_more(acl_broker: Broker) -> None:
    mat = Client(acl_broker, "mat-1")
    display = Client(acl_broker, "display")
    ha = Client(acl_broker, "homeassistant")
    try:
        assert not (mat.reason.is_failure or display.reason.is_failure or ha.reason.is_failure)
        mat.subscribe("roller/mat-1/cmd/#")
        display.subscribe("roller/#")
        ha.subscribe("roller/#")
        # Home Assistant's and the display's buttons reach the roller.
        ha.publish("roller/mat-1/cmd/pause", b"")
        assert mat.wait_for("roller/mat-1/cmd/pause") == b""
        display.publish("roller/mat-1/cmd/resume", b"{}")
        assert mat.wait_for("roller/mat-1/cmd/resume") == b"{}"
        # The roller's state reaches both readers.
        mat.publish("roller/mat-1/status", b"online", retain=True)
        assert ha.wait_for("roller/mat-1/status") == b"online"
        assert display.wait_for("roller/mat-1/status") == b"online"
        # Nobody but the roller writes its state; the roller writes no other roller's.
        ha.publish("roller/mat-1/status", b"forged-by-ha")
        display.publish("roller/mat-1/status", b"forged-by-display")
        mat.publish("roller/mat-2/status", b"forged-by-mat-1")
        assert display.wait_for("roller/mat-1/status", timeout_s=1.0) is None
        assert ha.wait_for("roller/mat-2/status", timeout_s=0.5) is None
    finally:
        for c in (mat, display, ha):
            c.close()


def test_a_wrong_password_is_refused(acl_broker: Broker) -> None:
    intruder = Client(acl_broker, "homeassistant", password="guess")
    try:
        assert intruder.reason.is_failure
    finally:
        intruder.close()


def test_home_assistant_commands_reach_the_real_service(acl_broker: Broker,
                                                        tmp_path: Path) -> None:
    password_file = tmp_path / "mqtt-password"
    password_file.write_text(USERS["mat-1"] + "\n", encoding="utf-8")
    config = tmp_path / "roller.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[device]\nid = "mat-1"\n'
                      f'[mqtt]\nusername = "mat-1"\npassword_file = "{password_file}"\n',
                      encoding="utf-8")
    ha = Client(acl_broker, "homeassistant")
    ha.subscribe("roller/#")
    service = subprocess.Popen(
        [sys.executable, "-m", "roller.cli", "run", "--simulate", "--config", str(config),
         "--broker", acl_broker.address, "--log-level", "warning"],
        stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        env={k: v for k, v in os.environ.items() if k != "ROLLER_MQTT_PASSWORD"})
    try:
        assert ha.wait_for("roller/mat-1/status", timeout_s=30) == b"online"
        ha.publish("roller/mat-1/cmd/dance", b"")  # answered on error: it got there
        answer = ha.wait_for("roller/mat-1/error", timeout_s=10)
        assert answer is not None and b"unknown_command" in answer, answer
    finally:
        ha.close()
        service.send_signal(signal.SIGTERM)
        try:
            service.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            service.kill()
            service.communicate()
