"""Presence: is someone on the roller, or is it lying on the floor on its own?

A hold (the roller within 1 cm for 3 s) looks the same in position whether a person is pressing
a tender spot or has got up and left: by the definition both are holds, and the hold events say
so. But a coach must not count an empty roller's stillness as time spent on a tender spot, nor
show a breathing countdown to nobody. The difference is in the small motion: a body on a roller
is never perfectly still -- breathing rocks it a few millimetres at 0.2-0.3 Hz, a degree or two
per second of rotation, and leaning tilts it -- while an empty roller shows only sensor noise.

The noise is measured from the same data, so nothing depends on the chip: white noise changes
from one 40 ms frame to the next as much as it varies overall, while breathing is slow and
hardly changes between frames. Over the last ``window_s`` we compare the variance of the
angular rate (offset removed) with half the mean squared frame-to-frame difference (the noise
variance). Someone is there when the first is clearly larger.

:func:`live_phase` turns that, the hold and the leg in progress into the phase shown live, with
hysteresis so that stroke reversals and short slow moments stay ``rolling``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from roller.base.settings import setting


@dataclass(frozen=True)
class PresenceSettings:
    window_s: float = setting(
        10.0, unit="s", minimum=1.0, maximum=120.0,
        doc="how long the roller must show nothing but sensor noise to count as left alone "
            "(long enough that holding one's breath on a tender spot does not count)")
    min_ratio: float = setting(
        4.0, minimum=1.0, doc="motion variance over noise variance that shows a person")
    min_motion_rad_s: float = setting(
        0.003, unit="rad/s", minimum=0.0,
        doc="and at least this much motion (standard deviation of the rate): a quiet, coarsely "
            "quantised sensor on an empty roller must not look like breathing")


@dataclass(frozen=True)
class PhaseSettings:
    rolling_grace_s: float = setting(
        1.5, unit="s", minimum=0.0, maximum=10.0,
        doc="after a stroke ends, how long a pause (a slow turn, a reversal that stopped) "
            "still counts as rolling before it is anything else")


def live_phase(*, holding: bool, attended: bool, rolling: bool, moving: bool,
               since_last_leg_s: float | None,
               settings: PhaseSettings = PhaseSettings()) -> str:
    """The phase a display shows, with hysteresis: ``idle`` means nobody is on the roller.

    A hold with someone on it is ``holding``; a leg in progress, a roller already moving again,
    or a pause of up to ``rolling_grace_s`` after a leg is ``rolling`` -- so a reversal or a
    short slow moment does not flash ``idle``. A longer stillness that is not (yet) a hold, or
    a hold with nobody on the roller, is ``idle``."""
    if holding:
        return "holding" if attended else "idle"
    if rolling or moving:
        return "rolling"
    if since_last_leg_s is not None and since_last_leg_s <= settings.rolling_grace_s:
        return "rolling"
    return "idle"


class PresenceDetector:
    """Keeps the last ``window_s`` of frame rates; :attr:`attended` says if someone is on it."""

    def __init__(self, settings: PresenceSettings | None = None, *, frame_s: float) -> None:
        self.settings = settings or PresenceSettings()
        self.size = max(4, round(self.settings.window_s / frame_s))
        self._rates = np.zeros((self.size, 3))
        self._filled = 0
        self._next = 0
        self.motion_var = 0.0
        self.noise_var = 0.0

    def update(self, rates_rad_s: np.ndarray) -> None:
        """Take the frames' angular rates, (M, 3) [rad/s] with the gyro offset removed."""
        rates = np.asarray(rates_rad_s, dtype=float).reshape(-1, 3)[-self.size:]
        m = rates.shape[0]
        if m == 0:
            return
        idx = (self._next + np.arange(m)) % self.size
        self._rates[idx] = rates
        self._next = int((self._next + m) % self.size)
        self._filled = min(self.size, self._filled + m)

    @property
    def attended(self) -> bool:
        """True when the last ``window_s`` shows more than sensor noise (or too little is known
        yet to say the roller is empty)."""
        if self._filled < self.size:
            return True
        w = np.roll(self._rates, -self._next, axis=0)  # oldest first
        self.motion_var = float(w.var(axis=0).sum())
        self.noise_var = 0.5 * float((np.diff(w, axis=0) ** 2).mean(axis=0).sum())
        s = self.settings
        return self.motion_var >= max(s.min_ratio * self.noise_var, s.min_motion_rad_s ** 2)

    def state(self) -> dict:
        attended = self.attended
        return {"attended": attended, "motion_var_rad2_s2": self.motion_var,
                "noise_var_rad2_s2": self.noise_var}
