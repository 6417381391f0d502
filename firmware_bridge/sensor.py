"""The production loader for the IMU: config section ``[sensor]`` -> a configured driver.

``open_sensor(settings)`` opens ``/dev/i2c-<bus>`` with smbus2 and runs
:func:`firmware_bridge.imu.detect`; when that fails the error says what to check (I2C enabled?
permissions? wiring?). It never falls back to a fake. ``open_sensor(settings, simulate=True)``
builds an emulated chip on an emulated bus, fed by the simulated roller doing a plausible
routine, and returns the *same* driver class from the same ``detect`` -- so a simulated run
exercises the real driver code, register by register.
"""

from __future__ import annotations

import dataclasses
import errno
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge.chips import CHIP_CHOICES, CHIP_VARIANTS, emulated_variant_for, make_chip
from firmware_bridge.clock import Clock, SystemClock
from firmware_bridge.detection import detect
from firmware_bridge.emulated import EmulatedBus
from firmware_bridge.errors import BusOpenError, ImuNotFoundError
from firmware_bridge.imu import DriverSettings
from firmware_bridge.imu.base import FifoImuDriver
from firmware_bridge.settings import same_as, setting

SIMULATED_SESSION_S = 1800.0
"""Length of the simulated person's session; it repeats after that."""


@dataclass(frozen=True)
class SensorSettings:
    """Config section ``[sensor]``: which bus and chip, and how to configure it."""

    bus: int = setting(1, minimum=0, maximum=255,
                       doc="I2C bus number, /dev/i2c-<bus> (1 on a Raspberry Pi's header)")
    address: int | None = setting(None, minimum=0x03, maximum=0x77,
                                  doc="7-bit I2C address of the IMU; leave out to scan 0x68, "
                                      "0x69, 0x6A and 0x6B")
    chip: str = setting("auto", choices=CHIP_CHOICES,
                        doc="which IMU to accept: auto (any supported), "
                            f"{', '.join(CHIP_CHOICES[1:-1])} or {CHIP_CHOICES[-1]}")
    # The driver's own settings, declared once in DriverSettings; only the rate's default
    # differs: 200 Hz is plenty for rolling and light on the Pi's I2C bus.
    output_rate_hz: float = same_as(DriverSettings, "output_rate_hz", default=200.0)
    gyro_range_dps: int = same_as(DriverSettings, "gyro_range_dps")
    accel_range_g: int = same_as(DriverSettings, "accel_range_g")
    reconnect_interval_s: float = same_as(DriverSettings, "reconnect_interval_s")
    simulated_chip: str = setting("MPU-6050", choices=CHIP_VARIANTS,
                                  doc="the chip that --simulate emulates (when chip = auto)")

    def driver_settings(self) -> DriverSettings:
        """The driver's settings: the ones ``[sensor]`` shares with it, the rest defaults."""
        shared = {f.name for f in dataclasses.fields(DriverSettings)} & \
            {f.name for f in dataclasses.fields(self)}
        return DriverSettings(**{name: getattr(self, name) for name in shared})


def open_sensor(settings: SensorSettings | None = None, *, simulate: bool = False,
                scenario: Any = None, seed: int = 0, clock: Clock | None = None,
                ) -> FifoImuDriver:
    """A configured IMU driver. Raises :class:`~firmware_bridge.errors.SensorError` (with what
    to check) when the bus cannot be opened or no supported chip answers."""
    settings = settings or SensorSettings()
    clock = clock or SystemClock()
    addresses = [settings.address] if settings.address is not None else None
    if simulate:
        bus = simulated_bus(settings, scenario=scenario, seed=seed, clock=clock)
    else:
        bus = open_bus(settings.bus)
    try:
        driver = detect(bus, addresses, chip=settings.chip, settings=settings.driver_settings(),
                        clock=clock)
    except ImuNotFoundError as exc:
        bus.close()
        if simulate:
            raise
        raise ImuNotFoundError(f"{exc} (bus /dev/i2c-{settings.bus}; `roller detect` lists "
                               "what answers)", exc.answers) from None
    except BaseException:
        bus.close()
        raise
    driver.owns_bus = True
    return driver


def simulated_bus(settings: SensorSettings, *, scenario: Any = None, seed: int = 0,
                  clock: Clock | None = None) -> Any:
    """An emulated bus with one emulated chip, fed by a simulated person rolling.

    The chip's time zero is now on ``clock``; the session repeats after its end."""
    # Lazy: only --simulate needs the simulator; a Pi's service and `roller --help` skip it.
    from firmware_bridge.simulator import SimulatedRoller, person_scenario

    clock = clock or SystemClock()
    if scenario is None:
        scenario = person_scenario(SIMULATED_SESSION_S, seed=seed)
    roller = SimulatedRoller(scenario, seed=seed)
    duration = roller.duration_s

    def source(t: np.ndarray) -> np.ndarray:
        return roller.imu(np.mod(t, duration))

    variant = settings.simulated_chip if settings.chip == "auto" \
        else emulated_variant_for(settings.chip)
    chip = make_chip(variant, source, address=settings.address, clock=clock)
    chip.simulation = roller
    return EmulatedBus([chip], bus_number=settings.bus)


def open_bus(number: int) -> Any:
    """``smbus2.SMBus(number)``, or a :class:`BusOpenError` that says what to check."""
    device = f"/dev/i2c-{number}"
    try:
        from smbus2 import SMBus  # lazy: a hardware library a laptop need not have

        return SMBus(number)
    except FileNotFoundError:
        raise BusOpenError(
            f"{device} does not exist: enable I2C (sudo raspi-config -> Interface Options -> "
            "I2C, or dtparam=i2c_arm=on in /boot/firmware/config.txt, then reboot) and check "
            "[sensor] bus; or use --simulate on a machine without a sensor") from None
    except PermissionError:
        raise BusOpenError(
            f"no permission to open {device}: add the user to the i2c group (sudo adduser "
            "$USER i2c, then log in again) or run the service as a member of it") from None
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        raise BusOpenError(f"cannot open {device} ({code}: {exc.strerror}); check that I2C is "
                           "enabled and the bus number is right") from None
