"""Where a service step's results go: MQTT, the session history, the GPIO LED and buzzer, and
systemd. Each sink is small and follows :class:`Sink`; the service calls them in list order.

A step hands every sink the same :class:`Tick` (what happened in it); events also go out one by
one (:meth:`Sink.on_event`) as they come, and a change of the sensor's health once
(:meth:`Sink.on_sensor`). :meth:`Sink.close` sees the final state, then releases its resource;
one sink failing to close does not keep the others open.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from roller.base.errors import RollerError
from roller.contract.messages import event_payload, live_payload
from roller.pipeline.events import Event, LiveState, TooFastAlert
from roller.service.systemd import broker_status

if TYPE_CHECKING:
    from firmware_bridge.gpio import Controls
    from roller.coaching.coach import CoachState
    from roller.coaching.history import History
    from roller.coaching.records import SessionSummary as CoachSummary
    from roller.coaching.session import Session
    from roller.mqtt.publisher import Publisher
    from roller.service.health import HealthMonitor, SensorChange
    from roller.service.systemd import Notifier

log = logging.getLogger("roller.service")

ErrorReporter = Callable[..., None]
"""``report(code, message, **details)``: publishes on the ``error`` topic."""


@dataclass(frozen=True)
class Tick:
    """What one service step produced. Times on the service's monotonic clock [s]."""

    now: float
    events: Sequence[Event]
    live: LiveState | None
    session: Session
    session_changed: bool
    """Started, paused, resumed or ended in this step: publish it as soon as allowed."""
    session_touched: bool
    """Its counts changed (events): publish it within ``session_publish_interval_s``."""
    coach: CoachState | None
    """The coach's state after this step (None without a coach)."""
    summary: CoachSummary | None
    """A coached session that ended in this step."""
    sensor_ok: bool
    events_published: int


class Sink(Protocol):
    """Something that turns the loop's results into effects outside the process."""

    def on_event(self, event: Event, session: Session) -> None:
        """One pipeline event, counted into ``session`` already."""

    def on_sensor(self, change: SensorChange) -> None:
        """The sensor went faulty or recovered."""

    def on_step(self, tick: Tick) -> None:
        """The end of a step."""

    def close(self, tick: Tick) -> None:
        """Shutdown: show the final state (``tick``), then release what it holds."""


class ControlsSink:
    """The GPIO buzzer (a pulse on each too-fast alert) and status LED (the live phase, or a
    fault flicker). A failing pin is logged, never fatal."""

    def __init__(self, controls: Controls | None) -> None:
        self.controls = controls
        self._led: str | None = None

    def on_event(self, event: Event, session: Session) -> None:
        if isinstance(event, TooFastAlert) and self.controls is not None:
            try:
                self.controls.pulse_too_fast()
            except Exception as exc:
                log.warning("buzzer failed: %s", exc)

    def on_sensor(self, change: SensorChange) -> None:
        """Sensor faults are not this sink's business (the MQTT and LED sinks report them)."""

    def on_step(self, tick: Tick) -> None:
        status = "fault" if not tick.sensor_ok else (
            tick.live.phase if tick.live is not None else "idle")
        if self.controls is None or status == self._led:
            return
        try:
            self.controls.show_status(status)  # type: ignore[arg-type]
            self._led = status
        except Exception as exc:
            log.warning("status LED failed: %s", exc)

    def close(self, tick: Tick) -> None:
        if self.controls is not None:
            self.controls.close()


class HistorySink:
    """Stores each finished coached session in the history (``None``: history disabled),
    however it ended: routine done, stop, pain, idle timeout -- and the service's shutdown
    (Ctrl-C, SIGTERM), whose summary comes in the closing tick."""

    def __init__(self, history: History | None, *, device_id: str,
                 report: ErrorReporter) -> None:
        self.history = history
        self.device_id = device_id
        self.report = report

    def on_event(self, event: Event, session: Session) -> None:
        """Events reach the history through the coach's summary, not one by one."""

    def on_sensor(self, change: SensorChange) -> None:
        """Sensor faults are not this sink's business (the MQTT and LED sinks report them)."""

    def on_step(self, tick: Tick) -> None:
        if tick.summary is None or self.history is None:
            return
        try:
            self.history.record(tick.summary, device_id=self.device_id)
        except (RollerError, OSError) as exc:
            self.report("history_failed", f"could not store the session in the history: {exc}")

    def close(self, tick: Tick) -> None:
        if self.history is None:
            return
        try:
            self.on_step(tick)  # the session the shutdown ended
        finally:
            self.history.close()


class MqttSink:
    """Publishes events at once; ``live`` on a fixed grid; ``coach`` when it changes (and every
    ``coach_publish_interval_s``); ``session`` when it changes (at most every
    ``session_publish_interval_s``, at once when a coached session ends); ``health`` when it
    changes (and every ``health_interval_s``); then pumps the publisher."""

    def __init__(self, publisher: Publisher, health: HealthMonitor, *,
                 session_publish_interval_s: float, health_interval_s: float,
                 coach_publish_interval_s: float = 1.0) -> None:
        self.publisher = publisher
        self.health = health
        self.session_publish_interval_s = session_publish_interval_s
        self.health_interval_s = health_interval_s
        self.coach_publish_interval_s = coach_publish_interval_s
        self._next_live = -math.inf
        self._session_dirty = False
        self._last_session_pub = -math.inf
        self._coach_key: tuple[Any, ...] | None = None
        self._last_coach_pub = -math.inf
        self._last_health = -math.inf
        self._last_health_key: tuple[Any, ...] | None = None
        self._file_replacements = publisher.outbox.file_replacements

    def on_event(self, event: Event, session: Session) -> None:
        running = session.state in ("running", "paused")
        body = event_payload(event, session_id=session.id if running else None)
        self.publisher.publish_event(event.kind, body)

    def on_sensor(self, change: SensorChange) -> None:
        if not change.ok:
            self.publisher.publish_error("sensor_fault", change.message)

    def on_step(self, tick: Tick) -> None:
        pub, now = self.publisher, tick.now
        if tick.session_changed:
            self._session_dirty = True
            self._last_session_pub = -math.inf
        elif tick.session_touched:
            self._session_dirty = True
        # The session first: a display that reads the coach's new state (done, paused...)
        # has already seen the session state it follows.
        if tick.summary is not None:  # the routine ended the session: say so at once
            self._last_session_pub = -math.inf
            self._session_dirty = True
        if self._session_dirty and now - self._last_session_pub >= \
                self.session_publish_interval_s:
            pub.publish_retained("session", tick.session.to_dict(now))
            self._session_dirty = False
            self._last_session_pub = now
        if tick.coach is not None:
            self._publish_coach(tick.coach, now)
        if tick.live is not None and now >= self._next_live:
            pub.publish_live(live_payload(tick.live))
            # On a fixed grid, so the rate stays 1 / live_interval_s whatever the loop period;
            # after a stall, restart the grid instead of catching up with a burst.
            interval = pub.settings.live_interval_s
            self._next_live += interval
            if self._next_live <= now:
                self._next_live = now + interval
        box = pub.outbox
        if box.file_replacements != self._file_replacements:  # deleted or replaced: say so
            self._file_replacements = box.file_replacements
            pub.publish_error("outbox_replaced", box.file_problem or "", epoch=box.epoch,
                              waiting=len(box))
        key = (*self.health.key(tick.live, box.dropped), pub.degraded, box.file_replacements)
        due = key != self._last_health_key or now - self._last_health >= self.health_interval_s
        if due and pub.connected:
            mqtt = pub.stats()
            if box.file_problem is not None:  # present once it happened
                mqtt["outbox_file_problem"] = box.file_problem
            pub.publish_health(self.health.payload(now, live=tick.live, mqtt=mqtt,
                                                   events_published=tick.events_published,
                                                   instance=pub.instance))
            self._last_health = now
            self._last_health_key = key
        pub.pump()

    def _publish_coach(self, state: CoachState, now: float) -> None:
        # The key is read off the state object: building the full dict every step is costly.
        key = (state.state, state.step_index, state.prompt, state.cue, state.breath,
               state.summary is not None)
        if key != self._coach_key or now - self._last_coach_pub >= \
                self.coach_publish_interval_s:
            self.publisher.publish_retained("coach", state.to_dict())
            self._coach_key = key
            self._last_coach_pub = now

    def close(self, tick: Tick) -> None:
        # The last retained session and coach say how the session ended (``shutdown``), so a
        # display shows the offline roller's summary, not a live-looking prompt.
        try:
            if tick.session.state != "idle":
                self.publisher.publish_retained("session", tick.session.to_dict(tick.now))
        except Exception:
            log.exception("publishing the final session failed")
        try:
            if tick.coach is not None:
                self.publisher.publish_retained("coach", tick.coach.to_dict())
        except Exception:
            log.exception("publishing the final coach state failed")
        for name, closer in (("publisher", self.publisher.close),
                             ("outbox", self.publisher.outbox.close)):
            try:
                closer()
            except Exception:
                log.exception("closing the %s failed", name)


class SystemdSink:
    """READY=1 once the sensor answers and the broker is reachable (or, after
    ``ready_timeout_s``, a degraded READY saying what is missing); STATUS= on every change of
    the broker link or the sensor; the watchdog ping from the main loop; STOPPING=1."""

    def __init__(self, notifier: Notifier, publisher: Publisher, *, ready_timeout_s: float,
                 started_at: float) -> None:
        self.notifier = notifier
        self.publisher = publisher
        self.ready_timeout_s = ready_timeout_s
        self.started_at = started_at
        self.ready = False
        self._broker_up = ""  # the last broker STATUS= text
        self._last_watchdog = -math.inf
        self._sensor_fault: str | None = None  # why the sensor is faulty, for a degraded READY

    def on_event(self, event: Event, session: Session) -> None:
        """Events reach the history through the coach's summary, not one by one."""

    def on_sensor(self, change: SensorChange) -> None:
        self._sensor_fault = None if change.ok else change.message
        if change.ok:
            log.info("sensor recovered")
            self.notifier.status("running: sensor recovered")
        else:
            self.notifier.status(f"degraded: {change.message}")

    def on_step(self, tick: Tick) -> None:
        pub, now = self.publisher, tick.now
        if not self.ready:
            sensor_answered = tick.sensor_ok and tick.live is not None
            if sensor_answered and pub.connected:
                self.notifier.ready("running")
                self.ready = True
            elif now - self.started_at >= self.ready_timeout_s:
                why = []
                if not sensor_answered:
                    why.append(self._sensor_fault or "no samples from the sensor")
                if not pub.connected:
                    why.append(broker_status(pub).removeprefix("degraded: "))
                self.notifier.ready("degraded: " + "; ".join(why))
                self.ready = True
            self._broker_up = broker_status(pub)
        elif broker_status(pub) != self._broker_up:  # `systemctl status` tells the story
            self._broker_up = broker_status(pub)
            self.notifier.status(self._broker_up)
        interval = self.notifier.watchdog_interval_s
        if interval is not None and now - self._last_watchdog >= interval:
            self.notifier.watchdog()
            self._last_watchdog = now

    def close(self, tick: Tick) -> None:
        self.notifier.stopping()
