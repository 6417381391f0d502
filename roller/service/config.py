"""The service configuration: one TOML file, every section validated before anything starts.

``load_config(path)`` reads the file named by ``--config`` or ``$ROLLER_CONFIG``; with neither
it uses the built-in defaults (the values ``config/roller.toml`` documents), so
``roller run --simulate`` works with no file at all. Each section is the settings class of the
code that uses it (``[mqtt]`` is :class:`roller.mqtt.publisher.MqttSettings`, ``[coach]`` is
:class:`roller.coaching.coach.CoachSettings`, ...), validated with
:func:`roller.base.settings.from_mapping`:
an unknown key, a wrong type or an out-of-range value raises
:class:`~roller.base.errors.ConfigError`
naming the key, the expected and the actual value, and ``roller`` exits with status 78.

Secrets are not part of the config object: the MQTT password comes from
``mqtt.password_file`` or ``$ROLLER_MQTT_PASSWORD`` when the publisher connects
(:func:`roller.mqtt.publisher.resolve_password`).

Adding a section: declare its settings class beside its code, add one field below, and run
``python -m roller.service.config > config/roller.toml`` to document it (a test checks the file).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
import socket
import ssl
import sys
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.gpio import GpioSettings
from firmware_bridge.sensor import SensorSettings
from roller.base.errors import ConfigError
from roller.base.machine import machine_hash
from roller.base.paths import CONFIG_ENV, default_state_dir
from roller.base.settings import describe, from_mapping, setting
from roller.base.tomlfile import (
    MAX_FILE_BYTES,
    check_path_text,
    concise,
    hidden,
    read_regular_file,
    read_toml,
    shown,
)
from roller.coaching.coach import CoachSettings
from roller.coaching.history import HistorySettings
from roller.coaching.session import LEGACY_KEYS, SessionSettings
from roller.contract.messages import ID_RULE, SAFE_ID, SAFE_PREFIX
from roller.display.server import DisplaySettings
from roller.mqtt.client import MqttSettings, resolve_password
from roller.mqtt.homeassistant import HomeAssistantSettings
from roller.mqtt.homeassistant import check_settings as check_homeassistant
from roller.pipeline import PipelineSettings
from roller.service.loop import ServiceSettings

log = logging.getLogger("roller.service.config")


@dataclass(frozen=True)
class DeviceSettings:
    """Config section ``[device]``: who this roller is on a shared broker."""

    id: str = setting("", doc="device id, the second topic level (roller/<id>/...); letters, "
                              "digits, '_' and '-', first a letter or digit; empty: the host "
                              "name and a short hash of /etc/machine-id")
    name: str = setting("", doc="name shown by displays and Home Assistant; empty: "
                                "'Roller <id>'")


@dataclass(frozen=True)
class RollerConfig:
    """Everything ``roller run`` needs, one field per config section."""

    device: DeviceSettings = field(default_factory=DeviceSettings)
    sensor: SensorSettings = field(default_factory=SensorSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    homeassistant: HomeAssistantSettings = field(default_factory=HomeAssistantSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    coach: CoachSettings = field(default_factory=CoachSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    display: DisplaySettings = field(default_factory=DisplaySettings)
    state_dir: str = setting("", doc="where the outbox, calibration and history live; empty: "
                                     "$STATE_DIRECTORY under systemd, else "
                                     "~/.local/state/roller")

    @property
    def device_id(self) -> str:
        return self.device.id

    @property
    def device_name(self) -> str:
        return self.device.name or f"Roller {self.device.id}"

    @property
    def state_path(self) -> Path:
        """The state directory as a Path (not created here)."""
        return Path(self.state_dir).expanduser() if self.state_dir else default_state_dir()


def config_path(path: str | os.PathLike[str] | None) -> Path | None:
    """The config file to read: ``path`` (from ``--config``), else ``$ROLLER_CONFIG``, else
    None (built-in defaults)."""
    if path:
        return Path(path)
    env = os.environ.get(CONFIG_ENV)
    return Path(env) if env else None


def load_config(path: str | os.PathLike[str] | None = None) -> RollerConfig:
    """Read and validate the configuration (see the module docstring). Raises ConfigError,
    whatever the file holds (see :mod:`roller.base.tomlfile` for the limits on the file itself)."""
    source = config_path(path)
    data: dict[str, Any] = {}
    where = "built-in defaults"
    if source is not None:
        where = str(source)
        origin = "--config" if path else f"${CONFIG_ENV}"
        data = read_toml(source, key=origin, where=where)
    try:
        data = map_legacy_keys(data, where)
        _check_known_keys(RollerConfig, data, "", where)
        return _check_and_complete(from_mapping(RollerConfig, data, where=where), where)
    except ConfigError as exc:
        raise concise(exc) from None  # a long value shortened, a secret-looking one hidden


def map_legacy_keys(data: dict[str, Any], where: str) -> dict[str, Any]:
    """Move the session keys that used to live in ``[service]`` and ``[coach]``
    (:data:`roller.coaching.session.LEGACY_KEYS`) to ``[session]``, with a deprecation warning in
    the
    log for each. A key set in ``[session]`` wins over its old name (with a warning too)."""
    if not any(isinstance(data.get(old), dict) and key in data[old]
               for old, key in LEGACY_KEYS):
        return data
    data = {name: dict(value) if isinstance(value, dict) else value
            for name, value in data.items()}
    session = data.setdefault("session", {})
    if not isinstance(session, dict):
        return data  # from_mapping says what is wrong with it
    for (old, key), new in LEGACY_KEYS.items():
        section = data.get(old)
        if not isinstance(section, dict) or key not in section:
            continue
        value = section.pop(key)
        if new in session:
            log.warning("%s: [%s] %s is deprecated and ignored: [session] %s is set", where,
                        old, key, new)
            continue
        log.warning("%s: [%s] %s is deprecated: use [session] %s (read as that until the "
                    "next release)", where, old, key, new)
        session[new] = value
    return data


def _check_known_keys(cls: type, data: Any, prefix: str, where: str) -> None:
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
        section = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if section is not None and dataclasses.is_dataclass(section):
            _check_known_keys(section, value, f"{prefix}{name}.", where)


UNKNOWN_VALUE = hidden("unknown keys' values never are: one may be a misplaced secret")
"""What an unknown key's error shows instead of its value."""


def _check_and_complete(config: RollerConfig, where: str) -> RollerConfig:
    """Cross-field checks from_mapping cannot express, and the derived defaults."""
    _check_finite(config, "", where)
    device = config.device
    if device.id:
        if not SAFE_ID.fullmatch(device.id):
            raise ConfigError("device.id", ID_RULE, device.id, where)
    else:
        device = dataclasses.replace(device, id=host_device_id())
    if not device.name.isprintable() or len(device.name) > MAX_NAME_CHARS:
        raise ConfigError("device.name", f"at most {MAX_NAME_CHARS} printable characters",
                          shown("device.name", device.name), where)
    mqtt = config.mqtt
    if not SAFE_PREFIX.fullmatch(mqtt.topic_prefix):
        raise ConfigError("mqtt.topic_prefix", "levels of letters, digits, '_' or '-' "
                          "separated by '/'", mqtt.topic_prefix, where)
    if not SAFE_PREFIX.fullmatch(config.homeassistant.discovery_prefix):
        raise ConfigError("homeassistant.discovery_prefix", "letters, digits, '_' or '-'",
                          config.homeassistant.discovery_prefix, where)
    check_homeassistant(config.homeassistant, where)
    if not HOST.fullmatch(mqtt.host):
        raise ConfigError("mqtt.host", "a host name or IP address (1-253 letters, digits, "
                          "'.', '-', '_' or ':')", shown("mqtt.host", mqtt.host), where)
    if mqtt.client_id and not _printable_token(mqtt.client_id, MAX_CLIENT_ID_BYTES):
        raise ConfigError("mqtt.client_id", f"empty, or at most {MAX_CLIENT_ID_BYTES} bytes "
                          "without spaces or control characters",
                          shown("mqtt.client_id", mqtt.client_id), where)
    if mqtt.username and not (mqtt.username.isprintable()
                              and len(mqtt.username.encode()) <= MAX_USERNAME_BYTES):
        raise ConfigError("mqtt.username", f"at most {MAX_USERNAME_BYTES} bytes without "
                          "control characters", shown("mqtt.username", mqtt.username), where)
    if mqtt.reconnect_min_delay_s > mqtt.reconnect_max_delay_s:
        raise ConfigError("mqtt.reconnect_min_delay_s",
                          f"at most mqtt.reconnect_max_delay_s ({mqtt.reconnect_max_delay_s})",
                          mqtt.reconnect_min_delay_s, where)
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file", "password_file"):
        value = getattr(mqtt, key)
        check_path_text(f"mqtt.{key}", value, where)
        if value:
            try:
                read_regular_file(value, key=f"mqtt.{key}", what="PEM file" if key != \
                                  "password_file" else "password file", max_bytes=MAX_FILE_BYTES)
            except ConfigError as exc:
                raise ConfigError(exc.key, exc.expected, exc.actual, where) from None
    if bool(mqtt.tls_cert_file) != bool(mqtt.tls_key_file):
        raise ConfigError("mqtt.tls_key_file", "both tls_cert_file and tls_key_file, or neither",
                          mqtt.tls_key_file, where)
    _check_tls_files(mqtt, where)
    if mqtt.password_file and not mqtt.username:
        raise ConfigError("mqtt.username", "a user name (a password_file is set)", "", where)
    resolve_password(mqtt)  # a missing or unreadable password file fails now, not at connect
    _check_state_paths(config, where)
    _check_gpio(config.gpio, where)
    check_path_text("coach.routine", config.coach.routine, where)
    return dataclasses.replace(config, device=device)


HOST = re.compile(r"[A-Za-z0-9._:%-]{1,253}")
"""A host name, IPv4 or IPv6 address (with a %zone): what paho can connect to."""

MAX_CLIENT_ID_BYTES = 128
"""Longest MQTT client id accepted. MQTT allows 65535 bytes, but a broker may refuse long ids
(paho's network thread then dies quietly); the default, roller-<device id>, is at most 71."""

MAX_USERNAME_BYTES = 1024
MAX_NAME_CHARS = 128


def _printable_token(text: str, max_bytes: int) -> bool:
    return text.isprintable() and not any(c.isspace() for c in text) \
        and len(text.encode()) <= max_bytes


def _check_finite(value: Any, key: str, where: str) -> None:
    """Every number in every section is finite: NaN slips through range checks (every
    comparison with it is false) and inf through the ones without a bound."""
    if dataclasses.is_dataclass(value):
        for f in dataclasses.fields(value):
            _check_finite(getattr(value, f.name), f"{key}{f.name}" if not key
                          else f"{key}.{f.name}", where)
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_finite(item, f"{key}[{i}]", where)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(key, "a finite number", value, where)


def _check_tls_files(mqtt: MqttSettings, where: str) -> None:
    """The TLS files must be what OpenSSL can load: PEM, and an unencrypted key matching the
    certificate (paho would otherwise fail at connect, or OpenSSL prompt for a pass phrase)."""
    if not (mqtt.tls_ca_file or mqtt.tls_cert_file):
        return
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if mqtt.tls_ca_file:
        try:
            context.load_verify_locations(cafile=mqtt.tls_ca_file)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError("mqtt.tls_ca_file", "a PEM file of CA certificates",
                              f"{mqtt.tls_ca_file} ({_ssl_reason(exc)})", where) from None
    if mqtt.tls_cert_file:
        try:
            context.load_cert_chain(mqtt.tls_cert_file, mqtt.tls_key_file,
                                    password=lambda: b"")  # an encrypted key fails, not prompts
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise ConfigError("mqtt.tls_cert_file", "a PEM certificate and its matching, "
                              "unencrypted PEM key (mqtt.tls_key_file)",
                              f"{mqtt.tls_cert_file} ({_ssl_reason(exc)})", where) from None


def _ssl_reason(exc: BaseException) -> str:
    return str(getattr(exc, "reason", None) or getattr(exc, "strerror", None) or exc)


def _check_state_paths(config: RollerConfig, where: str) -> None:
    """The state directory must be a directory, or creatable (its nearest existing ancestor a
    directory); the history file must not be a directory or a device."""
    check_path_text("state_dir", config.state_dir, where)
    check_path_text("history.file", config.history.file, where)
    state = config.state_path
    key = "state_dir" if config.state_dir else "state_dir (default)"
    probe = state
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise ConfigError(key, "a directory (or a path where one can be created)",
                          f"{state} ({probe} is not a directory)", where)
    if config.history.enabled:
        history = config.history.path(state)
        if history.exists() and not history.is_file():
            raise ConfigError("history.file", "a SQLite file (or a name for a new one)",
                              f"{history} (not a regular file)", where)


def _check_gpio(gpio: GpioSettings, where: str) -> None:
    """Each GPIO pin drives one thing."""
    used: dict[int, str] = {}
    for f in dataclasses.fields(gpio):
        pin = getattr(gpio, f.name)
        if not f.name.endswith("_pin") or pin is None:
            continue
        if pin in used:
            raise ConfigError(f"gpio.{f.name}", f"a pin not already used by gpio.{used[pin]}",
                              pin, where)
        used[pin] = f.name


def host_device_id(hostname: str | None = None, machine: str | None = None) -> str:
    """The default device id: the host name (unsafe characters become '-') and a short stable
    hash of the machine (:func:`roller.base.machine.machine_hash`), e.g. ``raspberrypi-3f9a1c``:
    two Pis both called ``raspberrypi`` differ, and the id stays the same across restarts.
    At most 64 characters."""
    tag = machine_hash() if machine is None else machine
    name = (hostname or socket.gethostname() or "roller").split(".")[0]
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-_")[:64 - len(tag) - 1] or "roller"
    return f"{safe}-{tag}" if tag else safe


def override_broker(config: RollerConfig, address: str) -> RollerConfig:
    """``--broker HOST:PORT`` (or just HOST) replaces ``mqtt.host`` / ``mqtt.port``."""
    host, sep, port_text = address.rpartition(":")
    if not sep:
        host, port_text = address, str(config.mqtt.port)
    host = host.strip("[]")  # [::1]:1883
    if not host or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ConfigError("--broker", "HOST:PORT with a port from 1 to 65535", address)
    return dataclasses.replace(
        config, mqtt=dataclasses.replace(config.mqtt, host=host, port=int(port_text)))


# -- documentation ---------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '""'


def _comment(text: str) -> list[str]:
    return textwrap.wrap(text, width=98, initial_indent="# ", subsequent_indent="#   ")


def _section_lines(name: str, cls: type) -> list[str]:
    doc = (cls.__doc__ or "").strip().splitlines()
    title = re.sub(r"^Config section ``\[\w+\]``:?\s*", "", doc[0]) if doc else ""
    lines = [*_comment(f"[{name}] {title}".strip()), f"[{name}]"]
    for key, type_name, default, text in describe(cls):
        lines.extend(_comment(f"{text} ({type_name})"))
        if default is None:
            lines.append(f"# {key} =     (unset by default)")
        else:
            lines.append(f"# {key} = {_toml_value(default)}")
    return lines


def document() -> str:
    """``config/roller.toml``: every section and key, commented out, with default and unit."""
    out = [
        "# roller companion configuration (roller run --config FILE, or $ROLLER_CONFIG).",
        "# Every key is optional: a commented key shows its built-in default. Uncomment to change.",
        "# Units are in brackets. Unknown keys, wrong types and out-of-range values stop the",
        "# service with exit status 78 and a message naming the key.",
        "# Regenerate after adding a setting: python -m roller.service.config > config/roller.toml",
        "",
        *_comment(RollerConfig.__dataclass_fields__["state_dir"].metadata["doc"]),
        '# state_dir = ""',
    ]
    for f in dataclasses.fields(RollerConfig):
        cls = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if cls is not None and dataclasses.is_dataclass(cls):
            out.append("")
            out.extend(_section_lines(f.name, cls))
            if cls is SessionSettings:
                out.extend(_comment("Deprecated (still read, with a warning in the log, until "
                                    "the next release): " + "; ".join(
                                        f"[{old}] {key} is [session] {new}"
                                        for (old, key), new in LEGACY_KEYS.items()) + "."))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
