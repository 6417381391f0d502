"""Home Assistant MQTT discovery: moved to :mod:`roller.homeassistant` (the announcement and
the ``state`` topic it reads live together there). This name stays importable."""

from roller.homeassistant import ORIGIN_URL, HomeAssistantSettings, discovery_config

__all__ = ["ORIGIN_URL", "HomeAssistantSettings", "discovery_config"]
