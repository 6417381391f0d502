"""The client recipe: how the service and the display reach the broker (``[mqtt]``).

One place builds every paho-mqtt 2.x client (:func:`make_client`), so the service and the
display log in, use TLS, back off and bound what they accept the same way:

- MQTT 5 with a *Maximum Packet Size* of :data:`MAX_PACKET_BYTES` (1 MiB) in the CONNECT: the
  broker must not send us a larger packet, so a 256 MB retained message planted under our
  topics never reaches paho (paho reads a whole packet into memory before any callback; it has
  no limit of its own). *Receive Maximum* bounds the QoS 1 messages the broker sends before we
  acknowledge. A broker that does not answer an MQTT 5 CONNECT (amqtt, mosquitto 1.4) gets
  MQTT 3.1.1 instead (see :mod:`roller.mqtt.connection`); then only the broker's own limit
  (``message_size_limit`` in config/mosquitto.conf) bounds a message.
- Why a connection attempt failed is kept (:attr:`RollerClient.connect_error`) and put into
  words by :func:`describe_connect_error` (refused, unknown host, TLS, timeout) and
  :func:`describe_refusal` (login refused): paho itself only logs ``Client is not
  connected``.
"""

from __future__ import annotations

import os
import socket
import ssl
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from roller.base.errors import ConfigError
from roller.base.settings import setting

PASSWORD_ENV = "ROLLER_MQTT_PASSWORD"
"""Environment variable holding the MQTT password when ``mqtt.password_file`` is not set."""

MAX_PACKET_BYTES = 1_048_576
"""The largest MQTT packet a roller client accepts [bytes] (MQTT 5 Maximum Packet Size): the
broker drops a larger message for us instead of sending it. The same figure as
``message_size_limit`` in config/mosquitto.conf; the largest message of the contract (a
finished routine's ``coach``) is a few kB, a command at most 4 kB."""

RECEIVE_MAXIMUM = 20
"""QoS 1 messages the broker may send us before we acknowledge them (MQTT 5 Receive Maximum)."""

MQTT5 = mqtt.MQTTv5
MQTT311 = mqtt.MQTTv311


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


class RollerClient(mqtt.Client):
    """paho's client, telling why a connection attempt failed and whether its network thread
    runs. paho catches the OSError of a failed attempt and retries without a word (then logs
    ``Client is not connected. Socket: None``); the one override below keeps the exception."""

    connect_error: OSError | None = None
    """Why the last attempt to open the connection failed (None: it opened)."""
    connect_attempts = 0

    def _create_socket(self) -> Any:  # paho's hook for opening the connection (2.x)
        self.connect_attempts += 1
        try:
            sock = super()._create_socket()
        except OSError as exc:
            self.connect_error = exc
            raise
        self.connect_error = None
        return sock

    def stop_network_thread(self, timeout_s: float) -> bool:
        """paho's ``loop_stop``, waiting at most ``timeout_s`` [s] (``loop_stop`` waits for
        ever: a thread held by a blocked callback would hold the shutdown). True if stopped."""
        thread = self._thread
        if thread is None:
            return True
        self._thread_terminate = True
        if thread is not threading.current_thread():
            thread.join(timeout_s)
        return not thread.is_alive()

    @property
    def network_thread_alive(self) -> bool:
        """paho's network thread (``loop_start``) is running. It ends for good when anything
        in it raises: a MemoryError reading a huge packet, an exception in a callback."""
        thread = self._thread
        return thread is not None and thread.is_alive()


def make_client(settings: MqttSettings, *, client_id: str, password: str | None,
                reconnect_delays_s: tuple[float, float] | None = None,
                protocol: int = MQTT5) -> RollerClient:
    """A paho 2.x client for the configured broker: MQTT 5 (or 3.1.1 with ``protocol``),
    a session that ends with the connection, reconnection with exponential backoff
    (``reconnect_delays_s``, default the settings' min and max [s]), login and TLS from
    ``[mqtt]``. Connect it with :func:`connect_properties`; its log goes where its owner's
    ``on_log`` sends it (see :class:`~roller.mqtt.connection.Connection`)."""
    if protocol == MQTT5:
        client = RollerClient(callback_api_version=CallbackAPIVersion.VERSION2,
                              client_id=client_id, protocol=MQTT5)
    else:
        client = RollerClient(callback_api_version=CallbackAPIVersion.VERSION2,
                              client_id=client_id, clean_session=True, protocol=MQTT311)
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


def connect_properties(protocol: int) -> Properties | None:
    """The CONNECT properties bounding what the broker sends us (MQTT 5 only)."""
    if protocol != MQTT5:
        return None
    props = Properties(PacketTypes.CONNECT)
    props.MaximumPacketSize = MAX_PACKET_BYTES
    props.ReceiveMaximum = RECEIVE_MAXIMUM
    props.SessionExpiryInterval = 0  # the session ends with the connection (clean)
    return props


def describe_connect_error(exc: BaseException, host: str, port: int, *,
                           tls: bool = False) -> str:
    """Why the connection to ``host:port`` could not be opened, in words a maker can act on:
    ``<host>:<port> unreachable: <cause>``. With ``tls``, a connection the other end drops
    is a failed TLS handshake (a plain MQTT port answers a TLS hello that way)."""
    where = f"{host}:{port} unreachable"
    if isinstance(exc, socket.gaierror):
        return f"{where}: unknown host {host!r} (name lookup failed: {exc.strerror or exc})"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"{where}: TLS, the broker's certificate was not accepted ({exc.verify_message})"
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or exc
        return f"{where}: TLS handshake failed ({reason})"
    if tls and isinstance(exc, ConnectionResetError | ConnectionAbortedError | EOFError):
        return (f"{where}: TLS handshake failed ({exc.strerror or exc}: is {port} a TLS "
                "port?)")
    if isinstance(exc, ConnectionRefusedError):
        return f"{where}: connection refused (is the broker running, on that port?)"
    if isinstance(exc, TimeoutError | socket.timeout):
        return f"{where}: no answer (timed out: a firewall, or the wrong address?)"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{where}: {exc.strerror}"
    return f"{where}: {exc}"


def describe_refusal(reason: Any, host: str, port: int) -> str:
    """A CONNACK that refused us (paho's reason code), in words."""
    text = str(reason)
    lowered = text.lower()
    if "password" in lowered or "authori" in lowered or "authentic" in lowered:
        return (f"{host}:{port} refused the login ({text}): check [mqtt] username and the "
                "password")
    return f"{host}:{port} refused the connection ({text})"
