"""The recording format: round trips, chunking, and errors that name the file and the line."""

from __future__ import annotations

import contextlib
import io
import os
import time
from pathlib import Path

import numpy as np
import pytest

from roller import cli
from roller.base.errors import RecordingError
from roller.recordings import recording


def _samples(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.cumsum(rng.uniform(0.001, 0.003, n))
    return t, rng.normal(size=(n, 6))


def test_round_trip_keeps_the_values_to_the_written_precision(tmp_path) -> None:
    t, samples = _samples(1000)
    path = tmp_path / "r.csv"
    recording.write(path, t, samples)
    t2, s2 = recording.read(path)
    assert np.allclose(t2, t, atol=1e-6)
    assert np.allclose(s2[:, :3], samples[:, :3], atol=1e-5)
    assert np.allclose(s2[:, 3:], samples[:, 3:], atol=1e-6)
    assert path.read_text().splitlines()[0] == recording.HEADER


def test_chunks_cover_the_file_in_order(tmp_path) -> None:
    t, samples = _samples(2500)
    path = tmp_path / "r.csv"
    recording.write(path, t, samples)
    chunks = list(recording.read_chunks(path, chunk_rows=1000))
    assert [c[0].size for c in chunks] == [1000, 1000, 500]
    assert np.allclose(np.concatenate([c[0] for c in chunks]), t, atol=1e-6)


def test_columns_in_any_order_and_extra_columns(tmp_path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("gz,gy,gx,az,ay,ax,t,temp\n"
                    "6,5,4,3,2,1,0.0,25\n"
                    "12,11,10,9,8,7,0.01,25\n")
    t, s = recording.read(path)
    assert t.tolist() == [0.0, 0.01]
    assert s[0].tolist() == [1, 2, 3, 4, 5, 6]


def test_an_error_past_the_first_chunk_names_its_own_line(tmp_path) -> None:
    t, samples = _samples(30)
    path = tmp_path / "r.csv"
    recording.write(path, t, samples)
    lines = path.read_text().splitlines()
    lines[25] = lines[25].replace(",", ",x", 1)   # line 26 of the file
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(RecordingError) as err:
        list(recording.read_chunks(path, chunk_rows=10))
    assert err.value.line == 26
    assert str(path) in str(err.value)


def test_time_must_increase_across_chunk_boundaries(tmp_path) -> None:
    t, samples = _samples(30)
    t[20] = t[19]                                  # repeats: line 22 (header is line 1)
    path = tmp_path / "r.csv"
    recording.write(path, t, samples)
    with pytest.raises(RecordingError, match="backwards or repeats") as err:
        list(recording.read_chunks(path, chunk_rows=20))
    assert err.value.line == 22


@pytest.mark.parametrize(("text", "problem"), [
    ("", "empty"),
    ("t,ax,ay,az,gx,gy,gz\n", "no samples"),
    ("t,ax,ay,az\n0,1,2,3\n", "lacks column"),
    ("t,ax,ay,az,gx,gy,gz\n0,1,2,3,4,5,nan\n", "not finite"),
])
def test_malformed_files(tmp_path, text, problem) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(RecordingError, match=problem):
        list(recording.read_chunks(path))


def test_a_binary_file_is_not_a_recording(tmp_path) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(b"t,ax,ay,az,gx,gy,gz\n\xff\xfe\x00garbage\n")
    with pytest.raises(RecordingError):
        list(recording.read_chunks(path))


# -- adversarial inputs (issue 12): one clear line each, bounded time and memory -----------
HEADER_LINE = recording.HEADER + "\n"
GOOD = "".join(f"{i * 0.005:.3f},0.1,-0.2,9.8,0.01,0,0\n" for i in range(40))


@pytest.mark.parametrize(("row", "words"), [
    ("0.2,1e300,0,9.8,0,0,0", ("column ax", "1e300", "out of range", "m/s^2")),
    ("0.2,0,0,9.8,1e308,0,0", ("column gx", "1e308", "out of range", "rad/s")),
    ("1e300,0,0,9.8,0,0,0", ("column t", "out of range", " s)")),
    ("0.2,0,-inf,9.8,0,0,0", ("column ay", "not finite")),
    ("0.2,0,0,9.8,0,0,NaN", ("column gz", "not finite")),
    ("0.2,0,0,9.8,0,1_0,0", ("column gy", "'1_0'", "not a number")),
    ("0.2,0,0,9.8,0,0x10,0", ("column gy", "not a number")),
])
def test_values_beyond_any_sensor_name_the_column_the_line_and_the_range(tmp_path, row,
                                                                         words) -> None:
    path = tmp_path / "r.csv"
    path.write_text(HEADER_LINE + GOOD + row + "\n")
    with pytest.raises(RecordingError) as err:
        list(recording.read_chunks(path))
    assert err.value.line == 42
    for word in words:
        assert word in str(err.value)


@pytest.mark.parametrize("blank", ["   \n", "\t \r\n", "\n", " \r"])
def test_whitespace_only_lines_are_skipped_and_later_errors_keep_their_line(tmp_path,
                                                                            blank) -> None:
    path = tmp_path / "r.csv"
    rows = GOOD.splitlines(keepends=True)
    path.write_text(HEADER_LINE + "".join(rows[:20]) + blank + "".join(rows[20:]), newline="")
    t, _s = recording.read(path)
    assert t.size == 40
    path.write_text(HEADER_LINE + "".join(rows[:20]) + blank + "".join(rows[20:])
                    + "0.3,0,0,x,0,0,0\n", newline="")
    with pytest.raises(RecordingError, match="column az") as err:
        list(recording.read_chunks(path, chunk_rows=7))
    assert err.value.line == 43  # header + 40 rows + the blank line, then the bad one


def test_lines_split_across_read_blocks_keep_their_numbers(tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(recording, "READ_BYTES", 7)  # every line spans several reads
    path = tmp_path / "r.csv"
    path.write_bytes((HEADER_LINE + GOOD).replace("\n", "\r\n").encode()
                     + b"0.3,0,0,9.8,0,0,\xff\r\n")
    with pytest.raises(RecordingError, match="UTF-8") as err:
        list(recording.read_chunks(path))
    assert err.value.line == 42


def test_a_fifo_a_directory_and_a_device_are_refused_without_reading(tmp_path) -> None:
    fifo = tmp_path / "r.csv"
    os.mkfifo(fifo)  # nobody writes: opening it for reading would block forever
    for path, kind in ((fifo, "a FIFO"), (tmp_path, "a directory"),
                       (Path("/dev/zero"), "a device")):
        started = time.monotonic()
        with pytest.raises(RecordingError, match=f"expected a regular file.*found {kind}"):
            list(recording.read_chunks(path))
        assert time.monotonic() - started < 2.0


def test_a_file_without_line_breaks_is_refused_after_a_few_kilobytes(tmp_path) -> None:
    path = tmp_path / "r.csv"
    with path.open("wb") as f:  # 64 MB: more than we would want to hold as one line
        f.write(HEADER_LINE.encode())
        chunk = b"1" * (1 << 20)
        for _ in range(64):
            f.write(chunk)
    started = time.monotonic()
    with pytest.raises(RecordingError, match="longer than 4096 bytes") as err:
        list(recording.read_chunks(path))
    assert err.value.line == 2
    assert time.monotonic() - started < 2.0


def test_a_nul_in_the_path_is_a_recording_error(tmp_path) -> None:
    with pytest.raises(RecordingError, match="cannot open"):
        list(recording.read_chunks(f"{tmp_path}/a\0b.csv"))


def _cli(*args: str) -> tuple[int, list[str]]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        code = cli.main(["analyze", *args])
    return code, err.getvalue().strip().splitlines()


@pytest.mark.parametrize("case", ["1e300", "1e308", "nan", "blank-then-bad", "binary", "fifo",
                                  "directory", "long-line", "dev-zero"])
def test_roller_analyze_gives_one_line_and_status_2(tmp_path, case) -> None:
    path = tmp_path / "r.csv"
    if case == "1e300":
        path.write_text(HEADER_LINE + "0,1e300,0,0,0,0,0\n")
    elif case == "1e308":
        path.write_text(HEADER_LINE + GOOD + "9,1e308,1e308,0,0,0,0\n")
    elif case == "nan":
        path.write_text(HEADER_LINE + "0,nan,0,0,0,0,0\n")
    elif case == "blank-then-bad":
        path.write_text(HEADER_LINE + GOOD + "  \n0.1,0,0,0,0,0,0\n")
    elif case == "binary":
        path.write_bytes(bytes(range(256)) * 64)
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "directory":
        path.mkdir()
    elif case == "long-line":
        path.write_bytes(b"7" * (1 << 22))
    elif case == "dev-zero":
        path = Path("/dev/zero")
    code, lines = _cli(str(path))
    assert code == 2
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"roller analyze: bad recording: {path}")


def test_valid_data_around_a_blank_line_analyses(tmp_path) -> None:
    path = tmp_path / "r.csv"
    rows = GOOD.splitlines(keepends=True)
    path.write_text(HEADER_LINE + "".join(rows[:8]) + " \t \n" + "".join(rows[8:]))
    code, lines = _cli(str(path), "--json")
    assert code == 0, lines
