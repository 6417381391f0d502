"""Routines as data: the default routine's content, and clear errors for broken files."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from roller.base.errors import ConfigError
from roller.coaching.routine import (
    DEFAULT_ROUTINE,
    ROUTINES_DIR,
    available_routines,
    load_routine,
    parse_routine,
)


def test_default_routine_follows_the_guidance() -> None:
    r = load_routine()
    assert r.name == DEFAULT_ROUTINE
    ids = [s.id for s in r.steps]
    assert ids == ["glutes_right", "glutes_left", "piriformis_right", "piriformis_left",
                   "ql_right", "ql_left", "si_joint"]
    glutes = r.steps[0]
    assert glutes.side == "right" and glutes.prop == "roller"
    assert "ankle" in glutes.position and "knee" in glutes.position  # crossed-ankle seat
    assert 30 <= glutes.target_active_s <= 60  # 30-60 s a side
    assert (glutes.hold_min_s, glutes.hold_max_s) == (20, 30)
    ql = r.steps[r.step_index("ql_right")]
    assert "rib" in ql.position and "spine" in ql.caution
    si = r.steps[-1]
    assert si.prop == "ball" and "professional" in si.caution
    tips = " ".join(r.tips).lower()
    for word in ("slow", "breath", "water", "pain", "spine"):
        assert word in tips, word
    # we do not promise what the evidence does not support
    text = (ROUTINES_DIR / "lower_back_hips.toml").read_text().lower()
    assert "fascia" not in text
    # both sides get the same work
    left = sum(s.target_active_s for s in r.steps if s.side == "left")
    right = sum(s.target_active_s for s in r.steps if s.side == "right")
    assert left == right > 0
    assert DEFAULT_ROUTINE in available_routines()


def test_load_by_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text((ROUTINES_DIR / "lower_back_hips.toml").read_text())
    assert load_routine(path).name == "lower_back_hips"
    assert load_routine("mine", search_dir=tmp_path).title == "Lower back and hips"


def _minimal(**step_overrides):
    step = {"id": "a", "title": "A", "muscle": "glutes", "side": "left", "position": "sit"}
    step.update(step_overrides)
    return {"name": "x", "title": "X", "steps": [step]}


@pytest.mark.parametrize(("override", "key", "expected"), [
    ({"side": "middle"}, "steps[0].side", "'left'"),
    ({"prop": "stick"}, "steps[0].prop", "'roller'"),
    ({"target_active_s": -5}, "steps[0].target_active_s", "from 5.0 to 900.0 in s"),
    ({"target_active_s": "long"}, "steps[0].target_active_s", "a number in s"),
    ({"hold_min_s": 40, "hold_max_s": 30}, "steps[0].hold_max_s", "hold_min_s"),
    ({"id": "two words"}, "steps[0].id", "without spaces"),
    ({"colour": "red"}, "steps[0].colour", "one of"),
])
def test_bad_step_names_key_expected_and_actual(override, key, expected) -> None:
    with pytest.raises(ConfigError) as info:
        parse_routine(_minimal(**override), where="r.toml")
    err = info.value
    assert err.key == key
    assert expected in err.expected
    assert err.where == "r.toml"
    assert str(err).startswith(f"r.toml: {key}: expected")


def test_duplicate_ids_and_empty_routines_are_refused() -> None:
    data = _minimal()
    data["steps"].append(dict(data["steps"][0]))
    with pytest.raises(ConfigError, match=r"steps\[1\]\.id: expected an id not used"):
        parse_routine(data)
    with pytest.raises(ConfigError, match="steps: expected at least one"):
        parse_routine({"name": "x", "title": "X"})
    with pytest.raises(ConfigError, match=r"steps\[0\]\.position: expected a value"):
        parse_routine({"name": "x", "title": "X",
                       "steps": [{"id": "a", "title": "A", "muscle": "m", "side": "left"}]})


def test_file_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("name = \n")
    with pytest.raises(ConfigError) as info:
        load_routine(bad)
    assert info.value.where == str(bad) and "valid TOML" in info.value.expected
    with pytest.raises(ConfigError, match="lower_back_hips") as info:
        load_routine("no_such_routine")
    assert info.value.actual == "no_such_routine"


def test_routines_are_found_next_to_an_installed_venv(tmp_path: Path, monkeypatch) -> None:
    """scripts/install-pi copies the checkout to /opt/roller and pip-installs the package into
    /opt/roller/.venv: the routines are then beside the venv, not beside the package."""
    import roller.coaching.routine as routine_module

    opt = tmp_path / "opt-roller"
    (opt / "config" / "routines").mkdir(parents=True)
    (opt / "config" / "routines" / "pi_only.toml").write_text(
        (ROUTINES_DIR / "lower_back_hips.toml").read_text().replace(
            'name = "lower_back_hips"', 'name = "pi_only"'))
    (opt / ".venv").mkdir()
    monkeypatch.setattr(routine_module.sys, "prefix", str(opt / ".venv"))
    monkeypatch.setattr(routine_module, "ROUTINES_DIR", tmp_path / "site-packages" / "config")
    assert load_routine("pi_only").name == "pi_only"
    assert "pi_only" in available_routines()
    with pytest.raises(ConfigError, match="searched") as info:
        load_routine("lower_back_hips")
    assert "pi_only" in info.value.expected


@pytest.mark.parametrize("case", ["binary", "deep", "fifo", "huge", "nul-name"])
def test_hostile_routine_files_give_one_config_error(tmp_path, case):
    """Issue 12: whatever the file, one ConfigError naming it, at once."""
    path = tmp_path / "r.toml"
    if case == "binary":
        path.write_bytes(b"name = 'x'\n" + bytes(range(256)))
    elif case == "deep":
        path.write_text("steps = " + "[" * 3000 + "]" * 3000 + "\n")
    elif case == "fifo":
        os.mkfifo(path)
    elif case == "huge":
        path.write_text("# padding\n" * 200_000)
    name = f"{tmp_path}/a\0b.toml" if case == "nul-name" else path
    with pytest.raises(ConfigError) as err:
        load_routine(name)
    message = str(err.value)
    assert "\n" not in message and len(message) < 600
    if case in ("binary", "deep", "huge"):
        assert err.value.where == str(path)
