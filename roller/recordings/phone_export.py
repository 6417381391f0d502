"""Phone-app recordings: phyphox and Sensor Logger exports, read as a roller recording.

A phone taped to a roller's end cap is the easiest way to try the product without a Pi: its
accelerometer and gyro see what a sensor inside the roller would. What the two free apps really
export (from real exports of nine phones, Android and iOS; see ``../shared/real-phone``):

* **phyphox** writes one CSV per sensor in a zip (or a folder), comma, ``;`` or tab separated
  (``;``/tab possibly with a decimal comma). Android spells the columns ``"Time (s)",
  "Acceleration x (m/s^2)"``, ``"Gyroscope x (rad/s)"``; iOS ``"Time (s)","X (m/s^2)"``,
  ``"X (rad/s)"``. A combined experiment (ours, or "simple experiment") exports
  ``Accelerometer.csv`` + ``Gyroscope.csv``; each built-in single-sensor experiment exports its
  own zip with one ``Raw Data.csv`` (plus an "Absolute" column), so a roller session needs two
  exports given together (a folder holding both; they are aligned by their ``meta/time.csv``).
  Gravity-free exports ("Linear Acceleration.csv" on Android, "Linear Accelerometer.csv" on
  iOS, a ``Raw Data.csv`` of "Acceleration without g") are refused: the pipeline needs gravity.
  Editor-made experiments may have free column names without units: refused, as the units
  cannot be known.
* **Sensor Logger** writes ``time,seconds_elapsed,z,y,x`` per sensor (note z, y, x):
  ``Gyroscope.csv`` in rad/s, ``TotalAcceleration.csv`` in m/s^2 with gravity;
  ``Accelerometer.csv`` has gravity removed, so without ``TotalAcceleration.csv`` (older
  exports) it is used only with ``Gravity.csv`` added to it. Exports can hold 0-byte CSVs, a
  ``Microphone.mp4`` and streams that stop for a while (an iOS app in the background).

The accelerometer is interpolated at the gyro's times, as the live phone source does
(:mod:`roller.phone.stream_merge`): the gyro carries the speed. Where the accelerometer stops
(two of its samples more than ``MAX_ACCEL_GAP_S`` apart) the gyro samples are dropped, so a gap
stays a gap. Values stay in the phone's axes, which the pipeline handles like any mounting.
Units are the ones the app writes (and says in its headers), so the unit checks do not
second-guess them.

Bounded like the recording reader: a zip's members are streamed (never read whole), with caps on
the member count and on each member's inflated size; lines are limited in length; a value that
is not a plain decimal number, not finite or beyond :data:`roller.recordings.recording.LIMITS`
is refused with its file and line; a damaged, truncated or encrypted zip is refused in one line
(:class:`~roller.base.errors.RecordingError`), never a traceback or a MemoryError.
"""

from __future__ import annotations

import csv
import io
import lzma
import os
import re
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np

from roller.base.errors import RecordingError

MAX_MEMBERS = 512
"""Files in one export (a Sensor Logger export with every sensor on has about 30)."""
MAX_MEMBER_BYTES = 512 << 20
"""Inflated size of one CSV (an hour at 500 Hz is about 150 MB)."""
MAX_TOTAL_BYTES = 1 << 30
MAX_LINE_BYTES = 4096
BLOCK_ROWS = 65536
MAX_ACCEL_GAP_S = 0.25
"""Accelerometer samples further apart are not interpolated across (the live path's rule)."""
ACCEL_LIMIT_M_S2 = 1000.0
GYRO_LIMIT_RAD_S = 5000.0

_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
RECORD_INSTEAD = ("record the accelerometer with gravity and the gyroscope: in phyphox the "
                  "roller's own experiment (`roller detect --phone experiment`) or 'Acceleration "
                  "with g' and 'Gyroscope'; in Sensor Logger turn on 'Total Acceleration' and "
                  "'Gyroscope'")
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, NotImplementedError, RuntimeError, EOFError,
               OSError, lzma.LZMAError, ValueError, UnicodeDecodeError)


@dataclass
class _File:
    """One CSV of an export: where it is (``container``: folder or zip), its name and size."""

    container: Path
    name: str
    size: int
    export: str
    """The export it belongs to (the zip's or folder's name), for several given together."""

    @property
    def base(self) -> str:
        return Path(self.name).name.lower()

    @property
    def shown(self) -> str:
        return self.name if self.container.is_dir() else f"{self.container}:{self.name}"


@dataclass
class PhoneExport:
    """What was found: ``app`` is "phyphox" or "Sensor Logger"; ``files`` every CSV."""

    app: str
    source: str
    files: list[_File] = field(default_factory=list)


@dataclass
class _Sensor:
    kind: str          # "accel", "accel_without_g", "gravity", "gyro"
    t: np.ndarray
    v: np.ndarray
    where: str
    export: str = ""


# -- finding the export --------------------------------------------------------------------
def _regular(path: Path) -> bool:
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except OSError:
        return False


def _zip_files(path: Path, export: str) -> list[_File]:
    try:
        with zipfile.ZipFile(path) as z:
            infos = z.infolist()
    except _ZIP_ERRORS as exc:
        raise RecordingError(str(path), None, f"a damaged zip ({_why(exc)}): export it again "
                             "from the app") from None
    if len(infos) > MAX_MEMBERS:
        raise RecordingError(str(path), None, f"a zip of {len(infos)} files; a phone export "
                             f"has at most {MAX_MEMBERS}")
    return [_File(path, i.filename, i.file_size, export) for i in infos
            if i.filename.lower().endswith(".csv") and not i.is_dir()]


def _dir_files(path: Path) -> list[_File]:
    out: list[_File] = []
    for seen, p in enumerate(sorted(path.rglob("*")), start=1):
        if seen > MAX_MEMBERS * 4:
            raise RecordingError(str(path), None, f"more than {MAX_MEMBERS * 4} files: not "
                                 "a phone export")
        if p.suffix.lower() == ".csv" and _regular(p):
            export = str(p.parent.parent if p.parent.name == "meta" else p.parent)
            out.append(_File(p.parent, str(p), p.stat().st_size, export))
        elif p.suffix.lower() == ".zip" and _regular(p):
            out += _zip_files(p, str(p))
    return out


def _header(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_LINE_BYTES).decode("utf-8-sig", errors="replace").split("\n")[0]
    except OSError:
        return ""


def _looks_like_phone(header: str) -> bool:
    h = header.replace('"', "").lower()
    return "time (s)" in h or h.startswith("time,seconds_elapsed")


def find_export(path: str | os.PathLike[str]) -> PhoneExport | None:
    """The phone export at ``path`` (a zip, a folder holding one or several exports, or one
    of an export's CSV files), or None if ``path`` is not one (then it is read as the
    project's own format)."""
    p = Path(path)
    if p.is_dir():
        files = _dir_files(p)
    elif _regular(p) and p.suffix.lower() == ".csv":
        if not _looks_like_phone(_header(p)):
            return None
        files = _dir_files(p.parent)
    elif _regular(p) and zipfile.is_zipfile(p):
        files = _zip_files(p, str(p))
    else:
        return None
    if not files:
        return None
    if sum(f.size for f in files) > MAX_TOTAL_BYTES:
        raise RecordingError(str(p), None, f"its CSV files inflate to more than "
                             f"{MAX_TOTAL_BYTES >> 20} MB; a phone export is smaller")
    sl = any(_is_sensor_logger_name(f.base) and f.size > 0 and
             _first_line(f).replace('"', "").lower().startswith("time,seconds_elapsed")
             for f in files if f.base in ("gyroscope.csv", "totalacceleration.csv",
                                          "accelerometer.csv"))
    return PhoneExport("Sensor Logger" if sl else "phyphox", str(p), files)


def _is_sensor_logger_name(base: str) -> bool:
    return base in ("gyroscope.csv", "totalacceleration.csv", "accelerometer.csv",
                    "gravity.csv")


def _first_line(f: _File) -> str:
    try:
        with _open(f) as stream:
            return next(_lines(f, stream), (1, ""))[1]
    except RecordingError:
        return ""


# -- reading one CSV, bounded --------------------------------------------------------------
def _open(f: _File) -> IO[bytes]:
    if f.container.is_dir():
        try:
            return open(f.name, "rb")
        except OSError as exc:
            raise RecordingError(f.shown, None, f"cannot open: {exc.strerror}") from None
    if f.size > MAX_MEMBER_BYTES:
        raise RecordingError(f.shown, None, f"inflates to {f.size >> 20} MB; a phone "
                             f"recording's CSV is at most {MAX_MEMBER_BYTES >> 20} MB")
    try:
        z = zipfile.ZipFile(f.container)
        return _Bounded(z, z.open(f.name), f.shown)
    except _ZIP_ERRORS as exc:
        raise RecordingError(f.shown, None, f"a damaged zip member ({_why(exc)}): export it "
                             "again from the app") from None


class _Bounded(io.RawIOBase):
    """A zip member's stream that stops at :data:`MAX_MEMBER_BYTES` whatever its header says,
    and turns the zip module's many errors into one :class:`RecordingError`."""

    def __init__(self, z: zipfile.ZipFile, raw: IO[bytes], shown: str) -> None:
        self._z, self._raw, self._shown, self._read = z, raw, shown, 0

    def readable(self) -> bool:
        return True

    def readinto(self, b: bytearray | memoryview) -> int:  # type: ignore[override]
        try:
            data = self._raw.read(len(b))
        except _ZIP_ERRORS as exc:
            raise RecordingError(self._shown, None, f"a damaged zip member ({_why(exc)}): "
                                 "export it again from the app") from None
        self._read += len(data)
        if self._read > MAX_MEMBER_BYTES:
            raise RecordingError(self._shown, None, f"inflates to more than "
                                 f"{MAX_MEMBER_BYTES >> 20} MB; a phone recording's CSV is "
                                 "smaller")
        b[:len(data)] = data
        return len(data)

    def close(self) -> None:
        try:
            self._raw.close()
            self._z.close()
        finally:
            super().close()


def _why(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "encrypted" in text.lower() or "password" in text.lower():
        return "it is encrypted; export without a password"
    return text[:120]


def _lines(f: _File, stream: IO[bytes]) -> Iterator[tuple[int, str]]:
    """(line number, text) with a length bound; UTF-8 (a BOM allowed)."""
    buffered = io.BufferedReader(stream) if not isinstance(stream, io.BufferedIOBase) \
        else stream
    for n in range(1, 1 << 62):
        raw = buffered.readline(MAX_LINE_BYTES + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE_BYTES:
            raise RecordingError(f.shown, n, f"a line longer than {MAX_LINE_BYTES} bytes: "
                                 "not a phone export's CSV")
        try:
            text = raw.decode("utf-8-sig" if n == 1 else "utf-8")
        except UnicodeDecodeError:
            raise RecordingError(f.shown, n, "not UTF-8 text") from None
        yield n, text.rstrip("\r\n")


def _delimiter(header: str) -> str:
    return max(",;\t", key=header.count)


def _read_table(f: _File, want: list[int], limit: float, kind: str
                ) -> tuple[list[str], np.ndarray]:
    """The header and the columns ``want`` (by index, first the time) of a numeric CSV,
    streamed block by block; every value a plain finite decimal within ``limit``."""
    with _open(f) as stream:
        lines = _lines(f, stream)
        first = next(lines, None)
        if first is None or not first[1].strip():
            raise RecordingError(f.shown, 1, "an empty file (0 bytes): the app recorded "
                                 f"nothing from this sensor; {RECORD_INSTEAD}")
        delim = _delimiter(first[1])
        header = [h.strip().strip('"') for h in next(csv.reader([first[1]], delimiter=delim))]
        cell = re.compile(_NUMBER.replace(r"\.", "[.,]") if delim != "," else _NUMBER)
        blocks: list[np.ndarray] = []
        rows: list[list[str]] = []
        last_line = 1
        for n, text in lines:
            last_line = n
            if not text.strip():
                continue
            cells = text.split(delim)
            try:
                picked = [cells[i].strip() for i in want]
            except IndexError:
                raise RecordingError(f.shown, n, f"{len(cells)} values; the header has "
                                     f"{len(header)} columns") from None
            for c in picked:
                if not cell.fullmatch(c):
                    raise RecordingError(f.shown, n, f"not a plain decimal number: {c[:40]!r}"
                                         " (expected digits, as the app writes them)")
            rows.append([c.replace(",", ".") for c in picked])
            if len(rows) >= BLOCK_ROWS:
                blocks.append(_block(f, rows, n, limit))
                rows = []
        if rows:
            blocks.append(_block(f, rows, last_line, limit))
    if not blocks:
        raise RecordingError(f.shown, 2, f"no samples after the header: the {kind} stream is "
                             f"empty; {RECORD_INSTEAD}")
    return header, np.concatenate(blocks)


def _block(f: _File, rows: list[list[str]], line: int, limit: float) -> np.ndarray:
    block = np.array(rows, dtype=np.float64)
    bad = ~np.isfinite(block) | (np.abs(block[:, 1:]) > limit).any(axis=1)[:, None]
    if bad.any():
        i = int(np.flatnonzero(bad.any(axis=1))[0])
        raise RecordingError(f.shown, line - len(rows) + 1 + i,
                             f"a value out of range ({rows[i]}): beyond what a phone's "
                             f"sensor reads (|value| <= {limit:g})")
    return block


# -- what each CSV holds -------------------------------------------------------------------
_UNIT = re.compile(r"\(([^)]*)\)\s*$")


def _phyphox_columns(f: _File, header: list[str]) -> tuple[str, list[int]] | None:
    """(kind, [time, x, y, z] column indices) of a phyphox CSV, or None (not a sensor we
    read: magnetometer, meta). Raises for a file without units or without gravity."""
    lower = [h.lower() for h in header]
    units = [(_UNIT.search(h).group(1).strip().replace("²", "^2") if _UNIT.search(h) else "")
             for h in lower]
    if "time (s)" not in lower:
        if f.base in ("accelerometer.csv", "gyroscope.csv", "raw data.csv"):
            raise RecordingError(f.shown, 1, f"no units in the header {header[:5]!r} (an "
                                 "experiment made in phyphox's editor?): the units cannot be "
                                 f"known; {RECORD_INSTEAD}")
        return None
    t = lower.index("time (s)")
    for unit, kind in (("m/s^2", "accel"), ("rad/s", "gyro")):
        cols = [i for i, u in enumerate(units) if u == unit and not
                lower[i].startswith("absolute")]
        if len(cols) >= 3:
            linear = "linear" in f.base or any("linear" in lower[i] for i in cols) or \
                "without g" in f.export.lower()
            return ("accel_without_g" if kind == "accel" and linear else kind), [t, *cols[:3]]
    return None


def _sensor_logger_columns(f: _File, header: list[str]) -> tuple[str, list[int]] | None:
    kinds = {"gyroscope.csv": "gyro", "totalacceleration.csv": "accel",
             "accelerometer.csv": "accel_without_g", "gravity.csv": "gravity"}
    kind = kinds.get(f.base)
    lower = [h.lower() for h in header]
    if kind is None or not {"seconds_elapsed", "x", "y", "z"} <= set(lower):
        return None
    return kind, [lower.index(c) for c in ("seconds_elapsed", "x", "y", "z")]


def _read_sensor(f: _File, app: str) -> _Sensor | None:
    if f.size == 0:
        return None
    with _open(f) as stream:
        first = next(_lines(f, stream), None)
    if first is None:
        return None
    header = [h.strip().strip('"') for h in next(csv.reader([first[1]],
                                                             delimiter=_delimiter(first[1])))]
    found = _sensor_logger_columns(f, header) if app == "Sensor Logger" \
        else _phyphox_columns(f, header)
    if found is None:
        return None
    kind, cols = found
    limit = GYRO_LIMIT_RAD_S if kind == "gyro" else ACCEL_LIMIT_M_S2
    _, data = _read_table(f, cols, limit, "gyroscope" if kind == "gyro"
                                 else "accelerometer")
    t, v = data[:, 0], data[:, 1:]
    order = np.argsort(t, kind="stable")
    t, v = t[order], v[order]
    keep = np.concatenate(([True], np.diff(t) > 0))
    return _Sensor(kind, t[keep], v[keep], f.shown, f.export)


def _start_time(export: PhoneExport, name: str) -> float | None:
    """The system time of the START in ``<export>/meta/time.csv`` [s since 1970], if any."""
    for f in export.files:
        if f.export == name and f.base == "time.csv" and "meta" in Path(f.name).parts:
            try:
                with _open(f) as stream:
                    for _n, text in _lines(f, stream):
                        cells = [c.strip().strip('"') for c in text.split(_delimiter(text))]
                        if cells and cells[0].upper() == "START" and len(cells) >= 3:
                            return float(cells[2].replace(",", ".")) - \
                                float(cells[1].replace(",", "."))
            except (RecordingError, ValueError):
                return None
    return None


# -- the recording ------------------------------------------------------------------------
def read_export(export: PhoneExport) -> tuple[np.ndarray, np.ndarray]:
    """``(t (N,) [s], samples (N, 6) [m/s^2, rad/s])`` on the gyro's times, from 0."""
    t_acc, v_acc, t_gyr, v_gyr = read_streams(export)
    return _merge(export.source, t_acc, v_acc, t_gyr, v_gyr)


def read_streams(export: PhoneExport
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The two streams as the phone sampled them, each on its own clock (one time base):
    ``(accel t [s], accel (N, 3) [m/s^2] with gravity, gyro t [s], gyro (M, 3) [rad/s])``.
    Replaying them through the live path must give what :func:`read_export` gives."""
    sensors: dict[str, list[_Sensor]] = {}
    for f in export.files:
        if f.size == 0 and export.app == "Sensor Logger" and f.base == "gyroscope.csv":
            raise RecordingError(f.shown, None, "an empty file (0 bytes): the app recorded "
                                 f"nothing from the gyroscope; {RECORD_INSTEAD}")
        s = _read_sensor(f, export.app)
        if s is not None:
            sensors.setdefault(s.kind, []).append(s)
    gyro = _one(export, sensors, "gyro")
    accel = _accel(export, sensors)
    t_acc, v_acc = accel.t, accel.v
    t_gyr = gyro.t
    if accel.export != gyro.export:
        t_acc, t_gyr = _aligned(export, accel, gyro)
    return t_acc, v_acc, t_gyr, gyro.v


def _one(export: PhoneExport, sensors: dict[str, list[_Sensor]], kind: str) -> _Sensor:
    found = sensors.get(kind, [])
    if not found:
        names = ", ".join(sorted({f.base for f in export.files})) or "no CSV files"
        raise RecordingError(export.source, None, f"no gyroscope in this {export.app} export "
                             f"(found {names}); the roller's speed comes from the gyroscope: "
                             f"{RECORD_INSTEAD}")
    return max(found, key=lambda s: s.t.size)


def _accel(export: PhoneExport, sensors: dict[str, list[_Sensor]]) -> _Sensor:
    if sensors.get("accel"):
        return max(sensors["accel"], key=lambda s: s.t.size)
    without = sensors.get("accel_without_g", [])
    gravity = sensors.get("gravity", [])
    if without and gravity:  # older Sensor Logger: Accelerometer + Gravity = total
        a, g = without[0], gravity[0]
        gv = np.stack([np.interp(a.t, g.t, g.v[:, k]) for k in range(3)], axis=1)
        inside = (a.t >= g.t[0]) & (a.t <= g.t[-1])
        return _Sensor("accel", a.t[inside], a.v[inside] + gv[inside], a.where, a.export)
    if without:
        what = {"Sensor Logger": "its Accelerometer.csv has gravity removed (and there is no "
                                 "TotalAcceleration.csv or Gravity.csv)"}.get(
            export.app, f"{Path(without[0].where).name} has gravity removed (linear "
                        "acceleration / 'Acceleration without g')")
        raise RecordingError(export.source, None, f"gravity removed: {what}; the roller needs "
                             f"the acceleration with gravity: {RECORD_INSTEAD}")
    names = ", ".join(sorted({f.base for f in export.files}))
    raise RecordingError(export.source, None, f"no accelerometer with gravity in this "
                         f"{export.app} export (found {names}): {RECORD_INSTEAD}")


def _aligned(export: PhoneExport, accel: _Sensor, gyro: _Sensor
             ) -> tuple[np.ndarray, np.ndarray]:
    """Two exports given together (built-in experiments, one per sensor): both on the
    phone's wall clock, from their ``meta/time.csv``."""
    starts = [_start_time(export, s.export) for s in (accel, gyro)]
    if None in starts:
        raise RecordingError(export.source, None, "two exports given together, but not both "
                             "have meta/time.csv to align them: export each with its meta "
                             "data, or record both sensors in one experiment")
    base = min(starts)  # type: ignore[type-var]
    return accel.t + (starts[0] - base), gyro.t + (starts[1] - base)  # type: ignore[operator]


def _merge(source: str, ta: np.ndarray, acc: np.ndarray, tg: np.ndarray, gyro: np.ndarray,
           ) -> tuple[np.ndarray, np.ndarray]:
    hi = np.minimum(np.searchsorted(ta, tg, side="left"), ta.size - 1)
    exact = ta[hi] == tg
    lo = np.where(exact, hi, np.maximum(hi - 1, 0))
    ok = (exact | (ta[lo] < tg)) & (ta[hi] - ta[lo] <= MAX_ACCEL_GAP_S) & (tg <= ta[-1])
    if np.count_nonzero(ok) < 2:
        raise RecordingError(source, None, f"the accelerometer ({ta[0]:g}-{ta[-1]:g} s) and "
                             f"the gyroscope ({tg[0]:g}-{tg[-1]:g} s) do not overlap")
    t, lo, hi = tg[ok], lo[ok], hi[ok]
    span = ta[hi] - ta[lo]
    w = np.where(span > 0, (t - ta[lo]) / np.where(span > 0, span, 1.0), 0.0)
    samples = np.empty((t.size, 6))
    samples[:, :3] = acc[lo] + (acc[hi] - acc[lo]) * w[:, None]
    samples[:, 3:] = gyro[ok]
    return t - t[0], samples

