"""The sensor calibration the service starts from: gyro bias and the roller's roll axis.

``roller calibrate`` measures it (bias with the roller at rest, then the roll axis from a few
strokes) and saves it as JSON in the state directory; the pipeline starts from it so the first
strokes of a session are measured right, and keeps tracking the bias afterwards (MEMS gyro
offsets drift with temperature).

The file is small and human-readable::

    {"format": 1, "gyro_bias_rad_s": [0.01, -0.02, 0.003],
     "roll_axis": [0.0, 0.0, 1.0], "confident": true}

A malformed file raises :class:`CalibrationError` naming the file and what was wrong: a broken
calibration must be noticed, not silently replaced by zeros.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roller.base.errors import RollerError
from roller.base.paths import default_state_dir

FORMAT_VERSION = 1
FILE_NAME = "calibration.json"


class CalibrationError(RollerError, ValueError):
    """A calibration file is missing, unreadable or malformed. The message names the file."""

    def __init__(self, path: str | os.PathLike[str], problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


def default_path() -> Path:
    """``<state dir>/calibration.json``: where ``roller calibrate`` saves and the service looks."""
    return default_state_dir() / FILE_NAME


@dataclass(frozen=True)
class Calibration:
    """Gyro zero-rate offset and the roll axis, both in the sensor's own axes.

    ``gyro_bias_rad_s``: what the gyro reads at rest [rad/s] (subtract it from readings).
    ``roll_axis``: unit vector of the roller's long axis (sensor frame), or None if unknown.
    ``confident``: True if the estimate rests on enough data (a long still period and enough
    strokes about a consistent axis); the pipeline may trust it from the first sample.
    """

    gyro_bias_rad_s: tuple[float, float, float] = (0.0, 0.0, 0.0)
    roll_axis: tuple[float, float, float] | None = None
    confident: bool = False

    def __post_init__(self) -> None:
        bias = _vector3(self.gyro_bias_rad_s, "gyro_bias_rad_s")
        object.__setattr__(self, "gyro_bias_rad_s", bias)
        if self.roll_axis is not None:
            axis = _vector3(self.roll_axis, "roll_axis")
            norm = math.sqrt(sum(a * a for a in axis))
            if not norm > 1e-9:
                raise ValueError(f"roll_axis must be a non-zero vector, got {self.roll_axis!r}")
            object.__setattr__(self, "roll_axis", tuple(a / norm for a in axis))
        object.__setattr__(self, "confident", bool(self.confident))

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT_VERSION,
            "gyro_bias_rad_s": list(self.gyro_bias_rad_s),
            "roll_axis": None if self.roll_axis is None else list(self.roll_axis),
            "confident": self.confident,
        }

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "calibration") -> Calibration:
        """Build from a parsed JSON object; :class:`CalibrationError` says what is wrong."""
        if not isinstance(data, dict):
            raise CalibrationError(where, f"expected a JSON object, got {type(data).__name__}")
        unknown = sorted(set(data) - {"format", "gyro_bias_rad_s", "roll_axis", "confident"})
        if unknown:
            raise CalibrationError(where, f"unknown key {unknown[0]!r}: expected format, "
                                          "gyro_bias_rad_s, roll_axis, confident")
        version = data.get("format", FORMAT_VERSION)
        if version != FORMAT_VERSION:
            raise CalibrationError(where, f"format {version!r} is not supported "
                                          f"(expected {FORMAT_VERSION}); run `roller calibrate`")
        if "gyro_bias_rad_s" not in data:
            raise CalibrationError(where, "gyro_bias_rad_s is missing (expected 3 numbers)")
        confident = data.get("confident", False)
        if not isinstance(confident, bool):
            raise CalibrationError(where, f"confident: expected true or false, got {confident!r}")
        try:
            return cls(gyro_bias_rad_s=data["gyro_bias_rad_s"],
                       roll_axis=data.get("roll_axis"), confident=confident)
        except ValueError as exc:
            raise CalibrationError(where, str(exc)) from None

    def save(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write atomically (temp file + rename) so a crash never leaves half a file.

        ``path`` defaults to :func:`default_path`; parent directories are created. Returns the path.
        """
        target = Path(path) if path is not None else default_path()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
        os.replace(tmp, target)
        return target

    @classmethod
    def load(cls, path: str | os.PathLike[str] | None = None) -> Calibration:
        """Read a file written by :meth:`save`; missing or malformed -> :class:`CalibrationError`.
        """
        source = Path(path) if path is not None else default_path()
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise CalibrationError(source, "no calibration file; run `roller calibrate` "
                                           "to make one") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise CalibrationError(source, f"cannot read: {exc}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise CalibrationError(source, f"not valid JSON (line {exc.lineno}: {exc.msg})") \
                from None
        return cls.from_dict(data, where=str(source))

    @classmethod
    def load_or_none(cls, path: str | os.PathLike[str] | None = None) -> Calibration | None:
        """Like :meth:`load`, but None when there is no file (a malformed one still raises)."""
        source = Path(path) if path is not None else default_path()
        if not source.exists():
            return None
        return cls.load(source)


def _vector3(value: Any, name: str) -> tuple[float, float, float]:
    if isinstance(value, str | bytes) or not hasattr(value, "__len__") or len(value) != 3:
        raise ValueError(f"{name} must be 3 numbers, got {value!r}")
    out = []
    for v in value:
        if isinstance(v, bool | str | bytes) or not hasattr(v, "__float__"):
            raise ValueError(f"{name} must be 3 numbers, got {value!r}")
        f = float(v)
        if not math.isfinite(f):
            raise ValueError(f"{name} must be finite, got {value!r}")
        out.append(f)
    return (out[0], out[1], out[2])
