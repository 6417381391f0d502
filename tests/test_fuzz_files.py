"""Fuzzing the readers of files we did not write (issue 12): the recording reader, the config
loader and the routine loader, on real files.

Whatever the bytes, each either returns or raises its documented error (RecordingError,
ConfigError) with a one-line message, within a deadline per example: never a traceback out of
numpy, tomllib or the OS, never a hang.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from roller.base.errors import ConfigError, RecordingError
from roller.coaching.routine import load_routine
from roller.recordings import recording
from roller.service.config import load_config

FUZZ = settings(max_examples=150, deadline=3000,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("fuzz")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_STATE_HOME", str(path / "state"))  # the default state_dir is checked
        mp.delenv("ROLLER_MQTT_PASSWORD", raising=False)
        yield path


def _one_line(exc: Exception) -> None:
    message = str(exc)
    assert "\n" not in message, message
    assert len(message) < 2000, message[:200]


# -- the recording reader ---------------------------------------------------------------------
CELLS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**400, 10**400).map(str),
    st.sampled_from(["", " ", "\t", "nan", "-inf", "1e308", "1e-400", "0x1", "1_0", "+.5", ".",
                     "--1", "1e", "\x00", "\ufeff0", "\u00a0", "١"]),
    st.text(max_size=8),
)
ROW = st.lists(CELLS, min_size=0, max_size=9).map(",".join)
NEWLINE = st.sampled_from(["\n", "\r\n", "\r", "\n\n", " \n", "\t\r\n"])


@st.composite
def recordings(draw) -> bytes:
    header = draw(st.sampled_from([recording.HEADER, "gz,gy,gx,az,ay,ax,t,temp", "t,ax",
                                   "\ufeff" + recording.HEADER, "", "T, AX ,ay,az,gx,gy,gz"]))
    rows = draw(st.lists(st.tuples(ROW, NEWLINE), max_size=30))
    text = header + draw(NEWLINE) + "".join(r + n for r, n in rows)
    data = text.encode("utf-8", "surrogatepass")
    if draw(st.booleans()):  # a damaged byte somewhere
        at = draw(st.integers(0, max(0, len(data) - 1)))
        data = data[:at] + draw(st.binary(min_size=1, max_size=4)) + data[at + 1:]
    return data


def _read(path: Path, chunk_rows: int) -> None:
    try:
        for t, s in recording.read_chunks(path, chunk_rows=chunk_rows):
            assert t.ndim == 1 and s.shape == (t.size, 6)
            assert (abs(s) <= 5000).all() and (abs(t) <= 1e19).all()
    except RecordingError as exc:
        _one_line(exc)
        assert str(path) in str(exc)


@FUZZ
@given(data=recordings(), chunk_rows=st.integers(1, 8))
def test_recording_reader_on_near_valid_files(folder, data, chunk_rows) -> None:
    path = folder / "r.csv"
    path.write_bytes(data)
    _read(path, chunk_rows)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_recording_reader_on_any_bytes(folder, data) -> None:
    path = folder / "r.csv"
    path.write_bytes(recording.HEADER.encode() + b"\n" + data if data[:1] == b"t" else data)
    _read(path, 16)


# -- the config and routine loaders -------------------------------------------------------------
SECTIONS = ["device", "sensor", "pipeline", "gpio", "mqtt", "homeassistant", "service", "coach",
            "history", "display", "nonsense"]
KEYS = ["id", "name", "port", "host", "client_id", "topic_prefix", "roll_axis", "gyro_bias_rad_s",
        "radius_m", "start_pause_pin", "next_pin", "buzzer_pin", "file", "routine", "enabled",
        "password_file", "tls_ca_file", "password", "state_dir", "x", ""]


def _toml(value) -> str:
    """A TOML rendering of ``value`` (JSON strings are TOML basic strings)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(value), repr(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {_toml(v)}" for k, v in value.items()) + "}"


VALUES = st.recursive(
    st.one_of(st.booleans(), st.integers(-2**70, 2**70), st.floats(),
              st.text(max_size=20), st.sampled_from(["/dev/zero", "/tmp", "a\x00b", "mat-1\n",
                                                     "", "lower_back_hips", "../../etc/passwd"])),
    lambda inner: st.one_of(st.lists(inner, max_size=4),
                            st.dictionaries(st.sampled_from(KEYS), inner, max_size=3)),
    max_leaves=12)


@st.composite
def config_texts(draw) -> str:
    lines = []
    for _ in range(draw(st.integers(0, 4))):
        lines.append(f"[{draw(st.sampled_from(SECTIONS))}]")
        for key in draw(st.lists(st.sampled_from(KEYS), max_size=4, unique=True)):
            lines.append(f"{json.dumps(key)} = {_toml(draw(VALUES))}")
    if draw(st.booleans()):
        depth = draw(st.integers(0, 3000))
        lines.insert(0, "deep = " + "[" * depth + "]" * depth)
    return "\n".join(lines) + "\n"


def _load(path: Path) -> None:
    try:
        config = load_config(path)
        load_routine(config.coach.routine)
    except ConfigError as exc:
        _one_line(exc)


@FUZZ
@given(text=config_texts())
def test_config_loader_on_near_valid_files(folder, text) -> None:
    path = folder / "roller.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _load(path)


@FUZZ
@given(data=st.binary(max_size=4096))
def test_config_and_routine_loaders_on_any_bytes(folder, data) -> None:
    path = folder / "roller.toml"
    path.write_bytes(data)
    _load(path)
    try:
        load_routine(path)
    except ConfigError as exc:
        _one_line(exc)


@FUZZ
@given(text=config_texts())
def test_routine_loader_on_near_valid_files(folder, text) -> None:
    path = folder / "routine.toml"
    path.write_text(text.replace("[coach]", "[[steps]]"), encoding="utf-8",
                    errors="surrogatepass")
    try:
        load_routine(path)
    except ConfigError as exc:
        _one_line(exc)


def test_the_fuzz_folder_is_a_real_folder(folder) -> None:
    assert folder.is_dir() and os.access(folder, os.W_OK)
