"""The pipeline's configuration section ``[pipeline]``: what a user may want to change.

Everything here is in SI units. The stages' finer tuning (frame length, thresholds) lives in
each stage's own settings class beside its code; :class:`PipelineSettings` only carries what
depends on the person, the roller and the routine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from roller.errors import ConfigError
from roller.settings import setting


@dataclass(frozen=True)
class PipelineSettings:
    """Config section ``[pipeline]``."""

    radius_m: float = setting(0.075, unit="m", minimum=0.01, maximum=0.5,
                              doc="radius of the roller or ball: speed = roll rate x radius")
    body: Literal["roller", "ball"] = setting(
        "roller", doc="'roller' (rolls about its long axis) or 'ball' (rolls any way)")
    max_speed_m_s: float = setting(0.05, unit="m/s", minimum=0.001, maximum=2.0,
                                   doc="go-slow limit: faster than this is 'too fast'")
    target_speed_m_s: float = setting(0.025, unit="m/s", minimum=0.001, maximum=2.0,
                                      doc="the speed to aim for (shown on displays)")
    roll_axis: list[float] | None = setting(
        None, doc="pin the roll axis: a vector in sensor axes (found from the data if unset)")
    gyro_bias_rad_s: list[float] | None = setting(
        None, unit="rad/s", doc="starting gyro offset, sensor axes (e.g. from roller calibrate);"
                                " tracked from the data either way")
    stroke_min_distance_m: float = setting(0.02, unit="m", minimum=0.002, maximum=1.0,
                                           doc="shortest travel in one direction that counts "
                                               "as a stroke")
    hold_max_travel_m: float = setting(0.01, unit="m", minimum=0.002, maximum=0.2,
                                       doc="travel that ends a hold (breathing stays under it)")
    hold_min_duration_s: float = setting(3.0, unit="s", minimum=0.5, maximum=600.0,
                                         doc="how long the roller must stay put to be a hold")
    too_fast_min_duration_s: float = setting(0.3, unit="s", minimum=0.0, maximum=10.0,
                                             doc="how long above the limit before alerting")
    gyro_full_scale_rad_s: float | None = setting(
        None, unit="rad/s", minimum=0.1, maximum=100.0,
        doc="the gyro's full scale, if known (the live service takes the driver's range); a "
            "rate there is clipped. Unset: clipping is recognised from the data")
    accel_full_scale_m_s2: float | None = setting(
        None, unit="m/s^2", minimum=5.0, maximum=2000.0,
        doc="the accelerometer's full scale, if known; unset: recognised from the data")

    def __post_init__(self) -> None:
        for name in ("roll_axis", "gyro_bias_rad_s"):
            value = getattr(self, name)
            if value is None:
                continue
            if len(value) != 3:
                raise ConfigError(f"pipeline.{name}", "3 numbers (x, y, z in sensor axes)",
                                  value)
            if name == "roll_axis" and sum(float(v) ** 2 for v in value) < 1e-12:
                raise ConfigError("pipeline.roll_axis", "a non-zero vector", value)
