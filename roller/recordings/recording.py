"""The recording format: what ``roller record`` writes and everything else reads.

A CSV file with the header ``t,ax,ay,az,gx,gy,gz``: time in s, acceleration in m/s^2, angular
rate in rad/s, all in the sensor's own axes. ``t`` strictly increases but is not evenly spaced:
jitter and gaps from dropped samples are normal and every reader must cope.

Files are read in chunks so memory does not grow with the recording's length: a 30-minute 1 kHz
recording (1.8 M rows) is never held in memory at once by :func:`read_chunks`. A malformed file
raises :class:`~roller.base.errors.RecordingError` naming the file, the line and the problem.
"""

from __future__ import annotations

import io
import itertools
import math
import os
import re
import stat
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import numpy as np

from roller.base.errors import RecordingError
from roller.recordings import plain_decimals

COLUMNS = ("t", "ax", "ay", "az", "gx", "gy", "gz")
HEADER = ",".join(COLUMNS)
CHUNK_ROWS = 65536
"""Rows parsed per chunk: large enough for numpy to be efficient, small enough (3.5 MB of
float64) that memory stays flat whatever the file's length."""


MAX_LINE_BYTES = 4096
"""Longest line accepted (a data row is under 100 bytes, a header with extra columns a few
hundred): a file with no line breaks is refused after this many bytes, not read into memory."""

READ_BYTES = 1 << 19
"""Bytes read from the file at a time: large enough that numpy's per-call overhead vanishes,
small enough that the parser's per-field arrays (about ten int64 arrays of one value per
field) stay a few MB (``roller analyze`` peaked at 59 MB with 1 MiB blocks, 50 MB with these)."""

LIMITS = (("t", 1e19, "s"),
          ("ax", 1000.0, "m/s^2"), ("ay", 1000.0, "m/s^2"), ("az", 1000.0, "m/s^2"),
          ("gx", 5000.0, "rad/s"), ("gy", 5000.0, "rad/s"), ("gz", 5000.0, "rad/s"))
"""Largest magnitude accepted per column. Far beyond any sensor we support (16 g is 157 m/s^2,
2000 deg/s is 35 rad/s), so a value beyond it is a broken file, not a fast roller, and would
otherwise overflow the pipeline's arithmetic. The limits leave room for a recording in the
wrong units, which :mod:`roller.recordings.units` then recognises and names: Unix time in ns is
1.8e18,
a gyro in deg/s reads up to 2000 (and an accelerometer in g stays small anyway)."""

_LIMIT = np.array([limit for _name, limit, _unit in LIMITS])

_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
"""A plain decimal number, the only form we write (Python's float() would also take '1_0',
'nan' and 'infinity', numpy's reader not all of them)."""


def read_chunks(path: str | os.PathLike[str], chunk_rows: int = CHUNK_ROWS,
                ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Yield ``(t, samples)`` blocks: ``t`` shape (N,) in s, ``samples`` (N, 6) float64.

    Columns may come in any order and extra columns are ignored, as long as the header names
    all seven. Blank (or whitespace-only) lines are skipped. Raises :class:`RecordingError` on
    the first problem, with its line number: a value that is not a plain decimal number, not
    finite or beyond :data:`LIMITS`; time that does not strictly increase; a line longer than
    :data:`MAX_LINE_BYTES`; a file that is not UTF-8 text; a path that is not a regular file
    (a directory, a FIFO, a device such as /dev/zero: they could block or never end). Memory
    and time stay bounded whatever the file holds.

    How it is fast: the file is read :data:`READ_BYTES` at a time and cut after its last line
    break; each such block of whole lines is parsed in one go, its checks vectorised: by
    :mod:`roller.recordings.plain_decimals` when it holds only plain decimals (every file
    ``roller record`` writes), else by numpy's C reader. Only a block that fails a check is
    taken apart line by line, to name the line and the problem: the error messages are the
    line-by-line ones.
    """
    name = str(path)
    handle = _open_regular(name, path)
    with handle:
        blocks = _blocks(name, handle)
        first = next(blocks, None)
        header_line = None
        if first is not None:
            line_no, raw, lines = first
            header_line, raw = _split_header(name, raw)
        if header_line is None or not header_line.strip():
            raise RecordingError(name, 1, f"empty file: expected the header '{HEADER}'")
        order = _column_order(name, header_line)
        n_columns = len(header_line.split(","))
        last_t = -math.inf
        rows_seen = 0
        line_no = 2
        pending = [(line_no, raw, lines - 1)] if raw else []
        for line_no, raw, lines_in_block in itertools.chain(pending, blocks):
            block, lines = _parse_raw_block(name, raw, line_no, lines_in_block, order,
                                            n_columns)
            line_no += lines_in_block
            if block.shape[0] == 0:
                continue
            t = block[:, 0]
            dt = np.diff(t, prepend=last_t)
            bad = np.flatnonzero(~(dt > 0))
            if bad.size:
                i = int(bad[0])
                before = last_t if i == 0 else t[i - 1]
                raise RecordingError(name, int(lines[i]),
                                     f"time goes backwards or repeats: t={t[i]!r} after "
                                     f"t={before!r} (t must strictly increase)")
            last_t = float(t[-1])
            rows_seen += block.shape[0]
            for start in range(0, block.shape[0], chunk_rows):
                part = block[start:start + chunk_rows]
                yield np.ascontiguousarray(part[:, 0]), np.ascontiguousarray(part[:, 1:])
        if rows_seen == 0:
            raise RecordingError(name, max(1, line_no - 1), "no samples after the header")


def _blocks(name: str, handle: io.RawIOBase) -> Iterator[tuple[int, bytes, int]]:
    """``(number of the first line, raw bytes, lines in them)`` of blocks of whole lines
    (each ends after a line break: \\n, \\r\\n or \\r; the last may end without one), about
    :data:`READ_BYTES` each. A line with no break after :data:`MAX_LINE_BYTES` is refused
    here, before more of it is read."""
    line_no = 1
    rest = b""
    while True:
        data = handle.read(READ_BYTES)
        if not data:
            if rest:
                yield line_no, rest, _count_lines(rest)
            return
        buf = rest + data
        cut = buf.rfind(b"\n") + 1
        if cut == 0:
            # a lone \r is a line break too, unless it is the last byte (\r\n cut in two)
            cut = buf.rfind(b"\r", 0, len(buf) - 1) + 1
        if cut == 0:
            if len(buf) > MAX_LINE_BYTES:
                raise _too_long(name, line_no)
            rest = buf
            continue
        block, rest = buf[:cut], buf[cut:]
        lines = _count_lines(block)
        if len(rest) > MAX_LINE_BYTES:
            raise _too_long(name, line_no + lines)
        yield line_no, block, lines
        line_no += lines


def _count_lines(raw: bytes) -> int:
    """Lines in ``raw`` as :meth:`bytes.splitlines` counts them (\\n, \\r\\n, \\r)."""
    breaks = raw.count(b"\n")
    if b"\r" in raw:                       # rare: counting \r\n pairs is slow
        breaks += raw.count(b"\r") - raw.count(b"\r\n")
    return breaks + (0 if not raw or raw[-1:] in (b"\n", b"\r") else 1)


def _split_header(name: str, raw: bytes) -> tuple[str, bytes]:
    """The first line as text (a byte-order mark dropped) and the bytes after it."""
    first = raw.splitlines(keepends=True)[0] if raw else b""
    if len(first) > MAX_LINE_BYTES:
        raise _too_long(name, 1)
    try:
        text = first.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordingError(name, 1, f"not a UTF-8 text file ({exc.reason})") from None
    return text.lstrip("\ufeff"), raw[len(first):]


def _parse_raw_block(name: str, raw: bytes, first_line: int, lines_in_block: int,
                     order: list[int], n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    """The seven columns (t first) of a block of whole lines, and each row's line number.

    The plain-decimal reader (or, for other number forms, numpy's C reader) on the whole block
    must give one row per line and values within :data:`LIMITS`. Anything else (blank lines,
    a lone \\r, a bad value, a long line) goes line by line, which names the line and the
    problem."""
    block = plain_decimals.parse(raw, n_columns)
    if block is None and (b"\r" not in raw or raw.count(b"\r") == raw.count(b"\r\n")):
        block = _parse_with_numpy(raw, n_columns)  # no lone \r: numpy would take it as a break
    if block is not None and block.shape == (lines_in_block, n_columns) \
            and _longest_line(raw) <= MAX_LINE_BYTES:
        block = block[:, order]
        if (np.abs(block) <= _LIMIT).all():  # False for NaN too
            return block, np.arange(first_line, first_line + lines_in_block)
    numbered = _numbered_lines(name, raw, first_line)
    numbered = [(n, line) for n, line in numbered if line.strip()]
    if not numbered:
        return np.empty((0, len(COLUMNS))), np.empty(0, dtype=np.int64)
    block = _parse_block(name, numbered, order, n_columns)
    return block, np.array([n for n, _line in numbered])


def _longest_line(raw: bytes) -> int:
    if len(raw) <= MAX_LINE_BYTES:
        return len(raw)
    breaks = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10)
    edges = np.concatenate(([-1], breaks, [len(raw) - 1]))
    return int(np.diff(edges).max())


def _parse_with_numpy(raw: bytes, n_columns: int) -> np.ndarray | None:
    """numpy's C reader on the whole block; None if it refuses or the text is not UTF-8."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # from the bytes (decoded by numpy as it reads): no copy of the block as text
            return np.loadtxt(io.BytesIO(raw), delimiter=",", ndmin=2, dtype=np.float64,
                              comments=None, encoding="utf-8")
    except ValueError:          # UnicodeDecodeError included
        return None


def _numbered_lines(name: str, raw: bytes, first_line: int) -> list[tuple[int, str]]:
    """``(line number, text)`` of each line of ``raw`` (line ends kept), decoded as UTF-8:
    the line-by-line path, which names the line of a problem."""
    parts = raw.splitlines(keepends=True)
    out = []
    for line_no, part in enumerate(parts, first_line):
        if len(part) > MAX_LINE_BYTES:
            raise _too_long(name, line_no)
        try:
            out.append((line_no, part.decode("utf-8")))
        except UnicodeDecodeError as exc:
            raise RecordingError(name, line_no,
                                 f"not a UTF-8 text file ({exc.reason})") from None
    return out


def _open_regular(name: str, path: str | os.PathLike[str]) -> io.BufferedReader:
    """Open ``path`` for binary reading if it is a regular file (checked on the open file, so
    a file swapped after a check cannot slip through)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    except (OSError, ValueError) as exc:  # ValueError: a NUL byte in the path
        problem = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise RecordingError(name, None, f"cannot open: {problem}") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
                    else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
                    else "a socket" if stat.S_ISSOCK(mode) else "not a file")
            raise RecordingError(name, None, f"expected a regular file (a recording), "
                                             f"found {kind}")
        if hasattr(os, "O_NONBLOCK"):
            os.set_blocking(fd, True)
        return open(fd, "rb", buffering=0)
    except BaseException:
        os.close(fd)
        raise


def _too_long(name: str, line_no: int) -> RecordingError:
    return RecordingError(name, line_no, f"line longer than {MAX_LINE_BYTES} bytes (not a "
                                         f"recording, or a file without line breaks)")


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


def _parse_block(name: str, numbered: list[tuple[int, str]], order: list[int],
                 n_columns: int) -> np.ndarray:
    """Parse non-blank lines with numpy's C reader; on any doubt find the offending line in
    Python. Returns the seven columns (t first) in :data:`COLUMNS` order.

    numpy rejects rows whose number of values differs from the first row's and parses every
    column, so the checks left are the column count against the header, finiteness and the
    :data:`LIMITS`: all vectorised. The line-by-line scan runs only on a bad chunk.
    """
    lines = [line for _n, line in numbered]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            block = np.loadtxt(lines, delimiter=",", ndmin=2, dtype=np.float64, comments=None)
    except ValueError:
        block = None
    if block is not None and block.shape == (len(lines), n_columns):
        block = block[:, order]
        if (np.abs(block) <= _LIMIT).all():  # False for NaN too
            return block
    for line_no, line in numbered:
        _check_line(name, line_no, line, order, n_columns)
    # numpy refused something the line check accepts (it should not happen): say where.
    raise RecordingError(name, numbered[0][0], "could not be parsed as numbers (this chunk "
                         "starts here)")


def _check_line(name: str, line_no: int, line: str, order: list[int], n_columns: int) -> None:
    cells = line.rstrip("\r\n").split(",")
    if len(cells) != n_columns:
        raise RecordingError(name, line_no,
                             f"expected {n_columns} comma-separated values, found {len(cells)}")
    for (column, limit, unit), index in zip(LIMITS, order, strict=True):
        cell = cells[index].strip()
        if not _NUMBER.fullmatch(cell):
            what = "is not finite" if cell.lower().lstrip("+-") in ("nan", "inf", "infinity") \
                else "is not a number"
            raise RecordingError(name, line_no, f"column {column}: {cell[:40]!r} {what} "
                                                f"(expected a decimal number in {unit})")
        value = float(cell)
        if not abs(value) <= limit:
            raise RecordingError(name, line_no,
                                 f"column {column}: {cell[:40]} is out of range (expected "
                                 f"-{limit:g} to {limit:g} {unit})")


def default_path(stem: str = "recording") -> Path:
    """A file name in the current directory that does not exist yet."""
    for i in itertools.count():
        candidate = Path(f"{stem}{'' if i == 0 else f'-{i}'}.csv")
        if not candidate.exists():
            return candidate
    raise AssertionError("unreachable")
