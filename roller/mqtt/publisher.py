"""The MQTT side of the service: one paho-mqtt 2.x client, an on-disk outbox, nothing lost.

What goes where (topics, QoS, retain flags and payload builders in :mod:`roller.contract.messages`,
documented in docs/mqtt.md):

- :meth:`Publisher.publish_event` -- QoS 1 through the SQLite :class:`~roller.mqtt.outbox.Outbox`,
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

from roller.base.errors import ConfigError
from roller.base.machine import machine_hash, run_token
from roller.base.settings import setting
from roller.base.untrusted import (
    PayloadError,
    RateLimitedLog,
    decode_json,
    message_topic,
    topic_text,
)
from roller.contract import messages as contract
from roller.contract.messages import Topics, publishable_topic
from roller.mqtt.outbox import Message, Outbox

log = logging.getLogger("roller.mqtt.publisher")

MAX_QUEUED_DIRECT = 1000
"""Messages sent outside the outbox (error, health, ...) that paho may hold while offline."""

MAX_PAYLOAD_BYTES = 268_435_455
"""The largest payload MQTT can carry (its remaining-length limit); paho refuses more."""

COMMAND_ERRORS = frozenset({"unknown_command", "bad_payload", "not_possible",
                            "too_many_commands", "retained_command"})
"""``error`` codes about refused commands: a flood of them is logged at a limited rate."""

DISK_REPORT_INTERVAL_S = 60.0
"""A disk that refuses again within this long of the last ``outbox_disk`` report is the same
outage (a nearly full disk flaps as acknowledged rows free pages): not reported twice."""

DUPLICATE_MEMORY_S = 120.0
"""How long a sighting of another roller with our device id keeps ``health`` degraded [s]
(it publishes health at least every ``service.health_interval_s``, 10 s by default)."""

MAX_REMEMBERED_TOPICS = 256
"""Retained command topics remembered as already reported (a bound against a flood of them)."""

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
    keepalive_s: int = setting(
        5, unit="s", minimum=1, maximum=3600,
        doc="MQTT keepalive: a silent link is given up after 1 to 2 keepalives (5 s: a dead "
            "broker or a cut network is noticed within about 10 s, for a few bytes every 5 s)")
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
    ``instance``: this run's ``<machine>-<run>`` id in ``health`` (default: this machine's
    hash and a random run id; tests pass another machine's).
    """

    def __init__(self, settings: MqttSettings, topics: Topics, outbox: Outbox, *,
                 password: str | None = None, discovery: dict[str, Any] | None = None,
                 on_command: CommandSink | None = None, instance: str | None = None) -> None:
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
        self.errors_sent: collections.Counter[str] = collections.Counter()
        """``error`` reports by code since the start."""
        self.retained_commands = 0
        """Commands that arrived retained and were ignored."""
        self._retained_reported: set[str] = set()
        self.undeliverable = 0
        """Stored messages dropped because no broker can ever take them."""
        self.instance = instance or f"{machine_hash()}-{run_token()}"
        """This run's id in ``health``: ``<machine>-<run>`` (see :meth:`_check_instance`)."""
        self._duplicate: tuple[str, float] | None = None  # (other instance, monotonic s)
        self._reported_disk_error: str | None = None
        self._disk_reported_at = -math.inf
        self._command_log = RateLimitedLog(log, interval_s=60.0, burst=5)
        self._error_log = RateLimitedLog(log, interval_s=60.0, burst=10)
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
        info = self._send(self.topics.live, encode(payload), qos=contract.qos("live"),
                          retain=contract.retain("live"))
        ok = info is not None and info.rc == mqtt.MQTT_ERR_SUCCESS
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
        self.errors_sent[code] += 1
        # A flood of refused commands must not flood the journal: a few lines a minute, the
        # rest counted (``commands_refused`` in health) and summed up in one line.
        limiter = self._command_log if code in COMMAND_ERRORS else self._error_log
        limiter(logging.WARNING, "error %s: %s", code, message)
        self._send(self.topics.error, encode(body), qos=contract.qos("error"),
                   retain=contract.retain("error"))

    def publish_health(self, payload: Mapping[str, Any]) -> None:
        """Retained ``health`` (QoS 1, not stored): sensor and delivery health."""
        if self.connected:
            self._send(self.topics.health, encode(payload), qos=contract.qos("health"),
                       retain=contract.retain("health"))

    def _send(self, topic: str, payload: bytes, *, qos: int, retain: bool
              ) -> mqtt.MQTTMessageInfo | None:
        """``client.publish`` for messages outside the outbox; None (logged, counted) when the
        client refuses it at once (paho raises ValueError for a topic or payload no broker
        takes): a message we cannot send must not stop the caller."""
        try:
            return self.client.publish(topic, payload, qos=qos, retain=retain)
        except (ValueError, TypeError) as exc:
            self.undeliverable += 1
            self._error_log(logging.WARNING, "could not publish on %r: %s", topic[:100], exc)
            return None

    # -- the pump -----------------------------------------------------------------------------
    def pump(self) -> int:
        """Move broker acknowledgements to the outbox and hand waiting messages to the client.
        Call it often from the owner's loop; returns how many messages were handed over."""
        self._watch_disk()
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
                info = self._publish_stored(msg)
                if info is None:  # can never be published: dropped, the queue goes on
                    continue
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

    def _publish_stored(self, msg: Message) -> mqtt.MQTTMessageInfo | None:
        """Hand one outbox message to the client, or drop it (acknowledged away, counted,
        reported on ``error``) when no broker could ever take it: a malformed topic (mosquitto
        would disconnect us, and the message would come back after every reconnect) or a
        payload beyond MQTT's limit. Returns None when dropped."""
        why = None
        if not publishable_topic(msg.topic):
            why = "a malformed topic"
        elif len(msg.payload) > MAX_PAYLOAD_BYTES:
            why = f"a payload of {len(msg.payload)} bytes (MQTT takes {MAX_PAYLOAD_BYTES})"
        else:
            try:
                info = self.client.publish(msg.topic, msg.payload, qos=contract.STORED_QOS,
                                           retain=msg.retain)
            except (ValueError, TypeError) as exc:
                why = f"the client refused it ({exc})"
            else:
                if info.rc != mqtt.MQTT_ERR_PAYLOAD_SIZE:
                    return info
                why = "a payload too large for the client"
        self.outbox.ack([msg.id])
        self.undeliverable += 1
        self.publish_error("undeliverable", f"stored message {msg.id} dropped: {why} can never "
                           "be published", topic=msg.topic[:200], dropped_total=self.undeliverable)
        return None

    def _watch_disk(self) -> None:
        """Retry a refusing disk when due (cheap: the outbox keeps its own interval); report a
        new disk fault once on ``error`` and log when it clears."""
        self.outbox.retry_disk(force=False)
        error = self.outbox.disk_error
        if error is not None and self._reported_disk_error is None and \
                time.monotonic() - self._disk_reported_at >= DISK_REPORT_INTERVAL_S:
            self._disk_reported_at = time.monotonic()
            self.publish_error("outbox_disk", f"the outbox cannot write to disk ({error}); "
                               f"events wait in memory (at most "
                               f"{self.outbox.max_memory_messages}) until it can",
                               reason=error)
        elif error is None and self._reported_disk_error is not None:
            log.warning("the outbox writes to disk again (it could not: %s)",
                        self._reported_disk_error)
        self._reported_disk_error = error

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
                "last_seq": self.outbox.last_seq, "epoch": self.outbox.epoch,
                "outbox_in_memory": self.outbox.in_memory,
                "outbox_disk_error": self.outbox.disk_error,
                "undeliverable": self.undeliverable, "live_sent": self.live_sent,
                "live_skipped": self.live_skipped,
                "commands_refused": sum(n for code, n in self.errors_sent.items()
                                        if code in COMMAND_ERRORS),
                "retained_commands": self.retained_commands,
                "duplicate_of": self.duplicate_of,
                "last_disconnect_reason": self.last_disconnect_reason}

    @property
    def duplicate_of(self) -> str | None:
        """Another machine's instance seen publishing with our device id in the last
        :data:`DUPLICATE_MEMORY_S`, or None."""
        seen = self._duplicate
        if seen is None or time.monotonic() - seen[1] > DUPLICATE_MEMORY_S:
            return None
        return seen[0]

    @property
    def degraded(self) -> bool:
        """Delivery is not as it should be: the outbox dropped messages or runs from memory,
        or another roller uses our device id."""
        return (self.outbox.dropped > 0 or self.outbox.disk_error is not None
                or self.duplicate_of is not None)

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
        self._send(self.topics.discovery, payload, qos=contract.DISCOVERY_QOS, retain=True)

    # -- paho callbacks (network thread) ------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            log.error("broker %s:%d refused the connection: %s", self.settings.host,
                      self.settings.port, reason)
            return
        self.connects += 1
        log.info("connected to %s:%d", self.settings.host, self.settings.port)
        # Our own health too: another machine's health there means a second roller with our
        # device id (see _check_instance).
        client.subscribe([(self.topics.commands, contract.qos("cmd")),
                          (self.topics.health, contract.qos("health"))]
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
        # Whatever arrives, the network thread goes on: an exception here would end paho's
        # loop, and with it every publish and every command.
        try:
            self._handle_message(msg)
        except Exception:
            self._error_log(logging.ERROR, "message on %r could not be handled",
                            topic_text(msg), exc_info=True)

    def _handle_message(self, msg: mqtt.MQTTMessage) -> None:
        topic = message_topic(msg)
        if topic is None:  # not UTF-8: no topic of ours
            return
        if topic == self.topics.ha_status:
            if msg.payload.strip() == b"online":
                self._announce()
            return
        if topic == self.topics.health:
            self._check_instance(bytes(msg.payload), retained=bool(msg.retain))
            return
        verb = self.topics.verb_of(topic)
        if verb is None or self.on_command is None:
            return
        if msg.retain:
            self._ignore_retained(topic, verb)
            return
        self.on_command(verb, bytes(msg.payload[:64 * 1024]))

    def _ignore_retained(self, topic: str, verb: str) -> None:
        """A retained command is never run: it would act again at every reconnect and start
        (a crash-looping or surprising roller). Counted; reported once per topic. It is not
        cleared from the broker: an empty retained message would reach us as an (empty,
        valid) command in MQTT 3.1.1."""
        self.retained_commands += 1
        if topic in self._retained_reported or \
                len(self._retained_reported) >= MAX_REMEMBERED_TOPICS:
            return
        self._retained_reported.add(topic)
        self.publish_error("retained_command", f"cmd/{verb[:64]} arrived retained and was "
                           "ignored: commands act once, when sent; clear it with an empty "
                           f"retained message on {topic}", command=verb[:64], source="mqtt",
                           ignored_total=self.retained_commands)

    def _check_instance(self, raw: bytes, *, retained: bool) -> None:
        """Is another roller publishing with our device id? Every running service publishes
        ``health`` with its ``instance`` (``<machine>-<run>``) at least every
        ``health_interval_s`` and listens to its own health topic. A health message from
        *another machine* means a second roller with our id when it arrives live (the other is
        running now), or retained and recent (``time_unix_s`` within 60 s: it is running, or
        was a moment ago -- two services whose identical client ids keep kicking each other off
        the broker see each other's only this way). Our own restarts keep the machine part, so
        a stale health of our previous run never counts; nor does an old retained one of a
        roller that was moved to another machine."""
        try:
            body = decode_json(raw, max_bytes=64 * 1024, max_depth=8)
        except PayloadError:
            return
        other = body.get("instance") if isinstance(body, dict) else None
        if not isinstance(other, str) or other == self.instance:
            return
        if other.split("-", 1)[0] == self.instance.split("-", 1)[0]:
            return  # this machine: our own earlier run
        sent = body.get("time_unix_s")
        recent = isinstance(sent, int | float) and abs(time.time() - sent) < 60.0
        if retained and not recent:
            return
        first = self.duplicate_of != other[:80]
        self._duplicate = (other[:80], time.monotonic())
        if first:
            self.publish_error("duplicate_device", f"another roller ({other[:80]}) publishes as "
                               f"{self.topics.device_id!r}: two rollers share this device id, "
                               "so their events and seq numbers mix; set a distinct [device] id "
                               "on each", other_instance=other[:80])
