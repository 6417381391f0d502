"""Declared register maps: a chip's registers and bit fields written down once, like the datasheet.

Each chip module (``firmware_bridge.imu.mpu6050``, ``firmware_bridge.imu.lsm6ds``) declares its
map as a class of :class:`Register` and :class:`Field` attributes, e.g.::

    class Mpu6050Map:
        GYRO_CONFIG = Register(0x1B)
        FS_SEL = Field(GYRO_CONFIG, shift=3, width=2)

The driver writes fields through :class:`RegisterDevice` (read-modify-write over the bus) and the
emulated chip decodes the same fields from its register file, so the driver and the emulator
cannot disagree about where a bit lives. A field never touches the bus itself: every transfer is
explicit, so the driver can retry and count it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class Register:
    """One 8-bit register at ``address``; ``reset`` is its power-on value (datasheet).

    ``bank`` is the register bank for chips that page their map (ICM-20948: selected with
    REG_BANK_SEL); the driver selects the bank before touching the register."""

    address: int
    reset: int = 0x00
    bank: int = 0

    def __post_init__(self) -> None:
        if not 0 <= self.address <= 0xFF:
            raise ValueError(f"register address 0x{self.address:X} is not 8-bit")


@dataclass(frozen=True)
class Field:
    """``width`` bits of ``register`` starting at bit ``shift`` (bit 0 = least significant)."""

    register: Register
    shift: int = 0
    width: int = 1

    def __post_init__(self) -> None:
        if not (self.shift >= 0 and self.width >= 1 and self.shift + self.width <= 8):
            raise ValueError(f"field bits {self.shift}+{self.width} do not fit in a byte")

    @property
    def address(self) -> int:
        return self.register.address

    @property
    def mask(self) -> int:
        return ((1 << self.width) - 1) << self.shift

    def get(self, byte: int) -> int:
        """The field's value from the register's byte."""
        return (byte & self.mask) >> self.shift

    def put(self, byte: int, value: int) -> int:
        """The register's byte with this field set to ``value`` (other bits kept)."""
        if not 0 <= value < (1 << self.width):
            raise ValueError(f"value {value} does not fit in {self.width} bit(s)")
        return (byte & ~self.mask & 0xFF) | (value << self.shift)


class SMBusLike(Protocol):
    """The subset of ``smbus2.SMBus`` the drivers use (the real one or the emulated bus)."""

    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...
    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...
    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...
    def write_i2c_block_data(self, i2c_addr: int, register: int, data: list[int]) -> None: ...
    def i2c_rdwr(self, *i2c_msgs: object) -> None: ...
    def close(self) -> None: ...


SMBUS_BLOCK_MAX = 32
"""smbus2's read_i2c_block_data returns at most 32 bytes (the SMBus block limit)."""


class RegisterDevice:
    """A chip at ``address`` on ``bus``: register reads/writes, field updates and bursts.

    No retries here: a failed transfer raises ``OSError`` and the driver decides what to do.
    ``transfers`` counts bus transactions (for the benchmark and for tests).
    """

    def __init__(self, bus: SMBusLike, address: int) -> None:
        self.bus = bus
        self.address = address
        self.transfers = 0

    def read(self, register: Register) -> int:
        self.transfers += 1
        return int(self.bus.read_byte_data(self.address, register.address)) & 0xFF

    def write(self, register: Register, value: int) -> None:
        self.transfers += 1
        self.bus.write_byte_data(self.address, register.address, value & 0xFF)

    def read_block(self, register: Register, length: int) -> bytes:
        """``length`` bytes starting at ``register`` (auto-increment or FIFO port).

        Up to 32 bytes use the SMBus block read; longer bursts use one combined
        write-then-read transaction (``i2c_rdwr``), which has no 32-byte limit.
        """
        if length <= 0:
            return b""
        self.transfers += 1
        if length <= SMBUS_BLOCK_MAX:
            return bytes(self.bus.read_i2c_block_data(self.address, register.address, length))
        from smbus2 import i2c_msg  # pure Python; opens no device

        write = i2c_msg.write(self.address, [register.address])
        read = i2c_msg.read(self.address, length)
        self.bus.i2c_rdwr(write, read)
        return bytes(read)
