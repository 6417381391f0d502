"""The recording format: round trips, chunking, and errors that name the file and the line."""

from __future__ import annotations

import numpy as np
import pytest

from roller import recording
from roller.errors import RecordingError


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
