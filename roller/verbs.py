"""The commands a roller takes (MQTT ``cmd/<verb>``), shared by the coach and the display.

A neutral module: the display serves this list to its page and checks posted commands against
it without importing the coach.
"""

from __future__ import annotations

VERBS = ("start", "pause", "resume", "next", "stop", "pain", "start_pause")
"""Commands the coach understands (MQTT ``cmd/<verb>``; ``start_pause`` is the GPIO button)."""
