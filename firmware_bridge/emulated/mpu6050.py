"""Emulated InvenSense MPU-6050 / MPU-6500 / MPU-9250 and clones, register for register.

Implements what the datasheet says about the registers the driver uses (the map is shared with
the driver: ``firmware_bridge.imu.mpu6050.Mpu6050Map``): WHO_AM_I (0x68, 0x70, 0x71 or a
clone's 0x98), DEVICE_RESET and SLEEP, SMPLRT_DIV and DLPF_CFG (rate = 1 or 8 kHz / (1 +
SMPLRT_DIV)), GYRO_FS_SEL / ACCEL_FS_SEL (scale), FIFO_EN (which data go into a frame, in
register order: accel, temperature, gyro x, y, z; big-endian), USER_CTRL FIFO_EN / FIFO_RESET,
FIFO_COUNTH/L, FIFO_R_W (a burst read keeps popping the FIFO), INT_STATUS with FIFO_OFLOW_INT
(cleared on read), and the live output registers 0x3B..0x48. On overflow the oldest bytes are
dropped (1024 is not a multiple of a frame, so the FIFO content becomes misaligned).
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.emulated.chip import EmulatedImu, MotionSource
from firmware_bridge.imu.mpu6050 import ACCEL_RANGES, GYRO_RANGES, M

VARIANTS = {
    "MPU-6050": (0x68, 1024, "6050"),
    "MPU-6500": (0x70, 512, "6500"),
    "MPU-9250": (0x71, 512, "6500"),
    "MPU-9255": (0x73, 512, "6500"),
    "clone-0x70": (0x70, 1024, "6500"),   # sold as MPU-6050, answers like an MPU-6500
    "clone-0x70-6050": (0x70, 1024, "6050"),  # a GY-521 board's clone: 6050 inside, says 0x70
    "clone-0x71": (0x71, 1024, "6500"),
    "clone-0x72": (0x72, 1024, "6050"),
    "clone-0x98": (0x98, 1024, "6050"),
}
"""Variant -> (WHO_AM_I, FIFO bytes, register set). A "6050" register set has no
ACCEL_CONFIG2 (0x1D): writes to it are ignored and it reads 0, as on an MPU-6050."""

_GYRO_LSB = {code: lsb for code, lsb in GYRO_RANGES.values()}
_ACCEL_LSB = {code: lsb for code, lsb in ACCEL_RANGES.values()}
_RESETS = {M.PWR_MGMT_1.address: M.PWR_MGMT_1.reset}


class EmulatedMpu6050(EmulatedImu):
    """One MPU-6050-family chip. ``variant`` is a key of :data:`VARIANTS`."""

    def __init__(self, source: MotionSource | None = None, *, variant: str = "MPU-6050",
                 address: int = 0x68, **kwargs) -> None:
        if variant not in VARIANTS:
            raise ValueError(f"unknown variant {variant!r}: expected one of {sorted(VARIANTS)}")
        self.variant = variant
        self.name = variant
        who_am_i, self.fifo_capacity_bytes, self.register_set = VARIANTS[variant]
        super().__init__(source, address=address, who_am_i=who_am_i, **kwargs)

    def _reset_registers(self) -> None:
        for address, value in _RESETS.items():
            self.regs[address] = value
        self.regs[M.WHO_AM_I.address] = self.who_am_i

    # ----- registers -------------------------------------------------------------------------

    def read_register(self, register: int) -> int:
        if register == M.INT_STATUS.address:
            value = M.FIFO_OFLOW_INT.put(0, int(self.overflow_flag))
            value = M.DATA_RDY_INT.put(value, 1 if self._rate_hz else 0)
            self.overflow_flag = False
            return value
        if register == M.FIFO_COUNTH.address:
            return (self.reported_count() >> 8) & 0xFF
        if register == M.FIFO_COUNTL.address:
            return self.reported_count() & 0xFF
        if M.ACCEL_XOUT_H.address <= register < M.ACCEL_XOUT_H.address + 14:
            live = np.concatenate([self.latest_raw[:3], [0], self.latest_raw[3:]])
            data = live.astype(">i2").tobytes()
            return data[register - M.ACCEL_XOUT_H.address]
        return self.regs[register]

    def write_register(self, register: int, value: int) -> None:
        if register == M.WHO_AM_I.address or register in (M.FIFO_COUNTH.address,
                                                          M.FIFO_COUNTL.address):
            return                                             # read-only
        if register == M.PWR_MGMT_1.address and M.DEVICE_RESET.get(value):
            self.power_on()
            return
        if register == M.USER_CTRL.address and M.FIFO_RESET.get(value):
            self.clear_fifo()
            value = M.FIFO_RESET.put(value, 0)                 # self-clearing
        if register == M.FIFO_R_W.address:
            self.fifo.append(value)
            return
        if register == M.ACCEL_CONFIG2.address and self.register_set == "6050":
            return                                             # not on an MPU-6050
        self.regs[register] = value

    def _is_fifo_port(self, register: int) -> bool:
        return register == M.FIFO_R_W.address

    def _read_fifo_port(self, register: int, length: int) -> bytes:
        return self.pop_fifo(length)

    # ----- sampling --------------------------------------------------------------------------

    def _sampling_rate_hz(self) -> float | None:
        if M.SLEEP.get(self.regs[M.PWR_MGMT_1.address]):
            return None
        dlpf = M.DLPF_CFG.get(self.regs[M.CONFIG.address])
        internal = 8000.0 if dlpf in (0, 7) else 1000.0
        return internal / (1 + self.regs[M.SMPLRT_DIV.address])

    def _accepting(self) -> bool:
        return bool(M.FIFO_ENABLE.get(self.regs[M.USER_CTRL.address])) and self.frame_bytes() > 0

    def _scales(self) -> tuple[float, float]:
        accel = _ACCEL_LSB[M.ACCEL_FS_SEL.get(self.regs[M.ACCEL_CONFIG.address])]
        gyro = _GYRO_LSB[M.GYRO_FS_SEL.get(self.regs[M.GYRO_CONFIG.address])]
        return accel, gyro

    def _columns(self) -> list[int]:
        """Which of (ax ay az temp gx gy gz) a frame holds, in FIFO order."""
        en = self.regs[M.FIFO_EN.address]
        cols = []
        if M.ACCEL_FIFO_EN.get(en):
            cols += [0, 1, 2]
        if M.TEMP_FIFO_EN.get(en):
            cols.append(3)
        for field, col in ((M.XG_FIFO_EN, 4), (M.YG_FIFO_EN, 5), (M.ZG_FIFO_EN, 6)):
            if field.get(en):
                cols.append(col)
        return cols

    def frame_bytes(self) -> int:
        return 2 * len(self._columns())

    def _frames(self, raw: np.ndarray) -> bytes:
        full = np.zeros((raw.shape[0], 7), dtype=np.int16)
        full[:, :3] = raw[:, :3]
        full[:, 4:] = raw[:, 3:]
        return np.ascontiguousarray(full[:, self._columns()]).astype(">i2").tobytes()
