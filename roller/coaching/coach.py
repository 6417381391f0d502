"""The coach: walks a person through a routine, following what the pipeline sees.

:class:`Coach` is a small stateful object in the style of the pipeline stages: the service calls
``update(events, live, now)`` after each pipeline block and gets back a :class:`CoachState`, a
snapshot for displays (published retained on the ``coach`` topic).

The coach keeps the routine's progress and nothing else. The session -- when it starts, pauses,
resumes and ends, and why -- is the one lifecycle in :mod:`roller.coaching.session`; commands
reach it through one door (:mod:`roller.coaching.session_commands`), which tells the coach where
a start begins (:meth:`Coach.begin_at`) and when ``next`` skips a step (:meth:`Coach.skip`). The
words are :mod:`roller.coaching.prompts`'s, the records :mod:`roller.coaching.records`'s.
The coach's state is a view of the session's:

* **ready** while the session is ``idle`` (until ``start``, or, with ``[session] auto_start``,
  until the person starts rolling);
* **active** in a step: the step counts *active time* -- time spent rolling or holding on a
  tender spot; lying still does not count. Prompts follow the live phase: a slow-down prompt
  after a too-fast alert, a breathing rhythm and countdown during a hold, then "hold long
  enough" and "time to move on"; the step's cues while rolling; its position while idle;
* **transition** once the step's target is reached: "switch sides" or "next: ..." for
  ``transition_s`` (the person changes position; nothing counts for a step), then the next step;
* **paused** while the session is paused (nothing counts) until ``resume``;
* **done** once the session is ``finished``: the last step complete (the coach ends the session
  itself, ``completed``), ``stop``, the idle timeout, the service's shutdown, or ``pain`` -- which
  ends the session at once and tells the person to stop, breathe, and see a health professional
  if the pain stays.

Without a session given, the coach makes its own (tests, benchmarks) and feeds it the pipeline's
events itself; in the service the :class:`~roller.service.loop.Service` owns the session, feeds it,
and gives it to the coach with :meth:`Coach.follow`.

When a session ends its :class:`~roller.coaching.records.SessionSummary` (the session's figures
with the routine's steps) waits in :meth:`Coach.pop_summary` for the service to store it in the
history -- the same summary the display shows; a session under ``[session]
min_record_active_s`` of active time gets neither. Times given to ``update`` are seconds on the
coach's clock (monotonic); wall-clock timestamps only label the summary.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Literal

from firmware_bridge.clock import Clock, SystemClock
from roller.base.settings import setting
from roller.coaching.prompts import PAIN_ADVICE, CoachPhase, Prompt, Sentences, Situation
from roller.coaching.records import SessionSummary, StepRecord
from roller.coaching.routine import DEFAULT_ROUTINE, Routine, RoutineStep
from roller.coaching.session import ActiveTime, Session, SessionSettings
from roller.coaching.speech import Announcer, Narrator, SpeechSettings
from roller.contract.messages import coach_payload
from roller.pipeline.events import (
    Event,
    Hold,
    HoldStarted,
    LiveState,
    Stroke,
    TooFast,
    TooFastAlert,
)
from roller.pipeline.settings import PipelineSettings

__all__ = ["Coach", "CoachSettings", "CoachState"]

_PIPELINE_DEFAULTS = PipelineSettings()
"""The go-slow figures a coach names when none are given: the pipeline's own defaults."""


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
    """How much of the step's dose is met, 0..1 (:meth:`StepRecord.dose`)."""
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
    dose: dict[str, Any] | None = None
    """The current step's dose on its muscle and side (:meth:`StepRecord.dose`): rolling_s of
    rolling_target_s, holds of holds_target, progress 0..1, met; None outside a step."""

    def to_dict(self) -> dict[str, Any]:
        """The ``coach`` payload, shaped by :func:`roller.contract.messages.coach_payload` (numbers
        rounded to 4 decimals, units in the field names)."""
        return coach_payload(dataclasses.asdict(self))


def _dose_text(dose: dict[str, Any]) -> str:
    """A dose as the detail line shows it."""
    if dose["met"]:
        return "Dose met on this side."
    text = f"Rolling {dose['rolling_s']:.0f} of {dose['rolling_target_s']:.0f} s"
    if dose["holds_target"]:
        text += f", holds {dose['holds']} of {dose['holds_target']}"
    return text + "."


def _step_info(step: RoutineStep | None) -> dict[str, Any] | None:
    if step is None:
        return None
    return {"id": step.id, "title": step.title, "muscle": step.muscle, "side": step.side,
            "prop": step.prop, "position": step.position, "caution": step.caution,
            "target_active_s": step.target_active_s}


class Coach:
    """Guides one person through ``routine``; see the module docstring for the flow.

    ``speed_target_m_s`` / ``speed_limit_m_s`` are the pipeline's go-slow figures (default: the
    pipeline's defaults), passed through so displays draw the same band the pipeline judges by
    and the slow-down prompt names the target in use. ``wall_clock`` labels summaries with real
    dates (tests inject a fixed one). ``session`` is the lifecycle to follow; without one the
    coach makes its own (with ``session_settings``) and feeds it itself.
    """

    def __init__(self, routine: Routine, settings: CoachSettings | None = None,
                 clock: Clock | None = None, *,
                 speed_target_m_s: float = _PIPELINE_DEFAULTS.target_speed_m_s,
                 speed_limit_m_s: float = _PIPELINE_DEFAULTS.max_speed_m_s,
                 wall_clock: Callable[[], float] = time.time,
                 speech: SpeechSettings | None = None,
                 session: Session | None = None,
                 session_settings: SessionSettings | None = None) -> None:
        self.routine = routine
        self.settings = settings or CoachSettings()
        self.clock = clock or SystemClock()
        self.speed_target_m_s = speed_target_m_s
        self.speed_limit_m_s = speed_limit_m_s
        self.sentences = Sentences(speed_target_m_s, self.settings.cue_interval_s)
        self.session = session or Session(session_settings, wall_clock=wall_clock)
        self._owns_session = session is None
        self._side_targets = {"left": 0.0, "right": 0.0, "none": 0.0}
        for step in routine.steps:  # the dose: rolling plus the holds' window, per side
            self._side_targets[step.side] += step.dose_rolling_s + \
                step.dose_holds * step.hold_min_s
        self._generation = self.session.generation
        self._start_index = 0
        # progress through the routine
        self._index: int | None = None
        self._records: list[StepRecord] = []
        self._sides = {"left": 0.0, "right": 0.0, "none": 0.0}
        self._active = ActiveTime()
        self._session_started: float | None = None
        """Coach time the routine began; None when no session of the coach's is under way."""
        self._counting_since = -math.inf
        """The latest start, resume or step change [s]: a step counts no time from before it."""
        self._in_transition = False
        self._transition_since = 0.0
        self._paused_at: float | None = None
        # what the pipeline shows
        self._last_now: float | None = None
        self._live: LiveState | None = None
        self._idle_since: float | None = None
        self._prev_phase = "idle"
        self._last_moving_phase = "rolling"
        self._hold_owner: int | None = None
        """The step a hold in progress belongs to (None: no hold, or not in any step)."""
        self._holding = False
        self._too_fast_until = -math.inf
        self._last_too_fast_speed = 0.0
        # the end
        self._summary: SessionSummary | None = None
        self._summary_dict: dict[str, Any] | None = None  # built once: snapshots are frequent
        self._pending_summary: SessionSummary | None = None
        # speech: what is said aloud is decided here, once, for every display
        self.narrator = Narrator(Announcer(speech))
        self.announcer = self.narrator.announcer

    def follow(self, session: Session) -> None:
        """Follow ``session`` (the service's) instead of its own: whoever owns it feeds it the
        pipeline's events and moves it (commands through
        :class:`~roller.coaching.session_commands.SessionCommands`)."""
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
        self._note_phase(phase, now)
        if self._owns_session:
            for event in events:
                self.session.observe_event(event, now)
            self.session.observe_phase(live, now)
        self._follow(now)
        # Only the active step collects events and time: moving about between steps or while
        # paused is not part of any step.
        record = self._records[self._index] if self._index is not None and \
            self.state == "active" and self._session_started is not None else None
        foreign_hold = self._take_events(phase, events, record, now)
        if record is not None:
            self._count(record, phase, now, dt, foreign_hold)
            self._check_step_done(record, now)
        if self.state == "transition" and self.settings.auto_advance and \
                now - self._transition_since >= self.settings.transition_s:
            self._advance(now, announced=True)
        self._holding = phase == "holding" and self._hold_owner == self._index
        self._speak(now)
        return self.snapshot(now)

    def begin_at(self, index: int) -> None:
        """The session just started by command begins the routine at step ``index``."""
        self._start_index = index

    def skip(self, now: float) -> None:
        """``next`` in a session under way: the current step is left (skipped unless
        complete) and the next begins, or the routine ends after the last."""
        self._follow(now)
        if self._session_started is None or self._index is None:
            return
        record = self._records[self._index]
        record.skipped = not record.completed
        self._in_transition = False
        self._advance(now)

    def pop_summary(self) -> SessionSummary | None:
        """The summary of a session that just ended, once (then None): for the history."""
        summary, self._pending_summary = self._pending_summary, None
        return summary

    # ---------------------------------------------------------------- following the session

    def sync(self, now: float) -> CoachState:
        """Catch up with the session without new pipeline data (after a command, or the
        service's shutdown) and return the state to publish."""
        self._follow(now)
        self._speak(now)
        return self.snapshot(now)

    def _follow(self, now: float) -> None:
        """Catch up with the session: a new one begins the routine, an ended one ends it, a
        pause freezes the transition clock."""
        s = self.session
        if s.generation != self._generation:
            self._generation = s.generation
            if self._session_started is not None:  # the one before ended unseen: its
                self._finish(summarise=False)      # figures are gone with the new start
            self._start(now, self._start_index)
            self._start_index = 0
        if s.state == "finished" and self._session_started is not None:
            self._finish()
        if s.state == "paused" and self._paused_at is None:
            self._paused_at = now
        elif s.state == "running" and self._paused_at is not None:
            if self._in_transition:
                self._transition_since += now - self._paused_at
            self._paused_at = None
            self._counting_since = now

    def _end(self, now: float, reason: Literal["completed"]) -> None:
        """The routine ended the session."""
        if self.session.live:
            self.session.stop(now, reason)
        self._finish()

    def _start(self, now: float, index: int) -> None:
        self._records = [StepRecord.for_step(s) for s in self.routine.steps]
        self._sides = {"left": 0.0, "right": 0.0, "none": 0.0}
        self._active = ActiveTime()
        self._session_started = self._counting_since = now
        self._index = index
        self._in_transition = False
        self._paused_at = None
        self._summary = None
        self._summary_dict = None
        self._too_fast_until = -math.inf
        self.narrator.step_begins(named=False)
        holding = self._live is not None and self._live.phase == "holding"
        self._hold_owner = index if holding else None

    def _finish(self, *, summarise: bool = True) -> None:
        """The session ended: its summary, if it is worth keeping (``[session]
        min_record_active_s`` of the session's active time), is shown and stored alike."""
        self.announcer.reset()
        self._in_transition = False
        if self._session_started is None:
            return
        self._session_started = None
        s = self.session
        self._count_open_hold()
        if not summarise or s.active_s < s.settings.min_record_active_s:
            return
        self._summary = SessionSummary.of(
            s, self.routine, self._records, self._sides,
            advice=PAIN_ADVICE if s.end_reason == "pain" else "")
        self._summary_dict = self._summary.to_dict()
        self._pending_summary = self._summary
        s.routine = self._summary_dict

    def _count_open_hold(self) -> None:
        """The session ended during a hold that reached its step's window: it counts (for
        the step, its dose and the session), though the pipeline has not ended it yet."""
        live, owner = self._live, self._hold_owner
        self._hold_owner = None
        if owner is None or live is None or live.phase != "holding" or not self._records:
            return
        record = self._records[owner]
        if live.hold_time_s >= record.hold_min_s:
            record.holds_s.append(live.hold_time_s)
            self.session.count_open_hold(live.hold_time_s)

    # ---------------------------------------------------------------- progress

    def _note_phase(self, phase: str, now: float) -> None:
        if phase in ("rolling", "holding"):
            self._last_moving_phase = phase
            self._idle_since = None
        elif self._idle_since is None:
            self._idle_since = now

    def _take_events(self, phase: str, events: list[Event], record: StepRecord | None,
                     now: float) -> bool:
        """The step's share of the events, each hold to the step it began in; True while a
        hold carried over from an earlier step goes on (it does not count here)."""
        if phase == "holding" and self._prev_phase != "holding":
            self._hold_started()
            self._too_fast_until = -math.inf  # a new hold: the last fast pass is over
        self._prev_phase = phase
        for event in events:
            if isinstance(event, Hold) and self._hold_owner is not None:
                # a hold belongs to the step it started in, even if it ends after that step
                if self._records:
                    self._records[self._hold_owner].holds_s.append(event.duration_s)
                self._hold_owner = None
            elif record is not None:
                self._account_event(record, event, now)
        foreign_hold = phase == "holding" and self._hold_owner != self._index
        self._holding = phase == "holding" and not foreign_hold
        return foreign_hold

    def _count(self, record: StepRecord, phase: str, now: float, dt: float,
               foreign_hold: bool) -> None:
        """Active time of the step: rolling, or holding its own hold, since the latest start,
        resume or step change."""
        dt = min(dt, max(now - self._counting_since, 0.0))
        counting = phase in ("rolling", "holding") and not foreign_hold
        if self._active.tick(now, dt, counting) <= 0:
            return
        record.active_s += dt
        if phase == "rolling":
            record.rolling_s += dt
        else:
            record.holding_s += dt
        self._sides[record.side] += dt

    def _current_hold_s(self) -> float:
        """The hold under way on this step's muscle and side [s] (0 when none)."""
        return self._live.hold_time_s if self._holding and self._live is not None else 0.0

    def _check_step_done(self, record: StepRecord, now: float) -> None:
        """The step ends once its dose is met (rolling and holds on this muscle and side,
        :meth:`StepRecord.dose`), not on a timer; a hold short of its window finishes first."""
        if not record.dose(self._current_hold_s())["met"] or self._hold_too_short():
            return
        record.completed = True
        if self._index == len(self.routine.steps) - 1:
            self._end(now, "completed")
        else:
            self._in_transition = True
            self._transition_since = now

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
        self._counting_since = now  # a hold begun while changing position counts from here
        self._too_fast_until = -math.inf
        self.narrator.step_begins(named=announced)

    def _account_event(self, record: StepRecord, event: Event, now: float) -> None:
        if isinstance(event, (Stroke, TooFast)):
            record.stats.add(event)
        elif isinstance(event, HoldStarted) and self._hold_owner == self._index:
            # The pipeline recognises a hold only after the roller has stayed put for a few
            # seconds; those seconds were holding, so count them once it is known (not those
            # already counted as rolling, nor any before the step began or the latest resume).
            since = max(event.start, self._counting_since)
            lag = self._active.hold_credit(since, event.emitted_at)
            record.active_s += lag
            record.holding_s += lag
            self._sides[record.side] += lag
        # A hold the coach never saw as ``holding`` is not counted: nobody was on the roller
        # (the pipeline's hold events also mark a still, empty roller; the live phase does not).
        elif isinstance(event, TooFastAlert):
            record.too_fast_count += 1
            self._too_fast_until = now + self.settings.too_fast_prompt_s
            self._last_too_fast_speed = event.speed_m_s

    # ---------------------------------------------------------------- speech

    def _speak(self, now: float) -> None:
        """Tell the narrator the words for now (and the step's, when it begins); the announcer
        decides what is said (:mod:`roller.coaching.speech`)."""
        step, record, nxt = self._step_context()
        prompt = self._prompt(now, step, record, nxt)
        active = step if step is not None and self.state == "active" else None
        self.narrator.tell(prompt.words, prompt.cue, now,
                           step=(active.spoken_title, active.spoken_position,
                                 active.spoken_caution) if active is not None else None)

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
        step, record, nxt = self._step_context()
        state = self.state
        prompt = self._prompt(now, step, record, nxt)
        hold, breath, breath_left = self._hold_view(step, state)
        dose = record.dose(self._current_hold_s()) if record is not None else None
        total_target = self.routine.total_target_s
        done_s = sum(min(r.active_s, r.target_s) for r in self._records)
        return CoachState(
            t_s=now, state=state, session_id=self.session.id,
            end_reason=self.session.end_reason if state == "done" else None,
            routine=self.routine.name,
            routine_title=self.routine.title,
            step_index=self._index if step is not None else None,
            step_count=len(self.routine.steps), step=_step_info(step),
            next_step=_step_info(nxt), prompt=prompt.text, detail=prompt.detail,
            cue=prompt.cue,
            step_active_s=record.active_s if record else 0.0,
            step_target_s=step.target_active_s if step else 0.0,
            step_progress=dose["progress"] if dose else 0.0,
            routine_progress=min(done_s / total_target, 1.0) if total_target > 0 else 0.0,
            sides_s=dict(self._sides), side_targets_s=dict(self._side_targets),
            strokes=sum(r.strokes for r in self._records),
            hold=hold, breath=breath, breath_remaining_s=breath_left,
            too_fast=state == "active" and self._too_fast_now(now) and not self._holding,
            speed_target_m_s=self.speed_target_m_s, speed_limit_m_s=self.speed_limit_m_s,
            summary=self._summary_dict if state == "done" else None,
            speech=self.announcer.current.to_dict() if self.announcer.current else None,
            dose=dose)

    def _hold_view(self, step: RoutineStep | None, state: CoachPhase,
                   ) -> tuple[dict[str, float] | None, Literal["in", "out"] | None,
                              float | None]:
        """During a hold of this step: (hold, breath, breath_remaining_s), else Nones."""
        live = self._live
        if step is None or state != "active" or live is None or not self._holding:
            return None, None, None
        elapsed = live.hold_time_s
        hold = {"elapsed_s": elapsed, "min_s": step.hold_min_s, "max_s": step.hold_max_s,
                "remaining_s": max(step.hold_min_s - elapsed, 0.0)}
        breath, left = self._breath(elapsed)
        return hold, breath, left

    def _too_fast_now(self, now: float) -> bool:
        return now < self._too_fast_until or bool(self._live and self._live.too_fast)

    def _breath(self, elapsed_s: float) -> tuple[Literal["in", "out"], float]:
        s = self.settings
        pos = elapsed_s % (s.breath_in_s + s.breath_out_s)
        if pos < s.breath_in_s:
            return "in", s.breath_in_s - pos
        return "out", s.breath_in_s + s.breath_out_s - pos

    def _prompt(self, now: float, step: RoutineStep | None, record: StepRecord | None,
                nxt: RoutineStep | None) -> Prompt:
        """The words for now (:mod:`roller.coaching.prompts`)."""
        return self.sentences.say(self._situation(now, step, record, nxt))

    def _situation(self, now: float, step: RoutineStep | None, record: StepRecord | None,
                   nxt: RoutineStep | None) -> Situation:
        live = self._live
        state = self.state
        too_fast = None
        if state == "active" and self._too_fast_now(now) and not self._holding:
            too_fast = max(self._last_too_fast_speed, live.speed_m_s if live else 0.0)
        said = self.announcer.speaking(now)
        hold_s = live.hold_time_s if live is not None else 0.0
        return Situation(
            state=state, routine=self.routine, step=step, next_step=nxt,
            step_active_s=record.active_s if record else 0.0,
            step_left_s=record.left_s if record else 0.0,
            phase=self._shown_phase(now, record), hold_elapsed_s=hold_s,
            breath=self._breath(hold_s)[0], too_fast_speed_m_s=too_fast,
            speaking_position=said is not None and said.kind == "position",
            calibrated=live is None or live.calibrated,
            end_reason=self.session.end_reason, pain=self.session.pain_stop,
            dose_text=_dose_text(record.dose(self._current_hold_s())) if record else "")

    def _shown_phase(self, now: float, record: StepRecord | None) -> str:
        """The live phase as the prompt follows it: a hold that is not this step's shows as
        idle (the position prompt says move), a short pause in rolling as rolling."""
        phase = self._live.phase if self._live is not None else "idle"
        if phase == "holding" and not self._holding:
            return "idle"  # still on the last step's spot
        if phase == "idle" and record is not None and record.active_s > 0 and \
                self._idle_since is not None and \
                now - self._idle_since < self.settings.idle_prompt_after_s and \
                self._last_moving_phase == "rolling":
            return "rolling"  # a reversal or a breath is not a stop: keep the prompt steady
        return phase
