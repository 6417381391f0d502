"""Errors raised by the hardware layer. Each message says what was wrong and what to check."""

from __future__ import annotations

from roller.errors import RollerError


class SensorError(RollerError, OSError):
    """The IMU could not be opened, found or configured."""


class ImuNotFoundError(SensorError, LookupError):
    """No supported IMU answered; ``answers`` maps each probed address to what was seen there."""

    def __init__(self, message: str, answers: dict[int, str]) -> None:
        self.answers = dict(answers)
        super().__init__(message)


class BusOpenError(SensorError):
    """The I2C bus device (/dev/i2c-N) could not be opened."""
