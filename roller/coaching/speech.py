"""What the coach says aloud, and when: the speech policy as a small stateful object.

A person lying on a roller cannot read a screen, so the spoken prompts are the coaching; a
stream of half-finished sentences is worse than silence. :class:`Announcer` takes *candidate*
prompts (``offer``) with a :class:`Priority` and decides, on the coach's clock, which of them
is spoken (``update``). The rules (docs/coaching.md):

* **Priorities**: safety > slow down > step change / position > hold milestones >
  encouragement.
* **No cut-offs**: a sentence being spoken (its length estimated from its words at
  ``words_per_s``) is interrupted only by a more urgent safety or slow-down sentence (the page
  then cancels and speaks the new one); anything else waits for its end -- and a step's
  instructions (where to lie, which side, its caution) are interrupted only for safety: a
  person with eyes closed cannot follow half a position, and a too-fast pass already has its
  beep. For the same reason a slow-down that arises while step instructions wait or are
  spoken is dropped rather than pushing them past their freshness. One exception to "it
  waits": a candidate may *replace* kinds whose sentence is obsolete -- a step begun by
  ``next`` replaces the position of the step just skipped (the page then cuts it:
  ``replaces_id``).
* **Never stale**: a candidate not spoken within ``stale_s`` of being offered is dropped: it
  described a moment that has passed. A step's instructions wait longer (``step_stale_s``):
  they stay true until the step moves on, and must not be lost to the sentence before them.
* **No nagging**: the same sentence at most ``max_repeats`` times in ``repeat_window_s``.
* **Quiet while it goes well**: at most ``max_per_minute`` utterances in any minute, and
  encouragement only after ``quiet_s`` without speech. Safety, slow-down and step prompts are
  always allowed by the budget (the repeat rule still applies to slow-down).

Times are seconds on the caller's clock (monotonic); nothing here reads a clock, so tests drive
it with any sequence of times. Instant feedback (a too-fast pass, a hold long enough) is a beep
on the page, not speech.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal

from roller.base.settings import setting
from roller.contract.cues import CUES, SPEECH_STALE_S, Priority


@dataclass(frozen=True)
class SpeechSettings:
    """The speech policy's limits. The coach takes them as ``Coach(speech=...)``; they are not
    a config section yet (the defaults are the policy in docs/coaching.md)."""

    words_per_s: float = setting(2.5, unit="words/s", minimum=0.5, maximum=6.0,
                                 doc="speaking rate used to estimate how long a sentence takes")
    gap_s: float = setting(0.6, unit="s", minimum=0.0, maximum=5.0,
                           doc="silence kept after a sentence before the next one")
    stale_s: float = setting(SPEECH_STALE_S, unit="s", minimum=0.5, maximum=10.0,
                             doc="a prompt not spoken this long after it arose is dropped")
    step_stale_s: float = setting(12.0, unit="s", minimum=0.5, maximum=60.0,
                                  doc="... except a step's instructions (where to lie, the "
                                      "caution), which stay true until the step moves on: they "
                                      "wait this long for the sentence before them to end")
    repeat_window_s: float = setting(60.0, unit="s", minimum=0.0, maximum=600.0,
                                     doc="window for the repeat rule")
    max_repeats: int = setting(2, minimum=1, maximum=10,
                               doc="the same sentence at most this often in repeat_window_s")
    max_per_minute: int = setting(6, minimum=1, maximum=30,
                                  doc="spoken prompts in any 60 s (safety, slow-down and step "
                                      "prompts are always allowed)")
    quiet_s: float = setting(20.0, unit="s", minimum=0.0, maximum=300.0,
                             doc="encouragement only after this long without speech")


@dataclass(frozen=True)
class Utterance:
    """One decided sentence: the page speaks it once (by ``id``) and only if it is fresh."""

    id: int
    """Increasing per announcer: a page speaks each id once."""
    text: str
    priority: Priority
    kind: str
    """What it is about (the coach's cue: position, too_fast, hold_reached, ...)."""
    asked_s: float
    """When the situation arose (the candidate was offered) [s, coach clock]."""
    decided_s: float
    """When it was chosen to be spoken now [s, coach clock]; at most stale_s after asked_s."""
    duration_s: float
    """Estimated speaking time [s]."""
    replaces_id: int | None = None
    """The utterance this one cuts because it became obsolete (e.g. skipped with next)."""

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "text": self.text, "priority": int(self.priority),
                "kind": self.kind, "asked_s": self.asked_s, "decided_s": self.decided_s,
                "duration_s": self.duration_s, "replaces_id": self.replaces_id}


@dataclass(frozen=True)
class _Candidate:
    text: str
    priority: Priority
    kind: str
    asked_s: float
    replaces: tuple[str, ...] = ()


def _may_interrupt(new: Priority, speaking: Priority) -> bool:
    """Only a safety or slow-down sentence cuts one being said (a slow-down never cuts step
    instructions): anything else waits for the end."""
    if new <= speaking or new < Priority.SLOW_DOWN:
        return False
    return speaking < Priority.STEP or new == Priority.SAFETY


def speaking_time_s(text: str, words_per_s: float) -> float:
    """Estimated time to say ``text`` [s]: its words at ``words_per_s``, at least 0.8 s."""
    return max(len(text.split()) / words_per_s, 0.8)


class Announcer:
    """Decides which offered prompts are spoken; see the module docstring for the rules.

    ``offer`` a candidate when something happens; call ``update(now)`` regularly (each coach
    update): it returns a new :class:`Utterance` when one is to be spoken now, else None.
    ``current`` is the last decided utterance (published so a page that reconnects knows it).
    """

    def __init__(self, settings: SpeechSettings | None = None) -> None:
        self.settings = settings or SpeechSettings()
        self._pending: list[_Candidate] = []
        self._spoken: deque[Utterance] = deque()  # within the last repeat/budget window
        self._speaking: Utterance | None = None
        self._speaking_until = float("-inf")
        self._last_end = float("-inf")
        self._next_id = 1
        self.current: Utterance | None = None
        self.dropped_stale = 0
        self.dropped_repeat = 0
        self.dropped_budget = 0

    def offer(self, text: str, priority: Priority, kind: str, now: float, *,
              replaces: tuple[str, ...] = ()) -> None:
        """A prompt that could be spoken from ``now`` [s]; ``replaces``: kinds of sentence it
        makes obsolete (it may cut one of them, even of equal priority).

        A waiting candidate of the same kind, or a waiting hold milestone or encouragement of
        equal or lower priority, is superseded: the newest situation matters. Step prompts and
        anything more urgent keep waiting (until spoken or stale).
        """
        text = text.strip()
        if not text:
            return
        self._pending = [c for c in self._pending if c.kind != kind and (
            c.priority > priority or c.priority >= Priority.STEP)]
        self._pending.append(_Candidate(text, Priority(priority), kind, now, replaces))

    def withdraw(self, kinds: tuple[str, ...]) -> None:
        """Forget waiting candidates of these kinds (their moment is over: a hold ended)."""
        self._pending = [c for c in self._pending if c.kind not in kinds]

    def reset(self) -> None:
        """Forget everything waiting (the session ended or restarted); history is kept."""
        self._pending.clear()

    def speaking(self, now: float) -> Utterance | None:
        """The utterance still being spoken at ``now`` (by its estimated length), if any."""
        return self._speaking if now < self._speaking_until else None

    def update(self, now: float) -> Utterance | None:
        """Decide at ``now`` [s]: the utterance to speak now, or None."""
        self._forget(now)
        busy = self.speaking(now)
        # highest priority first, newest first among equals
        for cand in sorted(self._pending, key=lambda c: (c.priority, c.asked_s), reverse=True):
            verdict = self._verdict(cand, now, busy)
            if verdict == "wait":
                break  # it waits (or goes stale); nothing lower may go either
            if verdict == "say":
                return self._say(cand, now, busy.id if busy is not None else None)
            self._pending.remove(cand)
            if verdict == "repeat":
                self.dropped_repeat += 1
            else:
                self.dropped_budget += 1
        return None

    def _forget(self, now: float) -> None:
        """Drop what left the repeat/budget window and the candidates gone stale."""
        s = self.settings
        horizon = now - max(s.repeat_window_s, 60.0)
        while self._spoken and self._spoken[0].decided_s < horizon:
            self._spoken.popleft()
        fresh = [c for c in self._pending if now - c.asked_s <= (
            s.step_stale_s if c.kind == "position" else s.stale_s)]
        self.dropped_stale += len(self._pending) - len(fresh)
        self._pending = fresh

    def _verdict(self, cand: _Candidate, now: float, busy: Utterance | None,
                 ) -> Literal["say", "wait", "repeat", "budget"]:
        """What becomes of ``cand`` now: said, kept waiting, or dropped (as a repeat, or by
        the budget)."""
        if busy is not None and busy.kind not in cand.replaces and \
                not _may_interrupt(cand.priority, busy.priority):
            return "wait"
        if cand.priority == Priority.SLOW_DOWN and (
                (busy is not None and busy.priority == Priority.STEP)
                or any(c.priority == Priority.STEP for c in self._pending)):
            return "budget"  # step instructions go first: the pass already had its beep
        if self._repeats(cand.text, now) >= self.settings.max_repeats:
            return "repeat"
        breath = busy is None and now < self._last_end + self.settings.gap_s
        if cand.priority >= Priority.STEP:
            return "wait" if breath and cand.priority < Priority.SAFETY else "say"
        return self._budget_verdict(cand, now, breath)

    def _budget_verdict(self, cand: _Candidate, now: float, breath: bool,
                        ) -> Literal["say", "wait", "budget"]:
        """Below step priority: the budget per minute, a breath between sentences, and quiet
        before encouragement."""
        s = self.settings
        recent = sum(1 for u in self._spoken if u.decided_s > now - 60.0)
        if recent >= s.max_per_minute:
            return "budget"
        if breath:
            return "wait"  # a breath between sentences
        if cand.priority == Priority.ENCOURAGEMENT and now - self._last_end < s.quiet_s:
            return "budget"
        return "say"

    def _repeats(self, text: str, now: float) -> int:
        window = self.settings.repeat_window_s
        return sum(1 for u in self._spoken if u.text == text and u.decided_s > now - window)

    def _say(self, cand: _Candidate, now: float, cut_id: int | None) -> Utterance:
        self._pending.remove(cand)
        duration = speaking_time_s(cand.text, self.settings.words_per_s)
        utt = Utterance(id=self._next_id, text=cand.text, priority=cand.priority,
                        kind=cand.kind, asked_s=cand.asked_s, decided_s=now,
                        duration_s=duration, replaces_id=cut_id)
        self._next_id += 1
        self._spoken.append(utt)
        self._speaking = utt
        self._speaking_until = now + duration
        self._last_end = now + duration
        self.current = utt
        return utt


HOLD_KINDS = ("hold", "hold_reached")
"""Hold milestones: their moment is over once the prompt leaves the hold."""


class Narrator:
    """What the coach offers its :class:`Announcer`: each new prompt once, at its cue's
    priority (:data:`roller.contract.cues.CUES`), and, when a step begins, its title and
    position at step priority (so they win over the step's first cue)."""

    def __init__(self, announcer: Announcer) -> None:
        self.announcer = announcer
        self._offered: tuple[str, str] | None = None
        self._step_began = False
        self._step_named = False

    def step_begins(self, *, named: bool) -> None:
        """A step begins; ``named``: the transition prompt already said its title."""
        self._step_began = True
        self._step_named = named

    def tell(self, text: str, cue: str, now: float, *,
             step: tuple[str, str, str] | None = None) -> Utterance | None:
        """The prompt's spoken words ``text`` at ``now`` [s] (``step``: the spoken title,
        position and caution of the active step); returns what the announcer decides to say
        now, if anything."""
        key = (cue, text)
        if key != self._offered:
            if self._offered is not None and self._offered[0] in HOLD_KINDS \
                    and cue not in (*HOLD_KINDS, "hold_long"):
                self.announcer.withdraw(HOLD_KINDS)
            self._offered = key
            # the position is offered once, when the step begins (below)
            if cue != "position":
                self.announcer.offer(text, CUES[cue].priority, cue, now)
        if self._step_began and step is not None:
            title, position, caution = step
            words = position if self._step_named else f"{title}. {position}"
            # the caution goes with the position: one utterance, so it cannot be dropped
            words = f"{words} {caution}".strip()
            # a step begun with next makes the skipped step's words obsolete
            self.announcer.offer(words, Priority.STEP, "position", now,
                                 replaces=("position", "switch_sides", "step_done"))
        self._step_began = False
        self._step_named = False
        return self.announcer.update(now)
