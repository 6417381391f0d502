"""The recording format: what ``roller record`` writes and everything else reads.

A CSV file with the header ``t,ax,ay,az,gx,gy,gz``: time in s, acceleration in m/s^2, angular
rate in rad/s, all in the sensor's own axes. ``t`` strictly increases but is not evenly spaced:
jitter and gaps from dropped samples are normal and every reader must cope.

Files are read in chunks so memory does not grow with the recording's length: a 30-minute 1 kHz
recording (1.8 M rows) is never held in memory at once by :func:`read_chunks`. A malformed file
raises :class:`~roller.errors.RecordingError` naming the file, the line and the problem.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from roller.errors import RecordingError

COLUMNS = ("t", "ax", "ay", "az", "gx", "gy", "gz")
HEADER = ",".join(COLUMNS)
CHUNK_ROWS = 65536
"""Rows parsed per chunk: large enough for numpy to be efficient, small enough (3.5 MB of
float64) that memory stays flat whatever the file's length."""


def read_chunks(path: str | os.PathLike[str], chunk_rows: int = CHUNK_ROWS,
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(t, samples)`` blocks: ``t`` shape (N,) in s, ``samples`` (N, 6) float64.

    Columns may come in any order and extra columns are ignored, as long as the header names
    all seven. Raises :class:`RecordingError` on the first problem, with its line number.
    """
    name = str(path)
    try:
        handle = open(path, encoding="utf-8", newline="")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise RecordingError(name, None, f"cannot open: {exc.strerror or exc}") from None
    with handle:
        try:
            header_line = handle.readline()
        except UnicodeDecodeError as exc:
            raise RecordingError(name, None, f"not a UTF-8 text file ({exc.reason})") from None
        if not header_line.strip():
            raise RecordingError(name, 1, f"empty file: expected the header '{HEADER}'")
        order = _column_order(name, header_line)
        line_no = 1  # lines consumed so far
        last_t = -math.inf
        rows_seen = 0
        while True:
            try:
                lines = list(itertools.islice(handle, chunk_rows))
            except UnicodeDecodeError as exc:
                # The decoder works on whole buffers, so the exact line is not known.
                raise RecordingError(name, None,
                                     f"not a UTF-8 text file ({exc.reason})") from None
            if not lines:
                break
            first_line = line_no + 1
            line_no += len(lines)
            block = _parse_block(name, lines, first_line, order, len(header_line.split(",")))
            if block.shape[0] == 0:
                continue
            t = block[:, 0]
            dt = np.diff(t, prepend=last_t)
            bad = np.flatnonzero(~(dt > 0))
            if bad.size:
                i = int(bad[0])
                before = last_t if i == 0 else t[i - 1]
                row_line = _line_of_row(lines, first_line, i)
                raise RecordingError(name, row_line,
                                     f"time goes backwards or repeats: t={t[i]!r} after "
                                     f"t={before!r} (t must strictly increase)")
            last_t = float(t[-1])
            rows_seen += block.shape[0]
            yield np.ascontiguousarray(t), np.ascontiguousarray(block[:, 1:])
        if rows_seen == 0:
            raise RecordingError(name, line_no, "no samples after the header")


def read(path: str | os.PathLike[str]) -> tuple[np.ndarray, np.ndarray]:
    """The whole recording at once: ``(t, samples)``. For short files and tests."""
    ts, ss = [], []
    for t, s in read_chunks(path):
        ts.append(t)
        ss.append(s)
    return np.concatenate(ts), np.concatenate(ss)


class RecordingWriter:
    """Appends blocks of samples to a recording file, header first. Use as a context manager.

    Values are written with enough digits for the sensors we support: 1 us in time, 1e-5 m/s^2
    and 1e-6 rad/s (a 16-bit gyro at +-500 deg/s resolves 2.7e-4 rad/s).
    """

    FORMAT = ("%.6f", "%.5f", "%.5f", "%.5f", "%.6f", "%.6f", "%.6f")

    def __init__(self, path: str | os.PathLike[str] | TextIO) -> None:
        if isinstance(path, io.TextIOBase):
            self._file: TextIO = path  # type: ignore[assignment]
            self._owns = False
        else:
            self._file = open(path, "w", encoding="utf-8", newline="")  # noqa: SIM115
            self._owns = True
        self._file.write(HEADER + "\n")
        self.rows_written = 0

    def write(self, t: np.ndarray, samples: np.ndarray) -> None:
        """Append ``t`` (N,) [s] and ``samples`` (N, 6) [m/s^2, rad/s]."""
        t = np.asarray(t, dtype=float).reshape(-1)
        samples = np.asarray(samples, dtype=float).reshape(-1, 6)
        if t.shape[0] != samples.shape[0]:
            raise ValueError(f"{t.shape[0]} times but {samples.shape[0]} samples")
        if t.size == 0:
            return
        np.savetxt(self._file, np.column_stack([t, samples]), fmt=self.FORMAT, delimiter=",")
        self.rows_written += t.size

    def flush(self) -> None:
        self._file.flush()

    def close(self) -> None:
        if self._owns:
            self._file.close()
        else:
            self._file.flush()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write(path: str | os.PathLike[str] | TextIO, t: np.ndarray, samples: np.ndarray) -> None:
    """Write a whole recording in one go."""
    with RecordingWriter(path) as writer:
        writer.write(t, samples)


def _column_order(name: str, header_line: str) -> list[int]:
    cells = [c.strip().lower() for c in header_line.strip().lstrip("\ufeff").split(",")]
    missing = [c for c in COLUMNS if c not in cells]
    if missing:
        raise RecordingError(
            name, 1, f"header lacks column(s) {', '.join(missing)}: expected '{HEADER}', "
            f"found '{header_line.strip()}'")
    return [cells.index(c) for c in COLUMNS]


def _parse_block(name: str, lines: list[str], first_line: int, order: list[int],
                 n_columns: int) -> np.ndarray:
    """Parse with numpy's C reader; on any doubt find the exact offending line in Python.

    numpy rejects rows whose number of values differs from the first row's, skips blank lines
    and parses every column, so the only checks left are the column count against the header
    and finiteness: both vectorised. The line-by-line scan runs only on a bad chunk.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an all-blank chunk: "input contained no data"
            block = np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64, comments=None)
    except ValueError:
        block = None
    if block is not None and block.shape[0] == 0:
        return np.empty((0, len(order)))
    if block is not None and block.shape[1] == n_columns and np.isfinite(block).all():
        return block[:, order]
    for offset, line in enumerate(lines):
        _check_line(name, first_line + offset, line, order, n_columns)
    raise RecordingError(name, first_line, "could not be parsed")  # pragma: no cover


def _check_line(name: str, line_no: int, line: str, order: list[int], n_columns: int) -> None:
    if not line.strip():
        return
    cells = line.rstrip("\r\n").split(",")
    if len(cells) != n_columns:
        raise RecordingError(name, line_no,
                             f"expected {n_columns} comma-separated values, found {len(cells)}")
    for column, index in zip(COLUMNS, order, strict=True):
        cell = cells[index].strip()
        try:
            value = float(cell)
        except ValueError:
            raise RecordingError(name, line_no,
                                 f"column {column}: {cell!r} is not a number") from None
        if not math.isfinite(value):
            raise RecordingError(name, line_no, f"column {column}: {cell!r} is not finite")


def _line_of_row(lines: list[str], first_line: int, row: int) -> int:
    """File line number of the ``row``-th non-blank line of a chunk."""
    seen = -1
    for offset, line in enumerate(lines):
        if line.strip():
            seen += 1
            if seen == row:
                return first_line + offset
    return first_line  # pragma: no cover


def default_path(stem: str = "recording") -> Path:
    """A file name in the current directory that does not exist yet."""
    for i in itertools.count():
        candidate = Path(f"{stem}{'' if i == 0 else f'-{i}'}.csv")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")
