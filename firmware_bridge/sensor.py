"""The production loader for the IMU: config section ``[sensor]`` -> a configured driver.

``open_sensor(settings)`` opens ``/dev/i2c-<bus>`` with smbus2 and runs
:func:`firmware_bridge.imu.detect`; when that fails the error says what to check (I2C enabled?
permissions? wiring?). It never falls back to a fake. ``open_sensor(settings, simulate=True)``
builds an emulated chip on an emulated bus, fed by the simulated roller doing a plausible
routine, and returns the *same* driver class from the same ``detect`` -- so a simulated run
exercises the real driver code, register by register. A long-running service uses
:func:`open_sensor_or_wait`: a sensor that cannot be opened yet becomes an
:class:`AwaitedSensor`, tried again every few seconds, so the service runs degraded and says why.
"""

from __future__ import annotations

import dataclasses
import errno
import grp
import logging
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from firmware_bridge.chips import CHIP_CHOICES, CHIP_VARIANTS, emulated_variant_for, make_chip
from firmware_bridge.clock import Clock, SystemClock
from firmware_bridge.detection import detect
from firmware_bridge.emulated import EmulatedBus
from firmware_bridge.errors import BusOpenError, ImuNotFoundError, SensorError
from firmware_bridge.imu import DriverSettings
from firmware_bridge.imu.base import DriverHealth, FifoImuDriver, ImuDriver
from firmware_bridge.settings import same_as, setting

log = logging.getLogger(__name__)

SIMULATED_SESSION_S = 1800.0
"""Length of the simulated person's session; it repeats after that."""

SIMULATED_PERSONS = ("routine", "demo")
"""Who moves a simulated roller: ``routine``, a plausible person rolling from the first second
for :data:`SIMULATED_SESSION_S`, again and again (now and then too fast, holds, rests); ``demo``,
the demo's person, who lies still for
:data:`~firmware_bridge.simulator.demo_person.DEMO_START_DELAY_S`, does the default routine
once and then lies still."""


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
                person: str = "routine") -> FifoImuDriver:
    """A configured IMU driver. Raises :class:`~firmware_bridge.errors.SensorError` (with what
    to check) when the bus cannot be opened or no supported chip answers. With ``simulate``,
    the emulated chip is moved by ``scenario``, else by the simulated ``person`` (one of
    :data:`SIMULATED_PERSONS`)."""
    settings = settings or SensorSettings()
    clock = clock or SystemClock()
    addresses = [settings.address] if settings.address is not None else None
    if simulate:
        if scenario is None:
            scenario = simulated_person(person, seed=seed)
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


def simulated_person(name: str, *, seed: int = 0) -> Any:
    """The scenario of the simulated person ``name`` (:data:`SIMULATED_PERSONS`)."""
    from firmware_bridge.simulator import demo_scenario, person_scenario  # lazy: --simulate only

    if name == "routine":
        return person_scenario(SIMULATED_SESSION_S, seed=seed)
    if name == "demo":
        return demo_scenario(seed=seed)
    raise ValueError(f"simulated person {name!r}: expected one of "
                     f"{', '.join(SIMULATED_PERSONS)}")


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
    """``smbus2.SMBus(number)``, or a :class:`BusOpenError` that says what to check (and, for a
    refused device, which policy refused it)."""
    device = f"/dev/i2c-{number}"
    try:
        from smbus2 import SMBus  # lazy: a hardware library a laptop need not have

        return SMBus(number)
    except FileNotFoundError:
        raise BusOpenError(
            f"{device} does not exist: I2C is off; enable it (sudo raspi-config nonint do_i2c 0, "
            "or dtparam=i2c_arm=on in /boot/firmware/config.txt, then reboot) and check "
            "[sensor] bus; or use --simulate on a machine without a sensor") from None
    except PermissionError as exc:
        raise BusOpenError(denied_message(device, exc)) from None
    except OSError as exc:
        code = errno.errorcode.get(exc.errno or 0, str(exc.errno))
        raise BusOpenError(f"cannot open {device} ({code}: {exc.strerror}); check that I2C is "
                           "enabled and the bus number is right") from None


def denied_message(device: str, exc: PermissionError) -> str:
    """Why opening ``device`` was refused, naming the policy that refused it.

    A device cgroup (systemd's ``DevicePolicy=``/``DeviceAllow=``, a container's device list)
    refuses with EPERM whatever the file's mode; the file's owner, group and mode refuse with
    EACCES. Joining the i2c group only helps in the second case."""
    if exc.errno == errno.EPERM:
        return (f"{device}: the device cgroup refused it (EPERM; the file's mode is not the "
                "reason): under systemd the unit needs DeviceAllow=char-i2c rw, in a container "
                "the device must be passed in")
    try:
        st = os.stat(device)
        group = grp.getgrgid(st.st_gid).gr_name
        mode = f"{group}, mode {stat.S_IMODE(st.st_mode):04o}"
    except (OSError, KeyError):
        group, mode = "i2c", "its group"
    return (f"no permission to open {device} (EACCES: the file is {mode}): add the user to "
            f"the {group} group (sudo adduser $USER {group}, then log in again) or run the "
            "service as a member of it")


BUS_RETRY_INTERVAL_S = 5.0
"""How often :class:`AwaitedSensor` tries to open a sensor that could not be opened [s]: often
enough that a sensor plugged in (or I2C enabled) is picked up within seconds, rarely enough
that a Pi without one does no noticeable work."""


class AwaitedSensor:
    """The IMU driver of a service whose sensor could not be opened at start (no
    ``/dev/i2c-N``, no permission, nothing answering): the service runs degraded instead of
    exiting, and systemd does not restart it in a loop.

    Until the sensor opens, ``health.connected`` is False with the open error as
    ``last_error`` (the service's health check reports it: ``degraded: sensor fault: ...``),
    ``read()`` returns no samples and tries ``opener`` again every ``retry_interval_s``
    (on ``clock``). Once it opens, every attribute is the real driver's.
    """

    def __init__(self, opener: Callable[[], ImuDriver], error: SensorError, *,
                 clock: Clock | None = None,
                 retry_interval_s: float = BUS_RETRY_INTERVAL_S) -> None:
        self._opener = opener
        self.clock = clock or SystemClock()
        self.retry_interval_s = retry_interval_s
        self.attempts = 1
        """How many times the sensor was tried (the failed open that made this one counts)."""
        self.driver: ImuDriver | None = None
        self._health = DriverHealth(connected=False, last_error=str(error))
        self._next_try_s = self.clock.monotonic() + retry_interval_s

    @property
    def opened(self) -> bool:
        return self.driver is not None

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """The real driver's samples; empty (after another try when due) until it opens."""
        if self.driver is not None:
            return self.driver.read()
        now = self.clock.monotonic()
        if now >= self._next_try_s:
            self._next_try_s = now + self.retry_interval_s
            self.attempts += 1
            try:
                self.driver = self._opener()
            except SensorError as exc:
                if str(exc) != self._health.last_error:
                    log.warning("sensor still unavailable: %s", exc)
                self._health.last_error = str(exc)
                return np.empty(0), np.empty((0, 6))
            log.info("sensor %s found at 0x%02X after %d tries", self.driver.chip,
                     self.driver.address, self.attempts)
            return self.driver.read()
        return np.empty(0), np.empty((0, 6))

    def close(self) -> None:
        if self.driver is not None:
            self.driver.close()

    @property
    def health(self) -> DriverHealth:
        return self.driver.health if self.driver is not None else self._health

    @property
    def chip(self) -> str:
        return self.driver.chip if self.driver is not None else "none"

    @property
    def address(self) -> int:
        return self.driver.address if self.driver is not None else 0

    @property
    def output_rate_hz(self) -> float:
        return self.driver.output_rate_hz if self.driver is not None else 0.0

    @property
    def max_read_interval_s(self) -> float:
        """The real driver's; 0 (no limit: the loop keeps its own pace) until it opens."""
        return self.driver.max_read_interval_s if self.driver is not None else 0.0


def open_sensor_or_wait(settings: SensorSettings | None = None, *, clock: Clock | None = None,
                        retry_interval_s: float = BUS_RETRY_INTERVAL_S,
                        ) -> FifoImuDriver | AwaitedSensor:
    """:func:`open_sensor` for a long-running service: the driver, or, when the sensor cannot
    be opened now, an :class:`AwaitedSensor` that keeps trying (the error logged once)."""
    settings = settings or SensorSettings()
    clock = clock or SystemClock()

    def opener() -> FifoImuDriver:
        return open_sensor(settings, clock=clock)

    try:
        return opener()
    except SensorError as exc:
        log.error("%s (trying again every %.0f s)", exc, retry_interval_s)
        return AwaitedSensor(opener, exc, clock=clock, retry_interval_s=retry_interval_s)
