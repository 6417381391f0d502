"""A second, independent way to make IMU data with known truth, for cross-checking the pipeline.

``firmware_bridge.simulator`` is the product's simulator and the pipeline was tuned on it; a
pipeline can pass its author's simulator and still fail on real rolling. This module shares no
code with it and models the motion differently on purpose:

* the roller's orientation is built as a rotation matrix per sample (yaw and tilt from leaning,
  then the roll, then the mounting), and the gyro is obtained by *differentiating* that
  orientation numerically (Omega = R^T dR/dt), not from an analytic rate;
* the sensor sits off-centre on the inside of the core wall (``lever_m``), so it feels
  centripetal and tangential acceleration as the roller turns;
* speed profiles are minimum-jerk passes of chosen length and duration, not sinusoids;
* the gyro is quantised to 16 bits at +-1000 deg/s and the accelerometer at +-4 g, with a bias
  that drifts linearly (warm-up) and white noise;
* timestamps are irregular (jitter) with runs of dropped samples.

Truth follows the issue's definitions: a stroke is travel in one direction of at least 2 cm; a
hold is the roller within 1 cm for at least 3 s (a hold on a tender spot or a still rest alike:
the definition cannot tell them apart); too fast is above the limit for at least 0.3 s.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

G = 9.80665


@dataclass(frozen=True)
class Interval:
    start: float
    end: float
    peak_speed_m_s: float = 0.0


@dataclass
class Truth:
    strokes: list[Interval] = field(default_factory=list)
    holds: list[Interval] = field(default_factory=list)
    too_fast: list[Interval] = field(default_factory=list)


def _rot(axis: np.ndarray, angle: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotations by ``angle`` [rad] about unit ``axis`` (Rodrigues)."""
    k = axis / np.linalg.norm(axis)
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    s = np.sin(angle)[:, None, None]
    c = np.cos(angle)[:, None, None]
    return np.eye(3) + s * kx + (1 - c) * (kx @ kx)


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return q


def _min_jerk(n: int) -> np.ndarray:
    """Position fraction 0..1 over ``n`` steps with zero speed and acceleration at both ends."""
    s = np.linspace(0.0, 1.0, n)
    return 10 * s**3 - 15 * s**4 + 6 * s**5


def session(seed: int, *, rate_hz: float, radius_m: float, max_speed_m_s: float = 0.05,
            seconds: float = 120.0, start_rolling: bool = False) -> tuple[np.ndarray, np.ndarray,
                                                                          Truth]:
    """A session of slow and fast passes, holds with breathing and leaning, and rests.

    Returns host timestamps [s], samples (N, 6) [m/s^2, rad/s] in sensor axes, and the truth.
    """
    rng = np.random.default_rng(seed)
    fine_hz = 2000.0
    dt = 1.0 / fine_hz
    x_parts: list[np.ndarray] = []
    lean_parts: list[np.ndarray] = []
    truth = Truth()
    t_now = 0.0
    direction = 1.0
    pos = 0.0

    def add(x: np.ndarray, lean: np.ndarray | None = None) -> None:
        nonlocal t_now, pos
        x_parts.append(x)
        lean_parts.append(np.zeros((x.size, 2)) if lean is None else lean)
        t_now += x.size * dt
        pos = float(x[-1])

    if start_rolling:  # the recording begins in the middle of a pass, already moving
        length, dur = 0.08, 3.0
        n = int(dur * fine_hz)
        x = pos + direction * length * _min_jerk(n)
        add(x[n // 3:])
        speed = np.abs(np.gradient(x[n // 3:], dt))
        truth.strokes.append(Interval(0.0, t_now, float(speed.max())))
        direction = -direction
    while t_now < seconds:
        kind = rng.choice(["slow", "slow", "slow", "fast", "hold", "rest"])
        if kind in ("slow", "fast"):
            for _ in range(int(rng.integers(2, 6))):
                # Fast passes are long enough to stay over the limit for clearly more than
                # 0.3 s (at least 0.5 s), so the truth is never a coin toss at the threshold.
                length = float(rng.uniform(0.04, 0.12) if kind == "slow"
                               else rng.uniform(0.08, 0.15))
                peak = float(rng.uniform(0.015, 0.04) if kind == "slow"
                             else rng.uniform(0.08, 0.2))
                dur = 1.875 * length / peak  # min-jerk peak speed = 1.875 x mean speed
                n = int(dur * fine_hz)
                start = t_now
                x = pos + direction * length * _min_jerk(n)
                add(x)
                speed = np.abs(np.gradient(x, dt))
                truth.strokes.append(Interval(start, t_now, float(speed.max())))
                over = speed > max_speed_m_s
                if over.any():
                    i0, i1 = np.flatnonzero(over)[[0, -1]]
                    if (i1 - i0) * dt >= 0.3:
                        truth.too_fast.append(Interval(start + i0 * dt, start + i1 * dt,
                                                       float(speed.max())))
                direction = -direction
                pause = int(rng.uniform(0.05, 0.4) * fine_hz)  # the turn-around
                add(np.full(pause, pos))
        elif kind == "hold":
            dur = float(rng.uniform(8.0, 30.0))
            n = int(dur * fine_hz)
            tt = np.arange(n) * dt
            breath = float(rng.uniform(0.001, 0.004))
            x = pos + breath * np.sin(2 * np.pi * rng.uniform(0.15, 0.3) * tt)
            lean = np.column_stack([  # yaw and tilt of a few degrees, slowly
                np.radians(rng.uniform(2, 8)) * np.sin(2 * np.pi * 0.1 * tt),
                np.radians(rng.uniform(2, 8)) * np.sin(2 * np.pi * 0.07 * tt + 1.0)])
            add(x, lean)
        else:  # rest: nobody on it, still
            add(np.full(int(rng.uniform(2.0, 6.0) * fine_hz), pos))
    x = np.concatenate(x_parts)
    lean = np.concatenate(lean_parts)
    t_fine = np.arange(x.size) * dt
    # Holds by the definition: wherever the roller stays put (within the few mm of breathing)
    # for 3 s or more between strokes -- a hold on a tender spot or a rest, one after another
    # without travel counting as one.
    edges = [0.0] + [v for st in truth.strokes for v in (st.start, st.end)] + [t_now]
    for still_start, still_end in zip(edges[::2], edges[1::2], strict=True):
        if still_end - still_start >= 3.0:
            truth.holds.append(Interval(still_start, still_end))

    # Orientation of the sensor in the world (z up): lean (yaw about z, tilt about the travel
    # direction x), then the roll about the roller's long axis (world y), then the mounting.
    theta = x / radius_m  # rolling without slipping
    mount = _random_rotation(rng)
    r_world = (_rot(np.array([0.0, 0.0, 1.0]), lean[:, 0])
               @ _rot(np.array([1.0, 0.0, 0.0]), lean[:, 1])
               @ _rot(np.array([0.0, 1.0, 0.0]), theta) @ mount)
    r_dot = np.gradient(r_world, dt, axis=0)
    omega_skew = np.transpose(r_world, (0, 2, 1)) @ r_dot  # body-frame angular velocity
    gyro = np.column_stack([omega_skew[:, 2, 1], omega_skew[:, 0, 2], omega_skew[:, 1, 0]])

    # The sensor is glued to the core wall, lever_m from the roller's axis.
    lever_m = radius_m * 0.6
    offset_body = mount.T @ np.array([lever_m, 0.0, 0.0])  # in sensor axes
    centre = np.column_stack([x, np.zeros_like(x), np.full_like(x, radius_m)])
    pos_world = centre + np.einsum("nij,j->ni", r_world, offset_body)
    acc_world = np.gradient(np.gradient(pos_world, dt, axis=0), dt, axis=0)
    specific = acc_world + np.array([0.0, 0.0, G])
    accel = np.einsum("nji,nj->ni", r_world, specific)  # R^T f

    # Bias with warm-up drift, noise, quantisation.
    bias = rng.uniform(-0.3, 0.3, 3) + np.outer(t_fine / 60.0, rng.uniform(-0.01, 0.01, 3))
    gyro = gyro + bias + rng.normal(0, 0.003, gyro.shape)
    accel = accel + rng.normal(0, 0.05, accel.shape)
    gyro_lsb = np.radians(1000.0) / 32768
    accel_lsb = 4 * G / 32768
    gyro = np.clip(np.round(gyro / gyro_lsb), -32768, 32767) * gyro_lsb
    accel = np.clip(np.round(accel / accel_lsb), -32768, 32767) * accel_lsb

    # Sample at the host's rate with jitter and runs of dropped samples.
    period = 1.0 / rate_hz
    t_host = np.arange(0.0, t_fine[-1] - 2 * period, period)
    t_host = t_host + rng.uniform(0, 0.3 * period, t_host.size)
    keep = np.ones(t_host.size, dtype=bool)
    for start in rng.choice(t_host.size, size=t_host.size // 200, replace=False):
        keep[start:start + int(rng.integers(1, 4))] = False
    t_host = np.sort(t_host[keep])
    idx = np.minimum(np.round(t_host * fine_hz).astype(int), x.size - 1)
    samples = np.column_stack([accel[idx], gyro[idx]])
    return t_host + 1000.0, samples, _shift(truth, 1000.0)


def _shift(truth: Truth, by: float) -> Truth:
    def move(items: list[Interval]) -> list[Interval]:
        return [Interval(i.start + by, i.end + by, i.peak_speed_m_s) for i in items]
    return Truth(move(truth.strokes), move(truth.holds), move(truth.too_fast))
