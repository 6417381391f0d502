"""Phone-app recordings: phyphox and Sensor Logger exports, read as a roller recording.

A phone taped to a roller's end cap is the easiest way to try the product without a Pi: its
accelerometer and gyro see what a sensor inside the roller would. Two free apps export what
``roller analyze`` needs, each in its own layout:

* **phyphox** (RWTH Aachen; "Acceleration with g" and "Gyroscope" experiments, or a combined
  one): *Export data* -> *CSV* writes one file per sensor, ``Accelerometer.csv`` with the header
  ``"Time (s)","Acceleration x (m/s^2)","Acceleration y (m/s^2)","Acceleration z (m/s^2)"``
  (and sometimes an absolute-value column) and ``Gyroscope.csv`` with ``"Time (s)","Gyroscope x
  (rad/s)",...``, in a zip or a folder. The separator is a comma, tab or semicolon (then
  possibly with a decimal comma). "Linear Acceleration" files have gravity removed and are
  refused: the pipeline needs gravity.
* **Sensor Logger** (Kelvin Choi): *Export* -> *CSV* writes a zip or folder with one file per
  sensor, ``time,seconds_elapsed,z,y,x`` (``time`` in ns since 1970, ``seconds_elapsed`` in s;
  note the z, y, x order): ``Gyroscope.csv`` in rad/s and ``TotalAcceleration.csv`` in m/s^2
  (``Accelerometer.csv`` there is the acceleration *without* gravity, and is refused).

Accelerometer and gyro are sampled on their own clocks, so the accelerometer is interpolated at
the gyro's times (over the span both cover). Values stay in the phone's axes, which the pipeline
handles like any sensor mounting. A file here is small (a phone records at 100-500 Hz), so it is
read whole.
"""

from __future__ import annotations

import csv
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from roller.base.errors import RecordingError


@dataclass(frozen=True)
class PhoneExport:
    """Where an export's two files are: ``app`` is "phyphox" or "Sensor Logger"."""

    app: str
    source: str
    """What the user named (for messages)."""
    container: str
    """The folder or zip file holding the CSV files."""
    accel: str
    gyro: str
    """The two files: paths in a folder, member names in a zip."""


def _members(path: Path) -> dict[str, str]:
    """{lower-case base name: name inside the zip or path} of the CSV files of an export."""
    if path.is_dir():
        return {p.name.lower(): str(p) for p in path.iterdir()
                if p.suffix.lower() == ".csv" and p.is_file()}
    # Only a regular file can be a zip: a FIFO or a device would block or never end.
    if path.is_file() and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            return {Path(n).name.lower(): n for n in z.namelist() if n.lower().endswith(".csv")}
    return {}


def _header(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as f:
            return f.readline(4096).strip()  # bounded: one huge line is not a header
    except OSError:
        return ""


def _is_phyphox(header: str) -> bool:
    return "Time (s)" in header


def _is_sensor_logger(header: str) -> bool:
    return header.replace('"', "").lower().startswith("time,seconds_elapsed")


def find_export(path: str | os.PathLike[str]) -> PhoneExport | None:
    """The phone export at ``path`` (a zip, a folder, or one of its CSV files), or None if
    ``path`` is not one (then it is read as the project's own format)."""
    p = Path(path)
    if p.is_file() and p.suffix.lower() == ".csv":
        header = _header(p)
        if not (_is_phyphox(header) or _is_sensor_logger(header)):
            return None
        return _pick(p.parent, str(p), _members(p.parent))
    members = _members(p)
    if not members:
        return None
    return _pick(p, str(p), members)


def _pick(where: Path, source: str, members: dict[str, str]) -> PhoneExport:
    if "gyroscope.csv" in members and \
            "seconds_elapsed" in _text(where, members["gyroscope.csv"])[:200]:
        if "totalacceleration.csv" not in members:
            raise RecordingError(source, None, "a Sensor Logger export without "
                                 "TotalAcceleration.csv: its Accelerometer.csv has gravity "
                                 "removed; enable 'Total Acceleration' in Sensor Logger and "
                                 "record again")
        return PhoneExport("Sensor Logger", source, str(where),
                           members["totalacceleration.csv"], members["gyroscope.csv"])
    accel = next((members[k] for k in ("accelerometer.csv", "acceleration.csv")
                  if k in members), None)
    gyro = members.get("gyroscope.csv")
    if gyro is None or accel is None:
        found = ", ".join(sorted(members)) or "no CSV files"
        raise RecordingError(source, None, "a phone export needs the accelerometer (with "
                             "gravity) and the gyroscope: expected Accelerometer.csv and "
                             f"Gyroscope.csv (phyphox) or TotalAcceleration.csv and "
                             f"Gyroscope.csv (Sensor Logger); found {found}")
    return PhoneExport("phyphox", source, str(where), accel, gyro)


def _text(where: Path, member: str) -> str:
    if where.is_dir():
        return Path(member).read_text(encoding="utf-8-sig", errors="replace")
    with zipfile.ZipFile(where) as z:
        return z.read(member).decode("utf-8-sig", errors="replace")


def _table(name: str, text: str) -> tuple[list[str], np.ndarray]:
    """Header and float rows of a CSV with ',', ';' or tab separators (decimal comma with
    ';' or tab)."""
    first = text.splitlines()[0] if text else ""
    delim = max(",;\t", key=first.count)
    rows = list(csv.reader(io.StringIO(text), delimiter=delim))
    if not rows:
        raise RecordingError(name, 1, "empty file")
    header = [h.strip() for h in rows[0]]
    data = []
    for i, row in enumerate(rows[1:], start=2):
        if not row or not any(c.strip() for c in row):
            continue
        try:
            data.append([float(c.replace(",", ".")) if delim != "," else float(c)
                         for c in row[:len(header)]])
        except ValueError:
            raise RecordingError(name, i, f"not a number in {row!r}") from None
    if not data:
        raise RecordingError(name, 2, "no samples after the header")
    return header, np.array(data, dtype=np.float64)


def _columns(name: str, header: list[str], want: list[str]) -> list[int]:
    out = []
    lower = [h.lower() for h in header]
    for w in want:
        hits = [i for i, h in enumerate(lower) if h == w or h.startswith(w)]
        if not hits:
            raise RecordingError(name, 1, f"no column {w!r} in the header {header!r}")
        out.append(hits[0])
    return out


def _sensor(export: PhoneExport, member: str, kind: str) -> tuple[np.ndarray, np.ndarray]:
    where = Path(export.container)
    name = member if where.is_dir() else f"{export.container}:{member}"
    header, data = _table(name, _text(where, member))
    if export.app == "Sensor Logger":
        idx = _columns(name, header, ["seconds_elapsed", "x", "y", "z"])
    else:
        lower = " ".join(header).lower()
        if kind == "accel" and "linear" in lower:
            raise RecordingError(name, 1, "phyphox 'Linear Acceleration' has gravity removed: "
                                 "record 'Acceleration with g' instead")
        prefix = "acceleration" if kind == "accel" else "gyroscope"
        idx = _columns(name, header, ["time (s)", f"{prefix} x", f"{prefix} y",
                                      f"{prefix} z"])
    t = data[:, idx[0]]
    values = data[:, idx[1:]]
    order = np.argsort(t, kind="stable")
    t, values = t[order], values[order]
    keep = np.concatenate(([True], np.diff(t) > 0))
    return t[keep], values[keep]


def read_export(export: PhoneExport) -> tuple[np.ndarray, np.ndarray]:
    """``(t (N,) [s], samples (N, 6) [m/s^2, rad/s])`` on the gyro's times, from 0."""
    ta, acc = _sensor(export, export.accel, "accel")
    tg, gyro = _sensor(export, export.gyro, "gyro")
    lo, hi = max(ta[0], tg[0]), min(ta[-1], tg[-1])
    inside = (tg >= lo) & (tg <= hi)
    if inside.sum() < 2:
        raise RecordingError(export.source, None, f"the accelerometer ({ta[0]:g}-{ta[-1]:g} s)"
                             f" and the gyroscope ({tg[0]:g}-{tg[-1]:g} s) do not overlap")
    t = tg[inside]
    samples = np.empty((t.size, 6))
    for k in range(3):
        samples[:, k] = np.interp(t, ta, acc[:, k])
    samples[:, 3:] = gyro[inside]
    return t - t[0], samples
