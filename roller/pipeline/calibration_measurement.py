"""Measuring a calibration: the gyro offset at rest and the roll axis from a few strokes.

1. The roller lies still: the mean gyro reading over a still window *is* the zero-rate offset
   (MEMS gyros read several deg/s at rest). "Still" (:func:`is_still`) means the gyro and the
   size of the acceleration barely vary; if the roller moves, the window starts again
   (:meth:`Reader.still_window`).
2. The person rolls a few slow strokes: the rotation is almost all about the roller's long
   axis. The pipeline, started from the measured offset, finds that axis
   (:func:`pipeline_roll_axis`); a principal-axis fit of the offset-corrected gyro checks it
   (:func:`principal_axis`). :func:`choose_axis` marks the calibration confident when both
   agree and the rotation really was about one axis.

The result is a :class:`roller.pipeline.calibration.Calibration`; ``roller calibrate`` runs these
steps
with a person and prints what it found.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from firmware_bridge.simulator import RestSegment, Scenario, person_scenario
from roller.pipeline import Pipeline, PipelineSettings

STILL_GYRO_STD_RAD_S = 0.02
"""Per-axis gyro spread allowed while "still" [rad/s] (about 1 deg/s; noise is far below)."""
STILL_ACCEL_STD_M_S2 = 0.15
"""Spread of |a| allowed while still [m/s^2]."""
MIN_ROLL_RATE_RAD_S = 0.1
"""RMS rotation needed during the strokes to trust an axis [rad/s] (~7 deg/s: 1 cm/s at r =
7.5 cm)."""
MIN_AXIS_DOMINANCE = 0.8
"""Share of the rotation's energy about the main axis needed to call it a roll axis."""
MAX_AXIS_DISAGREEMENT_DEG = 10.0


class Reader:
    """Reads the driver at a safe pace on its clock and keeps what it read."""

    def __init__(self, driver: Any, clock: Any) -> None:
        self.driver = driver
        self.clock = clock
        self.interval_s = min(0.05, driver.max_read_interval_s / 2)

    def _read(self) -> tuple[Any, Any]:
        self.clock.sleep(self.interval_s)
        return self.driver.read()

    def collect(self, seconds: float) -> tuple[Any, Any]:
        ts, ss = [], []
        end = self.clock.monotonic() + seconds
        while self.clock.monotonic() < end:
            t, s = self._read()
            ts.append(t)
            ss.append(s)
        return np.concatenate(ts), np.concatenate(ss)

    def still_window(self, seconds: float, *, timeout_s: float) -> tuple[Any, Any] | None:
        """The first ``seconds`` of uninterrupted stillness, or None after ``timeout_s``."""
        rate = self.driver.output_rate_hz
        need = int(0.9 * seconds * rate)
        ts, ss = [], []
        end = self.clock.monotonic() + timeout_s
        while self.clock.monotonic() < end:
            t, s = self._read()
            if t.size == 0:
                continue
            ts.append(t)
            ss.append(s)
            t_all, s_all = np.concatenate(ts), np.concatenate(ss)
            keep = t_all > t_all[-1] - seconds
            t_win, s_win = t_all[keep], s_all[keep]
            ts, ss = [t_win], [s_win]
            if t_win.size >= need and is_still(s_win):
                return t_win, s_win
        return None


def is_still(samples: Any) -> bool:
    gyro_spread = samples[:, 3:].std(axis=0).max()
    accel_spread = np.linalg.norm(samples[:, :3], axis=1).std()
    return bool(gyro_spread < STILL_GYRO_STD_RAD_S and accel_spread < STILL_ACCEL_STD_M_S2)


def principal_axis(gyro: Any) -> tuple[Any, float, float]:
    """Unit axis of most rotation, the share of rotation energy about it, and RMS rate."""
    if gyro.shape[0] < 3:
        return None, 0.0, 0.0
    moment = gyro.T @ gyro / gyro.shape[0]
    values, vectors = np.linalg.eigh(moment)
    total = float(values.sum())
    if total <= 0:
        return None, 0.0, 0.0
    return vectors[:, -1], float(values[-1] / total), float(np.sqrt(total))


def pipeline_roll_axis(config: Any, rest: tuple[Any, Any], strokes: tuple[Any, Any],
                       bias: Any) -> tuple[Any, bool]:
    """The roll axis the pipeline finds, started from the measured offset."""
    settings = getattr(config, "pipeline", None) or PipelineSettings()
    settings = dataclasses.replace(settings, gyro_bias_rad_s=[float(b) for b in bias],
                                   roll_axis=None)
    pipeline = Pipeline(settings)
    t = np.concatenate([rest[0], strokes[0]])
    s = np.concatenate([rest[1], strokes[1]])
    order = np.flatnonzero(np.diff(t, prepend=-np.inf) > 0)
    pipeline.update(t[order], s[order])
    calibration = pipeline.calibration
    axis = None if calibration.roll_axis is None else np.asarray(calibration.roll_axis)
    return axis, calibration.confident


def choose_axis(pipeline_axis: Any, pipeline_confident: bool, fit_axis: Any,
                dominance: float, rms: float) -> tuple[Any, bool, str]:
    """Which axis to save, whether to trust it, and why (for the user)."""
    rolled = fit_axis is not None and rms >= MIN_ROLL_RATE_RAD_S
    one_axis = dominance >= MIN_AXIS_DOMINANCE
    if pipeline_axis is None:
        if rolled and one_axis:
            return fit_axis, False, ("the pipeline found no axis; the principal-axis fit is "
                                     "saved as tentative: roll a few more strokes")
        return None, False, "not enough rolling about one axis: roll slowly back and forth"
    if not rolled:
        return pipeline_axis, False, "very little rotation: roll a few more strokes"
    cos = abs(float(np.dot(pipeline_axis, fit_axis)))
    angle = float(np.degrees(np.arccos(min(1.0, cos))))
    if one_axis and pipeline_confident and angle <= MAX_AXIS_DISAGREEMENT_DEG:
        return pipeline_axis, True, f"pipeline and fit agree within {angle:.1f} deg"
    return pipeline_axis, False, (f"pipeline and fit differ by {angle:.1f} deg or the rolling "
                                  "was not about one axis: saved as tentative")


def canonical_sign(axis: Any) -> tuple[float, float, float]:
    """The axis with its largest component positive (an axis has no preferred sign)."""
    axis = np.asarray(axis, dtype=float)
    if axis[int(np.argmax(np.abs(axis)))] < 0:
        axis = -axis
    return (float(axis[0]), float(axis[1]), float(axis[2]))


def calibration_scenario(rest_s: float, strokes_s: float, seed: int) -> Scenario:
    """For --simulate: the roller lies still a little longer than asked, then a person rolls."""
    person = person_scenario(strokes_s + 30.0, seed=seed, start_rolling=True)
    return dataclasses.replace(person, segments=(RestSegment(rest_s + 2.0), *person.segments))
