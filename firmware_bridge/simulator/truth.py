"""Ground truth: the strokes, holds and too-fast excursions that really happened."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from firmware_bridge.simulator.segments import StrokeSegment


@dataclass(frozen=True)
class TruthStroke:
    start: float
    end: float
    distance_m: float
    peak_speed_m_s: float
    mean_speed_m_s: float
    direction: int
    """+1 when travelling along world +X."""


@dataclass(frozen=True)
class TruthHold:
    start: float
    end: float


@dataclass(frozen=True)
class TruthTooFast:
    start: float
    end: float
    peak_speed_m_s: float


@dataclass(frozen=True)
class GroundTruth:
    """What really happened, by the same definitions the pipeline uses."""

    strokes: tuple[TruthStroke, ...]
    holds: tuple[TruthHold, ...]
    too_fast: tuple[TruthTooFast, ...]
    max_speed_m_s: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def excursions(t: np.ndarray, speed: np.ndarray, limit: float, min_s: float,
                ) -> list[TruthTooFast]:
    """Runs of ``speed`` above ``limit`` lasting ``min_s`` or more, with interpolated
    crossings (``speed`` is sampled finely at times ``t``)."""
    above = speed > limit
    if not above.any():
        return []
    edges = np.diff(above.astype(np.int8), prepend=0, append=0)
    out = []
    for lo, hi in zip(np.flatnonzero(edges == 1), np.flatnonzero(edges == -1), strict=True):
        start = float(t[lo]) if lo == 0 else _cross(t[lo - 1], speed[lo - 1], t[lo],
                                                     speed[lo], limit)
        end = float(t[hi - 1]) if hi == t.size else _cross(t[hi - 1], speed[hi - 1], t[hi],
                                                           speed[hi], limit)
        if end - start >= min_s:
            out.append(TruthTooFast(start, end, float(speed[lo:hi].max())))
    return out


def time_above(stroke: StrokeSegment, limit: float) -> float:
    """How long the stroke's speed stays above ``limit`` in one go, at most [s]."""
    grid = np.linspace(0.0, stroke.duration_s, max(3, int(stroke.duration_s * 2000)))
    runs = excursions(grid, np.abs(stroke.motion(grid)["v"]), limit, 0.0)
    return max((r.end - r.start for r in runs), default=0.0)


def _cross(t0: float, s0: float, t1: float, s1: float, level: float) -> float:
    return float(t0 + (level - s0) / (s1 - s0) * (t1 - t0))
