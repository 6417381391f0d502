"""The one door commands come in through: each verb checked once, then the session moved.

A command (MQTT ``cmd/<verb>``, a GPIO button, the display's ``POST /api/cmd/<verb>``) takes one
path into the service::

    CommandInbox.run -> CommandTable.dispatch (verb known? payload decoded and validated)
        -> SessionCommands.<verb> (a start step known to the routine?)
        -> Session.<transition> (allowed in this state? else SessionError)
        -> Coach.sync (the routine follows the session)

:class:`~roller.contract.command_table.CommandTable` answers an unknown verb
(``unknown_command``) and a payload that is not what the verb takes (``bad_payload``);
:class:`SessionCommands` answers a ``start`` step the routine does not have (``bad_payload``)
and turns the session's :class:`~roller.coaching.session.SessionError` into ``not_possible``
with the session's own message. The rules of which state allows what live in
:class:`~roller.coaching.session.Session` alone; the coach keeps the routine's progress only (it
is told where a start begins and when ``next`` skips a step).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from roller.base.settings import setting
from roller.coaching.session import Session, SessionError
from roller.contract.command_table import CommandError, CommandTable, short
from roller.contract.verbs import VERB_DOCS

if TYPE_CHECKING:
    from firmware_bridge.clock import Clock
    from roller.coaching.coach import Coach
    from roller.coaching.routine import Routine

__all__ = ["RoutineProgress", "SessionCommands", "StartPayload"]


@dataclass(frozen=True)
class StartPayload:
    """Optional payload of ``cmd/start``: begin at a given step."""

    step: str | None = setting(None, doc="id of the step to begin with (default: the first)")


class RoutineProgress(Protocol):
    """What the door needs of a coach (:class:`roller.coaching.coach.Coach`): its routine (to
    check a start step), where the next session begins, a skipped step, and catching up."""

    routine: Routine

    def begin_at(self, index: int) -> None: ...

    def skip(self, now: float) -> None: ...

    def sync(self, now: float) -> object: ...


class SessionCommands:
    """Registers every verb (:data:`roller.contract.verbs.VERB_DOCS`) in ``table`` and carries
    each out on ``session``, then lets ``coach`` (None: no routine) catch up."""

    def __init__(self, session: Session, coach: RoutineProgress | None, clock: Clock,
                 table: CommandTable) -> None:
        self.session, self.coach, self.clock, self.table = session, coach, clock, table
        self._handlers: dict[str, Callable[[Any], None]] = {
            "start": self.start, "pause": self.pause, "resume": self.resume,
            "next": self.next, "stop": self.stop, "pain": self.pain,
            "start_pause": self.start_pause}
        for verb, doc in VERB_DOCS.items():
            table.add(verb, self._handlers[verb],
                      payload=StartPayload if verb == "start" else None, doc=doc)

    @classmethod
    def for_coach(cls, coach: Coach) -> SessionCommands:
        """The door to a coach on its own session (tests, benchmarks, the demo page)."""
        return cls(coach.session, coach, coach.clock, CommandTable())

    def run(self, verb: str, payload: bytes = b"") -> None:
        """One command the way MQTT delivers it (raises CommandError when refused)."""
        self.table.dispatch(verb, payload)

    # -- the verbs (payloads already validated by the table) ---------------------------------
    def start(self, payload: StartPayload | None) -> None:
        index = self._step_index(payload.step if payload is not None else None)
        now = self.clock.monotonic()
        self._guarded(lambda: self.session.start(now))
        if self.coach is not None:
            self.coach.begin_at(index)
        self._sync(now)

    def pause(self, payload: None) -> None:
        self._move(self.session.pause)

    def resume(self, payload: None) -> None:
        self._move(self.session.resume)

    def stop(self, payload: None) -> None:
        self._move(self.session.stop)

    def pain(self, payload: None) -> None:
        """Always possible, session or not: safety first."""
        self._move(self.session.pain)

    def next(self, payload: None) -> None:
        if self.coach is None:
            raise CommandError("not_possible", "cmd/next needs a coach with a routine; none "
                               "is running")
        now = self.clock.monotonic()
        started = self._guarded(lambda: self.session.skip(now))
        if not started:
            self.coach.skip(now)
        self._sync(now)

    def start_pause(self, payload: None) -> None:
        """The single button: whichever of start, pause or resume the session's state means
        (:attr:`Session.button_verb`)."""
        verb = self.session.button_verb
        self._handlers[verb](StartPayload() if verb == "start" else None)

    # -- the one path -------------------------------------------------------------------------
    def _step_index(self, step: str | None) -> int:
        """Where a start begins in the routine: a step id it does not have is a bad payload."""
        if step is None:
            return 0
        if self.coach is None:
            raise CommandError("bad_payload", f"cmd/start: step: no routine to start at (the "
                               f"coach is off), got {short(step)}", key="step",
                               expected="no step", actual=short(step))
        routine = self.coach.routine
        try:
            return routine.step_index(step)
        except KeyError:
            ids = [s.id for s in routine.steps]
            raise CommandError("bad_payload", f"cmd/start: step: expected one of "
                               f"{', '.join(ids)}, got {short(step)}", key="step",
                               expected=ids, actual=short(step)) from None

    def _move(self, change: Callable[[float], object]) -> None:
        now = self.clock.monotonic()
        self._guarded(lambda: change(now))
        self._sync(now)

    def _guarded(self, change: Callable[[], Any]) -> Any:
        """Run a lifecycle change; a refusal is kept on the session (its ``last_error``, shown
        by Home Assistant) until the next accepted command."""
        try:
            return change()
        except SessionError as exc:
            self.session.last_refusal = str(exc)
            raise CommandError("not_possible", str(exc)) from None

    def _sync(self, now: float) -> None:
        self.session.last_refusal = None  # accepted
        if self.coach is not None:
            self.coach.sync(now)
