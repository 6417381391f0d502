"""Declarative settings: re-exported from :mod:`firmware_bridge.settings`.

The machinery (:func:`setting`, :func:`from_mapping`, :func:`describe`) is defined in the bottom
layer because the hardware layer declares its own settings with it and must not import the
application. This module keeps ``from roller.base.settings import ...`` working for the
application's
modules, so they need not know which layer the machinery lives in.
"""

from __future__ import annotations

from firmware_bridge.errors import ConfigError
from firmware_bridge.settings import describe, from_mapping, same_as, setting

__all__ = ["ConfigError", "describe", "from_mapping", "same_as", "setting"]
