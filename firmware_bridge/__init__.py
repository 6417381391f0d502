"""Everything that touches hardware: I2C IMU drivers, GPIO controls, and the simulated roller
and emulated chips that stand in for them on a laptop.

Nothing in ``roller`` talks to a bus or a pin directly; it asks this package. Hardware-only
imports (smbus2's SMBus on /dev/i2c-N, lgpio) happen lazily, so everything imports and tests
on a machine with no hardware.
"""
