"""The coach: walks a person through a routine, following what the pipeline sees.

:class:`Coach` is a small stateful object in the style of the pipeline stages: the service calls
``update(events, live, now)`` after each pipeline block and gets back a :class:`CoachState`, a
snapshot for displays (published retained on the ``coach`` topic). Commands (``start``,
``pause``, ``resume``, ``next``, ``stop``, ``pain``, and ``start_pause`` for a single button)
arrive through :meth:`Coach.command` from MQTT or the GPIO buttons.

The session itself -- when it starts, pauses, resumes and ends, and why -- is the one lifecycle
in :mod:`roller.coaching.session`; the coach follows it and keeps only the routine's progress and
prompts.
Its state is a view of the session's:

* **ready** while the session is ``idle`` (until ``start``, or, with ``[session] auto_start``,
  until the person starts rolling);
* **active** in a step: the step counts *active time* -- time spent rolling or holding on a
  tender spot; lying still does not count. Prompts follow the live phase: a slow-down prompt
  after a too-fast alert, a breathing rhythm and countdown during a hold, then "hold long
  enough" and "time to move on"; the step's cues while rolling; its position while idle;
* **transition** once the step's target is reached: "switch sides" or "next: ..." for
  ``transition_s`` (the person changes position; nothing counts), then the next step;
* **paused** while the session is paused (nothing counts) until ``resume``;
* **done** once the session is ``finished``: the last step complete (the coach ends the session
  itself, ``completed``), ``stop``, the idle timeout, the service's shutdown, or ``pain`` -- which
  ends the session at once and tells the person to stop, breathe, and see a health professional
  if the pain stays.

Without a session given, the coach makes its own (tests, benchmarks) and feeds it the pipeline's
events itself; in the service the :class:`~roller.service.loop.Service` owns the session, feeds it,
and gives it to the coach with :meth:`Coach.follow`.

When a session ends its :class:`SessionSummary` waits in :meth:`Coach.pop_summary` for the
service to store it in the history. Times given to ``update`` are seconds on the coach's clock
(monotonic); wall-clock timestamps only label the summary.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from firmware_bridge.clock import Clock, SystemClock
from roller.base.errors import RollerError
from roller.base.settings import from_mapping, setting
from roller.coaching.routine import DEFAULT_ROUTINE, Routine, RoutineStep
from roller.coaching.session import ActiveTime, EndReason, Session, SessionSettings
from roller.coaching.speech import Announcer, SpeechSettings
from roller.contract.cues import CUES, Priority
from roller.contract.messages import coach_payload
from roller.contract.verbs import VERBS
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

CoachPhase = Literal["ready", "active", "transition", "paused", "done"]

__all__ = ["Coach", "CoachCommandError", "CoachSettings", "CoachState", "EndReason",
           "SessionSummary", "StepRecord", "balance"]

PAIN_PROMPT = "Stop rolling now. Ease off the roller and breathe slowly."
PAIN_ADVICE = ("Rest for a while. If the pain was sharp, or it is still there later, see a doctor "
               "or physiotherapist before you roll again.")


@dataclass(frozen=True)
class CoachSettings:
    """Config section ``[coach]``: the routine and how the coach paces it."""

    routine: str = setting(DEFAULT_ROUTINE,
                           doc="routine name (in config/routines/) or path to a routine file")
    auto_advance: bool = setting(True, doc="move to the next step by itself after "
                                           "transition_s; false waits for next")
    transition_s: float = setting(8.0, unit="s", minimum=0.0, maximum=120.0,
                                  doc="time to change position between steps")
    breath_in_s: float = setting(4.0, unit="s", minimum=1.0, maximum=15.0,
                                 doc="breathing rhythm during a hold: breathe in this long")
    breath_out_s: float = setting(6.0, unit="s", minimum=1.0, maximum=15.0,
                                  doc="... then breathe out this long")
    too_fast_prompt_s: float = setting(4.0, unit="s", minimum=0.5, maximum=30.0,
                                       doc="how long the slow-down prompt stays after an alert")
    cue_interval_s: float = setting(12.0, unit="s", minimum=2.0, maximum=120.0,
                                    doc="show the step's next cue after this much active time")
    publish_interval_s: float = setting(1.0, unit="s", minimum=0.1, maximum=60.0,
                                        doc="republish the coach state at least this often "
                                            "while it changes (prompt changes go out at once)")
    idle_prompt_after_s: float = setting(5.0, unit="s", minimum=0.0, maximum=60.0,
                                         doc="a pause in rolling shorter than this (a reversal, "
                                             "a breath, the stillness before a hold is "
                                             "recognised) keeps the rolling prompt")


class CoachCommandError(RollerError, ValueError):
    """A command the coach does not understand or whose payload is malformed."""


@dataclass(frozen=True)
class StartPayload:
    """Optional payload of ``cmd/start``: begin at a given step."""

    step: str | None = setting(None, doc="id of the step to begin with (default: the first)")


@dataclass
class StepRecord:
    """What happened during one step of a session (durations in s, speeds in m/s)."""

    id: str
    title: str
    muscle: str
    side: str
    prop: str
    target_s: float
    active_s: float = 0.0
    rolling_s: float = 0.0
    holding_s: float = 0.0
    holds_s: list[float] = field(default_factory=list)
    too_fast_count: int = 0
    """Too-fast alerts in this step (an excursion's alert comes before its end)."""
    stats: SpeedStats = field(default_factory=SpeedStats)
    """Strokes and too-fast excursions (:mod:`roller.pipeline.speed_stats`)."""
    completed: bool = False
    skipped: bool = False

    @property
    def strokes(self) -> int:
        return self.stats.strokes

    def to_dict(self) -> dict[str, Any]:
        st = self.stats
        return {"id": self.id, "title": self.title, "muscle": self.muscle, "side": self.side,
                "prop": self.prop, "target_s": self.target_s, "active_s": self.active_s,
                "rolling_s": self.rolling_s, "holding_s": self.holding_s,
                "strokes": st.strokes, "holds_s": list(self.holds_s),
                "too_fast_count": self.too_fast_count, "too_fast_s": st.too_fast_s,
                "peak_speed_m_s": st.peak_speed_m_s, "completed": self.completed,
                "skipped": self.skipped, "mean_speed_m_s": st.mean_speed_m_s,
                "longest_hold_s": max(self.holds_s, default=0.0)}


@dataclass(frozen=True)
class SessionSummary:
    """A finished session, as stored in the history and shown at the end."""

    routine: str
    routine_title: str
    started_at: float
    """Wall-clock start [s since the Unix epoch]."""
    ended_at: float
    duration_s: float
    """From start to end on the coach's clock, pauses included [s]."""
    end_reason: EndReason
    active_s: float
    sides_s: dict[str, float]
    """Active time by side of the body: left, right, none [s]."""
    strokes: int
    holds: int
    longest_hold_s: float
    too_fast_count: int
    too_fast_s: float
    mean_speed_m_s: float | None
    """Time-weighted mean speed while rolling [m/s] (:mod:`roller.pipeline.speed_stats`; None
    without strokes)."""
    median_speed_m_s: float | None
    """Time-weighted median of the strokes' speeds [m/s]."""
    peak_speed_m_s: float | None
    steps: tuple[dict[str, Any], ...]
    advice: str = ""

    @property
    def left_share(self) -> float | None:
        """Left side's share of left+right active time (0.5 is balanced); None if neither."""
        return balance(self.sides_s)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["steps"] = list(self.steps)
        d["left_share"] = self.left_share
        return d


def balance(sides_s: Mapping[str, float]) -> float | None:
    """Left share of the time spent on left and right (0.5 = even), None when both are zero."""
    left, right = sides_s.get("left", 0.0), sides_s.get("right", 0.0)
    total = left + right
    return None if total <= 0 else left / total


@dataclass(frozen=True)
class CoachState:
    """What a display needs now; published retained on ``roller/<device>/coach`` as JSON."""

    t_s: float
    """Coach clock time of this snapshot [s]."""
    state: CoachPhase
    """The session's state seen through the routine (see the module docstring)."""
    session_id: str | None
    """The session this snapshot belongs to (None before the first)."""
    end_reason: str | None
    """Once ``done``: why the session ended (the session's ``end_reason``)."""
    routine: str
    routine_title: str
    step_index: int | None
    """0-based index of the current step, None before start and after the end."""
    step_count: int
    step: dict[str, Any] | None
    """id, title, muscle, side, prop, position, caution of the current step."""
    next_step: dict[str, Any] | None
    prompt: str
    """The one sentence to show large (and speak)."""
    detail: str
    """A secondary line: the position, a caution, or how long is left."""
    cue: str
    """Machine-readable kind of prompt: calibrating, ready, position, rolling, keep_going,
    too_fast, hold, hold_reached, hold_long, switch_sides, step_done, paused, routine_done,
    stopped, idle_end, shutdown, pain_stop."""
    step_active_s: float
    step_target_s: float
    step_progress: float
    """step_active_s / step_target_s, 0..1."""
    routine_progress: float
    """Share of the routine's total target done, 0..1."""
    sides_s: dict[str, float]
    """Active time so far in this session by side: left, right, none [s]."""
    side_targets_s: dict[str, float]
    """The routine's target active time by side [s]."""
    strokes: int
    """Strokes counted in this session."""
    hold: dict[str, float] | None
    """During a hold: elapsed_s, min_s, max_s, remaining_s (to min_s)."""
    breath: Literal["in", "out"] | None
    breath_remaining_s: float | None
    too_fast: bool
    speed_target_m_s: float | None
    speed_limit_m_s: float | None
    summary: dict[str, Any] | None
    """The session summary once the session is done."""
    speech: dict[str, Any] | None = None
    """The last sentence decided to be spoken (:class:`roller.coaching.speech.Utterance`: id, text,
    priority, kind, asked_s, decided_s, duration_s); a page speaks each id once, while fresh."""

    def to_dict(self) -> dict[str, Any]:
        """The ``coach`` payload, shaped by :func:`roller.contract.messages.coach_payload` (numbers
        rounded to 4 decimals, units in the field names)."""
        return coach_payload(dataclasses.asdict(self))


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_rounded(v) for v in value]
    return value


def _step_info(step: RoutineStep | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"id": step.id, "title": step.title, "muscle": step.muscle, "side": step.side,
            "prop": step.prop, "position": step.position, "caution": step.caution,
            "target_active_s": step.target_active_s}


class Coach:
    """Guides one person through ``routine``; see the module docstring for the flow.

    ``speed_target_m_s`` / ``speed_limit_m_s`` are the pipeline's go-slow figures, passed through
    so displays draw the same band the pipeline judges by. ``wall_clock`` labels summaries with
    real dates (tests inject a fixed one). ``session`` is the lifecycle to follow; without one
    the coach makes its own (with ``session_settings``) and feeds it itself.
    """

    def __init__(self, routine: Routine, settings: CoachSettings | None = None,
                 clock: Clock | None = None, *, speed_target_m_s: float | None = 0.025,
                 speed_limit_m_s: float | None = 0.05,
                 wall_clock: Callable[[], float] = time.time,
                 speech: SpeechSettings | None = None,
                 session: Session | None = None,
                 session_settings: SessionSettings | None = None) -> None:
        self.routine = routine
        self.settings = settings or CoachSettings()
        self.clock = clock or SystemClock()
        self.speed_target_m_s = speed_target_m_s
        self.speed_limit_m_s = speed_limit_m_s
        self._wall = wall_clock
        self.session = session or Session(session_settings, wall_clock=wall_clock)
        self._owns_session = session is None
        self._side_targets = {"left": 0.0, "right": 0.0, "none": 0.0}
        for step in routine.steps:
            self._side_targets[step.side] += step.target_active_s
        self._generation = self.session.generation
        self._in_transition = False
        self._start_index = 0
        self._paused_at: float | None = None
        self._last_now: float | None = None
        self._live: LiveState | None = None
        self._index: int | None = None
        self._records: list[StepRecord] = []
        self._sides = {"left": 0.0, "right": 0.0, "none": 0.0}
        self._active = ActiveTime()
        self._session_started: float | None = None
        """Coach time the routine began; None when no session of the coach's is under way."""
        self._session_started_wall = 0.0
        self._transition_since = 0.0
        self._too_fast_until = -math.inf
        self._last_too_fast_speed = 0.0
        self._pain = False
        self._idle_since: float | None = None
        self._summary: SessionSummary | None = None
        self._summary_dict: dict[str, Any] | None = None  # built once: snapshots are frequent
        self._pending_summary: SessionSummary | None = None
        # holds: the step a hold in progress belongs to (None: no hold, or not in any step)
        self._hold_owner: int | None = None
        self._holding = False
        self._prev_phase = "idle"
        self._last_moving_phase = "rolling"
        # speech: what is said aloud is decided here, once, for every display
        self.announcer = Announcer(speech)
        self._offered_key: tuple[str, str] | None = None
        self._step_began = False
        self._step_named = False

    def follow(self, session: Session) -> None:
        """Follow ``session`` (the service's) instead of its own: whoever owns it feeds it the
        pipeline's events and moves it; the coach's commands move it too."""
        self.session = session
        self._owns_session = False
        self._generation = session.generation

    # ---------------------------------------------------------------- inputs

    @property
    def state(self) -> CoachPhase:
        """The session's state seen through the routine (the module docstring)."""
        s = self.session.state
        if s == "idle":
            return "ready"
        if s == "finished":
            return "done"
        if s == "paused":
            return "paused"
        return "transition" if self._in_transition else "active"

    @property
    def current_step(self) -> RoutineStep | None:
        if self._index is None or self._session_started is None:
            return None
        return self.routine.steps[self._index]

    def update(self, events: Iterable[Event], live: LiveState | None, now: float) -> CoachState:
        """Take the pipeline's new events and live state at coach time ``now`` [s]."""
        events = list(events)
        dt = 0.0 if self._last_now is None else now - self._last_now
        dt = min(max(dt, 0.0), self.session.settings.max_update_gap_s)
        self._last_now = now
        self._live = live
        phase = live.phase if live is not None else "idle"
        moving = phase in ("rolling", "holding")
        if moving:
            self._last_moving_phase = phase
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now
        if self._owns_session:
            for event in events:
                self.session.observe_event(event, now)
            self.session.observe_phase(live, now)
        self._follow(now)

        # Only the active step collects events and time: moving about between steps or while
        # paused is not part of any step.
        state = self.state
        record = self._records[self._index] if self._index is not None and \
            state == "active" and self._session_started is not None else None
        if phase == "holding" and self._prev_phase != "holding":
            self._hold_started()
        self._prev_phase = phase
        for event in events:
            if isinstance(event, Hold) and self._hold_owner is not None:
                # a hold belongs to the step it started in, even if it ends after that step
                if self._records:
                    self._records[self._hold_owner].holds_s.append(event.duration_s)
                self._hold_owner = None
            elif record is not None:
                self._account_event(record, event, now)
        # A hold carried over from an earlier step is that step's: it does not count here.
        foreign_hold = phase == "holding" and self._hold_owner != self._index
        self._holding = phase == "holding" and not foreign_hold

        counted = self._active.tick(now, dt, record is not None and moving and not foreign_hold)
        if counted > 0 and record is not None:
            record.active_s += dt
            if phase == "rolling":
                record.rolling_s += dt
            else:
                record.holding_s += dt
            self._sides[record.side] += dt
        if state == "active" and record is not None and \
                record.active_s >= record.target_s and not self._hold_too_short():
            record.completed = True
            if self._index == len(self.routine.steps) - 1:
                self._end(now, "completed")
            else:
                self._in_transition = True
                self._transition_since = now
        if self.state == "transition" and self.settings.auto_advance and \
                now - self._transition_since >= self.settings.transition_s:
            self._advance(now, announced=True)
        self._holding = phase == "holding" and self._hold_owner == self._index
        self._speak(now)
        return self.snapshot(now)

    def command(self, verb: str, payload: Mapping[str, Any] | None = None,
                now: float | None = None) -> CoachState:
        """Apply a command (``start``, ``pause``, ``resume``, ``next``, ``stop``, ``pain``,
        ``start_pause``) to the session and the routine. Commands that do not apply in the
        current state change nothing.

        Raises :class:`CoachCommandError` for an unknown verb or a malformed payload.
        """
        now = self.clock.monotonic() if now is None else now
        if verb not in VERBS:
            raise CoachCommandError(f"unknown coach command {verb!r}: expected one of "
                                    f"{', '.join(VERBS)}")
        if payload is not None and not isinstance(payload, Mapping):
            raise CoachCommandError(f"cmd/{verb}: expected a JSON object or nothing as payload, "
                                    f"got {payload!r}")
        session = self.session
        if verb == "start_pause":
            verb = {"running": "pause", "paused": "resume"}.get(session.state, "start")
        if verb == "start":
            try:
                start = from_mapping(StartPayload, payload or {}, where="cmd/start payload")
            except ValueError as exc:
                raise CoachCommandError(str(exc)) from None
            if not session.live:
                index = 0
                if start.step is not None:
                    try:
                        index = self.routine.step_index(start.step)
                    except KeyError:
                        ids = ", ".join(s.id for s in self.routine.steps)
                        raise CoachCommandError(f"cmd/start payload: step: expected one of "
                                                f"{ids}, got {start.step!r}") from None
                self._start_index = index
                session.start(now)
            elif session.state == "paused":
                session.resume(now)
        elif payload:
            raise CoachCommandError(f"cmd/{verb}: expected no payload, got {dict(payload)!r}")
        elif verb == "pause" and session.state == "running":
            session.pause(now)
        elif verb == "resume" and session.state == "paused":
            session.resume(now)
        elif verb == "next":
            if session.state == "idle":
                session.start(now)
            elif session.live and self._session_started is not None:
                record = self._records[self._index]  # type: ignore[index]
                record.skipped = not record.completed
                if session.state == "paused":
                    session.resume(now)
                    self._paused_at = None
                self._in_transition = False
                self._advance(now)
        elif verb == "stop" and session.live:
            session.stop(now, "stopped")
        elif verb == "pain":
            session.pain(now)
            self._pain = True
        self._follow(now)
        self._last_now = now if self._last_now is None else max(self._last_now, now)
        self._speak(now)
        return self.snapshot(now)

    def pop_summary(self) -> SessionSummary | None:
        """The summary of a session that just ended, once (then None): for the history."""
        summary, self._pending_summary = self._pending_summary, None
        return summary

    # ---------------------------------------------------------------- following the session

    def sync(self, now: float) -> CoachState:
        """Catch up with the session without new pipeline data (the service calls it after
        ending the session on shutdown) and return the state to publish."""
        self._follow(now)
        self._speak(now)
        return self.snapshot(now)

    def _follow(self, now: float) -> None:
        """Catch up with the session: a new one begins the routine, an ended one ends it, a
        pause freezes the transition clock."""
        s = self.session
        if s.generation != self._generation:
            self._generation = s.generation
            if self._session_started is not None:  # the one before ended unseen
                self._finish(now, s.end_reason or "stopped")
            self._start(now, self._start_index)
            self._start_index = 0
        if s.state == "finished" and self._session_started is not None:
            self._finish(now, s.end_reason or "stopped")
        if s.state == "paused" and self._paused_at is None:
            self._paused_at = now
        elif s.state == "running" and self._paused_at is not None:
            if self._in_transition:
                self._transition_since += now - self._paused_at
            self._paused_at = None

    def _end(self, now: float, reason: EndReason) -> None:
        """The routine ended the session."""
        if self.session.live:
            self.session.stop(now, reason)
        self._finish(now, reason)

    def _start(self, now: float, index: int) -> None:
        self._records = [StepRecord(id=s.id, title=s.title, muscle=s.muscle, side=s.side,
                                    prop=s.prop, target_s=s.target_active_s)
                         for s in self.routine.steps]
        self._sides = {"left": 0.0, "right": 0.0, "none": 0.0}
        self._active = ActiveTime()
        self._session_started = now
        self._session_started_wall = self.session.started_unix_s or self._wall()
        self._index = index
        self._in_transition = False
        self._paused_at = None
        self._pain = False
        self._summary = None
        self._summary_dict = None
        self._too_fast_until = -math.inf
        self._step_began = True
        self._step_named = False
        holding = self._live is not None and self._live.phase == "holding"
        self._hold_owner = index if holding else None

    def _hold_started(self) -> None:
        """The pipeline recognised a hold: it belongs to the active step, or, when it started
        while changing position between steps, to the step that follows."""
        state = self.state
        if self._index is None or state in ("ready", "done"):
            self._hold_owner = None
        elif state == "transition":
            self._hold_owner = self._index + 1
        else:
            self._hold_owner = self._index

    def _hold_too_short(self) -> bool:
        """A hold of this step is under way and has not reached its window: the step waits."""
        step = self.current_step
        live = self._live
        return (self._holding and step is not None and live is not None
                and live.hold_time_s < step.hold_min_s)

    def _advance(self, now: float, *, announced: bool = False) -> None:
        """Begin the next step; ``announced``: the transition prompt already named it."""
        assert self._index is not None
        self._in_transition = False
        if self._index + 1 >= len(self.routine.steps):
            self._end(now, "completed")
            return
        self._index += 1
        self._too_fast_until = -math.inf
        self._step_began = True
        self._step_named = announced

    def _finish(self, now: float, reason: EndReason) -> None:
        self.announcer.reset()
        self._in_transition = False
        if self._session_started is None:
            return
        self._summary = self._summarise(now, reason)
        self._summary_dict = self._summary.to_dict()
        self._session_started = None
        if self._summary.active_s >= self.session.settings.min_record_active_s:
            self._pending_summary = self._summary
        self.session.routine = self._summary_dict

    def _account_event(self, record: StepRecord, event: Event, now: float) -> None:
        if isinstance(event, (Stroke, TooFast)):
            record.stats.add(event)
        elif isinstance(event, HoldStarted) and self._hold_owner == self._index:
            # The pipeline recognises a hold only after the roller has stayed put for a few
            # seconds; those seconds were holding, so count them once it is known.
            # (:class:`~roller.coaching.session.ActiveTime`: not those already counted as rolling).
            lag = self._active.hold_credit(event.start, event.emitted_at)
            record.active_s += lag
            record.holding_s += lag
            self._sides[record.side] += lag
        elif isinstance(event, Hold):  # a hold whose start the coach did not see
            record.holds_s.append(event.duration_s)
        elif isinstance(event, TooFastAlert):
            record.too_fast_count += 1
            self._too_fast_until = now + self.settings.too_fast_prompt_s
            self._last_too_fast_speed = event.speed_m_s

    def _summarise(self, now: float, reason: EndReason) -> SessionSummary:
        started = self._session_started if self._session_started is not None else now
        stats = SpeedStats()
        for r in self._records:
            stats.merge(r.stats)
        holds = [h for r in self._records for h in r.holds_s]
        duration = max(now - started, 0.0)
        return SessionSummary(
            routine=self.routine.name, routine_title=self.routine.title,
            started_at=self._session_started_wall,
            ended_at=self._session_started_wall + duration, duration_s=duration,
            end_reason=reason, active_s=sum(r.active_s for r in self._records),
            sides_s=dict(self._sides), strokes=stats.strokes,
            holds=len(holds), longest_hold_s=max(holds, default=0.0),
            too_fast_count=sum(r.too_fast_count for r in self._records),
            too_fast_s=stats.too_fast_s,
            mean_speed_m_s=stats.mean_speed_m_s,
            median_speed_m_s=stats.median_speed_m_s,
            peak_speed_m_s=stats.peak_or_none_m_s,
            steps=tuple(r.to_dict() for r in self._records),
            advice=PAIN_ADVICE if reason == "pain" else "")

    # ---------------------------------------------------------------- speech

    def _speak(self, now: float) -> None:
        """Offer what changed to the announcer and let it decide what is said now.

        A new prompt is offered at its cue's priority; when a step begins its title and
        position are offered as well (at step priority, so they win over the step's first cue).
        """
        step, record, nxt = self._step_context()
        state = self.state
        prompt, _, cue = self._prompt(now, step, record, nxt)
        key = (cue, prompt)
        if key != self._offered_key:
            if self._offered_key is not None and self._offered_key[0] in ("hold", "hold_reached") \
                    and cue not in ("hold", "hold_reached", "hold_long"):
                self.announcer.withdraw(("hold", "hold_reached"))
            self._offered_key = key
            # the position is offered once, when the step begins (below)
            if cue != "position":
                self.announcer.offer(prompt, CUES[cue].priority, cue, now)
        if self._step_began and step is not None and state == "active":
            words = step.position if self._step_named else f"{step.title}. {step.position}"
            # a step begun with next makes the skipped step's words obsolete
            self.announcer.offer(words, Priority.STEP, "position", now,
                                 replaces=("position", "switch_sides", "step_done"))
        self._step_began = False
        self._step_named = False
        self.announcer.update(now)

    def _step_context(self) -> tuple[RoutineStep | None, StepRecord | None, RoutineStep | None]:
        """The current step, its record and the step after it (None where there is none)."""
        step = self.current_step
        record = self._records[self._index] if step is not None and self._index is not None \
            else None
        nxt = None
        if self._index is not None and self._session_started is not None and \
                self._index + 1 < len(self.routine.steps):
            nxt = self.routine.steps[self._index + 1]
        return step, record, nxt

    # ---------------------------------------------------------------- output

    def snapshot(self, now: float | None = None) -> CoachState:
        """The current :class:`CoachState` without feeding anything in."""
        now = self.clock.monotonic() if now is None else now
        live = self._live
        step, record, nxt = self._step_context()
        state = self.state
        prompt, detail, cue = self._prompt(now, step, record, nxt)
        hold = None
        breath = None
        breath_left = None
        if step is not None and state == "active" and live is not None and \
                self._holding:
            elapsed = live.hold_time_s
            hold = {"elapsed_s": elapsed, "min_s": step.hold_min_s, "max_s": step.hold_max_s,
                    "remaining_s": max(step.hold_min_s - elapsed, 0.0)}
            breath, breath_left = self._breath(elapsed)
        total_target = self.routine.total_target_s
        done_s = sum(min(r.active_s, r.target_s) for r in self._records)
        return CoachState(
            t_s=now, state=state, session_id=self.session.id,
            end_reason=self.session.end_reason if state == "done" else None,
            routine=self.routine.name,
            routine_title=self.routine.title,
            step_index=self._index if step is not None else None,
            step_count=len(self.routine.steps), step=_step_info(step),
            next_step=_step_info(nxt), prompt=prompt, detail=detail, cue=cue,
            step_active_s=record.active_s if record else 0.0,
            step_target_s=step.target_active_s if step else 0.0,
            step_progress=min(record.active_s / record.target_s, 1.0) if record else 0.0,
            routine_progress=min(done_s / total_target, 1.0) if total_target > 0 else 0.0,
            sides_s=dict(self._sides), side_targets_s=dict(self._side_targets),
            strokes=sum(r.strokes for r in self._records),
            hold=hold, breath=breath, breath_remaining_s=breath_left,
            too_fast=state == "active" and self._too_fast_now(now),
            speed_target_m_s=self.speed_target_m_s, speed_limit_m_s=self.speed_limit_m_s,
            summary=self._summary_dict if self._summary and state == "done"
            else None,
            speech=self.announcer.current.to_dict() if self.announcer.current else None)

    def _too_fast_now(self, now: float) -> bool:
        return now < self._too_fast_until or bool(self._live and self._live.too_fast)

    def _breath(self, elapsed_s: float) -> tuple[Literal["in", "out"], float]:
        s = self.settings
        pos = elapsed_s % (s.breath_in_s + s.breath_out_s)
        if pos < s.breath_in_s:
            return "in", s.breath_in_s - pos
        return "out", s.breath_in_s + s.breath_out_s - pos

    def _prompt(self, now: float, step: RoutineStep | None, record: StepRecord | None,
                nxt: RoutineStep | None) -> tuple[str, str, str]:
        """(prompt, detail, cue) for the current situation: one place for every sentence."""
        r = self.routine
        state = self.state
        if state == "ready":
            if self._live is not None and not self._live.calibrated:
                return ("Leave the roller still for a moment while it gets its bearings.",
                        "It measures its own drift before it can judge your speed.",
                        "calibrating")
            first = r.steps[0]
            tip = r.tips[0] if r.tips else ""
            return (f"Ready for {r.title.lower()}. Press start, or simply begin rolling.",
                    f"First: {first.title}. {tip}".strip(), "ready")
        if state == "done":
            reason = self.session.end_reason
            if self._pain or reason == "pain":
                return PAIN_PROMPT, PAIN_ADVICE, "pain_stop"
            if reason == "stopped":
                return ("Session stopped. Take a moment, breathe, and have some water.",
                        "Press start whenever you want to go again.", "stopped")
            if reason == "idle":
                return ("Session ended after a long rest.",
                        "Start rolling, or press start, to begin a new one.", "idle_end")
            if reason == "shutdown":
                return ("The roller has been switched off. Session saved.",
                        "Your summary stays here until it is back.", "shutdown")
            return (r.closing or "Routine complete. Well done.",
                    "Well done.", "routine_done")
        assert step is not None and record is not None
        if state == "paused":
            return ("Paused. Resume when you are ready.",
                    f"{step.title}: {self._left(record)} s still to go.", "paused")
        if state == "transition":
            assert nxt is not None
            if nxt.muscle == step.muscle and nxt.side != step.side and nxt.side != "none":
                return (f"That side is done. Switch to your {nxt.side} side.", nxt.position,
                        "switch_sides")
            return f"{step.title} done. Next: {nxt.title}.", nxt.position, "step_done"
        live = self._live
        phase = live.phase if live is not None else "idle"
        if phase == "holding" and not self._holding:
            phase = "idle"  # still on the last step's spot: the position prompt says move
        elif phase == "idle" and record.active_s > 0 and self._idle_since is not None and \
                now - self._idle_since < self.settings.idle_prompt_after_s and \
                self._last_moving_phase == "rolling":
            phase = "rolling"  # a reversal or a breath is not a stop: keep the prompt steady
        if self._too_fast_now(now):
            speed = max(self._last_too_fast_speed, live.speed_m_s if live else 0.0)
            target = self.speed_target_m_s or 0.025
            return ("Slow down: about an inch each second.",
                    f"That was {speed * 100:.0f} cm/s; aim for {target * 100:.1f} cm/s.",
                    "too_fast")
        if phase == "holding" and live is not None:
            elapsed = live.hold_time_s
            if elapsed >= step.hold_max_s:
                return ("Long enough on this spot. Roll on slowly to the next one.",
                        f"{self._left(record)} s still to go on this step.", "hold_long")
            if elapsed >= step.hold_min_s:
                return (f"{step.hold_min_s:.0f} seconds reached. Move on, or stay a little "
                        "longer if it helps.", "Keep breathing slowly.", "hold_reached")
            breath, _ = self._breath(elapsed)
            word = "Breathe in slowly" if breath == "in" else "Breathe out and let go"
            return ("Stay on this spot and breathe deeply.", f"{word}.", "hold")
        said = self.announcer.speaking(now)
        if said is not None and said.kind == "position":
            # the step's instructions stay on screen while they are being said
            return step.position, step.caution or f"{self._left(record)} s to go on this step.", \
                "position"
        if phase == "rolling":
            cues = step.cues or ["Slow passes, a few inches each way."]
            i = int(record.active_s // self.settings.cue_interval_s) % len(cues)
            return cues[i], f"{self._left(record)} s to go on this step.", "rolling"
        if record.active_s <= 0.0:
            return step.position, step.caution, "position"
        return ("Keep going: slow passes, or rest on a tender spot.",
                f"{self._left(record)} s to go on this step.", "keep_going")

    @staticmethod
    def _left(record: StepRecord) -> int:
        return max(math.ceil(record.target_s - record.active_s), 0)
