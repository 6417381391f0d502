"""The rolling-analysis pipeline: IMU samples in, strokes, holds and too-fast alerts out.

One concept per module, in the order the data flows:

* :mod:`~roller.pipeline.frames` -- irregular samples to fixed 40 ms frames;
* :mod:`~roller.pipeline.clipping` -- frames with the gyro or accelerometer at full scale;
* :mod:`~roller.pipeline.bias` -- the gyro offset, tracked with gravity as a reference;
* :mod:`~roller.pipeline.roll_axis` -- which way the sensor sits in the roller;
* :mod:`~roller.pipeline.speed` -- velocity along the muscle = roll rate x radius;
* :mod:`~roller.pipeline.legs` -- travel cut into runs in one direction;
* :mod:`~roller.pipeline.strokes`, :mod:`~roller.pipeline.holds`,
  :mod:`~roller.pipeline.too_fast` -- the events;
* :mod:`~roller.pipeline.presence` -- is someone on the roller;
* :mod:`~roller.pipeline.pipeline` -- :class:`Pipeline`, which composes them.

Offline analysis is a loop over :meth:`Pipeline.update` with blocks read from a recording; the
results do not depend on the block size.
"""

from roller.pipeline.pipeline import Pipeline, StartupSettings
from roller.pipeline.settings import PipelineSettings

__all__ = ["Pipeline", "PipelineSettings", "StartupSettings"]
