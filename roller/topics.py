"""Topic names: moved to :mod:`roller.mqtt_contract`, which holds the whole MQTT contract.

Kept so that ``from roller.topics import Topics`` goes on working for one release; new code
imports from :mod:`roller.mqtt_contract`.
"""

from roller.mqtt_contract import (
    EVENT_KINDS,
    RETAINED_NAMES,
    SAFE_ID,
    SAFE_PREFIX,
    Topics,
    all_rollers,
)

__all__ = ["EVENT_KINDS", "RETAINED_NAMES", "SAFE_ID", "SAFE_PREFIX", "Topics", "all_rollers"]
