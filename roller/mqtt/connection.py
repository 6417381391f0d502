"""The connection lifecycle: connect, notice a dead or stuck client, rebuild it, name the cause.

:class:`Connection` owns one paho client (built by :func:`~roller.mqtt.client.make_client`)
for the service's publisher and the display's bridge alike. paho runs its network loop in its
own thread and reconnects there; what paho does not do, and this does:

- **Alive but deaf.** paho's thread ends for good when anything in it raises (a MemoryError on
  a huge packet, an exception in a callback), and a callback that blocks stops it silently; the
  connection would still say "connected". :meth:`Connection.watch`, called from the owner's
  loop, notices the thread gone, a callback that raised, or nothing heard from the broker for
  :attr:`Connection.stuck_after_s` (the broker answers every keepalive) and builds a new client:
  the owner's ``on_up`` subscribes and announces again, its ``on_rebuilt`` hands what the old
  client held back to the outbox. Rebuilds back off (1 s doubling to 60 s).
- **Why not connected.** Every failed attempt's cause (connection refused, unknown host, TLS,
  login refused) is kept in :attr:`Connection.problem` and logged when it changes, and at most
  once a minute while it lasts, instead of paho's ``Client is not connected. Socket: None``
  every few seconds.
- **MQTT 5 when the broker speaks it**, with the packet-size bound of
  :mod:`roller.mqtt.client`; a broker that does not answer an MQTT 5 CONNECT within
  :data:`CONNACK_TIMEOUT_S` (or refuses the protocol) gets MQTT 3.1.1.

Timing rules run on the injected clock; the network thread stamps what it hears with it. Waits
for the network itself are real (the broker lives in real time).
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt

from roller.base.clock import Clock, SystemClock
from roller.base.untrusted import RateLimitedLog, shorten
from roller.mqtt.client import (
    MQTT5,
    MQTT311,
    MqttSettings,
    RollerClient,
    connect_properties,
    describe_connect_error,
    describe_refusal,
    make_client,
)

CONNACK_TIMEOUT_S = 3.0
"""A broker that opened the connection but has not answered the CONNECT within this long [s]
does not speak MQTT 5 (amqtt stays silent): the next client speaks MQTT 3.1.1."""

REBUILD_MIN_DELAY_S = 1.0
REBUILD_MAX_DELAY_S = 60.0
"""Rebuilds back off from the first to the second [s], doubling: a fault that comes back at
once (a callback that always raises on a retained message) cannot spin."""

CLOSE_WAIT_S = 5.0
"""On close, how long to wait for paho's thread [s] (a blocked callback may hold it)."""

CAUSE_REPEAT_S = 60.0
"""A cause that lasts is logged again this often [s] (a new cause at once)."""


@dataclass(frozen=True)
class Will:
    """The last will: what the broker publishes when the connection dies without a word."""

    topic: str
    payload: bytes
    qos: int
    retain: bool


class Connection:
    """One broker connection for ``settings``; see the module docstring.

    ``on_up(client)`` runs in the network thread on every (re)connect: subscribe and announce
    there; ``after_up()`` once the link counts as connected. ``on_message(msg)``,
    ``on_published(mid)`` too (keep them quick). ``on_down()``
    when the link is lost, ``on_rebuilt()`` in the owner's thread after a new client replaced
    a dead one (its message ids mean nothing now). ``limits(client)`` sets inflight and queue
    bounds on each new client.
    """

    def __init__(self, settings: MqttSettings, *, client_id: str, password: str | None,
                 logger: logging.Logger, on_up: Callable[[mqtt.Client], None],
                 on_message: Callable[[mqtt.MQTTMessage], None],
                 after_up: Callable[[], None] | None = None,
                 on_published: Callable[[int], None] | None = None,
                 on_down: Callable[[], None] | None = None,
                 on_rebuilt: Callable[[], None] | None = None,
                 limits: Callable[[mqtt.Client], None] | None = None,
                 will: Will | None = None, keepalive_s: int | None = None,
                 reconnect_delays_s: tuple[float, float] | None = None,
                 clock: Clock | None = None) -> None:
        self.settings = settings
        self.client_id = client_id
        self._password = password
        self.log = logger
        self._on_up, self._after_up, self._on_message = on_up, after_up, on_message
        self._on_published, self._on_down, self._on_rebuilt = on_published, on_down, on_rebuilt
        self._limits = limits
        self._will = will
        self.keepalive_s = keepalive_s or settings.keepalive_s
        self._delays = reconnect_delays_s
        self.clock = clock or SystemClock()
        self.protocol = MQTT5
        self.stuck_after_s = 2.0 * self.keepalive_s + 1.0
        """Connected, yet nothing heard for this long [s]: the broker answers a ping every
        keepalive, so the client is stuck (or the link dead and paho has not noticed)."""
        self.connected_event = threading.Event()
        self.connects = 0
        self.rebuilds = 0
        """New clients built because the previous one died, hung or failed in a callback."""
        self.callback_failures = 0
        self.last_failure: str | None = None
        """Why the client was last rebuilt (None: never)."""
        self.last_failure_at = -float("inf")
        """When (on the clock) it was last rebuilt [s]."""
        self.last_disconnect_reason = ""
        self._failure: str | None = None  # set in the network thread, acted on in watch()
        self._refusal: str | None = None
        self._protocol_refused = False
        self._up = False  # the broker accepted this client and has not dropped it since
        self._heard_at = self.clock.monotonic()
        self._opened_at: float | None = None
        self._rebuild_at = -float("inf")
        self._rebuild_delay_s = REBUILD_MIN_DELAY_S
        self._cause_logged: tuple[str, float] | None = None
        self._cause_log = RateLimitedLog(logger, interval_s=CAUSE_REPEAT_S, burst=3,
                                         clock=self.clock)
        self._failure_log = RateLimitedLog(logger, interval_s=60.0, burst=5,
                                           clock=self.clock)
        self._started = self._closed = False
        self.client = self._build()

    # -- building -------------------------------------------------------------------------
    def _build(self) -> RollerClient:
        client = make_client(self.settings, client_id=self.client_id, password=self._password,
                             reconnect_delays_s=self._delays, protocol=self.protocol)
        if self._limits is not None:
            self._limits(client)
        if self._will is not None:
            w = self._will
            client.will_set(w.topic, w.payload, qos=w.qos, retain=w.retain)
        client.on_connect = self._guard("on_connect", self._connected_cb)
        client.on_disconnect = self._guard("on_disconnect", self._disconnected_cb)
        client.on_message = self._guard("on_message", self._message_cb)
        client.on_publish = self._guard("on_publish", self._published_cb)
        client.on_socket_open = self._guard("on_socket_open", self._socket_open_cb)
        client.on_socket_close = self._guard("on_socket_close", self._socket_close_cb)
        client.on_log = self._log_cb
        return client

    def _connect(self) -> None:
        self._heard_at = self.clock.monotonic()
        self.client.connect_async(self.settings.host, self.settings.port,
                                  keepalive=self.keepalive_s,
                                  properties=connect_properties(self.protocol))
        self.client.loop_start()

    # -- lifecycle ------------------------------------------------------------------------
    def start(self) -> None:
        """Begin connecting in the background; returns at once, also if the broker is down."""
        if self._started:
            return
        self._started = True
        self._connect()

    @property
    def connected(self) -> bool:
        return self.connected_event.is_set()

    def wait_connected(self, timeout_s: float) -> bool:
        """Block up to ``timeout_s`` (real time: the broker's) for the link; True if up."""
        return self.connected_event.wait(timeout_s)

    def close(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        if self._closed:
            return
        self._closed = True
        try:
            self.client.disconnect()
        finally:
            if not self.client.stop_network_thread(CLOSE_WAIT_S):
                self.log.warning("the MQTT network thread did not stop within %.0f s; left "
                                 "behind", CLOSE_WAIT_S)
            self.connected_event.clear()

    # -- the watch (owner's thread) -------------------------------------------------------
    def watch(self) -> str | None:
        """Check the client (cheap: call it every loop); rebuild it when it is dead, stuck or
        failed in a callback, when due. Returns what is wrong with the link now, or None."""
        if not self._started or self._closed:
            return None
        now = self.clock.monotonic()
        if self._speaks_no_mqtt5(now):
            self._replace_client()
        fault = self._fault(now)
        if fault is not None and now >= self._rebuild_at:
            self._rebuild(fault, now)
            fault = None
        elif fault is not None:  # a rebuild is not due yet: stop handing it messages
            self.connected_event.clear()
        problem = fault or self.problem
        self._log_cause(problem, now)
        return problem

    def _fault(self, now: float) -> str | None:
        if self._failure is not None:
            return self._failure
        if not self.client.network_thread_alive:
            return "the MQTT client's network thread ended"
        if self._up and now - self._heard_at > self.stuck_after_s:
            return (f"nothing heard from the broker for {now - self._heard_at:.0f} s (keepalive "
                    f"{self.keepalive_s} s): the MQTT client is stuck")
        return None

    def _speaks_no_mqtt5(self, now: float) -> bool:
        """The broker opened the connection but has not answered an MQTT 5 CONNECT within
        :data:`CONNACK_TIMEOUT_S` (or refused the protocol): use MQTT 3.1.1 from now on."""
        opened = self._opened_at
        silent = (self.protocol == MQTT5 and not self.connected and opened is not None
                  and now - opened > CONNACK_TIMEOUT_S)
        if not (silent or self._protocol_refused):
            return False
        self.protocol = MQTT311
        self._protocol_refused = False
        self.log.warning("%s does not speak MQTT 5: MQTT 3.1.1 from now on, without the "
                         "client's packet-size bound (set message_size_limit on the broker, "
                         "see config/mosquitto.conf)", self._where)
        return True

    def _rebuild(self, why: str, now: float) -> None:
        self.rebuilds += 1
        self.last_failure = why
        self.last_failure_at = now
        self._failure = None
        self._rebuild_at = now + self._rebuild_delay_s
        self._rebuild_delay_s = min(2 * self._rebuild_delay_s, REBUILD_MAX_DELAY_S)
        self._failure_log(logging.ERROR, "%s; building a new MQTT client (rebuild %d)", why,
                          self.rebuilds)
        self._replace_client()

    def _replace_client(self) -> None:
        old = self.client
        self.connected_event.clear()
        self._up = False
        self._opened_at = None
        _retire(old)
        if self._on_down is not None:
            self._on_down()
        if self._on_rebuilt is not None:
            self._on_rebuilt()
        self.client = self._build()
        self._connect()

    @property
    def problem(self) -> str | None:
        """Why the link is not up (the cause of the last failed attempt), None when it is."""
        if self.connected:
            return None
        if self._opened_at is not None:  # waiting for the broker's CONNACK
            return f"connecting to {self._where}"
        error = self.client.connect_error
        if error is not None:
            return describe_connect_error(error, self.settings.host, self.settings.port,
                                          tls=self.settings.tls)
        if self._refusal is not None:
            return self._refusal
        return f"connecting to {self._where}"

    def _log_cause(self, problem: str | None, now: float) -> None:
        last = self._cause_logged
        if problem is None:
            if last is not None:
                self._cause_logged = None
            return
        if problem.startswith("connecting to"):
            return
        if last is None or last[0] != problem or now - last[1] >= CAUSE_REPEAT_S:
            self._cause_logged = (problem, now)
            self._cause_log(logging.WARNING, "MQTT broker: %s", problem)

    @property
    def _where(self) -> str:
        return f"{self.settings.host}:{self.settings.port}"

    # -- paho callbacks (network thread) --------------------------------------------------
    def _guard(self, name: str, callback: Callable[..., None]) -> Callable[..., None]:
        """``callback`` that never ends paho's thread: what it raises is counted, logged and
        acted on by :meth:`watch` (a new client: a half-run ``on_connect`` leaves us deaf)."""
        def guarded(client: mqtt.Client, *args: Any) -> None:
            if client is not self.client:
                return  # a retired client's last words
            try:
                callback(client, *args)
            except Exception as exc:
                self.callback_failures += 1
                self._failure = f"the MQTT callback {name} raised {shorten(exc, 200)}"
                self._failure_log(logging.ERROR, "%s", self._failure, exc_info=True)
        return guarded

    def _connected_cb(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                      properties: Any) -> None:
        self._heard_at = self.clock.monotonic()
        self._opened_at = None
        if reason.is_failure:
            self._refusal = describe_refusal(reason, self.settings.host, self.settings.port)
            if self.protocol == MQTT5 and "protocol" in str(reason).lower():
                self._protocol_refused = True
            return
        self._refusal = None
        self._up = True
        self.connects += 1
        self._rebuild_delay_s = REBUILD_MIN_DELAY_S
        self.log.info("connected to %s (MQTT %s)", self._where,
                      "5" if self.protocol == MQTT5 else "3.1.1")
        self._on_up(client)
        self.connected_event.set()
        if self._after_up is not None:
            self._after_up()

    def _disconnected_cb(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                         properties: Any) -> None:
        was = self.connected
        self._up = False
        self.connected_event.clear()
        self.last_disconnect_reason = str(reason)
        if was and not self._closed:
            self.log.warning("disconnected from %s (%s); reconnecting", self._where, reason)
        if self._on_down is not None:
            self._on_down()

    def _message_cb(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        self._heard_at = self.clock.monotonic()
        self._on_message(msg)

    def _published_cb(self, client: mqtt.Client, userdata: Any, mid: int, reason: Any,
                      properties: Any) -> None:
        self._heard_at = self.clock.monotonic()
        if self._on_published is not None:
            self._on_published(mid)

    def _socket_open_cb(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._opened_at = self.clock.monotonic()

    def _socket_close_cb(self, client: mqtt.Client, userdata: Any, sock: Any) -> None:
        self._opened_at = None

    def _log_cb(self, client: mqtt.Client, userdata: Any, level: int, text: str) -> None:
        """paho's log: every packet received is a sign of life (a PINGRESP at least every
        keepalive); its lines go to the debug log (the causes are logged by :meth:`watch`)."""
        if client is not self.client:
            return
        if text.startswith("Received "):
            self._heard_at = self.clock.monotonic()
        self.log.debug("paho: %s", text)


def _retire(client: RollerClient) -> None:
    """Let go of a dead or stuck client without waiting on it: a DISCONNECT (written at once
    when its thread is gone, so the broker drops the will), its socket closed, and never a
    reconnect (a stuck thread that wakes finds it disconnecting)."""
    with contextlib.suppress(Exception):  # a dying client may fail any way; the new one matters
        client.disconnect()
    sock = client.socket()
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.close()
