"""The display's configuration: the sections ``roller display`` uses, from the same file as the
service's.

``roller display`` reads ``roller.toml`` (``--config``, else ``$ROLLER_CONFIG``, else the
built-in defaults) with the classes below and nothing of the service's: ``[display]`` in full
(:class:`~roller.display.server.DisplaySettings`), ``[mqtt]`` in full (it connects with it, and
checks it as the service does, :mod:`roller.mqtt.settings_rules`), the state directory (where
the pairing token is kept) and, of ``[pipeline]``, only the go-slow band it draws until a
roller's coach state brings its own (:class:`SpeedBand`). The other sections are the service's:
the display refuses a section name no process knows (:data:`roller.base.config_file.SECTIONS`)
and leaves their keys to the service.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from roller.base.config_file import (
    PARTIAL,
    check_state_dir,
    load_sections,
    override_broker,
    state_dir_setting,
    state_path,
)
from roller.base.settings import setting
from roller.display.server import DisplaySettings
from roller.mqtt.client import MqttSettings
from roller.mqtt.settings_rules import check_mqtt_settings

__all__ = ["DisplayConfig", "SpeedBand", "load_display_config", "override_broker"]


@dataclass(frozen=True)
class SpeedBand:
    """What the display reads of ``[pipeline]``: the go-slow band [m/s]. Declared like
    :class:`roller.pipeline.settings.PipelineSettings`' fields (a test holds them equal)."""

    max_speed_m_s: float = setting(0.05, unit="m/s", minimum=0.001, maximum=2.0,
                                   doc="go-slow limit: faster than this is 'too fast'")
    target_speed_m_s: float = setting(0.025, unit="m/s", minimum=0.001, maximum=2.0,
                                      doc="the speed to aim for (shown on displays)")


@dataclass(frozen=True)
class DisplayConfig:
    """Everything ``roller display`` needs, one field per config section it reads."""

    display: DisplaySettings = field(default_factory=DisplaySettings)
    mqtt: MqttSettings = field(default_factory=MqttSettings)
    pipeline: SpeedBand = field(default_factory=SpeedBand, metadata=PARTIAL)
    state_dir: str = state_dir_setting()

    @property
    def state_path(self) -> Path:
        """The state directory as a Path (not created here)."""
        return state_path(self.state_dir)

    @property
    def speed_band_m_s(self) -> tuple[float, float]:
        """(target, limit) [m/s] of the go-slow band."""
        return self.pipeline.target_speed_m_s, self.pipeline.max_speed_m_s


def load_display_config(path: str | Path | None = None) -> DisplayConfig:
    """Read and validate the display's sections. Raises ConfigError naming the key."""
    return load_sections(DisplayConfig, path, _check)


def _check(config: DisplayConfig, where: str) -> DisplayConfig:
    check_mqtt_settings(config.mqtt, where)
    check_state_dir(config.state_dir, where)
    return config
