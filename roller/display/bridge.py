"""The display's link to the broker: subscribe to every roller, remember, fan out, send commands.

:class:`MqttBridge` subscribes to ``<prefix>/+/#`` (every roller on the broker), keeps the latest
retained-style messages of each device (``status``, ``coach``, ``session``, ``health`` and the
newest ``live``) so a browser that connects later starts from the current picture, and hands
every message to each subscriber's queue (one per browser connection). paho's network thread
reconnects to the broker by itself; subscribers are told when the link goes down and comes back.

Messages to subscribers are plain dicts:

* ``{"type": "broker", "connected": bool}``
* ``{"type": "mqtt", "device": id, "topic": "coach" | "live" | "event/stroke" | ...,
  "payload": <parsed JSON, or the text when it is not JSON>, "received_at": unix s}``
"""

from __future__ import annotations

import json
import logging
import queue
import threading
import time
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from roller.publisher import MqttSettings, make_client, resolve_password
from roller.topics import SAFE_ID, Topics

log = logging.getLogger(__name__)

KEPT_TOPICS = ("status", "coach", "session", "health", "live")
"""Per-device topics whose newest message is replayed to a browser when it connects."""

QUEUE_MAX = 2000
"""Messages a slow browser may lag behind before the oldest are dropped (about 3 minutes of
one roller's 10 Hz live stream, more than enough for a phone that went to sleep)."""


class Subscriber:
    """One consumer's queue (a browser connection). ``get`` blocks up to ``timeout_s``."""

    def __init__(self) -> None:
        self.queue: queue.Queue[dict[str, Any] | None] = queue.Queue(QUEUE_MAX)
        self.dropped = 0

    def put(self, message: dict[str, Any] | None) -> None:
        while True:
            try:
                self.queue.put_nowait(message)
                return
            except queue.Full:
                try:  # drop the oldest: the newest picture matters most on a display
                    self.queue.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass

    def get(self, timeout_s: float) -> dict[str, Any] | None:
        """The next message; raises queue.Empty after ``timeout_s``; None means "close"."""
        return self.queue.get(timeout=timeout_s)


class MqttBridge:
    """Subscribes to all rollers under ``settings.topic_prefix`` and fans messages out."""

    def __init__(self, settings: MqttSettings, *, client_id: str | None = None) -> None:
        self.settings = settings
        self.prefix = settings.topic_prefix
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._latest: dict[str, dict[str, dict[str, Any]]] = {}
        self._connected = threading.Event()
        self.messages = 0
        self.connects = 0
        # A display should come back quickly after an outage: shorter backoff than the service.
        self.client = make_client(
            settings, client_id=client_id or f"roller-display-{uuid.uuid4().hex[:8]}",
            password=resolve_password(settings) if settings.username else None,
            logger="roller.display.paho",
            reconnect_delays_s=(min(settings.reconnect_min_delay_s, 1.0),
                                min(settings.reconnect_max_delay_s, 5.0)))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self._started = False

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (retrying until the broker is there) and return."""
        if self._started:
            return
        self._started = True
        self.client.connect_async(self.settings.host, self.settings.port,
                                  keepalive=min(self.settings.keepalive_s, 10))
        self.client.loop_start()

    def close(self) -> None:
        if self._started:
            self.client.disconnect()
            self.client.loop_stop()
            self._started = False
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.put(None)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        return self._connected.wait(timeout_s)

    # -- consumers -----------------------------------------------------------------------
    def subscribe(self) -> Subscriber:
        """A new queue, primed with the broker state and each device's latest messages."""
        sub = Subscriber()
        with self._lock:
            sub.put({"type": "broker", "connected": self.connected})
            for device in sorted(self._latest):
                for topic in KEPT_TOPICS:
                    msg = self._latest[device].get(topic)
                    if msg is not None:
                        sub.put(msg)
            self._subscribers.append(sub)
        return sub

    def unsubscribe(self, sub: Subscriber) -> None:
        with self._lock:
            if sub in self._subscribers:
                self._subscribers.remove(sub)

    def snapshot(self) -> dict[str, Any]:
        """The broker link and every device's kept messages (for ``/api/state``)."""
        with self._lock:
            return {"connected": self.connected,
                    "devices": {d: {t: m["payload"] for t, m in topics.items()}
                                for d, topics in sorted(self._latest.items())}}

    def publish_command(self, device_id: str, verb: str,
                        payload: dict[str, Any] | None = None) -> bool:
        """Send ``cmd/<verb>`` to one roller (QoS 1). False when the broker is not connected."""
        if not SAFE_ID.match(device_id):
            raise ValueError(f"device id must be 1-64 letters, digits, '_' or '-', "
                             f"got {device_id!r}")
        if not self.connected:
            return False
        topic = Topics(device_id, prefix=self.prefix).cmd(verb)
        body = json.dumps(payload).encode() if payload else b""
        info = self.client.publish(topic, body, qos=1)
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- paho callbacks (network thread) -------------------------------------------------
    def _broadcast(self, message: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.put(message)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any = None) -> None:
        if reason.is_failure:
            log.warning("display: broker refused the connection: %s", reason)
            return
        self.connects += 1
        client.subscribe(f"{self.prefix}/+/#", qos=1)
        self._connected.set()
        log.info("display: connected to %s:%s", self.settings.host, self.settings.port)
        self._broadcast({"type": "broker", "connected": True})

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any = None) -> None:
        self._connected.clear()
        log.info("display: broker link lost (%s); paho reconnects", reason)
        self._broadcast({"type": "broker", "connected": False})

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        head = self.prefix + "/"
        if not msg.topic.startswith(head):
            return
        device, _, topic = msg.topic[len(head):].partition("/")
        if not topic or not SAFE_ID.match(device) or topic.startswith("cmd/"):
            return
        text = msg.payload.decode("utf-8", errors="replace")
        try:
            payload: Any = json.loads(text) if text else None
        except ValueError:
            payload = text
        message = {"type": "mqtt", "device": device, "topic": topic, "payload": payload,
                   "received_at": time.time()}
        self.messages += 1
        with self._lock:
            if topic in KEPT_TOPICS:
                if msg.retain and not msg.payload:  # a cleared retained message
                    self._latest.get(device, {}).pop(topic, None)
                else:
                    self._latest.setdefault(device, {})[topic] = message
        self._broadcast(message)
