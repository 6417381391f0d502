"""The command verbs: what a person (or a display, or the GPIO button) can ask the coach to do.

They arrive as MQTT ``cmd/<verb>`` topics and as the display's ``POST /api/cmd/<verb>``. Declared
here, below both the coach and the display, so the display can check a verb without importing
the coach.
"""

from __future__ import annotations

VERBS = ("start", "pause", "resume", "next", "stop", "pain", "start_pause")
"""Commands the coach understands (MQTT ``cmd/<verb>``; ``start_pause`` is the GPIO button)."""
