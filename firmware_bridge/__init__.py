"""Everything that touches hardware: I2C IMU drivers, GPIO controls, and the simulated roller
and emulated chips that stand in for them on a laptop.

Nothing in ``roller`` talks to a bus or a pin directly; it asks this package. The layers point
one way: this package imports nothing from ``roller`` (``tests/test_layers.py`` checks it), so it
can be used and tested alone; the settings machinery and the exception root both layers use live
here (``settings.py``, ``errors.py``). Hardware-only imports (smbus2's SMBus on /dev/i2c-N,
lgpio) happen lazily, so everything imports and tests on a machine with no hardware.
"""
