"""Home Assistant: the device announcement (MQTT discovery) and the ``state`` topic it reads.

**Discovery.** Home Assistant (2024.11 and later) reads one retained device-based config on
``homeassistant/device/<id>/config``: a ``dev`` block (the device: name, model, software, the
chip as hardware version, the display page as configuration URL), an ``o`` block (origin: which
software announced it), shared options (availability follows our ``status``) and ``cmps``, one
entry per entity. A button whose command the session's state may refuse (Stop on a finished
session) is also unavailable while it would be refused: its ``availability`` list adds a
template on the ``state`` topic's ``session_state`` (:data:`roller.contract.verbs.POSSIBLE_IN`),
with ``availability_mode: all``. The publisher sends it on every connect and whenever Home
Assistant says ``online`` on ``homeassistant/status``; an empty retained payload removes the
device.

Entity ids stay the same on every core: each entity carries ``default_entity_id`` (the full id,
``sensor.roller_mat_3_speed``; read from 2025.10, the only one read from 2026.4) and
``object_id`` (the same id without the platform, for older cores, which drop
``default_entity_id`` as an unknown key). An entity this module no longer announces is listed
in :data:`RETIRED` as ``{"p": platform}``: Home Assistant then removes it.

**The state topic.** Sensors read ``roller/<id>/state`` (:func:`roller.contract.messages.
state_payload`), never the 10 Hz ``live`` topic: Home Assistant's recorder writes a row each
time a rendered state changes, so 10 Hz readings cost tens of thousands of rows an hour.
:class:`HomeAssistantSink` sends ``state`` at most every ``state_interval_s``, only when a
rounded value changed (and every ``state_heartbeat_s`` regardless), retained at QoS 1. Event
entities read the ``event/<kind>`` topics, one row per stroke, hold and too-fast pass.
:data:`ENTITIES` lists every entity with its topic; docs/mqtt.md shows the measured rows.

**Today and the last session** (:data:`DAY_ENTITIES`). Minutes rolled, holds and distance of
the local date are ``total_increasing`` sensors, so Home Assistant keeps long-term statistics
of them (a day's total falling to zero at midnight is a new meter cycle to it, not a loss). They
ride on the ``state`` topic too, from :class:`roller.coaching.day_totals.TodaysRolling` (the
history's sessions of the day plus the one under way), in whole minutes and metres: at most a
row a minute each while rolling, and none at rest but the midnight reset. The last session's
active minutes are a sensor whose attributes are that session's summary (``last_session`` in
``state``, from the history, so it survives restarts; not the ``session`` topic, which carries
the session under way as soon as the next one starts).
"""

from __future__ import annotations

import collections
import re
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from roller import __version__
from roller.base.errors import ConfigError
from roller.base.settings import setting
from roller.contract import messages as contract
from roller.contract.messages import Topics
from roller.contract.verbs import POSSIBLE_IN
from roller.pipeline.events import Event, TooFast

if TYPE_CHECKING:
    from roller.coaching.day_totals import TodaysRolling
    from roller.coaching.session import Session
    from roller.service.health import SensorChange
    from roller.service.sinks import Tick

ORIGIN_URL = "https://github.com/roller-companion/roller-companion"

PAYLOAD_PRESS = "{}"
"""What a button sends on ``cmd/<verb>``: an empty JSON object, which every verb accepts
(Home Assistant's default ``PRESS`` is not JSON)."""


@dataclass(frozen=True)
class HomeAssistantSettings:
    """Config section ``[homeassistant]``: the announcement to Home Assistant and the state topic
    it reads."""

    enabled: bool = setting(True, doc="announce the roller to Home Assistant (MQTT discovery); "
                                      "false removes an earlier announcement")
    discovery_prefix: str = setting("homeassistant",
                                    doc="Home Assistant's discovery prefix (its MQTT setting)")
    state_interval_s: float = setting(
        1.0, unit="s", minimum=0.2, maximum=60.0,
        doc="send the state topic Home Assistant reads at most this often (and only when a "
            "rounded value changed): what keeps its recorder small")
    speed_average_s: float = setting(
        5.0, unit="s", minimum=0.2, maximum=60.0,
        doc="the speed Home Assistant shows is the mean over this long of rolling (0 while "
            "still): the pace, not each pass's start and turn (the display shows the live "
            "speed)")
    state_heartbeat_s: float = setting(
        300.0, unit="s", minimum=1.0, maximum=86400.0,
        doc="send the state topic at least this often, changed or not (the recorder writes "
            "no row for an unchanged state)")
    display_url: str = setting(
        "", doc="the display page's address, Home Assistant's link to the device; empty: "
                "http://<this host>.local:<display.http_port>/?device=<id>; 'none': no link")


def check_settings(settings: HomeAssistantSettings, where: str) -> None:
    """Raise ConfigError for a ``display_url`` Home Assistant would refuse."""
    url = settings.display_url
    if url and url != "none" and not re.fullmatch(r"https?://[^\s/?#]+[^\s]*", url):
        raise ConfigError("homeassistant.display_url",
                          "empty, 'none', or an http:// or https:// address", url, where)


def display_url(settings: HomeAssistantSettings, *, device_id: str, http_host: str,
                http_port: int, hostname: str | None = None) -> str | None:
    """The configuration URL of the device: the display page (None: no link). A display
    listening on every address (``0.0.0.0``) is reached as ``<hostname>.local``; a display on
    an ephemeral port (0) cannot be linked."""
    if settings.display_url == "none":
        return None
    if settings.display_url:
        return settings.display_url
    if http_port == 0:
        return None
    host = http_host
    if host in ("", "0.0.0.0", "::"):
        name = hostname if hostname is not None else socket.gethostname()
        host = name if "." in name else f"{name}.local"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{http_port}/?device={device_id}"


# -- entities -------------------------------------------------------------------------------

@dataclass(frozen=True)
class Entity:
    """One Home Assistant entity: its key (``unique_id`` = ``roller_<id>_<key>``), platform,
    name, where it reads (a topic name of :class:`Topics`, ``cmd/<verb>`` for a button) and its
    options for Home Assistant (``value_template``, unit, classes, ...)."""

    key: str
    platform: str
    name: str
    topic: str
    options: Mapping[str, Any] = field(default_factory=dict)
    rate: str = "at most 1 Hz, on change"
    """How often its topic carries a message that can change it (for the docs)."""
    attributes: str | None = None
    """The topic name its attributes come from (``json_attributes_topic``), if any."""


def _v(name: str) -> str:
    return "{{ value_json." + name + " }}"


def _on_off(name: str) -> str:
    return "{{ 'ON' if value_json." + name + " else 'OFF' }}"


ON_OFF = {"payload_on": "ON", "payload_off": "OFF"}
DIAGNOSTIC = {"entity_category": "diagnostic"}

_STROKE = ("{{ {'event_type': 'stroke', 'distance_cm': (value_json.distance_m * 100) | round(1),"
           " 'mean_speed_mm_s': (value_json.mean_speed_m_s * 1000) | round(0),"
           " 'direction': value_json.direction} | tojson }}")
_HOLD = ("{% if value_json.kind == 'hold_started' %}{{ {'event_type': 'hold_started'} | tojson }}"
         "{% elif value_json.kind == 'hold' %}{{ {'event_type': 'hold_ended',"
         " 'duration_s': value_json.duration_s | round(1)} | tojson }}{% endif %}")
_TOO_FAST = ("{% if value_json.kind == 'too_fast_alert' %}{{ {'event_type': 'too_fast_started',"
             " 'speed_mm_s': (value_json.speed_m_s * 1000) | round(0)} | tojson }}"
             "{% elif value_json.kind == 'too_fast' %}{{ {'event_type': 'too_fast_ended',"
             " 'peak_speed_mm_s': (value_json.peak_speed_m_s * 1000) | round(0),"
             " 'duration_s': (value_json.end_s - value_json.start_s) | round(1)} | tojson }}"
             "{% endif %}")

BUTTON_NAMES: dict[str, tuple[str, str]] = {
    "start": ("Start", "mdi:play"),
    "pause": ("Pause", "mdi:pause"),
    "resume": ("Resume", "mdi:play-pause"),
    "next": ("Next step", "mdi:skip-next"),
    "stop": ("Stop", "mdi:stop"),
    "start_pause": ("Start or pause", "mdi:play-pause"),
    "pain": ("Pain: stop now", "mdi:hand-back-left"),
}
"""Name and icon of the button for each command verb (every verb has one)."""
assert set(BUTTON_NAMES) == set(contract.COMMAND_VERBS)

_LAST_SESSION_ATTRIBUTES = (
    "{% set s = value_json.last_session %}{{ (dict(s, started=s.started_unix_s | "
    "timestamp_local, ended=s.ended_unix_s | timestamp_local) if s else {}) | tojson }}")

DAY_ENTITIES: tuple[Entity, ...] = (
    Entity("today_minutes", "sensor", "Rolled today", "state", {
        "value_template": "{{ value_json.today_active_s // 60 }}", "unit_of_measurement": "min",
        "device_class": "duration", "state_class": "total_increasing",
        "suggested_display_precision": 0, "icon": "mdi:calendar-today"},
        rate="at most once a minute while rolling (whole minutes); 0 at midnight"),
    Entity("today_holds", "sensor", "Holds today", "state", {
        "value_template": _v("today_holds"), "state_class": "total_increasing",
        "icon": "mdi:hand-back-right-outline"}, rate="once per hold; 0 at midnight"),
    Entity("today_distance", "sensor", "Distance today", "state", {
        "value_template": _v("today_distance_m"), "unit_of_measurement": "m",
        "device_class": "distance", "state_class": "total_increasing",
        "suggested_display_precision": 0, "icon": "mdi:map-marker-distance"},
        rate="once per metre rolled; 0 at midnight"),
    Entity("last_session", "sensor", "Last session", "state", {
        "value_template": "{{ (value_json.last_session.active_s / 60) | round(1) "
                          "if value_json.last_session else None }}",
        "unit_of_measurement": "min", "device_class": "duration",
        "suggested_display_precision": 1, "json_attributes_template": _LAST_SESSION_ATTRIBUTES,
        "icon": "mdi:history"}, rate="once per session", attributes="state"),
)
"""Today's totals (long-term statistics) and the last session's summary; see the module
docstring."""

ENTITIES: tuple[Entity, ...] = (
    Entity("speed", "sensor", "Speed", "state", {
        "value_template": _v("speed_mm_s"), "unit_of_measurement": "mm/s",
        "device_class": "speed", "state_class": "measurement",
        "suggested_display_precision": 0, "icon": "mdi:speedometer"}),
    Entity("phase", "sensor", "Phase", "state", {
        "value_template": _v("phase"), "device_class": "enum",
        "options": ["idle", "rolling", "holding"], "icon": "mdi:motion"}),
    Entity("too_fast", "binary_sensor", "Too fast", "state", {
        "value_template": _on_off("too_fast"), **ON_OFF, "device_class": "problem",
        "icon": "mdi:speedometer-slow"}),
    Entity("session_state", "sensor", "Session", "state", {
        "value_template": _v("session_state"), "device_class": "enum",
        "options": ["idle", "running", "paused", "finished"], "icon": "mdi:timer-play"}),
    Entity("active_time", "sensor", "Active time", "state", {
        "value_template": _v("session_active_s"), "unit_of_measurement": "s",
        "device_class": "duration", "state_class": "total_increasing",
        "suggested_display_precision": 0}),
    Entity("strokes", "sensor", "Strokes", "state", {
        "value_template": _v("session_strokes"), "state_class": "total_increasing",
        "icon": "mdi:counter"}),
    Entity("distance", "sensor", "Distance", "state", {
        "value_template": _v("session_distance_m"), "unit_of_measurement": "m",
        "device_class": "distance", "state_class": "total_increasing",
        "suggested_display_precision": 1}),
    Entity("holds", "sensor", "Holds", "state", {
        "value_template": _v("session_holds"), "state_class": "total_increasing",
        "icon": "mdi:hand-back-right"}),
    Entity("hold_total", "sensor", "Time holding", "state", {
        "value_template": _v("session_hold_time_s"), "unit_of_measurement": "s",
        "device_class": "duration", "state_class": "total_increasing",
        "suggested_display_precision": 0}),
    Entity("too_fast_time", "sensor", "Time too fast", "state", {
        "value_template": _v("session_too_fast_s"), "unit_of_measurement": "s",
        "device_class": "duration", "state_class": "total_increasing",
        "suggested_display_precision": 0, "icon": "mdi:speedometer-slow"}),
    Entity("mean_speed", "sensor", "Mean stroke speed", "state", {
        "value_template": _v("session_mean_speed_mm_s"), "unit_of_measurement": "mm/s",
        "device_class": "speed", "state_class": "measurement",
        "suggested_display_precision": 0}),
    Entity("current_step", "sensor", "Current step", "state", {
        "value_template": "{{ value_json.step if value_json.step else value_json.coach_state }}",
        "icon": "mdi:format-list-numbered"}),
    Entity("prompt", "sensor", "Coach prompt", "state", {
        "value_template": _v("prompt"), "icon": "mdi:message-text"}),
    Entity("routine_progress", "sensor", "Routine progress", "state", {
        "value_template": _v("routine_progress_pct"), "unit_of_measurement": "%",
        "state_class": "measurement", "suggested_display_precision": 0,
        "icon": "mdi:progress-check"}),
    Entity("calibrated", "binary_sensor", "Calibrated", "state", {
        "value_template": _on_off("calibrated"), **ON_OFF, **DIAGNOSTIC,
        "icon": "mdi:tune-variant"}),
    Entity("health", "sensor", "Health", "state", {
        "value_template": _v("health"), "device_class": "enum", "options": ["ok", "degraded"],
        **DIAGNOSTIC, "icon": "mdi:heart-pulse"}),
    Entity("sensor_ok", "binary_sensor", "Sensor connected", "state", {
        "value_template": _on_off("sensor_connected"), **ON_OFF,
        "device_class": "connectivity", **DIAGNOSTIC}),
    *DAY_ENTITIES,
    Entity("last_error", "sensor", "Last refused command", "state", {
        "value_template": _v("last_error"), "icon": "mdi:alert-circle-outline"}),
    *(Entity(verb, "button", name, f"cmd/{verb}", {
        "payload_press": PAYLOAD_PRESS, "icon": icon}, rate="sends when pressed")
      for verb, (name, icon) in BUTTON_NAMES.items()),
    Entity("stroke", "event", "Stroke", "event/stroke", {
        "value_template": _STROKE, "event_types": ["stroke"], "icon": "mdi:arrow-left-right"},
        rate="one message per stroke"),
    Entity("hold", "event", "Hold", "event/+", {
        "value_template": _HOLD, "event_types": ["hold_started", "hold_ended"],
        "icon": "mdi:hand-back-right"}, rate="two messages per hold (start, end)"),
    Entity("too_fast_pass", "event", "Too-fast pass", "event/+", {
        "value_template": _TOO_FAST, "event_types": ["too_fast_started", "too_fast_ended"],
        "icon": "mdi:speedometer-slow"}, rate="two messages per too-fast pass"),
)
"""Every entity announced, in the order Home Assistant lists them."""

RETIRED: dict[str, str] = {"hold_time": "sensor"}
"""Keys announced by earlier versions, with their platform: announced as ``{"p": platform}``
so Home Assistant removes them (``hold_time`` read the live hold length at 10 Hz)."""


def entity_id_slug(text: str) -> str:
    """``text`` as Home Assistant's object id: lower case, runs of other characters as one
    ``_``, none at either end (``Roller_Mat-3`` -> ``roller_mat_3``)."""
    slug = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return slug or "roller"


def _topic(topics: Topics, name: str) -> str:
    if name == "event/+":
        return topics.events
    if name.startswith("event/"):
        return topics.event(name.removeprefix("event/"))
    if name.startswith("cmd/"):
        return topics.cmd(name.removeprefix("cmd/"))
    return {"state": topics.state, "status": topics.status}[name]


def device_availability(topics: Topics) -> dict[str, Any]:
    """The device's own availability: our ``status`` topic (``online``, or the broker's
    ``offline`` will), one entry of an ``availability`` list."""
    return {"topic": topics.status, "payload_available": "online",
            "payload_not_available": "offline"}


def possible_template(verb: str) -> str | None:
    """The template on the ``state`` topic that says whether ``verb`` is possible in the
    session's state (``online``) or refused (``offline``): :data:`POSSIBLE_IN`. None for a
    verb possible in every state (``pain``, ``start_pause``)."""
    states = [state for state, verbs in POSSIBLE_IN.items() if verb in verbs]
    if len(states) == len(POSSIBLE_IN):
        return None
    listed = ", ".join(f"'{state}'" for state in states)
    return (f"{{{{ 'online' if value_json.session_state in [{listed}] else 'offline' }}}}")


def availability(topics: Topics, entity: Entity) -> list[dict[str, Any]]:
    """The entity's ``availability`` list (with ``availability_mode: all``): the device's
    status, and for a button whose command is not always possible, the ``state`` topic's
    ``session_state`` -- so Home Assistant greys out Stop on a finished session instead of
    sending a command the roller refuses."""
    entries = [device_availability(topics)]
    template = possible_template(entity.key) if entity.platform == "button" else None
    if template is not None:
        entries.append({"topic": topics.state, "value_template": template,
                        "payload_available": "online", "payload_not_available": "offline"})
    return entries


def component(topics: Topics, entity: Entity) -> dict[str, Any]:
    """One ``cmps`` entry: platform, name, ids, the topic and the entity's options (a button
    whose command is not always possible has its own ``availability``, see
    :func:`availability`; the others take the device's, a shared option)."""
    uid = f"roller_{topics.device_id}_{entity.key}"
    object_id = entity_id_slug(uid)
    topic_key = "command_topic" if entity.platform == "button" else "state_topic"
    body: dict[str, Any] = {"p": entity.platform, "name": entity.name, "unique_id": uid,
                            "default_entity_id": f"{entity.platform}.{object_id}",
                            "object_id": object_id, topic_key: _topic(topics, entity.topic)}
    if entity.platform == "button":
        body.update(qos=contract.qos("cmd"), retain=False)
        entries = availability(topics, entity)
        if len(entries) > 1:
            body.update(availability=entries, availability_mode="all")
    else:  # subscribe at QoS 1: a lost event is a missed automation, a lost state a stale one
        body["qos"] = 1
    if entity.attributes is not None:
        body["json_attributes_topic"] = _topic(topics, entity.attributes)
    body.update(entity.options)
    return body


def discovery_config(topics: Topics, *, name: str, model: str = "IMU foam roller",
                     hw_version: str | None = None, configuration_url: str | None = None
                     ) -> dict[str, Any]:
    """The device-based discovery payload for the roller behind ``topics``. ``hw_version``:
    the IMU chip (``MPU-6050``, ...); ``configuration_url``: the display page
    (:func:`display_url`)."""
    uid = f"roller_{topics.device_id}"
    components = {f"{uid}_{e.key}": component(topics, e) for e in ENTITIES}
    components.update({f"{uid}_{key}": {"p": platform} for key, platform in RETIRED.items()})
    device: dict[str, Any] = {"ids": [uid], "name": name, "mf": "roller companion",
                              "mdl": model, "sw": __version__}
    if hw_version:
        device["hw"] = hw_version
    if configuration_url:
        device["cu"] = configuration_url
    return {
        "dev": device,
        "o": {"name": "roller-companion", "sw": __version__, "url": ORIGIN_URL},
        # the list form (not availability_topic), so a button can add the session's state
        # to it: Home Assistant refuses availability_topic beside an availability list
        "availability": [device_availability(topics)],
        "availability_mode": "all",
        "qos": 1,
        "cmps": components,
    }


# -- the state sink -------------------------------------------------------------------------

StateSender = Callable[[Mapping[str, Any]], bool]
"""Sends one ``state`` payload; False when it could not (no broker connection)."""


def mqtt_state_sender(publisher: Any) -> StateSender:
    """``state`` over ``publisher``'s client: QoS 1, retained, not stored (a newer one always
    follows, and the retained one tells Home Assistant the latest after its restart)."""
    from paho.mqtt.client import MQTT_ERR_SUCCESS

    from roller.mqtt.payloads import encode

    def send(payload: Mapping[str, Any]) -> bool:
        if not publisher.connected:
            return False
        info = publisher.client.publish(publisher.topics.state, encode(payload),
                                        qos=contract.qos("state"),
                                        retain=contract.retain("state"))
        return info.rc == MQTT_ERR_SUCCESS

    return send


class HomeAssistantSink:
    """Builds the ``state`` payload from each step and sends it through ``send`` at most
    every ``settings.state_interval_s`` [s], when it differs from the last one sent (or
    ``state_heartbeat_s`` passed). Speed is the mean over the last ``speed_average_s`` of
    rolling (0 while holding or idle); ``too_fast`` is true if any moment of the interval
    was. ``outbox_dropped()`` counts dropped events (health degraded); when ``connects()``
    (the broker connections so far) changes, the state goes out again even if unchanged, as a
    restarted broker may have lost the retained copy. ``today`` gives the day's totals and the
    last session (None: none sent) by the wall clock ``unix_s`` [s]."""

    def __init__(self, send: StateSender, settings: HomeAssistantSettings, *,
                 outbox_dropped: Callable[[], int] = lambda: 0,
                 connects: Callable[[], int] = lambda: 0,
                 today: TodaysRolling | None = None,
                 unix_s: Callable[[], float] = time.time) -> None:
        self.send = send
        self.today = today
        self.unix_s = unix_s
        self.settings = settings
        self.outbox_dropped = outbox_dropped
        self.connects = connects
        self._sent_on_connect = connects()
        self.sent = 0
        self.last: dict[str, Any] | None = None
        self._last_sent_at: float | None = None
        self._window_start: float | None = None
        self._speeds: collections.deque[tuple[float, float]] = collections.deque()
        self._speed_sum = 0.0
        self._too_fast = False
        self._shown: float | None = None
        self._coach: dict[str, Any] | None = None
        self._session_id: str | None = None
        self._too_fast_s = 0.0

    def on_event(self, event: Event, session: Session) -> None:
        if session.id != self._session_id:
            self._session_id, self._too_fast_s = session.id, 0.0
        if isinstance(event, TooFast) and session.state == "running":
            self._too_fast_s += max(0.0, event.end - event.start)

    def on_sensor(self, change: SensorChange) -> None:
        """Sensor faults are not this sink's business (the MQTT and LED sinks report them)."""

    def on_step(self, tick: Tick) -> None:
        if self.today is not None:  # acts only when a session ends
            self.today.observe(tick.session, tick.summary, self.unix_s())
        live = tick.live
        if live is not None:
            if live.phase == "rolling":
                self._average_speed(tick.now, float(live.speed_m_s))
            else:  # still: 0 at once, not a mean sliding down over speed_average_s
                self._speeds.clear()
                self._speed_sum = 0.0
            self._too_fast |= bool(live.too_fast)
        if self._window_start is None:
            self._window_start = tick.now
        if tick.now - self._window_start < self.settings.state_interval_s and \
                not self._first(tick):
            return
        payload = self.payload(tick)
        self._window_start = tick.now
        self._too_fast = False
        heartbeat = self._last_sent_at is not None and \
            tick.now - self._last_sent_at >= self.settings.state_heartbeat_s
        reconnected = self.connects() != self._sent_on_connect
        if payload != self.last or heartbeat or reconnected:
            self._send(payload, tick.now)

    def _average_speed(self, now: float, speed_m_s: float) -> None:
        self._speeds.append((now, speed_m_s))
        self._speed_sum += speed_m_s
        while self._speeds and self._speeds[0][0] <= now - self.settings.speed_average_s:
            self._speed_sum -= self._speeds.popleft()[1]

    def _shown_speed(self, speed_m_s: float) -> float:
        """``speed_m_s`` with hysteresis: the shown value moves only when the mean is 3/4 of a
        ``state`` speed step away from it, so a pace near a step boundary does not flip
        between two values every second. 0 is always shown at once."""
        step = contract.STATE_SPEED_STEP_MM_S / 1000.0
        shown = self._shown
        if shown is None or speed_m_s == 0.0 or abs(speed_m_s - shown) >= 0.75 * step:
            shown = self._shown = round(speed_m_s / step) * step
        return shown

    def _first(self, tick: Tick) -> bool:
        return self.last is None and tick.live is not None

    def _send(self, payload: dict[str, Any], now: float) -> None:
        connects = self.connects()
        if self.send(payload):
            self.last = payload
            self._last_sent_at = now
            self._sent_on_connect = connects
            self.sent += 1

    def payload(self, tick: Tick) -> dict[str, Any]:
        """The ``state`` payload for the interval ending with ``tick``."""
        live = tick.live
        session = tick.session
        if session.id != self._session_id:
            self._session_id, self._too_fast_s = session.id, 0.0
        coach = self._coach  # the shutdown's tick carries no coach: keep the last one
        if tick.coach is not None:
            c = tick.coach
            coach = self._coach = {"state": c.state, "step": c.step, "prompt": c.prompt,
                                   "routine_progress": c.routine_progress}
        speed = None
        if live is not None:
            speed = self._shown_speed(
                max(0.0, self._speed_sum / len(self._speeds)) if self._speeds else 0.0)
        today = last = None
        if self.today is not None:
            today = self.today.totals(session, self.unix_s())
            last = self.today.last_session()
        return contract.state_payload(
            phase=live.phase if live is not None else "idle",
            calibrated=bool(live.calibrated) if live is not None else False,
            speed_m_s=speed, too_fast=self._too_fast or bool(live is not None and live.too_fast),
            session=session.to_dict(tick.now), too_fast_s=self._too_fast_s, coach=coach,
            health_ok=tick.sensor_ok and self.outbox_dropped() == 0,
            sensor_connected=tick.sensor_ok, today=today, last_session=last)

    def close(self, tick: Tick) -> None:
        """Send the final state (the session as it ended) if it changed."""
        if self.today is not None:
            self.today.observe(tick.session, tick.summary, self.unix_s())
        payload = self.payload(tick)
        if payload != self.last:
            self._send(payload, tick.now)
