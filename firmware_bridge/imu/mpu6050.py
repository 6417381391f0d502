"""InvenSense MPU-6050 / MPU-6500 / MPU-9250 (and clones) over I2C, read through the FIFO.

Register map from the MPU-6000/6050 register map (RM-MPU-6000A) and the MPU-6500 register map
(RM-MPU-6500A). The two share every register used here; the MPU-6500 family adds
ACCEL_CONFIG2 (accelerometer filter) and holds 512 FIFO bytes instead of 1024. The MPU-9250
(0x71) and MPU-9255 (0x73) are MPU-6500s with a magnetometer die (not used). Clones sold as
"MPU-6050" (GY-521 boards) answer WHO_AM_I with 0x70, 0x71, 0x72 or 0x98, some with the 6500's
registers, some with the 6050's (no ACCEL_CONFIG2) and a 1024-byte FIFO. So:

* overflow is the chip's own FIFO_OFLOW_INT flag, never a count threshold: a clone's count
  legitimately goes past 512;
* the read interval is sized for the smallest FIFO the answer allows (512 bytes), except when
  ACCEL_CONFIG2 does not keep what was written: that is an MPU-6050 inside (1024 bytes), and
  its accelerometer filter is then DLPF_CFG's, as on a 6050.

The FIFO gets accelerometer and gyro (ACCEL_FIFO_EN, XG/YG/ZG_FIFO_EN): one 12-byte frame per
sample, big-endian int16 ``ax ay az gx gy gz`` (frames follow register order 0x3B..0x48, with
the temperature left out). Sample rate = 1 kHz / (1 + SMPLRT_DIV) with the low-pass filter on.
When the FIFO overflows the chip drops the oldest *bytes* and sets FIFO_OFLOW_INT: 1024 is not a
multiple of 12, so the content is then misaligned and the driver must reset the FIFO.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.imu.base import FifoImuDriver, FifoLevel, check_choice, to_si
from firmware_bridge.registers import Field, Register


class Mpu6050Map:
    """The registers and fields we use, named as in the datasheet."""

    SMPLRT_DIV = Register(0x19)
    CONFIG = Register(0x1A)
    DLPF_CFG = Field(CONFIG, shift=0, width=3)
    GYRO_CONFIG = Register(0x1B)
    GYRO_FS_SEL = Field(GYRO_CONFIG, shift=3, width=2)
    ACCEL_CONFIG = Register(0x1C)
    ACCEL_FS_SEL = Field(ACCEL_CONFIG, shift=3, width=2)
    ACCEL_CONFIG2 = Register(0x1D)                      # MPU-6500 family only
    A_DLPF_CFG = Field(ACCEL_CONFIG2, shift=0, width=3)
    FIFO_EN = Register(0x23)
    TEMP_FIFO_EN = Field(FIFO_EN, shift=7)
    XG_FIFO_EN = Field(FIFO_EN, shift=6)
    YG_FIFO_EN = Field(FIFO_EN, shift=5)
    ZG_FIFO_EN = Field(FIFO_EN, shift=4)
    ACCEL_FIFO_EN = Field(FIFO_EN, shift=3)
    INT_ENABLE = Register(0x38)
    FIFO_OFLOW_EN = Field(INT_ENABLE, shift=4)
    INT_STATUS = Register(0x3A)                         # cleared by reading it
    FIFO_OFLOW_INT = Field(INT_STATUS, shift=4)
    DATA_RDY_INT = Field(INT_STATUS, shift=0)
    ACCEL_XOUT_H = Register(0x3B)                       # 14 bytes: accel, temperature, gyro
    GYRO_XOUT_H = Register(0x43)
    USER_CTRL = Register(0x6A)
    FIFO_ENABLE = Field(USER_CTRL, shift=6)             # USER_CTRL.FIFO_EN
    FIFO_RESET = Field(USER_CTRL, shift=2)
    PWR_MGMT_1 = Register(0x6B, reset=0x40)             # asleep after power-on
    DEVICE_RESET = Field(PWR_MGMT_1, shift=7)
    SLEEP = Field(PWR_MGMT_1, shift=6)
    CLKSEL = Field(PWR_MGMT_1, shift=0, width=3)
    FIFO_COUNTH = Register(0x72)                        # then FIFO_COUNTL: big-endian count
    FIFO_COUNTL = Register(0x73)
    FIFO_R_W = Register(0x74)
    WHO_AM_I = Register(0x75, reset=0x68)


M = Mpu6050Map

GYRO_RANGES = {250: (0, 131.0), 500: (1, 65.5), 1000: (2, 32.8), 2000: (3, 16.4)}
"""Full scale [deg/s] -> (GYRO_FS_SEL, sensitivity [LSB per deg/s])."""
ACCEL_RANGES = {2: (0, 16384.0), 4: (1, 8192.0), 8: (2, 4096.0), 16: (3, 2048.0)}
"""Full scale [g] -> (ACCEL_FS_SEL, sensitivity [LSB per g])."""

INTERNAL_RATE_HZ = 1000.0
"""Gyro output rate with the digital low-pass filter on (DLPF_CFG 1..6)."""
CLKSEL_PLL_X_GYRO = 1
FRAME_BYTES = 12
FIFO_ENABLE_BITS = (M.XG_FIFO_EN.put(0, 1) | M.YG_FIFO_EN.put(0, 1) | M.ZG_FIFO_EN.put(0, 1)
                    | M.ACCEL_FIFO_EN.put(0, 1))

MPU6050_FIFO_BYTES = 1024
"""The FIFO of a part with the MPU-6050's register set (no ACCEL_CONFIG2)."""


def sample_rate_divider(output_rate_hz: float) -> tuple[int, float]:
    """SMPLRT_DIV for a requested rate [Hz] and the rate it really gives."""
    div = round(INTERNAL_RATE_HZ / output_rate_hz) - 1
    div = min(max(div, 0), 255)
    return div, INTERNAL_RATE_HZ / (1 + div)


def dlpf_setting(output_rate_hz: float) -> int:
    """A low-pass filter below the Nyquist rate: 188 Hz (code 1), 98 Hz (2) or 42 Hz (3)."""
    if output_rate_hz >= 400:
        return 1
    if output_rate_hz >= 200:
        return 2
    return 3


class Mpu6050Driver(FifoImuDriver):
    """MPU-6050 family driver (see the module docstring for the chip's behaviour)."""

    family = "mpu6050"
    frame_bytes = FRAME_BYTES
    max_burst_frames = 84
    """Frames per I2C burst (1008 bytes): one FIFO's worth, within every adapter's limit."""
    recovers_bursts = True

    def _configure(self) -> float:
        d, s = self.dev, self.settings
        gyro_code, self._gyro_lsb = check_choice("gyro range [deg/s]", s.gyro_range_dps,
                                                 GYRO_RANGES, self.chip)
        accel_code, self._accel_lsb = check_choice("accel range [g]", s.accel_range_g,
                                                   ACCEL_RANGES, self.chip)
        div, rate = sample_rate_divider(s.output_rate_hz)
        dlpf = dlpf_setting(rate)
        d.write(M.PWR_MGMT_1, M.DEVICE_RESET.put(0, 1))
        self.clock.sleep(0.1)                       # reset takes up to 100 ms
        d.write(M.PWR_MGMT_1, M.CLKSEL.put(0, CLKSEL_PLL_X_GYRO))   # awake, gyro PLL clock
        self.clock.sleep(0.03)                      # gyro start-up
        wanted = [
            (M.SMPLRT_DIV, div),
            (M.CONFIG, M.DLPF_CFG.put(0, dlpf)),
            (M.GYRO_CONFIG, M.GYRO_FS_SEL.put(0, gyro_code)),
            (M.ACCEL_CONFIG, M.ACCEL_FS_SEL.put(0, accel_code)),
            (M.INT_ENABLE, M.FIFO_OFLOW_EN.put(0, 1)),
            (M.FIFO_EN, FIFO_ENABLE_BITS),
        ]
        self._write_verified(wanted, "the chip is not behaving as an MPU-6050 family part "
                                     "(a clone?) or the wiring is bad")
        if self.info.family == "mpu6500":
            accel_filter = M.A_DLPF_CFG.put(0, dlpf)
            d.write(M.ACCEL_CONFIG2, accel_filter)
            if d.read(M.ACCEL_CONFIG2) != accel_filter:
                # an MPU-6050 inside a part that answers like a 6500: its FIFO is the 6050's
                self.fifo_bytes = max(self.info.fifo_bytes, MPU6050_FIFO_BYTES)
        self._reset_fifo()
        return rate

    def _reset_fifo(self) -> None:
        self.dev.write(M.USER_CTRL, M.FIFO_RESET.put(0, 1))     # FIFO off and emptied
        self.dev.write(M.USER_CTRL, M.FIFO_ENABLE.put(0, 1))    # and on again
        self.dev.read(M.INT_STATUS)                             # clears a stale overflow flag

    def _fifo_level(self) -> FifoLevel:
        status = self._xfer(self.dev.read, M.INT_STATUS)
        high, low = self._xfer(self.dev.read_block, M.FIFO_COUNTH, 2)
        count = (high << 8) | low
        if M.FIFO_OFLOW_INT.get(status):
            return FifoLevel(0, overflow=True)
        if count > self.info.count_limit_bytes:
            return FifoLevel(0, fault=f"FIFO count {count} is more than any "
                                      f"{self.chip} holds ({self.info.count_limit_bytes} bytes)")
        if count % FRAME_BYTES:
            return FifoLevel(0, fault=f"FIFO count {count} is not a whole number of "
                                      f"{FRAME_BYTES}-byte frames (misaligned)")
        return FifoLevel(count // FRAME_BYTES)

    def _read_frames(self, frames: int) -> np.ndarray:
        chunks = []
        remaining = frames
        while remaining > 0:
            n = min(remaining, self.max_burst_frames)
            chunks.append(self._read_chunk(n))
            remaining -= n
        return self._decode(b"".join(chunks))

    def _read_chunk(self, frames: int) -> bytes:
        return self.dev.read_block(M.FIFO_R_W, frames * FRAME_BYTES)

    def _decode(self, data: bytes) -> np.ndarray:
        raw = np.frombuffer(data, dtype=">i2").reshape(-1, 6)
        return to_si(raw, self._accel_lsb, self._gyro_lsb)

    def _fifo_fill(self) -> tuple[int, int]:
        high, low = self._xfer(self.dev.read_block, M.FIFO_COUNTH, 2)
        count = (high << 8) | low
        return count, count % FRAME_BYTES

    def _discard(self, nbytes: int) -> None:
        self.dev.read_block(M.FIFO_R_W, nbytes)
