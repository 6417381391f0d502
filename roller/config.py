"""The service configuration: one TOML file, every section validated before anything starts.

``load_config(path)`` reads the file named by ``--config`` or ``$ROLLER_CONFIG``; with neither
it uses the built-in defaults (the values ``config/roller.toml`` documents), so
``roller run --simulate`` works with no file at all. Each section is the settings class of the
code that uses it (``[mqtt]`` is :class:`roller.publisher.MqttSettings`, ``[coach]`` is
:class:`roller.coach.CoachSettings`, ...), validated with :func:`roller.settings.from_mapping`:
an unknown key, a wrong type or an out-of-range value raises :class:`~roller.errors.ConfigError`
naming the key, the expected and the actual value, and ``roller`` exits with status 78.

Secrets are not part of the config object: the MQTT password comes from
``mqtt.password_file`` or ``$ROLLER_MQTT_PASSWORD`` when the publisher connects
(:func:`roller.publisher.resolve_password`).

Adding a section: declare its settings class beside its code, add one field below, and run
``python -m roller.config > config/roller.toml`` to document it (a test checks the file).
"""

from __future__ import annotations

import dataclasses
import os
import re
import socket
import sys
import textwrap
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from firmware_bridge.gpio import GpioSettings
from firmware_bridge.sensor import SensorSettings
from roller.coach import CoachSettings
from roller.discovery import HomeAssistantSettings
from roller.display.server import DisplaySettings
from roller.errors import ConfigError
from roller.history import HistorySettings
from roller.paths import CONFIG_ENV, default_state_dir
from roller.pipeline import PipelineSettings
from roller.publisher import MqttSettings, resolve_password
from roller.service import ServiceSettings
from roller.settings import describe, from_mapping, setting
from roller.topics import SAFE_ID, SAFE_PREFIX


@dataclass(frozen=True)
class DeviceSettings:
    """Config section ``[device]``: who this roller is on a shared broker."""

    id: str = setting("", doc="device id, the second topic level (roller/<id>/...); letters, "
                              "digits, '_' and '-'; empty: derived from the host name")
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
    """Read and validate the configuration (see the module docstring). Raises ConfigError."""
    source = config_path(path)
    data: dict[str, Any] = {}
    where = "built-in defaults"
    if source is not None:
        where = str(source)
        origin = "--config" if path else f"${CONFIG_ENV}"
        try:
            text = source.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(origin, "an existing TOML file", str(source)) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(origin, "a readable UTF-8 TOML file",
                              f"{source} ({exc.__class__.__name__}: {exc})") from None
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            # The message carries "(at line L, column C)".
            raise ConfigError("(file syntax)", "valid TOML", str(exc), where) from None
    config = from_mapping(RollerConfig, data, where=where)
    return _check_and_complete(config, where)


def _check_and_complete(config: RollerConfig, where: str) -> RollerConfig:
    """Cross-field checks from_mapping cannot express, and the derived defaults."""
    device = config.device
    if device.id:
        if not SAFE_ID.match(device.id):
            raise ConfigError("device.id", "1-64 letters, digits, '_' or '-'", device.id, where)
    else:
        device = dataclasses.replace(device, id=host_device_id())
    mqtt = config.mqtt
    if not SAFE_PREFIX.match(mqtt.topic_prefix):
        raise ConfigError("mqtt.topic_prefix", "levels of letters, digits, '_' or '-' "
                          "separated by '/'", mqtt.topic_prefix, where)
    if not SAFE_PREFIX.match(config.homeassistant.discovery_prefix):
        raise ConfigError("homeassistant.discovery_prefix", "letters, digits, '_' or '-'",
                          config.homeassistant.discovery_prefix, where)
    if mqtt.reconnect_min_delay_s > mqtt.reconnect_max_delay_s:
        raise ConfigError("mqtt.reconnect_min_delay_s",
                          f"at most mqtt.reconnect_max_delay_s ({mqtt.reconnect_max_delay_s})",
                          mqtt.reconnect_min_delay_s, where)
    for key in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        value = getattr(mqtt, key)
        if value and not Path(value).is_file():
            raise ConfigError(f"mqtt.{key}", "an existing PEM file", value, where)
    if bool(mqtt.tls_cert_file) != bool(mqtt.tls_key_file):
        raise ConfigError("mqtt.tls_key_file", "both tls_cert_file and tls_key_file, or neither",
                          mqtt.tls_key_file, where)
    if mqtt.password_file and not mqtt.username:
        raise ConfigError("mqtt.username", "a user name (a password_file is set)", "", where)
    resolve_password(mqtt)  # a missing or unreadable password file fails now, not at connect
    return dataclasses.replace(config, device=device)


def host_device_id(hostname: str | None = None) -> str:
    """A device id from the host name: unsafe characters become '-', at most 64 characters."""
    name = (hostname or socket.gethostname() or "roller").split(".")[0]
    safe = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:64]
    return safe or "roller"


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
        "# Regenerate after adding a setting: python -m roller.config > config/roller.toml",
        "",
        *_comment(RollerConfig.__dataclass_fields__["state_dir"].metadata["doc"]),
        '# state_dir = ""',
    ]
    for f in dataclasses.fields(RollerConfig):
        cls = f.default_factory if f.default_factory is not dataclasses.MISSING else None
        if cls is not None and dataclasses.is_dataclass(cls):
            out.append("")
            out.extend(_section_lines(f.name, cls))
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(document())
