"""A plausible person rolling: a random but seeded scenario of strokes, holds and rests."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np

from firmware_bridge.simulator.rotations import DEG, random_rotvec
from firmware_bridge.simulator.scenario import Scenario
from firmware_bridge.simulator.segments import (
    HoldSegment,
    RestSegment,
    Segment,
    StrokeSegment,
    TwistSegment,
)
from firmware_bridge.simulator.truth import time_above


def person_scenario(duration_s: float, *, seed: int = 0, radius_m: float = 0.075,
                    body: Literal["roller", "ball"] = "roller", start_rolling: bool = False,
                    fast_fraction: float = 0.2, max_speed_m_s: float = 0.05,
                    gyro_bias_max_rad_s: float = 20 * DEG, gyro_noise_rad_s: float = 0.003,
                    accel_noise_m_s2: float = 0.04, random_mounting: bool = True,
                    wobble_max: float = 0.25, breathing_m: tuple[float, float] = (0.001, 0.005),
                    lean_rad: tuple[float, float] = (1.0 * DEG, 6.0 * DEG)) -> Scenario:
    """A plausible person doing a lower-back routine for about ``duration_s`` seconds.

    Sets of slow strokes (2-4 cm/s over 4-12 cm) back and forth, with an uneven hand (speed
    swinging by up to ``wobble_max``), now and then a set that is too fast (8-15 cm/s), holds
    of 20-30 s on tender spots with breathing and leaning, short rests; with a ball, twists on
    the spot now and then. The sensor is mounted at random, with a gyro
    offset of up to ``gyro_bias_max_rad_s`` per axis that drifts as the chip warms, accelerometer
    offsets of up to 0.3 m/s^2 and gyro sensitivity errors of up to 2 %. A hold's breathing
    (peak to peak [m]) and lean (peak tilt [rad]) are drawn from ``breathing_m`` and
    ``lean_rad``: deep breathing is up to 6 mm, a lean to reach another part 20-30 degrees.
    ``start_rolling`` begins in the middle of rolling, with no still moment first.
    Speeds avoid the ambiguous band just around ``max_speed_m_s``.
    """
    rng = np.random.default_rng([seed, 1])
    segments: list[Segment] = []
    total = 0.0

    def add(seg: Segment) -> None:
        nonlocal total
        segments.append(seg)
        total += seg.duration_s

    if not start_rolling:   # still periods are either clearly short or clearly a hold
        add(RestSegment(float(rng.choice([rng.uniform(0.5, 2.0), rng.uniform(4.5, 8.0)]))))
    direction = 1.0 if rng.random() < 0.5 else -1.0
    while total < duration_s:
        fast = rng.random() < fast_fraction
        n = int(rng.integers(4, 11))
        amplitude = float(rng.uniform(0.04, 0.12))
        for _ in range(n):
            distance = amplitude * float(rng.uniform(0.8, 1.0))
            if fast:
                speed = float(rng.uniform(1.6, 3.0)) * max_speed_m_s
                ramp = float(rng.uniform(0.15, 0.3))
                wobble_cap = 1 - 1.25 * max_speed_m_s / speed   # stays clearly too fast
            else:
                speed = float(rng.uniform(0.4, 0.75)) * max_speed_m_s
                # now and then a gentle pass: speeding up and slowing down all the way
                ramp = float(rng.uniform(0.25, 0.6)) if rng.random() < 0.7 else 10.0
                wobble_cap = 0.8 * max_speed_m_s / speed - 1    # stays clearly slow enough
            wobble = float(rng.uniform(0.0, max(0.0, min(wobble_max, wobble_cap))))
            stroke = StrokeSegment(direction * distance, speed, ramp, wobble=wobble,
                                   wobble_cycles=int(rng.integers(1, 4)))
            while fast and time_above(stroke, max_speed_m_s) < 0.45:
                # clearly longer than the 0.3 s that makes an alert: no ambiguous cases
                stroke = dataclasses.replace(stroke, distance_m=stroke.distance_m * 1.2)
            add(stroke)
            direction = -direction
            if rng.random() < 0.2:
                add(RestSegment(float(rng.uniform(0.3, 1.2))))
        roll = rng.random()
        if roll < 0.55:
            add(HoldSegment(float(rng.uniform(20.0, 30.0)),
                            breathing_m=float(rng.uniform(*breathing_m)),
                            breathing_period_s=float(rng.uniform(3.0, 5.5)),
                            lean_rad=float(rng.uniform(*lean_rad)),
                            lean_period_s=float(rng.uniform(5.0, 10.0)),
                            yaw_rad=float(rng.uniform(0.0, 5.0)) * DEG))
        elif roll < 0.8:
            add(RestSegment(float(rng.uniform(5.0, 12.0))))
        if body == "ball" and rng.random() < 0.5:
            add(TwistSegment(float(rng.uniform(1.0, 1.5)),
                             float(rng.uniform(-1.5, 1.5))))
            add(RestSegment(float(rng.uniform(0.3, 0.5)) if roll >= 0.8
                            else float(rng.uniform(0.5, 1.5))))
        elif roll >= 0.8 and segments and isinstance(segments[-1], StrokeSegment):
            # keep strokes in the same direction apart: a stop must separate them
            add(RestSegment(float(rng.uniform(0.8, 1.5))))
    bias = rng.uniform(-gyro_bias_max_rad_s, gyro_bias_max_rad_s, size=3)
    drift = rng.uniform(-2.0, 2.0, size=3) * DEG
    mounting = random_rotvec(rng) if random_mounting else (0.0, 0.0, 0.0)
    accel_bias = rng.uniform(-0.3, 0.3, size=3)
    scale = 1.0 + rng.uniform(-0.02, 0.02, size=3)
    return Scenario(segments=tuple(segments), radius_m=radius_m, body=body,
                    mounting_rotvec=mounting,
                    gyro_bias_rad_s=tuple(float(x) for x in bias),  # type: ignore[arg-type]
                    gyro_bias_drift_rad_s=tuple(float(x) for x in drift),  # type: ignore[arg-type]
                    warmup_time_s=float(rng.uniform(300.0, 900.0)),
                    gyro_noise_rad_s=gyro_noise_rad_s, accel_noise_m_s2=accel_noise_m_s2,
                    accel_bias_m_s2=tuple(float(x) for x in accel_bias),  # type: ignore[arg-type]
                    gyro_scale=tuple(float(x) for x in scale))  # type: ignore[arg-type]
