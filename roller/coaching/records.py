"""The records a coached session leaves: one :class:`StepRecord` per routine step, and the
one :class:`SessionSummary` the display shows, MQTT carries and the history stores.

A summary's totals are the session's own figures (:class:`roller.coaching.session.Session`:
active time, strokes, holds, time too fast, speeds), so the ``session`` topic, the coach's
summary and ``roller history`` give one number for each; the routine adds what only it knows:
the active time per side and per step (time changing position between steps counts for the
session, not for any step). Durations in s, speeds in m/s, dates in s since the Unix epoch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roller.coaching.session import EndReason
from roller.pipeline.speed_stats import SpeedStats

if TYPE_CHECKING:
    from roller.coaching.routine import Routine, RoutineStep
    from roller.coaching.session import Session

__all__ = ["SessionSummary", "StepRecord", "balance", "doses"]


@dataclass
class StepRecord:
    """What happened during one step of a session (durations in s, speeds in m/s)."""

    id: str
    title: str
    muscle: str
    side: str
    prop: str
    target_s: float
    active_s: float = 0.0
    rolling_s: float = 0.0
    holding_s: float = 0.0
    holds_s: list[float] = field(default_factory=list)
    too_fast_count: int = 0
    """Too-fast alerts in this step (an excursion's alert comes before its end)."""
    stats: SpeedStats = field(default_factory=SpeedStats)
    """Strokes and too-fast excursions (:mod:`roller.pipeline.speed_stats`)."""
    completed: bool = False
    skipped: bool = False
    dose_rolling_s: float = 30.0
    dose_holds: int = 1
    dose_rolling_only_s: float = 60.0
    hold_min_s: float = 20.0

    @classmethod
    def for_step(cls, step: RoutineStep) -> StepRecord:
        return cls(id=step.id, title=step.title, muscle=step.muscle, side=step.side,
                   prop=step.prop, target_s=step.target_active_s,
                   dose_rolling_s=step.dose_rolling_s, dose_holds=step.dose_holds,
                   dose_rolling_only_s=step.dose_rolling_only_s, hold_min_s=step.hold_min_s)

    def holds_done(self, current_hold_s: float = 0.0) -> int:
        """Holds of at least ``hold_min_s`` on this muscle and side, counting one under way
        (``current_hold_s`` [s], this step's own) once it has reached ``hold_min_s``."""
        done = sum(1 for h in self.holds_s if h >= self.hold_min_s - 1e-9)
        return done + (1 if current_hold_s >= self.hold_min_s else 0)

    def dose(self, current_hold_s: float = 0.0) -> dict[str, Any]:
        """The dose so far: rolling_s against rolling_target_s, holds against holds_target,
        ``progress`` 0..1 and ``met``."""
        holds = self.holds_done(current_hold_s)
        roll = min(self.rolling_s / self.dose_rolling_s, 1.0) if self.dose_rolling_s > 0 \
            else 1.0
        hold = min(holds / self.dose_holds, 1.0) if self.dose_holds > 0 else 1.0
        alone = self.dose_rolling_only_s > 0 and self.rolling_s >= self.dose_rolling_only_s
        met = (roll >= 1.0 and hold >= 1.0) or alone
        progress = 1.0 if met else (roll + hold * self.dose_holds) / (1 + self.dose_holds)
        return {"rolling_s": self.rolling_s, "rolling_target_s": self.dose_rolling_s,
                "rolling_only_s": self.dose_rolling_only_s, "holds": holds,
                "holds_target": self.dose_holds, "hold_min_s": self.hold_min_s,
                "progress": progress, "met": met}

    @property
    def strokes(self) -> int:
        return self.stats.strokes

    @property
    def left_s(self) -> float:
        """Active time still to go to the step's target [s] (0 once reached)."""
        return max(self.target_s - self.active_s, 0.0)

    def to_dict(self) -> dict[str, Any]:
        st = self.stats
        return {"id": self.id, "title": self.title, "muscle": self.muscle, "side": self.side,
                "prop": self.prop, "target_s": self.target_s, "active_s": self.active_s,
                "rolling_s": self.rolling_s, "holding_s": self.holding_s,
                "strokes": st.strokes, "holds_s": list(self.holds_s),
                "too_fast_count": self.too_fast_count, "too_fast_s": st.too_fast_s,
                "peak_speed_m_s": st.peak_speed_m_s, "completed": self.completed,
                "skipped": self.skipped, "mean_speed_m_s": st.mean_speed_m_s,
                "longest_hold_s": max(self.holds_s, default=0.0),
                "dose_met": self.completed or self.dose()["met"]}


@dataclass(frozen=True)
class SessionSummary:
    """A finished coached session, as shown at the end, published (the ``summary`` in
    ``coach`` and the ``routine`` in ``session``: :data:`roller.contract.messages.SUMMARY_FIELDS`)
    and stored in the history (one ``sessions`` row, :meth:`columns`)."""

    routine: str
    routine_title: str
    started_at: float
    """Wall-clock start [s since the Unix epoch]."""
    ended_at: float
    duration_s: float
    """From start to end on the loop's clock, pauses included [s]."""
    end_reason: EndReason
    active_s: float
    """The session's active time (:attr:`Session.active_s`) [s]."""
    sides_s: dict[str, float]
    """Active time in the routine's steps by side of the body: left, right, none [s]."""
    strokes: int
    holds: int
    longest_hold_s: float
    too_fast_count: int
    too_fast_s: float
    mean_speed_m_s: float | None
    """Time-weighted mean speed while rolling [m/s] (:mod:`roller.pipeline.speed_stats`; None
    without strokes)."""
    median_speed_m_s: float | None
    """Time-weighted median of the strokes' speeds [m/s]."""
    peak_speed_m_s: float | None
    steps: tuple[dict[str, Any], ...]
    advice: str = ""
    distance_m: float | None = None
    """Distance rolled along the muscle in the session [m] (the ``session`` topic's figure)."""

    @classmethod
    def of(cls, session: Session, routine: Routine, records: Sequence[StepRecord],
           sides_s: Mapping[str, float], *, advice: str = "") -> SessionSummary:
        """The summary of ``session`` (finished) with the routine's steps and sides."""
        st = session.stats
        started = session.started_unix_s or 0.0
        duration = max((session.ended_s or 0.0) - (session.started_s or 0.0), 0.0)
        return cls(
            routine=routine.name, routine_title=routine.title, started_at=started,
            ended_at=session.ended_unix_s if session.ended_unix_s is not None
            else started + duration,
            duration_s=duration, end_reason=session.end_reason or "stopped",
            active_s=session.active_s, sides_s=dict(sides_s), strokes=st.strokes,
            holds=session.holds, longest_hold_s=session.longest_hold_s,
            too_fast_count=st.too_fast_count, too_fast_s=st.too_fast_s,
            mean_speed_m_s=st.mean_speed_m_s, median_speed_m_s=st.median_speed_m_s,
            peak_speed_m_s=st.peak_or_none_m_s, steps=tuple(r.to_dict() for r in records),
            advice=advice, distance_m=st.distance_m)

    @property
    def left_share(self) -> float | None:
        """Left side's share of left+right active time (0.5 is balanced); None if neither."""
        return balance(self.sides_s)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["steps"] = list(self.steps)
        d["left_share"] = self.left_share
        d["doses"] = doses(self.steps)
        return d

    def columns(self) -> dict[str, Any]:
        """The history's ``sessions`` columns (without ``id`` and ``device_id``): the
        summary's fields, the sides as ``left_s``, ``right_s``, ``none_s``, no steps."""
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
             if f.name not in ("sides_s", "steps")}
        for side in ("left", "right", "none"):
            d[f"{side}_s"] = self.sides_s.get(side, 0.0)
        return d


def doses(steps: Sequence[Mapping[str, Any]], hold_min_s: float = 20.0,
          ) -> dict[str, dict[str, Any]]:
    """The dose per muscle and side from a summary's (or the history's) steps: for each
    muscle, per side ``rolling_s``, ``holding_s`` and ``holds`` (holds of at least
    ``hold_min_s``), and ``left_share`` of its rolling and holding time (None without both
    sides). Steps of the same muscle and side add up: a rest or a repeat keeps the dose."""
    out: dict[str, dict[str, Any]] = {}
    for st in steps:
        muscle = out.setdefault(str(st["muscle"]), {})
        side = muscle.setdefault(str(st["side"]), {"rolling_s": 0.0, "holding_s": 0.0,
                                                   "holds": 0})
        side["rolling_s"] += float(st.get("rolling_s") or 0.0)
        side["holding_s"] += float(st.get("holding_s") or 0.0)
        side["holds"] += sum(1 for h in st.get("holds_s") or () if h >= hold_min_s - 1e-9)
    for muscle in out.values():
        muscle["left_share"] = balance({k: v["rolling_s"] + v["holding_s"]
                                        for k, v in muscle.items() if isinstance(v, dict)})
    return out


def balance(sides_s: Mapping[str, float]) -> float | None:
    """Left share of the time spent on left and right (0.5 = even), None when both are zero."""
    left, right = sides_s.get("left", 0.0), sides_s.get("right", 0.0)
    total = left + right
    return None if total <= 0 else left / total
