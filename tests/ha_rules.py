"""Home Assistant's MQTT discovery rules, as its documentation and schemas state them, and a
renderer for its value templates: what tests/test_homeassistant.py and
benchmarks/bench_ha_recorder.py check our payloads against.

Not a test module (it defines no tests). The rules are the subset that concerns the platforms
we announce (sensor, binary_sensor, button, event) on Home Assistant 2024.11 and later:

- a device-based config has ``dev`` (with ``ids`` or ``cns``), ``o`` (with ``name``) and
  ``cmps``; every component has ``p`` and, in device-based discovery, a ``unique_id``; a
  component with only ``p`` removes that entity;
- each platform's required and known options (an unknown key is silently dropped by Home
  Assistant, so a typo would do nothing: refused here); abbreviations are expanded first;
- sensors: ``options`` only with device class ``enum`` and then no unit or state class; a unit
  allowed for the device class; a state class allowed for the device class;
- ``default_entity_id`` is a full, valid entity id of the component's own platform
  (``sensor.roller_mat_3_speed``), ``object_id`` the part after the dot;
- templates are Jinja2, rendered in a sandbox with ``value`` and ``value_json``; a rendered
  ``None`` sets a numeric sensor or a binary sensor unknown (a text sensor would show the
  word, an enum sensor refuses it); an event template must render a JSON object
  with ``event_type`` (one of ``event_types``) or nothing (ignored);
- a ``json_attributes_template`` must render a JSON object (anything else: Home Assistant logs
  "JSON result was not a dictionary" on every message); attribute names Home Assistant keeps
  for itself are dropped;
- availability: ``availability_topic`` (with ``availability_template``) or the ``availability``
  list (entries ``topic``, ``payload_available``, ``payload_not_available``, ``value_template``),
  never both; ``availability_mode`` (all, any, latest) goes with the list;
- the recorder writes a row when an entity's state or its attributes change.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

# -- abbreviations (homeassistant/components/mqtt/abbreviations.py, the ones that matter) ----
ABBREVIATIONS = {
    "p": "platform", "name": "name", "uniq_id": "unique_id", "obj_id": "object_id",
    "def_ent_id": "default_entity_id", "stat_t": "state_topic", "cmd_t": "command_topic",
    "val_tpl": "value_template", "unit_of_meas": "unit_of_measurement",
    "dev_cla": "device_class", "stat_cla": "state_class", "sug_dsp_prc":
    "suggested_display_precision", "ops": "options", "ent_cat": "entity_category",
    "ic": "icon", "pl_on": "payload_on", "pl_off": "payload_off", "pl_prs": "payload_press",
    "avty_t": "availability_topic", "pl_avail": "payload_available",
    "pl_not_avail": "payload_not_available", "avty": "availability", "avty_mode":
    "availability_mode", "qos": "qos", "ret": "retain", "evt_typ": "event_types",
    "json_attr_t": "json_attributes_topic", "json_attr_tpl": "json_attributes_template",
    "exp_aft": "expire_after", "frc_upd": "force_update", "en": "enabled_by_default",
    "e": "encoding", "dev": "device", "o": "origin", "cmps": "components",
}
DEVICE_ABBREVIATIONS = {
    "cns": "connections", "ids": "identifiers", "name": "name", "mf": "manufacturer",
    "mdl": "model", "mdl_id": "model_id", "sw": "sw_version", "hw": "hw_version",
    "sn": "serial_number", "sa": "suggested_area", "via_device": "via_device",
    "cu": "configuration_url",
}
ORIGIN_ABBREVIATIONS = {"name": "name", "sw": "sw_version", "url": "support_url"}
AVAILABILITY_ABBREVIATIONS = {"t": "topic", "topic": "topic", "pl_avail": "payload_available",
                              "pl_not_avail": "payload_not_available",
                              "val_tpl": "value_template"}
"""The keys of one ``availability`` list entry (its schema: ``topic`` required)."""
AVAILABILITY_MODES = {"all", "any", "latest"}

SHARED_OPTIONS = {"availability", "availability_mode", "availability_template",
                  "availability_topic", "command_topic", "payload_available",
                  "payload_not_available", "state_topic", "qos", "encoding"}
"""Options a device-based config may set once for all its components."""

COMMON = {"platform", "name", "unique_id", "object_id", "default_entity_id", "icon",
          "entity_category", "enabled_by_default", "entity_picture", "json_attributes_topic",
          "json_attributes_template", "availability", "availability_mode",
          "availability_template", "availability_topic", "payload_available",
          "payload_not_available", "qos", "encoding"}
PLATFORMS: dict[str, tuple[set[str], set[str]]] = {
    # platform: (required, further known options)
    "sensor": ({"state_topic"}, {"value_template", "unit_of_measurement", "device_class",
                                 "state_class", "suggested_display_precision", "options",
                                 "expire_after", "force_update", "last_reset_value_template"}),
    "binary_sensor": ({"state_topic"}, {"value_template", "payload_on", "payload_off",
                                        "device_class", "expire_after", "force_update",
                                        "off_delay"}),
    "button": ({"command_topic"}, {"command_template", "payload_press", "retain",
                                   "device_class"}),
    "event": ({"state_topic", "event_types"}, {"value_template", "device_class"}),
}

SENSOR_DEVICE_CLASS_UNITS: dict[str, set[str | None]] = {
    # homeassistant/components/sensor/const.py DEVICE_CLASS_UNITS (the classes we might use)
    "speed": {"Beaufort", "ft/s", "in/s", "m/s", "km/h", "kn", "mph", "mm/s",
              "in/d", "in/h", "mm/d", "mm/h"},
    "distance": {"km", "m", "cm", "mm", "mi", "nmi", "yd", "in", "ft"},
    "duration": {"d", "h", "min", "s", "ms"},
    "enum": {None},
}
SENSOR_DEVICE_CLASS_STATE_CLASSES: dict[str, set[str]] = {
    "speed": {"measurement"},
    "distance": {"measurement", "total", "total_increasing"},
    "duration": {"measurement", "total", "total_increasing"},
    "enum": set(),
}
STATE_CLASSES = {"measurement", "total", "total_increasing"}
BINARY_SENSOR_DEVICE_CLASSES = {"problem", "connectivity", "running", "motion", "moving",
                                "occupancy", "presence", "safety", "update"}
EVENT_DEVICE_CLASSES = {"button", "doorbell", "motion"}
ENTITY_CATEGORIES = {"diagnostic", "config"}

ENTITY_ID = re.compile(r"^(?!.+__)(?!_)[\da-z_]+(?<!_)\.(?!_)[\da-z_]+(?<!_)$")
"""homeassistant.core.valid_entity_id."""


def expand(options: Mapping[str, Any], table: Mapping[str, str]) -> dict[str, Any]:
    """``options`` with abbreviations replaced by full names; an unknown abbreviation stays."""
    return {table.get(k, k): v for k, v in options.items()}


def check_device_config(config: Mapping[str, Any], *, base: str) -> list[str]:
    """Every broken rule in a device-based discovery payload, as sentences (empty: valid).
    ``base`` is the device's topic root (``roller/<id>``)."""
    problems: list[str] = []
    full = expand(config, ABBREVIATIONS)
    for key in full:
        if key not in SHARED_OPTIONS | {"device", "origin", "components"}:
            problems.append(f"top level: {key!r} is not a shared option")
    device = expand(full.get("device") or {}, DEVICE_ABBREVIATIONS)
    if not (device.get("identifiers") or device.get("connections")):
        problems.append("device: needs identifiers or connections")
    for key in device:
        if key not in DEVICE_ABBREVIATIONS.values():
            problems.append(f"device: unknown key {key!r}")
    url = device.get("configuration_url")
    if url is not None and not re.match(r"^(https?|homeassistant)://[^\s/]+", str(url)):
        problems.append(f"device: configuration_url {url!r} is not an http(s) URL")
    origin = expand(full.get("origin") or {}, ORIGIN_ABBREVIATIONS)
    if not origin.get("name"):
        problems.append("origin: needs a name")
    shared = {k: v for k, v in full.items() if k in SHARED_OPTIONS}
    for key, value in shared.items():
        if key.endswith("topic") and not str(value).startswith(base + "/"):
            problems.append(f"top level: {key} {value!r} is not under {base}/")
    components = full.get("components")
    if not isinstance(components, Mapping) or not components:
        return [*problems, "components: missing or empty"]
    names: dict[str, str] = {}
    unique_ids: dict[str, str] = {}
    entity_ids: dict[str, str] = {}
    for cid, raw in components.items():
        comp = expand(raw, ABBREVIATIONS)
        where = f"component {cid}"
        platform = comp.get("platform")
        if platform not in PLATFORMS:
            problems.append(f"{where}: platform {platform!r} is not one of {sorted(PLATFORMS)}")
            continue
        if set(comp) == {"platform"}:
            continue  # removes the entity
        merged = {**shared, **comp}
        problems += [f"{where}: {p}" for p in check_component(platform, merged, base=base)]
        uid = comp.get("unique_id")
        if not uid:
            problems.append(f"{where}: device-based discovery needs a unique_id")
        elif uid in unique_ids:
            problems.append(f"{where}: unique_id {uid!r} also used by {unique_ids[uid]}")
        else:
            unique_ids[uid] = cid
        name = comp.get("name")
        if name in names:
            problems.append(f"{where}: the name {name!r} is also {names[name]}'s (two entities "
                            "of one device would look the same)")
        elif name:
            names[name] = cid
        eid = comp.get("default_entity_id")
        if eid in entity_ids:
            problems.append(f"{where}: default_entity_id {eid!r} also used by "
                            f"{entity_ids[eid]}")
        elif eid:
            entity_ids[eid] = cid
    return problems


def check_component(platform: str, comp: Mapping[str, Any], *, base: str) -> list[str]:
    """The broken rules of one component (shared options already merged in)."""
    problems: list[str] = []
    required, known = PLATFORMS[platform]
    for key in sorted(required - set(comp)):
        problems.append(f"{platform} needs {key!r}")
    for key in sorted(set(comp) - required - known - COMMON):
        problems.append(f"{key!r} is not an option of {platform} (Home Assistant would drop "
                        "it silently)")
    if "availability" in comp and "availability_topic" in comp:
        problems.append("availability and availability_topic exclude each other")
    problems += _check_availability(comp, base=base)
    for key, value in comp.items():
        if key.endswith("_topic") and not str(value).startswith(base + "/"):
            problems.append(f"{key} {value!r} is not under {base}/")
    if "qos" in comp and comp["qos"] not in (0, 1, 2):
        problems.append(f"qos {comp['qos']!r} is not 0, 1 or 2")
    eid, oid = comp.get("default_entity_id"), comp.get("object_id")
    if eid is not None:
        if not ENTITY_ID.match(str(eid)):
            problems.append(f"default_entity_id {eid!r} is not a valid entity id")
        elif str(eid).split(".", 1)[0] != platform:
            problems.append(f"default_entity_id {eid!r} is not of platform {platform}")
        elif oid is not None and str(eid).split(".", 1)[1] != oid:
            problems.append(f"object_id {oid!r} gives another entity id than {eid!r}")
    category = comp.get("entity_category")
    if category is not None and category not in ENTITY_CATEGORIES:
        problems.append(f"entity_category {category!r}")
    if platform in ("sensor", "binary_sensor") and category == "config":
        problems.append(f"a {platform} cannot be a config entity")
    if platform == "sensor":
        problems += _check_sensor(comp)
    elif platform == "binary_sensor":
        if comp.get("device_class") not in (None, *BINARY_SENSOR_DEVICE_CLASSES):
            problems.append(f"binary_sensor device_class {comp['device_class']!r}")
    elif platform == "event":
        types = comp.get("event_types")
        if not (isinstance(types, list) and types and all(isinstance(t, str) for t in types)):
            problems.append(f"event_types must be a non-empty list of strings, got {types!r}")
        if comp.get("device_class") not in (None, *EVENT_DEVICE_CLASSES):
            problems.append(f"event device_class {comp['device_class']!r}")
    elif platform == "button" and not isinstance(comp.get("payload_press", "PRESS"), str):
        problems.append("payload_press must be a string")
    return problems


def _check_availability(comp: Mapping[str, Any], *, base: str) -> list[str]:
    """The availability options: the list form (entries with a ``topic`` under ``base``, known
    keys, templates that compile), ``availability_mode`` one of all/any/latest and only with
    the list, ``availability_template`` only with ``availability_topic``."""
    problems: list[str] = []
    entries = comp.get("availability")
    if entries is not None:
        if not isinstance(entries, list) or not entries:
            return [f"availability must be a non-empty list, got {entries!r}"]
        for i, raw in enumerate(entries):
            if not isinstance(raw, Mapping):
                problems.append(f"availability[{i}] is not a mapping: {raw!r}")
                continue
            entry = expand(raw, AVAILABILITY_ABBREVIATIONS)
            for key in sorted(set(entry) - set(AVAILABILITY_ABBREVIATIONS.values())):
                problems.append(f"availability[{i}]: {key!r} is not an option of an entry")
            topic = entry.get("topic")
            if not topic:
                problems.append(f"availability[{i}] needs a topic")
            elif not str(topic).startswith(base + "/"):
                problems.append(f"availability[{i}] topic {topic!r} is not under {base}/")
            template = entry.get("value_template")
            if template is not None:
                try:
                    environment().parse(str(template))
                except Exception as exc:  # a template Home Assistant cannot compile
                    problems.append(f"availability[{i}] value_template: {exc}")
    mode = comp.get("availability_mode")
    if mode is not None:
        if mode not in AVAILABILITY_MODES:
            problems.append(f"availability_mode {mode!r} is not one of "
                            f"{sorted(AVAILABILITY_MODES)}")
        if entries is None:
            problems.append("availability_mode without an availability list")
    if "availability_template" in comp and "availability_topic" not in comp:
        problems.append("availability_template without availability_topic")
    return problems


def available(comp: Mapping[str, Any], latest: Mapping[str, bytes | str]) -> bool | None:
    """Whether Home Assistant shows the entity available, given the newest (retained)
    payload of each topic in ``latest``: each ``availability`` entry's payload, through its
    template, compared with its available/not-available payloads, combined by
    ``availability_mode`` (default ``latest``: here, the last entry that has a payload).
    None: no entry has a payload yet."""
    results: list[bool] = []
    for raw in comp.get("availability") or ():
        entry = expand(raw, AVAILABILITY_ABBREVIATIONS)
        payload = latest.get(entry["topic"])
        if payload is None:  # nothing received: not available yet on this topic
            if comp.get("availability_mode") == "all":
                results.append(False)
            continue
        text = render(entry["value_template"], payload) if entry.get("value_template") \
            else (payload.decode() if isinstance(payload, bytes) else payload)
        if text == entry.get("payload_available", "online"):
            results.append(True)
        elif text == entry.get("payload_not_available", "offline"):
            results.append(False)
    if not results:
        return None
    mode = comp.get("availability_mode", "latest")
    return all(results) if mode == "all" else any(results) if mode == "any" else results[-1]


def _check_sensor(comp: Mapping[str, Any]) -> list[str]:
    problems = []
    dc, sc, unit = comp.get("device_class"), comp.get("state_class"), \
        comp.get("unit_of_measurement")
    options = comp.get("options")
    if options is not None:
        if not options:
            problems.append("an empty options list")
        if sc or unit:
            problems.append("options cannot go with state_class or unit_of_measurement")
        if dc != "enum":
            problems.append(f"options need device_class enum, got {dc!r}")
    if dc == "enum" and options is None:
        problems.append("device_class enum needs options")
    if sc is not None and sc not in STATE_CLASSES:
        problems.append(f"state_class {sc!r}")
    if dc is not None:
        if dc not in SENSOR_DEVICE_CLASS_UNITS:
            problems.append(f"device_class {dc!r} is not one this check knows")
        else:
            if unit is not None and unit not in SENSOR_DEVICE_CLASS_UNITS[dc]:
                allowed = sorted(map(str, SENSOR_DEVICE_CLASS_UNITS[dc]))
                problems.append(f"unit {unit!r} is not valid with device class {dc!r} "
                                f"(expected one of {allowed})")
            if unit is None and None not in SENSOR_DEVICE_CLASS_UNITS[dc]:
                problems.append(f"device class {dc!r} needs a unit")
            if sc is not None and sc not in SENSOR_DEVICE_CLASS_STATE_CLASSES[dc]:
                problems.append(f"state_class {sc!r} is not valid with device class {dc!r}")
    precision = comp.get("suggested_display_precision")
    if precision is not None and not (isinstance(precision, int) and precision >= 0):
        problems.append(f"suggested_display_precision {precision!r}")
    return problems


# -- templates ------------------------------------------------------------------------------

def _ha_round(value: Any, precision: int = 0, method: str = "common") -> Any:
    """Home Assistant's ``round`` filter (forgiving_round) for the common method."""
    value = float(value)
    result = round(value, precision)
    return int(result) if precision == 0 else result


def _timestamp_local(value: Any) -> str:
    """Home Assistant's ``timestamp_local`` filter: a Unix time as local ISO 8601."""
    return dt.datetime.fromtimestamp(float(value), dt.UTC).astimezone().isoformat()


def environment() -> Any:
    """A Jinja2 sandbox as Home Assistant renders MQTT templates (its ``round`` and
    ``timestamp_local`` filters)."""
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    env = ImmutableSandboxedEnvironment()
    env.filters["round"] = _ha_round
    env.filters["timestamp_local"] = _timestamp_local
    return env


_TEMPLATES: dict[str, Any] = {}


def render(template: str, payload: bytes | str) -> str:
    """``template`` rendered for one MQTT message, as Home Assistant's
    ``async_render_with_possible_json_value``: ``value`` the payload, ``value_json`` it parsed
    (when it is JSON)."""
    compiled = _TEMPLATES.get(template)
    if compiled is None:
        compiled = _TEMPLATES[template] = environment().from_string(template)
    text = payload.decode() if isinstance(payload, bytes) else payload
    variables: dict[str, Any] = {"value": text}
    with contextlib.suppress(ValueError):
        variables["value_json"] = json.loads(text)
    return compiled.render(**variables)


def topic_matches(pattern: str, topic: str) -> bool:
    """MQTT subscription matching (``+`` one level, ``#`` the rest)."""
    p, t = pattern.split("/"), topic.split("/")
    for i, level in enumerate(p):
        if level == "#":
            return True
        if i >= len(t) or (level != "+" and level != t[i]):
            return False
    return len(p) == len(t)


def state_of(platform: str, comp: Mapping[str, Any], rendered: str) -> tuple[str, Any] | None:
    """What Home Assistant makes of a rendered value: ``("state", value)`` for a new state,
    ``("event", (event_type, attributes))`` for an event, None when it ignores the message.
    Raises ValueError when Home Assistant would log an error (unparsable number, unknown
    option, missing event_type ...)."""
    if platform == "event":
        if not rendered.strip() or rendered in ("None", "{}"):
            return None
        data = json.loads(rendered)
        if not isinstance(data, dict) or "event_type" not in data:
            raise ValueError(f"event payload without event_type: {rendered!r}")
        kind = data.pop("event_type")
        if kind not in comp["event_types"]:
            raise ValueError(f"event_type {kind!r} not in {comp['event_types']}")
        return "event", (kind, data)
    if platform == "binary_sensor":
        if rendered == "None":
            return "state", None
        on, off = comp.get("payload_on", "ON"), comp.get("payload_off", "OFF")
        if rendered not in (on, off):
            raise ValueError(f"binary sensor got {rendered!r}, not {on!r} / {off!r}")
        return "state", rendered == on
    if comp.get("options") is not None:  # an enum: only its options (HA raises otherwise)
        if rendered not in comp["options"]:
            raise ValueError(f"{rendered!r} is not one of the options {comp['options']}")
        return "state", rendered
    if comp.get("unit_of_measurement") or comp.get("state_class"):
        if rendered == "None":  # a numeric sensor: unknown
            return "state", None
        number = float(rendered)  # ValueError: HA logs "is not a valid number"
        if not math.isfinite(number):
            raise ValueError(f"{rendered!r} is not finite")
        return "state", number
    if len(rendered) > 255:
        raise ValueError(f"a state of {len(rendered)} characters (Home Assistant takes 255)")
    if rendered == "None":  # a text sensor shows the word: never send it
        raise ValueError("a text sensor would show the word 'None'")
    return "state", rendered


ATTRIBUTES_BLOCKED = {"assumed_state", "available", "device_class", "entity_picture",
                      "friendly_name", "icon", "last_reset", "state_class",
                      "supported_features", "unit_of_measurement", "context_recent_time",
                      "entity_id", "attribution", "restored", "options"}
"""Attribute names Home Assistant's MQTT attributes drop (a subset of MQTT_ATTRIBUTES_BLOCKED
and the entity's own attributes): an entity must not rely on them."""


def attributes_of(comp: Mapping[str, Any], rendered: str) -> dict[str, Any]:
    """The attributes Home Assistant sets from a rendered ``json_attributes_template``.
    Raises ValueError where it would log a warning (not JSON, not an object, a blocked key)."""
    data = json.loads(rendered)
    if not isinstance(data, dict):
        raise ValueError(f"attributes are not a JSON object: {rendered!r}")
    blocked = set(data) & ATTRIBUTES_BLOCKED
    if blocked:
        raise ValueError(f"attribute names Home Assistant drops: {sorted(blocked)}")
    return data


def recorder_rows(components: Mapping[str, Mapping[str, Any]],
                  messages: Iterable[tuple[str, bytes]]) -> dict[str, int]:
    """Rows Home Assistant's recorder would write per entity for ``messages`` (topic, payload)
    in order: one per change of an entity's state or attributes (the first state counts), one
    per event."""
    last: dict[str, Any] = {}
    rows = dict.fromkeys(components, 0)
    for topic, payload in messages:
        for cid, comp in components.items():
            platform = comp["p"]
            if platform == "button" or not topic_matches(comp["state_topic"], topic):
                continue
            seen = state_of(platform, comp, render(comp.get("value_template", "{{ value }}"),
                                                   payload))
            if seen is None:
                continue
            kind, value = seen
            attributes_topic = comp.get("json_attributes_topic")
            if attributes_topic is not None and topic_matches(attributes_topic, topic):
                value = (value, json.dumps(attributes_of(comp, render(
                    comp.get("json_attributes_template", "{{ value }}"), payload)),
                    sort_keys=True))
            if kind == "event":
                rows[cid] += 1
            elif cid not in last or last[cid] != value:
                rows[cid] += 1
                last[cid] = value
    return rows
