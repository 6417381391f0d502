"""Emulated InvenSense ICM-20948: four register banks, a 512-byte FIFO, big-endian frames.

Uses the driver's declared map (``firmware_bridge.imu.icm20948.Icm20948Map``). REG_BANK_SEL
(0x7F) pages banks 0-3; WHO_AM_I (0xEA) lives at bank 0 register 0x00. PWR_MGMT_1
DEVICE_RESET restores every bank's reset values (asleep, bank 0). Rates are 1.125 kHz / (1 +
divider) for gyro (bank 2, GYRO_SMPLRT_DIV) and accelerometer (ACCEL_SMPLRT_DIV_1/2), with the
low-pass filters on; only equal gyro and accelerometer rates are emulated. FIFO_EN_2 chooses the
frame content (accelerometer, gyro x/y/z, temperature: register order), FIFO_RST holds the FIFO
empty while set, FIFO_MODE bit 0 selects snapshot (stop when full) over stream (drop oldest
bytes), INT_STATUS_2 reports an overflow (cleared on read), FIFO_COUNTH/L give a 13-bit count.
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.emulated.chip import EmulatedImu, MotionSource
from firmware_bridge.imu.icm20948 import ACCEL_RANGES, BASE_RATE_HZ, FIFO_BYTES, GYRO_RANGES, I

_GYRO_LSB = {code: lsb for code, lsb in GYRO_RANGES.values()}
_ACCEL_LSB = {code: lsb for code, lsb in ACCEL_RANGES.values()}
_RESETS = [I.PWR_MGMT_1, I.GYRO_CONFIG_1, I.ACCEL_CONFIG]


class EmulatedIcm20948(EmulatedImu):
    """One ICM-20948 at ``address`` (0x68 or 0x69)."""

    name = "ICM-20948"
    fifo_capacity_bytes = FIFO_BYTES
    who_am_i_register = 0x00

    def __init__(self, source: MotionSource | None = None, *, address: int = 0x68,
                 **kwargs) -> None:
        super().__init__(source, address=address, who_am_i=0xEA, **kwargs)

    def power_on(self) -> None:
        self.banks = [bytearray(256) for _ in range(4)]
        self.bank = 0
        super().power_on()

    def _reset_registers(self) -> None:
        for register in _RESETS:
            self.banks[register.bank][register.address] = register.reset
        self.banks[0][I.WHO_AM_I.address] = self.who_am_i
        self.regs = self.banks[0]          # the base class's view: bank 0

    def _reg(self, register) -> int:
        return self.banks[register.bank][register.address]

    # ----- registers -------------------------------------------------------------------------

    def read_register(self, register: int) -> int:
        if register == I.REG_BANK_SEL.address:
            return I.USER_BANK.put(0, self.bank)
        if self.bank == 0:
            if register == I.INT_STATUS_2.address:
                value = I.FIFO_OVERFLOW_INT.put(0, 1 if self.overflow_flag else 0)
                self.overflow_flag = False
                return value
            if register == I.FIFO_COUNTH.address:
                return (self.reported_count() >> 8) & 0x1F
            if register == I.FIFO_COUNTL.address:
                return self.reported_count() & 0xFF
            if I.ACCEL_XOUT_H.address <= register < I.ACCEL_XOUT_H.address + 14:
                live = np.concatenate([self.latest_raw, [0]])
                return live.astype(">i2").tobytes()[register - I.ACCEL_XOUT_H.address]
        return self.banks[self.bank][register]

    def write_register(self, register: int, value: int) -> None:
        if register == I.REG_BANK_SEL.address:
            self.bank = I.USER_BANK.get(value)
            return
        if self.bank == 0:
            if register in (I.WHO_AM_I.address, I.INT_STATUS_2.address, I.FIFO_COUNTH.address,
                            I.FIFO_COUNTL.address):
                return                                                # read-only
            if register == I.PWR_MGMT_1.address and I.DEVICE_RESET.get(value):
                self.power_on()
                return
            if register == I.FIFO_RST.address and I.FIFO_RESET.get(value):
                self.clear_fifo()
            if register == I.FIFO_R_W.address:
                self.fifo.append(value)
                return
        self.banks[self.bank][register] = value

    def _is_fifo_port(self, register: int) -> bool:
        return self.bank == 0 and register == I.FIFO_R_W.address

    def _read_fifo_port(self, register: int, length: int) -> bytes:
        return self.pop_fifo(length)

    # ----- sampling --------------------------------------------------------------------------

    def _sampling_rate_hz(self) -> float | None:
        if I.SLEEP.get(self._reg(I.PWR_MGMT_1)):
            return None
        gyro_config, accel_config = self._reg(I.GYRO_CONFIG_1), self._reg(I.ACCEL_CONFIG)
        if not (I.GYRO_FCHOICE.get(gyro_config) and I.ACCEL_FCHOICE.get(accel_config)):
            raise NotImplementedError("the emulated ICM-20948 samples with its low-pass "
                                      "filters on only (FCHOICE = 1)")
        gyro_div = self._reg(I.GYRO_SMPLRT_DIV)
        accel_div = ((self._reg(I.ACCEL_SMPLRT_DIV_1) & 0x0F) << 8) \
            | self._reg(I.ACCEL_SMPLRT_DIV_2)
        if gyro_div != accel_div:
            # a configuration in progress: the driver writes one divider, then the other
            return None
        return BASE_RATE_HZ / (1 + gyro_div)

    def _accepting(self) -> bool:
        return (bool(I.FIFO_ENABLE.get(self._reg(I.USER_CTRL)))
                and not I.FIFO_RESET.get(self._reg(I.FIFO_RST)) and self.frame_bytes() > 0)

    def _push(self, data: bytes, t: np.ndarray, raw: np.ndarray | None, skipped: int = 0) -> None:
        if I.SNAPSHOT.get(self._reg(I.FIFO_MODE)):             # snapshot: stop when full
            room = max(0, (self.fifo_capacity_bytes - len(self.fifo)) // self.frame_bytes())
            if room < t.size:
                self.overflow_flag = True
                data, t = data[:room * self.frame_bytes()], t[:room]
                raw = None if raw is None else raw[:room]
        super()._push(data, t, raw, skipped)

    def _scales(self) -> tuple[float, float]:
        return (_ACCEL_LSB[I.ACCEL_FS_SEL.get(self._reg(I.ACCEL_CONFIG))],
                _GYRO_LSB[I.GYRO_FS_SEL.get(self._reg(I.GYRO_CONFIG_1))])

    def _columns(self) -> list[int]:
        en = self._reg(I.FIFO_EN_2)
        cols = [0, 1, 2] if I.ACCEL_FIFO_EN.get(en) else []
        for field, col in ((I.GYRO_X_FIFO_EN, 3), (I.GYRO_Y_FIFO_EN, 4),
                           (I.GYRO_Z_FIFO_EN, 5), (I.TEMP_FIFO_EN, 6)):
            if field.get(en):
                cols.append(col)
        return cols

    def frame_bytes(self) -> int:
        return 2 * len(self._columns())

    def _frames(self, raw: np.ndarray) -> bytes:
        full = np.zeros((raw.shape[0], 7), dtype=np.int16)
        full[:, :6] = raw
        return np.ascontiguousarray(full[:, self._columns()]).astype(">i2").tobytes()
