"""A simulated foam roller (or massage ball) with an IMU inside: a physical motion model.

What the person does is a :class:`Scenario`: a sequence of segments (:class:`StrokeSegment`,
:class:`HoldSegment`, :class:`RestSegment`, :class:`TwistSegment`). From it,
:class:`SimulatedRoller` derives the body's true motion and what an IMU glued inside reads.

The physics (see ``guidance.md``):

* The roller lies on the floor with its long axis horizontal and rolls without slipping. If the
  contact point travels ``s`` metres along the muscle, the roller has turned ``s / radius``
  radians about its long axis, so speed along the muscle = roll rate x radius.
* While it rolls, gravity (as seen by the sensor) rotates about the long axis at exactly the roll
  rate; the accelerometer also sees the small linear acceleration of the roller's centre.
* Leaning during a hold tilts the roller's axis out of the horizontal by a few degrees and yaws
  it about the vertical: rotation about axes *other* than the roll axis, which moves nothing.
  Breathing rocks the roller a few millimetres back and forth.
* A ball rolls about a horizontal axis perpendicular to its path; spinning it about the vertical
  (:class:`TwistSegment`) moves nothing.
* The sensor is mounted any way round (``mounting_rotvec``), its gyro has a zero-rate offset of
  up to tens of deg/s that drifts as the chip warms, and both sensors are noisy.

World frame: X along the muscle (the direction of travel), Y horizontal, Z up. The roller's own
frame has x along its long axis. Orientation of the body in the world:
``R = Rz(yaw) @ Rx(tilt) @ Ry(roll_angle) @ B`` where ``B`` is the body's resting orientation
(for a roller: long axis along world Y). Everything here is analytic in time, so :meth:`imu`
can be sampled at any times, in any order of calls, by a recorder or an emulated chip alike.

``python -m roller.recordings.simulate OUT.csv --seconds 300`` writes a session as a recording file
with its
ground truth (``OUT.truth.json``): the file format is the application's, so that lives there.

One module per concept: ``segments`` (what the person does, piece by piece), ``scenario`` (a
session), ``rotations``, ``simulated_roller`` (the body's motion and the IMU's readings),
``truth`` (what really happened), ``person`` (a plausible person's session) and
``demo_person`` (the demo's person, who waits, does the routine once and lies still).
"""

from __future__ import annotations

from firmware_bridge.physics import STANDARD_GRAVITY_M_S2 as GRAVITY_M_S2
from firmware_bridge.simulator.demo_person import DEMO_START_DELAY_S, demo_scenario
from firmware_bridge.simulator.person import person_scenario
from firmware_bridge.simulator.rotations import DEG, random_rotvec, rotation_matrix
from firmware_bridge.simulator.scenario import Scenario
from firmware_bridge.simulator.segments import (
    HoldSegment,
    RestSegment,
    Segment,
    StrokeSegment,
    TwistSegment,
)
from firmware_bridge.simulator.simulated_roller import SimulatedRoller
from firmware_bridge.simulator.truth import GroundTruth, TruthHold, TruthStroke, TruthTooFast

__all__ = [
    "DEG", "DEMO_START_DELAY_S", "GRAVITY_M_S2", "GroundTruth", "HoldSegment", "RestSegment",
    "Scenario", "Segment",
    "SimulatedRoller", "StrokeSegment", "TruthHold", "TruthStroke", "TruthTooFast",
    "TwistSegment", "demo_scenario", "person_scenario", "random_rotvec", "rotation_matrix",
]
