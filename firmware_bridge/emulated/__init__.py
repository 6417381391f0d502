"""Register-level emulated IMUs on an emulated I2C bus: the laptop's stand-in for hardware.

The drivers cannot tell them from real chips: the same registers, FIFO layouts, byte orders,
limits and failures. ``--simulate`` in every command builds one of these, fed by the simulated
roller, and then goes through the real driver code.
"""

from firmware_bridge.emulated.bus import EmulatedBus
from firmware_bridge.emulated.chip import EmulatedImu, MotionSource, still_source
from firmware_bridge.emulated.icm20948 import EmulatedIcm20948
from firmware_bridge.emulated.lsm6ds import EmulatedLsm6ds3, EmulatedLsm6dso
from firmware_bridge.emulated.mpu6050 import VARIANTS as MPU_VARIANTS
from firmware_bridge.emulated.mpu6050 import EmulatedMpu6050

__all__ = [
    "CHIP_VARIANTS",
    "EmulatedBus",
    "EmulatedIcm20948",
    "EmulatedImu",
    "EmulatedLsm6ds3",
    "EmulatedLsm6dso",
    "EmulatedMpu6050",
    "MotionSource",
    "make_chip",
    "still_source",
]

CHIP_VARIANTS = (*MPU_VARIANTS, "ICM-20948", "LSM6DS3", "LSM6DSO")
"""Every chip variant that :func:`make_chip` can build."""


def make_chip(variant: str, source: MotionSource | None = None, *, address: int | None = None,
              **kwargs) -> EmulatedImu:
    """An emulated chip by variant name (see :data:`CHIP_VARIANTS`) at its usual address."""
    if variant in MPU_VARIANTS:
        return EmulatedMpu6050(source, variant=variant, address=address or 0x68, **kwargs)
    if variant == "ICM-20948":
        return EmulatedIcm20948(source, address=address or 0x68, **kwargs)
    if variant == "LSM6DS3":
        return EmulatedLsm6ds3(source, address=address or 0x6A, **kwargs)
    if variant in ("LSM6DSO", "LSM6DSOX"):
        return EmulatedLsm6dso(source, address=address or 0x6A, **kwargs)
    raise ValueError(f"unknown chip variant {variant!r}: expected one of {CHIP_VARIANTS}")
