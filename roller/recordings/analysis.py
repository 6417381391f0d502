"""Offline analysis: a recording streamed through the live pipeline, summed up.

The recording is read in blocks and fed to the same :class:`roller.pipeline.Pipeline` the
service runs, so memory stays flat however long the file is and the results are what the
service would have reported live. ``roller analyze`` prints the :class:`RecordingReport`.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from roller.pipeline import Pipeline, PipelineSettings
from roller.recordings import units as units_mod
from roller.recordings.phone_export import find_export, read_export
from roller.recordings.recording import read_chunks
from roller.recordings.summary import RecordingReport


def analyze(path: str, settings: PipelineSettings, *, debug: bool = False,
            units: units_mod.Units | None = None) -> RecordingReport:
    """Stream ``path`` through a pipeline; return the :class:`RecordingReport`.

    The file is read in chunks by :func:`roller.recordings.recording.read_chunks`, so memory stays
    flat
    whatever the recording's length; a malformed file raises the
    :class:`~roller.base.errors.RecordingError` naming file, line and problem. A phone-app export
    (:mod:`roller.recordings.phone_export`) is read whole. ``units``: a
    :class:`roller.recordings.units.Units`,
    or None to check the data against SI units (:class:`~roller.recordings.units.UnitsError` if
    they do
    not fit)."""
    export = find_export(path)
    chunks = [read_export(export)] if export is not None else read_chunks(path)
    if export is not None and units is None:  # the app writes (and names) its units
        units = units_mod.Units()
    return analyze_chunks(units_mod.checked(chunks, path, units), settings, debug=debug)


def analyze_chunks(chunks: Iterable[tuple[np.ndarray, np.ndarray]], settings: PipelineSettings,
                   *, debug: bool = False) -> RecordingReport:
    """Stream ``(t, samples)`` blocks through a pipeline, as the live service would; return the
    :class:`RecordingReport` with the calibration the pipeline ended with (and, with ``debug``,
    its internal state)."""
    pipeline = Pipeline(settings)
    summary = RecordingReport(max_speed_m_s=settings.max_speed_m_s, radius_m=settings.radius_m,
                             body=settings.body)
    for t, samples in chunks:
        summary.saw_samples(float(t[0]), float(t[-1]), int(t.size))
        summary.add(pipeline.update(t, samples))
    summary.add(pipeline.finish())
    cal = pipeline.calibration
    summary.calibration = {"gyro_bias_rad_s": [round(b, 6) for b in cal.gyro_bias_rad_s],
                           "roll_axis": None if cal.roll_axis is None
                           else [round(a, 5) for a in cal.roll_axis],
                           "confident": cal.confident}
    if debug:
        summary.pipeline_state = pipeline.internal_state()
    summary.clipped_s = pipeline.clipping.clipped_frames * pipeline.frame_s
    return summary


def warnings_for(summary: RecordingReport) -> list[str]:
    """What the reader must know about the numbers (clipping)."""
    clipped_s = getattr(summary, "clipped_s", 0.0)
    if clipped_s <= 0:
        return []
    return [f"the gyro (or accelerometer) was at its full scale for {clipped_s:.1f} s: speeds "
            "there are lower bounds and strokes there may be shorter than they were; use a "
            "larger gyro range (e.g. +-1000 deg/s)"]
