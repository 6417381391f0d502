"""Declarative settings: dataclasses whose fields carry their unit, range and documentation.

Each stage declares its own settings class beside its code (``PipelineSettings`` in
``roller.pipeline``, ``MqttSettings`` in the publisher, ...), built from :func:`setting` fields.
:func:`from_mapping` validates a plain mapping (a TOML table) against such a class and raises a
:class:`~firmware_bridge.errors.ConfigError` naming the key, what was expected and what was
found, so config files, routine files and MQTT payloads all fail the same readable way.

It lives in the bottom layer because the hardware layer declares its settings (``[sensor]``,
``[gpio]``) the same way and must not import the application; ``roller.base.settings`` re-exports
it.

Example::

    @dataclass(frozen=True)
    class HoldSettings:
        min_duration_s: float = setting(3.0, unit="s", minimum=0.5, doc="shortest hold")

    from_mapping(HoldSettings, {"min_duration_s": 2.0}, where="roller.toml [hold]")
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from firmware_bridge.errors import ConfigError

T = TypeVar("T")

_MISSING = dataclasses.MISSING


def setting(
    default: Any = _MISSING,
    *,
    doc: str,
    unit: str = "",
    minimum: float | None = None,
    maximum: float | None = None,
    choices: tuple[Any, ...] | None = None,
    default_factory: Any = _MISSING,
) -> Any:
    """A dataclass field with its documentation, unit and allowed range attached as metadata."""
    meta = {"doc": doc, "unit": unit, "minimum": minimum, "maximum": maximum, "choices": choices}
    if default_factory is not _MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def same_as(cls: type, name: str, default: Any = _MISSING) -> Any:
    """A field declared like ``cls``'s field ``name`` (documentation, unit, range), with its
    default or another one: a setting shown in two places is declared once."""
    source = {f.name: f for f in dataclasses.fields(cls)}[name]
    meta = dict(source.metadata)
    if default is _MISSING:
        default = source.default
    return dataclasses.field(default=default, metadata=meta)


def describe(cls: type) -> list[tuple[str, str, Any, str]]:
    """(name, type, default, documentation) for each field: used to document config files."""
    rows = []
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not _MISSING else None
        unit = f.metadata.get("unit", "")
        doc = f.metadata.get("doc", "") + (f" [{unit}]" if unit else "")
        rows.append((f.name, _type_name(_hints(cls)[f.name]), default, doc))
    return rows


def from_mapping(cls: type[T], data: Mapping[str, Any] | None, *, where: str = "",
                 prefix: str = "") -> T:
    """Build ``cls`` from ``data``, checking every key, type and range.

    ``prefix`` is prepended to key names in error messages (``"mqtt."``) and ``where`` names the
    source (a file path). Nested settings dataclasses are validated recursively. Unknown keys are
    errors: a typo must never be silently ignored.
    """
    data = {} if data is None else data
    if not isinstance(data, Mapping):
        raise ConfigError(prefix.rstrip(".") or "(top level)", "a table", data, where)
    hints = _hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        bad = unknown[0]
        raise ConfigError(prefix + (bad or '""'), f"one of {sorted(fields)}", data[bad],
                          where) from None
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        f = fields[name]
        kwargs[name] = _check(prefix + name, hints[name], value, f.metadata, where)
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        missing = [n for n, f in fields.items() if n not in kwargs
                   and f.default is _MISSING and f.default_factory is _MISSING]
        key = prefix + (missing[0] if missing else "?")
        raise ConfigError(key, "a value (this key is required)", None, where) from exc


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is typing.Literal:
        return " or ".join(repr(a) for a in typing.get_args(tp))
    if origin in (tuple, list):
        args = typing.get_args(tp)
        plural = {float: "numbers", int: "whole numbers", str: "strings", bool: "true/false"}
        return f"a list of {plural.get(args[0], _type_name(args[0]))}" if args else "a list"
    if tp is type(None):
        return "nothing (unset)"
    if dataclasses.is_dataclass(tp):
        return "a table"
    return {float: "a number", int: "a whole number", str: "a string", bool: "true or false"}.get(
        tp, getattr(tp, "__name__", str(tp)))


def _check(key: str, tp: Any, value: Any, meta: Mapping[str, Any], where: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _check(key, arg, value, meta, where)
            except ConfigError as exc:
                errors.append(exc)
        if len(errors) == 1:
            raise errors[0]
        raise ConfigError(key, _type_name(tp), value, where)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(key, "one of " + ", ".join(repr(a) for a in allowed), value, where)
        return value
    if origin in (tuple, list):
        if not isinstance(value, list | tuple):
            raise ConfigError(key, _type_name(tp), value, where)
        (item_tp, *_rest) = typing.get_args(tp) or (Any,)
        items = [_check(f"{key}[{i}]", item_tp, v, meta, where) for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if dataclasses.is_dataclass(tp):
        return from_mapping(tp, value, where=where, prefix=key + ".")
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(key, _with_unit("a number", meta), value, where)
        value = float(value)
        if not math.isfinite(value):  # NaN passes every range check; inf is never meant
            raise ConfigError(key, _with_unit("a finite number", meta), value, where)
    elif tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(key, "a whole number", value, where)
    elif tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(key, "true or false", value, where)
    elif tp is str:
        if not isinstance(value, str):
            raise ConfigError(key, "a string", value, where)
    elif tp is Any:
        return value
    _check_range(key, value, meta, where)
    return value


def _with_unit(text: str, meta: Mapping[str, Any]) -> str:
    unit = meta.get("unit")
    return f"{text} in {unit}" if unit else text


def _check_range(key: str, value: Any, meta: Mapping[str, Any], where: str) -> None:
    lo, hi, choices = meta.get("minimum"), meta.get("maximum"), meta.get("choices")
    if choices is not None and value not in choices:
        raise ConfigError(key, "one of " + ", ".join(repr(c) for c in choices), value, where)
    if lo is not None and hi is not None and not lo <= value <= hi:
        raise ConfigError(key, _with_unit(f"a value from {lo} to {hi}", meta), value, where)
    if lo is not None and value < lo:
        raise ConfigError(key, _with_unit(f"a value of at least {lo}", meta), value, where)
    if hi is not None and value > hi:
        raise ConfigError(key, _with_unit(f"a value of at most {hi}", meta), value, where)
