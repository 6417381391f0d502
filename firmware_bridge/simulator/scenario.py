"""A physical session: the segments in order, and the body and sensor that record them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from firmware_bridge.simulator.segments import Segment


@dataclass(frozen=True)
class Scenario:
    """A physical session: what the person does, and the body and sensor that record it."""

    segments: tuple[Segment, ...]
    radius_m: float = 0.075
    body: Literal["roller", "ball"] = "roller"
    mounting_rotvec: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Rotation from the body frame to the sensor frame, as a rotation vector [rad]."""
    gyro_bias_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Zero-rate offset at power-on, sensor axes [rad/s]."""
    gyro_bias_drift_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """How far the offset moves as the chip warms up (reached with ``warmup_time_s``) [rad/s]."""
    warmup_time_s: float = 600.0
    """Time constant of the warm-up drift [s]."""
    gyro_noise_rad_s: float = 0.002
    """White noise on each gyro reading, standard deviation per sample [rad/s]."""
    accel_noise_m_s2: float = 0.03
    """White noise on each accelerometer reading, standard deviation per sample [m/s^2]."""
    accel_bias_m_s2: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """Accelerometer zero-g offset, sensor axes [m/s^2]."""
    gyro_scale: tuple[float, float, float] = (1.0, 1.0, 1.0)
    """Gyro sensitivity of each sensor axis relative to nominal (MEMS parts: +-3 %)."""
    vibration_m_s2: float = 0.0
    """Amplitude of an engine-like vibration on the accelerometer [m/s^2] (0: none): a
    fundamental near 27 Hz and two harmonics along fixed random directions, slowly modulated,
    as a sensor bolted near a running engine, a roller on a wooden floor or a phone in a case
    feels. Single samples then point several degrees away from gravity."""
    vibration_rad_s: float = 0.0
    """The same vibration's amplitude on the gyro [rad/s]."""

    @property
    def duration_s(self) -> float:
        return float(sum(seg.duration_s for seg in self.segments))
