"""The live service: sensor -> pipeline -> coach -> publisher, one step at a time.

:class:`Service` owns the main loop of ``roller run``. Each :meth:`Service.step`:

1. runs the commands queued since the last step (from MQTT ``cmd/<verb>`` and the GPIO
   buttons, both through the one :class:`CommandTable`);
2. reads every sample the driver has (``driver.read()``) and feeds the pipeline;
3. publishes each pipeline event at once (QoS 1, through the outbox), pulses the buzzer on a
   :class:`~roller.events.TooFastAlert`, and counts the event into the session;
4. lets the coach follow (``self.coach``, see :meth:`Service._update_coach`);
5. publishes ``live`` every ``mqtt.live_interval_s``, ``health`` when it changes (or every
   ``health_interval_s``), the ``session`` summary when it changes, and sets the status LED;
6. pumps the publisher (acknowledgements to the outbox, waiting messages out) and pings the
   systemd watchdog.

:meth:`Service.run` repeats it every ``read_interval_s`` (faster than the driver's
``max_read_interval_s``) until :meth:`Service.request_stop` (SIGTERM), then :meth:`Service.close`
shuts down in order, each resource in its own try block.

Everything comes in through the constructor (driver, pipeline, publisher, controls, clock,
notifier), so tests build a Service around an emulated chip, a ManualClock and a real broker,
and drive it step by step. :func:`build_service` is the production loader.

Commands and the coach: the base table has ``start``, ``pause``, ``resume``, ``next``, ``stop``
and ``start_pause`` (the single GPIO button). They change the service's session and are passed on
to the coach when there is one. The coach's own verbs (``pain``, ...) are added with
``service.commands.add(verb, handler, payload=...)``; see :class:`CommandTable`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import queue
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firmware_bridge.clock import Clock, SystemClock
from roller.errors import ConfigError, RollerError
from roller.events import Event, Hold, HoldStarted, LiveState, Stroke, TooFast, TooFastAlert
from roller.mqtt_contract import event_payload, live_payload, session_payload
from roller.settings import from_mapping, setting
from roller.systemd import Notifier

if TYPE_CHECKING:
    from roller.config import RollerConfig
    from roller.publisher import Publisher

log = logging.getLogger("roller.service")

MAX_QUEUED_COMMANDS = 256
"""Commands waiting for the next step, at most (a flooding client cannot exhaust memory)."""



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
    session_publish_interval_s: float = setting(
        5.0, unit="s", minimum=0.5, maximum=600,
        doc="republish the running session summary at most this often")
    session_idle_timeout_s: float = setting(
        600.0, unit="s", minimum=10, maximum=86400,
        doc="a running session with no stroke or hold for this long is finished")
    auto_start_session: bool = setting(
        True, doc="start a session on the first stroke or hold without a start command (after "
                  "a session ended: once the roller has rested [coach] restart_idle_s)")


class CommandError(RollerError, ValueError):
    """A command was refused: unknown verb, malformed payload, or not possible now.

    ``code`` is the machine-readable kind (``unknown_command``, ``bad_payload``,
    ``not_possible``); the message says what was wrong and what was expected.
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        self.code = code
        self.details = details
        super().__init__(message)


@dataclass(frozen=True)
class Command:
    """One verb: its handler and the payload it accepts.

    ``payload``: None -- no payload (empty or ``{}``); a settings dataclass -- the JSON object is
    validated with :func:`roller.settings.from_mapping` and the handler gets the instance;
    ``dict`` -- the handler gets the JSON object as is and validates it itself.
    """

    verb: str
    handler: Callable[[Any], None]
    payload: type | None = None
    doc: str = ""


class CommandTable:
    """verb -> :class:`Command`, shared by MQTT (``cmd/<verb>``) and the GPIO buttons."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(self, verb: str, handler: Callable[[Any], None], *, payload: type | None = None,
            doc: str = "") -> None:
        """Register (or replace) ``verb``."""
        self._commands[verb] = Command(verb, handler, payload, doc)

    def __contains__(self, verb: str) -> bool:
        return verb in self._commands

    @property
    def verbs(self) -> tuple[str, ...]:
        return tuple(sorted(self._commands))

    def describe(self) -> dict[str, str]:
        return {v: c.doc for v, c in sorted(self._commands.items())}

    def parse(self, verb: str, raw: bytes) -> tuple[Command, Any]:
        """Check ``verb`` and decode ``raw`` for it; raises CommandError, changes nothing."""
        command = self._commands.get(verb)
        if command is None:
            raise CommandError("unknown_command",
                               f"unknown command {verb!r}: expected one of {list(self.verbs)}",
                               expected=list(self.verbs))
        data = decode_payload(verb, raw)
        if command.payload is None:
            if data:
                raise CommandError("bad_payload", f"cmd/{verb} takes no payload: expected "
                                   f"nothing or {{}}, got {_short(data)}", expected="{}")
            return command, None
        if command.payload is dict:
            return command, data
        try:
            return command, from_mapping(command.payload, data, where=f"cmd/{verb}")
        except ConfigError as exc:
            raise CommandError("bad_payload", str(exc), key=exc.key, expected=exc.expected,
                               actual=_short(exc.actual)) from None

    def dispatch(self, verb: str, raw: bytes) -> None:
        """Parse and run one command; raises CommandError when refused."""
        command, payload = self.parse(verb, raw)
        try:
            command.handler(payload)
        except CommandError:
            raise
        except ConfigError as exc:  # the handler validated the payload with from_mapping
            raise CommandError("bad_payload", str(exc), key=exc.key, expected=exc.expected,
                               actual=_short(exc.actual)) from None
        except (RollerError, ValueError) as exc:  # the handler refused: nothing changed
            raise CommandError("not_possible", f"cmd/{verb}: {exc}") from None


def decode_payload(verb: str, raw: bytes) -> dict[str, Any]:
    """An MQTT command payload: empty, or a UTF-8 JSON object."""
    text = raw.strip()
    if not text:
        return {}
    try:
        data = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CommandError("bad_payload", f"cmd/{verb}: expected nothing or a JSON object, got "
                           f"{_short(raw)} ({exc.__class__.__name__})",
                           expected="nothing or a JSON object") from None
    if not isinstance(data, dict):
        raise CommandError("bad_payload", f"cmd/{verb}: expected nothing or a JSON object, got "
                           f"{_short(data)}", expected="nothing or a JSON object")
    return data


def _short(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


class Session:
    """The service's own record of a session: counts and times from the pipeline's events.

    States: ``idle`` (none yet), ``running``, ``paused``, ``finished``. Times ``*_s`` are on
    the service clock; ``started_unix_s`` labels it with the wall clock.
    """

    def __init__(self) -> None:
        self.state = "idle"
        self.id: str | None = None
        self.started_unix_s: float | None = None
        self.ended_unix_s: float | None = None
        self.end_reason: str | None = None
        self.routine: dict[str, Any] | None = None
        """The coach's summary once a coached session ends (kept in every later publication)."""
        self.rested = False
        """After the end: has the roller stayed still long enough that rolling again is a new
        session, not the same person carrying on after Stop?"""
        self._idle_since: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.strokes = 0
        self.distance_m = 0.0
        self.holds = 0
        self.hold_time_s = 0.0
        self.too_fast_count = 0
        self.peak_speed_m_s = 0.0
        self._speed_sum = 0.0
        self.active_s = 0.0
        self._running_since: float | None = None
        self.last_activity: float | None = None

    def start(self, now: float) -> None:
        if self.state in ("running", "paused"):
            raise CommandError("not_possible", f"a session is already {self.state}")
        self._reset()
        self.state = "running"
        self.id = time.strftime("%Y%m%dT%H%M%S") + "-" + uuid.uuid4().hex[:6]
        self.started_unix_s = round(time.time(), 3)
        self.ended_unix_s = None
        self.end_reason = None
        self.routine = None
        self._running_since = now
        self.last_activity = now

    def pause(self, now: float) -> None:
        if self.state != "running":
            raise CommandError("not_possible", f"cannot pause: the session is {self.state}")
        self._bank(now)
        self.state = "paused"

    def resume(self, now: float) -> None:
        if self.state != "paused":
            raise CommandError("not_possible", f"cannot resume: the session is {self.state}")
        self.state = "running"
        self._running_since = now
        self.last_activity = now

    def stop(self, now: float, reason: str = "stopped") -> None:
        if self.state not in ("running", "paused"):
            raise CommandError("not_possible", f"cannot stop: the session is {self.state}")
        self._bank(now)
        self.state = "finished"
        self.end_reason = reason
        self.ended_unix_s = round(time.time(), 3)
        self.rested = reason == "idle"  # ended by a long stillness: that was the rest
        self._idle_since = None

    def watch_rest(self, phase: str, now: float, restart_idle_s: float) -> None:
        """After the end, note a stillness of ``restart_idle_s`` [s] (the coach's rule too)."""
        if self.state != "finished" or self.rested:
            return
        if phase != "idle":
            self._idle_since = None
            return
        if self._idle_since is None:
            self._idle_since = now
        self.rested = now - self._idle_since >= restart_idle_s

    @property
    def may_auto_start(self) -> bool:
        """Rolling starts a session: the first one, or a new one after a rest."""
        return self.state == "idle" or (self.state == "finished" and self.rested)

    def _bank(self, now: float) -> None:
        if self.state == "running" and self._running_since is not None:
            self.active_s += max(0.0, now - self._running_since)
        self._running_since = None

    def account(self, event: Event, now: float) -> None:
        """Count a pipeline event into a running session."""
        if self.state != "running":
            return
        if isinstance(event, Stroke):
            self.strokes += 1
            self.distance_m += event.distance_m
            self._speed_sum += event.mean_speed_m_s
            self.peak_speed_m_s = max(self.peak_speed_m_s, event.peak_speed_m_s)
            self.last_activity = now
        elif isinstance(event, Hold):
            self.holds += 1
            self.hold_time_s += event.duration_s
            self.last_activity = now
        elif isinstance(event, HoldStarted):
            self.last_activity = now
        elif isinstance(event, TooFast):
            self.too_fast_count += 1

    def to_dict(self, now: float) -> dict[str, Any]:
        """The ``session`` payload (:func:`roller.mqtt_contract.session_payload`)."""
        active = self.active_s
        if self.state == "running" and self._running_since is not None:
            active += max(0.0, now - self._running_since)
        return session_payload(
            session_id=self.id, state=self.state, end_reason=self.end_reason,
            started_unix_s=self.started_unix_s, ended_unix_s=self.ended_unix_s,
            active_s=active, strokes=self.strokes, distance_m=self.distance_m,
            holds=self.holds, hold_time_s=self.hold_time_s, too_fast_count=self.too_fast_count,
            mean_stroke_speed_m_s=self._speed_sum / self.strokes if self.strokes else None,
            peak_speed_m_s=self.peak_speed_m_s, routine=self.routine)


def _phase_status(live: LiveState | None) -> str:
    return live.phase if live is not None else "idle"


class Service:
    """The running roller: see the module docstring. Call :meth:`run` or :meth:`step`."""

    def __init__(self, config: RollerConfig, *, driver: Any, pipeline: Any,
                 publisher: Publisher, controls: Any = None, coach: Any = None,
                 history: Any = None, clock: Clock | None = None,
                 notifier: Notifier | None = None, calibration_path: Path | None = None
                 ) -> None:
        self.config = config
        self.settings: ServiceSettings = config.service
        self.driver = driver
        self.pipeline = pipeline
        self.publisher = publisher
        self.controls = controls
        self.coach = coach
        """The coach (``roller.coach.Coach``) or None: :meth:`_update_coach` drives it."""
        self.history = history
        """Where finished coached sessions are recorded (``roller.history.History``) or None."""
        self.clock = clock or SystemClock()
        self.notifier = notifier or Notifier()
        self.calibration_path = calibration_path
        """Where to save the pipeline's calibration on shutdown when it is confident (None:
        do not save, e.g. with a simulated sensor)."""
        self.session = Session()
        self.commands = CommandTable()
        self._inbox: queue.Queue[tuple[str, bytes, str]] = queue.Queue(maxsize=MAX_QUEUED_COMMANDS)
        self.commands_dropped = 0
        self._reported_commands_dropped = 0
        self._stop = threading.Event()
        self.live: LiveState | None = None
        self.events_published = 0
        self.steps = 0
        self._started_at = self.clock.monotonic()
        self._next_live = -math.inf
        self._last_health = -math.inf
        self._last_health_key: tuple[Any, ...] | None = None
        self._last_session_pub = -math.inf
        self._session_dirty = False
        self._last_sample_at = self._started_at
        self._sensor_ok: bool | None = None
        self._led: str | None = None
        self._ready = False
        self._broker_up = False
        self._last_watchdog = -math.inf
        self._coach_key: Any = None
        self._last_coach_pub = -math.inf
        self._closed = False

        self.commands.add("start", self._cmd_start, payload=dict,
                          doc="start a session; optional {\"step\": id} starts the coach's "
                              "routine at that step")
        self.commands.add("pause", self._cmd_pause, doc="pause the running session")
        self.commands.add("resume", self._cmd_resume, doc="resume a paused session")
        self.commands.add("next", self._cmd_next, doc="skip to the coach's next step")
        self.commands.add("stop", self._cmd_stop, doc="finish the session")
        self.commands.add("start_pause", self._cmd_start_pause,
                          doc="one button: start, pause or resume, whichever fits")
        self.commands.add("pain", self._cmd_pain,
                          doc="pain: end the session at once; the coach tells the person to "
                              "stop, breathe, and see a health professional if it persists")
        publisher.on_command = self.submit_command

    # -- commands ------------------------------------------------------------------------------
    def submit_command(self, verb: str, payload: bytes = b"", source: str = "mqtt") -> None:
        """Queue a command for the next step (thread-safe: MQTT and GPIO threads call it).
        A flood beyond :data:`MAX_QUEUED_COMMANDS` is dropped, counted and reported."""
        try:
            self._inbox.put_nowait((verb, payload, source))
        except queue.Full:
            self.commands_dropped += 1

    def _run_commands(self) -> None:
        if self.commands_dropped > self._reported_commands_dropped:
            self.publisher.publish_error(
                "too_many_commands", f"{self.commands_dropped - self._reported_commands_dropped}"
                f" command(s) dropped: more than {MAX_QUEUED_COMMANDS} arrived between two "
                "steps", dropped_total=self.commands_dropped)
            self._reported_commands_dropped = self.commands_dropped
        while True:
            try:
                verb, raw, source = self._inbox.get_nowait()
            except queue.Empty:
                return
            try:
                self.commands.dispatch(verb, raw)
                log.info("command %s from %s", verb, source)
            except CommandError as exc:
                self.publisher.publish_error(exc.code, str(exc), command=verb, source=source,
                                             **exc.details)

    def _to_coach(self, verb: str, payload: Mapping[str, Any] | None = None) -> None:
        if self.coach is not None:
            self.coach.command(verb, payload)

    def _cmd_start(self, payload: Any) -> None:
        now = self.clock.monotonic()
        if self.session.state in ("running", "paused"):
            raise CommandError("not_possible", f"a session is already {self.session.state}")
        if payload and self.coach is None:
            raise CommandError("bad_payload", f"cmd/start takes no payload without a coach, got "
                               f"{_short(payload)}", expected="{}")
        self._to_coach("start", payload or None)
        self.session.start(now)
        self._session_changed()

    def _cmd_pause(self, payload: Any) -> None:
        if self.session.state != "running":
            raise CommandError("not_possible", f"cannot pause: the session is "
                               f"{self.session.state}")
        self._to_coach("pause", payload)
        self.session.pause(self.clock.monotonic())
        self._session_changed()

    def _cmd_resume(self, payload: Any) -> None:
        if self.session.state != "paused":
            raise CommandError("not_possible", f"cannot resume: the session is "
                               f"{self.session.state}")
        self._to_coach("resume", payload)
        self.session.resume(self.clock.monotonic())
        self._session_changed()

    def _cmd_next(self, payload: Any) -> None:
        if self.coach is None:
            raise CommandError("not_possible", "cmd/next needs a coach with a routine; none "
                               "is running")
        self._to_coach("next", payload)

    def _cmd_stop(self, payload: Any) -> None:
        if self.session.state not in ("running", "paused"):
            raise CommandError("not_possible", f"cannot stop: the session is "
                               f"{self.session.state}")
        self._to_coach("stop", payload)
        self.session.stop(self.clock.monotonic())
        self._session_changed()

    def _cmd_pain(self, payload: Any) -> None:
        # Always possible, with or without a running session: safety first.
        self._to_coach("pain", payload)
        if self.session.state in ("running", "paused"):
            self.session.stop(self.clock.monotonic(), reason="pain")
            self._session_changed()

    def _cmd_start_pause(self, payload: Any) -> None:
        verb = {"running": "pause", "paused": "resume"}.get(self.session.state, "start")
        self.commands.dispatch(verb, b"")

    # -- the loop ------------------------------------------------------------------------------
    @property
    def period_s(self) -> float:
        """Main loop period [s]: read_interval_s, but at most half max_read_interval_s."""
        limit = getattr(self.driver, "max_read_interval_s", None)
        period = self.settings.read_interval_s
        if limit:
            period = min(period, limit / 2)
        return period

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
        self._run_commands()
        now = self.clock.monotonic()
        events = self._read_and_analyse(now)
        self.session.watch_rest(self.live.phase if self.live is not None else "idle", now,
                                self.config.coach.restart_idle_s)
        for event in events:
            self._publish_event(event, now)
        self._update_coach(events, now)
        self._check_session_idle(now)
        self._publish_state(now)
        self.publisher.pump()
        self._systemd(now)
        return events

    def _read_and_analyse(self, now: float) -> list[Event]:
        try:
            t, samples = self.driver.read()
        except (RollerError, OSError) as exc:  # the driver retries itself; this is past that
            self._sensor_fault(now, f"sensor read failed: {exc}")
            return []
        if len(t) == 0:
            return []
        self._last_sample_at = now
        events = list(self.pipeline.update(t, samples))
        self.live = self.pipeline.live
        return events

    def _publish_event(self, event: Event, now: float) -> None:
        if isinstance(event, TooFastAlert) and self.controls is not None:
            try:  # the buzzer first: it needs no disk write and no network
                self.controls.pulse_too_fast()
            except Exception as exc:
                log.warning("buzzer failed: %s", exc)
        # Any sign of someone on the roller starts a session: a too-fast alert comes mid-stroke,
        # before that stroke is known, and belongs to the session as much as the stroke does.
        # After Stop, a pain stop or the end of the routine, only once the roller has rested
        # ([coach] restart_idle_s, the coach's own rule), so the two never disagree.
        if isinstance(event, (Stroke, HoldStarted, TooFastAlert)) and \
                self.settings.auto_start_session and self.session.may_auto_start:
            self.session.start(now)
            self._session_changed()
        self.session.account(event, now)
        if not isinstance(event, TooFastAlert):
            self._session_dirty = True
        body = event_payload(event, session_id=self.session.id
                             if self.session.state in ("running", "paused") else None)
        self.publisher.publish_event(event.kind, body)
        self.events_published += 1

    def _update_coach(self, events: list[Event], now: float) -> None:
        """Drive the coach (if any) and publish its state retained on ``coach``.

        Published when the step, prompt, cue or breath changes, and at least every
        ``coach.settings.publish_interval_s`` (progress moves smoothly in between). A finished
        coached session's summary goes to the history (if any) and onto ``session``.
        """
        if self.coach is None:
            return
        state = self.coach.update(events, self.live, now)
        # The key is read off the state object: building the full dict every step is costly.
        key = (*(getattr(state, k, None) for k in ("state", "step_index", "prompt", "cue",
                                                     "breath")),
               getattr(state, "summary", None) is not None)
        interval = getattr(getattr(self.coach, "settings", None), "publish_interval_s", 1.0)
        if key != self._coach_key or now - self._last_coach_pub >= interval:
            body = state.to_dict() if hasattr(state, "to_dict") else dataclasses.asdict(state)
            self.publisher.publish_retained("coach", body)
            self._coach_key = key
            self._last_coach_pub = now
        summary = self.coach.pop_summary() if hasattr(self.coach, "pop_summary") else None
        if summary is not None:
            if self.session.state in ("running", "paused"):  # the routine ended the session
                self.session.stop(now, reason=summary.end_reason)
            if self.history is not None:
                try:
                    self.history.record(summary, device_id=self.config.device_id)
                except (RollerError, OSError) as exc:
                    self.publisher.publish_error("history_failed", f"could not store the "
                                                 f"session in the history: {exc}")
            self.session.routine = summary.to_dict()
            self.publisher.publish_retained("session", self.session.to_dict(now))

    def _check_session_idle(self, now: float) -> None:
        s = self.session
        if s.state == "running" and s.last_activity is not None and \
                now - s.last_activity >= self.settings.session_idle_timeout_s:
            s.stop(now, reason="idle")
            self._session_changed()

    def _session_changed(self) -> None:
        self._session_dirty = True
        self._last_session_pub = -math.inf

    def _publish_state(self, now: float) -> None:
        pub = self.publisher
        if self.live is not None and now >= self._next_live:
            pub.publish_live(live_payload(self.live))
            # On a fixed grid, so the rate stays 1 / live_interval_s whatever the loop period;
            # after a stall, restart the grid instead of catching up with a burst.
            interval = pub.settings.live_interval_s
            self._next_live += interval
            if self._next_live <= now:
                self._next_live = now + interval
        if self._session_dirty and now - self._last_session_pub >= \
                self.settings.session_publish_interval_s:
            pub.publish_retained("session", self.session.to_dict(now))
            self._session_dirty = False
            self._last_session_pub = now
        sensor_ok = self._check_sensor(now)
        self._set_led("fault" if not sensor_ok else _phase_status(self.live))
        key = self._health_key()
        due = key != self._last_health_key or \
            now - self._last_health >= self.settings.health_interval_s
        if due and pub.connected:
            pub.publish_health(self.health(now))
            self._last_health = now
            self._last_health_key = key

    def _health_key(self) -> tuple[Any, ...]:
        """What makes ``health`` worth republishing at once when it changes (cheap to get)."""
        h = getattr(self.driver, "health", None)
        return (self._sensor_ok, getattr(h, "connected", None), getattr(h, "last_error", None),
                getattr(h, "reinits", None), self.publisher.outbox.dropped,
                self.live.calibrated if self.live is not None else None)

    def _check_sensor(self, now: float) -> bool:
        health = getattr(self.driver, "health", None)
        connected = bool(getattr(health, "connected", True))
        stale = now - self._last_sample_at > self.settings.sensor_stale_s
        ok = connected and not stale
        if ok != self._sensor_ok:
            if not ok:
                why = getattr(health, "last_error", None) or (
                    f"no samples for {now - self._last_sample_at:.1f} s" if stale
                    else "sensor disconnected")
                self._sensor_fault(now, f"sensor fault: {why}")
            elif self._sensor_ok is False:
                log.info("sensor recovered")
                self.notifier.status("running: sensor recovered")
            self._sensor_ok = ok
        return ok

    def _sensor_fault(self, now: float, message: str) -> None:
        if self._sensor_ok is False:
            return
        self._sensor_ok = False
        self.publisher.publish_error("sensor_fault", message)
        self.notifier.status(f"degraded: {message}")

    def _set_led(self, status: str) -> None:
        if self.controls is None or status == self._led:
            return
        try:
            self.controls.show_status(status)
            self._led = status
        except Exception as exc:
            log.warning("status LED failed: %s", exc)

    def health(self, now: float | None = None) -> dict[str, Any]:
        """The ``health`` payload: sensor, delivery and loop figures."""
        now = self.clock.monotonic() if now is None else now
        h = getattr(self.driver, "health", None)
        sensor: dict[str, Any] = {"chip": getattr(self.driver, "chip", None),
                                  "output_rate_hz": getattr(self.driver, "output_rate_hz", None)}
        if h is not None:
            sensor.update(dataclasses.asdict(h) if dataclasses.is_dataclass(h)
                          else {k: v for k, v in vars(h).items() if not k.startswith("_")})
        sensor["connected"] = bool(self._sensor_ok is not False and sensor.get("connected", True))
        sensor["last_sample_age_s"] = round(now - self._last_sample_at, 3)
        stats = self.publisher.stats()
        degraded = not sensor["connected"] or stats["outbox_dropped"] > 0
        return {"device_id": self.config.device_id, "state": "degraded" if degraded else "ok",
                "uptime_s": round(now - self._started_at, 1), "sensor": sensor,
                "mqtt": stats, "events_published": self.events_published,
                "calibrated": bool(self.live.calibrated) if self.live is not None else False,
                "time_unix_s": round(time.time(), 3)}

    def _systemd(self, now: float) -> None:
        if not self._ready:
            sensor_answered = self._sensor_ok is not False and self.live is not None
            if sensor_answered and self.publisher.connected:
                self.notifier.ready("running")
                self._ready = True
            elif now - self._started_at >= self.settings.ready_timeout_s:
                why = []
                if not sensor_answered:
                    why.append("no samples from the sensor")
                if not self.publisher.connected:
                    why.append(f"broker {self.publisher.settings.host}:"
                               f"{self.publisher.settings.port} unreachable, events kept in "
                               "the outbox")
                self.notifier.ready("degraded: " + "; ".join(why))
                self._ready = True
            self._broker_up = self.publisher.connected
        elif self.publisher.connected != self._broker_up:  # `systemctl status` tells the story
            self._broker_up = self.publisher.connected
            pub = self.publisher
            self.notifier.status("running" if self._broker_up else
                                 f"degraded: broker {pub.settings.host}:{pub.settings.port} "
                                 f"unreachable, {pub.pending} message(s) kept in the outbox")
        interval = self.notifier.watchdog_interval_s
        if interval is not None and now - self._last_watchdog >= interval:
            self.notifier.watchdog()
            self._last_watchdog = now

    def _save_calibration(self) -> None:
        if self.calibration_path is None:
            return
        calibration = self.pipeline.calibration
        if calibration.confident:
            calibration.save(self.calibration_path)
            log.info("saved the calibration to %s", self.calibration_path)

    @property
    def ready(self) -> bool:
        """True once READY=1 was sent (or would have been, outside systemd)."""
        return self._ready

    # -- shutdown ------------------------------------------------------------------------------
    def close(self) -> None:
        """Orderly shutdown: final events and session, then each resource in its own try."""
        if self._closed:
            return
        self._closed = True
        self.notifier.stopping()
        now = self.clock.monotonic()
        try:
            for event in self.pipeline.finish():
                self._publish_event(event, now)
        except Exception:
            log.exception("closing the pipeline failed")
        try:
            if self.session.state in ("running", "paused"):
                self.session.stop(now, reason="shutdown")
            if self.session.state != "idle":
                self.publisher.publish_retained("session", self.session.to_dict(now))
        except Exception:
            log.exception("publishing the final session failed")
        try:
            self._save_calibration()
        except Exception:
            log.exception("saving the calibration failed")
        for name, closer in (("controls", getattr(self.controls, "close", None)),
                             ("sensor", getattr(self.driver, "close", None)),
                             ("publisher", self.publisher.close),
                             ("outbox", self.publisher.outbox.close),
                             ("history", getattr(self.history, "close", None))):
            if closer is None:
                continue
            try:
                closer()
            except Exception:
                log.exception("closing the %s failed", name)


def build_service(config: RollerConfig, *, simulate: bool = False, seed: int = 0,
                  clock: Clock | None = None, notifier: Notifier | None = None) -> Service:
    """The production loader: open the sensor (emulated with ``simulate``), the pipeline, the
    outbox, the publisher, the GPIO controls and the coach from ``config``."""
    from roller.calibration import FILE_NAME as CALIBRATION_FILE_NAME
    from roller.discovery import discovery_config
    from roller.mqtt_contract import Topics
    from roller.outbox import Outbox
    from roller.paths import ensure_dir
    from roller.publisher import Publisher, resolve_password

    clock = clock or SystemClock()
    coach = _make_coach(config, clock)  # first: a broken routine file stops before anything opens
    state_dir = ensure_dir(config.state_path)
    topics = Topics(config.device_id, config.mqtt.topic_prefix,
                    config.homeassistant.discovery_prefix)
    discovery = discovery_config(topics, name=config.device_name) \
        if config.homeassistant.enabled else {}
    outbox = Outbox(state_dir / "outbox.sqlite3", max_messages=config.mqtt.outbox_max_messages)
    publisher = Publisher(config.mqtt, topics, outbox, password=resolve_password(config.mqtt),
                          discovery=discovery)
    driver = _open_sensor(config, simulate=simulate, seed=seed, clock=clock)
    # A real sensor starts from its saved calibration (and saves a better one on shutdown);
    # the simulated chip has its own offsets, so a simulated run neither reads nor writes it.
    calibration_path = None if simulate else state_dir / CALIBRATION_FILE_NAME
    pipeline = _make_pipeline(config, calibration_path)
    history = _open_history(config, state_dir)
    service = Service(config, driver=driver, pipeline=pipeline, publisher=publisher,
                      coach=coach, history=history, clock=clock, notifier=notifier,
                      calibration_path=calibration_path)
    service.controls = _open_controls(config, service, simulate=simulate)
    return service


def _open_sensor(config: RollerConfig, *, simulate: bool, seed: int, clock: Clock) -> Any:
    from firmware_bridge.sensor import open_sensor

    return open_sensor(config.sensor, simulate=simulate, seed=seed, clock=clock)


def _make_pipeline(config: RollerConfig, calibration_path: Path | None) -> Any:
    """The pipeline, starting from the saved calibration (``roller calibrate``, or the last
    run's) unless ``[pipeline]`` pins the offset or axis. A saved calibration only seeds the
    estimates: the offset is tracked and the axis relearnt, so a sensor that was moved is
    found again rather than measured about a stale axis."""
    from roller.calibration import Calibration
    from roller.pipeline import Pipeline

    saved = Calibration.load_or_none(calibration_path) if calibration_path else None
    if saved is not None:
        log.info("starting from the calibration in %s", calibration_path)
    return Pipeline(config.pipeline, calibration=saved)


def _open_controls(config: RollerConfig, service: Service, *, simulate: bool) -> Any:
    """The GPIO buttons, LED and buzzer (nothing opened when no pin is configured). Buttons
    queue commands (``start_pause``, ``next``) into the service's one command table. With
    ``simulate`` the pins are gpiozero's mock pins: no GPIO is touched on a laptop."""
    from firmware_bridge.gpio import Controls

    factory = None
    if simulate and config.gpio.any_pin:
        from gpiozero.pins.mock import MockFactory

        factory = MockFactory()
    return Controls(config.gpio, pin_factory=factory,
                    on_start_pause=lambda: service.submit_command("start_pause", b"", "gpio"),
                    on_next=lambda: service.submit_command("next", b"", "gpio"))


def _make_coach(config: RollerConfig, clock: Clock) -> Any:
    """The coach with the configured routine; it draws the pipeline's go-slow band."""
    from roller.coach import Coach
    from roller.routine import load_routine

    pipeline = getattr(config, "pipeline", None)
    return Coach(load_routine(config.coach.routine), config.coach, clock,
                 speed_target_m_s=getattr(pipeline, "target_speed_m_s", 0.025),
                 speed_limit_m_s=getattr(pipeline, "max_speed_m_s", 0.05))


def _open_history(config: RollerConfig, state_dir: Any) -> Any:
    """The session history in the state directory, or None when ``[history] enabled = false``."""
    if not config.history.enabled:
        return None
    from roller.history import History

    return History(config.history.path(state_dir))
