"""A stand-in phone: a local HTTP server speaking phyphox's remote-access protocol.

For ``roller demo --phone``, the tests and the benchmark: a user without a phone (and CI) sees
the whole phone path work. It implements what the client relies on, as phyphox documents it:

* ``/config`` with ``buffers`` and ``inputs`` (each sensor's source and its x/y/z/t buffers);
* ``/get``: ``buf=<t>|<ref>`` (values whose ``ref`` is newer than ``t``), ``buf=<t>`` on a time
  buffer, ``buf=full`` (everything), ``buf=`` (the newest value); non-finite values as
  ``null``; ``status`` with ``session``, ``measuring``, ``timedRun``, ``countDown``;
* ``/control?cmd=start|stop|clear`` and ``/time`` (start and pause events with experiment and
  system time);
* one request at a time (a single-threaded server, as on the phone), port 8081 when free.

The phone's sensors are sampled from ``source(t) -> (N, 6)`` (the simulated person's roller,
:func:`simulated_phone_source`) on two clocks of their own: accelerometer and gyro at their own
uneven rates, an experiment time that runs only while measuring and at the phone's (slightly
wrong) clock rate, on ``clock`` (a ManualClock in tests). Faults on demand: slow answers,
failing answers, the network gone (connection refused), the phone asleep (a gap in the
samples), another experiment opened (a new session), an experiment without gyroscope or
with gravity removed.
"""

from __future__ import annotations

import json
import math
import threading
import time
import uuid
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import numpy as np

from firmware_bridge.clock import Clock, SystemClock

DEFAULT_PORT = 8081
KEEP_S = 120.0
"""Experiment time kept in the buffers [s] (a real phone keeps everything)."""

LAYOUTS: dict[str, list[tuple[str, tuple[str, str, str, str]]]] = {
    "roller": [("accelerometer", ("accX", "accY", "accZ", "acc_time")),
               ("gyroscope", ("gyrX", "gyrY", "gyrZ", "gyr_time"))],
    # an edited experiment with its own buffer names: the client must read /config
    "custom": [("accelerometer", ("ax", "ay", "az", "ta")),
               ("gyroscope", ("wx", "wy", "wz", "tw"))],
    "gyroscope only": [("gyroscope", ("gyrX", "gyrY", "gyrZ", "gyr_time"))],
    "linear acceleration": [("linear_acceleration", ("accX", "accY", "accZ", "acc_time")),
                            ("gyroscope", ("gyrX", "gyrY", "gyrZ", "gyr_time"))],
}


class _Stream:
    """One sensor's samples on the phone: times at an uneven rate, values from ``source``."""

    def __init__(self, rate_hz: float, columns: slice, seed: int) -> None:
        self.rate_hz = rate_hz
        self.columns = columns
        self.rng = np.random.default_rng(seed)
        self.t = np.zeros(0)
        self.v = np.zeros((0, 3))
        self.next_t = float(self.rng.uniform(0, 1.0 / rate_hz))

    def fill(self, upto: float, source: Callable[[np.ndarray], np.ndarray],
             gaps: list[tuple[float, float]]) -> None:
        if upto <= self.next_t:
            return
        n = int((upto - self.next_t) * self.rate_hz * 1.3) + 2
        dt = (1.0 / self.rate_hz) * self.rng.uniform(0.8, 1.2, size=n)  # uneven spacing
        t = self.next_t + np.concatenate(([0.0], np.cumsum(dt[:-1])))
        t = t[t <= upto]
        if t.size == 0:
            return
        self.next_t = float(t[-1] + dt[t.size - 1])
        for lo, hi in gaps:
            t = t[(t < lo) | (t >= hi)]
        if t.size:
            self.t = np.concatenate((self.t, t))
            self.v = np.concatenate((self.v, source(t)[:, self.columns]))
        keep = self.t >= upto - KEEP_S
        if not keep.all():
            self.t, self.v = self.t[keep], self.v[keep]

    def clear(self) -> None:
        self.t = np.zeros(0)
        self.v = np.zeros((0, 3))
        self.next_t = float(self.rng.uniform(0, 1.0 / self.rate_hz))


class _Recorded(_Stream):
    """A stream replayed from a recording: its samples appear once experiment time passes
    their timestamps (a real export replayed through the live path)."""

    def __init__(self, t: np.ndarray, v: np.ndarray) -> None:
        super().__init__(1.0, slice(0, 3), 0)
        self._all_t, self._all_v = np.asarray(t, float), np.asarray(v, float)
        self._next = 0

    def fill(self, upto: float, source: Callable[[np.ndarray], np.ndarray],
             gaps: list[tuple[float, float]]) -> None:
        end = int(np.searchsorted(self._all_t, upto, side="right"))
        if end > self._next:
            self.t = np.concatenate((self.t, self._all_t[self._next:end]))
            self.v = np.concatenate((self.v, self._all_v[self._next:end]))
            self._next = end

    def clear(self) -> None:
        super().clear()
        self._next = 0


class StandInPhyphox:
    """The simulated phone and its server. ``start()`` serves on ``port`` (8081 by default;
    0: any free port); ``url`` is what the app would show."""

    def __init__(self, source: Callable[[np.ndarray], np.ndarray], *, host: str = "127.0.0.1",
                 port: int = DEFAULT_PORT, accel_rate_hz: float = 100.0,
                 gyro_rate_hz: float = 200.0, clock_rate: float = 1.0 + 40e-6,
                 layout: str = "roller", measuring: bool = True, seed: int = 0,
                 allow_remote_start: bool = True, clock: Clock | None = None) -> None:
        self.clock = clock or SystemClock()
        self.source = source
        self.host, self.port = host, port
        self.clock_rate = clock_rate
        self.allow_remote_start = allow_remote_start
        self.layout_name = layout
        self.session = uuid.uuid4().hex[:8]
        self.seed = seed
        self._streams = {"accelerometer": _Stream(accel_rate_hz, slice(0, 3), seed + 1),
                         "linear_acceleration": _Stream(accel_rate_hz, slice(0, 3), seed + 1),
                         "gyroscope": _Stream(gyro_rate_hz, slice(3, 6), seed + 2)}
        self._lock = threading.RLock()
        self._measuring = False
        self._exp_before_s = 0.0      # experiment time accumulated before the current run
        self._run_started = 0.0       # monotonic time the current run began
        self._events: list[dict[str, Any]] = []
        self.gaps: list[tuple[float, float]] = []
        self.slow_s = 0.0
        self.fail_next = 0
        self.requests: list[str] = []
        self.max_in_flight = 0
        self._in_flight = 0
        self._server: HTTPServer | None = None
        self._thread: threading.Thread | None = None
        if measuring:
            self.control("start")

    def replay(self, accel_t: np.ndarray, accel: np.ndarray, gyro_t: np.ndarray,
               gyro: np.ndarray) -> StandInPhyphox:
        """Serve recorded streams (each on its own timestamps, experiment time [s]) instead of
        the simulated person's."""
        with self._lock:
            self._streams["accelerometer"] = _Recorded(accel_t, accel)
            self._streams["gyroscope"] = _Recorded(gyro_t, gyro)
        return self

    # -- the phone ----------------------------------------------------------------------------
    def experiment_time(self, at: float | None = None) -> float:
        """The phone's experiment time [s] (runs only while measuring, at ``clock_rate``)."""
        at = self.clock.monotonic() if at is None else at
        with self._lock:
            if not self._measuring:
                return self._exp_before_s
            return self._exp_before_s + (at - self._run_started) * self.clock_rate

    def monotonic_of(self, experiment_t: float) -> float:
        """Our monotonic time at which the phone sampled ``experiment_t`` (current run)."""
        with self._lock:
            return self._run_started + (experiment_t - self._exp_before_s) / self.clock_rate

    def control(self, cmd: str) -> bool:
        with self._lock:
            now = self.clock.monotonic()
            if cmd == "start":
                if not self._measuring:
                    self._measuring = True
                    self._run_started = now
                    self._events.append({"event": "START", "experimentTime":
                                         self._exp_before_s, "systemTime": time.time()})
                return True
            if cmd == "stop":
                if self._measuring:
                    self._fill()
                    self._exp_before_s = self.experiment_time(now)
                    self._measuring = False
                    self._events.append({"event": "PAUSE", "experimentTime":
                                         self._exp_before_s, "systemTime": time.time()})
                return True
            if cmd == "clear":
                self._exp_before_s = 0.0
                self._run_started = now
                self._events = []
                self.gaps = []
                for s in self._streams.values():
                    s.clear()
                if self._measuring:
                    self._events.append({"event": "START", "experimentTime": 0.0,
                                         "systemTime": time.time()})
                return True
            return False

    def open_experiment(self, layout: str = "roller") -> None:
        """The user opens another experiment: a new session, empty buffers, time from 0."""
        with self._lock:
            self.layout_name = layout
            self.session = uuid.uuid4().hex[:8]
            measuring = self._measuring
            self._measuring = False
            self.control("clear")
            if measuring:
                self.control("start")

    def sleep_for(self, seconds: float) -> None:
        """The phone's sensors stop for ``seconds`` from now (a gap in every stream)."""
        with self._lock:
            now = self.experiment_time()
            self.gaps.append((now, now + seconds * self.clock_rate))

    def _fill(self) -> None:
        upto = self.experiment_time()
        for name, _buffers in LAYOUTS[self.layout_name]:
            self._streams[name].fill(upto, self.source, self.gaps)

    # -- the remote-access API -----------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        inputs, buffers = [], []
        for source, (x, y, z, t) in LAYOUTS[self.layout_name]:
            inputs.append({"source": source,
                           "outputs": [{"x": x}, {"y": y}, {"z": z}, {"t": t}]})
            buffers += [{"name": n, "size": 0} for n in (x, y, z, t)]
        return {"crc32": "5ca1ab1e", "title": f"Stand-in: {self.layout_name}",
                "localTitle": f"Stand-in: {self.layout_name}", "category": "Roller",
                "buffers": buffers, "inputs": inputs, "export": []}

    def get(self, query: list[tuple[str, str]]) -> dict[str, Any]:
        with self._lock:
            self._fill()
            columns: dict[str, np.ndarray] = {}
            for source, names in LAYOUTS[self.layout_name]:
                stream = self._streams[source]
                for i, n in enumerate(names[:3]):
                    columns[n] = stream.v[:, i]
                columns[names[3]] = stream.t
            out: dict[str, Any] = {}
            for name, arg in query:
                if name not in columns:
                    continue
                values = columns[name]
                if arg == "full":
                    picked = values
                elif arg == "":
                    picked = values[-1:]
                else:
                    thr_text, _, ref = arg.partition("|")
                    try:
                        thr = float(thr_text)
                    except ValueError:
                        picked = values[-1:]
                    else:
                        ref_values = columns.get(ref or name, values)
                        picked = values[ref_values > thr]
                out[name] = {"size": 0, "updateMode": "partial" if arg not in ("", "full")
                             else ("full" if arg == "full" else "single"),
                             "buffer": [v if math.isfinite(v) else None
                                        for v in picked.tolist()]}
            status = {"session": self.session, "measuring": self._measuring,
                      "timedRun": False, "countDown": 0}
        return {"buffer": out, "status": status}

    def time_events(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._events)

    # -- the server ----------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self) -> StandInPhyphox:
        """Serve (on ``port``, or any free one if it is taken or 0)."""
        try:
            self._server = _Server((self.host, self.port), _Handler, self)
        except OSError:
            self._server = _Server((self.host, 0), _Handler, self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        name="phyphox-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving: the phone is unreachable (connection refused) until :meth:`start`."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=2.0)
            self._thread = None

    close = stop

    def __enter__(self) -> StandInPhyphox:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _Server(HTTPServer):
    """Single-threaded: one request at a time, as on the phone."""

    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], handler: type, phone: StandInPhyphox) -> None:
        self.phone = phone
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests and the demo
        return

    def do_GET(self) -> None:
        phone = self.server.phone
        phone._in_flight += 1
        phone.max_in_flight = max(phone.max_in_flight, phone._in_flight)
        try:
            self._answer(phone)
        finally:
            phone._in_flight -= 1

    def _answer(self, phone: StandInPhyphox) -> None:
        parts = urlsplit(self.path)
        phone.requests.append(self.path)
        del phone.requests[:-20000]
        if phone.slow_s:
            time.sleep(phone.slow_s)
        if phone.fail_next > 0:
            phone.fail_next -= 1
            self.send_error(500, "stand-in failure")
            return
        query = parse_qsl(parts.query, keep_blank_values=True)
        if parts.path == "/config":
            body: Any = phone.config()
        elif parts.path == "/get":
            body = phone.get(query)
        elif parts.path == "/control":
            cmd = dict(query).get("cmd", "")
            ok = phone.allow_remote_start or cmd != "start"
            body = {"result": phone.control(cmd) if ok else False}
        elif parts.path == "/time":
            body = phone.time_events()
        else:
            self.send_error(404)
            return
        data = json.dumps(body, allow_nan=False).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def simulated_phone_source(*, seed: int = 0, duration_s: float = 1800.0,
                           gyro_offset_rad_s: float = 0.2) -> Callable[[np.ndarray], np.ndarray]:
    """``t -> (N, 6)``: what a phone taped to the simulated person's roller reads (its gyro
    offset up to ``gyro_offset_rad_s``, as phone gyros have); the session repeats."""
    from firmware_bridge.simulator import SimulatedRoller, person_scenario

    roller = SimulatedRoller(person_scenario(duration_s, seed=seed,
                                             gyro_bias_max_rad_s=gyro_offset_rad_s), seed=seed)
    duration = roller.duration_s

    def source(t: np.ndarray) -> np.ndarray:
        return roller.imu(np.mod(t, duration))

    source.roller = roller  # type: ignore[attr-defined]
    return source
