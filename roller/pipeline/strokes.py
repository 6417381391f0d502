"""Strokes: legs of at least the minimum stroke distance (default 2 cm).

A stroke is continuous travel in one direction that ends at a reversal or a stop; the leg
tracker (:mod:`roller.pipeline.legs`) finds those runs, and this stage keeps the ones long
enough to be a pass along the muscle and turns them into :class:`~roller.pipeline.events.Stroke`
events.
Shorter legs are adjustments, breathing or noise.
"""

from __future__ import annotations

from dataclasses import dataclass

from roller.base.settings import setting
from roller.pipeline.events import Stroke
from roller.pipeline.legs import Leg


@dataclass(frozen=True)
class StrokeSettings:
    min_distance_m: float = setting(0.02, unit="m", minimum=0.002, maximum=1.0,
                                    doc="shortest travel in one direction that counts "
                                        "as a stroke")


class StrokeDetector:
    """Legs in, :class:`Stroke` events out; counts them."""

    def __init__(self, settings: StrokeSettings | None = None) -> None:
        self.settings = settings or StrokeSettings()
        self.count = 0

    def update(self, legs: list[Leg]) -> list[Stroke]:
        out = []
        for leg in legs:
            if leg.distance_m < self.settings.min_distance_m:
                continue
            duration = max(leg.end - leg.start, 1e-9)
            out.append(Stroke(start=leg.start, end=leg.end, distance_m=leg.distance_m,
                              peak_speed_m_s=leg.peak_speed_m_s,
                              mean_speed_m_s=leg.distance_m / duration,
                              direction=leg.direction, emitted_at=leg.emitted_at))
        self.count += len(out)
        return out
