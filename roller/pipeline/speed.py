"""Speed along the muscle, from the gyro: roll rate x radius.

A roller on the floor rolls without slipping, so the contact point travels along the muscle at
(rate of rotation about the roller's long axis) x (radius). We take each frame's mean angular
velocity (gyro integrated over the frame, divided by its length), remove the tracked offset and
project it on the roll axis. Rotation about any other axis -- leaning, tilting, yawing --
moves nothing and is ignored by the projection.

A ball rolls about whichever horizontal axis is perpendicular to its path, so its speed is the
part of the angular velocity perpendicular to gravity x radius (spinning about the vertical
moves nothing); its sign follows the axis it has lately been rolling about, so that back-and-forth
strokes alternate in sign like a roller's.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from roller.pipeline.frames import Frames


class SpeedEstimator:
    """Signed velocity along the muscle for each frame [m/s]."""

    def __init__(self, *, radius_m: float, body: Literal["roller", "ball"] = "roller") -> None:
        self.radius_m = float(radius_m)
        self.body = body

    def velocity(self, frames: Frames, bias_rad_s: np.ndarray,
                 axis: np.ndarray) -> np.ndarray:
        """(M,) velocity [m/s]: + when rolling in the positive sense about ``axis``.

        ``bias_rad_s`` and ``axis`` are (3,) for all frames or (M, 3), one per frame; a zero
        axis means unknown (a roller then reads 0; a ball's speed counts as positive).
        """
        if len(frames) == 0:
            return np.zeros(0)
        dur = np.where(frames.duration_s > 0, frames.duration_s, 1.0)
        w = frames.rotation_rad / dur[:, None] - bias_rad_s
        if self.body == "roller":
            return (w * axis).sum(axis=1) * self.radius_m
        acc = frames.accel_m_s2
        g = acc / np.maximum(np.linalg.norm(acc, axis=1), 1e-9)[:, None]
        horizontal = w - (w * g).sum(axis=1)[:, None] * g
        speed = np.linalg.norm(horizontal, axis=1) * self.radius_m
        return np.where((horizontal * axis).sum(axis=1) >= 0, speed, -speed)
