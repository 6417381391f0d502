"""An I2C bus with emulated chips on it, behaving like ``smbus2.SMBus`` at its interface.

Same method names, arguments and limits as smbus2 (``read_i2c_block_data`` refuses more than 32
bytes, ``i2c_rdwr`` takes real ``smbus2.i2c_msg`` objects and fills the read buffers), and the
same failures as Linux's i2c-dev: a transfer to an address where nothing answers raises
``OSError(121, 'Remote I/O error')``. :meth:`fail_next` injects NACK (121) or EIO (5) on the next
transfers, to exercise the drivers' retry and recovery paths: before any byte moves (an address
NACK: the chip sees nothing), or, with ``after_bytes``, part-way through a read (the chip has
sent -- and its FIFO has given up -- that many bytes when the transfer fails).
:meth:`fail_randomly` makes a seeded fraction of all transfers fail that way, as a noisy bus
does (half before any byte, half part-way through a read).
"""

from __future__ import annotations

import ctypes
import errno
import os
from collections.abc import Iterable

import numpy as np

from firmware_bridge.emulated.chip import EmulatedImu

I2C_SMBUS_BLOCK_MAX = 32
I2C_M_RD = 0x0001


def _os_error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


def _first_read(i2c_msgs: tuple[object, ...]) -> tuple[int | None, tuple[int, int] | None]:
    """(address, (register, length)) of the first read of a combined transaction."""
    pointer: dict[int, int] = {}
    for msg in i2c_msgs:
        addr, flags, length = msg.addr, msg.flags, msg.len  # type: ignore[attr-defined]
        if not flags & I2C_M_RD and bytes(msg):  # type: ignore[call-overload]
            pointer[addr] = bytes(msg)[0]  # type: ignore[call-overload]
        elif flags & I2C_M_RD and addr in pointer:
            return addr, (pointer[addr], length)
    return (i2c_msgs[0].addr if i2c_msgs else None), None  # type: ignore[attr-defined]


class EmulatedBus:
    """Routes transfers to the emulated chips by 7-bit address."""

    def __init__(self, chips: Iterable[EmulatedImu] = (), *, bus_number: int = 1) -> None:
        self.bus_number = bus_number
        self.chips: dict[int, EmulatedImu] = {}
        for chip in chips:
            self.attach(chip)
        self.transfers = 0
        """Completed and failed transfers (one per method call / i2c_rdwr)."""
        self.bytes_read = 0
        self.closed = False
        self._fail_remaining = 0
        self._fail_errno = errno.EREMOTEIO
        self._fail_address: int | None = None
        self._fail_after_bytes: int | None = None
        self._fail_min_read: int | None = None
        self.failures_injected = 0
        self._random_rate = 0.0
        self._rng: np.random.Generator | None = None

    def attach(self, chip: EmulatedImu) -> EmulatedImu:
        if chip.address in self.chips:
            raise ValueError(f"address 0x{chip.address:02X} is already taken")
        self.chips[chip.address] = chip
        return chip

    def fail_next(self, count: int, *, error: int = errno.EREMOTEIO,
                  address: int | None = None, after_bytes: int | None = None,
                  reads_longer_than: int | None = None) -> None:
        """The next ``count`` transfers (to ``address``, or any) fail with ``error``, before
        any byte moves (nothing reaches the chip).

        ``reads_longer_than``: only reads of more than that many bytes fail (a FIFO burst, not
        the status reads before it); writes and short reads go through. ``after_bytes``: such
        a read fails after the chip has sent that many bytes (a burst cut short: what was
        sent is consumed from a FIFO); implies ``reads_longer_than=after_bytes``."""
        self._fail_remaining = count
        self._fail_errno = error
        self._fail_address = address
        self._fail_after_bytes = after_bytes
        self._fail_min_read = after_bytes if reads_longer_than is None else reads_longer_than

    def fail_randomly(self, rate: float, *, seed: int = 0) -> None:
        """From now on each transfer fails with probability ``rate`` (0.01 = 1 %): half of
        the failures before any byte moves (errno 121, an address NACK), half with EIO; an
        EIO read fails after a random number of bytes (those are consumed, as on a real bus
        where the chip had sent them). ``rate`` 0 stops it."""
        self._random_rate = float(rate)
        self._rng = np.random.default_rng(seed)

    # ----- smbus2.SMBus interface ------------------------------------------------------------

    def read_byte_data(self, i2c_addr: int, register: int, force: bool | None = None) -> int:
        return self._chip(i2c_addr, reading=(register, 1)).read(register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int,
                        force: bool | None = None) -> None:
        self._chip(i2c_addr, reading=None).write(register, bytes([value & 0xFF]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int,
                            force: bool | None = None) -> list[int]:
        if length > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Desired block length over {I2C_SMBUS_BLOCK_MAX} bytes")
        data = self._chip(i2c_addr, reading=(register, length)).read(register, length)
        self.bytes_read += len(data)
        return list(data)

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int],
                             force: bool | None = None) -> None:
        if len(data) > I2C_SMBUS_BLOCK_MAX:
            raise ValueError(f"Data length cannot exceed {I2C_SMBUS_BLOCK_MAX} bytes")
        self._chip(i2c_addr, reading=None).write(register, bytes(data))

    def i2c_rdwr(self, *i2c_msgs: object) -> None:
        """Combined transaction: a write sets the register pointer (and writes what follows
        it), a read continues from the pointer, as a register-based chip does."""
        if self.closed:
            raise _os_error(errno.EBADF)
        pointer: dict[int, int] = {}
        if self._random_rate > 0:
            self._maybe_fail_randomly(*_first_read(i2c_msgs))
        if self._fail_min_read is None:
            self._maybe_fail(min((m.addr for m in i2c_msgs), default=None))  # type: ignore[attr-defined]
        else:
            for msg in i2c_msgs:
                if not msg.flags & I2C_M_RD and bytes(msg):  # type: ignore[attr-defined]
                    pointer[msg.addr] = bytes(msg)[0]  # type: ignore[attr-defined, call-overload]
                elif msg.flags & I2C_M_RD and msg.addr in pointer:  # type: ignore[attr-defined]
                    self._maybe_fail(msg.addr,  # type: ignore[attr-defined]
                                     reading=(pointer[msg.addr], msg.len))  # type: ignore[attr-defined]
            pointer = {}
        self.transfers += 1
        for msg in i2c_msgs:
            addr = msg.addr  # type: ignore[attr-defined]
            chip = self._present(addr)
            if msg.flags & I2C_M_RD:  # type: ignore[attr-defined]
                if addr not in pointer:
                    raise ValueError("emulated chips need a register write before a read")
                length = msg.len  # type: ignore[attr-defined]
                data = chip.read(pointer[addr], length)
                ctypes.memmove(msg.buf, data, length)  # type: ignore[attr-defined]
                self.bytes_read += length
            else:
                payload = bytes(msg)  # type: ignore[call-overload]
                if not payload:
                    continue
                pointer[addr] = payload[0]
                if len(payload) > 1:
                    chip.write(payload[0], payload[1:])

    def close(self) -> None:
        self.closed = True

    def __enter__(self) -> EmulatedBus:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- internals -------------------------------------------------------------------------

    def _maybe_fail_randomly(self, address: int | None,
                             reading: tuple[int, int] | None) -> None:
        if self._rng is None or not self._random_rate \
                or self._rng.random() >= self._random_rate:
            return
        code = errno.EREMOTEIO if self._rng.random() < 0.5 else errno.EIO
        chip = self.chips.get(address) if address is not None else None
        if code == errno.EIO and reading is not None and reading[1] > 1 \
                and chip is not None and chip.plugged:
            sent = int(self._rng.integers(1, reading[1]))
            chip.read(reading[0], sent)             # sent before the failure: consumed
            self.bytes_read += sent
        self.failures_injected += 1
        self.transfers += 1
        raise _os_error(code)

    def _chip(self, address: int, *, reading: tuple[int, int] | None) -> EmulatedImu:
        """The chip for a transfer; ``reading``: (register, length) if it reads."""
        if self.closed:
            raise _os_error(errno.EBADF)
        self._maybe_fail_randomly(address, reading)
        self._maybe_fail(address, reading=reading)
        self.transfers += 1
        return self._present(address)

    def _present(self, address: int) -> EmulatedImu:
        chip = self.chips.get(address)
        if chip is None or not chip.plugged:
            raise _os_error(errno.EREMOTEIO)
        return chip

    def _maybe_fail(self, address: int | None, *,
                    reading: tuple[int, int] | None = None) -> None:
        if self._fail_remaining <= 0:
            return
        if self._fail_address is not None and address != self._fail_address:
            return
        if self._fail_min_read is not None:
            if reading is None or reading[1] <= self._fail_min_read:
                return               # a write, or a read too short: goes through
            after = self._fail_after_bytes or 0
            chip = self.chips.get(address) if address is not None else None
            if chip is not None and chip.plugged and after > 0:
                chip.read(reading[0], after)     # sent before the failure: consumed
                self.bytes_read += after
        self._fail_remaining -= 1
        self.failures_injected += 1
        self.transfers += 1
        raise _os_error(self._fail_errno)
