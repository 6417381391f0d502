"""The demo's person: lies still until a newcomer has had time to open the page, then does the
routine once -- slow rolling with one too-fast pass early on, a hold on each side, a pause to
change position -- and lies still after it.

The person cannot hear the coach, so nothing here follows the session: the person starts
rolling :data:`DEMO_START_DELAY_S` after the sensor opens (``roller demo`` prints it), and each
side's work is planned to meet the routine's default dose with a margin (the guidance: 30 s of
rolling, then a hold of 20 s; the rolling in the coach's change of position between steps does
not count). A side ends with its hold, so the coach's step is met while the person holds; the
last side's hold meets the routine's last dose, after which the person only lies still.
"""

from __future__ import annotations

import dataclasses

from firmware_bridge.simulator.person import person_scenario
from firmware_bridge.simulator.scenario import Scenario
from firmware_bridge.simulator.segments import HoldSegment, RestSegment, Segment, StrokeSegment
from firmware_bridge.simulator.truth import time_above

DEMO_START_DELAY_S = 30.0
"""How long the demo's person lies still after the sensor opens [s]: time to open the page
and press Start (the session starts at the first strokes either way)."""

DEMO_SIDES = 7
"""Sides (steps) the demo's person works: the default routine's seven."""

AFTER_S = 24 * 3600.0
"""Lying still after the routine [s]: longer than any demo runs, so the person never starts
again (the simulated sensor repeats its scenario after the end)."""


def demo_scenario(*, seed: int = 0, start_delay_s: float = DEMO_START_DELAY_S,
                  sides: int = DEMO_SIDES, rolling_s: float = 45.0, hold_s: float = 26.0,
                  change_s: float = 5.0, too_fast_at_s: float = 12.0,
                  max_speed_m_s: float = 0.05) -> Scenario:
    """The demo's session: ``start_delay_s`` still, then ``sides`` times about ``rolling_s``
    of slow strokes (2.5-3.5 cm/s over 8 cm), a hold of ``hold_s``, a short pass off the
    spot and still again, ``change_s`` in all, to change position (the rolling after it starts
    in the coach's change of position, which ends about 8 s after the hold's 20 s); one
    too-fast stroke (about twice ``max_speed_m_s``) ``too_fast_at_s`` into the first side;
    then :data:`AFTER_S` still. The sensor (mounting, offsets, noise) is the seeded plausible
    person's of :func:`person_scenario`."""
    segments: list[Segment] = [RestSegment(start_delay_s)]
    direction = 1.0
    for side in range(sides):
        rolled = 0.0
        fast_done = side > 0
        n = 0
        while rolled < rolling_s:
            if not fast_done and rolled >= too_fast_at_s:
                stroke = StrokeSegment(direction * 0.12, 2.0 * max_speed_m_s, 0.25)
                while time_above(stroke, max_speed_m_s) < 0.6:  # clearly an alert
                    stroke = dataclasses.replace(stroke, distance_m=stroke.distance_m * 1.2)
                fast_done = True
            else:
                speed = (0.5 + 0.2 * ((n * 7 + side * 3) % 5) / 4) * max_speed_m_s
                stroke = StrokeSegment(direction * 0.08, speed, 0.4)
            segments.append(stroke)
            rolled += stroke.duration_s
            direction = -direction
            n += 1
        segments.append(HoldSegment(hold_s))
        if side < sides - 1:
            # off the spot (a pass of a few centimetres ends the hold), then a moment still
            # while changing position: shorter than a hold, so not taken for one
            off = StrokeSegment(-direction * 0.04, 0.02, 0.4)
            segments += [RestSegment(0.5), off,
                         RestSegment(max(change_s - 0.5 - off.duration_s, 0.5))]
    segments.append(RestSegment(AFTER_S))
    sensor = person_scenario(10.0, seed=seed)
    return dataclasses.replace(sensor, segments=tuple(segments))
