"""Physical constants, declared once for every layer (the drivers, the emulated chips, the
simulator and the pipeline all convert between g and m/s^2)."""

from __future__ import annotations

STANDARD_GRAVITY_M_S2 = 9.80665
"""Standard gravity [m/s^2]: what "1 g" means in an accelerometer's datasheet (by definition,
CGPM 1901). The local value differs by up to 0.5 %; the pipeline never needs it exactly."""
