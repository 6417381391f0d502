"""The one config file both processes read: where it is, which sections exist, how a process
takes the sections it uses.

``roller run`` and ``roller display`` read the same ``roller.toml`` (``--config``, else
``$ROLLER_CONFIG``, else the built-in defaults), but each validates only what it uses, with
settings classes that live beside its own code: the service's in :mod:`roller.service.config`,
the display's in :mod:`roller.display.config`. So neither process loads the other's modules to
read its config. What they share is here:

- :data:`SECTIONS`, the names of every section (and :data:`TOP_LEVEL_KEYS`): a name outside
  them is refused by both processes, so a misspelt ``[displya]`` stops the display *and* the
  service. A section one process does not use is left to the other to validate key by key.
- :func:`load_sections`: read the file and build a process's config class, one field per section
  (``field(default_factory=SettingsClass)``). A *partial* section (``metadata=PARTIAL``) takes
  only the keys its class declares and leaves the rest of the table to the process that reads
  it in full (the service reads where the display serves, for Home Assistant's link; the
  display reads the go-slow band of ``[pipeline]``). Every other section refuses an unknown key
  without quoting its value (it may be a misplaced secret), and every number must be finite.
- the state directory setting, and ``--broker HOST:PORT``.

Errors are :class:`~roller.base.errors.ConfigError` naming the key, the expected and the actual
value and the file; ``roller`` exits 78 with that one line.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from roller.base.errors import ConfigError
from roller.base.paths import CONFIG_ENV, default_state_dir
from roller.base.settings import from_mapping, setting
from roller.base.tomlfile import check_path_text, concise, hidden, read_toml

T = TypeVar("T")

SECTIONS: tuple[str, ...] = ("device", "sensor", "phone", "pipeline", "gpio", "mqtt",
                             "homeassistant", "service", "session", "coach", "history", "display")
"""Every config section, in the order ``config/roller.toml`` documents them. Each is validated
in full by the process that uses it (a test checks that every name here is, by one of them)."""

TOP_LEVEL_KEYS: tuple[str, ...] = ("state_dir",)
"""Keys outside any section."""

UNKNOWN_VALUE = hidden("unknown keys' values never are: one may be a misplaced secret")
"""What an unknown key's error shows instead of its value."""

STATE_DIR_DOC = ("where the outbox, calibration, history and the display's pairing token live; "
                 "empty: $STATE_DIRECTORY under systemd, else ~/.local/state/roller")


def state_dir_setting() -> Any:
    """The top-level ``state_dir`` field, declared once for both processes' config classes."""
    return setting("", doc=STATE_DIR_DOC)


def state_path(state_dir: str) -> Path:
    """``state_dir`` as a Path, or the default state directory (not created here)."""
    return Path(state_dir).expanduser() if state_dir else default_state_dir()


def check_state_dir(state_dir: str, where: str) -> Path:
    """The state directory must be a directory, or creatable (its nearest existing ancestor a
    directory). Returns it as a Path."""
    check_path_text("state_dir", state_dir, where)
    state = state_path(state_dir)
    key = "state_dir" if state_dir else "state_dir (default)"
    probe = state
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(key, "a directory (or a path where one can be created)",
                          f"{state} ({probe} is not a directory)", where)
    return state


PARTIAL: Mapping[str, Any] = MappingProxyType({"partial": True})
"""The metadata of a partial section's field, ``field(default_factory=cls, metadata=PARTIAL)``:
only ``cls``'s keys are taken from the table; the others belong to another process, which
checks them. A section field without it is read in full."""


def _section_class(f: dataclasses.Field[Any]) -> type | None:
    """The settings class of a config class's field, if it is a section (its default a
    settings dataclass)."""
    cls = f.default_factory
    if cls is dataclasses.MISSING or not isinstance(cls, type) \
            or not dataclasses.is_dataclass(cls):
        return None
    return cls


def section_classes(config_cls: type, *, partial: bool | None = None) -> dict[str, type]:
    """name -> settings class of ``config_cls``'s sections (only the partial or only the full
    ones if ``partial`` says)."""
    found = {}
    for f in dataclasses.fields(config_cls):
        cls = _section_class(f)
        if cls is not None and (partial is None or bool(f.metadata.get("partial")) == partial):
            found[f.name] = cls
    return found


def config_path(path: str | os.PathLike[str] | None) -> Path | None:
    """The config file to read: ``path`` (from ``--config``), else ``$ROLLER_CONFIG``, else
    None (built-in defaults)."""
    if path:
        return Path(path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None


def load_sections(config_cls: type[T], path: str | os.PathLike[str] | None,
                  complete: Callable[[T, str], T]) -> T:
    """``config_cls`` from the config file (see the module docstring); ``complete(config,
    where)`` makes the process's cross-field checks and fills derived defaults. Raises one
    ConfigError, its value shortened and secret-looking values hidden."""
    source = config_path(path)
    data: dict[str, Any] = {}
    where = "built-in defaults"
    if source is not None:
        where = str(source)
        origin = "--config" if path else f"${CONFIG_ENV}"
        data = read_toml(source, key=origin, where=where)
    try:
        taken = take_sections(config_cls, data, where)
        config = from_mapping(config_cls, taken, where=where)
        check_finite(config, "", where)
        return complete(config, where)
    except ConfigError as exc:
        raise concise(exc) from None


def take_sections(config_cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    """What ``config_cls`` reads of the file's ``data``: its sections (a partial one cut to its
    class's keys) and top-level keys. A name no process knows is refused here; a key unknown to
    a section this process reads in full too."""
    known = set(SECTIONS) | set(TOP_LEVEL_KEYS)
    for name in data:
        if name not in known:
            raise ConfigError(name or '""', f"one of {sorted(known)}", UNKNOWN_VALUE, where)
    fields = {f.name: f for f in dataclasses.fields(config_cls)}
    taken: dict[str, Any] = {}
    for name, value in data.items():
        f = fields.get(name)
        if f is None:
            continue  # another process's section
        cls = _section_class(f)
        if cls is None:
            taken[name] = value
        elif f.metadata.get("partial"):
            keys = {g.name for g in dataclasses.fields(cls)}
            taken[name] = {k: v for k, v in value.items() if k in keys} \
                if isinstance(value, dict) else value
        else:
            check_known_keys(cls, value, f"{name}.", where)
            taken[name] = value
    return taken


def check_known_keys(cls: type, data: Any, prefix: str, where: str) -> None:
    """An unknown key is refused without quoting its value: a misplaced or misspelt secret
    (``mqtt.password``, ``mqtt.pasword``) must not reach the journal."""
    if not isinstance(data, dict):
        return  # from_mapping says what is wrong with it
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for name, value in data.items():
        f = fields.get(name)
        if f is None:
            raise ConfigError(prefix + (name or '""'), f"one of {sorted(fields)}",
                              UNKNOWN_VALUE, where)
        nested = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if nested is not None and dataclasses.is_dataclass(nested):
            check_known_keys(nested, value, f"{prefix}{name}.", where)


def check_finite(value: Any, key: str, where: str) -> None:
    """Every number in every section is finite: NaN slips through range checks (every
    comparison with it is false) and inf through the ones without a bound."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            check_finite(getattr(value, f.name), f"{key}.{f.name}" if key else f.name, where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            check_finite(item, f"{key}[{i}]", where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, "a finite number", value, where)


def override_broker(config: T, address: str) -> T:
    """``--broker HOST:PORT`` (or just HOST) replaces ``mqtt.host`` / ``mqtt.port`` of a config
    with an ``mqtt`` section."""
    mqtt: Any = config.mqtt  # type: ignore[attr-defined]
    host, sep, port_text = address.rpartition(":")
    if not sep:
        host, port_text = address, str(mqtt.port)
    host = host.strip("[]")  # [::1]:1883
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError("--broker", "HOST:PORT with a port from 1 to 65535", address)
    return dataclasses.replace(  # type: ignore[type-var]
        config, mqtt=dataclasses.replace(mqtt, host=host, port=int(port_text)))
