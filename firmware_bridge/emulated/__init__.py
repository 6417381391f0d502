"""Register-level emulated IMUs on an emulated I2C bus: the laptop's stand-in for hardware.

The drivers cannot tell them from real chips: the same registers, FIFO layouts, byte orders,
limits and failures. ``--simulate`` in every command builds one of these, fed by the simulated
roller, and then goes through the real driver code. Which emulated chip stands in for which
real one, and the factory by name (``make_chip``), are in the chip registry,
:mod:`firmware_bridge.chips`.
"""

from firmware_bridge.emulated.bus import EmulatedBus
from firmware_bridge.emulated.chip import EmulatedImu, MotionSource, still_source
from firmware_bridge.emulated.icm20948 import EmulatedIcm20948
from firmware_bridge.emulated.lsm6ds import EmulatedLsm6ds3, EmulatedLsm6dso
from firmware_bridge.emulated.mpu6050 import EmulatedMpu6050

__all__ = [
    "EmulatedBus",
    "EmulatedIcm20948",
    "EmulatedImu",
    "EmulatedLsm6ds3",
    "EmulatedLsm6dso",
    "EmulatedMpu6050",
    "MotionSource",
    "still_source",
]
