"""Commands in: the verb table shared by MQTT ``cmd/<verb>`` and the GPIO buttons, and the
bounded queue that hands them from the network and GPIO threads to the service's loop.

The verbs themselves are declared in :data:`roller.contract.verbs.VERB_DOCS`; the one door
(:class:`roller.coaching.session_commands.SessionCommands`) registers a handler for each
(:meth:`CommandTable.add`). The table checks a verb and decodes and validates its payload, once;
the handler gets the validated payload. A refused command raises :class:`CommandError` and
changes nothing.
"""

from __future__ import annotations

import logging
import queue
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from roller.base.errors import ConfigError, RollerError
from roller.base.settings import from_mapping
from roller.base.untrusted import PayloadError, RateLimitedLog, decode_json

_handler_failures = RateLimitedLog(logging.getLogger("roller.commands"))

MAX_QUEUED_COMMANDS = 256
"""Commands waiting for the next step, at most (a flooding client cannot exhaust memory)."""

MAX_COMMAND_BYTES = 4096
"""The largest command payload taken (the largest real one, ``start`` with a step id, is tens
of bytes); a longer one is refused as ``bad_payload`` without being decoded, and only its first
``MAX_COMMAND_BYTES + 1`` bytes are queued, so 256 queued floods hold at most 1 MB."""

MAX_COMMAND_DEPTH = 8
"""The deepest JSON nesting a command payload may have (real ones have 1)."""

MAX_VERB_CHARS = 64
"""A verb longer than this is unknown anyway; only its start is queued and quoted."""


class CommandError(RollerError, ValueError):
    """A command was refused: unknown verb, malformed payload, or not possible now.

    ``code`` is the machine-readable kind (``unknown_command``, ``bad_payload``,
    ``not_possible``); the message says what was wrong and what was expected.
    """

    def __init__(self, code: str, message: str, **details: Any) -> None:
        self.code = code
        self.details = details
        super().__init__(message)


@dataclass(frozen=True)
class Command:
    """One verb: its handler and the payload it accepts.

    ``payload``: None -- no payload (empty or ``{}``); a settings dataclass -- the JSON object is
    validated with :func:`roller.base.settings.from_mapping` and the handler gets the instance.
    """

    verb: str
    handler: Callable[[Any], None]
    payload: type | None = None
    doc: str = ""


class CommandTable:
    """verb -> :class:`Command`, shared by MQTT (``cmd/<verb>``) and the GPIO buttons."""

    def __init__(self) -> None:
        self._commands: dict[str, Command] = {}

    def add(self, verb: str, handler: Callable[[Any], None], *, payload: type | None = None,
            doc: str = "") -> None:
        """Register (or replace) ``verb``."""
        self._commands[verb] = Command(verb, handler, payload, doc)

    def __contains__(self, verb: str) -> bool:
        return verb in self._commands

    @property
    def verbs(self) -> tuple[str, ...]:
        return tuple(sorted(self._commands))

    def describe(self) -> dict[str, str]:
        return {v: c.doc for v, c in sorted(self._commands.items())}

    def parse(self, verb: str, raw: bytes) -> tuple[Command, Any]:
        """Check ``verb`` and decode ``raw`` for it; raises CommandError, changes nothing."""
        command = self._commands.get(verb)
        if command is None:
            raise CommandError("unknown_command",
                               f"unknown command {short(verb, 80)}: expected one of "
                               f"{list(self.verbs)}",
                               expected=list(self.verbs))
        data = decode_payload(verb, raw)
        if command.payload is None:
            if data:
                raise CommandError("bad_payload", f"cmd/{verb} takes no payload: expected "
                                   f"nothing or {{}}, got {short(data)}", expected="{}")
            return command, None
        try:
            return command, from_mapping(command.payload, data, where=f"cmd/{verb}")
        except ConfigError as exc:
            raise CommandError("bad_payload", str(exc), key=exc.key, expected=exc.expected,
                               actual=short(exc.actual)) from None

    def dispatch(self, verb: str, raw: bytes) -> None:
        """Parse and run one command; raises CommandError when refused (the handler's own
        refusals are CommandErrors already)."""
        command, payload = self.parse(verb, raw)
        try:
            command.handler(payload)
        except CommandError:
            raise
        except Exception as exc:  # a handler's bug must not end the service: logged, refused
            _handler_failures(logging.ERROR, "cmd/%s: the handler failed", verb, exc_info=True)
            raise CommandError("not_possible", f"cmd/{verb} failed inside the service "
                               f"({exc.__class__.__name__}); nothing was changed on purpose, "
                               "see the service's log") from None


def decode_payload(verb: str, raw: bytes) -> dict[str, Any]:
    """An MQTT command payload: empty (or only whitespace), or a UTF-8 JSON object of at most
    :data:`MAX_COMMAND_BYTES` bytes nested at most :data:`MAX_COMMAND_DEPTH` deep. Raises
    :class:`CommandError` (``bad_payload``) and nothing else, whatever the bytes."""
    if len(raw) > MAX_COMMAND_BYTES:  # before stripping: spaces must not hide the length
        raise CommandError("bad_payload", f"cmd/{_shown(verb)}: expected nothing or a JSON "
                           f"object of at most {MAX_COMMAND_BYTES} bytes, got more",
                           expected="nothing or a JSON object")
    text = raw.strip()
    if not text:
        return {}
    try:
        data = decode_json(text, max_bytes=MAX_COMMAND_BYTES, max_depth=MAX_COMMAND_DEPTH)
    except PayloadError as exc:
        raise CommandError("bad_payload", f"cmd/{_shown(verb)}: expected nothing or a JSON "
                           f"object: {exc}", expected="nothing or a JSON object") from None
    if not isinstance(data, dict):
        raise CommandError("bad_payload", f"cmd/{_shown(verb)}: expected nothing or a JSON "
                           f"object, got {short(data)}", expected="nothing or a JSON object")
    return data


def _shown(verb: str) -> str:
    """A verb as messages show it: as is when short and printable, else quoted and cut."""
    return verb if len(verb) <= 64 and verb.isprintable() else short(verb, 80)


def short(value: Any, limit: int = 120) -> str:
    """``repr(value)``, cut to ``limit`` characters for error messages."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


ErrorReporter = Callable[..., None]
"""``report(code, message, **details)``: where refused commands are told (the ``error`` topic)."""


class CommandInbox:
    """Commands queued by other threads (MQTT, GPIO) for the loop; at most ``capacity``."""

    def __init__(self, capacity: int = MAX_QUEUED_COMMANDS) -> None:
        self.capacity = capacity
        self._queue: queue.Queue[tuple[str, bytes, str]] = queue.Queue(maxsize=capacity)
        self.dropped = 0
        self._reported = 0

    def submit(self, verb: str, payload: bytes = b"", source: str = "mqtt") -> None:
        """Queue a command (thread-safe). A flood beyond ``capacity`` is dropped and counted.
        An over-long verb or payload is cut (it is refused anyway, and memory stays bounded)."""
        try:
            self._queue.put_nowait((verb[:MAX_VERB_CHARS + 1],
                                    bytes(payload[:MAX_COMMAND_BYTES + 1]), source))
        except queue.Full:
            self.dropped += 1

    def __len__(self) -> int:
        return self._queue.qsize()

    def run(self, table: CommandTable, report: ErrorReporter,
            log: Callable[[str, str], None] | None = None) -> None:
        """Dispatch everything queued; each refusal (and any flood) goes to ``report``."""
        if self.dropped > self._reported:
            report("too_many_commands", f"{self.dropped - self._reported} command(s) dropped: "
                   f"more than {self.capacity} arrived between two steps",
                   dropped_total=self.dropped)
            self._reported = self.dropped
        while True:
            try:
                verb, raw, source = self._queue.get_nowait()
            except queue.Empty:
                return
            try:
                table.dispatch(verb, raw)
                if log is not None:
                    log(verb, source)
            except CommandError as exc:
                report(exc.code, str(exc), command=verb, source=source, **exc.details)
