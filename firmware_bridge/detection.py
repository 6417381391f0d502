"""Find the IMU on the bus: probe the usual addresses, recognise the chip, open its driver.

``detect(bus)`` probes the usual addresses (0x68, 0x69 for InvenSense; 0x6A, 0x6B for ST),
identifies each answer by its WHO_AM_I register, and returns a configured driver for the first
supported chip. ``bus`` is anything with smbus2.SMBus's methods: the real bus on a Pi, or
:class:`firmware_bridge.emulated.EmulatedBus` on a laptop. What is supported, and where it can
sit, is the chip registry (:mod:`firmware_bridge.chips`).
"""

from __future__ import annotations

import dataclasses

from firmware_bridge.chips import (
    CHIP_CHOICES,
    DEFAULT_ADDRESSES,
    KNOWN_CHIPS,
    accepts,
    chip_by_info,
)
from firmware_bridge.clock import Clock
from firmware_bridge.errors import ImuNotFoundError, SensorError
from firmware_bridge.imu.base import ChipInfo, DriverSettings, FifoImuDriver
from firmware_bridge.registers import SMBusLike

__all__ = ["DEFAULT_ADDRESSES", "ProbeResult", "detect", "identify", "open_driver", "scan"]

INVENSENSE_ADDRESSES = (0x68, 0x69)
"""Where InvenSense parts sit: their WHO_AM_I registers are asked first there."""


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """What one address said: the chip recognised (or None) and a sentence for people."""

    address: int
    chip: ChipInfo | None
    answered: bool
    description: str


def identify(bus: SMBusLike, address: int) -> ProbeResult:
    """Read the WHO_AM_I registers at ``address`` and name the chip, if we know it.

    The MPU family keeps WHO_AM_I at 0x75, the ICM-20948 at 0x00 (bank 0) and ST parts at
    0x0F; each address is asked its usual maker's registers first, because the others may hold
    anything. Only reads: probing never writes to a chip it does not know."""
    registers = (0x75, 0x00, 0x0F) if address in INVENSENSE_ADDRESSES else (0x0F, 0x75)
    seen = []
    for register in registers:
        value = None
        error: OSError | None = None
        for _attempt in range(2):
            try:
                value = int(bus.read_byte_data(address, register)) & 0xFF
                break
            except OSError as exc:
                error = exc
        if value is None:
            if not seen:
                reason = f"errno {error.errno}" if error and error.errno else str(error)
                return ProbeResult(address, None, False, f"no answer ({reason})")
            continue
        for chip in KNOWN_CHIPS:
            if chip.who_am_i_register == register and chip.who_am_i == value:
                return ProbeResult(address, chip, True,
                                   f"{chip.name} (WHO_AM_I 0x{register:02X} = 0x{value:02X})")
        seen.append(f"register 0x{register:02X} = 0x{value:02X}")
    return ProbeResult(address, None, True,
                       "answered, but is not a supported IMU (" + ", ".join(seen) + ")")


def scan(bus: SMBusLike, addresses: tuple[int, ...] | list[int] | None = None,
         ) -> list[ProbeResult]:
    """Probe every address (default 0x68, 0x69, 0x6A, 0x6B) and report what each said."""
    return [identify(bus, a) for a in (addresses or DEFAULT_ADDRESSES)]


def supported_chips_text() -> str:
    return ", ".join(f"{c.name} 0x{c.who_am_i:02X}" for c in KNOWN_CHIPS)


def detect(bus: SMBusLike, addresses: tuple[int, ...] | list[int] | None = None, *,
           chip: str = "auto", settings: DriverSettings | None = None,
           output_rate_hz: float | None = None, clock: Clock | None = None) -> FifoImuDriver:
    """Find a supported IMU, configure it and return its driver.

    ``chip`` ("auto" or a family from :data:`CHIP_CHOICES`) restricts what is accepted;
    ``output_rate_hz`` overrides ``settings.output_rate_hz``. Raises
    :class:`~firmware_bridge.errors.ImuNotFoundError` listing what answered where."""
    if chip not in CHIP_CHOICES:
        raise SensorError(f"unknown chip {chip!r}: expected one of {', '.join(CHIP_CHOICES)}")
    settings = settings or DriverSettings()
    if output_rate_hz is not None:
        settings = dataclasses.replace(settings, output_rate_hz=float(output_rate_hz))
    results = scan(bus, addresses)
    for result in results:
        if result.chip is not None and accepts(chip_by_info(result.chip), chip):
            return open_driver(bus, result.address, result.chip, settings=settings, clock=clock)
    lines = "; ".join(f"0x{r.address:02X}: {r.description}" for r in results)
    wanted = "supported IMU" if chip == "auto" else chip
    if any(r.chip is not None for r in results):
        hint = f"set [sensor] chip = \"auto\" or to the chip found (wanted {chip})"
    elif any(r.answered for r in results):
        hint = f"supported chips: {supported_chips_text()}"
    else:
        hint = ("nothing answered: check the wiring (SDA, SCL, 3.3 V, GND), that the sensor "
                "is powered, and the address pin (AD0 / SA0)")
    raise ImuNotFoundError(f"no {wanted} found on the I2C bus: {lines}. {hint}",
                           {r.address: r.description for r in results})


def open_driver(bus: SMBusLike, address: int, info: ChipInfo, *,
                settings: DriverSettings | None = None,
                clock: Clock | None = None) -> FifoImuDriver:
    """The driver for a chip already identified at ``address`` (configures it)."""
    return chip_by_info(info).driver(bus, address, info, settings=settings, clock=clock)
