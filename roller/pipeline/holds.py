"""Holds: the roller stays put (within about 1 cm) for at least 3 s.

A hold is the time between two legs that travel at least ``hold_max_travel_m`` (default 1.5
cm: deep breathing with a lean rocks the roller through legs of up to about 1 cm, and a stroke
needs 2 cm anyway):
it starts where the last such leg ended and ends where the next one started. Breathing (a few
millimetres of rocking) and leaning (rotation about axes other than the roll axis, which the
speed stage ignores) never make such a leg, so they neither end a hold nor count as strokes.

:class:`~roller.pipeline.events.HoldStarted` is sent as soon as the roller has stayed put for
``min_duration_s`` -- counting only time before any motion now in progress (and a small margin,
as a motion is dated back to where it really began), so that a hold announced live is confirmed
by the final :class:`~roller.pipeline.events.Hold`; in the rare case that the start of the motion
that
ends it is dated back further, the Hold still follows (a little under the minimum).
"""

from __future__ import annotations

from dataclasses import dataclass

from roller.base.settings import setting
from roller.pipeline.events import Event, Hold, HoldStarted


@dataclass(frozen=True)
class HoldSettings:
    min_duration_s: float = setting(3.0, unit="s", minimum=0.5, maximum=600.0,
                                    doc="how long the roller must stay put to be a hold")


class HoldDetector:
    def __init__(self, settings: HoldSettings | None = None) -> None:
        self.settings = settings or HoldSettings()
        self.holding = False
        self.start = 0.0
        self.count = 0

    def update(self, known_at: list[float], quiet_until: list[float], big: list[bool],
               still_since: list[float]) -> list[Event]:
        """Per frame: when known, until when the roller is sure to have stayed put (the start
        of any motion in progress), whether that motion has travelled far enough to end a
        hold, and when the last such one ended (see :mod:`roller.pipeline.legs`)."""
        min_s = self.settings.min_duration_s
        out: list[Event] = []
        holding, start = self.holding, self.start
        for ki, qi, bi, si in zip(known_at, quiet_until, big, still_since, strict=True):
            if bi:
                if holding:
                    out.append(Hold(start=start, end=qi, emitted_at=ki))
                    self.count += 1
                    holding = False
                continue
            if not holding and qi - si >= min_s:
                holding = True
                start = si
                out.append(HoldStarted(start=start, emitted_at=ki))
        self.holding, self.start = holding, start
        return out

    def finish(self, t_end: float) -> list[Event]:
        if not self.holding:
            return []
        self.holding = False
        self.count += 1
        return [Hold(start=self.start, end=t_end, emitted_at=t_end)]

    def state(self) -> dict:
        return {"holding": self.holding, "start": self.start if self.holding else None,
                "count": self.count}
