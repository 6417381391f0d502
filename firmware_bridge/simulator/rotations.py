"""Rotations of the simulated body: rotation vectors, random orientations, and the elementary
rotations about x and y applied to many angles at once."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

DEG = math.pi / 180.0


def rotation_matrix(rotvec: Sequence[float]) -> np.ndarray:
    """3x3 rotation matrix for a rotation vector [rad] (Rodrigues)."""
    r = np.asarray(rotvec, dtype=float)
    angle = float(np.linalg.norm(r))
    if angle < 1e-12:
        return np.eye(3)
    k = r / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + math.sin(angle) * kx + (1 - math.cos(angle)) * (kx @ kx)


def random_rotvec(rng: np.random.Generator) -> tuple[float, float, float]:
    """A uniformly random orientation, as a rotation vector [rad]."""
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    if q[0] < 0:
        q = -q
    angle = 2 * math.acos(min(1.0, q[0]))
    s = math.sqrt(max(1e-18, 1 - q[0] ** 2))
    axis = q[1:] / s
    return tuple(float(x) for x in axis * angle)  # type: ignore[return-value]


def rot_x(angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate each row of ``v`` (N,3) about x by ``angle`` (N,)."""
    c, s = np.cos(angle), np.sin(angle)
    return np.column_stack([v[:, 0], c * v[:, 1] - s * v[:, 2], s * v[:, 1] + c * v[:, 2]])


def rot_y(angle: np.ndarray, v: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.column_stack([c * v[:, 0] + s * v[:, 2], v[:, 1], -s * v[:, 0] + c * v[:, 2]])


# Resting orientation of a roller: its long axis (body x) along world Y, body y up, body z
# along world X. Columns are the world images of the body axes.
