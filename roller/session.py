"""The service's own record of one session: its state, counts and times.

A session starts with ``cmd/start`` or, with ``service.auto_start_session``, at the first sign
of someone rolling; it is paused and resumed, and it ends with ``cmd/stop``, a pain stop, the
end of the coach's routine, a long idle stretch or the service's shutdown. After the end, rolling
again is a new session only once the roller has rested (``coach.restart_idle_s``), so a person
who carries on after Stop does not start a second one at once.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from roller.command_table import CommandError, CommandTable, short
from roller.events import Event, Hold, HoldStarted, Stroke, TooFast
from roller.mqtt_contract import COMMAND_VERBS, session_payload

if TYPE_CHECKING:
    from firmware_bridge.clock import Clock
    from roller.coach import Coach


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


class SessionCommands:
    """The command verbs (:data:`roller.mqtt_contract.COMMAND_VERBS`) on ``session`` and the
    coach: each checks the session allows it, passes it to the coach (if any), then changes the
    session -- in that order, so a coach that refuses leaves the session as it was. ``changed``
    is set when a command started, paused, resumed or ended the session (the owner clears it)."""

    def __init__(self, session: Session, coach: Coach | None, clock: Clock,
                 table: CommandTable) -> None:
        self.session, self.coach, self.clock, self.table = session, coach, clock, table
        self.changed = False
        handlers = {"start": self.start, "pause": self.pause, "resume": self.resume,
                    "next": self.next, "stop": self.stop, "start_pause": self.start_pause,
                    "pain": self.pain}
        for verb, doc in COMMAND_VERBS.items():
            table.add(verb, handlers[verb], payload=dict if verb == "start" else None, doc=doc)

    def _to_coach(self, verb: str, payload: Mapping[str, Any] | None = None) -> None:
        if self.coach is not None:
            self.coach.command(verb, payload)

    def _change(self, verb: str, payload: Any, allowed: tuple[str, ...],
                change: Callable[[float], None]) -> None:
        if self.session.state not in allowed:
            what = "a session is already" if verb == "start" else \
                f"cannot {verb}: the session is"
            raise CommandError("not_possible", f"{what} {self.session.state}")
        self._to_coach(verb, payload)
        change(self.clock.monotonic())
        self.changed = True

    def start(self, payload: Any) -> None:
        if payload and self.coach is None and self.session.state not in ("running", "paused"):
            raise CommandError("bad_payload", f"cmd/start takes no payload without a coach, got "
                               f"{short(payload)}", expected="{}")
        self._change("start", payload or None, ("idle", "finished"), self.session.start)

    def pause(self, payload: Any) -> None:
        self._change("pause", payload, ("running",), self.session.pause)

    def resume(self, payload: Any) -> None:
        self._change("resume", payload, ("paused",), self.session.resume)

    def stop(self, payload: Any) -> None:
        self._change("stop", payload, ("running", "paused"), self.session.stop)

    def next(self, payload: Any) -> None:
        if self.coach is None:
            raise CommandError("not_possible", "cmd/next needs a coach with a routine; none "
                               "is running")
        self._to_coach("next", payload)

    def pain(self, payload: Any) -> None:
        self._to_coach("pain", payload)  # always possible, session or not: safety first
        if self.session.state in ("running", "paused"):
            self.session.stop(self.clock.monotonic(), reason="pain")
            self.changed = True

    def start_pause(self, payload: Any) -> None:
        """The single GPIO button: start, pause or resume, whichever fits."""
        verb = {"running": "pause", "paused": "resume"}.get(self.session.state, "start")
        self.table.dispatch(verb, b"")
