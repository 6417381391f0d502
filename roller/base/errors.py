"""The application's errors, beside the exception root it re-exports.

Every error we raise on purpose derives from :class:`RollerError` and from the builtin it most
resembles, so callers can catch either (the gpiozero pattern). The root and
:class:`ConfigError` are defined in :mod:`firmware_bridge.errors` and re-exported here.
"""

from __future__ import annotations

# The root and ConfigError live in the bottom layer (the hardware layer raises them and must not
# import the application); they are re-exported here so ``from roller.base.errors import ...`` keeps
# working everywhere above it.
from firmware_bridge.errors import ConfigError, RollerError

__all__ = ["ConfigError", "RecordingError", "RollerError"]


class RecordingError(RollerError, ValueError):
    """A recording file is malformed. The message names the file, the line and the problem."""

    def __init__(self, path: str, line: int | None, problem: str) -> None:
        self.path = path
        self.line = line
        self.problem = problem
        at = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{at}: {problem}")
