"""The declarative settings validator every config section, routine and payload goes through."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from roller.base.errors import ConfigError
from roller.base.settings import describe, from_mapping, setting


@dataclass(frozen=True)
class Inner:
    port: int = setting(1883, doc="TCP port", minimum=1, maximum=65535)


@dataclass(frozen=True)
class Example:
    radius_m: float = setting(0.075, unit="m", minimum=0.02, maximum=0.2, doc="roller radius")
    name: str = setting("roller", doc="a name")
    enabled: bool = setting(True, doc="on or off")
    body: Literal["roller", "ball"] = setting("roller", doc="what the IMU is in")
    axis: list[float] | None = setting(None, doc="pinned axis")
    inner: Inner = setting(default_factory=Inner, doc="nested table")


def test_defaults_when_empty():
    assert from_mapping(Example, {}) == Example()
    assert from_mapping(Example, None) == Example()


def test_values_are_converted_and_kept():
    got = from_mapping(Example, {"radius_m": 0.05, "axis": [1, 0, 0], "inner": {"port": 8883}})
    assert got.radius_m == 0.05
    assert got.axis == [1.0, 0.0, 0.0]
    assert got.inner == Inner(port=8883)


def test_int_is_accepted_as_float_but_bool_is_not():
    assert from_mapping(Example, {"radius_m": 0}.copy() | {"radius_m": 0.1}).radius_m == 0.1
    with pytest.raises(ConfigError) as info:
        from_mapping(Example, {"radius_m": True})
    assert info.value.key == "radius_m"


def test_unknown_key_names_key_and_the_allowed_ones():
    with pytest.raises(ConfigError) as info:
        from_mapping(Example, {"radius": 0.05}, where="roller.toml", prefix="pipeline.")
    message = str(info.value)
    assert message.startswith("roller.toml: pipeline.radius: expected one of")
    assert "radius_m" in message


def test_out_of_range_names_range_unit_and_actual_value():
    with pytest.raises(ConfigError) as info:
        from_mapping(Example, {"radius_m": 0.5})
    assert str(info.value) == "radius_m: expected a value from 0.02 to 0.2 in m, got 0.5"


def test_wrong_type_in_nested_table_gives_dotted_key():
    with pytest.raises(ConfigError) as info:
        from_mapping(Example, {"inner": {"port": "1883"}}, prefix="mqtt.")
    assert info.value.key == "mqtt.inner.port"
    assert info.value.expected == "a whole number"
    assert info.value.actual == "1883"


def test_literal_choices():
    with pytest.raises(ConfigError) as info:
        from_mapping(Example, {"body": "cube"})
    assert "'roller'" in info.value.expected and "'ball'" in info.value.expected


def test_not_a_table():
    with pytest.raises(ConfigError) as info:
        from_mapping(Example, {"inner": 5})
    assert info.value.key == "inner"
    assert info.value.expected == "a table"


def test_describe_lists_every_field_with_unit():
    rows = {name: doc for name, _type, _default, doc in describe(Example)}
    assert rows["radius_m"] == "roller radius [m]"
    assert set(rows) == {"radius_m", "name", "enabled", "body", "axis", "inner"}


@given(st.dictionaries(st.text(max_size=8), st.one_of(st.none(), st.integers(), st.floats(),
                                                      st.text(max_size=5), st.booleans(),
                                                      st.lists(st.integers(), max_size=3))))
def test_any_mapping_gives_a_settings_object_or_a_config_error(data):
    try:
        got = from_mapping(Example, data)
    except ConfigError as exc:
        assert exc.key  # always names the key
    else:
        assert isinstance(got, Example)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_refused_with_the_key_and_what_was_expected(value) -> None:
    @dataclass(frozen=True)
    class Axis:
        bias: float = setting(0.0, unit="rad/s", doc="offset")
        axis: tuple[float, ...] = setting(default_factory=lambda: (1.0, 0.0, 0.0), doc="axis")

    with pytest.raises(ConfigError, match=r"sensor\.bias: expected a finite number in rad/s"):
        from_mapping(Axis, {"bias": value}, where="roller.toml", prefix="sensor.")
    with pytest.raises(ConfigError, match=r"sensor\.axis\[1\]: expected a finite number"):
        from_mapping(Axis, {"axis": [1.0, value, 0.0]}, where="roller.toml", prefix="sensor.")
