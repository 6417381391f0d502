"""The pipeline's configuration section ``[pipeline]``: what a user may want to change.

Everything here is in SI units. The stages' finer tuning (frame length, thresholds) lives in
each stage's own settings class beside its code; :class:`PipelineSettings` only carries what
depends on the person, the roller and the routine. A setting that a stage uses is declared
once, in the stage's class (default, unit, bounds, documentation), and taken from there with
:func:`same_as`, so the two can never disagree.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Literal

from roller.base.errors import ConfigError
from roller.base.settings import setting
from roller.pipeline.clipping import ClipSettings
from roller.pipeline.holds import HoldSettings
from roller.pipeline.legs import LegSettings
from roller.pipeline.strokes import StrokeSettings
from roller.pipeline.too_fast import TooFastSettings


def same_as(stage: type, name: str) -> Any:
    """A field declared like ``stage``'s ``name`` (default, unit, bounds, documentation)."""
    f = next(f for f in dataclasses.fields(stage) if f.name == name)
    return dataclasses.field(default=f.default, metadata=f.metadata)


@dataclass(frozen=True)
class PipelineSettings:
    """Config section ``[pipeline]``."""

    radius_m: float = setting(0.075, unit="m", minimum=0.01, maximum=0.5,
                              doc="radius of the roller or ball: speed = roll rate x radius")
    body: Literal["roller", "ball"] = setting(
        "roller", doc="'roller' (rolls about its long axis) or 'ball' (rolls any way)")
    max_speed_m_s: float = same_as(TooFastSettings, "limit_m_s")
    target_speed_m_s: float = setting(0.025, unit="m/s", minimum=0.001, maximum=2.0,
                                      doc="the speed to aim for (shown on displays)")
    roll_axis: list[float] | None = setting(
        None, minimum=-1000.0, maximum=1000.0,
        doc="pin the roll axis: a vector in sensor axes, of length at least 0.001 (only its "
            "direction counts; found from the data if unset)")
    gyro_bias_rad_s: list[float] | None = setting(
        None, unit="rad/s", minimum=-5.0, maximum=5.0,
        doc="starting gyro offset, sensor axes (e.g. from roller calibrate); tracked from the "
            "data either way. Real offsets are a fraction of a rad/s (MPU-6050: at most "
            "0.35)")
    stroke_min_distance_m: float = same_as(StrokeSettings, "min_distance_m")
    hold_max_travel_m: float = same_as(LegSettings, "big_travel_m")
    hold_min_duration_s: float = same_as(HoldSettings, "min_duration_s")
    too_fast_min_duration_s: float = same_as(TooFastSettings, "min_duration_s")
    gyro_full_scale_rad_s: float | None = same_as(ClipSettings, "gyro_full_scale_rad_s")
    accel_full_scale_m_s2: float | None = same_as(ClipSettings, "accel_full_scale_m_s2")

    def __post_init__(self) -> None:
        for name in ("roll_axis", "gyro_bias_rad_s"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) != 3:
                raise ConfigError(f"pipeline.{name}", "3 numbers (x, y, z in sensor axes)",
                                  value)
            if name == "roll_axis" and math.hypot(*(float(v) for v in value)) < MIN_AXIS_LENGTH:
                raise ConfigError("pipeline.roll_axis", "a non-zero vector (of length at least "
                                  f"{MIN_AXIS_LENGTH})", value)


MIN_AXIS_LENGTH = 1e-3
"""Shortest ``roll_axis`` accepted: its direction is taken from it, and a vector shorter than
this is more likely a typo than a direction."""
