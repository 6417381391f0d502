"""What every emulated IMU shares: a register file, a sample clock, a FIFO and injected faults.

An emulated chip samples a *motion source* -- any callable ``source(t) -> (N, 6)`` giving
accelerometer [m/s^2] then gyro [rad/s] at times ``t`` [s] (the simulated roller's ``imu``) --
at its own output rate against the injected clock, quantises to 16 bits with the configured
full scale (saturating like the real ADC), and pushes frames into its FIFO in the chip's own
byte order and layout. Time only moves when the clock does: each bus transfer first brings the
chip up to ``clock.monotonic()``.

The chip's oscillator can be off by ``rate_error`` (0.01 = 1% fast), as real ones are. Sampling
runs from the moment the rate is configured, independent of FIFO resets (a reset empties the
FIFO; it does not restart the chip's sample clock), so the first sample after a reset lands
anywhere within one period, as on hardware.

Faults a test can inject: :meth:`unplug` / :meth:`replug` (a replugged chip has been power
cycled: registers at their reset values, asleep), :meth:`force_overflow` and
:meth:`stick_fifo_count`. Bus-level NACK/EIO is injected on the bus
(:meth:`firmware_bridge.emulated.EmulatedBus.fail_next`).
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

import numpy as np

from firmware_bridge.clock import Clock, SystemClock
from firmware_bridge.physics import STANDARD_GRAVITY_M_S2

MotionSource = Callable[[np.ndarray], np.ndarray]


def still_source(t: np.ndarray) -> np.ndarray:
    """A roller lying still, z axis up: 1 g on z, no rotation."""
    out = np.zeros((np.asarray(t).size, 6))
    out[:, 2] = STANDARD_GRAVITY_M_S2
    return out


class EmulatedImu(ABC):
    """Base of the emulated chips. Subclasses declare registers and the FIFO layout."""

    name = "IMU"
    fifo_capacity_bytes = 1024
    fifo_word_bytes = 1
    """Granularity in which an overflowing FIFO drops its oldest data."""
    who_am_i_register = 0x75
    simulation: Any = None
    """The simulated roller behind ``source``, when there is one (for ground truth)."""

    def __init__(self, source: MotionSource | None = None, *, address: int,
                 who_am_i: int, clock: Clock | None = None, rate_error: float = 0.0,
                 source_t0: float | None = None, record: bool = False) -> None:
        self.source = source or still_source
        self.address = address
        self.who_am_i = who_am_i
        self.clock = clock or SystemClock()
        self.rate_error = rate_error
        self.source_t0 = self.clock.monotonic() if source_t0 is None else source_t0
        """Clock time that the motion source calls t = 0."""
        self.record = record
        self.recorded_times: list[np.ndarray] = []
        """With ``record``: true times [s, clock] of every sample pushed into the FIFO."""
        self.recorded_raw: list[np.ndarray] = []
        """With ``record``: the raw int16 (N, 6) counts (accel, gyro) of those samples."""
        self.plugged = True
        self.produced = 0
        """Samples pushed into the FIFO (including ones later lost to an overflow)."""
        self.overflowed_bytes = 0
        self.cleared_after_overflow_bytes = 0
        """Bytes a FIFO reset emptied after a real overflow (content the host had to give up
        because the chip's overflow left it misaligned)."""
        self._overflowed_since_clear = False
        self._stuck_count: int | None = None
        self.power_on()

    # ----- power and faults ------------------------------------------------------------------

    def power_on(self) -> None:
        """Registers to their reset values, FIFO empty, not sampling."""
        self.regs = bytearray(256)
        self._reset_registers()
        self.fifo = bytearray()
        self.fifo_consumed_bytes = 0
        self.overflow_flag = False
        self._rate_hz: float | None = None
        self._phase_t0 = 0.0
        self._k = 0
        self.latest_raw = np.zeros(6, dtype=np.int16)
        self._stuck_count = None

    def unplug(self) -> None:
        """The sensor stops answering (every transfer is NACKed: errno 121)."""
        self.plugged = False

    def replug(self) -> None:
        """The sensor answers again, power-cycled: it must be configured anew."""
        self.plugged = True
        self.power_on()

    def force_overflow(self) -> None:
        """Fill the FIFO past its capacity now, as if the host had not read for too long."""
        self.advance()
        if self._rate_hz is None or not self._accepting():
            return
        frames = self.fifo_capacity_bytes // max(1, self.frame_bytes()) + 2
        t = self.clock.monotonic() - (np.arange(frames)[::-1] + 1) * 1e-6
        self._push(self._frames(self._quantise(self.source(t - self.source_t0))), t, None)

    def stick_fifo_count(self, stuck: bool = True) -> None:
        """Freeze (or release) the FIFO count registers at their present value."""
        self.advance()
        self._stuck_count = self.fifo_level_count() if stuck else None

    # ----- bus side --------------------------------------------------------------------------

    def read(self, register: int, length: int) -> bytes:
        """``length`` bytes from ``register`` on (auto-increment; FIFO ports stream)."""
        self.advance()
        out = bytearray()
        reg = register
        while len(out) < length:
            if self._is_fifo_port(reg):
                out += self._read_fifo_port(reg, length - len(out))
                break
            out.append(self.read_register(reg) & 0xFF)
            reg = (reg + 1) & 0xFF
        return bytes(out)

    def write(self, register: int, data: bytes) -> None:
        self.advance()
        reg = register
        for value in data:
            self.write_register(reg, value & 0xFF)
            reg = (reg + 1) & 0xFF
        self._update_rate()

    # ----- the sample clock and FIFO ---------------------------------------------------------

    def advance(self) -> None:
        """Take every sample due up to now and push it into the FIFO."""
        if self._rate_hz is None:
            return
        now = self.clock.monotonic()
        period = 1.0 / (self._rate_hz * (1.0 + self.rate_error))
        k_end = math.floor((now - self._phase_t0) / period + 1e-9)
        n = k_end - self._k
        if n <= 0:
            return
        k_start = self._k
        self._k = k_end
        if not self._accepting():
            return
        frame_bytes = self.frame_bytes()
        keep = self.fifo_capacity_bytes // max(1, frame_bytes) + 2
        skipped = 0
        if n > keep:  # samples that would be overwritten anyway: count them, do not compute
            skipped = n - keep
            k_start += skipped
        t = self._phase_t0 + period * np.arange(k_start + 1, k_end + 1)
        raw = self._quantise(np.asarray(self.source(t - self.source_t0), dtype=float))
        self.latest_raw = raw[-1].copy()
        self._push(self._frames(raw), t, raw, skipped=skipped)

    def _push(self, data: bytes, t: np.ndarray, raw: np.ndarray | None, skipped: int = 0) -> None:
        frames = t.size
        self.produced += frames + skipped
        if skipped:
            self.overflow_flag = True
            self._overflowed_since_clear = True
            self.overflowed_bytes += skipped * self.frame_bytes()
            self.fifo_consumed_bytes += skipped * self.frame_bytes()
        if self.record and raw is not None:
            self.recorded_times.append(t)
            self.recorded_raw.append(raw)
        self.fifo += data
        excess = len(self.fifo) - self.fifo_capacity_bytes
        if excess > 0:
            w = self.fifo_word_bytes
            excess = -(-excess // w) * w
            del self.fifo[:excess]
            self.fifo_consumed_bytes += excess
            self.overflowed_bytes += excess
            self.overflow_flag = True
            self._overflowed_since_clear = True

    def pop_fifo(self, n: int) -> bytes:
        """Take ``n`` bytes from the FIFO; reading an empty FIFO gives zeros."""
        data = bytes(self.fifo[:n])
        del self.fifo[:n]
        self.fifo_consumed_bytes += len(data)
        return data + bytes(n - len(data))

    def fifo_level_count(self) -> int:
        """What the FIFO count registers would report now (chip-specific units)."""
        return len(self.fifo)

    def reported_count(self) -> int:
        return self._stuck_count if self._stuck_count is not None else self.fifo_level_count()

    def clear_fifo(self) -> None:
        if getattr(self, "_overflowed_since_clear", False):
            self.cleared_after_overflow_bytes += len(self.fifo)
        self._overflowed_since_clear = False
        self.fifo_consumed_bytes += len(self.fifo)
        self.fifo.clear()
        self.overflow_flag = False

    def _update_rate(self) -> None:
        rate = self._sampling_rate_hz()
        if rate != self._rate_hz:
            self._rate_hz = rate
            self._phase_t0 = self.clock.monotonic()
            self._k = 0

    def _quantise(self, values: np.ndarray) -> np.ndarray:
        values = values.reshape(-1, 6)
        accel_lsb_per_g, gyro_lsb_per_dps = self._scales()
        counts = np.empty_like(values)
        counts[:, :3] = values[:, :3] / STANDARD_GRAVITY_M_S2 * accel_lsb_per_g
        counts[:, 3:] = np.degrees(values[:, 3:]) * gyro_lsb_per_dps
        return np.clip(np.rint(counts), -32768, 32767).astype(np.int16)

    def scales_si(self) -> tuple[float, float]:
        """One count in m/s^2 (accel) and rad/s (gyro) at the configured full scale."""
        accel_lsb_per_g, gyro_lsb_per_dps = self._scales()
        return STANDARD_GRAVITY_M_S2 / accel_lsb_per_g, math.radians(1.0) / gyro_lsb_per_dps

    def samples_produced_times(self) -> np.ndarray:
        return np.concatenate(self.recorded_times) if self.recorded_times else np.empty(0)

    def samples_produced_raw(self) -> np.ndarray:
        return (np.concatenate(self.recorded_raw) if self.recorded_raw
                else np.empty((0, 6), dtype=np.int16))

    @property
    def output_rate_hz(self) -> float | None:
        """The configured rate [Hz] (before the oscillator error), None if not sampling."""
        return self._rate_hz

    # ----- chip-specific ---------------------------------------------------------------------

    @abstractmethod
    def _reset_registers(self) -> None: ...

    @abstractmethod
    def read_register(self, register: int) -> int: ...

    @abstractmethod
    def write_register(self, register: int, value: int) -> None: ...

    @abstractmethod
    def _sampling_rate_hz(self) -> float | None:
        """The configured sample rate [Hz], or None while the chip is not sampling."""

    @abstractmethod
    def _accepting(self) -> bool:
        """Whether new samples go into the FIFO."""

    @abstractmethod
    def _scales(self) -> tuple[float, float]:
        """(accel LSB per g, gyro LSB per deg/s) at the configured full scales."""

    @abstractmethod
    def frame_bytes(self) -> int: ...

    @abstractmethod
    def _frames(self, raw: np.ndarray) -> bytes:
        """FIFO bytes for (N, 6) int16 samples (accel, gyro) in the chip's layout."""

    @abstractmethod
    def _is_fifo_port(self, register: int) -> bool: ...

    @abstractmethod
    def _read_fifo_port(self, register: int, length: int) -> bytes: ...
