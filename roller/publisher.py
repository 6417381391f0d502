"""The MQTT side of the service: one paho-mqtt 2.x client, an on-disk outbox, nothing lost.

What goes where (topics, QoS, retain flags and payload builders in :mod:`roller.mqtt_contract`,
documented in docs/mqtt.md):

- :meth:`Publisher.publish_event` -- QoS 1 through the SQLite :class:`~roller.outbox.Outbox`,
  numbered with a per-device ``seq``; removed from disk only once the broker acknowledged it.
- :meth:`Publisher.publish_retained` -- retained QoS 1 state (``session``, ``coach``) through
  the outbox too; a newer value supersedes an older one still waiting.
- :meth:`Publisher.publish_live` -- QoS 0, never stored: a live reading is worthless later.
- ``status`` -- retained ``online`` on every (re)connect, ``offline`` as the last will and on a
  clean :meth:`Publisher.close`.

Threads: paho runs its network loop in its own thread (``loop_start``) and reconnects there with
exponential backoff (``reconnect_delay_set``), also when the broker is down at start. Callbacks
only set flags, queue acknowledged message ids and hand commands to ``on_command``; the owner's
loop calls :meth:`Publisher.pump` (every service step) to move acknowledgements to the outbox
and hand waiting messages to the client, so SQLite is touched from one thread.
"""

from __future__ import annotations

import collections
import json
import logging
import math
import os
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from roller import mqtt_contract as contract
from roller.errors import ConfigError
from roller.mqtt_contract import Topics
from roller.outbox import Message, Outbox
from roller.settings import setting

log = logging.getLogger("roller.publisher")

MAX_QUEUED_DIRECT = 1000
"""Messages sent outside the outbox (error, health, ...) that paho may hold while offline."""

PASSWORD_ENV = "ROLLER_MQTT_PASSWORD"
"""Environment variable holding the MQTT password when ``mqtt.password_file`` is not set."""


@dataclass(frozen=True)
class MqttSettings:
    """Config section ``[mqtt]``: where the broker is, how to log in, how to behave."""

    host: str = setting("localhost", doc="broker host name or IP address")
    port: int = setting(1883, minimum=1, maximum=65535,
                        doc="broker TCP port (1883 plain, 8883 usually TLS)")
    topic_prefix: str = setting(
        "roller", doc="first topic level; each roller publishes under <prefix>/<device id>/")
    client_id: str = setting("", doc="MQTT client id; empty: roller-<device id>")
    username: str = setting("", doc="user name for the broker; empty: connect anonymously")
    password_file: str = setting(
        "", doc="file holding the password (first line); empty: take it from the "
                f"{PASSWORD_ENV} environment variable. Never logged")
    keepalive_s: int = setting(30, unit="s", minimum=1, maximum=3600,
                               doc="MQTT keepalive: how soon a dead link is noticed")
    reconnect_min_delay_s: float = setting(
        1.0, unit="s", minimum=0.01, maximum=600, doc="first reconnect delay (then doubles)")
    reconnect_max_delay_s: float = setting(
        60.0, unit="s", minimum=0.01, maximum=3600, doc="longest delay between reconnects")
    tls: bool = setting(False, doc="connect with TLS")
    tls_ca_file: str = setting("", doc="CA certificate file (PEM); empty: the system's CAs")
    tls_cert_file: str = setting("", doc="client certificate (PEM) for mutual TLS; optional")
    tls_key_file: str = setting("", doc="client key (PEM) for mutual TLS; optional")
    tls_insecure: bool = setting(
        False, doc="skip the server host name check (test brokers only; never in production)")
    live_interval_s: float = setting(0.1, unit="s", minimum=0.02, maximum=60,
                                     doc="time between live messages (0.1 s = 10 Hz)")
    outbox_max_messages: int = setting(
        50_000, minimum=10, maximum=10_000_000,
        doc="outbox bound; when full the oldest unsent event is dropped and reported")
    max_inflight: int = setting(20, minimum=1, maximum=1000,
                                doc="QoS 1 messages sent but not yet acknowledged, at most")
    shutdown_flush_s: float = setting(
        2.0, unit="s", minimum=0, maximum=60,
        doc="on shutdown, how long to wait for the broker to take what is pending")


def resolve_password(settings: MqttSettings, environ: Mapping[str, str] | None = None
                     ) -> str | None:
    """The broker password: first line of ``password_file``, else ``$ROLLER_MQTT_PASSWORD``,
    else None. Raises ConfigError (without the secret) if the file cannot be read."""
    environ = os.environ if environ is None else environ
    if settings.password_file:
        path = Path(settings.password_file)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError("mqtt.password_file", "a readable UTF-8 file",
                              f"{path} ({exc.__class__.__name__})") from None
        lines = text.splitlines()
        return lines[0] if lines else ""
    value = environ.get(PASSWORD_ENV)
    return value if value else None


def jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: numpy scalars and arrays to Python, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes of ``payload`` (after :func:`jsonable`)."""
    return json.dumps(jsonable(payload), separators=(",", ":"), allow_nan=False).encode()


CommandSink = Callable[[str, bytes], None]


def make_client(settings: MqttSettings, *, client_id: str, password: str | None, logger: str,
                reconnect_delays_s: tuple[float, float] | None = None) -> mqtt.Client:
    """A paho 2.x client for the configured broker: MQTT 3.1.1, clean session, reconnection
    with exponential backoff (``reconnect_delays_s``, default the settings' min and max [s]),
    login and TLS from ``[mqtt]``. One place, so the service and the display always reach a
    broker the same way."""
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=True, protocol=mqtt.MQTTv311)
    client.enable_logger(logging.getLogger(logger))
    low, high = reconnect_delays_s or (settings.reconnect_min_delay_s,
                                       settings.reconnect_max_delay_s)
    client.reconnect_delay_set(min_delay=low, max_delay=high)
    if settings.username:
        client.username_pw_set(settings.username, password)
    if settings.tls:
        client.tls_set(ca_certs=settings.tls_ca_file or None,
                       certfile=settings.tls_cert_file or None,
                       keyfile=settings.tls_key_file or None)
        client.tls_insecure_set(settings.tls_insecure)
    return client


class Publisher:
    """Publishes one roller's topics; keeps QoS 1 messages in ``outbox`` until acknowledged.

    ``topics``: the names (device id, prefix). ``discovery``: the Home Assistant device config
    to announce (retained) on every connect and whenever Home Assistant says ``online``; None
    leaves discovery alone, ``{}`` removes a previous announcement. ``on_command(verb, payload)``
    is called from the network thread for each ``cmd/<verb>`` message: keep it quick (queue it).
    """

    def __init__(self, settings: MqttSettings, topics: Topics, outbox: Outbox, *,
                 password: str | None = None, discovery: dict[str, Any] | None = None,
                 on_command: CommandSink | None = None) -> None:
        self.settings = settings
        self.topics = topics
        self.outbox = outbox
        self._discovery = discovery
        self.on_command = on_command
        self._connected = threading.Event()
        self._acked: collections.deque[int] = collections.deque()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox id
        self._reported_dropped = outbox.dropped
        self._last_live_skipped_log = 0.0
        self.live_sent = 0
        self.live_skipped = 0
        self.connects = 0
        self.last_disconnect_reason = ""
        self._started = False
        self._closed = False

        self.client = make_client(settings, client_id=settings.client_id or
                                  f"roller-{topics.device_id}", password=password,
                                  logger="roller.paho")
        self.client.max_inflight_messages_set(settings.max_inflight)
        # paho keeps QoS 1 messages in memory while the link is down: bound that too. Outbox
        # messages never exceed max_inflight there (the rest wait on disk); the margin is for
        # error, health, status and discovery messages.
        self.client.max_queued_messages_set(settings.max_inflight + MAX_QUEUED_DIRECT)
        self.client.will_set(topics.status, contract.status_payload(False),
                             qos=contract.qos("status"), retain=contract.retain("status"))
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.on_message = self._on_message

    # -- lifecycle ----------------------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; returns at once, also if the broker is down."""
        if self._started:
            return
        self._started = True
        self.client.connect_async(self.settings.host, self.settings.port,
                                  keepalive=self.settings.keepalive_s)
        self.client.loop_start()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` for the broker connection; True if connected."""
        return self._connected.wait(timeout_s)

    def close(self) -> None:
        """Deliver what the broker will take within ``shutdown_flush_s``, publish ``offline``,
        disconnect. What is still pending stays in the outbox for the next start."""
        if self._closed:
            return
        self._closed = True
        try:
            if self.connected:
                self.flush(self.settings.shutdown_flush_s)
                info = self.client.publish(self.topics.status, contract.status_payload(False),
                                           qos=contract.qos("status"),
                                           retain=contract.retain("status"))
                info.wait_for_publish(max(0.5, self.settings.shutdown_flush_s))
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("could not publish offline on shutdown: %s", exc)
        finally:
            try:
                self.client.disconnect()
            finally:
                self.client.loop_stop()
                self._connected.clear()

    # -- publishing ---------------------------------------------------------------------------
    def publish_event(self, kind: str, payload: Mapping[str, Any]) -> Message:
        """Store and send one event on ``event/<kind>`` (QoS 1). The payload gains ``seq``
        (per device, persisted), ``device_id``, ``kind`` and ``time_unix_s`` (wall clock when it
        was stored [s])."""
        body = contract.event_envelope(self.topics.device_id, kind, time.time(),
                                       jsonable(dict(payload)))
        msg = self.outbox.add(self.topics.event(kind), body, numbered=True)
        self.pump()
        return msg

    def publish_retained(self, name: str, payload: Mapping[str, Any]) -> Message:
        """Store and send retained state ``name`` (``session``, ``coach``), QoS 1. A newer
        value replaces an older one that has not been sent yet."""
        msg = self.outbox.add(self.topics.retained(name), encode(payload),
                              retain=contract.retain(name),
                              supersede=True)
        self.pump()
        return msg

    def publish_live(self, payload: Mapping[str, Any]) -> bool:
        """Send one ``live`` message at QoS 0; False (and counted) when not connected."""
        if not self.connected:
            self.live_skipped += 1
            return False
        info = self.client.publish(self.topics.live, encode(payload), qos=contract.qos("live"),
                                   retain=contract.retain("live"))
        ok = info.rc == mqtt.MQTT_ERR_SUCCESS
        if ok:
            self.live_sent += 1
        else:
            self.live_skipped += 1
        return ok

    def publish_error(self, code: str, message: str, **details: Any) -> None:
        """A JSON report on ``error`` (QoS 1, not retained, not stored across restarts): what
        went wrong (``code``, ``message``) and whatever helps (``details``)."""
        body = contract.error_payload(self.topics.device_id, code, message, time.time(),
                                      **details)
        log.warning("error %s: %s", code, message)
        self.client.publish(self.topics.error, encode(body), qos=contract.qos("error"),
                            retain=contract.retain("error"))

    def publish_health(self, payload: Mapping[str, Any]) -> None:
        """Retained ``health`` (QoS 1, not stored): sensor and delivery health."""
        if self.connected:
            self.client.publish(self.topics.health, encode(payload), qos=contract.qos("health"),
                                retain=contract.retain("health"))

    # -- the pump -----------------------------------------------------------------------------
    def pump(self) -> int:
        """Move broker acknowledgements to the outbox and hand waiting messages to the client.
        Call it often from the owner's loop; returns how many messages were handed over."""
        acked = []
        while self._acked:
            mid = self._acked.popleft()
            ident = self._inflight.pop(mid, None)
            if ident is not None:
                acked.append(ident)
        self.outbox.ack(acked)
        if not self.connected or self._closed:
            return 0
        handed = 0
        room = self.settings.max_inflight - len(self._inflight)
        if room > 0:
            for msg in self.outbox.claim(room):
                info = self.client.publish(msg.topic, msg.payload, qos=contract.STORED_QOS,
                                           retain=msg.retain)
                if info.rc in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    # NO_CONN: paho keeps it and sends it when the link is back.
                    self._inflight[info.mid] = msg.id
                    handed += 1
                else:
                    log.warning("client refused message %d (%s); retrying later",
                                msg.id, mqtt.error_string(info.rc))
                    self.outbox.unclaim_from(msg.id)
                    break
        self._report_drops()
        return handed

    def flush(self, timeout_s: float) -> bool:
        """Pump until the outbox is empty or ``timeout_s`` passed; True if empty."""
        deadline = time.monotonic() + timeout_s
        while True:
            self.pump()
            if len(self.outbox) == 0:
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.005)

    @property
    def pending(self) -> int:
        """Messages in the outbox (not yet acknowledged by the broker)."""
        return len(self.outbox)

    def stats(self) -> dict[str, Any]:
        """Delivery counters for ``health``."""
        return {"connected": self.connected, "connects": self.connects,
                "outbox_pending": len(self.outbox), "outbox_dropped": self.outbox.dropped,
                "last_seq": self.outbox.last_seq, "live_sent": self.live_sent,
                "live_skipped": self.live_skipped,
                "last_disconnect_reason": self.last_disconnect_reason}

    def _report_drops(self) -> None:
        dropped = self.outbox.dropped
        if dropped > self._reported_dropped:
            self.publish_error(
                "outbox_full",
                f"the outbox was full ({self.outbox.max_messages} messages): "
                f"{dropped - self._reported_dropped} oldest unsent message(s) dropped",
                dropped_total=dropped, last_dropped_seq=self.outbox.last_dropped_seq)
            self._reported_dropped = dropped

    # -- Home Assistant -----------------------------------------------------------------------
    def set_discovery(self, discovery: dict[str, Any] | None) -> None:
        """Change the discovery config and announce it now if connected."""
        self._discovery = discovery
        if self.connected:
            self._announce()

    def _announce(self) -> None:
        if self._discovery is None:
            return
        payload = encode(self._discovery) if self._discovery else b""
        self.client.publish(self.topics.discovery, payload, qos=contract.DISCOVERY_QOS,
                            retain=True)

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.settings.host,
                      self.settings.port, reason)
            return
        self.connects += 1
        log.info("connected to %s:%d", self.settings.host, self.settings.port)
        client.subscribe([(self.topics.commands, contract.qos("cmd"))]
                         + ([(self.topics.ha_status, 1)] if self._discovery is not None else []))
        client.publish(self.topics.status, contract.status_payload(True),
                       qos=contract.qos("status"), retain=contract.retain("status"))
        self._announce()
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._connected.clear()
        self.last_disconnect_reason = str(reason)
        if not self._closed:
            log.warning("disconnected from the broker (%s); reconnecting", reason)

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                    properties: Any) -> None:
        self._acked.append(mid)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.topic == self.topics.ha_status:
            if msg.payload.strip() == b"online":
                self._announce()
            return
        verb = self.topics.verb_of(msg.topic)
        if verb is not None and self.on_command is not None:
            try:
                self.on_command(verb, bytes(msg.payload))
            except Exception:  # a bad handler must not kill the network thread
                log.exception("command sink failed for %s", msg.topic)
