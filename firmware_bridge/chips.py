"""The supported IMUs, one row each: the only table of chip identity.

A row says how a chip is named in ``[sensor] chip``, what it reports itself as, how it answers
WHO_AM_I, where it sits on the bus, which driver runs it and which emulated chips stand in for
it. Everything else is derived from :data:`CHIPS`: the config choices (:data:`CHIP_CHOICES`),
detection (:mod:`firmware_bridge.detection`), the emulator factory (:func:`make_chip`), the
simulated chip for a configured one (:func:`emulated_variant_for`) and the tests'
parametrisations (:data:`EMULATED_VARIANTS`).

The emulated chips keep their own WHO_AM_I answers (they model the silicon, clones included):
a test detects every emulated variant and checks it is recognised as the row that lists it, so
a wrong value here or there is caught.

Adding a chip: write its driver (``firmware_bridge/imu/``) and its emulator
(``firmware_bridge/emulated/``), then add one row below.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from firmware_bridge.emulated.chip import EmulatedImu, MotionSource
from firmware_bridge.emulated.icm20948 import EmulatedIcm20948
from firmware_bridge.emulated.lsm6ds import EmulatedLsm6ds3, EmulatedLsm6dso
from firmware_bridge.emulated.mpu6050 import EmulatedMpu6050
from firmware_bridge.imu.base import ChipInfo, FifoImuDriver
from firmware_bridge.imu.icm20948 import FIFO_BYTES as ICM_FIFO_BYTES
from firmware_bridge.imu.icm20948 import I, Icm20948Driver
from firmware_bridge.imu.lsm6ds import Lsm6ds3Driver, Lsm6dsCommonMap, Lsm6dsoDriver
from firmware_bridge.imu.mpu6050 import M, Mpu6050Driver

Emulator = Callable[..., EmulatedImu]
"""Builds an emulated chip: ``emulator(source, address=..., **kwargs)``."""


@dataclass(frozen=True)
class Chip:
    """One supported chip as the bus sees it."""

    info: ChipInfo
    """Name (as the driver reports it), driver family, WHO_AM_I register and value, FIFO size."""
    config_names: tuple[str, ...]
    """The ``[sensor] chip`` values that accept this chip (an MPU-9250 is also an MPU-6500)."""
    addresses: tuple[int, ...]
    """7-bit I2C addresses it can have (the address pin picks one); the first is the usual."""
    driver: type[FifoImuDriver]
    emulators: Mapping[str, Emulator]
    """Emulated variants that answer as this chip, by name; the first is the plain one."""

    @property
    def name(self) -> str:
        return self.info.name


def _mpu(variant: str) -> Emulator:
    return functools.partial(EmulatedMpu6050, variant=variant)


_INVENSENSE = (0x68, 0x69)
_ST = (0x6A, 0x6B)

CHIPS: tuple[Chip, ...] = (
    Chip(ChipInfo("MPU-6050", "mpu6050", M.WHO_AM_I.address, 0x68, 1024),
         ("mpu6050",), _INVENSENSE, Mpu6050Driver, {"MPU-6050": _mpu("MPU-6050")}),
    # 0x70: a genuine MPU-6500 (512-byte FIFO) or a GY-521 clone sold as an MPU-6050 (1024)
    Chip(ChipInfo("MPU-6500", "mpu6500", M.WHO_AM_I.address, 0x70, 512, 1024),
         ("mpu6500", "mpu6050"), _INVENSENSE, Mpu6050Driver,
         {"MPU-6500": _mpu("MPU-6500"),
          "clone-0x70": _mpu("clone-0x70"),  # sold as an MPU-6050, answers as an MPU-6500
          "clone-0x70-6050": _mpu("clone-0x70-6050")}),  # a 6050 inside, at 0x69 (AD0 high)
    Chip(ChipInfo("MPU-9250", "mpu6500", M.WHO_AM_I.address, 0x71, 512, 1024),
         ("mpu6500", "mpu9250", "mpu6050"), _INVENSENSE, Mpu6050Driver,
         {"MPU-9250": _mpu("MPU-9250"), "clone-0x71": _mpu("clone-0x71")}),
    Chip(ChipInfo("MPU-6050 clone (WHO_AM_I 0x72)", "mpu6500", M.WHO_AM_I.address, 0x72, 512,
                  1024),
         ("mpu6050",), _INVENSENSE, Mpu6050Driver, {"clone-0x72": _mpu("clone-0x72")}),
    Chip(ChipInfo("MPU-9255", "mpu6500", M.WHO_AM_I.address, 0x73, 512, 1024),
         ("mpu6500", "mpu9250"), _INVENSENSE, Mpu6050Driver, {"MPU-9255": _mpu("MPU-9255")}),
    # 0x98: MPU-6050 clones (1024-byte FIFO) and the ICM-20689 (4 kbyte FIFO) answer so
    Chip(ChipInfo("MPU-6050 clone (WHO_AM_I 0x98)", "mpu6050", M.WHO_AM_I.address, 0x98, 512,
                  4096),
         ("mpu6050",), _INVENSENSE, Mpu6050Driver, {"clone-0x98": _mpu("clone-0x98")}),
    Chip(ChipInfo("ICM-20948", "icm20948", I.WHO_AM_I.address, 0xEA, ICM_FIFO_BYTES),
         ("icm20948",), _INVENSENSE, Icm20948Driver, {"ICM-20948": EmulatedIcm20948}),
    Chip(ChipInfo("LSM6DS3", "lsm6ds3", Lsm6dsCommonMap.WHO_AM_I.address, 0x69, 8192),
         ("lsm6ds3",), _ST, Lsm6ds3Driver, {"LSM6DS3": EmulatedLsm6ds3}),
    Chip(ChipInfo("LSM6DSO/LSM6DSOX", "lsm6dso", Lsm6dsCommonMap.WHO_AM_I.address, 0x6C, 512 * 7),
         ("lsm6dso",), _ST, Lsm6dsoDriver, {"LSM6DSO": EmulatedLsm6dso}),
)

KNOWN_CHIPS: tuple[ChipInfo, ...] = tuple(chip.info for chip in CHIPS)
"""What detection recognises, in the order it tries them."""

DEFAULT_ADDRESSES: tuple[int, ...] = tuple(dict.fromkeys(a for c in CHIPS for a in c.addresses))
"""Addresses scanned when ``[sensor] address`` is not set: 0x68, 0x69, 0x6A, 0x6B."""

CHIP_CHOICES: tuple[str, ...] = ("auto", *dict.fromkeys(n for c in CHIPS for n in c.config_names))
"""Values for ``[sensor] chip``: "auto" accepts any supported chip, a name requires that one."""

EMULATED_VARIANTS: dict[str, Chip] = {variant: chip for chip in CHIPS for variant in chip.emulators}
"""Every emulated variant :func:`make_chip` builds, and the chip it must be detected as."""

CHIP_VARIANTS: tuple[str, ...] = tuple(EMULATED_VARIANTS)
"""The names :func:`make_chip` accepts (``[sensor] simulated_chip``)."""

_FAMILIES: dict[str, str] = {}
for _chip in CHIPS:
    _FAMILIES.setdefault(_chip.info.family, next(iter(_chip.emulators)))
FAMILY_VARIANTS: tuple[str, ...] = tuple(_FAMILIES.values())
"""One plain emulated variant per driver family (MPU-6050, MPU-6500, ICM-20948, LSM6DS3,
LSM6DSO): what a test or a benchmark runs to cover every register map and FIFO layout once."""

_ALIASES = {"LSM6DSOX": "LSM6DSO"}  # one emulator serves both: they answer alike


def chip_by_info(info: ChipInfo) -> Chip:
    """The registry row of a chip that detection recognised."""
    return next(chip for chip in CHIPS if chip.info == info)


def accepts(chip: Chip, wanted: str) -> bool:
    """Whether ``[sensor] chip = wanted`` accepts ``chip``."""
    return wanted == "auto" or wanted in chip.config_names


def emulated_variant_for(config_name: str) -> str:
    """The emulated variant that ``--simulate`` builds for ``[sensor] chip = config_name``."""
    chip = next(c for c in CHIPS if config_name in c.config_names)
    return next(iter(chip.emulators))


VARIANT_ADDRESSES: dict[str, int] = {"clone-0x70-6050": 0x69}
"""Variants that sit at an address other than their chip's usual one: a GY-521 board with its
AD0 pin pulled high (so detection must find it at the second address)."""


def make_chip(variant: str, source: MotionSource | None = None, *, address: int | None = None,
              **kwargs: Any) -> EmulatedImu:
    """An emulated chip by variant name (see :data:`CHIP_VARIANTS`) at its usual address."""
    variant = _ALIASES.get(variant, variant)
    chip = EMULATED_VARIANTS.get(variant)
    if chip is None:
        raise ValueError(f"unknown chip variant {variant!r}: expected one of {CHIP_VARIANTS}")
    emulator = chip.emulators[variant]
    address = address or VARIANT_ADDRESSES.get(variant, chip.addresses[0])
    return emulator(source, address=address, **kwargs)
