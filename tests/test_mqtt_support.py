"""An independent MQTT subscriber for tests: a plain paho client that records what it receives.

Not a test module of its own (it defines no tests); the MQTT, outbox and service tests import it.
It resubscribes on every connect, so it keeps listening across a broker restart.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


@dataclass(frozen=True)
class Received:
    topic: str
    payload: bytes
    retain: bool
    qos: int
    at: float
    """time.monotonic() when it arrived [s]."""

    def json(self) -> Any:
        return json.loads(self.payload)


class Subscriber:
    def __init__(self, host: str, port: int, topics: str | list[str] = "#", *,
                 client_id: str = "", qos: int = 1, clean_session: bool = True) -> None:
        self.topics = [topics] if isinstance(topics, str) else list(topics)
        self.qos = qos
        self.messages: list[Received] = []
        self._cond = threading.Condition()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=client_id, clean_session=clean_session)
        self.client.reconnect_delay_set(0.05, 0.2)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_message = self._on_message
        self.client.connect_async(host, port, keepalive=5)
        self.client.loop_start()
        if not self._subscribed.wait(10):
            raise RuntimeError(f"subscriber could not subscribe on {host}:{port}")

    def _on_connect(self, client, userdata, flags, reason, properties) -> None:
        self._subscribed.clear()
        client.subscribe([(t, self.qos) for t in self.topics])

    def _on_message(self, client, userdata, msg) -> None:
        rec = Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos, time.monotonic())
        with self._cond:
            self.messages.append(rec)
            self._cond.notify_all()

    def wait_subscribed(self, timeout_s: float = 10) -> bool:
        return self._subscribed.wait(timeout_s)

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate: Callable[[list[Received]], bool], timeout_s: float = 10,
                 what: str = "a message") -> list[Received]:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.messages):
                left = deadline - time.monotonic()
                if left <= 0:
                    seen = [(m.topic, m.payload[:80]) for m in self.messages[-10:]]
                    raise AssertionError(f"timed out waiting for {what}; last seen: {seen}")
                self._cond.wait(left)
            return list(self.messages)

    def wait_topic(self, topic: str, count: int = 1, timeout_s: float = 10) -> list[Received]:
        self.wait_for(lambda ms: sum(m.topic == topic for m in ms) >= count, timeout_s,
                      f"{count} message(s) on {topic}")
        return self.on(topic)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def retained(host: str, port: int, topic: str, timeout_s: float = 5) -> Received | None:
    """What the broker holds retained on ``topic`` right now (None if nothing), seen by a
    fresh client."""
    got: list[Received] = []
    done = threading.Event()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2)

    def on_connect(c, u, f, r, p):
        c.subscribe(topic, 1)

    def on_subscribe(c, u, mid, rcs, p):
        # mosquitto sends a retained message right after its SUBACK (on the same socket):
        # 0.2 s of silence after the SUBACK means there is none.
        threading.Timer(0.2, done.set).start()

    def on_message(c, u, msg):
        got.append(Received(msg.topic, bytes(msg.payload), bool(msg.retain), msg.qos,
                            time.monotonic()))
        done.set()

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(host, port, keepalive=5)
    client.loop_start()
    done.wait(timeout_s)
    client.disconnect()
    client.loop_stop()
    return got[0] if got else None
