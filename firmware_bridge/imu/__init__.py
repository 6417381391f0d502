"""IMU drivers: configure a chip for a roller and read its FIFO.

Every driver follows :class:`ImuDriver`: ``read()`` returns ``(t, samples)``, accelerometer
[m/s^2] then gyro [rad/s] in the chip's axes, and a ``health`` record. Which chips exist is
:mod:`firmware_bridge.chips`; finding one on the bus is :mod:`firmware_bridge.detection`,
whose ``detect``, ``identify`` and ``scan`` are offered here too (``from firmware_bridge.imu
import detect``), loaded on first use: the registry imports every driver and emulator, which a
program that only needs one driver class should not pay for.
"""

from __future__ import annotations

from firmware_bridge.errors import ImuNotFoundError
from firmware_bridge.imu.base import (
    ChipInfo,
    DriverHealth,
    DriverSettings,
    FifoImuDriver,
    ImuDriver,
)
from firmware_bridge.imu.icm20948 import Icm20948Driver
from firmware_bridge.imu.lsm6ds import Lsm6ds3Driver, Lsm6dsoDriver
from firmware_bridge.imu.mpu6050 import Mpu6050Driver

_FROM_DETECTION = ("detect", "identify", "open_driver", "scan")


def __getattr__(name: str) -> object:
    if name in _FROM_DETECTION:
        from firmware_bridge import detection
        return getattr(detection, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ChipInfo",
    "DriverHealth",
    "DriverSettings",
    "FifoImuDriver",
    "Icm20948Driver",
    "ImuDriver",
    "ImuNotFoundError",
    "Lsm6ds3Driver",
    "Lsm6dsoDriver",
    "Mpu6050Driver",
    "detect",
    "identify",
    "open_driver",
    "scan",
]
