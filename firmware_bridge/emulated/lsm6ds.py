"""Emulated ST LSM6DS3 (pattern FIFO) and LSM6DSO / LSM6DSOX (tagged FIFO).

Registers come from the driver's declared maps (``firmware_bridge.imu.lsm6ds``). Both chips:
WHO_AM_I at 0x0F, CTRL3_C SW_RESET (all registers back to reset values), ODR and full scale in
CTRL1_XL / CTRL2_G, little-endian data, register auto-increment (IF_INC).

* LSM6DS3: FIFO_CTRL3 decimation (only "every sample" is emulated), FIFO_CTRL5 ODR_FIFO and
  FIFO_MODE (bypass empties the FIFO; FIFO mode stops when full; continuous overwrites the
  oldest words); 4096 16-bit words; pattern ``Gx Gy Gz XLx XLy XLz``; FIFO_STATUS1..4 give
  DIFF_FIFO (unread words), OVER_RUN, FIFO_FULL, FIFO_EMPTY and FIFO_PATTERN (pattern position
  of the next word). Reading FIFO_DATA_OUT_L/H pops a word; a burst from 0x3E keeps popping.
* LSM6DSO/X: FIFO_CTRL3 BDR_GY / BDR_XL (only equal rates are emulated), FIFO_CTRL4 FIFO_MODE;
  512 tagged 7-byte words ``TAG X_L X_H Y_L Y_H Z_L Z_H``; per time slot a gyro word (tag 0x01)
  then an accelerometer word (tag 0x02) sharing TAG_CNT; FIFO_STATUS1/2 give DIFF_FIFO
  (unread words), FIFO_OVR_IA and FIFO_OVR_LATCHED (cleared when FIFO_STATUS2 is read). A burst
  from FIFO_DATA_OUT_TAG (0x78) keeps popping words (the address rolls over 0x78..0x7E).
"""

from __future__ import annotations

import numpy as np

from firmware_bridge.emulated.chip import EmulatedImu, MotionSource
from firmware_bridge.imu.lsm6ds import (
    ACCEL_RANGES,
    FIFO_MODE_BYPASS,
    FIFO_MODE_CONTINUOUS,
    FIFO_MODE_FIFO,
    GYRO_RANGES,
    ODR_HZ_DS3,
    ODR_HZ_DSO,
    TAG_ACCEL,
    TAG_GYRO,
    Lsm6ds3Map,
    Lsm6dsoMap,
)

_ACCEL_LSB = {code: 1000.0 / mg for code, mg in ACCEL_RANGES.values()}
_GYRO_LSB = {code: 1000.0 / mdps for code, mdps in GYRO_RANGES.values()}


class _EmulatedLsm6ds(EmulatedImu):
    Map: type = Lsm6ds3Map
    who_am_i_register = 0x0F

    def __init__(self, source: MotionSource | None = None, *, address: int = 0x6A,
                 **kwargs) -> None:
        super().__init__(source, address=address, who_am_i=self.WHO_AM_I, **kwargs)

    WHO_AM_I = 0x69

    def _reset_registers(self) -> None:
        m = self.Map
        self.regs[m.CTRL3_C.address] = m.CTRL3_C.reset
        self.regs[m.WHO_AM_I.address] = self.who_am_i

    def _fifo_mode(self) -> int:
        return self.Map.FIFO_MODE.get(self.regs[self.Map.FIFO_MODE.address])

    def write_register(self, register: int, value: int) -> None:
        m = self.Map
        if register == m.WHO_AM_I.address or 0x1E <= register <= 0x3F or register >= 0x78:
            return                                               # read-only
        if register == m.CTRL3_C.address and m.SW_RESET.get(value):
            self.power_on()
            return
        self.regs[register] = value
        if register == m.FIFO_MODE.address and m.FIFO_MODE.get(value) == FIFO_MODE_BYPASS:
            self.clear_fifo()

    def _sensors_on(self) -> bool:
        m = self.Map
        return bool(m.ODR_XL.get(self.regs[m.CTRL1_XL.address])
                    and m.ODR_G.get(self.regs[m.CTRL2_G.address]))

    def _scales(self) -> tuple[float, float]:
        m = self.Map
        return (_ACCEL_LSB[m.FS_XL.get(self.regs[m.CTRL1_XL.address])],
                _GYRO_LSB[m.FS_G.get(self.regs[m.CTRL2_G.address])])

    def _push(self, data: bytes, t: np.ndarray, raw: np.ndarray | None, skipped: int = 0) -> None:
        if self._fifo_mode() == FIFO_MODE_FIFO:      # FIFO mode: stop collecting when full
            room = (self.fifo_capacity_bytes - len(self.fifo)) // self.frame_bytes()
            if room < t.size:
                self.overflow_flag = True
                keep = max(room, 0)
                data = data[:keep * self.frame_bytes()]
                t = t[:keep]
                raw = None if raw is None else raw[:keep]
        super()._push(data, t, raw, skipped)

    def _accepting(self) -> bool:
        return self._fifo_mode() in (FIFO_MODE_FIFO, FIFO_MODE_CONTINUOUS) and self._sensors_on()


class EmulatedLsm6ds3(_EmulatedLsm6ds):
    """LSM6DS3: 8 kbyte FIFO of untagged 16-bit words in a pattern."""

    name = "LSM6DS3"
    Map = Lsm6ds3Map
    WHO_AM_I = 0x69
    fifo_capacity_bytes = 8192
    fifo_word_bytes = 2

    def read_register(self, register: int) -> int:
        m = Lsm6ds3Map
        if register in (m.FIFO_STATUS1.address, m.FIFO_STATUS2.address):
            words = min(self.reported_count(), 0xFFF)
            if register == m.FIFO_STATUS1.address:
                return words & 0xFF
            value = m.DIFF_FIFO_HIGH.put(0, words >> 8)
            value = m.OVER_RUN.put(value, int(self.overflow_flag))
            value = m.FIFO_FULL.put(value, int(len(self.fifo) + 12 > self.fifo_capacity_bytes))
            return m.FIFO_EMPTY.put(value, int(not self.fifo))
        if register in (m.FIFO_STATUS3.address, m.FIFO_STATUS4.address):
            pattern = (self.fifo_consumed_bytes // 2) % 6
            return pattern & 0xFF if register == m.FIFO_STATUS3.address else pattern >> 8
        return self.regs[register]

    def fifo_level_count(self) -> int:
        return len(self.fifo) // 2

    def _is_fifo_port(self, register: int) -> bool:
        return register in (Lsm6ds3Map.FIFO_DATA_OUT_L.address, Lsm6ds3Map.FIFO_DATA_OUT_H.address)

    def _read_fifo_port(self, register: int, length: int) -> bytes:
        if register == Lsm6ds3Map.FIFO_DATA_OUT_H.address:   # high byte alone: pops the word
            word = self.pop_fifo(2)
            rest = self._read_fifo_port(Lsm6ds3Map.FIFO_DATA_OUT_L.address, length - 1) \
                if length > 1 else b""
            return word[1:2] + rest
        data = self.pop_fifo(length - length % 2)
        if length % 2:
            data += bytes(self.fifo[:1]) or b"\x00"          # low byte only: not popped yet
        if data:
            self.overflow_flag = False                        # reading clears OVER_RUN
        return data

    def _sampling_rate_hz(self) -> float | None:
        m = Lsm6ds3Map
        code = m.ODR_FIFO.get(self.regs[m.FIFO_CTRL5.address])
        if not self._sensors_on() or code == 0:
            return None
        dec = self.regs[m.FIFO_CTRL3.address]
        if (m.DEC_FIFO_GYRO.get(dec), m.DEC_FIFO_XL.get(dec)) not in ((1, 1), (0, 0)):
            raise NotImplementedError("the emulated LSM6DS3 batches gyro and accel without "
                                      "decimation only (FIFO_CTRL3 = 0x09)")
        return ODR_HZ_DS3[code]

    def _accepting(self) -> bool:
        dec = self.regs[Lsm6ds3Map.FIFO_CTRL3.address]
        return super()._accepting() and dec != 0

    def frame_bytes(self) -> int:
        return 12

    def _frames(self, raw: np.ndarray) -> bytes:
        words = np.concatenate([raw[:, 3:], raw[:, :3]], axis=1)   # gyro data set first
        return np.ascontiguousarray(words).astype("<i2").tobytes()


class EmulatedLsm6dso(_EmulatedLsm6ds):
    """LSM6DSO / LSM6DSOX: FIFO of 512 tagged 7-byte words."""

    name = "LSM6DSO"
    Map = Lsm6dsoMap
    WHO_AM_I = 0x6C
    WORD_BYTES = 7
    fifo_capacity_bytes = 512 * 7
    fifo_word_bytes = 7

    def power_on(self) -> None:
        super().power_on()
        self._slot_counter = 0
        self._latched_overflow = False

    def read_register(self, register: int) -> int:
        m = Lsm6dsoMap
        if register == m.FIFO_STATUS1.address:
            return self.reported_count() & 0xFF
        if register == m.FIFO_STATUS2.address:
            value = m.DIFF_FIFO_HIGH.put(0, (self.reported_count() >> 8) & 0b11)
            value = m.FIFO_OVR_IA.put(value, int(self.overflow_flag))
            value = m.FIFO_OVR_LATCHED.put(value, int(self._latched_overflow))
            value = m.FIFO_FULL_IA.put(value, int(len(self.fifo) + 14 > self.fifo_capacity_bytes))
            self._latched_overflow = False
            return value
        return self.regs[register]

    def fifo_level_count(self) -> int:
        return len(self.fifo) // self.WORD_BYTES

    def _push(self, data: bytes, t: np.ndarray, raw: np.ndarray | None, skipped: int = 0) -> None:
        before = self.overflow_flag
        super()._push(data, t, raw, skipped)
        if self.overflow_flag and not before:
            self._latched_overflow = True

    def clear_fifo(self) -> None:
        super().clear_fifo()
        self._latched_overflow = False

    def _is_fifo_port(self, register: int) -> bool:
        return 0x78 <= register <= 0x7E

    def _read_fifo_port(self, register: int, length: int) -> bytes:
        offset = register - Lsm6dsoMap.FIFO_DATA_OUT_TAG.address
        if offset == 0 and length % self.WORD_BYTES == 0:      # whole words: pop at once
            data = self.pop_fifo(length)
            if data:
                self.overflow_flag = False
            return data
        out = bytearray()
        while len(out) < length:               # one word at a time, rolling over 0x78..0x7E
            take = min(self.WORD_BYTES - offset, length - len(out))
            word = bytes(self.fifo[:self.WORD_BYTES]).ljust(self.WORD_BYTES, b"\x00")
            out += word[offset:offset + take]
            offset += take
            if offset == self.WORD_BYTES:
                self.pop_fifo(self.WORD_BYTES)
                offset = 0
        if out:
            self.overflow_flag = False
        return bytes(out)

    def _sampling_rate_hz(self) -> float | None:
        m = Lsm6dsoMap
        bdr = self.regs[m.FIFO_CTRL3.address]
        gy, xl = m.BDR_GY.get(bdr), m.BDR_XL.get(bdr)
        if not self._sensors_on() or (gy == 0 and xl == 0):
            return None
        if gy != xl:
            raise NotImplementedError("the emulated LSM6DSO batches gyro and accel at the "
                                      "same rate only")
        return ODR_HZ_DSO[gy]

    def frame_bytes(self) -> int:
        return 2 * self.WORD_BYTES

    def _frames(self, raw: np.ndarray) -> bytes:
        n = raw.shape[0]
        slots = (self._slot_counter + np.arange(n)) % 4
        self._slot_counter = (self._slot_counter + n) % 4
        words = np.zeros((n, 2, self.WORD_BYTES), dtype=np.uint8)
        for j, (tag, cols) in enumerate(((TAG_GYRO, slice(3, 6)), (TAG_ACCEL, slice(0, 3)))):
            tag_byte = (tag << 3) | (slots << 1)
            parity = np.zeros(n, dtype=np.uint8)
            for bit in range(1, 8):
                parity ^= ((tag_byte >> bit) & 1).astype(np.uint8)
            words[:, j, 0] = tag_byte | parity
            words[:, j, 1:] = np.ascontiguousarray(raw[:, cols]).astype("<i2").view(np.uint8) \
                .reshape(n, 6)
        return words.tobytes()
