"""The phone as the service sees it: a source with a chip driver's ``read()`` and ``health``.

The service reads a driver (:class:`firmware_bridge.imu.base.ImuDriver`): ``read()`` returns
every sample since the last call as ``(t (N,) [s] on the service's clock, samples (N, 6)
[m/s^2, rad/s])`` and never raises for a sensor fault; ``health`` (a
:class:`~firmware_bridge.imu.base.DriverHealth`) says whether it is connected and why not;
``chip``, ``address``, ``output_rate_hz`` and ``max_read_interval_s`` describe it. A
:class:`PhoneSource` is that, fed by a network thread instead of a FIFO:

* the phone app's batches go through a :class:`~roller.phone.stream_merge.StreamMerger` (two
  clocks -> the gyro's times, gaps kept) and a :class:`~roller.phone.phone_clock.PhoneClock`
  (phone time -> ours, drift tracked) into a bounded queue that ``read()`` empties;
* a phone that has not answered for ``unreachable_after_s`` makes ``health.connected`` False
  with the reason in ``health.last_error`` (the service then publishes ``degraded``); the first
  answer after that clears it. A phone that answers but sends nothing says why in
  ``last_error`` (not measuring, screen off), which the service's stale check publishes.

:class:`PhyphoxSource` polls phyphox's remote access from its own thread (one request in
flight); :class:`roller.phone.sensor_logger.SensorLoggerSource` receives pushes.
"""

from __future__ import annotations

import collections
import logging
import threading

import numpy as np

from firmware_bridge.clock import Clock, SystemClock
from firmware_bridge.imu.base import DriverHealth
from roller.base.untrusted import RateLimitedLog
from roller.phone.phone_clock import PhoneClock
from roller.phone.phyphox import (
    Batch,
    LayoutError,
    PhyphoxClient,
    PhyphoxError,
    PhyphoxPoller,
)
from roller.phone.settings import PhoneSettings
from roller.phone.stream_merge import StreamMerger

log = logging.getLogger("roller.phone")

MAX_QUEUED_SAMPLES = 20_000
"""Samples held for the service (40 s at 500 Hz): a service that stops reading loses the
oldest, counted in ``health.overflows`` and ``samples_lost_estimate``."""


class PhoneSource:
    """A phone app's stream with a chip driver's face (see the module docstring)."""

    address = 0
    max_read_interval_s = 0.0
    """No FIFO to overflow: the service reads at its own pace."""

    def __init__(self, chip: str, settings: PhoneSettings, *, clock: Clock | None = None,
                 where: str = "") -> None:
        self.chip = chip
        self.settings = settings
        self.clock = clock or SystemClock()
        self.where = where
        self.output_rate_hz = 100.0
        """Measured gyro rate [Hz] (100 until samples came)."""
        self.health = DriverHealth(connected=True)
        self.phone_clock = PhoneClock()
        self.merger = StreamMerger(max_accel_gap_s=settings.max_accel_gap_s)
        self.sessions = 0
        self._lock = threading.Lock()
        self._queue: collections.deque[tuple[np.ndarray, np.ndarray]] = collections.deque()
        self._queued = 0
        self._last_t = -np.inf
        self._started_at = self.clock.monotonic()
        self._last_answer_at: float | None = None
        self._problem: str | None = None
        self._failure: str | None = None
        self._closed = threading.Event()
        self._log = RateLimitedLog(log, interval_s=60.0, burst=3)

    # -- the driver's face ---------------------------------------------------------------------
    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Every sample since the last call, on the service's clock; never raises."""
        with self._lock:
            self._update_health(self.clock.monotonic())
            if not self._queue:
                return np.zeros(0), np.zeros((0, 6))
            parts = list(self._queue)
            self._queue.clear()
            self._queued = 0
        t = np.concatenate([p[0] for p in parts])
        s = np.concatenate([p[1] for p in parts])
        self.health.samples += t.size
        return t, s

    def close(self) -> None:
        self._closed.set()

    def describe(self) -> str:
        return f"{self.chip} {self.where}: about {self.output_rate_hz:.0f} Hz"

    # -- what the network side calls -----------------------------------------------------------
    def deliver(self, accel_t: np.ndarray, accel: np.ndarray, gyro_t: np.ndarray,
                gyro: np.ndarray, arrived_at: float) -> int:
        """A batch of phone samples (phone time [s]) that arrived at ``arrived_at`` (our clock
        [s]); returns how many merged samples it made ready."""
        with self._lock:
            self.merger.add_accel(accel_t, accel)
            self.merger.add_gyro(gyro_t, gyro)
            newest = [float(np.nanmax(a)) for a in (accel_t, gyro_t)
                      if np.size(a) and np.isfinite(a).any()]
            if newest:
                self.phone_clock.observe(max(newest), arrived_at)
            t, samples = self.merger.take()
            self._answered(arrived_at)
            if t.size == 0 or self.phone_clock.estimate_s is None:
                return 0
            if t.size > 2:
                self.output_rate_hz = round(1.0 / max(float(np.median(np.diff(t))), 1e-4), 1)
            ours = self.phone_clock.to_ours(t)
            keep = ours > np.maximum.accumulate(np.concatenate(([self._last_t], ours[:-1])))
            ours, samples = ours[keep], samples[keep]
            if ours.size == 0:
                return 0
            self._last_t = float(ours[-1])
            self._queue.append((ours, samples))
            self._queued += ours.size
            while self._queued > MAX_QUEUED_SAMPLES and len(self._queue) > 1:
                lost = self._queue.popleft()[0].size
                self._queued -= lost
                self.health.overflows += 1
                self.health.samples_lost_estimate += lost
            return int(ours.size)

    def new_session(self) -> None:
        """The phone's clock restarted (another experiment, a pause): map it afresh."""
        with self._lock:
            self.sessions += 1
            self.merger.reset()
            self.phone_clock.reset()

    def answered(self, at: float, problem: str | None = None) -> None:
        """The phone answered (with ``problem``: but sends no samples, and why)."""
        with self._lock:
            self._answered(at)
            self._problem = problem

    def failed(self, why: str, at: float) -> None:
        """A request failed or a push was refused (counted; unreachable after a while)."""
        with self._lock:
            self.health.retries += 1
            self._failure = why
            self._update_health(at)
        self._log(logging.WARNING, "%s: %s", self.chip, why)

    def _answered(self, at: float) -> None:
        self._last_answer_at = at
        self._failure = None
        self._update_health(at)

    def _update_health(self, now: float) -> None:
        h = self.health
        since = self._last_answer_at if self._last_answer_at is not None else self._started_at
        silent = now - since > self.settings.unreachable_after_s
        if silent:
            if h.connected:
                h.connected = False
                h.disconnects += 1
            h.last_error = self.unreachable_reason(now - since, self._failure)
        else:
            if not h.connected:
                log.info("%s: the phone answers again", self.chip)
            h.connected = True
            h.last_error = self._problem

    def unreachable_reason(self, silent_s: float, failure: str | None) -> str:
        """Why the phone counts as unreachable (the health reason)."""
        return (f"phone unreachable: no answer from {self.chip} {self.where} for "
                f"{silent_s:.1f} s{f' ({failure})' if failure else ''}")


class PhyphoxSource(PhoneSource):
    """Polls phyphox's remote access at ``settings.url`` from its own thread."""

    def __init__(self, settings: PhoneSettings, *, clock: Clock | None = None,
                 start: bool = True) -> None:
        self.client = PhyphoxClient(settings.url, timeout_s=settings.request_timeout_s)
        super().__init__("phyphox", settings, clock=clock, where=f"at {self.client.base_url}")
        self.poller = PhyphoxPoller(self.client, on_batch=self._on_batch,
                                    on_new_session=self.new_session, now=self.clock.monotonic,
                                    start_measuring=settings.start_measuring)
        self._thread = threading.Thread(target=self._run, name="phyphox-poller", daemon=True)
        if start:
            self._thread.start()

    def _on_batch(self, batch: Batch, arrived_at: float) -> None:
        self.deliver(batch.accel_t, batch.accel, batch.gyro_t, batch.gyro, arrived_at)

    def instructions(self) -> str:
        return (f"polling phyphox at {self.client.base_url} (open the roller's "
                "experiment, or 'Acceleration with g' + gyroscope, and turn on 'Allow remote "
                "access' in its menu)")

    def unreachable_reason(self, silent_s: float, failure: str | None) -> str:
        return (super().unreachable_reason(silent_s, failure)
                + "; is phyphox open with 'Allow remote access' on, on the same Wi-Fi, and "
                  "the phone's screen on?")

    def poll_once(self) -> bool:
        """One request; True if the phone answered."""
        try:
            self.poller.step()
        except LayoutError as exc:  # it answers, but its experiment will not do: say so
            self.answered(self.clock.monotonic(), str(exc))
            return False
        except (OSError, PhyphoxError) as exc:
            self.failed(str(exc) or type(exc).__name__, self.clock.monotonic())
            return False
        self.answered(self.clock.monotonic(), self.poller.state.problem)
        return True

    def _run(self) -> None:
        period = self.settings.poll_interval_s
        while not self._closed.is_set():
            began = self.clock.monotonic()
            ok = self.poll_once()
            wait = period - (self.clock.monotonic() - began) if ok else min(1.0, 10 * period)
            if wait > 0:
                self._closed.wait(wait)

    def close(self) -> None:
        super().close()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=self.settings.request_timeout_s + 1.0)

