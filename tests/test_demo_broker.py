"""The demo's local broker: mosquitto as a child process, or amqtt in this process."""

from __future__ import annotations

import os
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from roller.mqtt.local_broker import BrokerError, find_mosquitto, start_local_broker


def roundtrip(host: str, port: int) -> list[tuple[str, bytes, bool]]:
    """Publish a retained message, then subscribe: a broker must hand it back as retained."""
    got: list[tuple[str, bytes, bool]] = []
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                         client_id=f"t-{time.monotonic_ns()}")
    client.on_message = lambda c, u, m: got.append((m.topic, m.payload, bool(m.retain)))
    client.connect(host, port)
    client.loop_start()
    try:
        client.publish("roller/x/coach", b'{"prompt":"hi"}', qos=1, retain=True) \
            .wait_for_publish(5)
        client.subscribe("roller/+/#", qos=1)
        deadline = time.monotonic() + 5
        while not got and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        client.loop_stop()
        client.disconnect()
    return got


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_local_broker_serves_and_stops(kind: str) -> None:
    if kind == "mosquitto" and find_mosquitto() is None:
        pytest.fail("mosquitto is not installed: run scripts/setup --test")
    broker = start_local_broker(kind)
    try:
        assert broker.kind == kind and broker.host == "127.0.0.1"
        assert broker.running()
        assert roundtrip(broker.host, broker.port) == [
            ("roller/x/coach", b'{"prompt":"hi"}', True)]
        pid = broker.pid
    finally:
        broker.stop()
    assert not broker.running()
    if kind == "mosquitto":
        assert pid is not None
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)  # really gone, not a zombie we forgot
    broker.stop()  # twice is fine


def test_auto_prefers_mosquitto() -> None:
    broker = start_local_broker("auto")
    try:
        assert broker.kind == ("mosquitto" if find_mosquitto() else "amqtt")
    finally:
        broker.stop()


def test_a_taken_port_is_a_clear_error() -> None:
    first = start_local_broker("mosquitto")
    try:
        with pytest.raises(BrokerError, match=f"127.0.0.1:{first.port}"):
            start_local_broker("mosquitto", port=first.port, timeout_s=3)
    finally:
        first.stop()
