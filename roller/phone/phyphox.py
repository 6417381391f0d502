"""phyphox's remote access, read live: the experiment's layout, then only the new samples.

phyphox (RWTH Aachen) serves a small HTTP API from the phone when "Allow remote access" is on
(Android port 8080, or the next free one such as 8081; iOS port 80). Facts from its
remote-interface documentation that shape this client:

* ``GET /config`` describes the running experiment: its ``buffers`` and its ``inputs`` (each
  sensor's ``source`` and which buffer gets its x, y, z and t). Buffer names are read from
  there, never assumed: the bundled experiments call them ``accX``..``acc_time`` and
  ``gyrX``..``gyr_time``, an edited experiment anything.
* ``GET /get?accX=12.5|acc_time&acc_time=12.5`` returns only the values newer than 12.5 s of
  experiment time (the ``|`` sent as ``%7C``); ``accX=full`` the whole buffer; ``accX=`` the
  newest value. The answer is ``{"buffer": {name: {"size", "updateMode", "buffer": [...]}},
  "status": {"session", "measuring", "timedRun", "countDown"}}`` with non-finite values as
  ``null``.
* ``GET /control?cmd=start|stop|clear`` starts, stops and clears the measurement.
* A new ``status.session`` means the user opened another experiment (or restarted this one):
  its clock starts again, so the layout is read again and the clock mapping starts afresh.
* The phone's server handles one request at a time: requests are serialised (one in flight)
  and made without keep-alive.

:class:`PhyphoxPoller` is the state machine the phone source runs in its own thread:
layout -> measuring -> anchored (the newest sample's time, so the past is not downloaded) ->
polling every ``poll_interval_s``. Every answer is size-bounded and decoded with
:func:`roller.base.untrusted.decode_json`; a bad or missing answer is counted and, once the
phone has not answered for ``unreachable_after_s``, reported as a clear reason.
"""

from __future__ import annotations

import http.client
import logging
import math
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from roller.base.untrusted import PayloadError, RateLimitedLog, decode_json

log = logging.getLogger("roller.phone.phyphox")

MAX_ANSWER_BYTES = 16 << 20
"""Largest answer read (a 60 s catch-up at 500 Hz of eight buffers is about 2 MB)."""
MAX_DEPTH = 8
"""phyphox's answers nest four levels deep."""

FROM_START_S = 2.0
"""A measurement younger than this [s] when first seen is read from its beginning."""

ACCEL_WITH_G = ("accelerometer",)
ACCEL_WITHOUT_G = ("linear_acceleration", "linear acceleration", "linearacceleration")
GYRO = ("gyroscope", "gyro")


class PhyphoxError(Exception):
    """An answer we cannot use; the message says what and what to do."""


class LayoutError(PhyphoxError):
    """The phone answers, but its experiment lacks what the roller needs (a gyroscope, an
    accelerometer with gravity); the message says which experiment to choose instead."""


@dataclass(frozen=True)
class SensorBuffers:
    """Which buffers hold one sensor's x, y, z and time."""

    x: str
    y: str
    z: str
    t: str

    @property
    def values(self) -> tuple[str, str, str]:
        return self.x, self.y, self.z


@dataclass(frozen=True)
class Layout:
    """The experiment as ``/config`` describes it: its title and the two sensors' buffers."""

    title: str
    accel: SensorBuffers
    gyro: SensorBuffers
    crc32: str = ""

    def describe(self) -> str:
        a, g = self.accel, self.gyro
        return (f"phyphox experiment {self.title!r}: accelerometer with g in {a.x}, {a.y}, "
                f"{a.z} at {a.t}; gyroscope in {g.x}, {g.y}, {g.z} at {g.t}")


def parse_layout(config: Any) -> Layout:
    """The :class:`Layout` of a ``/config`` answer; :class:`PhyphoxError` says what is missing
    (no gyroscope, gravity removed) and which experiment to choose instead."""
    if not isinstance(config, Mapping):
        raise PhyphoxError(f"/config: expected a JSON object, got {type(config).__name__}")
    title = str(config.get("title", "?"))[:80]
    inputs = config.get("inputs")
    sensors: dict[str, SensorBuffers] = {}
    sources: list[str] = []
    if isinstance(inputs, list):
        for entry in inputs[:32]:
            if not isinstance(entry, Mapping):
                continue
            source = str(entry.get("source", "")).lower()[:40]
            sources.append(source)
            outputs = _outputs(entry.get("outputs"))
            if {"x", "y", "z", "t"} <= outputs.keys():
                sensors.setdefault(source, SensorBuffers(outputs["x"], outputs["y"],
                                                         outputs["z"], outputs["t"]))
    if not sources:  # an old phyphox without "inputs": the bundled experiments' names
        names = {str(b.get("name")) for b in config.get("buffers", []) or []
                 if isinstance(b, Mapping)}
        for source, prefix, tname in (("accelerometer", "acc", "acc_time"),
                                      ("gyroscope", "gyr", "gyr_time")):
            wanted = {f"{prefix}X", f"{prefix}Y", f"{prefix}Z", tname}
            if wanted <= names:
                sensors[source] = SensorBuffers(f"{prefix}X", f"{prefix}Y", f"{prefix}Z", tname)
                sources.append(source)
    accel = next((sensors[s] for s in ACCEL_WITH_G if s in sensors), None)
    gyro = next((sensors[s] for s in GYRO if s in sensors), None)
    choose = ("load the roller's own experiment (`roller phone-experiment` shows its QR code) "
              "or a phyphox experiment with 'Accelerometer' (with g) and 'Gyroscope'")
    if accel is None and any(s in ACCEL_WITHOUT_G for s in sources):
        raise LayoutError(f"the phyphox experiment {title!r} measures acceleration without "
                           f"gravity (linear acceleration); the roller needs gravity: {choose}")
    if gyro is None:
        raise LayoutError(f"the phyphox experiment {title!r} has no gyroscope (its sensors: "
                           f"{', '.join(sources) or 'none found'}); the roller's speed comes "
                           f"from the gyroscope: {choose}")
    if accel is None:
        raise LayoutError(f"the phyphox experiment {title!r} has no accelerometer with g (its "
                           f"sensors: {', '.join(sources)}): {choose}")
    return Layout(title, accel, gyro, str(config.get("crc32", ""))[:16])


def _outputs(raw: Any) -> dict[str, str]:
    """``[{"x": "accX"}, {"t": "acc_time"}]`` (or one object) -> {"x": "accX", ...}."""
    out: dict[str, str] = {}
    items = raw if isinstance(raw, list) else [raw] if isinstance(raw, Mapping) else []
    for item in items[:16]:
        if isinstance(item, Mapping):
            for k, v in list(item.items())[:8]:
                if isinstance(v, str) and 0 < len(v) <= 64:
                    out.setdefault(str(k).lower(), v)
    return out


@dataclass
class Status:
    session: str
    measuring: bool


@dataclass
class Batch:
    """New samples of one answer, in the phone's experiment time [s]."""

    accel_t: np.ndarray
    accel: np.ndarray
    gyro_t: np.ndarray
    gyro: np.ndarray
    status: Status

    @property
    def newest_t(self) -> float | None:
        ends = [float(a[-1]) for a in (self.accel_t, self.gyro_t) if a.size]
        return max(ends) if ends else None


class PhyphoxClient:
    """Requests to one phone, one at a time, without keep-alive, each bounded in size and
    time. ``base_url``: ``http://HOST:PORT`` as the app shows it."""

    def __init__(self, base_url: str, *, timeout_s: float = 1.0) -> None:
        parts = urllib.parse.urlsplit(base_url if "//" in base_url else f"http://{base_url}")
        if parts.scheme != "http" or not parts.hostname:
            raise PhyphoxError(f"phyphox address {base_url!r}: expected http://HOST:PORT as "
                               "the app shows it under 'Allow remote access'")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.base_url = f"http://{self.host}:{self.port}"
        self.timeout_s = timeout_s
        self.requests = 0

    def get_json(self, path: str) -> Any:
        """GET ``path`` and decode the JSON answer. Raises OSError (network) or PhyphoxError
        (an answer that is not what phyphox sends)."""
        self.requests += 1
        conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
        try:
            conn.request("GET", path, headers={"Connection": "close"})
            resp = conn.getresponse()
            body = resp.read(MAX_ANSWER_BYTES + 1)
            if resp.status != 200:
                raise PhyphoxError(f"{path.split('?')[0]}: HTTP {resp.status} {resp.reason}")
        except http.client.HTTPException as exc:
            raise PhyphoxError(f"{path.split('?')[0]}: not an HTTP answer ({exc!r})") from None
        finally:
            conn.close()
        try:
            return decode_json(body, max_bytes=MAX_ANSWER_BYTES, max_depth=MAX_DEPTH)
        except PayloadError as exc:
            raise PhyphoxError(f"{path.split('?')[0]}: {exc}") from None

    def config(self) -> Layout:
        return parse_layout(self.get_json("/config"))

    def control(self, cmd: str) -> bool:
        answer = self.get_json(f"/control?cmd={cmd}")
        return bool(isinstance(answer, Mapping) and answer.get("result"))

    def time_events(self) -> list[dict[str, Any]]:
        """``/time``: start and pause events with experiment and system time (phyphox 1.1.8+)."""
        answer = self.get_json("/time")
        return [e for e in answer[:64] if isinstance(e, Mapping)] \
            if isinstance(answer, list) else []

    def newest(self, layout: Layout) -> tuple[Status, float | None]:
        """The status and the newest sample time of either sensor [s] (``buf=``: last value)."""
        answer = self.get_json(f"/get?{layout.accel.t}=&{layout.gyro.t}=")
        status = _status(answer)
        times = [v for name in (layout.accel.t, layout.gyro.t)
                 for v in _values(answer, name)[-1:] if math.isfinite(v)]
        return status, (max(times) if times else None)

    def since(self, layout: Layout, accel_after: float, gyro_after: float,
              session: str | None = None) -> Batch:
        """Only the samples newer than the two thresholds (phone time [s]); nothing when the
        answer is from another ``session`` than the layout's (its buffers may differ)."""
        query = []
        for sensor, after in ((layout.accel, accel_after), (layout.gyro, gyro_after)):
            thr = repr(float(after))
            query += [f"{urllib.parse.quote(v)}={thr}%7C{urllib.parse.quote(sensor.t)}"
                      for v in sensor.values]
            query.append(f"{urllib.parse.quote(sensor.t)}={thr}")
        answer = self.get_json("/get?" + "&".join(query))
        status = _status(answer)
        if session is not None and status.session != session:
            empty = np.zeros(0)
            return Batch(empty, np.zeros((0, 3)), empty, np.zeros((0, 3)), status)
        at, av = _sensor(answer, layout.accel)
        gt, gv = _sensor(answer, layout.gyro)
        return Batch(at, av, gt, gv, status)


def _status(answer: Any) -> Status:
    status = answer.get("status") if isinstance(answer, Mapping) else None
    if not isinstance(status, Mapping):
        raise PhyphoxError("/get: the answer has no 'status' object")
    return Status(str(status.get("session", ""))[:64], bool(status.get("measuring")))


def _values(answer: Any, name: str) -> np.ndarray:
    buffers = answer.get("buffer") if isinstance(answer, Mapping) else None
    entry = buffers.get(name) if isinstance(buffers, Mapping) else None
    raw = entry.get("buffer") if isinstance(entry, Mapping) else None
    if not isinstance(raw, list):
        raise PhyphoxError(f"/get: no buffer {name!r} in the answer")
    # null (phyphox's non-finite) and anything that is not a number become NaN
    return np.array([v if isinstance(v, int | float) and not isinstance(v, bool) else math.nan
                     for v in raw], dtype=np.float64)


def _sensor(answer: Any, sensor: SensorBuffers) -> tuple[np.ndarray, np.ndarray]:
    cols = [_values(answer, name) for name in (*sensor.values, sensor.t)]
    n = min(c.size for c in cols)  # a buffer appended to while the answer was written
    t = cols[3][:n]
    v = np.stack([c[:n] for c in cols[:3]], axis=1) if n else np.zeros((0, 3))
    return t, v


@dataclass
class PollerState:
    """What the poller knows, for health and ``roller detect``."""

    layout: Layout | None = None
    session: str | None = None
    measuring: bool | None = None
    accel_after: float | None = None
    gyro_after: float | None = None
    last_answer_at: float | None = None
    last_data_at: float | None = None
    failures: int = 0
    sessions_seen: int = 0
    starts_sent: int = 0
    problem: str | None = None
    """Why no samples come (None while they do)."""
    counters: dict[str, int] = field(default_factory=dict)


class PhyphoxPoller:
    """One step of the remote-access state machine per :meth:`step` (one request at most)."""

    def __init__(self, client: PhyphoxClient, *, on_batch: Callable[[Batch, float], None],
                 on_new_session: Callable[[], None], now: Callable[[], float],
                 start_measuring: bool = True, reanchor_after_s: float = 1.5) -> None:
        self.client = client
        self.on_batch = on_batch
        self.on_new_session = on_new_session
        self.now = now
        self.start_measuring = start_measuring
        self.reanchor_after_s = reanchor_after_s
        self.state = PollerState()
        self._last_start_at = -math.inf
        self._log = RateLimitedLog(log, interval_s=60.0, burst=3)

    def step(self) -> None:
        """Make the next request; raises OSError/PhyphoxError when the phone does not answer
        as phyphox does (the caller counts it and backs off)."""
        s = self.state
        if s.layout is None:
            s.layout = self.client.config()
            log.info("%s", s.layout.describe())
            s.accel_after = s.gyro_after = None
            return
        if s.accel_after is None or s.gyro_after is None:
            self._anchor()
            return
        batch = self.client.since(s.layout, s.accel_after, s.gyro_after, s.session)
        arrived = self.now()
        s.last_answer_at = arrived
        if self._session_changed(batch.status):
            return
        if not self._measuring(batch.status):
            return
        if batch.accel_t.size:
            s.accel_after = float(np.nanmax(batch.accel_t))
        if batch.gyro_t.size:
            s.gyro_after = float(np.nanmax(batch.gyro_t))
        if batch.newest_t is not None:
            s.last_data_at = arrived
            s.problem = None
            self.on_batch(batch, arrived)
        elif s.last_data_at is not None and arrived - s.last_data_at > self.reanchor_after_s:
            # Measuring but nothing new: was the experiment cleared (its clock back at 0)?
            status, newest = self.client.newest(s.layout)
            if newest is not None and newest < min(s.accel_after, s.gyro_after) - 0.5:
                self._new_session(status, "the experiment's clock started again (cleared)")
            else:
                s.problem = (f"phyphox sends no new samples (measuring, nothing for "
                             f"{arrived - s.last_data_at:.1f} s): is the screen on?")

    def _anchor(self) -> None:
        s = self.state
        assert s.layout is not None
        status, newest = self.client.newest(s.layout)
        s.last_answer_at = self.now()
        if self._session_changed(status) or not self._measuring(status):
            return
        # A measurement that has just begun (we may have started it) is read from its start;
        # one that has run for a while from now on: the past is not live.
        start = newest if newest is not None and newest > FROM_START_S else -1.0
        s.accel_after = s.gyro_after = start
        s.last_data_at = self.now()

    def _session_changed(self, status: Status) -> bool:
        s = self.state
        if s.session is None:
            s.session = status.session
            return False
        if status.session == s.session:
            return False
        self._new_session(status, "another experiment was opened on the phone")
        return True

    def _new_session(self, status: Status, why: str) -> None:
        s = self.state
        log.info("phyphox session %s -> %s: %s; reading its layout again", s.session,
                 status.session, why)
        s.session = status.session
        s.sessions_seen += 1
        s.layout = None
        s.accel_after = s.gyro_after = None
        self.on_new_session()

    def _measuring(self, status: Status) -> bool:
        s = self.state
        was = s.measuring
        s.measuring = status.measuring
        if status.measuring:
            if was is False:
                # resumed: phyphox's experiment time stood still while paused; start afresh
                self.on_new_session()
            return True
        now = self.now()
        if self.start_measuring and now - self._last_start_at >= 5.0:
            self._last_start_at = now
            s.starts_sent += 1
            started = self.client.control("start")
            log.info("phyphox was not measuring: sent start (%s)",
                     "accepted" if started else "refused")
            s.problem = None if started else (
                "phyphox is not measuring and refused a remote start: press the play button "
                "in phyphox")
        elif not self.start_measuring:
            s.problem = "phyphox is not measuring: press the play button in phyphox"
        return False
