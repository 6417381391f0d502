"""The display's link to the broker: subscribe to every roller, remember, fan out, send commands.

:class:`MqttBridge` subscribes to the topics it shows of every roller on the broker
(``<prefix>/+/status``, ``.../live`` ...: never the commands), keeps the latest
retained-style messages of each device (``status``, ``coach``, ``session``, ``health`` and the
newest ``live``) so a browser that connects later starts from the current picture, and hands
every message to each subscriber's queue (one per browser connection). The link is a
:class:`~roller.mqtt.connection.Connection`: paho reconnects by itself, and the bridge's watch
thread rebuilds a client whose network thread died or hangs; subscribers are told when the link
goes down and comes back. Timing rules (freshness, the link watch) run on the injected clock.

Messages to subscribers are plain dicts:

* ``{"type": "broker", "connected": bool}``
* ``{"type": "mqtt", "device": id, "topic": "coach" | "live" | "event/stroke" | ...,
  "payload": <a JSON object; the text for status>, "received_at": unix s}``; a ``live``
  message also carries ``lag_s`` and ``stale`` (see :mod:`roller.display.freshness`)
* ``{"type": "freshness", "device": id, "age_s": s, "lag_s": s, "stale": bool}`` when a
  roller's live feed goes stale (silent, or late) or becomes current again

Anyone on the broker can publish anything, so only what the contract declares gets through:
a device id matching :data:`~roller.contract.messages.SAFE_ID` (whole), a topic the contract
names (``status``, ``health``, ``live``, ``session``, ``coach``, ``error``, ``event/<kind>``),
a JSON object within :data:`MAX_PAYLOAD_BYTES` and :data:`MAX_DEPTH` (``status``: ``online``
or ``offline``). Anything else is dropped, counted (``bad_messages``, ``ignored_messages``)
and logged at a limited rate; the network thread never ends on a message.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from typing import Any

import paho.mqtt.client as mqtt

from roller.base.clock import Clock, SystemClock
from roller.base.untrusted import (
    PayloadError,
    RateLimitedLog,
    decode_json,
    message_topic,
    preview,
    shorten,
    topic_text,
)
from roller.contract.command_table import MAX_COMMAND_BYTES
from roller.contract.messages import (
    ID_RULE,
    MAX_TOPIC_BYTES,
    Topics,
    all_rollers,
    command_payload,
    is_safe_id,
)
from roller.display.freshness import DEFAULT_STALE_AFTER_S, LiveFreshness
from roller.mqtt.client import MqttSettings, resolve_password
from roller.mqtt.connection import Connection

log = logging.getLogger(__name__)

JSON_TOPICS = frozenset({"health", "live", "session", "coach", "error"})
"""Per-device topics carrying a JSON object (and ``event/<kind>``)."""

MAX_PAYLOAD_BYTES = 256 * 1024
"""The largest payload passed to the page (a finished routine's coach message is a few kB)."""

MAX_DEPTH = 16
"""The deepest JSON nesting passed on (the contract's payloads have 4 at most)."""

MAX_DEVICES = 256
"""Rollers remembered at most: a flood of made-up device ids cannot exhaust memory."""

WATCH_INTERVAL_S = 0.25
"""How often the freshness watch looks at every roller's live feed [s]."""

KEPT_TOPICS = ("status", "coach", "session", "health", "live")
"""Per-device topics whose newest message is replayed to a browser when it connects."""

SHOWN_TOPICS = ("status", *sorted(JSON_TOPICS), "event/+")
"""What the display subscribes to, under ``<prefix>/+/``: what it shows, nothing more (a
command or an unknown topic never reaches its memory)."""


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

    def __init__(self, settings: MqttSettings, *, client_id: str | None = None,
                 live_stale_s: float = DEFAULT_STALE_AFTER_S, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.prefix = settings.topic_prefix
        self.live_stale_s = live_stale_s
        self._lock = threading.Lock()
        self._subscribers: list[Subscriber] = []
        self._latest: dict[str, dict[str, dict[str, Any]]] = {}
        self._fresh: dict[str, LiveFreshness] = {}
        self._stale_shown: dict[str, bool] = {}
        self._stop_watch = threading.Event()
        self._watch: threading.Thread | None = None
        self.messages = 0
        self.bad_messages = 0
        """Messages dropped because they break the contract (bad id, payload, ...)."""
        self.ignored_messages = 0
        """Messages on topics the display does not show (commands, unknown topics)."""
        self.handler_failures = 0
        """Messages whose handling raised (a bug): dropped, logged, the thread goes on."""
        self._bad_log = RateLimitedLog(log, interval_s=60.0, burst=5, clock=self.clock)
        # A display should come back quickly after an outage: shorter backoff than the service.
        self.link = Connection(
            settings, client_id=client_id or f"roller-display-{uuid.uuid4().hex[:8]}",
            password=resolve_password(settings) if settings.username else None,
            logger=log, on_up=self._on_up, after_up=self._after_up,
            on_down=self._on_down, on_message=self._on_message,
            keepalive_s=min(settings.keepalive_s, 10), clock=self.clock,
            reconnect_delays_s=(min(settings.reconnect_min_delay_s, 1.0),
                                min(settings.reconnect_max_delay_s, 5.0)))
        self._started = False
        self.link_problem: str | None = None
        """What is wrong with the broker link (None: nothing), as of the last watch."""

    @property
    def client(self):
        return self.link.client

    # -- lifecycle -----------------------------------------------------------------------
    def start(self) -> None:
        """Connect in the background (retrying until the broker is there) and return."""
        if self._started:
            return
        self._started = True
        self.link.start()
        self._stop_watch.clear()
        self._watch = threading.Thread(target=self._watch_freshness,
                                       name="roller-display-freshness", daemon=True)
        self._watch.start()

    def close(self) -> None:
        self._stop_watch.set()
        if self._watch is not None:
            self._watch.join(2)
            self._watch = None
        if self._started:
            self.link.close()
            self._started = False
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.put(None)

    @property
    def connected(self) -> bool:
        return self.link.connected

    def wait_connected(self, timeout_s: float) -> bool:
        return self.link.wait_connected(timeout_s)

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
        """The broker link, every device's kept messages and the freshness of its live feed
        (``live``: ``{device: {"age_s", "lag_s", "stale"}}``), and the drop counters (for
        ``/api/state``)."""
        now = self.clock.monotonic()
        with self._lock:
            return {"connected": self.connected, "link_problem": self.link_problem,
                    "client_rebuilds": self.link.rebuilds,
                    "devices": {d: {t: m["payload"] for t, m in topics.items()}
                                for d, topics in sorted(self._latest.items())},
                    "live": {d: f.state(now) for d, f in sorted(self._fresh.items())},
                    "dropped": {"bad": self.bad_messages, "ignored": self.ignored_messages,
                                "failed": self.handler_failures}}

    def freshness(self, device_id: str) -> dict[str, Any] | None:
        """``{"age_s", "lag_s", "stale"}`` of one roller's live feed (None if never seen)."""
        with self._lock:
            fresh = self._fresh.get(device_id)
            return None if fresh is None else fresh.state(self.clock.monotonic())

    def publish_command(self, device_id: str, verb: str,
                        payload: dict[str, Any] | None = None) -> bool:
        """Send ``cmd/<verb>`` to one roller (QoS 1). False when the broker is not connected.
        Raises ValueError, with a message for the HTTP client, when the device id or the verb
        is not a topic level (:data:`~roller.contract.messages.SAFE_ID`, the whole string: a
        trailing newline is refused too) or the payload is no small JSON object: nothing
        malformed ever reaches the client's queue, where it would come back at every
        reconnect."""
        if not is_safe_id(device_id):
            raise ValueError(f"device id must be {ID_RULE}, got {shorten(device_id)}")
        if not is_safe_id(verb):
            raise ValueError(f"command verb must be {ID_RULE}, got {shorten(verb)}")
        if payload is not None and not isinstance(payload, dict):
            raise ValueError(f"a command payload must be a JSON object, got {shorten(payload)}")
        try:
            body = command_payload(payload)
        except (ValueError, TypeError, RecursionError) as exc:
            raise ValueError(f"a command payload must be plain JSON: {exc}") from None
        if len(body) > MAX_COMMAND_BYTES:
            raise ValueError(f"a command payload must be at most {MAX_COMMAND_BYTES} bytes of "
                             f"JSON, got {len(body)}")
        if not self.connected:
            return False
        topic = Topics(device_id, prefix=self.prefix).cmd(verb)
        try:
            info = self.client.publish(topic, body, qos=1)
        except ValueError as exc:  # paho refused it at once; never queued
            raise ValueError(f"the MQTT client refused cmd/{verb}: {exc}") from None
        return info.rc == mqtt.MQTT_ERR_SUCCESS

    # -- paho callbacks (network thread) -------------------------------------------------
    def _broadcast(self, message: dict[str, Any]) -> None:
        with self._lock:
            subscribers = list(self._subscribers)
        for sub in subscribers:
            sub.put(message)

    @property
    def connects(self) -> int:
        return self.link.connects

    def _on_up(self, client: mqtt.Client) -> None:
        client.subscribe([(all_rollers(name, self.prefix), 1) for name in SHOWN_TOPICS])

    def _after_up(self) -> None:
        self._broadcast({"type": "broker", "connected": True})

    def _on_down(self) -> None:
        self._broadcast({"type": "broker", "connected": False})

    def _on_message(self, msg: mqtt.MQTTMessage) -> None:
        # Nothing a message holds may end paho's network thread (the display would go on
        # saying "connected" while it hears nothing).
        try:
            topic = message_topic(msg)
            if topic is None:
                self._drop(topic_text(msg), "the topic is not UTF-8")
                return
            self._handle(topic, bytes(msg.payload), bool(msg.retain))
        except Exception:
            self.handler_failures += 1
            self._bad_log(logging.ERROR, "display: a message on %r could not be handled",
                          topic_text(msg), exc_info=True)

    def _handle(self, full_topic: str, raw: bytes, retained: bool) -> None:
        routed = self.route(full_topic)
        if routed is None:
            self.ignored_messages += 1
            return
        device, topic = routed
        if not is_safe_id(device):
            self._drop(full_topic, f"the device id is not {ID_RULE}")
            return
        try:
            payload = decode_message(topic, raw)
        except PayloadError as exc:
            self._drop(full_topic, str(exc))
            return
        now = self.clock.monotonic()
        message: dict[str, Any] = {"type": "mqtt", "device": device, "topic": topic,
                                   "payload": payload, "received_at": self.clock.unix_s()}
        with self._lock:
            known = device in self._latest or device in self._fresh
            if not known and len(self._latest) >= MAX_DEVICES:
                self._drop(full_topic, f"more than {MAX_DEVICES} rollers")
                return
            self.messages += 1
            if topic == "live" and isinstance(payload, dict):
                fresh = self._fresh.setdefault(device, LiveFreshness(self.live_stale_s))
                fresh.saw(payload.get("t_s"), now)
                message.update(fresh.state(now))
                self._stale_shown[device] = message["stale"]
            if topic in KEPT_TOPICS:
                if payload is None:  # a cleared retained message
                    self._latest.get(device, {}).pop(topic, None)
                else:
                    self._latest.setdefault(device, {})[topic] = message
        self._broadcast(message)

    def route(self, full_topic: str) -> tuple[str, str] | None:
        """``(device, topic)`` of a message the display shows, None for one it ignores
        (another prefix, commands, topics the contract does not name)."""
        head = self.prefix + "/"
        if not full_topic.startswith(head) or len(full_topic) > MAX_TOPIC_BYTES:
            return None
        device, _, topic = full_topic[len(head):].partition("/")
        if topic == "status" or topic in JSON_TOPICS:
            return device, topic
        kind = topic[len("event/"):] if topic.startswith("event/") else None
        if kind is not None and is_safe_id(kind):
            return device, topic
        return None

    def _drop(self, topic: str, why: str) -> None:
        self.bad_messages += 1
        self._bad_log(logging.WARNING, "display: dropped a message on %r: %s (%d dropped so "
                      "far)", topic[:100], why, self.bad_messages)

    # -- freshness watch (its own thread) ---------------------------------------------
    def _watch_freshness(self) -> None:
        """Tell subscribers when a roller's live feed goes stale or comes back: silence is
        only seen by looking, as no message arrives to say so."""
        while not self._stop_watch.wait(WATCH_INTERVAL_S):
            self.link_problem = self.link.watch()
            now = self.clock.monotonic()
            changes = []
            with self._lock:
                for device, fresh in self._fresh.items():
                    state = fresh.state(now)
                    if state["stale"] != self._stale_shown.get(device):
                        self._stale_shown[device] = state["stale"]
                        changes.append({"type": "freshness", "device": device, **state})
            for change in changes:
                self._broadcast(change)


def decode_message(topic: str, raw: bytes) -> Any:
    """The payload of a roller's ``topic`` as the page gets it: ``status`` as its text
    (``online`` / ``offline``), every other topic a JSON object; None for an empty payload of
    a kept topic (a cleared retained message). Raises :class:`PayloadError` only, whatever
    the bytes."""
    if not raw and topic in KEPT_TOPICS:
        return None
    if topic == "status":
        text = raw.strip()
        if text not in (b"online", b"offline"):
            raise PayloadError(f"expected online or offline, got {preview(raw)}")
        return text.decode()
    data = decode_json(raw, max_bytes=MAX_PAYLOAD_BYTES, max_depth=MAX_DEPTH)
    if not isinstance(data, dict):
        raise PayloadError(f"expected a JSON object, got {preview(raw)}")
    key = _forbidden_key(data)
    if key is not None:
        raise PayloadError(f"a key named {key!r} is in no payload of the contract, and a "
                           f"page copying the object would change its prototype")
    return data


FORBIDDEN_KEYS = frozenset({"__proto__", "constructor", "prototype"})
"""Object keys no roller sends and a browser treats specially (prototype pollution)."""


def _forbidden_key(data: Any) -> str | None:
    """The first key of :data:`FORBIDDEN_KEYS` anywhere in ``data`` (no recursion: the depth
    is bounded, the walk uses its own stack)."""
    stack = [data]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            hit = FORBIDDEN_KEYS.intersection(value)
            if hit:
                return min(hit)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)
    return None
