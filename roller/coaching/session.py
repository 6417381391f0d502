"""One session lifecycle for the service, the coach, the history and the display.

A :class:`Session` is ``idle`` (none yet), ``running``, ``paused`` or ``finished``::

    idle --start--> running <--pause/resume--> paused
                       |                         |
                       +--stop, pain, completed, idle timeout, shutdown--> finished
    finished --(rest, then rolling) or start--> running (a new session)

It starts with ``cmd/start`` or, with ``[session] auto_start``, at the first sign of someone
rolling (a stroke, a hold, a too-fast alert, or the live phase ``rolling``/``holding``). It ends
with ``cmd/stop``, a pain stop (from any state: safety first), the end of the coach's routine, a
running stretch of ``idle_timeout_s`` without a stroke or hold, or the service's shutdown; the
reason is :attr:`Session.end_reason`. After the end, rolling again is a new session only once
the roller has rested (``restart_rest_s`` with nobody rolling), so a person who carries on after
Stop does not start a second one at once.

This is the only state machine: the coach follows it (its own ``ready``/``active``/
``transition``/``paused``/``done`` is a view of the session's state plus its step progress), the
service publishes it, the history stores what it ended with. The owner of the loop calls
:meth:`Session.observe_event` for each pipeline event and :meth:`Session.observe_phase` once a
step; commands go through :class:`SessionCommands` (or, with a coach, through the coach, which
moves the session itself).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from roller.base.settings import setting
from roller.contract.command_table import CommandError, CommandTable, short
from roller.contract.messages import COMMAND_VERBS, session_payload
from roller.pipeline.events import (
    Event,
    Hold,
    HoldStarted,
    LiveState,
    Stroke,
    TooFast,
    TooFastAlert,
)
from roller.pipeline.speed_stats import SpeedStats

if TYPE_CHECKING:
    from firmware_bridge.clock import Clock

SessionState = Literal["idle", "running", "paused", "finished"]
EndReason = Literal["completed", "stopped", "pain", "idle", "shutdown"]
END_REASONS: tuple[str, ...] = ("completed", "stopped", "pain", "idle", "shutdown")


@dataclass(frozen=True)
class SessionSettings:
    """Config section ``[session]``: when a session starts and ends, and how it is reported."""

    auto_start: bool = setting(
        True, doc="start a session (and the coach's routine) on the first sign of someone "
                  "rolling, without a start command; after a session ended only once the "
                  "roller has rested restart_rest_s")
    restart_rest_s: float = setting(
        30.0, unit="s", minimum=0.0, maximum=3600.0,
        doc="after a session ends, nobody rolling for this long before rolling auto-starts a "
            "new one")
    idle_timeout_s: float = setting(
        600.0, unit="s", minimum=10, maximum=86400,
        doc="a running session with no stroke or hold for this long is finished "
            "(end_reason idle)")
    min_record_active_s: float = setting(
        10.0, unit="s", minimum=0.0, maximum=3600.0,
        doc="a session with less active time than this is shown but not stored in the history")
    max_update_gap_s: float = setting(
        1.0, unit="s", minimum=0.05, maximum=10.0,
        doc="a longer gap between updates (a stall) counts only this much active time")
    publish_interval_s: float = setting(
        5.0, unit="s", minimum=0.5, maximum=600,
        doc="republish the running session's figures at most this often (a change of state "
            "goes out at once)")


MAX_HOLD_LAG_S = 10.0
"""Cap on the hold-recognition delay credited as active time (guards against odd timestamps)."""


class ActiveTime:
    """Active time -- what a person is doing -- from the live phase, with the hold-recognition
    lag credited once.

    The live phase counts as it comes (``rolling`` and ``holding`` count; ``rolling`` includes
    the short pauses of reversals, by the pipeline's hysteresis). The pipeline recognises a hold
    only after the roller has stayed put for a few seconds: those seconds were holding, but the
    phase may have shown them as rolling (the grace after a stroke) or idle. :meth:`hold_credit`
    gives the part of them not counted already, so nothing is counted twice.
    """

    def __init__(self) -> None:
        self._recent: deque[tuple[float, float]] = deque()  # (time, seconds counted up to it)

    def tick(self, now: float, dt: float, counting: bool) -> float:
        """Note an update at ``now`` covering ``dt`` [s]; returns the seconds counted."""
        counted = dt if counting else 0.0
        if counted > 0:
            self._recent.append((now, counted))
        while self._recent and self._recent[0][0] < now - 2 * MAX_HOLD_LAG_S:
            self._recent.popleft()
        return counted

    def hold_credit(self, start: float, emitted_at: float) -> float:
        """Seconds of a hold recognised at ``emitted_at`` that began at ``start`` [s], not yet
        counted (at most :data:`MAX_HOLD_LAG_S`)."""
        lag = min(max(emitted_at - start, 0.0), MAX_HOLD_LAG_S)
        begun = emitted_at - lag
        counted = 0.0
        for t, dt in self._recent:
            if t > begun:  # the update covering (t - dt, t]: its part after the hold began
                counted += min(dt, t - begun)
        return max(lag - counted, 0.0)


class Session:
    """The session lifecycle and its figures (see the module docstring).

    Times ``*_s`` given to the methods are on the loop's monotonic clock; ``started_unix_s`` /
    ``ended_unix_s`` label the session with the wall clock (``wall_clock``, injectable).
    :attr:`version` grows by one at every change of state, so an owner can tell that the
    session started, paused, resumed or ended since it last looked; :attr:`generation` grows at
    every start, so a follower (the coach) can tell a new session from the one it knows.
    """

    def __init__(self, settings: SessionSettings | None = None, *,
                 wall_clock: Callable[[], float] = time.time) -> None:
        self.settings = settings or SessionSettings()
        self._wall = wall_clock
        self.state: SessionState = "idle"
        self.id: str | None = None
        self.started_unix_s: float | None = None
        self.ended_unix_s: float | None = None
        self.started_s: float | None = None
        """Monotonic time of the start [s]."""
        self.ended_s: float | None = None
        self.end_reason: EndReason | None = None
        self.routine: dict[str, Any] | None = None
        """The coach's summary once a coached session ends (kept in every later publication)."""
        self.rested = False
        """After the end: has nobody rolled for ``restart_rest_s``, so that rolling again is a
        new session, not the same person carrying on after Stop?"""
        self.version = 0
        self.generation = 0
        self._idle_since: float | None = None
        self._last_phase_at: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.stats = SpeedStats()
        self.holds = 0
        self.hold_time_s = 0.0
        self.active_s = 0.0
        """Time someone was rolling or holding while the session ran [s] (pauses and an
        unattended roller excluded)."""
        self.running_s = 0.0
        """Time the session ran [s] (pauses excluded)."""
        self._active = ActiveTime()
        self._running_since: float | None = None
        self.last_activity: float | None = None

    # -- figures kept under their old names ------------------------------------------------
    @property
    def strokes(self) -> int:
        return self.stats.strokes

    @property
    def distance_m(self) -> float:
        return self.stats.distance_m

    @property
    def too_fast_count(self) -> int:
        return self.stats.too_fast_count

    @property
    def peak_speed_m_s(self) -> float:
        return self.stats.peak_speed_m_s

    @property
    def live(self) -> bool:
        """Running or paused: a session is under way."""
        return self.state in ("running", "paused")

    # -- transitions -----------------------------------------------------------------------
    def _moved(self) -> None:
        self.version += 1

    def start(self, now: float) -> None:
        if self.live:
            raise CommandError("not_possible", f"a session is already {self.state}")
        self._reset()
        self.state = "running"
        self.generation += 1
        wall = self._wall()
        self.id = time.strftime("%Y%m%dT%H%M%S", time.localtime(wall)) + "-" + \
            uuid.uuid4().hex[:6]
        self.started_unix_s = round(wall, 3)
        self.started_s = now
        self.ended_unix_s = self.ended_s = None
        self.end_reason = None
        self.routine = None
        self.rested = False
        self._running_since = now
        self.last_activity = now
        self._moved()

    def pause(self, now: float) -> None:
        if self.state != "running":
            raise CommandError("not_possible", f"cannot pause: the session is {self.state}")
        self._bank(now)
        self.state = "paused"
        self._moved()

    def resume(self, now: float) -> None:
        if self.state != "paused":
            raise CommandError("not_possible", f"cannot resume: the session is {self.state}")
        self.state = "running"
        self._running_since = now
        self.last_activity = now
        self._moved()

    def stop(self, now: float, reason: EndReason = "stopped") -> None:
        """End the session under way with ``reason`` (one of :data:`END_REASONS`)."""
        if not self.live:
            raise CommandError("not_possible", f"cannot stop: the session is {self.state}")
        self._bank(now)
        self.state = "finished"
        self.end_reason = reason
        self.ended_s = now
        self.ended_unix_s = round(self._wall(), 3)
        self.rested = reason == "idle"  # ended by a long stillness: that was the rest
        self._idle_since = None
        self._moved()

    finish = stop

    def pain(self, now: float) -> None:
        """A pain stop, possible in every state: a session under way ends (``pain``); with
        none, the lifecycle still goes to ``finished`` (``pain``, no id), so rolling on at once
        does not start one -- the roller must rest first."""
        if self.live:
            self.stop(now, "pain")
            return
        if self.state == "idle":
            self.state = "finished"
            self.end_reason = "pain"
            self.ended_s = now
            self.ended_unix_s = round(self._wall(), 3)
        self.rested = False
        self._idle_since = None
        self._moved()

    @property
    def may_auto_start(self) -> bool:
        """Rolling starts a session: the first one, or a new one after a rest."""
        return self.settings.auto_start and (
            self.state == "idle" or (self.state == "finished" and self.rested))

    def _bank(self, now: float) -> None:
        if self.state == "running" and self._running_since is not None:
            self.running_s += max(0.0, now - self._running_since)
        self._running_since = None

    # -- what the pipeline sees ------------------------------------------------------------
    def observe_event(self, event: Event, now: float) -> bool:
        """Count a pipeline event; a sign of someone rolling may start a session (then True).

        A too-fast alert comes mid-stroke, before that stroke is known, and belongs to the
        session as much as the stroke does."""
        started = False
        if isinstance(event, (Stroke, HoldStarted, TooFastAlert)) and self.may_auto_start:
            self.start(now)
            started = True
        if self.state != "running":
            return started
        if isinstance(event, (Stroke, TooFast)):
            self.stats.add(event)
            if isinstance(event, Stroke):
                self.last_activity = now
        elif isinstance(event, Hold):
            self.holds += 1
            self.hold_time_s += event.duration_s
            self.last_activity = now
        elif isinstance(event, HoldStarted):
            self.active_s += self._active.hold_credit(event.start, event.emitted_at)
            self.last_activity = now
        return started

    def observe_phase(self, live: LiveState | None, now: float) -> bool:
        """Once a loop step, after its events: the rest after a session, auto-start on the live
        phase, active time, and the idle timeout. True when the state changed."""
        phase = live.phase if live is not None else "idle"
        moving = phase in ("rolling", "holding")
        dt = 0.0 if self._last_phase_at is None else now - self._last_phase_at
        dt = min(max(dt, 0.0), self.settings.max_update_gap_s)
        self._last_phase_at = now
        before = self.version
        if self.state == "finished" and not self.rested:
            if moving:
                self._idle_since = None
            else:
                if self._idle_since is None:
                    self._idle_since = now
                self.rested = now - self._idle_since >= self.settings.restart_rest_s
        if moving and self.may_auto_start:
            self.start(now)
        elif self.state == "running":
            self.active_s += self._active.tick(now, dt, moving)
            if moving:
                self.last_activity = now
            elif self.last_activity is not None and \
                    now - self.last_activity >= self.settings.idle_timeout_s:
                self.stop(now, "idle")
        return self.version != before

    def to_dict(self, now: float) -> dict[str, Any]:
        """The ``session`` payload (:func:`roller.contract.messages.session_payload`)."""
        running = self.running_s
        if self.state == "running" and self._running_since is not None:
            running += max(0.0, now - self._running_since)
        st = self.stats
        return session_payload(
            session_id=self.id, state=self.state, end_reason=self.end_reason,
            started_unix_s=self.started_unix_s, ended_unix_s=self.ended_unix_s,
            active_s=self.active_s, running_s=running, strokes=st.strokes,
            distance_m=st.distance_m, holds=self.holds, hold_time_s=self.hold_time_s,
            too_fast_count=st.too_fast_count, too_fast_s=st.too_fast_s,
            mean_speed_m_s=st.mean_speed_m_s, median_speed_m_s=st.median_speed_m_s,
            peak_speed_m_s=st.peak_speed_m_s, routine=self.routine)


class Follower(Protocol):
    """What :class:`SessionCommands` needs of a coach (:class:`roller.coaching.coach.Coach`): it
    applies a
    command to the session it follows and to its routine."""

    def command(self, verb: str, payload: Mapping[str, Any] | None = None,
                now: float | None = None) -> object: ...


class SessionCommands:
    """The command verbs (:data:`roller.contract.messages.COMMAND_VERBS`) on ``session``: each
    checks
    the session allows it, then hands it to the coach, which moves the session itself and its
    routine with it (so a coach that refuses leaves the session as it was), or, without a coach,
    moves the session."""

    def __init__(self, session: Session, coach: Follower | None, clock: Clock,
                 table: CommandTable) -> None:
        self.session, self.coach, self.clock, self.table = session, coach, clock, table
        handlers = {"start": self.start, "pause": self.pause, "resume": self.resume,
                    "next": self.next, "stop": self.stop, "start_pause": self.start_pause,
                    "pain": self.pain}
        for verb, doc in COMMAND_VERBS.items():
            table.add(verb, handlers[verb], payload=dict if verb == "start" else None, doc=doc)

    def _change(self, verb: str, payload: Mapping[str, Any] | None, allowed: tuple[str, ...],
                change: Callable[[float], None]) -> None:
        if self.session.state not in allowed:
            what = "a session is already" if verb == "start" else \
                f"cannot {verb}: the session is"
            raise CommandError("not_possible", f"{what} {self.session.state}")
        now = self.clock.monotonic()
        if self.coach is not None:
            self.coach.command(verb, payload, now=now)
        else:
            change(now)

    def start(self, payload: Any) -> None:
        if payload and self.coach is None and not self.session.live:
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
        self.coach.command("next", payload, now=self.clock.monotonic())

    def pain(self, payload: Any) -> None:
        # always possible, session or not: safety first
        self._change("pain", payload, ("idle", "running", "paused", "finished"),
                     self.session.pain)

    def start_pause(self, payload: Any) -> None:
        """The single GPIO button: start, pause or resume, whichever fits."""
        verb = {"running": "pause", "paused": "resume"}.get(self.session.state, "start")
        self.table.dispatch(verb, b"")
