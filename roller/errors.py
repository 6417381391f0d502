"""The exception root of the project.

Every error we raise on purpose derives from :class:`RollerError` and from the builtin it most
resembles, so callers can catch either (the gpiozero pattern).
"""

from __future__ import annotations


class RollerError(Exception):
    """Root of every error roller companion raises on purpose."""


class ConfigError(RollerError, ValueError):
    """A configuration or routine file is wrong.

    ``key`` is the dotted path of the offending setting (``mqtt.port``), ``expected`` says what
    was wanted and ``actual`` what was found; ``where`` names the file (or other source).
    """

    def __init__(self, key: str, expected: str, actual: object, where: str = "") -> None:
        self.key = key
        self.expected = expected
        self.actual = actual
        self.where = where
        place = f"{where}: " if where else ""
        super().__init__(f"{place}{key}: expected {expected}, got {actual!r}")


class RecordingError(RollerError, ValueError):
    """A recording file is malformed. The message names the file, the line and the problem."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        at = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{at}: {problem}")
