"""Sensor Logger's HTTP push, received: the phone POSTs its sensor batches to us.

Sensor Logger (Kelvin Choi; Android and iOS) can push what it records to an HTTP URL, in
batches every 0.2-5 s (configurable in the app). Facts from its documentation:

* each push is ``{"messageId", "sessionId", "deviceId", "payload": [{"name", "time",
  "values": {"x", "y", "z"}}, ...]}`` with ``time`` in ns since 1970 on the phone's clock;
* ``name`` is ``gyroscope`` (rad/s), ``totalacceleration`` (m/s^2, with gravity),
  ``accelerometer`` (gravity removed), ``gravity`` and others we do not need; a push may hold
  one sensor only (a gyro-only batch);
* "Tap to Test" sends ``payload[0].name == "test"``.

The receiver listens on ``[phone] listen_host:listen_port`` and takes POSTs to
``/push?token=<pairing token>`` only: the token (random, shown in the URL to type into the
app) is compared in constant time, and a push without it is refused with 403. Everything
else goes through the same guards as the display (:mod:`roller.base.http_limits`: a deadline
on each request, a head budget, a connection cap, quiet aborts; :mod:`roller.base.refusals`:
refusals counted and logged at a bounded rate) and the bounded decoder
(:func:`roller.base.untrusted.decode_json`: size and nesting checked before decoding).
Acceleration without gravity is not used; when ``totalacceleration`` is off but
``accelerometer`` and ``gravity`` both come, their sum is (what the export reader does with
the two files).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import secrets
import socket
import threading
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

import numpy as np

from firmware_bridge.clock import Clock
from roller.base.http_limits import (
    DeadlineReader,
    HeadTooLargeError,
    LimitedHTTPServer,
    ShortBodyError,
    SocketWriter,
)
from roller.base.refusals import RefusalLog
from roller.base.untrusted import PayloadError, decode_json
from roller.phone.settings import PhoneSettings
from roller.phone.source import PhoneSource

log = logging.getLogger("roller.phone.sensor_logger")

PATH = "/push"
MAX_PUSH_BYTES = 4 << 20
"""Largest push taken: 5 s of three sensors at 500 Hz is about 1 MB of JSON."""
MAX_DEPTH = 6
MAX_ENTRIES = 60_000
MAX_HEAD_BYTES = 16384
HEAD_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 15.0
WRITE_TIMEOUT_S = 5.0
NS = 1e-9
_BUSY_BODY = b'{"error": "the roller is busy; try again"}'
BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
        b"Retry-After: 1\r\nConnection: close\r\nContent-Length: "
        + str(len(_BUSY_BODY)).encode() + b"\r\n\r\n" + _BUSY_BODY)


class PushError(ValueError):
    """A push we cannot use; the message says what was expected."""


def parse_push(message: Any) -> dict[str, Any]:
    """The sensors of one push: ``{"session": str, "test": bool, name: (time_ns (N,) int64,
    values (N, 3))}`` for gyroscope, totalacceleration, accelerometer and gravity. Entries
    that are not well formed or not finite are left out (counted in ``"bad"``)."""
    if not isinstance(message, Mapping):
        raise PushError(f"expected a JSON object with 'payload', got {type(message).__name__}")
    payload = message.get("payload")
    if not isinstance(payload, list):
        raise PushError("expected 'payload' to be a list of sensor readings")
    if len(payload) > MAX_ENTRIES:
        raise PushError(f"expected at most {MAX_ENTRIES} readings in one push, got "
                        f"{len(payload)}")
    out: dict[str, Any] = {"session": str(message.get("sessionId", ""))[:64],
                           "test": bool(payload) and isinstance(payload[0], Mapping)
                           and payload[0].get("name") == "test", "bad": 0}
    rows: dict[str, tuple[list[int], list[tuple[float, float, float]]]] = {}
    for entry in payload:
        if not isinstance(entry, Mapping):
            out["bad"] += 1
            continue
        name = entry.get("name")
        if name not in ("gyroscope", "totalacceleration", "accelerometer", "gravity"):
            continue
        t, values = entry.get("time"), entry.get("values")
        try:
            xyz = (float(values["x"]), float(values["y"]), float(values["z"]))  # type: ignore[index]
            ns = int(t) if isinstance(t, int) and not isinstance(t, bool) else int(float(t))
        except (TypeError, KeyError, ValueError, OverflowError):
            out["bad"] += 1
            continue
        if not all(map(math.isfinite, xyz)) or not 0 < ns < 10**19 or \
                any(isinstance(v, bool) for v in values.values()):  # type: ignore[union-attr]
            out["bad"] += 1
            continue
        ts, vs = rows.setdefault(name, ([], []))
        ts.append(ns)
        vs.append(xyz)
    for name, (ts, vs) in rows.items():
        out[name] = (np.array(ts, dtype=np.int64), np.array(vs, dtype=np.float64))
    return out


class SensorLoggerSource(PhoneSource):
    """Receives Sensor Logger's pushes on its own HTTP server (started at once)."""

    def __init__(self, settings: PhoneSettings, *, clock: Clock | None = None,
                 token: str | None = None) -> None:
        super().__init__("Sensor Logger", settings, clock=clock)
        self.token = token or secrets.token_urlsafe(12)
        self.refusals = RefusalLog(name="phone push")
        self.pushes = 0
        self.tests = 0
        self.bad_readings = 0
        self._base_ns: int | None = None
        self._session: str | None = None
        self._gravity: tuple[np.ndarray, np.ndarray] | None = None
        self._without_g_only = 0
        self.seen: dict[str, list[float]] = {}
        """Per sensor name: [readings, first phone time, last phone time] [s since 1970]."""
        self.wall_offset_s: float | None = None
        """The phone's wall clock minus ours at a push's arrival, least of all pushes [s]."""
        self.server = _PushServer((settings.listen_host, settings.listen_port), _Handler,
                                  max_connections=8, max_streams=0, max_per_client=4,
                                  refusals=self.refusals)
        self.server.source = self
        self.port = self.server.server_address[1]
        self.where = f"pushing to port {self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        kwargs={"poll_interval": 0.2},
                                        name="sensor-logger-receiver", daemon=True)
        self._thread.start()

    # -- what to type into the app ---------------------------------------------------------
    def push_url(self, host: str | None = None) -> str:
        """The URL to enter in the app: this machine's LAN address (or the address listened
        on, when it is one), the port and the pairing token."""
        listen = self.settings.listen_host
        host = host or (listen if listen not in ("", "0.0.0.0", "::") else lan_address())
        return f"http://{host}:{self.port}{PATH}?token={self.token}"

    def instructions(self) -> str:
        return ("in Sensor Logger, Settings -> Data Streaming -> HTTP Push, enter "
                f"{self.push_url()} and turn on Gyroscope and Total Acceleration")

    def unreachable_reason(self, silent_s: float, failure: str | None) -> str:
        return (f"phone silent: no push from Sensor Logger for {silent_s:.1f} s"
                f"{f' (last refusal: {failure})' if failure else ''}; is it recording, with "
                f"HTTP push to {self.push_url()}?")

    def _update_health(self, now: float) -> None:
        # pushes come every 0.2-5 s: silence means push_silent_s, not a poll's few seconds
        since = self._last_answer_at if self._last_answer_at is not None else self._started_at
        if now - since <= self.settings.push_silent_s:
            h = self.health
            if not h.connected:
                log.info("Sensor Logger: pushes arrive again")
            h.connected = True
            h.last_error = self._problem
            return
        if self.health.connected:
            self.health.connected = False
            self.health.disconnects += 1
        self.health.last_error = self.unreachable_reason(now - since, self._failure)

    # -- one push --------------------------------------------------------------------------
    def take_push(self, message: Any) -> str:
        """Feed one decoded push; returns what to answer (raises PushError)."""
        now = self.clock.monotonic()
        parsed = parse_push(message)
        self.pushes += 1
        self.bad_readings += parsed["bad"]
        if parsed["test"]:
            self.tests += 1
            log.info("Sensor Logger: test message received, the push URL works")
            self.answered(now, self._problem)
            return "test received"
        if parsed["session"] != self._session:
            if self._session is not None:
                self.new_session()
            self._session = parsed["session"]
            self._base_ns = None
            self._gravity = None
        self._note_seen(parsed)
        accel = parsed.get("totalacceleration")
        if accel is None and "accelerometer" in parsed:
            accel = self._with_gravity(parsed["accelerometer"], parsed.get("gravity"))
        gyro = parsed.get("gyroscope")
        problem = None
        if accel is None and "accelerometer" in parsed:
            self._without_g_only += 1
            if self._without_g_only >= 3:
                problem = ("Sensor Logger sends acceleration without gravity ('Accelerometer'): "
                           "turn on 'Total Acceleration' (or 'Gravity' too)")
        elif accel is not None:
            self._without_g_only = 0
        times = [a[0] for a in (accel, gyro) if a is not None and a[0].size]
        if not times:
            self.answered(now, problem)
            return "nothing to use"
        if self._base_ns is None:
            self._base_ns = int(min(int(t.min()) for t in times))
        empty = (np.zeros(0), np.zeros((0, 3)))
        a = (self._seconds(accel[0]), accel[1]) if accel is not None else empty
        g = (self._seconds(gyro[0]), gyro[1]) if gyro is not None else empty
        self.deliver(a[0], a[1], g[0], g[1], now)
        with self._lock:
            self._problem = problem
            self._update_health(now)
        return "ok"

    def _note_seen(self, parsed: dict[str, Any]) -> None:
        import time

        newest = None
        for name in ("gyroscope", "totalacceleration", "accelerometer", "gravity"):
            if name in parsed and parsed[name][0].size:
                ns = parsed[name][0]
                entry = self.seen.setdefault(name, [0, math.inf, -math.inf])
                entry[0] += ns.size
                entry[1] = min(entry[1], float(ns.min()) * NS)
                entry[2] = max(entry[2], float(ns.max()) * NS)
                newest = max(newest or -math.inf, entry[2])
        if newest is not None:
            offset = newest - time.time()
            self.wall_offset_s = offset if self.wall_offset_s is None \
                else max(self.wall_offset_s, offset)

    def _seconds(self, ns: np.ndarray) -> np.ndarray:
        assert self._base_ns is not None
        return (ns - self._base_ns).astype(np.float64) * NS

    def _with_gravity(self, accel: tuple[np.ndarray, np.ndarray],
                      gravity: tuple[np.ndarray, np.ndarray] | None,
                      ) -> tuple[np.ndarray, np.ndarray] | None:
        """``accelerometer`` + ``gravity`` (gravity interpolated at the accelerometer's times;
        the latest gravity kept for a push that lacks it)."""
        if gravity is not None and gravity[0].size:
            self._gravity = gravity
        if self._gravity is None:
            return None
        gt, gv = self._gravity
        t, v = accel
        g = np.stack([np.interp(t.astype(np.float64), gt.astype(np.float64), gv[:, k])
                      for k in range(3)], axis=1)
        return t, v + g

    def close(self) -> None:
        super().close()
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=2.0)


class _PushServer(LimitedHTTPServer):
    busy_response = BUSY
    name = "phone push"
    source: SensorLoggerSource


class _Handler(BaseHTTPRequestHandler):
    server: _PushServer
    rfile: DeadlineReader  # type: ignore[assignment]
    server_version = "roller-phone"
    protocol_version = "HTTP/1.1"
    default_request_version = "HTTP/1.1"

    def setup(self) -> None:
        self.connection = self.request
        self.connection.settimeout(WRITE_TIMEOUT_S)
        self.rfile = DeadlineReader(self.connection, write_timeout_s=WRITE_TIMEOUT_S)
        self.wfile = SocketWriter(self.connection)  # type: ignore[assignment]

    def log_message(self, format: str, *args: Any) -> None:
        return  # the request line carries the token: never into a log

    def handle_one_request(self) -> None:
        self.rfile.begin(HEAD_TIMEOUT_S, MAX_HEAD_BYTES)
        try:
            line = self.rfile.readline(8193)
            if not line:
                self.close_connection = True
                return
            if len(line) > 8192:
                self._refuse(HTTPStatus.REQUEST_URI_TOO_LONG, "too_large", "request line")
                return
            self.raw_requestline = line
            if not self.parse_request():
                self.close_connection = True
                return
            self.rfile.end_head()
            self._route()
        except HeadTooLargeError:
            self._refuse(HTTPStatus.REQUEST_HEADER_FIELDS_TOO_LARGE, "too_large",
                         f"the head is longer than {MAX_HEAD_BYTES} bytes")
        except TimeoutError:
            self.close_connection = True
            if self.rfile.request_started:
                with contextlib.suppress(OSError):
                    self._refuse(HTTPStatus.REQUEST_TIMEOUT, "timeout",
                                 "the request was not complete in time")
        except ConnectionError:
            self.close_connection = True

    def _route(self) -> None:
        source = self.server.source
        parts = urlsplit(self.path)
        if parts.path != PATH:
            self._refuse(HTTPStatus.NOT_FOUND, "not_found", f"pushes go to {PATH}?token=...")
            return
        if self.command != "POST":
            self._refuse(HTTPStatus.METHOD_NOT_ALLOWED, "method", "expected POST")
            return
        given = (parse_qs(parts.query).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), source.token.encode()):
            self._refuse(HTTPStatus.FORBIDDEN, "token",
                         "the pairing token is missing or wrong: use the URL roller run printed")
            source.failed("a push with a missing or wrong pairing token", source.clock.monotonic())
            return
        if "Transfer-Encoding" in self.headers:
            self._refuse(HTTPStatus.LENGTH_REQUIRED, "no_length", "send Content-Length")
            return
        lengths = self.headers.get_all("Content-Length") or []
        text = lengths[0].strip() if len(lengths) == 1 else ""
        if not (text.isascii() and text.isdigit()) or not 0 < int(text) <= MAX_PUSH_BYTES:
            self._refuse(HTTPStatus.REQUEST_ENTITY_TOO_LARGE if text.isdigit() else
                         HTTPStatus.LENGTH_REQUIRED, "too_large",
                         f"expected one Content-Length of 1 to {MAX_PUSH_BYTES} bytes")
            return
        try:
            raw = self.rfile.read_body(int(text), BODY_TIMEOUT_S)
        except ShortBodyError as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request", str(exc))
            return
        try:
            answer = source.take_push(decode_json(raw, max_bytes=MAX_PUSH_BYTES,
                                                  max_depth=MAX_DEPTH))
        except (PayloadError, PushError) as exc:
            self._refuse(HTTPStatus.BAD_REQUEST, "bad_request", str(exc)[:200])
            return
        self._send(HTTPStatus.OK, {"result": answer})

    def _refuse(self, status: HTTPStatus, reason: str, text: str) -> None:
        self.server.refusals.note(reason, f"{self.client_address[0]}: {text}")
        self.close_connection = True
        with contextlib.suppress(OSError):
            self._send(status, {"error": text})

    def _send(self, status: HTTPStatus, body: dict[str, Any]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)
        self.server.count_answer()


def lan_address() -> str:
    """This machine's address on the LAN (the one a phone can reach), else 127.0.0.1."""
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent, the route picks the address
        return str(s.getsockname()[0])
    return "127.0.0.1"
