"""Untrusted input from the broker: bounded JSON decoding and rate-limited logging.

Anyone who can publish on the broker can send any bytes on any topic (up to the broker's
limit, 256 MB for mosquitto), so the service's command decoder and the display's feed decode
payloads with :func:`decode_json`: a size and a nesting bound checked *before* ``json.loads``
(1000 ``[`` would otherwise raise RecursionError, and a decoded value nested that deep breaks
``repr`` and ``json.dumps`` later). It raises only :class:`PayloadError`, in time linear in
the (bounded) size.

:class:`RateLimitedLog` keeps a flood of bad messages from flooding the journal: a few lines
per interval, then one line saying how many were left out; every one is counted.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from roller.base.clock import Clock, SystemClock

_STRING = re.compile(rb'"(?:[^"\\]|\\.)*+(?:"|\\?\Z)', re.DOTALL)
"""A JSON string, or an unterminated one running to the end: it matches at every quote, so the
scan never retries (linear time whatever the quotes and backslashes)."""
_BRACKET = re.compile(rb"[\[\]{}]")


class PayloadError(ValueError):
    """A payload that is not what the topic takes; the message says what and what was
    expected (without quoting more than a short prefix of it)."""


def nesting_depth(raw: bytes, stop_above: int | None = None) -> int:
    """The deepest ``[``/``{`` nesting of JSON text ``raw`` (brackets inside strings do not
    count); with ``stop_above``, the scan ends as soon as the depth exceeds it (so a deep
    payload is refused after a few brackets). Not a validator: ``json.loads`` judges the
    rest."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub(b'""', raw)):
        if m.group() in (b"[", b"{"):
            depth += 1
            if depth > deepest:
                deepest = depth
                if stop_above is not None and depth > stop_above:
                    break
        else:
            depth -= 1
    return deepest


def shorten(value: object, limit: int = 80, *, quote: bool = True) -> str:
    """``value`` fit to quote in a one-line message: its ``repr`` (``quote``; a str's printable
    text otherwise), cut to ``limit`` characters with ``...``. The one way every message of
    the roller quotes what it was given."""
    text = repr(value) if quote or not isinstance(value, str) else \
        value.encode("ascii", "backslashreplace").decode()
    return text if len(text) <= limit else text[:limit] + "..."


def preview(raw: bytes, limit: int = 40) -> str:
    """A short printable preview of ``raw`` for messages: its start and its length."""
    head = raw[:limit].decode("utf-8", errors="replace")
    head = "".join(c if c.isprintable() else "?" for c in head)
    return f"{head!r}{'...' if len(raw) > limit else ''} ({len(raw)} bytes)"


def decode_json(raw: bytes, *, max_bytes: int, max_depth: int) -> Any:
    """``raw`` (UTF-8 JSON) decoded, refusing more than ``max_bytes`` bytes or ``max_depth``
    levels of nesting. Raises :class:`PayloadError` only."""
    if len(raw) > max_bytes:
        raise PayloadError(f"expected at most {max_bytes} bytes of JSON, got {len(raw)} bytes")
    if nesting_depth(raw, stop_above=max_depth) > max_depth:
        raise PayloadError(f"expected JSON nested at most {max_depth} levels deep, got more: "
                           f"{preview(raw)}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"expected UTF-8 text, got a bad byte at offset {exc.start}: "
                           f"{preview(raw)}") from None
    try:
        return json.loads(text, parse_constant=_refuse_constant)
    except (ValueError, RecursionError) as exc:  # RecursionError: a defence in depth only
        where = f" at offset {exc.pos}" if isinstance(exc, json.JSONDecodeError) else ""
        raise PayloadError(f"expected JSON, got {preview(raw)} (not JSON{where})") from None


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def message_topic(msg: Any) -> str | None:
    """A received message's topic, or None when it is not UTF-8 (MQTT requires it; paho's
    ``msg.topic`` would raise)."""
    try:
        return str(msg.topic)
    except UnicodeDecodeError:
        return None


def topic_text(msg: Any) -> str:
    """A received message's topic for a log line, whatever its bytes (paho's ``msg.topic``
    raises on a topic that is not UTF-8), cut to 100 characters."""
    try:
        return str(msg.topic)[:100]
    except Exception:
        return repr(getattr(msg, "_topic", b"?"))[:100]


class RateLimitedLog:
    """At most ``burst`` lines per ``interval_s`` through ``logger``; the rest are counted and
    summed up in one line when the next interval begins. ``total`` counts every call. Intervals
    on ``clock`` (the system's by default)."""

    def __init__(self, logger: logging.Logger, *, interval_s: float = 60.0, burst: int = 5,
                 clock: Clock | None = None) -> None:
        self.logger = logger
        self.interval_s = interval_s
        self.burst = burst
        self.clock = clock or SystemClock()
        self.total = 0
        self.suppressed = 0
        """Lines left out since the last one written."""
        self._window_start = -float("inf")
        self._in_window = 0

    def __call__(self, level: int, message: str, *args: Any, **kwargs: Any) -> bool:
        """Log ``message % args`` at ``level`` unless over the rate; True if written."""
        self.total += 1
        now = self.clock.monotonic()
        if now - self._window_start >= self.interval_s:
            if self.suppressed:
                self.logger.log(level, "%d similar message(s) not logged in the last %.0f s "
                                "(%d in all)", self.suppressed, self.interval_s, self.total - 1)
                self.suppressed = 0
            self._window_start = now
            self._in_window = 0
        if self._in_window >= self.burst:
            self.suppressed += 1
            return False
        self._in_window += 1
        self.logger.log(level, message, *args, **kwargs)
        return True
