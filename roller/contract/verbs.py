"""The command verbs: what a person (or a display, or the GPIO button) can ask the coach to do.

They arrive as MQTT ``cmd/<verb>`` topics and as the display's ``POST /api/cmd/<verb>``. Declared
here, below the coach, the MQTT contract and the display, so each takes them from one place and
the display can check a verb without importing the coach.
"""

from __future__ import annotations

VERB_DOCS: dict[str, str] = {
    "start": "start a session; optional {\"step\": id} starts the coach's routine at that step",
    "pause": "pause the running session",
    "resume": "resume a paused session",
    "next": "skip to the coach's next step",
    "stop": "finish the session",
    "pain": "pain: end the session at once; the coach tells the person to stop, breathe, and "
            "see a health professional if it persists",
    "start_pause": "one button: start, pause or resume, whichever fits",
}
"""Every verb with what it does (the docs and the command table's help are built from it)."""

VERBS: tuple[str, ...] = tuple(VERB_DOCS)
"""Commands the coach understands (MQTT ``cmd/<verb>``; ``start_pause`` is the GPIO button)."""

POSSIBLE_IN: dict[str, tuple[str, ...]] = {
    "idle": ("start", "next", "pain", "start_pause"),
    "running": ("pause", "next", "stop", "pain", "start_pause"),
    "paused": ("resume", "next", "stop", "pain", "start_pause"),
    "finished": ("start", "pain", "start_pause"),
}
"""The verbs each session state accepts (roller/coaching/session.py refuses the others with
``not_possible``): Home Assistant's buttons are available only then (issue 17 item 6)."""
