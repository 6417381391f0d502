"""Every sentence the coach shows and says: a :class:`Situation` in, a :class:`Prompt` out.

:class:`Sentences` is the one place that turns where a person is in the routine into words
(the coach decides the situation; :mod:`roller.coaching.speech` decides what is said aloud and
when). Speeds in the words are the configured ones (``[pipeline] target_speed_m_s``), never a
fixed figure. Write any new sentence here; ``cue`` is the machine-readable kind a display uses
for sounds and colours (:data:`roller.contract.cues.CUES`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, NamedTuple

if TYPE_CHECKING:
    from roller.coaching.routine import Routine, RoutineStep

CoachPhase = Literal["ready", "active", "transition", "paused", "done"]

__all__ = ["PAIN_ADVICE", "PAIN_PROMPT", "CoachPhase", "Prompt", "Sentences", "Situation"]

PAIN_PROMPT = "Stop rolling now. Ease off the roller and breathe slowly."
PAIN_ADVICE = ("Rest for a while. If the pain was sharp, or it is still there later, see a doctor "
               "or physiotherapist before you roll again.")

DEFAULT_ROLLING_CUE = "Slow passes, a few inches each way."


class Prompt(NamedTuple):
    """What to show: the sentence (large), a second line, its kind, and the words said aloud
    when they differ from the text (shorter, no brackets or abbreviations)."""

    text: str
    detail: str
    cue: str
    spoken: str = ""

    @property
    def words(self) -> str:
        """What is said aloud for this prompt."""
        return self.spoken or self.text


@dataclass(frozen=True)
class Situation:
    """Where the person is, as far as words go (times in s, speeds in m/s)."""

    state: CoachPhase
    routine: Routine
    step: RoutineStep | None = None
    next_step: RoutineStep | None = None
    step_active_s: float = 0.0
    """Active time in the current step so far."""
    step_left_s: float = 0.0
    """Active time still to go in the current step."""
    phase: str = "idle"
    """The live phase as the prompt should follow it: ``rolling``, ``holding`` (a hold of this
    step) or ``idle``."""
    hold_elapsed_s: float = 0.0
    breath: Literal["in", "out"] | None = None
    too_fast_speed_m_s: float | None = None
    """Set while the slow-down prompt is up: the speed that raised it."""
    speaking_position: bool = False
    """The step's position is being said aloud right now (keep it on screen)."""
    calibrated: bool = True
    end_reason: str | None = None
    pain: bool = False
    dose_text: str = ""
    """The step's dose so far, as shown: ``Rolling 12 of 30 s, holds 0 of 1.``"""


class Sentences:
    """The coach's words, with the go-slow target ``speed_target_m_s`` [m/s] it names and the
    ``cue_interval_s`` [s] of active time after which a step's next rolling cue is shown."""

    def __init__(self, speed_target_m_s: float, cue_interval_s: float) -> None:
        self.speed_target_m_s = speed_target_m_s
        self.cue_interval_s = cue_interval_s

    def say(self, s: Situation) -> Prompt:
        if s.state == "ready":
            return self._ready(s)
        if s.state == "done":
            return self._done(s)
        assert s.step is not None
        left = _seconds(s.step_left_s)
        if s.state == "paused":
            return Prompt("Paused. Resume when you are ready.",
                          f"{s.step.title}: {s.dose_text or f'{left} s still to go.'}", "paused")
        if s.state == "transition":
            return self._transition(s.step, s.next_step)
        return self._active(s, s.step, left)

    def slow_down(self, speed_m_s: float) -> Prompt:
        """After a too-fast pass at ``speed_m_s``: the target, in the configured figure."""
        target_cm_s = self.speed_target_m_s * 100.0
        return Prompt(f"Slow down: about {_amount(target_cm_s)} centimetres each second.",
                      f"That was {speed_m_s * 100:.0f} cm/s; aim for {target_cm_s:.1f} cm/s.",
                      "too_fast")

    # -- by state ------------------------------------------------------------------------------
    @staticmethod
    def _ready(s: Situation) -> Prompt:
        if not s.calibrated:
            return Prompt("Leave the roller still for a moment while it gets its bearings.",
                          "It measures its own drift before it can judge your speed.",
                          "calibrating")
        r = s.routine
        tip = r.tips[0] if r.tips else ""
        return Prompt(f"Ready for {r.title.lower()}. Press start, or simply begin rolling.",
                      f"First: {r.steps[0].title}. {tip}".strip(), "ready")

    @staticmethod
    def _done(s: Situation) -> Prompt:
        if s.pain or s.end_reason == "pain":
            return Prompt(PAIN_PROMPT, PAIN_ADVICE, "pain_stop")
        ends = {
            "stopped": Prompt("Session stopped. Take a moment, breathe, and have some water.",
                              "Press start whenever you want to go again.", "stopped"),
            "idle": Prompt("Session ended after a long rest.",
                           "Start rolling, or press start, to begin a new one.", "idle_end"),
            "shutdown": Prompt("The roller has been switched off. Session saved.",
                               "Your summary stays here until it is back.", "shutdown"),
        }
        r = s.routine
        return ends.get(s.end_reason or "", Prompt(r.closing or "Routine complete. Well done.",
                                                   "Well done.", "routine_done",
                                                   r.say_closing))

    @staticmethod
    def _transition(step: RoutineStep, nxt: RoutineStep | None) -> Prompt:
        assert nxt is not None
        if nxt.muscle == step.muscle and nxt.side != step.side and nxt.side != "none":
            return Prompt(f"Dose met on this side. Switch to your {nxt.side} side.",
                          nxt.position, "switch_sides", "Dose met, switch sides.")
        return Prompt(f"{step.title}: dose met. Next: {nxt.title}.", nxt.position, "step_done",
                      f"Next: {_lower_first(nxt.spoken_title)}.")

    def _active(self, s: Situation, step: RoutineStep, left: int) -> Prompt:
        if s.too_fast_speed_m_s is not None:
            return self.slow_down(s.too_fast_speed_m_s)
        if s.phase == "holding":
            return self._hold(s, step, left)
        if s.speaking_position:  # the step's instructions stay on screen while being said
            return Prompt(step.position, step.caution or s.dose_text,
                          "position")
        if s.phase == "rolling":
            cues = step.cues or [DEFAULT_ROLLING_CUE]
            i = int(s.step_active_s // self.cue_interval_s) % len(cues)
            return Prompt(cues[i], s.dose_text, "rolling")
        if s.step_active_s <= 0.0:
            return Prompt(step.position, step.caution, "position")
        return Prompt("Keep going: slow passes, or rest on a tender spot.",
                      s.dose_text, "keep_going")

    @staticmethod
    def _hold(s: Situation, step: RoutineStep, left: int) -> Prompt:
        if s.hold_elapsed_s >= step.hold_max_s:
            return Prompt("Long enough on this spot. Roll on slowly to the next one.",
                          s.dose_text, "hold_long",
                          "Long enough. Roll on slowly.")
        if s.hold_elapsed_s >= step.hold_min_s:
            return Prompt(f"{step.hold_min_s:.0f} seconds reached. Move on, or stay a little "
                          "longer if it helps.", "Keep breathing slowly.", "hold_reached",
                          f"{step.hold_min_s:.0f} seconds: move on when ready.")
        word = "Breathe in slowly" if s.breath == "in" else "Breathe out and let go"
        return Prompt("Stay on this spot and breathe deeply.", f"{word}.", "hold")


def _lower_first(title: str) -> str:
    """A title inside a sentence: its first letter small (``side of the waist, right``)."""
    return title[:1].lower() + title[1:]


def _seconds(left_s: float) -> int:
    """Whole seconds still to go, rounded up (never negative)."""
    return max(math.ceil(left_s), 0)


def _amount(value: float) -> str:
    """A figure as it is said: ``2.5``, ``3`` (not ``3.0``)."""
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text
