"""Clipping: frames in which the gyro or the accelerometer sat at its full scale.

A chip turned faster than its gyro range reads its full scale, not the true rate: the missing
rotation then looks like a gyro offset to :mod:`~roller.pipeline.bias` (gravity turns faster
than the gyro says) and like a different axis to :mod:`~roller.pipeline.roll_axis`, so pauses
stop looking still and stroke edges come late. Clipped frames therefore teach neither, and the
speed measured in them is marked as a lower bound
(:attr:`~roller.pipeline.events.LiveState.speed_clipped`).

Where the full scale is known (the driver's configured range; ``gyro_full_scale_rad_s``) a
frame is clipped when a channel's mean over the frame is within ``margin`` of it. Where it is
not (a recording), it is recognised from the data. A gyro channel at its full scale sits on a
*plateau*: a rate held within ``plateau_spread`` for ``plateau_s``, at the highest magnitude
seen on that channel in either sense. Until it is judged, the offset tracker does not learn
from such a plateau (a suspect; during start-up only if enough else is left to learn from). A
steady stroke makes plateaus too, so a plateau is only a clip when the accelerometer shows the
gyro missing rotation: gravity turned more than the gyro says. A gyro offset also makes the two
disagree, but one sense reads low by what the other reads high, while a clip reads low in both
and sits at the same magnitude in both senses. So the full scale is taken as known once two
plateaus in opposite senses sit at the same magnitude and read low by ``min_deficit`` on
average (and no rate on that channel has gone above that level). From then on that level is
the channel's full scale, and the plateaus that revealed it are marked too
(:meth:`ClipDetector.mark`, for the stages that learn from frames kept back). A learnt full
scale is dropped as soon as the channel reads more than it (a chip cannot read beyond its full
scale, so the plateaus were motion): the frames it alone had counted clipped are uncounted, so
no clipping is reported for unclipped data, and learning starts again. A configured full scale
is never dropped. Works on frames, so it does not depend on the block size.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from roller.base.settings import setting
from roller.pipeline.frames import Frames


@dataclass(frozen=True)
class ClipSettings:
    gyro_full_scale_rad_s: float | None = setting(
        None, unit="rad/s", minimum=0.1, maximum=100.0,
        doc="the gyro's full scale, if known (the live service takes the driver's range); a "
            "rate there is clipped. Unset: clipping is recognised from the data")
    accel_full_scale_m_s2: float | None = setting(
        None, unit="m/s^2", minimum=5.0, maximum=2000.0,
        doc="the accelerometer's full scale, if known; unset: recognised from the data")
    margin: float = setting(0.03, minimum=0.0, maximum=0.5,
                            doc="a channel within this fraction of its full scale is clipped")
    plateau_s: float = setting(0.5, unit="s", minimum=0.1,
                               doc="how long a rate must sit still to be a clip candidate")
    plateau_spread: float = setting(0.03, minimum=0.001, maximum=0.5,
                                    doc="how still: the plateau's spread over its level")
    min_plateau_rad_s: float = setting(0.3, unit="rad/s", minimum=0.0,
                                       doc="gyro plateaus below this are motion, not clipping")
    min_deficit: float = setting(0.02, minimum=0.0,
                                 doc="how much more gravity must turn than the gyro says, on "
                                     "average over a plateau in each sense")
    symmetry: float = setting(0.04, minimum=0.0, maximum=0.5,
                              doc="how close the two senses' plateau levels must be")


@dataclass
class _Run:
    """A gyro channel's current plateau."""

    sign: int
    first: int
    lo: float
    hi: float
    rates: list[np.ndarray]
    gravity: list[np.ndarray]
    durations: list[float]
    suspect: list | None = None


class ClipDetector:
    """Marks :attr:`Frames.clipped`; counts clipped frames."""

    def __init__(self, settings: ClipSettings | None = None, *, frame_s: float) -> None:
        self.settings = s = settings or ClipSettings()
        self.run_frames = max(2, round(s.plateau_s / frame_s))
        self.max_run_frames = 20 * self.run_frames
        self.level = np.full(6, np.inf)     # full scale per channel (accel x3, gyro x3)
        if s.accel_full_scale_m_s2 is not None:
            self.level[:3] = s.accel_full_scale_m_s2
        if s.gyro_full_scale_rad_s is not None:
            self.level[3:] = s.gyro_full_scale_rad_s
        self._known = np.isfinite(self.level)
        self._runs: list[_Run | None] = [None, None, None]
        self._highest = np.zeros(3)   # highest gyro rate seen per channel, either sense
        # per gyro channel and sense (+, -): the level and frames of a plateau that read low
        self._low: list[dict[int, tuple[float, int, int, float]]] = [{}, {}, {}]
        self.clipped_frames = 0
        self.last_clipped = False
        self.learnt = np.zeros(6, dtype=bool)
        self.retro: list[list[int]] = []
        """Frame index ranges found clipped only once their plateaus were recognised (first,
        last, the frame from which that is known, the frame from which it no longer holds
        because the full scale was dropped, the gyro channel)."""
        self._sole = np.zeros(3, dtype=np.int64)
        """Frames counted clipped by each gyro channel's learnt full scale alone."""
        self.dropped = 0
        """Learnt full scales dropped because the channel read more."""
        self.suspect: list[list] = []
        """Plateaus (clip or not; first frame, frame from which it is known, last frame or None
        while it lasts): the gyro offset is not learnt from them, since whether they read low is
        only known once they end."""

    def update(self, frames: Frames) -> Frames:
        n = len(frames)
        if n == 0:
            return frames
        dur = np.where(frames.duration_s > 0, frames.duration_s, 1.0)
        rates = frames.rotation_rad / dur[:, None]
        values = np.abs(np.concatenate([frames.accel_m_s2, rates], axis=1))
        margin = self.settings.margin
        by_channel = values >= self.level * (1.0 - margin)
        start = np.zeros(3, dtype=np.int64)     # frames of this block each channel follows from
        for k in range(3):
            if self.learnt[3 + k]:
                over = np.flatnonzero(values[:, 3 + k] > self.level[3 + k] * (1.0 + margin))
                if over.size:
                    i = int(over[0])
                    self._count_sole(k, by_channel[:i])
                    self._drop(k, int(frames.index[i]))
                    by_channel[i:, 3 + k] = False
                    start[k] = i
        floor = self.settings.min_plateau_rad_s
        for k in range(3):
            if not self._known[3 + k]:
                mags = values[:, 3 + k]
                candidates = np.flatnonzero(mags >= floor)
                i = int(start[k])
                while i < n:
                    if self._runs[k] is None:
                        # no plateau under way: frames below the floor only raise the highest
                        # rate seen (what _follow would do with each), so skip them at once
                        j = int(candidates[np.searchsorted(candidates, i)]) \
                            if candidates.size and candidates[-1] >= i else n
                        if j > i:
                            self._highest[k] = max(self._highest[k], float(mags[i:j].max()))
                            i = j
                            continue
                    self._follow(k, int(frames.index[i]), rates[i], frames.accel_m_s2[i],
                                 float(dur[i]))
                    i += 1
                    if self.learnt[3 + k]:
                        i -= 1
                        # known from the next frame on (so blocks do not matter)
                        self._known[3 + k] = True
                        later = values[i + 1:, 3 + k]
                        by_channel[i + 1:, 3 + k] = later >= self.level[3 + k] * (1 - margin)
                        self._count_sole(k, by_channel[i + 1:])
                        break
            elif self.learnt[3 + k]:
                self._count_sole(k, by_channel[start[k]:])
        clipped = by_channel.any(axis=1)
        self.clipped_frames += int(clipped.sum())
        self.last_clipped = bool(clipped[-1])
        return replace(frames, clipped=clipped)

    def _count_sole(self, k: int, by_channel: np.ndarray) -> None:
        """Count the frames that gyro channel ``k``'s learnt full scale alone marks."""
        if by_channel.size:
            others = np.delete(by_channel, 3 + k, axis=1).any(axis=1)
            self._sole[k] += int((by_channel[:, 3 + k] & ~others).sum())

    def _drop(self, k: int, index: int) -> None:
        """Gyro channel ``k`` read more than its learnt full scale at frame ``index``: that
        level was never its full scale. Uncount what it alone marked; learn afresh."""
        self.clipped_frames -= int(self._sole[k])
        self._sole[k] = 0
        self.level[3 + k] = np.inf
        self.learnt[3 + k] = False
        self._known[3 + k] = False
        self._low[k] = {}
        self._runs[k] = None
        self.dropped += 1
        for entry in self.retro:
            if entry[4] == k and entry[3] > index:
                entry[3] = index

    def _follow(self, k: int, index: int, w: np.ndarray, acc: np.ndarray, dt: float) -> None:
        s = self.settings
        x = float(w[k])
        sign = 1 if x > 0 else -1
        run = self._runs[k]
        mag = abs(x)
        if run is not None and run.sign == sign and len(run.rates) < self.max_run_frames and \
                min(run.lo, mag) >= (1 - s.plateau_spread) * max(run.hi, mag):
            run.lo, run.hi = min(run.lo, mag), max(run.hi, mag)
            run.rates.append(w)
            run.gravity.append(acc)
            run.durations.append(dt)
            if len(run.rates) == self.run_frames and \
                    run.hi >= (1 - s.plateau_spread) * self._highest[k]:
                # at the highest rate seen either way, as a clip is: suspect. Known from frame
                # ``index`` on; its end is filled in when it ends
                self.suspect.append([run.first, index, None])
                run.suspect = self.suspect[-1]
            return
        self._highest[k] = max(self._highest[k], mag)
        if run is not None:
            if run.suspect is not None:
                run.suspect[2] = index - 1
            self._judge(k, run, index - 1)
        self._runs[k] = _Run(sign, index, mag, mag, [w], [acc], [dt]) \
            if mag >= s.min_plateau_rad_s else None

    def _judge(self, k: int, run: _Run, last: int) -> None:
        """A plateau has ended: did the gyro miss rotation during it?"""
        s = self.settings
        if len(run.rates) < self.run_frames:
            return
        w = np.array(run.rates)
        d = np.array(run.durations)
        u = w.sum(axis=0)
        u /= np.linalg.norm(u) or 1.0
        gyro_angle = float((w @ u) @ d)
        g = np.array(run.gravity)
        g = g - np.outer(g @ u, u)           # gravity in the plane the rotation turns it in
        e1 = g[0] / (np.linalg.norm(g[0]) or 1.0)
        e2 = np.cross(u, e1)
        phi = np.unwrap(np.arctan2(g @ e2, g @ e1))
        # seen from the sensor gravity turns the other way: -phi is the sensor's rotation
        gravity_angle = -float(phi[-1] - phi[0]) * len(d) / max(len(d) - 1, 1)
        deficit = abs(gravity_angle) / max(abs(gyro_angle), 1e-9) - 1.0
        level = 0.5 * (run.lo + run.hi)
        self._low[k][run.sign] = (level, run.first, last, deficit)
        other = self._low[k].get(-run.sign)
        if other is not None and abs(other[0] - level) <= s.symmetry * max(level, other[0]) \
                and 0.5 * (deficit + other[3]) >= s.min_deficit \
                and max(run.hi, other[0]) >= (1 - s.plateau_spread) * self._highest[k]:
            self.level[3 + k] = min(run.lo, other[0] * (1 - 0.5 * s.plateau_spread))
            self.learnt[3 + k] = True
            never = np.iinfo(np.int64).max
            self.retro += [[run.first, last, last + 1, never, k],
                           [other[1], other[2], last + 1, never, k]]

    def forget_before(self, index: int) -> None:
        """Drop the plateaus that ended before frame ``index`` (no stage will learn from
        those frames again)."""
        self.suspect = [x for x in self.suspect if x[2] is None or x[2] >= index]

    def for_bias(self, frames: Frames) -> Frames:
        """``frames`` as the offset tracker must see them: clipped, or on a plateau."""
        frames = self.mark(frames)
        if not self.suspect or len(frames) == 0:
            return frames
        # what was known when the last of these frames came, so that blocks do not matter
        extra = np.zeros(len(frames), dtype=bool)
        newest = int(frames.index[-1])
        for lo, known, hi in self.suspect:
            if known <= newest:
                extra |= (frames.index >= lo) & (hi is None or frames.index <= hi)
        return replace(frames, clipped=frames.clipped | extra) if extra.any() else frames

    def mark(self, frames: Frames) -> Frames:
        """``frames`` (seen before) with the frames of the plateaus that revealed a full scale
        marked, for the stages that learn from frames kept back."""
        if not self.retro or len(frames) == 0:
            return frames
        extra = np.zeros(len(frames), dtype=bool)
        newest = int(frames.index[-1])
        for lo, hi, known, dropped, _k in self.retro:
            if known <= newest < dropped:
                extra |= (frames.index >= lo) & (frames.index <= hi)
        if not extra.any():
            return frames
        return replace(frames, clipped=frames.clipped | extra)

    def state(self) -> dict:
        return {"clipped_frames": self.clipped_frames, "last_clipped": self.last_clipped,
                "full_scale": [None if not np.isfinite(v) else float(v) for v in self.level],
                "learnt_from_data": self.learnt.tolist(), "dropped": self.dropped}
