"""Routines as data: the steps a coach walks a person through, read from TOML files.

A routine file (``config/routines/<name>.toml``) holds a title, general tips shown before the
first step, a closing message, and an ordered list of ``[[steps]]``. Each step names the muscle,
the side (``left``/``right``/``none``), the prop (``roller``/``ball``), how to get into position,
a few cues shown while working, a hold window ``hold_min_s`` to ``hold_max_s`` for tender
spots, and its *dose* (the guidance: 30-60 s of rolling per side plus a 20-30 s hold): the step
ends once the muscle and side has had ``dose_rolling_s`` of rolling and ``dose_holds`` holds of
at least ``hold_min_s``, or ``dose_rolling_only_s`` of rolling without them -- not on a timer.
``target_active_s`` (active time: rolling or holding; lying still does not count) is what the
routine plans per step, for the sides' targets.

Files are validated with :func:`roller.base.settings.from_mapping`, so a wrong routine fails with a
:class:`~roller.base.errors.ConfigError` naming the file, the key (``steps[2].side``), what was
expected and what was found. :func:`load_routine` accepts a routine name (looked up in the
checkout's ``config/routines/``) or a path.
"""

from __future__ import annotations

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from roller.base.errors import ConfigError
from roller.base.paths import REPO_CONFIG_DIR
from roller.base.settings import from_mapping, setting
from roller.base.tomlfile import concise, read_toml

ROUTINES_DIR = REPO_CONFIG_DIR / "routines"
"""The checkout's routines (source and editable installs)."""

SYSTEM_ROUTINES_DIR = Path("/etc/roller/routines")
"""Where a Pi's own routines go (beside /etc/roller/roller.toml)."""


def search_dirs() -> list[Path]:
    """Folders searched for a routine given by name, in order: the checkout's
    ``config/routines/``; the ``config/routines/`` next to the virtual environment (a venv
    inside a copy of the checkout, as ``scripts/install-pi`` makes in /opt/roller, where the
    package itself is installed into the venv); then ``/etc/roller/routines``."""
    dirs: list[Path] = []
    for d in (ROUTINES_DIR, Path(sys.prefix).resolve().parent / "config" / "routines",
              SYSTEM_ROUTINES_DIR):
        if d not in dirs:
            dirs.append(d)
    return dirs

DEFAULT_ROUTINE = "lower_back_hips"

Side = Literal["left", "right", "none"]
Prop = Literal["roller", "ball"]


@dataclass(frozen=True)
class RoutineStep:
    """One step: a muscle (on one side) worked for a target amount of active time."""

    id: str = setting(doc="short unique identifier, used in history and MQTT (glutes_right)")
    title: str = setting(doc="what the display shows as the step's name")
    muscle: str = setting(doc="the muscle or area worked (glutes, quadratus lumborum, ...)")
    side: Side = setting(doc="which side of the body: left, right or none")
    position: str = setting(doc="how to get into position; shown before rolling starts")
    prop: Prop = setting("roller", doc="the tool used: roller or ball")
    cues: list[str] = setting(default_factory=list,
                              doc="short cues shown in turn while working the step")
    caution: str = setting("", doc="a safety note for this step, shown with the position")
    say_title: str = setting("", doc="the step's name as spoken (no brackets or "
                                     "abbreviations); default: the title without brackets")
    say: str = setting("", doc="the position as spoken, about 12 words or fewer (the full "
                               "position stays on screen); default: the position")
    say_caution: str = setting("", doc="the caution as spoken at the start of the step, one "
                                       "short sentence; default: the caution")
    target_active_s: float = setting(45.0, unit="s", minimum=5.0, maximum=900.0,
                                     doc="active time (rolling or holding) that completes "
                                         "the step")
    hold_min_s: float = setting(20.0, unit="s", minimum=3.0, maximum=300.0,
                                doc="a hold on a tender spot is long enough from here")
    hold_max_s: float = setting(30.0, unit="s", minimum=3.0, maximum=300.0,
                                doc="suggest moving on once a hold lasts this long")
    dose_rolling_s: float = setting(30.0, unit="s", minimum=0.0, maximum=900.0,
                                    doc="the dose: rolling time on this muscle and side ...")
    dose_holds: int = setting(1, minimum=0, maximum=10,
                              doc="... plus this many holds of at least hold_min_s on tender "
                                  "spots ...")
    dose_rolling_only_s: float = setting(60.0, unit="s", minimum=0.0, maximum=900.0,
                                         doc="... or, without the holds, this much rolling: "
                                             "the step ends once its dose is met")


    @property
    def spoken_title(self) -> str:
        """The name said aloud: ``say_title``, else the title without bracketed parts."""
        return plain_words(self.say_title or self.title)

    @property
    def spoken_position(self) -> str:
        """Where to lie, as said aloud: ``say``, else the full position."""
        return plain_words(self.say or self.position)

    @property
    def spoken_caution(self) -> str:
        """The safety note as said aloud (empty when the step has none)."""
        return plain_words(self.say_caution or self.caution)


MAX_SPOKEN_WORDS = 14
"""A spoken position or caution longer than this is refused: someone lying on the roller with
eyes closed has to hold it in mind (aim for about 12)."""


def plain_words(text: str) -> str:
    """``text`` as it should be read aloud: bracketed asides removed, spaces collapsed."""
    return " ".join(re.sub(r"\s*\([^)]*\)", "", text).split()).replace(" ,", ",")


@dataclass(frozen=True)
class Routine:
    """A whole routine: general tips, the steps in order, and a closing message."""

    name: str = setting(doc="identifier of the routine (the file's stem by convention)")
    title: str = setting(doc="what the display shows")
    description: str = setting("", doc="one or two sentences on what the routine is for")
    tips: list[str] = setting(default_factory=list,
                              doc="general advice shown before the first step")
    closing: str = setting("", doc="shown when the routine is complete")
    say_closing: str = setting("", doc="the closing as spoken, short; default: the closing")
    steps: tuple[RoutineStep, ...] = setting(default_factory=tuple, doc="the steps, in order")

    def step_index(self, step_id: str) -> int:
        """Index of the step called ``step_id`` (KeyError when absent)."""
        for i, step in enumerate(self.steps):
            if step.id == step_id:
                return i
        raise KeyError(step_id)

    @property
    def total_target_s(self) -> float:
        """Sum of the steps' targets of active time [s]."""
        return sum(step.target_active_s for step in self.steps)


def parse_routine(data: object, *, where: str = "") -> Routine:
    """Validate a routine given as a mapping (a parsed TOML document).

    Beyond the types and ranges checked by :func:`from_mapping`, requires at least one step,
    unique non-empty step ids, and ``hold_min_s <= hold_max_s`` in every step.
    """
    routine = from_mapping(Routine, data, where=where)  # type: ignore[arg-type]
    if not routine.name.strip():
        raise ConfigError("name", "a non-empty name", routine.name, where)
    if not routine.steps:
        raise ConfigError("steps", "at least one [[steps]] table", [], where)
    seen: set[str] = set()
    for i, step in enumerate(routine.steps):
        key = f"steps[{i}]"
        if not step.id.strip() or any(c.isspace() for c in step.id):
            raise ConfigError(f"{key}.id", "a non-empty identifier without spaces", step.id,
                              where)
        if step.id in seen:
            raise ConfigError(f"{key}.id", "an id not used by an earlier step", step.id, where)
        seen.add(step.id)
        for name in ("say_title", "say", "say_caution"):
            text = getattr(step, name)
            if re.search(r"[()\[\]]", text):
                raise ConfigError(f"{key}.{name}", "words to speak, without brackets", text,
                                  where)
            if name != "say_title" and len(text.split()) > MAX_SPOKEN_WORDS:
                raise ConfigError(f"{key}.{name}",
                                  f"a short spoken form of at most {MAX_SPOKEN_WORDS} words",
                                  text, where)
        if step.dose_rolling_only_s < step.dose_rolling_s:
            raise ConfigError(f"{key}.dose_rolling_only_s",
                              f"a value of at least dose_rolling_s ({step.dose_rolling_s} s)",
                              step.dose_rolling_only_s, where)
        if step.hold_min_s > step.hold_max_s:
            raise ConfigError(f"{key}.hold_max_s",
                              f"a value of at least hold_min_s ({step.hold_min_s} s)",
                              step.hold_max_s, where)
    return routine


def load_routine(name_or_path: str | os.PathLike[str] = DEFAULT_ROUTINE, *,
                 search_dir: Path | None = None) -> Routine:
    """Load a routine by name (``lower_back_hips``) or from a ``.toml`` path.

    A bare name is looked up as ``<dir>/<name>.toml`` in ``search_dir`` if given, else in each of
    :func:`search_dirs` in turn. Raises :class:`ConfigError` when the file is missing, is not valid
    TOML, or does not describe a valid routine.
    """
    path = resolve_routine_path(name_or_path, search_dir=search_dir)
    where = str(path)
    try:
        data = read_toml(path, key="routine", where=where)
        return parse_routine(data, where=where)
    except ConfigError as exc:
        if exc.key == "(file syntax)":  # one key for every problem with the file as a whole
            exc = ConfigError("(file)", exc.expected, exc.actual, exc.where)
        raise concise(exc) from None


def resolve_routine_path(name_or_path: str | os.PathLike[str], *,
                         search_dir: Path | None = None) -> Path:
    """The file a routine name or path refers to (which must exist)."""
    text = os.fspath(name_or_path)
    dirs = search_dirs() if search_dir is None else [search_dir]
    if "\0" in text:
        raise ConfigError("routine", "a routine name or path without NUL characters", text)
    if text.endswith(".toml") or os.sep in text or "/" in text:
        path = Path(text)
        if path.is_file():
            return path
        raise ConfigError("routine", "an existing routine file", text, str(path))
    for directory in dirs:
        path = directory / f"{text}.toml"
        if path.is_file():
            return path
    known = ", ".join(available_routines(search_dir)) or "none"
    raise ConfigError("routine", f"a routine file or one of the names: {known}", text,
                      "searched " + ", ".join(str(d) for d in dirs))


def available_routines(search_dir: Path | None = None) -> list[str]:
    """Names of the routines found in ``search_dir`` (default: every :func:`search_dirs`)."""
    names: set[str] = set()
    for directory in search_dirs() if search_dir is None else [search_dir]:
        if directory.is_dir():
            names.update(p.stem for p in directory.glob("*.toml"))
    return sorted(names)
