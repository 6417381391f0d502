"""The kinds of coach prompt (``cue``), declared once for the coach, the display and the page.

Each cue has a speech :class:`Priority` (how much it matters when spoken), a
*look* the page styles it with (``alarm``: red, ``good``: green, ``neutral``), and the *tone*
the page plays at once when the cue appears (``too_fast``: a double beep, ``hold_end``: a
rising two-note tone, ``chime``: three notes), or none. Tones are for what must be instant;
words come from the speech policy. The display serves this table to the page
(``GET /api/contract``), so the page has no copy of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Literal


class Priority(IntEnum):
    """How much a spoken prompt matters; a higher one may interrupt a lower one."""

    ENCOURAGEMENT = 1
    """Rolling cues, "keep going"."""
    HOLD = 2
    """Hold milestones: "stay on this spot", "20 seconds reached"."""
    STEP = 3
    """A step begins (its position), switch sides, next step, pause, the end of the routine."""
    SLOW_DOWN = 4
    """The last pass was too fast."""
    SAFETY = 5
    """Pain: stop now."""


SPEECH_STALE_S = 3.0
"""A spoken prompt not said this long (s) after its situation arose is dropped, by the coach
and by the page alike: after that it describes a moment that has passed."""


Look = Literal["alarm", "good", "neutral"]
Tone = Literal["too_fast", "hold_end", "chime", ""]


@dataclass(frozen=True)
class Cue:
    """How one kind of prompt is spoken, shown and sounded."""

    priority: Priority
    look: Look = "neutral"
    tone: Tone = ""

    def to_dict(self) -> dict[str, Any]:
        return {"priority": int(self.priority), "look": self.look, "tone": self.tone}


CUES: dict[str, Cue] = {
    "pain_stop": Cue(Priority.SAFETY, "alarm"),
    "too_fast": Cue(Priority.SLOW_DOWN, "alarm", "too_fast"),
    "position": Cue(Priority.STEP),
    "switch_sides": Cue(Priority.STEP, tone="chime"),
    "step_done": Cue(Priority.STEP, tone="chime"),
    "routine_done": Cue(Priority.STEP, "good", "chime"),
    "stopped": Cue(Priority.STEP),
    "idle_end": Cue(Priority.STEP),
    "shutdown": Cue(Priority.STEP),
    "paused": Cue(Priority.STEP),
    # invitations whose moment ends when the routine starts: the first step may interrupt them
    "ready": Cue(Priority.HOLD),
    "calibrating": Cue(Priority.HOLD),
    "hold": Cue(Priority.HOLD),
    "hold_reached": Cue(Priority.HOLD, "good", "hold_end"),
    "hold_long": Cue(Priority.HOLD),
    "rolling": Cue(Priority.ENCOURAGEMENT),
    "keep_going": Cue(Priority.ENCOURAGEMENT),
}
"""Every cue the coach sends (CoachState.cue)."""
