"""What every IMU driver shares: the read loop, FIFO bookkeeping, fault handling and health.

A chip module (``mpu6050``, ``lsm6ds``) supplies only what is chip-specific: how to configure
the chip, how to empty its FIFO, how to read the FIFO's fill level and how to decode frames.
:class:`FifoImuDriver` turns that into the :class:`ImuDriver` contract:

* ``read()`` returns every sample since the previous call, ``(t (N,), samples (N, 6))`` with
  accelerometer [m/s^2] then gyro [rad/s] in the chip's axes and monotonic timestamps [s];
* idempotent transfers (register reads and writes) that fail with errno 121 (remote I/O, the
  chip did not acknowledge) or 5 (EIO) are retried with exponential backoff;
* a failed FIFO burst is never retried blindly (part of it may have been consumed). The FIFO
  count read after it tells what was consumed: a failure before any byte consumed nothing, and
  nothing is lost (the next read gets those frames); a failure mid-burst consumed whole frames
  plus ``count mod frame_bytes`` bytes of one more, which are read and dropped to realign. Only
  the frames the failed burst consumed are lost (``health.burst_frames_lost``), the frames read
  before the failure are returned, and the timestamps skip the lost frames' periods. A chip
  without a byte-exact count (the tagged LSM6DSO FIFO) resets the FIFO instead;
* a FIFO overflow, a fill level that is not a whole number of frames, or a fill level that
  time cannot explain (a stuck counter, a chip that stopped sampling) resets the FIFO; repeated
  FIFO faults or repeated failed reads re-initialise the chip;
* a chip that does not answer at all is reported (``health.connected`` False), ``read()``
  returns empty arrays, and the driver probes for it every ``reconnect_interval_s`` and picks it
  up again when it answers. ``read()`` never raises for a hardware fault.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, runtime_checkable

import numpy as np

from firmware_bridge.clock import Clock, SystemClock
from firmware_bridge.errors import SensorError
from firmware_bridge.imu.timestamps import FifoTimestamper
from firmware_bridge.physics import STANDARD_GRAVITY_M_S2
from firmware_bridge.registers import Register, RegisterDevice, SMBusLike
from firmware_bridge.settings import setting

log = logging.getLogger(__name__)

DEG_TO_RAD = np.pi / 180.0

TRANSIENT_ERRNOS = frozenset({errno.EREMOTEIO, errno.EIO, errno.ETIMEDOUT, errno.EAGAIN,
                              errno.ENXIO})
"""Bus errors worth retrying: 121 (no acknowledge), 5 (I/O error), timeouts, busy bus."""

T = TypeVar("T")


@dataclass(frozen=True)
class ChipInfo:
    """One chip variant, as recognised by its WHO_AM_I answer."""

    name: str
    family: str
    who_am_i_register: int
    who_am_i: int
    fifo_bytes: int
    """FIFO capacity used to size the read interval: the smallest FIFO of the parts that give
    this answer (a clone may hold more; the driver may learn that while configuring)."""
    fifo_max_bytes: int = 0
    """The largest FIFO a part giving this answer may have (0: ``fifo_bytes``): a FIFO count
    above it cannot be true. Overflow itself is judged by the chip's own flag, never by the
    count, because a clone's FIFO may be larger than the genuine part's."""

    @property
    def count_limit_bytes(self) -> int:
        return self.fifo_max_bytes or self.fifo_bytes


@dataclass(frozen=True)
class DriverSettings:
    """How a driver configures the chip and copes with faults. Units in the names."""

    output_rate_hz: float = setting(1000.0, unit="Hz", minimum=100.0, maximum=1000.0,
                                    doc="output data rate; the chip uses the nearest rate it "
                                        "has (an LSM6DS gives 104/208/416/833 Hz)")
    gyro_range_dps: int = setting(1000, unit="deg/s", choices=(500, 1000, 2000),
                                  doc="gyro full scale (a roller at 30 cm/s turns 230 deg/s)")
    accel_range_g: int = setting(4, unit="g", choices=(4, 8, 16),
                                 doc="accelerometer full scale")
    retries: int = setting(3, minimum=0, maximum=10,
                           doc="retries of a failed register transfer (errno 121/5)")
    retry_backoff_s: float = setting(0.002, unit="s", minimum=0.0, maximum=1.0,
                                     doc="first retry delay; doubles each retry")
    reinit_after_failures: int = setting(3, minimum=1, maximum=100,
                                         doc="consecutive failed reads before re-initialising")
    reconnect_interval_s: float = setting(1.0, unit="s", minimum=0.05, maximum=60.0,
                                          doc="how often to look for a sensor that stopped "
                                              "answering")
    read_interval_margin: float = setting(0.75, minimum=0.1, maximum=0.95,
                                          doc="fraction of the FIFO's fill time used as the "
                                              "longest safe read interval")


@dataclass
class DriverHealth:
    """What the driver has been through. Counters only grow; ``connected`` and ``last_error``
    describe now. Published by the service so a silent sensor is visible."""

    connected: bool = True
    samples: int = 0
    overflows: int = 0
    fifo_faults: int = 0
    retries: int = 0
    reinits: int = 0
    disconnects: int = 0
    samples_lost_estimate: int = 0
    burst_failures: int = 0
    """FIFO bursts that failed part-way or before any byte (recovered without a FIFO reset)."""
    burst_frames_lost: int = 0
    """Frames consumed by failed bursts, counted from the FIFO level (also in the estimate)."""
    last_error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@runtime_checkable
class ImuDriver(Protocol):
    """The protocol every chip driver implements (see the module docstring)."""

    chip: str
    address: int
    output_rate_hz: float
    max_read_interval_s: float
    health: DriverHealth

    def read(self) -> tuple[np.ndarray, np.ndarray]: ...
    def close(self) -> None: ...


class TransferError(Exception):
    """A transfer failed after its retries (internal: never leaves :meth:`FifoImuDriver.read`)."""


@dataclass(frozen=True)
class FifoLevel:
    """What a FIFO status read says: whole frames ready, and whether something is wrong."""

    frames: int
    overflow: bool = False
    fault: str | None = None
    """Why the level cannot be trusted (misaligned, over capacity), or None."""


def empty() -> tuple[np.ndarray, np.ndarray]:
    return np.empty(0), np.empty((0, 6))


class FifoImuDriver(ABC):
    """Base of the FIFO drivers; see the module docstring for the behaviour it guarantees."""

    family: str = ""

    def __init__(self, bus: SMBusLike, address: int, info: ChipInfo, *,
                 settings: DriverSettings | None = None, clock: Clock | None = None) -> None:
        self.settings = settings or DriverSettings()
        self.clock = clock or SystemClock()
        self.info = info
        self.chip = info.name
        self.address = address
        self.dev = RegisterDevice(bus, address)
        self.health = DriverHealth()
        self._closed = False
        self.owns_bus = False
        """Set by the loader that opened the bus: :meth:`close` then closes it too."""
        self._failures = 0
        self._fifo_fault_streak = 0
        self._next_probe_s = 0.0
        self._drained_at_s = 0.0
        self._suspect_level = False
        self.output_rate_hz = self.settings.output_rate_hz
        self.fifo_bytes = info.fifo_bytes
        """The FIFO size [bytes] the read interval is sized for (a driver that learns the real
        part while configuring may raise it)."""
        self._timestamps = FifoTimestamper(self.output_rate_hz)
        try:
            self._retrying(self._initialise)
        except TransferError as exc:
            raise SensorError(f"{self.chip} at 0x{address:02X} stopped answering while being "
                              f"configured ({exc}): check the wiring and power") from None

    # ----- chip-specific hooks ---------------------------------------------------------------

    frame_bytes: int = 12

    @abstractmethod
    def _configure(self) -> float:
        """Reset and configure the chip, leave its FIFO running; return the real output rate
        [Hz]. Raises OSError on a bus failure, SensorError if the chip is not what it seems."""

    @abstractmethod
    def _reset_fifo(self) -> None:
        """Empty the FIFO (and clear its overflow flag); sampling goes on."""

    @abstractmethod
    def _fifo_level(self) -> FifoLevel:
        """Read the FIFO fill level, each transfer through :meth:`_xfer` (retried)."""

    @abstractmethod
    def _read_frames(self, frames: int) -> np.ndarray:
        """Burst-read ``frames`` whole frames and decode them to (n, 6) SI units. May return
        fewer rows if some words could not be paired (counted as a FIFO fault by the caller)."""

    max_burst_frames: int = 84
    """Frames per I2C burst transfer."""
    recovers_bursts: bool = False
    """Whether the chip implements :meth:`_read_chunk`, :meth:`_decode`, :meth:`_fifo_fill`
    and :meth:`_discard`, so that a failed burst is recovered without a FIFO reset."""

    def _read_chunk(self, frames: int) -> bytes:
        """One burst transfer of ``frames`` whole frames' raw FIFO bytes (raises OSError).
        Chips that can recover a failed burst implement this with :meth:`_decode`,
        :meth:`_fifo_fill` and :meth:`_discard`."""
        raise NotImplementedError

    def _decode(self, data: bytes) -> np.ndarray:
        """Raw FIFO bytes of whole frames -> (n, 6) SI units."""
        raise NotImplementedError

    def _fifo_fill(self) -> tuple[int, int] | None:
        """(bytes in the FIFO, bytes to drop so the next byte starts a frame), each transfer
        retried; None if the chip cannot tell (then a failed burst resets the FIFO)."""
        return None

    def _discard(self, nbytes: int) -> None:
        """Read ``nbytes`` from the FIFO and drop them (one transfer)."""
        raise NotImplementedError

    def _read_register(self, register: Register) -> int:
        """Read one register (a banked chip selects the bank first)."""
        return self.dev.read(register)

    def _write_register(self, register: Register, value: int) -> None:
        """Write one register (a banked chip selects the bank first)."""
        self.dev.write(register, value)

    def _write_verified(self, wanted: list[tuple[Register, int]], hint: str) -> None:
        """Write each ``(register, value)``, then read them all back: a chip that does not keep
        what it was told is not the chip it claims to be (a clone) or is badly wired, and
        measuring with the wrong range would scale every speed wrongly without a sign."""
        for register, value in wanted:
            self._write_register(register, value)
        for register, value in wanted:
            got = self._read_register(register)
            if got != value:
                where = f"bank {register.bank} register" if register.bank else "register"
                raise SensorError(
                    f"{self.chip} at 0x{self.address:02X}: wrote 0x{value:02X} to {where} "
                    f"0x{register.address:02X} but read back 0x{got:02X}; {hint}")

    @property
    def fifo_capacity_frames(self) -> int:
        return self.fifo_bytes // self.frame_bytes

    @property
    def max_read_interval_s(self) -> float:
        """Longest safe interval between reads [s]: the FIFO's fill time times the margin."""
        return self.fifo_capacity_frames / self.output_rate_hz * self.settings.read_interval_margin

    # ----- the public contract ---------------------------------------------------------------

    def read(self) -> tuple[np.ndarray, np.ndarray]:
        """Every sample since the previous call: ``(t (N,) [s], samples (N, 6) [m/s^2, rad/s])``.

        Never raises for a bus fault: failures show in :attr:`health` and an empty batch."""
        if self._closed:
            return empty()
        if not self.health.connected:
            if self.clock.monotonic() < self._next_probe_s:
                return empty()
            if not self._try_reconnect():
                return empty()
        try:
            t, samples = self._read_once()
        except TransferError:
            self._failures += 1
            if self._failures >= self.settings.reinit_after_failures:
                self._reinitialise_or_disconnect()
            return empty()
        self._failures = 0
        self.health.samples += t.size
        return t, samples

    def close(self) -> None:
        """Stop reading (later reads return nothing); close the bus if this driver owns it."""
        if self._closed:
            return
        self._closed = True
        if self.owns_bus:
            with contextlib.suppress(OSError):
                self.dev.bus.close()

    def describe(self) -> str:
        s = self.settings
        return (f"{self.chip} at 0x{self.address:02X}: {self.output_rate_hz:g} Hz, "
                f"gyro +-{s.gyro_range_dps} deg/s, accel +-{s.accel_range_g} g, "
                f"read at least every {self.max_read_interval_s * 1000:.0f} ms")

    # ----- internals -------------------------------------------------------------------------

    def _read_once(self) -> tuple[np.ndarray, np.ndarray]:
        t_before = self.clock.monotonic()
        level = self._fifo_level()
        t_after = self.clock.monotonic()
        if level.overflow:
            self.health.overflows += 1
            self.health.samples_lost_estimate += max(0, self._expected_frames(t_after)
                                                     - self.fifo_capacity_frames)
            self._note("FIFO overflow: read too late, the oldest samples were lost")
            self._restart_fifo()
            return empty()
        fault = level.fault or self._implausible(level.frames, t_before, t_after)
        if fault:
            self._fifo_fault(fault)
            return empty()
        if level.frames == 0:
            return empty()
        if not self.recovers_bursts:
            return self._read_resetting(level, t_before, t_after)
        return self._read_recovering(level, t_before, t_after)

    def _read_resetting(self, level: FifoLevel, t_before: float,
                        t_after: float) -> tuple[np.ndarray, np.ndarray]:
        """Read the frames; a failed burst resets the FIFO (its state cannot be known)."""
        try:
            samples = self._read_frames(level.frames)
        except OSError as exc:
            self._note(f"FIFO burst failed ({exc}); FIFO reset")
            self.health.samples_lost_estimate += level.frames
            self._fifo_fault(f"burst read failed: {exc}", count_streak=False)
            raise TransferError(str(exc)) from exc
        if samples.shape[0] != level.frames:
            self._note(f"{level.frames - samples.shape[0]} FIFO words could not be paired")
            self.health.fifo_faults += 1
        self._fifo_fault_streak = 0
        self._drained_at_s = t_after
        t = self._timestamps.stamp(samples.shape[0], t_before, t_after)
        return t, samples

    def _read_recovering(self, level: FifoLevel, t_before: float,
                         t_after: float) -> tuple[np.ndarray, np.ndarray]:
        """Read the frames burst by burst. After a failed burst, work out from the FIFO count
        what it consumed, drop the rest of a part-read frame, and read on once more (a FIFO
        left full would overflow before the next read)."""
        segments: list[tuple[bytes, int]] = []    # raw frames read, then frames lost
        chunks: list[bytes] = []
        todo = level.frames
        failures = 0
        drained = True
        while todo > 0:
            n = min(todo, self.max_burst_frames)
            try:
                chunks.append(self._read_chunk(n))
                todo -= n
                continue
            except OSError as exc:
                failures += 1
                recovered = self._recover_burst(exc, todo, t_after)
            segments.append((b"".join(chunks), 0 if recovered is None else recovered[0]))
            chunks = []
            if recovered is None or failures > 1:
                drained = False     # frames may be left: the recovery set where we are
                break
            todo = recovered[1]
        if chunks or not segments:
            segments.append((b"".join(chunks), 0))
        self._fifo_fault_streak = 0
        if drained:
            self._drained_at_s = t_after
        ts, ss = [], []
        for data, lost in segments:
            samples = self._decode(data) if data else np.empty((0, 6))
            unpaired = len(data) // self.frame_bytes - samples.shape[0]
            if unpaired > 0:
                self._note(f"{unpaired} FIFO frame(s) could not be paired")
                self.health.fifo_faults += 1
            ts.append(self._timestamps.stamp(samples.shape[0], t_before, t_after))
            ss.append(samples)
            self._timestamps.skip(lost)
        return np.concatenate(ts), np.concatenate(ss)

    def _recover_burst(self, exc: OSError, unread: int,
                       t_count: float) -> tuple[int, int] | None:
        """After a failed burst: how many frames did it consume? Realign the FIFO; return
        (frames lost, frames left that were sampled by ``t_count``), or None if the FIFO had to
        be reset. ``unread``: frames of the level read at ``t_count`` not yet read when the
        burst started. Exact when no sample is taken while recovering; otherwise the samples
        taken meanwhile are counted from the time at the nominal rate."""
        self.health.burst_failures += 1
        self.health.last_error = f"I2C error: {exc}"
        try:
            fill = self._fifo_fill()
            assert fill is not None
            fill_bytes, partial = fill
            if partial:
                self._retrying(lambda: self._discard(partial))
        except TransferError:
            # the count cannot be read: the FIFO's state is unknown, start it again
            self.health.samples_lost_estimate += unread
            self._fifo_fault(f"burst read failed ({exc}) and the FIFO count could not be "
                             "read", count_streak=False)
            return None
        # frames present had nothing been consumed: the unread ones plus those sampled since
        # the count was read (the clock may have moved during the failed transfer)
        sampled = round((self.clock.monotonic() - t_count) * self.output_rate_hz)
        present = (fill_bytes - partial) // self.frame_bytes
        lost = max(0, unread + sampled - present)
        left = max(0, present - sampled)
        # the frames left were sampled before the count: as if drained that much earlier, so
        # that the next level is judged plausible by the time it covers
        self._drained_at_s = t_count - left / self.output_rate_hz
        self.health.burst_frames_lost += lost
        self.health.samples_lost_estimate += lost
        self._note(f"FIFO burst failed ({exc}): {lost} frame(s) consumed and lost, "
                   f"{partial} byte(s) dropped to realign")
        return lost, left

    def _expected_frames(self, now: float) -> int:
        return int((now - self._drained_at_s) * self.output_rate_hz)

    def _implausible(self, frames: int, t_before: float, t_after: float) -> str | None:
        """A fill level that elapsed time cannot explain: a stuck counter or a stalled chip.

        More frames than the chip can have made since the last drain is wrong at once. Far fewer
        than it must have made is wrong if it happens twice running (one late sample is not)."""
        period = 1.0 / self.output_rate_hz
        most = (t_after - self._drained_at_s) / period * 1.1 + 3
        least = (t_before - self._drained_at_s) / period * 0.8 - 3
        if frames > most:
            return (f"FIFO reports {frames} frames but at most {most:.0f} can have been sampled "
                    "since the last read (stuck FIFO count?)")
        if frames < least:
            if self._suspect_level:
                self._suspect_level = False
                return (f"FIFO reports {frames} frames but about {least + 3:.0f} should have "
                        "been sampled (chip stalled or FIFO count stuck)")
            self._suspect_level = True
        else:
            self._suspect_level = False
        return None

    def _fifo_fault(self, why: str, *, count_streak: bool = True) -> None:
        self.health.fifo_faults += 1
        self._note(f"FIFO fault: {why}")
        if count_streak:
            self._fifo_fault_streak += 1
        if self._fifo_fault_streak >= 3:
            self._fifo_fault_streak = 0
            self._reinitialise_or_disconnect()
            return
        with contextlib.suppress(TransferError):
            self._restart_fifo()

    def _restart_fifo(self) -> None:
        self._retrying(self._reset_fifo)
        now = self.clock.monotonic()
        self._timestamps.restart(now)
        self._drained_at_s = now
        self._suspect_level = False

    def _initialise(self) -> None:
        rate = self._configure()
        if abs(rate - self.output_rate_hz) > 1e-9:
            self.output_rate_hz = rate
            self._timestamps = FifoTimestamper(rate)
        now = self.clock.monotonic()
        self._timestamps.restart(now)
        self._drained_at_s = now
        self._suspect_level = False

    def _reinitialise_or_disconnect(self) -> None:
        self.health.reinits += 1
        try:
            self._retrying(self._initialise)
        except (TransferError, SensorError) as exc:
            self._disconnect(str(exc))
            return
        self._failures = 0
        self._note("chip re-initialised")

    def _disconnect(self, why: str) -> None:
        if self.health.connected:
            self.health.disconnects += 1
            log.warning("%s at 0x%02X is not answering (%s): check the wiring", self.chip,
                        self.address, why)
        self.health.connected = False
        self.health.last_error = f"not answering: {why}"
        self._next_probe_s = self.clock.monotonic() + self.settings.reconnect_interval_s

    def _try_reconnect(self) -> bool:
        try:
            who = self._who_am_i()
            if who != self.info.who_am_i:
                raise SensorError(f"WHO_AM_I answered 0x{who:02X}, expected "
                                  f"0x{self.info.who_am_i:02X}")
            self._retrying(self._initialise)
        except (OSError, TransferError) as exc:
            self._next_probe_s = self.clock.monotonic() + self.settings.reconnect_interval_s
            self.health.last_error = f"not answering: {exc}"
            return False
        self.health.connected = True
        self.health.reinits += 1
        self._failures = 0
        self._note("sensor answered again and was re-initialised")
        return True

    def _who_am_i(self) -> int:
        """Read the identity register (a banked chip selects its bank first)."""
        return self.dev.read(Register(self.info.who_am_i_register))

    def _xfer(self, action: Callable[..., T], *args: Any) -> T:
        """One idempotent transfer (``self.dev.read``, ...), retried on transient errors."""
        return self._retrying(lambda: action(*args))

    def _retrying(self, action: Callable[[], T]) -> T:
        """Run ``action``; on a transient bus error retry with exponential backoff."""
        delay = self.settings.retry_backoff_s
        for attempt in range(self.settings.retries + 1):
            try:
                return action()
            except SensorError:
                raise
            except OSError as exc:
                self.health.last_error = f"I2C error: {exc}"
                if exc.errno not in TRANSIENT_ERRNOS or attempt == self.settings.retries:
                    raise TransferError(str(exc)) from exc
                self.health.retries += 1
                self.clock.sleep(delay)
                delay *= 2
        raise AssertionError("unreachable")  # pragma: no cover

    def _note(self, message: str) -> None:
        self.health.last_error = message
        log.info("%s at 0x%02X: %s", self.chip, self.address, message)


def to_si(raw: np.ndarray, accel_lsb_per_g: float, gyro_lsb_per_dps: float) -> np.ndarray:
    """(N, 6) raw counts (accel then gyro) -> m/s^2 and rad/s."""
    out = raw.astype(np.float64)
    out[:, :3] *= STANDARD_GRAVITY_M_S2 / accel_lsb_per_g
    out[:, 3:] *= DEG_TO_RAD / gyro_lsb_per_dps
    return out


def check_choice(name: str, value: float, table: dict[Any, Any], chip: str) -> Any:
    if value not in table:
        raise SensorError(f"{chip} does not support {name} {value!r}: choose one of "
                          f"{', '.join(str(k) for k in table)}")
    return table[value]
