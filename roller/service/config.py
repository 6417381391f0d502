"""The service's configuration: the sections ``roller run`` uses, validated before anything starts.

``load_config(path)`` reads the file named by ``--config`` or ``$ROLLER_CONFIG``; with neither
it uses the built-in defaults (the values ``config/roller.toml`` documents), so
``roller run --simulate`` works with no file at all. Each section is the settings class of the
code that uses it (``[mqtt]`` is :class:`roller.mqtt.publisher.MqttSettings`, ``[coach]`` is
:class:`roller.coaching.coach.CoachSettings`, ...), validated with
:func:`roller.base.settings.from_mapping`: an unknown key, a wrong type or an out-of-range value
raises :class:`~roller.base.errors.ConfigError` naming the key, the expected and the actual
value, and ``roller`` exits with status 78.

The display reads the same file with its own sections (:mod:`roller.display.config`); what the
two share (the file, the list of section names, the state directory) is in
:mod:`roller.base.config_file`. Of ``[display]`` the service reads only where the page is
served (:class:`DisplayLink`, for Home Assistant's link to it); the display checks the rest.

Secrets are not part of the config object: the MQTT password comes from
``mqtt.password_file`` or ``$ROLLER_MQTT_PASSWORD`` when the publisher connects
(:func:`roller.mqtt.publisher.resolve_password`).

Adding a section: declare its settings class beside its code, add one field below and its name
to :data:`roller.base.config_file.SECTIONS`, and run
``python -m roller.commands.document_config > config/roller.toml`` to document it (a test checks
the file).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

from firmware_bridge.gpio import GpioSettings
from firmware_bridge.sensor import SensorSettings
from roller.base.config_file import (
    PARTIAL,
    check_state_dir,
    load_sections,
    override_broker,
    state_dir_setting,
    state_path,
)
from roller.base.device_id import host_device_id
from roller.base.errors import ConfigError
from roller.base.settings import setting
from roller.base.tomlfile import check_path_text, shown
from roller.coaching.coach import CoachSettings
from roller.coaching.history import HistorySettings
from roller.coaching.session import SessionSettings
from roller.contract.messages import ID_RULE, SAFE_ID, SAFE_PREFIX
from roller.mqtt.client import MqttSettings
from roller.mqtt.homeassistant import HomeAssistantSettings
from roller.mqtt.homeassistant import check_settings as check_homeassistant
from roller.mqtt.settings_rules import check_mqtt_settings
from roller.phone.settings import PhoneSettings
from roller.pipeline import PipelineSettings
from roller.service.loop import ServiceSettings

__all__ = ["DeviceSettings", "DisplayLink", "RollerConfig", "host_device_id", "load_config",
           "override_broker"]


@dataclass(frozen=True)
class DeviceSettings:
    """Config section ``[device]``: who this roller is on a shared broker."""

    id: str = setting("", doc="device id, the second topic level (roller/<id>/...); letters, "
                              "digits, '_' and '-', first a letter or digit; empty: the host "
                              "name and a short hash of /etc/machine-id")
    name: str = setting("", doc="name shown by displays and Home Assistant; empty: "
                                "'Roller <id>'")


@dataclass(frozen=True)
class DisplayLink:
    """What the service reads of ``[display]``: where the page is served, for the link Home
    Assistant shows (``homeassistant.display_url`` empty). Declared like
    :class:`roller.display.server.DisplaySettings`' fields (a test holds them equal)."""

    http_host: str = setting("0.0.0.0", doc="address to serve on; 0.0.0.0 lets a phone or "
                                            "tablet on the same network open the page")
    http_port: int = setting(8080, minimum=0, maximum=65535,
                             doc="TCP port of the page (0: any free port)")


@dataclass(frozen=True)
class RollerConfig:
    """Everything ``roller run`` needs, one field per config section it reads."""

    device: DeviceSettings = field(default_factory=DeviceSettings)
    sensor: SensorSettings = field(default_factory=SensorSettings)
    phone: PhoneSettings = field(default_factory=PhoneSettings)
    pipeline: PipelineSettings = field(default_factory=PipelineSettings)
    gpio: GpioSettings = field(default_factory=GpioSettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    homeassistant: HomeAssistantSettings = field(default_factory=HomeAssistantSettings)
    service: ServiceSettings = field(default_factory=ServiceSettings)
    session: SessionSettings = field(default_factory=SessionSettings)
    coach: CoachSettings = field(default_factory=CoachSettings)
    history: HistorySettings = field(default_factory=HistorySettings)
    display: DisplayLink = field(default_factory=DisplayLink, metadata=PARTIAL)
    state_dir: str = state_dir_setting()

    @property
    def device_id(self) -> str:
        return self.device.id

    @property
    def device_name(self) -> str:
        return self.device.name or f"Roller {self.device.id}"

    @property
    def state_path(self) -> Path:
        """The state directory as a Path (not created here)."""
        return state_path(self.state_dir)


def load_config(path: str | Path | None = None) -> RollerConfig:
    """Read and validate the service's sections (see the module docstring). Raises ConfigError,
    whatever the file holds (see :mod:`roller.base.tomlfile` for the limits on the file itself)."""
    return load_sections(RollerConfig, path, _check_and_complete)


MAX_NAME_CHARS = 128


def _check_and_complete(config: RollerConfig, where: str) -> RollerConfig:
    """Cross-field checks from_mapping cannot express, and the derived defaults."""
    device = config.device
    if device.id:
        if not SAFE_ID.fullmatch(device.id):
            raise ConfigError("device.id", ID_RULE, device.id, where)
    else:
        device = dataclasses.replace(device, id=host_device_id())
    if not device.name.isprintable() or len(device.name) > MAX_NAME_CHARS:
        raise ConfigError("device.name", f"at most {MAX_NAME_CHARS} printable characters",
                          shown("device.name", device.name), where)
    if not SAFE_PREFIX.fullmatch(config.homeassistant.discovery_prefix):
        raise ConfigError("homeassistant.discovery_prefix", "letters, digits, '_' or '-'",
                          config.homeassistant.discovery_prefix, where)
    check_homeassistant(config.homeassistant, where)
    check_mqtt_settings(config.mqtt, where)
    _check_state_paths(config, where)
    _check_gpio(config.gpio, where)
    check_path_text("coach.routine", config.coach.routine, where)
    return dataclasses.replace(config, device=device)


def _check_state_paths(config: RollerConfig, where: str) -> None:
    """The state directory must be a directory, or creatable; the history file must not be a
    directory or a device."""
    check_path_text("history.file", config.history.file, where)
    state = check_state_dir(config.state_dir, where)
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
