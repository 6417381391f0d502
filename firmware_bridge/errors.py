"""The exception root of the project, and the errors raised by the hardware layer.

Every error we raise on purpose derives from :class:`RollerError` and from the builtin it most
resembles, so callers can catch either (the gpiozero pattern). The root lives here, in the
bottom layer, because the hardware layer raises it too and must not import the application;
``roller.base.errors`` re-exports it. Each message says what was wrong and what to check.
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


class SensorError(RollerError, OSError):
    """The IMU could not be opened, found or configured."""


class ImuNotFoundError(SensorError, LookupError):
    """No supported IMU answered; ``answers`` maps each probed address to what was seen there."""

    def __init__(self, message: str, answers: dict[int, str]) -> None:
        self.answers = dict(answers)
        super().__init__(message)


class BusOpenError(SensorError):
    """The I2C bus device (/dev/i2c-N) could not be opened."""
