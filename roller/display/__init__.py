"""The web display: subscribes to the rollers over MQTT and serves a page that follows them.

:class:`~roller.display.bridge.MqttBridge` holds the broker link; :class:`DisplayServer` serves
the page (``static/``, our own HTML/CSS/JS, no third-party code) and streams to it with
Server-Sent Events. ``roller display`` runs both.
"""

from roller.display.bridge import MqttBridge
from roller.display.server import DisplayServer, DisplaySettings

__all__ = ["DisplayServer", "DisplaySettings", "MqttBridge"]
