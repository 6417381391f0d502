"""Units sanity for recordings: recognise timestamps in ms/us/ns, a gyro in deg/s and an
accelerometer in g from the data, and convert when told to.

A recording in the wrong units is not an error the pipeline can see for itself: millisecond
timestamps make a 30 s session look like an 8-hour one, a gyro in deg/s reads 57 times too
fast. So before analysing, the first block of samples is checked against what physics allows:

* sample spacing: a sensor samples at 10-2000 Hz, so the median step between timestamps is
  0.5-100 ms; the same in ms, us or ns is 1000, 10^6 or 10^9 times larger;
* gravity: a roller at rest or rolling slowly feels about 1 g, so the median magnitude of the
  accelerometer is near 9.81 in m/s^2 and near 1 in g;
* the gyro: when the sensor turns, gravity turns against it at the gyro's rate; in deg/s the
  gyro says 57 times more rotation than gravity shows. A rate above 35 rad/s (2000 deg/s, the
  largest full scale of any MEMS gyro) is deg/s whatever else the data say.

What was found and what to pass (``--units t=ms,gyro=deg/s,accel=g``) is said in a
:class:`UnitsError`; with explicit units the data is converted and not second-guessed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from firmware_bridge.physics import STANDARD_GRAVITY_M_S2
from roller.base.errors import RollerError

GRAVITY_M_S2 = STANDARD_GRAVITY_M_S2
TIME_SCALE = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "ns": 1e-9}
GYRO_SCALE = {"rad/s": 1.0, "deg/s": math.pi / 180.0}
ACCEL_SCALE = {"m/s2": 1.0, "m/s^2": 1.0, "g": GRAVITY_M_S2}


class UnitsError(RollerError, ValueError):
    """The recording's units are not the ones expected (or cannot be parsed)."""


@dataclass(frozen=True)
class Units:
    """Units of a recording's columns. Defaults: the recording format's own (s, rad/s, m/s^2)."""

    time: str = "s"
    gyro: str = "rad/s"
    accel: str = "m/s2"

    @classmethod
    def parse(cls, text: str) -> Units:
        """``t=ms,gyro=deg/s,accel=g`` (any subset, any order)."""
        values = {"time": "s", "gyro": "rad/s", "accel": "m/s2"}
        aliases = {"t": "time", "time": "time", "gyro": "gyro", "g": "gyro", "accel": "accel",
                   "a": "accel", "acc": "accel"}
        tables = {"time": TIME_SCALE, "gyro": GYRO_SCALE, "accel": ACCEL_SCALE}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, sep, value = part.partition("=")
            name = aliases.get(key.strip().lower())
            value = value.strip().lower().replace("°", "deg").replace("dps", "deg/s")
            if not sep or name is None or value not in tables[name]:
                raise UnitsError(
                    f"--units {text!r}: cannot read {part!r}; expected t=s|ms|us|ns, "
                    "gyro=rad/s|deg/s, accel=m/s2|g, comma-separated (e.g. t=ms,gyro=deg/s)")
            values[name] = value
        return cls(**values)

    def describe(self) -> str:
        return f"t={self.time},gyro={self.gyro},accel={self.accel}"

    @property
    def is_si(self) -> bool:
        return self == Units()

    def convert(self, t: np.ndarray, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """To s, m/s^2 and rad/s."""
        if self.is_si:
            return t, samples
        out = np.array(samples, dtype=np.float64, copy=True)
        out[:, :3] *= ACCEL_SCALE[self.accel]
        out[:, 3:] *= GYRO_SCALE[self.gyro]
        return np.asarray(t, dtype=np.float64) * TIME_SCALE[self.time], out


@dataclass(frozen=True)
class Findings:
    """What the data look like, in the units they claim to be in."""

    median_step: float
    median_accel: float
    peak_gyro: float
    gyro_over_gravity: float | None
    """Rotation the gyro reports over the rotation gravity shows (1 in rad/s, 57 in deg/s);
    None when the sensor hardly turned."""


def inspect(t: np.ndarray, samples: np.ndarray) -> Findings:
    t = np.asarray(t, dtype=np.float64)
    x = np.asarray(samples, dtype=np.float64)
    steps = np.diff(t)
    steps = steps[steps > 0]
    median_step = float(np.median(steps)) if steps.size else math.nan
    acc = np.linalg.norm(x[:, :3], axis=1)
    gyro = np.linalg.norm(x[:, 3:], axis=1)
    ratio = _gyro_over_gravity(t, x) if t.size > 20 else None
    return Findings(median_step, float(np.median(acc)) if acc.size else math.nan,
                    float(np.percentile(gyro, 99.5)) if gyro.size else 0.0, ratio)


def _gyro_over_gravity(t: np.ndarray, x: np.ndarray) -> float | None:
    """Compare the rotation gravity shows with the gyro's (in whatever time unit ``t`` is:
    only the ratio matters).

    Gravity's direction is taken from the accelerometer *averaged over windows* (up to 200,
    of about 30 samples or more), not from single samples: a vibrating sensor (a roller on a
    wooden floor, a phone in a case, an IMU on a running engine) moves single samples by
    several degrees from one to the next while the mean direction stays put. A step between
    neighbouring windows counts only when gravity turned clearly more than the windows'
    own scatter explains; the gyro's rotation perpendicular to gravity is integrated between
    the two windows' middle samples."""
    n = t.size
    acc = x[:, :3]
    norm = np.linalg.norm(acc, axis=1)
    ok = norm > 0
    if ok.sum() < 20 or not t[-1] > t[0]:
        return None
    unit = acc / np.where(ok, norm, 1.0)[:, None]
    n_windows = max(2, min(200, n // 30))
    edges = np.unique(np.searchsorted(t, np.linspace(t[0], t[-1], n_windows + 1)[:-1]))
    counts = np.diff(np.append(edges, n))
    sums = np.add.reduceat(unit, edges, axis=0)
    mean = sums / counts[:, None]
    length = np.linalg.norm(mean, axis=1)
    direction = mean / np.where(length > 0, length, 1.0)[:, None]
    # scatter of single directions about the mean -> uncertainty of the mean direction [rad]
    spread = np.sqrt(np.maximum(0.0, 1.0 - np.minimum(length, 1.0) ** 2))
    noise = spread / np.sqrt(counts)
    middle = edges + counts // 2
    dt = np.diff(t, prepend=t[0])
    integrated = np.cumsum(x[:, 3:] * dt[:, None], axis=0)
    gyro_angle = 0.0
    gravity_angle = 0.0
    for k in range(len(edges) - 1):
        if counts[k] < 3 or counts[k + 1] < 3 or length[k] <= 0 or length[k + 1] <= 0:
            continue
        ga, gb = direction[k], direction[k + 1]
        turned = math.acos(max(-1.0, min(1.0, float(ga @ gb))))
        if not max(0.02, 3.0 * (noise[k] + noise[k + 1])) < turned < 1.5:
            continue
        axis = ga + gb
        axis /= np.linalg.norm(axis)
        rotation = integrated[middle[k + 1]] - integrated[middle[k]]
        gyro_angle += float(np.linalg.norm(rotation - (rotation @ axis) * axis))
        gravity_angle += turned
    if gravity_angle < 0.5:
        return None
    return gyro_angle / gravity_angle


def diagnose(findings: Findings, units: Units = Units()) -> list[str]:
    """Problems with ``units`` given the findings (empty if they fit)."""
    f = findings
    problems = []
    scale_t = TIME_SCALE[units.time]
    step_s = f.median_step * scale_t
    if not math.isnan(step_s) and not 0.0002 <= step_s <= 0.2:
        guess = next((u for u, k in TIME_SCALE.items() if 0.0002 <= f.median_step * k <= 0.2),
                     None)
        if guess is not None:
            scale_t = TIME_SCALE[guess]     # judge the gyro with the time unit it seems to be
        problems.append(
            f"the median time step is {f.median_step:g} ({step_s * 1e3:g} ms if t is in "
            f"{units.time}): a sensor samples every 0.5-100 ms"
            + (f"; the timestamps look like {guess} (pass t={guess})" if guess else ""))
    acc = f.median_accel * ACCEL_SCALE[units.accel]
    if not math.isnan(acc) and not 5.0 <= acc <= 15.0:
        hint = ""
        if 0.5 <= f.median_accel <= 1.5:
            hint = "; it looks like g (pass accel=g)"
        if f.median_accel < 3.0 and not hint:
            hint = ("; a phone's 'linear acceleration' has gravity removed: record the "
                    "accelerometer with gravity instead")
        problems.append(f"the accelerometer's median magnitude is {f.median_accel:g} "
                        f"({acc:.2f} m/s^2 if in {units.accel}): at rest or rolling it feels "
                        f"about 9.81 m/s^2 (1 g){hint}")
    ratio = f.gyro_over_gravity
    gyro_scale = GYRO_SCALE[units.gyro]
    if ratio is not None:
        # time unit: gyro rate x time step must be per second
        r = ratio * gyro_scale * scale_t
        if r > 10:
            problems.append(
                f"the gyro reports {r:.0f} times the rotation that gravity shows (in "
                f"{units.gyro}); the gyro looks like deg/s (pass gyro=deg/s)")
        elif r < 0.1:
            problems.append(f"the gyro reports only {r:.3f} of the rotation that gravity "
                            f"shows (in {units.gyro}): check its units")
    elif f.peak_gyro * gyro_scale > 35.0:
        problems.append(f"the gyro reaches {f.peak_gyro:g} ({units.gyro}), more than any "
                        "MEMS gyro's full scale of 35 rad/s: it looks like deg/s "
                        "(pass gyro=deg/s)")
    return problems


CHECK_ROWS = 65536
"""Samples the check looks at: the first this many (about a minute at 1 kHz), however the
file happens to be cut into blocks."""


def checked(chunks: Iterable[tuple[np.ndarray, np.ndarray]], name: str,
            units: Units | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The chunks, converted from ``units`` to SI. Without ``units`` the first
    :data:`CHECK_ROWS` samples are checked and a :class:`UnitsError` says what was found and
    what to pass."""
    if units is not None:
        for t, samples in chunks:
            yield units.convert(t, samples)
        return
    iterator = iter(chunks)
    held: list[tuple[np.ndarray, np.ndarray]] = []
    rows = 0
    for t, samples in iterator:
        held.append((t, samples))
        rows += t.size
        if rows >= CHECK_ROWS:
            break
    if rows:
        # one copy of the first blocks, looked at, then handed on in the blocks' own sizes
        # (views): the pieces are not kept beside it, and the pipeline never gets one large
        # block, whose temporaries would cost more memory
        sizes = np.cumsum([c[0].size for c in held])[:-1]
        t_all = np.concatenate([c[0] for c in held])
        samples_all = np.concatenate([c[1] for c in held])
        held = []
        problems = diagnose(inspect(t_all[:CHECK_ROWS], samples_all[:CHECK_ROWS]))
        if problems:
            raise UnitsError(f"{name}: the data do not look like s, m/s^2 and rad/s: "
                             + "; ".join(problems)
                             + ". Pass --units to say what they are "
                               "(e.g. --units t=ms,gyro=deg/s,accel=g).")
        yield from zip(np.split(t_all, sizes), np.split(samples_all, sizes), strict=True)
    yield from iterator
