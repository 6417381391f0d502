"""The streaming pipeline: samples in, events out, live and offline alike.

Flow (each stage a small object with its own settings and ``update``)::

    samples -> Framer -> frames (40 ms) -> ClipDetector (full-scale frames teach nothing)
                                         -+-> BiasTracker      (gyro offset, from gravity)
                                         +-> RollAxisEstimator (which way the sensor sits)
                                         +-> SpeedEstimator -> velocity along the muscle
                                                -> LegTracker -> StrokeDetector -> Stroke
                                                              -> HoldDetector   -> HoldStarted, Hold
                                                -> TooFastDetector -> TooFastAlert, TooFast

The offset and axis estimates are refreshed once per *epoch* (two seconds of frames) and every
frame of an epoch is measured with the estimates from the end of the previous one, so results
depend only on the samples, never on how they were split into blocks. Until the estimates can be
trusted (the pipeline may start while someone is already rolling, with an unknown offset of up
to 20 deg/s and the sensor any way round), frames are kept back and then measured all at once
with the first trusted estimates: events from that start-up are late, never wrong. If nothing
trustworthy has come after ``max_warmup_s`` (say, a long first hold without a single stroke),
frames are measured an epoch late -- after the estimates have learnt from them -- until the
estimates can be trusted, so the first stroke is measured with the axis it reveals.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from roller.base.settings import setting
from roller.pipeline.bias import BiasSettings, BiasTracker
from roller.pipeline.calibration import Calibration
from roller.pipeline.clipping import ClipDetector, ClipSettings
from roller.pipeline.events import Event, LiveState, Phase
from roller.pipeline.frames import Framer, Frames, FrameSettings
from roller.pipeline.holds import HoldDetector, HoldSettings
from roller.pipeline.legs import LegSettings, LegTracker
from roller.pipeline.presence import PresenceDetector, live_phase
from roller.pipeline.roll_axis import RollAxisEstimator, RollAxisSettings
from roller.pipeline.settings import PipelineSettings
from roller.pipeline.speed import SpeedEstimator
from roller.pipeline.strokes import StrokeDetector, StrokeSettings
from roller.pipeline.too_fast import TooFastDetector, TooFastSettings

_TIME_FIELDS = ("start", "end", "emitted_at")
"""The time fields of the events [s]."""


@dataclass(frozen=True)
class StartupSettings:
    epoch_s: float = setting(2.0, unit="s", minimum=0.1,
                             doc="how often the offset and axis estimates are refreshed")
    max_warmup_s: float = setting(60.0, unit="s", minimum=0.0,
                                  doc="longest start-up before measuring with what is known")
    min_plateau_free_s: float = setting(
        0.3, unit="s", minimum=0.0,
        doc="during start-up the offset is learnt without the frames of steady fast turning "
            "(which may be a clipping gyro) if that leaves this much evidence")


class Pipeline:
    """Roller (or ball) IMU samples in, :mod:`roller.pipeline.events` out. See the module
    docstring."""

    def __init__(self, settings: PipelineSettings | None = None, *,
                 frame_settings: FrameSettings | None = None,
                 bias_settings: BiasSettings | None = None,
                 axis_settings: RollAxisSettings | None = None,
                 leg_settings: LegSettings | None = None,
                 startup: StartupSettings | None = None,
                 calibration: Calibration | None = None) -> None:
        """``calibration``: a saved one (``roller calibrate``, or the last session's) to start
        from. Unlike ``settings.roll_axis`` it does not pin anything: its offset is tracked
        and its axis replaced once the data gives a confident one of its own."""
        self.settings = s = settings or PipelineSettings()
        self.framer = Framer(frame_settings)
        self.frame_s = self.framer.settings.frame_s
        self.clipping = ClipDetector(ClipSettings(
            gyro_full_scale_rad_s=s.gyro_full_scale_rad_s,
            accel_full_scale_m_s2=s.accel_full_scale_m_s2), frame_s=self.frame_s)
        self.startup = startup or StartupSettings()
        self.epoch_frames = max(1, round(self.startup.epoch_s / self.frame_s))
        self.epoch_s = self.epoch_frames * self.frame_s
        initial_bias = s.gyro_bias_rad_s
        seed_axis = None
        if calibration is not None and calibration.confident:
            if initial_bias is None:
                initial_bias = list(calibration.gyro_bias_rad_s)
            if s.roll_axis is None and s.body == "roller" and calibration.roll_axis is not None:
                seed_axis = np.asarray(calibration.roll_axis, float)
        calibrated = initial_bias is not None
        self._bias_given = calibrated
        self.bias = BiasTracker(bias_settings, frame_s=self.frame_s,
                                initial_rad_s=None if initial_bias is None
                                else np.asarray(initial_bias, float),
                                calibrated=calibrated)
        if axis_settings is None:
            axis_settings = RollAxisSettings(memory_s=120.0 if s.body == "roller" else 8.0)
        pinned = None if s.roll_axis is None else np.asarray(s.roll_axis, float)
        self.axis = RollAxisEstimator(axis_settings, pinned=pinned, seed=seed_axis)
        self.speed = SpeedEstimator(radius_m=s.radius_m, body=s.body)
        self._leg_settings = leg_settings or LegSettings(big_travel_m=s.hold_max_travel_m)
        self.legs: LegTracker | None = None
        self.strokes = StrokeDetector(StrokeSettings(min_distance_m=s.stroke_min_distance_m))
        self.holds = HoldDetector(HoldSettings(min_duration_s=s.hold_min_duration_s))
        self.presence = PresenceDetector(frame_s=self.frame_s)
        self.too_fast = TooFastDetector(TooFastSettings(
            limit_m_s=s.max_speed_m_s, min_duration_s=s.too_fast_min_duration_s))
        self._calibrated_start = calibrated and (pinned is not None or seed_axis is not None)
        # "warm": start-up, frames kept back and the offset relearnt from all of them;
        # "lagged": estimates still not trusted after max_warmup_s, so each epoch is measured
        # only once the estimates have learnt from it; "live": frames measured as they come.
        self._mode = "live" if self._calibrated_start else "warm"
        self._buffer: list[Frames] = []     # kept back during start-up
        self._epoch: list[Frames] = []      # the current epoch's frames, to learn from
        self._origin: float | None = None
        """Time of the first sample [s]: every stage works on times since it (see
        :meth:`_relative`), events and the live state are given back on the samples' clock."""
        self._last_t = math.nan
        self._last_v = 0.0
        self._last_g = np.array([0.0, 0.0, 1.0])
        self._frames_seen = 0

    # -- streaming -------------------------------------------------------------------------

    def update(self, t: np.ndarray, samples: np.ndarray) -> list[Event]:
        """Feed a block of samples (any size >= 0): ``t`` (N,) [s] increasing, ``samples``
        (N, 6) accel [m/s^2] then gyro [rad/s], sensor axes. Returns the events now known."""
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        if t.size:
            if self._origin is None:
                self._origin = float(t[0])
            t = self._relative(t)
            self._last_t = float(t[-1])
        return self._absolute(self._process(self.framer.update(t, samples)))

    def finish(self) -> list[Event]:
        """End of the recording (or session): close what is still open."""
        events = self._process(self.framer.finish())
        if self._mode != "live":
            # learn from the last, partial epoch too before measuring what was kept back
            self._learn_held_back(Frames.concat(self._epoch))
            self._epoch = []
            events += self._release(self._last_t)
        t_end = self._last_t
        if self.legs is not None and not math.isnan(t_end):
            events += self.strokes.update(self.legs.finish(t_end))
        if not math.isnan(t_end):
            events += self.holds.finish(t_end)
            events += self.too_fast.finish(t_end)
        return self._absolute(events)

    TIME_QUANTUM_S = 1e-6
    """Resolution of the times the stages work on: the recording format's microsecond."""

    def _relative(self, t: np.ndarray) -> np.ndarray:
        """Times since the first sample, on a microsecond grid [s].

        Thresholds on absolute times made results depend on where the clock started (a live
        service's monotonic clock, a phone's Unix time): the same samples 1e9 s later have
        an ulp of 1.2e-7 s, so a frame edge or a 3.0 s hold compared a hair differently. Times
        since the first sample, rounded to the microsecond, are the same numbers whatever
        constant was added to the clock (its rounding error stays far under half a
        microsecond up to 1e9 s), so every stage decides identically."""
        assert self._origin is not None
        return np.rint((t - self._origin) / self.TIME_QUANTUM_S) * self.TIME_QUANTUM_S

    def _absolute(self, events: list[Event]) -> list[Event]:
        """Events with their times back on the samples' clock."""
        if not events or not self._origin:
            return events
        o = self._origin
        return [dataclasses.replace(ev, **{name: getattr(ev, name) + o
                                           for name in _TIME_FIELDS if hasattr(ev, name)})
                for ev in events]

    def _process(self, frames: Frames) -> list[Event]:
        n = len(frames)
        if n == 0:
            return []
        frames = self.clipping.update(frames)
        if self.legs is None:
            self.legs = LegTracker(self._leg_settings,
                                   start_t=float(frames.t_end[0] - frames.duration_s[0]))
        events: list[Event] = []
        e = self.epoch_frames
        lo = 0
        while lo < n and self._mode != "live":
            # start-up: keep frames back, one epoch at a time
            ends = np.flatnonzero((frames.index[lo:] + 1) % e == 0)
            hi = lo + int(ends[0]) + 1 if ends.size else n
            chunk = frames.select(lo, hi)
            self._buffer.append(chunk)
            self._epoch.append(chunk)
            self._frames_seen += hi - lo
            lo = hi
            if (int(chunk.index[-1]) + 1) % e:
                break
            self._learn_held_back(Frames.concat(self._epoch))
            self._epoch = []
            now = float(chunk.known_at[-1])
            if self._confident():
                self._mode = "live"
                events += self._release(now)
            elif self._mode == "lagged" or \
                    self._frames_seen * self.frame_s >= self.startup.max_warmup_s:
                self._mode = "lagged"
                events += self._release(now)
        if lo < n:
            events += self._process_live(frames.select(lo, n))
        return events

    def _process_live(self, frames: Frames) -> list[Event]:
        """Measure frames as they come; learn from each epoch as it completes. Each frame is
        measured with the estimates from the end of the epoch before its own."""
        e = self.epoch_frames
        ends = np.flatnonzero((frames.index + 1) % e == 0) + 1
        completed = []
        start = 0
        for end in ends.tolist():
            completed.append(Frames.concat([*self._epoch, frames.select(start, end)]))
            self._epoch = []
            start = end
        if start < len(frames):
            self._epoch.append(frames.select(start, len(frames)))
        self._frames_seen += len(frames)
        bias = self.bias.bias.copy()
        axis = np.zeros(3) if self.axis.axis is None else self.axis.axis.copy()
        if not completed:
            return self._detect(frames, bias, axis)
        biases = self.bias.learn_epochs([self.clipping.for_bias(c) for c in completed],
                                        self.epoch_s)
        self.clipping.forget_before(int(completed[-1].index[-1]) - 2 * self.epoch_frames)
        completed = [self.clipping.mark(c) for c in completed]
        axes = self.axis.learn_epochs(completed, biases, self.epoch_s)
        acc = completed[-1].accel_m_s2[-1]
        self._last_g = acc / (np.linalg.norm(acc) or 1.0)
        which = np.searchsorted(ends, np.arange(len(frames)), side="right")
        bias_f = np.vstack([bias, *biases])[which]
        axis_f = np.vstack([axis, *(np.zeros(3) if a is None else a for a in axes)])[which]
        return self._detect(frames, bias_f, axis_f)

    def _learn_held_back(self, frames: Frames) -> None:
        """Learn from an epoch during start-up: the offset is relearnt from every frame kept
        back, around its newest value (see BiasTracker.relearn)."""
        if len(frames) == 0:
            return
        acc = frames.accel_m_s2[-1]
        self._last_g = acc / (np.linalg.norm(acc) or 1.0)
        if self._mode == "warm":
            held = Frames.concat(self._buffer)
            self.bias.relearn(self.clipping.for_bias(held))
            if self.bias.pairs_used * self.frame_s < self.startup.min_plateau_free_s:
                # the session began with steady rolling: too little else to learn from yet
                self.bias.relearn(self.clipping.mark(held))
            biases = [self.bias.bias.copy()]
        else:
            biases = self.bias.learn_epochs([self.clipping.for_bias(frames)], self.epoch_s)
        frames = self.clipping.mark(frames)
        self.axis.learn_epochs([frames], biases, self.epoch_s)

    def _confident(self) -> bool:
        """Are the offset and axis estimates good enough to measure with?"""
        need = self.bias.settings.confident_s
        if self.settings.body == "ball":
            return self.bias.min_evidence_s(self._last_g) >= need
        if self.axis.axis is None or not self.axis.confident:
            return False
        return self._bias_given or self.bias.evidence_s(self.axis.axis) >= need

    def _release(self, now: float) -> list[Event]:
        """Measure the frames kept back, with the estimates now known. ``now`` [s, relative]:
        the time of the sample that let them be measured. Their events became known only
        then, whatever frames they lie in: ``emitted_at`` says so (a coach or a subscriber
        measuring latency must see the start-up's wait)."""
        frames = Frames.concat(self._buffer)
        self._buffer = []
        if not len(frames):
            return []
        axis = np.zeros(3) if self.axis.axis is None else self.axis.axis
        events = self._detect(frames, self.bias.bias, axis)
        return [ev if ev.emitted_at >= now  # type: ignore[attr-defined]
                else dataclasses.replace(ev, emitted_at=now) for ev in events]

    def _detect(self, frames: Frames, bias: np.ndarray, axis: np.ndarray) -> list[Event]:
        """Run the detectors over frames, measured with ``bias`` and ``axis`` (one for all, or
        one row per frame)."""
        assert self.legs is not None
        v = self.speed.velocity(frames, bias, axis)
        dur = np.maximum(frames.duration_s, 1e-9)[:, None]
        self.presence.update(frames.rotation_rad / dur - bias)
        t_end = frames.t_end.tolist()
        known = frames.known_at.tolist()
        legs, quiet_until, big, still = self.legs.update(t_end, known, v.tolist(),
                                                         frames.duration_s.tolist())
        events: list[Event] = list(self.strokes.update(legs))
        events += self.holds.update(known, quiet_until, big, still)
        speed = np.abs(v)
        t_mid = frames.t_end - frames.duration_s * 0.5
        if self.too_fast.active or float(speed.max()) > self.too_fast.settings.limit_m_s:
            events += self.too_fast.update(t_mid.tolist(), known, speed.tolist())
        else:
            self.too_fast.skip(float(t_mid[-1]), float(speed[-1]))
        self._last_v = float(v[-1])
        if len(events) > 1:
            events.sort(key=lambda ev: ev.emitted_at)  # type: ignore[attr-defined]
        return events

    # -- what it knows now -----------------------------------------------------------------

    @property
    def live(self) -> LiveState:
        """What is happening now (refreshed by every :meth:`update`)."""
        hold_time = 0.0
        legs = self.legs
        # A still roller with nobody on it is a hold by the definition (and the hold events
        # say so), but what the person is doing is nothing: idle.
        attended = self.presence.attended if self.holds.holding else True
        last_end = None if legs is None else legs.last_leg_end
        phase: Phase = live_phase(  # type: ignore[assignment]
            holding=self.holds.holding, attended=attended,
            rolling=legs is not None and legs.rolling,
            moving=legs is not None and legs.moving,
            since_last_leg_s=None if last_end is None or legs is None else legs.now - last_end)
        if phase == "holding":
            hold_time = max(0.0, self._last_t - self.holds.start)
        now = 0.0 if math.isnan(self._last_t) or self._origin is None \
            else self._origin + self._last_t
        return LiveState(t=now,
                         speed_m_s=abs(self._last_v), velocity_m_s=self._last_v, phase=phase,
                         stroke_count=self.strokes.count, hold_time_s=hold_time,
                         too_fast=self.too_fast.alerting, calibrated=self._mode == "live",
                         speed_clipped=self.clipping.last_clipped)

    @property
    def calibration(self) -> Calibration:
        """The current gyro offset and roll axis (sensor axes), and whether they are trusted."""
        axis = None
        if self.settings.body == "roller" and self.axis.axis is not None:
            axis = tuple(float(a) for a in self.axis.axis)
        return Calibration(gyro_bias_rad_s=tuple(float(b) for b in self.bias.bias),
                           roll_axis=axis, confident=self._mode == "live")

    def internal_state(self) -> dict[str, Any]:
        """Why it decided: every stage's state, for debugging and ``--debug`` output."""
        return {"mode": self._mode, "frames_seen": self._frames_seen,
                "frames_waiting": sum(len(f) for f in self._buffer),
                "bias": self.bias.state(), "axis": self.axis.state(),
                "presence": self.presence.state(), "clipping": self.clipping.state(),
                "bias_evidence_along_axis_s": None if self.axis.axis is None
                else self.bias.evidence_s(self.axis.axis),
                "legs": None if self.legs is None else self.legs.state(),
                "holds": self.holds.state(), "too_fast": self.too_fast.state(),
                "strokes": self.strokes.count}
