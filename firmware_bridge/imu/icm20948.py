"""InvenSense ICM-20948 over I2C (WHO_AM_I 0xEA at 0x68/0x69), read through the FIFO.

The ICM-20948 pages its registers into four banks selected by REG_BANK_SEL (0x7F, present in
every bank, USER_BANK in bits 5:4). Bank 0 holds WHO_AM_I (0x00), power, USER_CTRL, the
interrupt status and the FIFO (FIFO_EN_2, FIFO_RST, FIFO_MODE, FIFO_COUNTH/L, FIFO_R_W);
bank 2 holds the sample-rate dividers and the gyro / accelerometer configuration. The driver
remembers which bank is selected and forgets it on any failure or re-initialisation (a reset
returns the chip to bank 0).

Rates: gyro 1.125 kHz / (1 + GYRO_SMPLRT_DIV) and accelerometer 1.125 kHz / (1 +
ACCEL_SMPLRT_DIV) with their low-pass filters on (FCHOICE = 1); both dividers are set equal so
each FIFO frame holds one accelerometer and one gyro sample: 12 bytes, big-endian ``ax ay az gx
gy gz`` (register order). The FIFO holds 512 bytes; on overflow in stream mode the oldest bytes
are dropped and FIFO_OVERFLOW_INT (INT_STATUS_2) is set, so the driver resets the FIFO.
Sensitivities are the MPU family's (131..16.4 LSB per deg/s, 16384..2048 LSB per g).
Register addresses and fields from the ICM-20948 datasheet (DS-000189).
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.imu.base import FifoImuDriver, FifoLevel, check_choice, to_si
from firmware_bridge.registers import Field, Register


class Icm20948Map:
    """Registers and fields used, by bank, named as in the datasheet."""

    REG_BANK_SEL = Register(0x7F)                         # in every bank
    USER_BANK = Field(REG_BANK_SEL, shift=4, width=2)
    # bank 0
    WHO_AM_I = Register(0x00, reset=0xEA)
    USER_CTRL = Register(0x03)
    FIFO_ENABLE = Field(USER_CTRL, shift=6)                # USER_CTRL.FIFO_EN
    PWR_MGMT_1 = Register(0x06, reset=0x41)               # asleep, auto clock
    DEVICE_RESET = Field(PWR_MGMT_1, shift=7)
    SLEEP = Field(PWR_MGMT_1, shift=6)
    CLKSEL = Field(PWR_MGMT_1, shift=0, width=3)
    PWR_MGMT_2 = Register(0x07)                           # 0: accelerometer and gyro on
    INT_ENABLE_2 = Register(0x12)
    FIFO_OVERFLOW_EN = Field(INT_ENABLE_2, shift=0, width=5)
    INT_STATUS_2 = Register(0x1B)                         # cleared by reading it
    FIFO_OVERFLOW_INT = Field(INT_STATUS_2, shift=0, width=5)
    ACCEL_XOUT_H = Register(0x2D)                         # then gyro 0x33, temperature 0x39
    FIFO_EN_1 = Register(0x66)                            # external sensors: unused
    FIFO_EN_2 = Register(0x67)
    ACCEL_FIFO_EN = Field(FIFO_EN_2, shift=4)
    GYRO_Z_FIFO_EN = Field(FIFO_EN_2, shift=3)
    GYRO_Y_FIFO_EN = Field(FIFO_EN_2, shift=2)
    GYRO_X_FIFO_EN = Field(FIFO_EN_2, shift=1)
    TEMP_FIFO_EN = Field(FIFO_EN_2, shift=0)
    FIFO_RST = Register(0x68)
    FIFO_RESET = Field(FIFO_RST, shift=0, width=5)        # held in reset while set
    FIFO_MODE = Register(0x69)
    SNAPSHOT = Field(FIFO_MODE, shift=0)                   # 0: stream (overwrite oldest)
    FIFO_COUNTH = Register(0x70)                          # count[12:8] in bits 4:0
    FIFO_COUNTL = Register(0x71)
    FIFO_R_W = Register(0x72)
    # bank 2
    GYRO_SMPLRT_DIV = Register(0x00, bank=2)
    GYRO_CONFIG_1 = Register(0x01, reset=0x01, bank=2)
    GYRO_DLPFCFG = Field(GYRO_CONFIG_1, shift=3, width=3)
    GYRO_FS_SEL = Field(GYRO_CONFIG_1, shift=1, width=2)
    GYRO_FCHOICE = Field(GYRO_CONFIG_1, shift=0)
    ACCEL_SMPLRT_DIV_1 = Register(0x10, bank=2)           # divider bits 11:8
    ACCEL_SMPLRT_DIV_2 = Register(0x11, bank=2)           # divider bits 7:0
    ACCEL_CONFIG = Register(0x14, reset=0x01, bank=2)
    ACCEL_DLPFCFG = Field(ACCEL_CONFIG, shift=3, width=3)
    ACCEL_FS_SEL = Field(ACCEL_CONFIG, shift=1, width=2)
    ACCEL_FCHOICE = Field(ACCEL_CONFIG, shift=0)


I = Icm20948Map  # noqa: E741 - short alias, as M for the MPU map

GYRO_RANGES = {250: (0, 131.0), 500: (1, 65.5), 1000: (2, 32.8), 2000: (3, 16.4)}
ACCEL_RANGES = {2: (0, 16384.0), 4: (1, 8192.0), 8: (2, 4096.0), 16: (3, 2048.0)}
BASE_RATE_HZ = 1125.0
FRAME_BYTES = 12
FIFO_BYTES = 512
CLKSEL_AUTO = 1
FIFO_ENABLE_BITS = (I.ACCEL_FIFO_EN.put(0, 1) | I.GYRO_X_FIFO_EN.put(0, 1)
                    | I.GYRO_Y_FIFO_EN.put(0, 1) | I.GYRO_Z_FIFO_EN.put(0, 1))


def sample_rate_divider(output_rate_hz: float) -> tuple[int, float]:
    """Divider for a requested rate [Hz] and the rate it gives: 1000 Hz -> 1125 Hz."""
    div = min(max(round(BASE_RATE_HZ / output_rate_hz) - 1, 0), 255)
    return div, BASE_RATE_HZ / (1 + div)


def dlpf_settings(output_rate_hz: float) -> tuple[int, int]:
    """(GYRO_DLPFCFG, ACCEL_DLPFCFG) below the Nyquist rate: 152/111 Hz, 120/50 Hz or
    51/24 Hz filters."""
    if output_rate_hz >= 400:
        return 1, 1
    if output_rate_hz >= 250:
        return 2, 2
    return 3, 3


class Icm20948Driver(FifoImuDriver):
    """ICM-20948 driver (see the module docstring)."""

    family = "icm20948"
    frame_bytes = FRAME_BYTES
    max_burst_frames = 42
    recovers_bursts = True

    def __init__(self, *args, **kwargs) -> None:
        self._bank: int | None = None
        super().__init__(*args, **kwargs)

    def _select(self, bank: int) -> None:
        if self._bank != bank:
            self._bank = None
            self.dev.write(I.REG_BANK_SEL, I.USER_BANK.put(0, bank))
            self._bank = bank

    def _read_register(self, register: Register) -> int:
        self._select(register.bank)
        return self.dev.read(register)

    def _write_register(self, register: Register, value: int) -> None:
        self._select(register.bank)
        self.dev.write(register, value)

    def _configure(self) -> float:
        s = self.settings
        gyro_code, self._gyro_lsb = check_choice("gyro range [deg/s]", s.gyro_range_dps,
                                                 GYRO_RANGES, self.chip)
        accel_code, self._accel_lsb = check_choice("accel range [g]", s.accel_range_g,
                                                   ACCEL_RANGES, self.chip)
        div, rate = sample_rate_divider(s.output_rate_hz)
        gyro_dlpf, accel_dlpf = dlpf_settings(rate)
        self._bank = None
        self._write_register(I.PWR_MGMT_1, I.DEVICE_RESET.put(0, 1))
        self._bank = None                                   # a reset selects bank 0
        self.clock.sleep(0.1)
        self._write_register(I.PWR_MGMT_1, I.CLKSEL.put(0, CLKSEL_AUTO))     # awake
        self.clock.sleep(0.04)
        gyro_config = I.GYRO_FCHOICE.put(I.GYRO_FS_SEL.put(I.GYRO_DLPFCFG.put(0, gyro_dlpf),
                                                           gyro_code), 1)
        accel_config = I.ACCEL_FCHOICE.put(I.ACCEL_FS_SEL.put(
            I.ACCEL_DLPFCFG.put(0, accel_dlpf), accel_code), 1)
        wanted = [                  # grouped by bank: one bank switch each way
            (I.GYRO_SMPLRT_DIV, div),
            (I.GYRO_CONFIG_1, gyro_config),
            (I.ACCEL_SMPLRT_DIV_1, 0),
            (I.ACCEL_SMPLRT_DIV_2, div),
            (I.ACCEL_CONFIG, accel_config),
            (I.PWR_MGMT_2, 0),
            (I.FIFO_EN_1, 0),
            (I.FIFO_EN_2, FIFO_ENABLE_BITS),
            (I.FIFO_MODE, I.SNAPSHOT.put(0, 0)),
            (I.INT_ENABLE_2, I.FIFO_OVERFLOW_EN.put(0, 1)),
            (I.USER_CTRL, I.FIFO_ENABLE.put(0, 1)),
        ]
        self._write_verified(wanted, "check the wiring")
        self._reset_fifo()
        return rate

    def _reset_fifo(self) -> None:
        self._write_register(I.FIFO_RST, I.FIFO_RESET.put(0, 0b11111))
        self._write_register(I.FIFO_RST, 0)
        self._read_register(I.INT_STATUS_2)  # clears a stale overflow flag

    def _fifo_level(self) -> FifoLevel:
        status = self._xfer(self._read_register, I.INT_STATUS_2)
        high, low = self._xfer(self._block, I.FIFO_COUNTH, 2)
        count = ((high & 0x1F) << 8) | low
        if I.FIFO_OVERFLOW_INT.get(status):
            return FifoLevel(0, overflow=True)
        if count > self.info.count_limit_bytes:
            return FifoLevel(0, fault=f"FIFO count {count} is more than the "
                                      f"{self.info.count_limit_bytes}-byte FIFO holds")
        if count % FRAME_BYTES:
            return FifoLevel(0, fault=f"FIFO count {count} is not a whole number of "
                                      f"{FRAME_BYTES}-byte frames (misaligned)")
        return FifoLevel(count // FRAME_BYTES)

    def _block(self, register: Register, length: int) -> bytes:
        self._select(register.bank)
        return self.dev.read_block(register, length)

    def _read_frames(self, frames: int) -> np.ndarray:
        chunks = []
        remaining = frames
        while remaining > 0:
            n = min(remaining, self.max_burst_frames)
            chunks.append(self._read_chunk(n))
            remaining -= n
        return self._decode(b"".join(chunks))

    def _read_chunk(self, frames: int) -> bytes:
        return self._block(I.FIFO_R_W, frames * FRAME_BYTES)

    def _decode(self, data: bytes) -> np.ndarray:
        raw = np.frombuffer(data, dtype=">i2").reshape(-1, 6)
        return to_si(raw, self._accel_lsb, self._gyro_lsb)

    def _fifo_fill(self) -> tuple[int, int]:
        high, low = self._xfer(self._block, I.FIFO_COUNTH, 2)
        count = ((high & 0x1F) << 8) | low
        return count, count % FRAME_BYTES

    def _discard(self, nbytes: int) -> None:
        self._block(I.FIFO_R_W, nbytes)

    def _initialise(self) -> None:
        self._bank = None
        super()._initialise()

    def _who_am_i(self) -> int:
        self._bank = None                   # after a fault, do not trust the remembered bank
        return self._read_register(I.WHO_AM_I)
