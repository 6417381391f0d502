"""The chart of a recording: ``roller analyze FILE --plot OUT.png`` (or ``.svg``).

One picture a person reads at a glance: the speed along the muscle over time [cm/s] against
the go-slow band (green up to the target, pale up to the limit, red above it), each stroke as
a bar across its time at its mean speed, holds shaded blue with their length, too-fast passes
shaded red with a mark at their peak, and the session's figures in the title. The speed is
what the live pipeline measured, frame by frame (:class:`SpeedTrace` records it as the same
:class:`~roller.pipeline.Pipeline` the service runs analyses the file), so the chart and
``roller analyze``'s numbers cannot disagree.

matplotlib is an optional extra (``pip install 'roller-companion[plot]'``) so the Pi install
stays small; without it :func:`require_matplotlib` raises :class:`PlotError` saying how to get
it. In an SVG every part is a group with an id (``speed``, ``go-slow-band``, ``strokes``,
``holds``, ``too-fast``) and text stays text, so a program (and the tests) can find them.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from roller.base.errors import RollerError
from roller.pipeline import Pipeline, PipelineSettings
from roller.recordings import units as units_mod
from roller.recordings.phone_export import find_export, read_export
from roller.recordings.recording import read_chunks
from roller.recordings.summary import RecordingReport

FORMATS = (".png", ".svg")
MAX_POINTS = 3000
"""Points drawn of the speed line at most: a 30-minute recording has 45 000 frames; each
point drawn is the fastest of its bin, so no too-fast moment vanishes from the line."""

COLOURS = {"speed": "#1f3b73", "band": "#2e9e5b", "limit": "#c62828", "hold": "#3b82c4",
           "too_fast": "#d32f2f", "stroke": "#111111"}


class PlotError(RollerError, RuntimeError):
    """The chart cannot be drawn (matplotlib missing, an unknown file type)."""


def require_matplotlib() -> Any:
    """``matplotlib.pyplot`` on the Agg backend (no display needed), or :class:`PlotError`."""
    try:
        import matplotlib
    except ImportError:
        raise PlotError("--plot needs matplotlib, an optional extra: "
                        "pip install 'roller-companion[plot]' (in this checkout: "
                        ".venv/bin/pip install matplotlib)") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


@dataclass
class SpeedTrace:
    """Wraps a pipeline's speed estimator and keeps what it measured: frame mid-times [s] and
    speeds along the muscle [m/s]."""

    inner: Any
    t_s: list[np.ndarray] = field(default_factory=list)
    speed_m_s: list[np.ndarray] = field(default_factory=list)

    def velocity(self, frames: Any, bias: Any, axis: Any) -> np.ndarray:
        v = self.inner.velocity(frames, bias, axis)
        self.t_s.append(np.asarray(frames.t_end - frames.duration_s * 0.5, float))
        self.speed_m_s.append(np.abs(np.asarray(v, float)))
        return v

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        if not self.t_s:
            return np.zeros(0), np.zeros(0)
        t = np.concatenate(self.t_s)
        s = np.concatenate(self.speed_m_s)
        order = np.argsort(t, kind="stable")
        return t[order], s[order]

    def __getattr__(self, name: str) -> Any:  # radius_m, body, ...: the estimator's own
        return getattr(self.inner, name)


def trace_recording(path: str | os.PathLike[str], settings: PipelineSettings, *,
                    units: units_mod.Units | None = None,
                    ) -> tuple[RecordingReport, np.ndarray, np.ndarray]:
    """Analyse ``path`` as :func:`roller.recordings.analysis.analyze` does and keep the speed:
    ``(summary, t [s], speed [m/s])``."""
    export = find_export(path)
    chunks: Iterable[tuple[np.ndarray, np.ndarray]] = \
        [read_export(export)] if export is not None else read_chunks(path)
    pipeline = Pipeline(settings)
    trace = SpeedTrace(pipeline.speed)
    pipeline.speed = trace  # type: ignore[assignment]
    summary = RecordingReport(max_speed_m_s=settings.max_speed_m_s, radius_m=settings.radius_m,
                             body=settings.body)
    for t, samples in units_mod.checked(chunks, str(path), units):
        summary.saw_samples(float(t[0]), float(t[-1]), int(t.size))
        summary.add(pipeline.update(t, samples))
    summary.add(pipeline.finish())
    t, speed = trace.arrays()
    return summary, t, speed


def decimate(t: np.ndarray, v: np.ndarray, max_points: int = MAX_POINTS,
             ) -> tuple[np.ndarray, np.ndarray]:
    """At most ``max_points``: each bin's fastest point, so peaks survive."""
    n = t.size
    if n <= max_points:
        return t, v
    edges = np.linspace(0, n, max_points + 1).astype(int)
    idx = np.array([a + int(np.argmax(v[a:b])) for a, b in itertools.pairwise(edges) if b > a])
    return t[idx], v[idx]


def draw(summary: RecordingReport, t_s: np.ndarray, speed_m_s: np.ndarray, out: Path, *,
         target_speed_m_s: float, title: str) -> Path:
    """Draw the chart to ``out`` (.png or .svg, by its suffix)."""
    suffix = out.suffix.lower()
    if suffix not in FORMATS:
        raise PlotError(f"{out}: the chart is written as .png or .svg, got "
                        f"{suffix or 'no suffix'!r}")
    plt = require_matplotlib()
    limit = summary.max_speed_m_s
    t0 = summary.start if summary.start is not None else (float(t_s[0]) if t_s.size else 0.0)
    tt, vv = decimate(np.asarray(t_s, float) - t0, np.asarray(speed_m_s, float))
    top_cm = max(limit * 100 * 2.0, float(vv.max() * 100 * 1.1) if vv.size else 0.0)
    with plt.rc_context({"svg.fonttype": "none", "font.size": 11}):
        fig, ax = plt.subplots(figsize=(12, 4.8), dpi=110, layout="constrained")
        try:
            band = ax.axhspan(0, target_speed_m_s * 100, color=COLOURS["band"], alpha=0.22,
                              lw=0, label=f"go slow: up to {target_speed_m_s * 100:g} cm/s")
            band.set_gid("go-slow-band")
            upper = ax.axhspan(target_speed_m_s * 100, limit * 100, color=COLOURS["band"],
                               alpha=0.08, lw=0)
            upper.set_gid("go-slow-band-upper")
            lim = ax.axhline(limit * 100, color=COLOURS["limit"], lw=1.2, ls="--",
                             label=f"too fast: above {limit * 100:g} cm/s")
            lim.set_gid("limit")
            for i, h in enumerate(summary.holds):
                span = ax.axvspan(h.start - t0, h.end - t0, color=COLOURS["hold"], alpha=0.18,
                                  lw=0, label="hold" if i == 0 else None)
                span.set_gid(f"hold-{i}")
                ax.text((h.start + h.end) / 2 - t0, top_cm * 0.96, f"hold {h.duration_s:.0f} s",
                        ha="center", va="top", fontsize=9, color=COLOURS["hold"])
            for i, f in enumerate(summary.too_fast):
                span = ax.axvspan(f.start - t0, f.end - t0, color=COLOURS["too_fast"],
                                  alpha=0.25, lw=0, label="too fast" if i == 0 else None)
                span.set_gid(f"too-fast-{i}")
            if summary.too_fast:
                marks = ax.scatter([(f.start + f.end) / 2 - t0 for f in summary.too_fast],
                                   [f.peak_speed_m_s * 100 for f in summary.too_fast],
                                   marker="v", s=60, color=COLOURS["too_fast"], zorder=5)
                marks.set_gid("too-fast")
            (line,) = ax.plot(tt, vv * 100, color=COLOURS["speed"], lw=1.1,
                              label="speed along the muscle")
            line.set_gid("speed")
            if summary.strokes:
                spans = ax.hlines([s.mean_speed_m_s * 100 for s in summary.strokes],
                                  [s.start - t0 for s in summary.strokes],
                                  [s.end - t0 for s in summary.strokes],
                                  color=COLOURS["stroke"], lw=2.0, alpha=0.55, zorder=4)
                spans.set_gid("stroke-spans")
                dots = ax.scatter([(s.start + s.end) / 2 - t0 for s in summary.strokes],
                                  [s.mean_speed_m_s * 100 for s in summary.strokes], s=14,
                                  color=COLOURS["stroke"], zorder=4,
                                  label=f"stroke (mean speed), {len(summary.strokes)}")
                dots.set_gid("strokes")
            ax.set_ylim(0, top_cm)
            ax.set_xlim(0, max(summary.duration_s, float(tt[-1]) if tt.size else 1.0))
            ax.xaxis.set_major_formatter(plt.FuncFormatter(_clock))
            ax.set_xlabel("time [m:ss]")
            ax.set_ylabel("speed [cm/s]")
            ax.set_title(f"{title}\n{_figures(summary)}", loc="left", fontsize=11)
            ax.grid(axis="y", alpha=0.3)
            fig.legend(loc="outside lower center", fontsize=9, ncols=6, frameon=False)
            out.parent.mkdir(parents=True, exist_ok=True)
            fig.savefig(out, format=suffix[1:])
        finally:
            plt.close(fig)
    return out


def _clock(seconds: float, _pos: Any = None) -> str:
    s = round(seconds)
    return f"{s // 60}:{s % 60:02d}" if s >= 0 else ""


def _figures(summary: RecordingReport) -> str:
    mean = summary.session_stats().mean_speed_m_s
    slow = _time_in_band_share(summary)
    parts = [f"{len(summary.strokes)} strokes", f"{len(summary.holds)} holds",
             f"too fast {len(summary.too_fast)}x",
             "mean speed " + ("-" if mean is None else f"{mean * 100:.1f} cm/s")]
    if slow is not None:
        parts.append(f"{slow:.0%} of the rolling time within the limit")
    return ", ".join(parts)


def _time_in_band_share(summary: RecordingReport) -> float | None:
    rolling = summary.time_rolling_s
    if rolling <= 0:
        return None
    too_fast = sum(f.end - f.start for f in summary.too_fast)
    return max(0.0, 1.0 - too_fast / rolling)


def plot_recording(path: str | os.PathLike[str], settings: PipelineSettings, out: Path, *,
                   units: units_mod.Units | None = None) -> tuple[RecordingReport, Path]:
    """Analyse ``path`` and draw its chart to ``out``; returns the summary and ``out``."""
    if out.suffix.lower() not in FORMATS:
        raise PlotError(f"{out}: the chart is written as .png or .svg, got "
                        f"{out.suffix or 'no suffix'!r}")
    require_matplotlib()  # before minutes of analysis
    summary, t, speed = trace_recording(path, settings, units=units)
    draw(summary, t, speed, out, target_speed_m_s=settings.target_speed_m_s,
         title=Path(path).name)
    return summary, out
