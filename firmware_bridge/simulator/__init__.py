"""The simulated roller (being split into one module per concept)."""

from firmware_bridge.simulator.simulated_roller import *  # noqa: F403
from firmware_bridge.simulator.simulated_roller import DEG, __all__  # noqa: F401
