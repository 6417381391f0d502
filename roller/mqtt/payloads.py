"""Payload bytes: every JSON message the roller sends goes through :func:`encode`."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any


def jsonable(value: Any) -> Any:
    """``value`` made JSON-safe: numpy scalars and arrays to Python, NaN/inf to None."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "tolist"):  # numpy scalar or array
        return jsonable(value.tolist())
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact JSON bytes of ``payload`` (after :func:`jsonable`)."""
    return json.dumps(jsonable(payload), separators=(",", ":"), allow_nan=False).encode()
