"""The live service: a short loop from the sensor to the sinks.

Each :meth:`Service.step`:

1. runs the commands queued since the last step (MQTT ``cmd/<verb>`` and the GPIO buttons)
   through one door: the :class:`~roller.contract.command_table.CommandTable` checks the verb
   and its payload, :class:`~roller.coaching.session_commands.SessionCommands` moves the
   session (which alone says what its state allows) and lets the coach catch up;
2. reads every sample the driver has and feeds the pipeline;
3. counts each pipeline event into the :class:`~roller.coaching.session.Session` (the first sign of
   someone rolling starts one) and hands it to every sink at once; then the session sees the
   live phase (rest, auto-start, active time, idle timeout: :meth:`Session.observe_phase`);
4. lets the coach follow the session and takes the summary of a coached session that ended;
5. checks the sensor's health (:class:`~roller.service.health.HealthMonitor`);
6. hands the step's :class:`~roller.service.sinks.Tick` to the sinks, in order: GPIO LED and buzzer,
   history, MQTT (events, live, session, coach, health), systemd (readiness, watchdog).

:meth:`Service.run` repeats it every :attr:`Service.period_s` until :meth:`Service.request_stop`
(SIGTERM); :meth:`Service.close` then shuts down in order, each resource in its own try block.
Everything comes in through the constructor, so tests build a Service around an emulated chip,
a ManualClock and a real broker and drive it step by step; :mod:`roller.service.wiring` is the
production composition root.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from firmware_bridge.clock import Clock, SystemClock
from roller.base.errors import RollerError
from roller.base.settings import setting
from roller.coaching.session import Session, SessionSettings
from roller.coaching.session_commands import SessionCommands
from roller.contract.command_table import (
    MAX_QUEUED_COMMANDS,
    CommandError,
    CommandInbox,
    CommandTable,
)
from roller.pipeline.events import Event, LiveState, TooFastAlert
from roller.service.health import HealthMonitor, SensorChange
from roller.service.pace import read_period_s
from roller.service.sinks import ControlsSink, HistorySink, MqttSink, Sink, SystemdSink, Tick
from roller.service.systemd import Notifier

if TYPE_CHECKING:
    from firmware_bridge.gpio import Controls
    from firmware_bridge.imu.base import ImuDriver
    from roller.coaching.coach import Coach, CoachState
    from roller.coaching.history import History
    from roller.coaching.records import SessionSummary as CoachSummary
    from roller.mqtt.publisher import Publisher
    from roller.pipeline import Pipeline

__all__ = ["MAX_QUEUED_COMMANDS", "CommandError", "Service", "ServiceSettings", "Session"]

log = logging.getLogger("roller.service")


@dataclass(frozen=True)
class ServiceSettings:
    """Config section ``[service]``: the main loop's pace and patience."""

    read_interval_s: float = setting(
        0.03, unit="s", minimum=0.001, maximum=1.0,
        doc="main loop period: how often the sensor is read (never slower than half the "
            "driver's max_read_interval_s)")
    health_interval_s: float = setting(
        10.0, unit="s", minimum=0.5, maximum=3600, doc="republish health at least this often")
    sensor_stale_s: float = setting(
        1.0, unit="s", minimum=0.05, maximum=60,
        doc="no samples for this long counts as a sensor fault")
    ready_timeout_s: float = setting(
        10.0, unit="s", minimum=0.0, maximum=600,
        doc="wait this long for the sensor and the broker before telling systemd READY with a "
            "degraded status")


class Service:
    """The running roller: see the module docstring. Call :meth:`run` or :meth:`step`."""

    def __init__(self, settings: ServiceSettings, session: SessionSettings, *, device_id: str,
                 driver: ImuDriver, pipeline: Pipeline,
                 publisher: Publisher, controls: Controls | None = None,
                 coach: Coach | None = None, history: History | None = None,
                 clock: Clock | None = None, notifier: Notifier | None = None,
                 calibration_path: Path | None = None, inbox: CommandInbox | None = None,
                 sinks: Sequence[Sink] | None = None) -> None:
        self.settings = settings
        self.driver, self.pipeline, self.publisher, self.coach = driver, pipeline, publisher, coach
        self.clock = clock or SystemClock()
        self.calibration_path = calibration_path
        """Where to save a confident calibration on shutdown (None: do not save)."""
        self.session = Session(session)
        if coach is not None:
            coach.follow(self.session)
        self.commands = CommandTable()
        self.inbox = inbox or CommandInbox()
        self.live: LiveState | None = None
        self.events_published = self.steps = 0
        self._stop = threading.Event()
        self._touched = self._closed = False
        started = self.clock.monotonic()
        self.health = HealthMonitor(driver, device_id=device_id, started_at=started,
                                    sensor_stale_s=self.settings.sensor_stale_s)
        self._controls = ControlsSink(controls)
        self._systemd = SystemdSink(notifier or Notifier(), publisher, started_at=started,
                                    ready_timeout_s=self.settings.ready_timeout_s)
        self.sinks: list[Sink] = list(sinks) if sinks is not None else [
            self._controls,
            HistorySink(history, device_id=device_id, report=publisher.publish_error),
            MqttSink(publisher, self.health, health_interval_s=self.settings.health_interval_s,
                     session_publish_interval_s=session.publish_interval_s,
                     coach_publish_interval_s=coach.settings.publish_interval_s
                     if coach is not None else 1.0),
            self._systemd]
        self.session_commands = SessionCommands(self.session, coach, self.clock, self.commands)
        publisher.on_command = self.submit_command

    # -- collaborators tests and the CLI reach -------------------------------------------------
    @property
    def controls(self) -> Controls | None:
        return self._controls.controls

    @controls.setter
    def controls(self, controls: Controls | None) -> None:
        self._controls.controls = controls

    @property
    def ready(self) -> bool:
        """True once READY=1 was sent (or would have been, outside systemd)."""
        return self._systemd.ready

    @property
    def commands_dropped(self) -> int:
        return self.inbox.dropped

    def submit_command(self, verb: str, payload: bytes = b"", source: str = "mqtt") -> None:
        """Queue a command for the next step (thread-safe: MQTT and GPIO threads call it)."""
        self.inbox.submit(verb, payload, source)

    # -- the loop ------------------------------------------------------------------------------
    @property
    def period_s(self) -> float:
        """Main loop period [s]: ``read_interval_s`` under the read-pace rule
        (:func:`roller.service.pace.read_period_s`: at most half the driver's
        ``max_read_interval_s``)."""
        return read_period_s(self.settings.read_interval_s,
                             self.driver.max_read_interval_s)

    def request_stop(self) -> None:
        """Ask :meth:`run` to return after the current step (signal-safe)."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Step every :attr:`period_s` until :meth:`request_stop`; then close."""
        self.publisher.start()
        try:
            while not self._stop.is_set():
                began = self.clock.monotonic()
                self.step()
                left = self.period_s - (self.clock.monotonic() - began)
                if left > 0 and not self._stop.is_set():
                    self.clock.sleep(left)
        finally:
            self.close()

    def step(self) -> list[Event]:
        """One pass of the loop (see the module docstring); returns the new events."""
        self.steps += 1
        self._touched = False
        version = self.session.version
        self.inbox.run(self.commands, self.publisher.publish_error,
                       lambda verb, source: log.info("command %s from %s", verb, source))
        now = self.clock.monotonic()
        events = self._read(now)
        for event in events:
            self._count(event, now)
        self.session.observe_phase(self.live, now)
        state = summary = None
        if self.coach is not None:  # the coach follows the session (and may end it: done)
            state = self.coach.update(events, self.live, now)
            summary = self.coach.pop_summary()
        self._sensor(self.health.check(now))
        tick = self._tick(now, events, state, summary,
                          changed=self.session.version != version)
        for sink in self.sinks:
            sink.on_step(tick)
        return events

    def _read(self, now: float) -> list[Event]:
        try:
            t, samples = self.driver.read()
        except (RollerError, OSError) as exc:  # the driver retries itself; this is past that
            self._sensor(self.health.fault(f"sensor read failed: {exc}"))
            return []
        if len(t) == 0:
            return []
        self.health.saw_samples(now)
        events = list(self.pipeline.update(t, samples))
        self.live = self.pipeline.live
        return events

    def _count(self, event: Event, now: float) -> None:
        # Any sign of someone on the roller starts a session ([session] auto_start; after an
        # end, once the roller has rested): the session decides, and the coach follows it.
        self.session.observe_event(event, now)
        self._touched |= not isinstance(event, TooFastAlert)
        for sink in self.sinks:
            sink.on_event(event, self.session)
        self.events_published += 1

    def _sensor(self, change: SensorChange | None) -> None:
        if change is not None:
            for sink in self.sinks:
                sink.on_sensor(change)

    def _tick(self, now: float, events: Sequence[Event], coach: CoachState | None = None,
              summary: CoachSummary | None = None, *, changed: bool = False) -> Tick:
        return Tick(now=now, events=events, live=self.live, session=self.session,
                    session_changed=changed,
                    session_touched=self._touched, coach=coach, summary=summary,
                    sensor_ok=self.health.sensor_ok is not False,
                    events_published=self.events_published)

    # -- shutdown ------------------------------------------------------------------------------
    def close(self) -> None:
        """Orderly shutdown: final events and session, the calibration, then each sink and the
        sensor, each in its own try block."""
        if self._closed:
            return
        self._closed = True
        now = self.clock.monotonic()
        try:
            for event in self.pipeline.finish():
                self._count(event, now)
        except Exception:
            log.exception("closing the pipeline failed")
        # The session under way ends here ("shutdown"), and the coach with it: its summary
        # goes to the history and the retained coach/session say the session ended.
        changed = self.session.live
        if changed:
            self.session.stop(now, reason="shutdown")
        state = summary = None
        if self.coach is not None:
            try:
                state = self.coach.sync(now)
                summary = self.coach.pop_summary()
            except Exception:
                log.exception("ending the coached session failed")
        try:
            self._save_calibration()
        except Exception:
            log.exception("saving the calibration failed")
        tick = self._tick(now, [], state, summary, changed=changed)
        for sink in [self._systemd, *[s for s in self.sinks if s is not self._systemd]]:
            try:
                sink.close(tick)
            except Exception:
                log.exception("closing the %s failed", type(sink).__name__)
        try:
            self.driver.close()
        except Exception:
            log.exception("closing the sensor failed")

    def _save_calibration(self) -> None:
        calibration = self.pipeline.calibration
        if self.calibration_path is not None and calibration.confident:
            calibration.save(self.calibration_path)
            log.info("saved the calibration to %s", self.calibration_path)
