"""ST LSM6DS3 and LSM6DSO / LSM6DSOX over I2C, read through the FIFO.

Both generations share the control registers (CTRL1_XL, CTRL2_G, CTRL3_C, WHO_AM_I) but their
FIFOs differ, and the drivers read what each chip really stores:

* **LSM6DS3** (WHO_AM_I 0x69, 8 kbyte FIFO): untagged 16-bit little-endian words in a
  *pattern*. With gyro and accelerometer batched at the same rate and no decimation the pattern
  is ``Gx Gy Gz XLx XLy XLz`` (gyro is FIFO data set 1). FIFO_STATUS1/2 give the number of
  unread words (DIFF_FIFO, 12 bits) and the OVER_RUN flag; FIFO_STATUS3/4 give FIFO_PATTERN,
  the pattern position of the next word to be read. A read that does not start at pattern
  position 0 would be misaligned, so the driver resets the FIFO instead. Words are read as a
  burst from FIFO_DATA_OUT_L (0x3E), whose address rolls over while reading the FIFO.
* **LSM6DSO / LSM6DSOX** (WHO_AM_I 0x6C for both, 3 kbyte FIFO = 512 words): 7-byte *tagged*
  words, ``TAG X_L X_H Y_L Y_H Z_L Z_H`` read as a burst from FIFO_DATA_OUT_TAG (0x78). The tag
  byte holds TAG_SENSOR (bits 7:3; 0x01 gyro, 0x02 accelerometer), TAG_CNT (bits 2:1, the
  2-bit time-slot counter shared by the samples of one batch) and a parity bit. The driver pairs
  a gyro word and an accelerometer word with the same TAG_CNT into one sample, whatever their
  order, and drops (and counts) a word without a partner. A word leaves the FIFO when its last
  byte (0x7E) is read, so a burst that fails part-way consumed whole words: DIFF_FIFO then
  says how many, an odd count left means the next word's partner was consumed, and the driver
  drops that one word to stay aligned on time slots (as the other chips drop a part-read
  frame), instead of resetting the FIFO.

Full scale codes (FS_XL 00 2 g, 01 16 g, 10 4 g, 11 8 g; FS_G 00 245/250, 01 500, 10 1000,
11 2000 dps) and sensitivities (0.061..0.488 mg/LSB, 8.75..70 mdps/LSB) are from the datasheets.
"""

from __future__ import annotations

import math

import numpy as np

from firmware_bridge.imu.base import FifoImuDriver, FifoLevel, check_choice, to_si
from firmware_bridge.registers import Field, Register


class Lsm6dsCommonMap:
    """Registers at the same place in both generations."""

    WHO_AM_I = Register(0x0F)
    CTRL1_XL = Register(0x10)
    ODR_XL = Field(CTRL1_XL, shift=4, width=4)
    FS_XL = Field(CTRL1_XL, shift=2, width=2)
    CTRL2_G = Register(0x11)
    ODR_G = Field(CTRL2_G, shift=4, width=4)
    FS_G = Field(CTRL2_G, shift=2, width=2)
    CTRL3_C = Register(0x12, reset=0x04)
    BOOT = Field(CTRL3_C, shift=7)
    BDU = Field(CTRL3_C, shift=6)
    IF_INC = Field(CTRL3_C, shift=2)
    SW_RESET = Field(CTRL3_C, shift=0)
    FIFO_STATUS1 = Register(0x3A)                        # DIFF_FIFO[7:0]
    FIFO_STATUS2 = Register(0x3B)


class Lsm6ds3Map(Lsm6dsCommonMap):
    """LSM6DS3 FIFO registers (pattern-based FIFO)."""

    FIFO_CTRL1 = Register(0x06)                          # FTH[7:0] (threshold, unused)
    FIFO_CTRL3 = Register(0x08)
    DEC_FIFO_GYRO = Field(FIFO_CTRL3, shift=3, width=3)  # 001 = every sample, no decimation
    DEC_FIFO_XL = Field(FIFO_CTRL3, shift=0, width=3)
    FIFO_CTRL5 = Register(0x0A)
    ODR_FIFO = Field(FIFO_CTRL5, shift=3, width=4)
    FIFO_MODE = Field(FIFO_CTRL5, shift=0, width=3)
    OVER_RUN = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=6)
    FIFO_FULL = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=5)
    FIFO_EMPTY = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=4)
    DIFF_FIFO_HIGH = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=0, width=4)
    FIFO_STATUS3 = Register(0x3C)                        # FIFO_PATTERN[7:0]
    FIFO_STATUS4 = Register(0x3D)
    FIFO_PATTERN_HIGH = Field(FIFO_STATUS4, shift=0, width=2)
    FIFO_DATA_OUT_L = Register(0x3E)
    FIFO_DATA_OUT_H = Register(0x3F)


class Lsm6dsoMap(Lsm6dsCommonMap):
    """LSM6DSO / LSM6DSOX FIFO registers (tagged FIFO)."""

    FIFO_CTRL1 = Register(0x07)                          # WTM[7:0] (watermark, unused)
    FIFO_CTRL3 = Register(0x09)
    BDR_GY = Field(FIFO_CTRL3, shift=4, width=4)         # batch data rates, ODR codes
    BDR_XL = Field(FIFO_CTRL3, shift=0, width=4)
    FIFO_CTRL4 = Register(0x0A)
    FIFO_MODE = Field(FIFO_CTRL4, shift=0, width=3)
    FIFO_WTM_IA = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=7)
    FIFO_OVR_IA = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=6)
    FIFO_FULL_IA = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=5)
    FIFO_OVR_LATCHED = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=3)
    DIFF_FIFO_HIGH = Field(Lsm6dsCommonMap.FIFO_STATUS2, shift=0, width=2)
    FIFO_DATA_OUT_TAG = Register(0x78)                   # then X_L .. Z_H at 0x79..0x7E
    TAG_SENSOR = Field(FIFO_DATA_OUT_TAG, shift=3, width=5)
    TAG_CNT = Field(FIFO_DATA_OUT_TAG, shift=1, width=2)
    TAG_PARITY = Field(FIFO_DATA_OUT_TAG, shift=0)


FIFO_MODE_BYPASS = 0b000      # FIFO off and emptied
FIFO_MODE_FIFO = 0b001        # stops when full
FIFO_MODE_CONTINUOUS = 0b110  # newest sample overwrites the oldest when full
TAG_GYRO = 0x01
TAG_ACCEL = 0x02

ODR_HZ_DS3 = {1: 12.5, 2: 26.0, 3: 52.0, 4: 104.0, 5: 208.0, 6: 416.0, 7: 833.0, 8: 1666.0}
ODR_HZ_DSO = {1: 12.5, 2: 26.0, 3: 52.0, 4: 104.0, 5: 208.0, 6: 417.0, 7: 833.0, 8: 1667.0}
"""ODR code -> output data rate [Hz] (CTRL1_XL/CTRL2_G ODR, LSM6DS3 ODR_FIFO, LSM6DSO BDR)."""

ACCEL_RANGES = {2: (0b00, 0.061), 4: (0b10, 0.122), 8: (0b11, 0.244), 16: (0b01, 0.488)}
"""Full scale [g] -> (FS_XL, sensitivity [mg/LSB])."""
GYRO_RANGES = {250: (0b00, 8.75), 500: (0b01, 17.5), 1000: (0b10, 35.0), 2000: (0b11, 70.0)}
"""Full scale [deg/s] -> (FS_G, sensitivity [mdps/LSB]); the LSM6DS3's 00 is +-245 dps."""


def odr_code(output_rate_hz: float, table: dict[int, float]) -> tuple[int, float]:
    """The supported rate nearest (in ratio) to the request: 1000 Hz -> 833 Hz."""
    usable = {c: hz for c, hz in table.items() if hz >= 100.0}
    code = min(usable, key=lambda c: abs(math.log(usable[c] / output_rate_hz)))
    return code, usable[code]


class _Lsm6dsDriver(FifoImuDriver):
    """Shared configuration of both generations."""

    Map: type[Lsm6dsCommonMap] = Lsm6dsCommonMap
    odr_table: dict[int, float] = ODR_HZ_DS3
    max_burst_bytes = 1008

    def _configure(self) -> float:
        d, s, m = self.dev, self.settings, self.Map
        fs_g, gyro_mdps = check_choice("gyro range [deg/s]", s.gyro_range_dps, GYRO_RANGES,
                                       self.chip)
        fs_xl, accel_mg = check_choice("accel range [g]", s.accel_range_g, ACCEL_RANGES,
                                       self.chip)
        self._accel_lsb = 1000.0 / accel_mg
        self._gyro_lsb = 1000.0 / gyro_mdps
        code, rate = odr_code(s.output_rate_hz, self.odr_table)
        d.write(m.CTRL3_C, m.SW_RESET.put(0, 1))
        self.clock.sleep(0.05)                                   # reset + boot
        wanted = [
            (m.CTRL3_C, m.BDU.put(m.IF_INC.put(0, 1), 1)),
            (m.CTRL1_XL, m.FS_XL.put(m.ODR_XL.put(0, code), fs_xl)),
            (m.CTRL2_G, m.FS_G.put(m.ODR_G.put(0, code), fs_g)),
            *self._fifo_config(code),
        ]
        self._write_verified(wanted, "check the wiring")
        self._reset_fifo()
        return rate

    def _fifo_config(self, code: int) -> list[tuple[Register, int]]:
        raise NotImplementedError

    def _fifo_mode_register(self) -> tuple[Register, Field]:
        raise NotImplementedError

    def _reset_fifo(self) -> None:
        register, mode = self._fifo_mode_register()
        value = self.dev.read(register)
        self.dev.write(register, mode.put(value, FIFO_MODE_BYPASS))       # empties the FIFO
        self.dev.write(register, mode.put(value, FIFO_MODE_CONTINUOUS))

    def _burst(self, register: Register, nbytes: int, unit: int) -> bytes:
        step = max(unit, self.max_burst_bytes // unit * unit)
        chunks = []
        remaining = nbytes
        while remaining > 0:
            n = min(remaining, step)
            chunks.append(self.dev.read_block(register, n))
            remaining -= n
        return b"".join(chunks)


class Lsm6ds3Driver(_Lsm6dsDriver):
    """LSM6DS3: pattern FIFO of 16-bit words, gyro first."""

    family = "lsm6ds3"
    Map = Lsm6ds3Map
    odr_table = ODR_HZ_DS3
    frame_bytes = 12
    WORDS_PER_FRAME = 6

    def _fifo_config(self, code: int) -> list[tuple[Register, int]]:
        m = Lsm6ds3Map
        return [
            (m.FIFO_CTRL3, m.DEC_FIFO_GYRO.put(m.DEC_FIFO_XL.put(0, 1), 1)),
            (m.FIFO_CTRL5, m.ODR_FIFO.put(m.FIFO_MODE.put(0, FIFO_MODE_BYPASS), code)),
        ]

    def _fifo_mode_register(self) -> tuple[Register, Field]:
        return Lsm6ds3Map.FIFO_CTRL5, Lsm6ds3Map.FIFO_MODE

    def _fifo_level(self) -> FifoLevel:
        m = Lsm6ds3Map
        s1, s2, s3, s4 = self._xfer(self.dev.read_block, m.FIFO_STATUS1, 4)
        if m.OVER_RUN.get(s2):
            return FifoLevel(0, overflow=True)
        words = s1 | (m.DIFF_FIFO_HIGH.get(s2) << 8)
        pattern = s3 | (m.FIFO_PATTERN_HIGH.get(s4) << 8)
        frames = words // self.WORDS_PER_FRAME
        if frames and pattern != 0:
            return FifoLevel(0, fault=f"FIFO pattern position {pattern}: the next word is not "
                                      "the start of a sample (misaligned)")
        return FifoLevel(frames)

    max_burst_frames = 84
    recovers_bursts = True

    def _read_frames(self, frames: int) -> np.ndarray:
        data = self._burst(Lsm6ds3Map.FIFO_DATA_OUT_L, frames * self.frame_bytes, 2)
        return self._decode(data)

    def _read_chunk(self, frames: int) -> bytes:
        return self.dev.read_block(Lsm6ds3Map.FIFO_DATA_OUT_L, frames * self.frame_bytes)

    def _fifo_fill(self) -> tuple[int, int]:
        m = Lsm6ds3Map
        s1, s2, s3, s4 = self._xfer(self.dev.read_block, m.FIFO_STATUS1, 4)
        words = s1 | (m.DIFF_FIFO_HIGH.get(s2) << 8)
        pattern = s3 | (m.FIFO_PATTERN_HIGH.get(s4) << 8)
        # ``pattern`` is the position of the next word in its sample: drop to the next start
        partial_words = (self.WORDS_PER_FRAME - pattern) % self.WORDS_PER_FRAME
        return 2 * words, 2 * min(partial_words, words)

    def _discard(self, nbytes: int) -> None:
        self.dev.read_block(Lsm6ds3Map.FIFO_DATA_OUT_L, nbytes)

    def _decode(self, data: bytes) -> np.ndarray:
        words = np.frombuffer(data, dtype="<i2").reshape(-1, 6)
        raw = np.concatenate([words[:, 3:], words[:, :3]], axis=1)    # accel first, then gyro
        return to_si(raw, self._accel_lsb, self._gyro_lsb)


class Lsm6dsoDriver(_Lsm6dsDriver):
    """LSM6DSO / LSM6DSOX: tagged FIFO, a gyro word and an accel word per time slot."""

    family = "lsm6dso"
    Map = Lsm6dsoMap
    odr_table = ODR_HZ_DSO
    WORD_BYTES = 7
    frame_bytes = 2 * WORD_BYTES

    def _fifo_config(self, code: int) -> list[tuple[Register, int]]:
        m = Lsm6dsoMap
        return [
            (m.FIFO_CTRL3, m.BDR_GY.put(m.BDR_XL.put(0, code), code)),
            (m.FIFO_CTRL4, m.FIFO_MODE.put(0, FIFO_MODE_BYPASS)),
        ]

    def _fifo_mode_register(self) -> tuple[Register, Field]:
        return Lsm6dsoMap.FIFO_CTRL4, Lsm6dsoMap.FIFO_MODE

    def _fifo_level(self) -> FifoLevel:
        m = Lsm6dsoMap
        s1, s2 = self._xfer(self.dev.read_block, m.FIFO_STATUS1, 2)
        if m.FIFO_OVR_IA.get(s2) or m.FIFO_OVR_LATCHED.get(s2):
            return FifoLevel(0, overflow=True)
        words = s1 | (m.DIFF_FIFO_HIGH.get(s2) << 8)
        return FifoLevel(words // 2)

    max_burst_frames = 72
    """Frames (two 7-byte words) per I2C burst: 1008 bytes."""
    recovers_bursts = True

    def _read_frames(self, frames: int) -> np.ndarray:
        data = self._burst(Lsm6dsoMap.FIFO_DATA_OUT_TAG, frames * self.frame_bytes,
                           self.WORD_BYTES)
        return self._decode(data)

    def _read_chunk(self, frames: int) -> bytes:
        return self.dev.read_block(Lsm6dsoMap.FIFO_DATA_OUT_TAG, frames * self.frame_bytes)

    def _fifo_fill(self) -> tuple[int, int]:
        m = Lsm6dsoMap
        s1, s2 = self._xfer(self.dev.read_block, m.FIFO_STATUS1, 2)
        words = s1 | (m.DIFF_FIFO_HIGH.get(s2) << 8)
        # a time slot's two words are written together: an odd count means the first word
        # left is an orphan whose partner the failed burst consumed
        return words * self.WORD_BYTES, (words % 2) * self.WORD_BYTES

    def _discard(self, nbytes: int) -> None:
        self.dev.read_block(Lsm6dsoMap.FIFO_DATA_OUT_TAG, nbytes)

    def _decode(self, data: bytes) -> np.ndarray:
        words = np.frombuffer(data, dtype=np.uint8).reshape(-1, self.WORD_BYTES)
        tags = words[:, 0]
        sensor = tags >> 3
        slot = (tags >> 1) & 0b11
        values = words[:, 1:].copy().view("<i2").reshape(-1, 3)
        n = len(words)
        if n % 2 == 0:     # the usual case: every pair of words is one time slot
            first, second = sensor[0::2], sensor[1::2]
            accel_first = (first == TAG_ACCEL) & (second == TAG_GYRO)
            gyro_first = (first == TAG_GYRO) & (second == TAG_ACCEL)
            if np.all((slot[0::2] == slot[1::2]) & (accel_first | gyro_first)):
                even, odd = values[0::2], values[1::2]
                accel = np.where(accel_first[:, None], even, odd)
                gyro = np.where(accel_first[:, None], odd, even)
                return to_si(np.concatenate([accel, gyro], axis=1), self._accel_lsb,
                             self._gyro_lsb)
        rows = []
        i = 0
        while i < n - 1:
            a, b = sensor[i], sensor[i + 1]
            if slot[i] == slot[i + 1] and {int(a), int(b)} == {TAG_GYRO, TAG_ACCEL}:
                accel, gyro = (i, i + 1) if a == TAG_ACCEL else (i + 1, i)
                rows.append(np.concatenate([values[accel], values[gyro]]))
                i += 2
            else:
                i += 1          # a word without its partner: drop it, stay aligned on tags
        raw = np.array(rows, dtype=np.int16).reshape(-1, 6)
        return to_si(raw, self._accel_lsb, self._gyro_lsb)
