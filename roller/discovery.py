"""Home Assistant MQTT discovery: one device-based config message per roller.

Home Assistant (2024.11 and later) reads ``homeassistant/device/<id>/config``: a ``dev`` block
(the device), an ``o`` block (origin: which software announced it), shared options (here the
availability topic, our ``status``) and ``cmps``, one entry per entity with its platform ``p``,
``unique_id``, ``state_topic`` and ``value_template``. The publisher sends it retained on every
connect and again whenever Home Assistant announces ``online`` on ``homeassistant/status``
(its birth message after a restart). An empty retained payload removes the device.

Entities: speed (m/s), phase, strokes, hold time (s), too fast (binary sensor), current step
(from the coach topic) and sensor connected (diagnostic).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roller import __version__
from roller.mqtt_contract import Topics
from roller.settings import setting

ORIGIN_URL = "https://github.com/roller-companion/roller-companion"


@dataclass(frozen=True)
class HomeAssistantSettings:
    """Config section ``[homeassistant]``."""

    enabled: bool = setting(True, doc="announce the roller to Home Assistant (MQTT discovery); "
                                      "false removes an earlier announcement")
    discovery_prefix: str = setting("homeassistant",
                                    doc="Home Assistant's discovery prefix (its MQTT setting)")


def discovery_config(topics: Topics, *, name: str, model: str = "IMU foam roller"
                     ) -> dict[str, Any]:
    """The device-based discovery payload for the roller behind ``topics``."""
    dev_id = topics.device_id
    uid = f"roller_{dev_id}"

    def comp(platform: str, key: str, label: str, topic: str, template: str,
             **extra: Any) -> tuple[str, dict[str, Any]]:
        return f"{uid}_{key}", {"p": platform, "name": label, "unique_id": f"{uid}_{key}",
                                "object_id": f"{uid}_{key}", "state_topic": topic,
                                "value_template": template, **extra}

    components = dict([
        comp("sensor", "speed", "Speed", topics.live, "{{ value_json.speed_m_s }}",
             unit_of_measurement="m/s", device_class="speed", state_class="measurement",
             suggested_display_precision=3, icon="mdi:speedometer"),
        comp("sensor", "phase", "Phase", topics.live, "{{ value_json.phase }}",
             device_class="enum", options=["idle", "rolling", "holding"], icon="mdi:motion"),
        comp("sensor", "strokes", "Strokes", topics.live, "{{ value_json.stroke_count }}",
             state_class="total_increasing", icon="mdi:counter"),
        comp("sensor", "hold_time", "Hold time", topics.live, "{{ value_json.hold_time_s }}",
             unit_of_measurement="s", device_class="duration", state_class="measurement",
             suggested_display_precision=0, icon="mdi:timer-sand"),
        comp("binary_sensor", "too_fast", "Too fast", topics.live,
             "{{ 'ON' if value_json.too_fast else 'OFF' }}", payload_on="ON",
             payload_off="OFF", device_class="problem", icon="mdi:speedometer-slow"),
        comp("sensor", "current_step", "Current step", topics.coach,
             "{{ value_json.step.title if value_json.step else value_json.state }}",
             icon="mdi:format-list-numbered"),
        comp("binary_sensor", "sensor_ok", "Sensor connected", topics.health,
             "{{ 'ON' if value_json.sensor.connected else 'OFF' }}", payload_on="ON",
             payload_off="OFF", device_class="connectivity", entity_category="diagnostic"),
    ])
    return {
        "dev": {"ids": [uid], "name": name, "mf": "roller companion", "mdl": model,
                "sw": __version__},
        "o": {"name": "roller-companion", "sw": __version__, "url": ORIGIN_URL},
        "availability_topic": topics.status,
        "payload_available": "online",
        "payload_not_available": "offline",
        "qos": 0,
        "cmps": components,
    }
