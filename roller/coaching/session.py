"""One session lifecycle for the service, the coach, the history and the display.

A :class:`Session` is ``idle`` (none yet), ``running``, ``paused`` or ``finished``::

    idle --start--> running <--pause/resume--> paused
                       |                         |
                       +--stop, pain, completed, idle timeout, shutdown--> finished
    finished --(rest, then rolling) or start--> running (a new session)

It starts with ``cmd/start`` or, with ``[session] auto_start``, at the first sign of someone
rolling (a stroke, a too-fast alert, or the live phase ``rolling``/``holding``; not the
pipeline's ``HoldStarted`` alone, which a still roller with nobody on it also gives -- a hold
starts a session once the live phase says someone is on it). It ends
with ``cmd/stop``, a pain stop (from any state: safety first), the end of the coach's routine, a
running stretch of ``idle_timeout_s`` without a stroke or hold, or the service's shutdown; the
reason is :attr:`Session.end_reason`. After the end, rolling again is a new session only once
the roller has rested (``restart_rest_s`` with nobody rolling), so a person who carries on after
Stop does not start a second one at once.

This is the only state machine: the coach follows it (its own ``ready``/``active``/
``transition``/``paused``/``done`` is a view of the session's state plus its step progress), the
service publishes it, the history stores what it ended with. The owner of the loop calls
:meth:`Session.observe_event` for each pipeline event and :meth:`Session.observe_phase` once a
step; commands come in through one door (:class:`roller.coaching.session_commands.SessionCommands`),
which calls the methods here. Every rule of what state allows what is here: a transition the
state forbids raises :class:`SessionError`, and nothing changes.

The session's figures are the session's figures everywhere: :attr:`Session.active_s` counts only
while the session runs (a hold recognised just after a start or a resume is credited from that
moment, not before), so it never exceeds :attr:`Session.running_s`, and the coach's summary (and
so the history) takes its totals from here.
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from roller.base.errors import RollerError
from roller.base.settings import setting
from roller.contract.messages import session_payload
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
        doc="a session with less active time than this is neither summarised nor stored in "
            "the history (a bump of the roller is not a session)")
    max_update_gap_s: float = setting(
        1.0, unit="s", minimum=0.05, maximum=10.0,
        doc="a longer gap between updates (a stall) counts only this much active time")
    publish_interval_s: float = setting(
        5.0, unit="s", minimum=0.5, maximum=600,
        doc="republish the running session's figures at most this often (a change of state "
            "goes out at once)")


class SessionError(RollerError, ValueError):
    """A transition the session's state does not allow (pause while paused, stop with none
    under way, ...). The message says what was asked and the state it met; nothing changed."""


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
        self._last_tick: float | None = None

    def tick(self, now: float, dt: float, counting: bool) -> float:
        """Note an update at ``now`` covering ``dt`` [s]; returns the seconds counted."""
        counted = dt if counting else 0.0
        self._last_tick = now
        if counted > 0:
            self._recent.append((now, counted))
        while self._recent and self._recent[0][0] < now - 2 * MAX_HOLD_LAG_S:
            self._recent.popleft()
        return counted

    def hold_credit(self, start: float, emitted_at: float) -> float:
        """Seconds of a hold recognised at ``emitted_at`` that began at ``start`` [s], not yet
        counted (at most :data:`MAX_HOLD_LAG_S`): up to the last update only, since the next
        update counts its own stretch, the moment of recognition included."""
        begun = max(start, emitted_at - MAX_HOLD_LAG_S)
        end = emitted_at if self._last_tick is None else min(emitted_at, self._last_tick)
        counted = 0.0
        for t, dt in self._recent:
            if t > begun:  # the update covering (t - dt, t]: its part after the hold began
                counted += min(dt, t - begun)
        return max(end - begun - counted, 0.0)


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
        self.pain_stop = False
        """A pain stop was asked since the last start."""
        self.version = 0
        self.generation = 0
        self._idle_since: float | None = None
        self._last_phase_at: float | None = None
        self._hold_attended = False
        """The live phase said ``holding`` (someone on the roller) since the last hold began:
        only such a hold counts (the pipeline's hold events also mark an empty, still roller)."""
        self._reset()

    def _reset(self) -> None:
        self.stats = SpeedStats()
        self.holds = 0
        self.last_refusal: str | None = None
        """The last refused command's reason (``cannot stop: the session is finished``),
        None once a command is accepted: Home Assistant shows it (issue 17 item 6)."""
        self.hold_time_s = 0.0
        self.longest_hold_s = 0.0
        self.active_s = 0.0
        """Time someone was rolling or holding while the session ran [s] (pauses and an
        unattended roller excluded)."""
        self.running_s = 0.0
        """Time the session ran [s] (pauses excluded)."""
        self._active = ActiveTime()
        self._running_since: float | None = None
        self.last_activity: float | None = None

    @property
    def strokes(self) -> int:
        """Strokes in this session (:attr:`stats`)."""
        return self.stats.strokes

    @property
    def live(self) -> bool:
        """Running or paused: a session is under way."""
        return self.state in ("running", "paused")

    # -- transitions -----------------------------------------------------------------------
    def _moved(self) -> None:
        self.version += 1

    def start(self, now: float) -> None:
        if self.live:
            raise SessionError(f"a session is already {self.state}")
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
        self.pain_stop = False
        self._running_since = now
        self.last_activity = now
        self._moved()

    def pause(self, now: float) -> None:
        if self.state != "running":
            raise SessionError(f"cannot pause: the session is {self.state}")
        self._bank(now)
        self.state = "paused"
        self._moved()

    def resume(self, now: float) -> None:
        if self.state != "paused":
            raise SessionError(f"cannot resume: the session is {self.state}")
        self.state = "running"
        self._running_since = now
        self.last_activity = now
        self._moved()

    def stop(self, now: float, reason: EndReason = "stopped") -> None:
        """End the session under way with ``reason`` (one of :data:`END_REASONS`)."""
        if not self.live:
            raise SessionError(f"cannot stop: the session is {self.state}")
        self._bank(now)
        self.state = "finished"
        self.end_reason = reason
        self.ended_s = now
        self.ended_unix_s = round(self._wall(), 3)
        self.rested = reason == "idle"  # ended by a long stillness: that was the rest
        self._idle_since = None
        self._moved()

    def pain(self, now: float) -> None:
        """A pain stop, possible in every state: a session under way ends (``pain``); with
        none, the lifecycle still goes to ``finished`` (``pain``, no id), so rolling on at once
        does not start one -- the roller must rest first. :attr:`pain_stop` says it was asked
        (the coach then tells the person to stop, whatever ended the session before)."""
        self.pain_stop = True
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

    def skip(self, now: float) -> bool:
        """``next``'s part of the lifecycle: with no session yet it starts one (True: the
        routine begins at its first step); a paused one resumes, a running one carries on
        (False: the routine moves on); a finished one refuses -- start a new one first."""
        if self.state == "finished":
            raise SessionError("cannot go to the next step: the session is finished; start "
                               "a new one")
        if self.state == "idle":
            self.start(now)
            return True
        if self.state == "paused":
            self.resume(now)
        return False

    @property
    def button_verb(self) -> str:
        """What the single button (``start_pause``) means now: pause a running session,
        resume a paused one, else start one."""
        return {"running": "pause", "paused": "resume"}.get(self.state, "start")

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
        attended = self._hold_attended
        if isinstance(event, (Hold, HoldStarted)):
            self._hold_attended = False
        if isinstance(event, (Stroke, TooFastAlert)) and self.may_auto_start:
            self.start(now)
            started = True
        if self.state != "running":
            return started
        if isinstance(event, (Stroke, TooFast)):
            self.stats.add(event)
            if isinstance(event, Stroke):
                self.last_activity = now
        elif isinstance(event, Hold) and attended:
            self.holds += 1
            self.hold_time_s += event.duration_s
            self.longest_hold_s = max(self.longest_hold_s, event.duration_s)
            self.last_activity = now
        elif isinstance(event, HoldStarted):
            # only the part of the hold since the session ran last (a start or a resume)
            since = max(event.start, self._running_since if self._running_since is not None
                        else now)
            self.active_s += self._active.hold_credit(since, event.emitted_at)
            self.last_activity = now
        return started

    def count_open_hold(self, duration_s: float) -> None:
        """A hold still under way when the session ended, long enough to count (the coach
        decides: it reached its step's window): counted as if it had ended now [s]. The
        pipeline's own end of it comes after the session and is not counted again."""
        self.holds += 1
        self.hold_time_s += duration_s
        self.longest_hold_s = max(self.longest_hold_s, duration_s)

    def observe_phase(self, live: LiveState | None, now: float) -> bool:
        """Once a loop step, after its events: the rest after a session, auto-start on the live
        phase, active time, and the idle timeout. True when the state changed."""
        phase = live.phase if live is not None else "idle"
        moving = phase in ("rolling", "holding")
        self._hold_attended = self._hold_attended or phase == "holding"
        dt = 0.0 if self._last_phase_at is None else now - self._last_phase_at
        dt = min(max(dt, 0.0), self.settings.max_update_gap_s)
        self._last_phase_at = now
        before = self.version
        if self.state == "finished" and not self.rested:
            self._rest(moving, now)
        if moving and self.may_auto_start:
            self.start(now)
        elif self.state == "running":
            self._run(moving, now, dt)
        return self.version != before

    def _rest(self, moving: bool, now: float) -> None:
        """After the end: has nobody rolled for ``restart_rest_s``?"""
        if moving:
            self._idle_since = None
            return
        if self._idle_since is None:
            self._idle_since = now
        self.rested = now - self._idle_since >= self.settings.restart_rest_s

    def _run(self, moving: bool, now: float, dt: float) -> None:
        """A step of a running session: active time (never more than the time it ran since
        its start or resume), and the idle timeout."""
        if self._running_since is not None:
            dt = min(dt, max(now - self._running_since, 0.0))
        self.active_s += self._active.tick(now, dt, moving)
        if moving:
            self.last_activity = now
        elif self.last_activity is not None and \
                now - self.last_activity >= self.settings.idle_timeout_s:
            self.stop(now, "idle")

    def to_dict(self, now: float) -> dict[str, Any]:
        """The ``session`` payload (:func:`roller.contract.messages.session_payload`)."""
        running = self.running_s
        if self.state == "running" and self._running_since is not None:
            running += max(0.0, now - self._running_since)
        st = self.stats
        body = session_payload(
            session_id=self.id, state=self.state, end_reason=self.end_reason,
            started_unix_s=self.started_unix_s, ended_unix_s=self.ended_unix_s,
            active_s=self.active_s, running_s=running, strokes=st.strokes,
            distance_m=st.distance_m, holds=self.holds, hold_time_s=self.hold_time_s,
            too_fast_count=st.too_fast_count, too_fast_s=st.too_fast_s,
            mean_speed_m_s=st.mean_speed_m_s, median_speed_m_s=st.median_speed_m_s,
            peak_speed_m_s=st.peak_speed_m_s, routine=self.routine)
        body["last_error"] = self.last_refusal
        return body
