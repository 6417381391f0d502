"""Home Assistant: the discovery payload against Home Assistant's documented rules
(tests/ha_rules.py), its templates rendered with Jinja2 on the payloads the service really
publishes (the golden transcript), the ``state`` topic's rate and rounding, the recorder rows
it costs, and ``roller run --simulate`` against a real mosquitto: the retained announcement, a
state topic at about 1 Hz, and buttons that work.
"""

from __future__ import annotations

import datetime as dt
import itertools
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ha_rules import (
    available,
    check_component,
    check_device_config,
    recorder_rows,
    render,
    state_of,
    topic_matches,
)
from test_mqtt_support import Subscriber, retained

from firmware_bridge.clock import ManualClock
from roller.base.errors import ConfigError
from roller.coaching.session import Session
from roller.coaching.session_commands import SessionCommands
from roller.contract import messages as contract
from roller.contract.command_table import CommandTable
from roller.contract.messages import Topics
from roller.contract.verbs import POSSIBLE_IN, VERBS
from roller.mqtt.homeassistant import (
    ENTITIES,
    RETIRED,
    HomeAssistantSettings,
    HomeAssistantSink,
    check_settings,
    display_url,
)
from roller.service.config import DeviceSettings, RollerConfig
from roller.service.sinks import Tick
from roller.service.wiring import build_service, home_assistant_discovery

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "mqtt_transcript.jsonl"


def discovery(device_id: str = "mat-3", **kw) -> dict:
    config = RollerConfig(device=DeviceSettings(id=device_id, name="Mat 3"))
    return home_assistant_discovery(config, Topics(device_id), chip="MPU-6050", **kw)


# -- the payload against Home Assistant's rules ---------------------------------------------

@pytest.mark.parametrize("device_id", ["mat-3", "Clinic_Room-2", "r"])
def test_every_discovery_payload_follows_home_assistants_rules(device_id) -> None:
    config = discovery(device_id)
    assert check_device_config(config, base=f"roller/{device_id}") == []
    json.dumps(config)  # publishable as is


def test_the_rules_catch_what_home_assistant_refuses() -> None:
    """The checker fails on each kind of mistake it claims to catch."""
    base = "roller/mat-3"
    good = {"state_topic": f"{base}/state", "value_template": "{{ value_json.speed_mm_s }}"}
    bad = {
        "cm/s is no speed unit": {**good, "device_class": "speed", "unit_of_measurement": "cm/s"},
        "speed totals": {**good, "device_class": "speed", "unit_of_measurement": "mm/s",
                         "state_class": "total_increasing"},
        "options with a unit": {**good, "device_class": "enum", "options": ["a"],
                                "unit_of_measurement": "s"},
        "options without enum": {**good, "options": ["a"]},
        "a typo is dropped silently": {**good, "unit_of_measurment": "mm/s"},
        "a topic of another device": {**good, "state_topic": "roller/other/state"},
        "a wrong platform in the entity id": {**good, "default_entity_id": "binary_sensor.x"},
        "object_id and default_entity_id disagree": {**good, "default_entity_id": "sensor.a",
                                                     "object_id": "b"},
        "an invalid entity id": {**good, "default_entity_id": "sensor.Mat-3"},
    }
    for what, comp in bad.items():
        assert check_component("sensor", comp, base=base), what
    assert check_component("sensor", good, base=base) == []
    assert check_component("event", {"state_topic": f"{base}/event/stroke"}, base=base)
    config = discovery()
    twin = dict(next(iter(config["cmps"].values())))
    config["cmps"]["roller_mat-3_twin"] = twin
    assert any("unique_id" in p for p in check_device_config(config, base=base))


def test_the_rules_catch_availability_home_assistant_refuses() -> None:
    base = "roller/mat-3"
    good = {"command_topic": f"{base}/cmd/stop", "availability_mode": "all",
            "availability": [{"topic": f"{base}/status"},
                             {"topic": f"{base}/state", "value_template": "{{ 'online' }}"}]}
    assert check_component("button", good, base=base) == []
    bad = {
        "the pair Home Assistant refuses": {**good, "availability_topic": f"{base}/status"},
        "a mode that does not exist": {**good, "availability_mode": "every"},
        "a mode without a list": {"command_topic": good["command_topic"],
                                  "availability_mode": "all"},
        "an entry without a topic": {**good, "availability": [{"payload_available": "1"}]},
        "another device's topic": {**good, "availability": [{"topic": "roller/x/status"}]},
        "a typo in an entry": {**good, "availability": [{"topic": f"{base}/status",
                                                         "payload_availble": "1"}]},
        "a template that does not compile": {**good, "availability": [
            {"topic": f"{base}/state", "value_template": "{{ 'online' if }}"}]},
        "a template without its topic": {"command_topic": good["command_topic"],
                                         "availability_template": "{{ 'online' }}"},
    }
    for what, comp in bad.items():
        assert check_component("button", comp, base=base), what


def test_buttons_are_unavailable_when_their_command_is_not_possible() -> None:
    """Issue 17 item 6: on every ``state`` message of the golden transcript (the device
    online: the transcript orders messages per topic, and the service was online throughout),
    each button is available exactly when its verb is possible in the session's state
    (POSSIBLE_IN); every entity goes unavailable with the device (``offline``)."""
    cmps = discovery("golden")["cmps"]
    buttons = {cid.removeprefix("roller_golden_"): {**cmps_shared(), **comp}
               for cid, comp in cmps.items() if comp.get("p") == "button"}
    assert set(buttons) == set(VERBS)
    seen_states = set()
    for topic, payload in golden_messages():
        if topic != "roller/golden/state":
            continue
        latest = {"roller/golden/status": b"online", topic: payload}
        state = json.loads(payload)["session_state"]
        seen_states.add(state)
        for verb, comp in buttons.items():
            assert available(comp, latest) is (verb in POSSIBLE_IN[state]), (verb, state)
    assert {"idle", "running", "finished"} <= seen_states
    # every combination, rendered as the golden state would carry it
    for state, verbs in POSSIBLE_IN.items():
        latest = {"roller/golden/status": b"online",
                  "roller/golden/state": json.dumps({"session_state": state}).encode()}
        assert {v for v, comp in buttons.items() if available(comp, latest)} == set(verbs)
        latest["roller/golden/status"] = b"offline"
        assert not any(available({**cmps_shared(), **comp}, latest)
                       for comp in cmps.values() if len(comp) > 1)


def cmps_shared() -> dict:
    """The device config's shared availability options (a component without its own list
    takes these)."""
    config = discovery("golden")
    return {k: config[k] for k in ("availability", "availability_mode")}


def test_entity_ids_are_stable_on_old_and_new_cores() -> None:
    cmps = discovery("Mat-3")["cmps"]
    speed = cmps["roller_Mat-3_speed"]
    assert speed["default_entity_id"] == "sensor.roller_mat_3_speed"
    assert speed["object_id"] == "roller_mat_3_speed"
    assert cmps["roller_Mat-3_sensor_ok"]["default_entity_id"] == \
        "binary_sensor.roller_mat_3_sensor_ok"
    ids = [c["default_entity_id"] for c in cmps.values() if len(c) > 1]
    assert len(ids) == len(set(ids)) == len(ENTITIES)
    # A custom device name changes no entity id: the ids come from the device id alone.
    renamed = home_assistant_discovery(RollerConfig(device=DeviceSettings(
        id="Mat-3", name="Living room roller")), Topics("Mat-3"))["cmps"]
    assert [c.get("default_entity_id") for c in renamed.values()] == \
        [c.get("default_entity_id") for c in cmps.values()]
    assert {k.removeprefix("roller_Mat-3_"): v for k, v in cmps.items() if len(v) == 1} == \
        {key: {"p": platform} for key, platform in RETIRED.items()}


def test_every_command_verb_has_a_button_whose_press_the_roller_accepts() -> None:
    cmps = discovery()["cmps"]
    buttons = {c["command_topic"].rsplit("/", 1)[1]: c for c in cmps.values()
               if c["p"] == "button"}
    assert set(buttons) == set(contract.COMMAND_VERBS)
    table = CommandTable()
    SessionCommands(Session(), None, ManualClock(), table)
    for verb, button in buttons.items():
        assert button["command_topic"] == f"roller/mat-3/cmd/{verb}"
        table.parse(verb, button["payload_press"].encode())  # raises CommandError if refused


def test_the_device_links_the_display_and_names_the_chip() -> None:
    dev = discovery()["dev"]
    assert dev["hw"] == "MPU-6050"
    assert dev["cu"].startswith("http://") and dev["cu"].endswith(":8080/?device=mat-3")
    s = HomeAssistantSettings()
    assert display_url(s, device_id="m", http_host="0.0.0.0", http_port=8080,
                       hostname="pi") == "http://pi.local:8080/?device=m"
    assert display_url(s, device_id="m", http_host="192.168.1.5", http_port=81,
                       hostname="pi") == "http://192.168.1.5:81/?device=m"
    assert display_url(s, device_id="m", http_host="0.0.0.0", http_port=0) is None
    assert display_url(HomeAssistantSettings(display_url="none"), device_id="m",
                       http_host="x", http_port=1) is None
    explicit = HomeAssistantSettings(display_url="https://mat.example/")
    assert display_url(explicit, device_id="m", http_host="x", http_port=1) == \
        "https://mat.example/"
    check_settings(explicit, "test")
    with pytest.raises(ConfigError, match="display_url"):
        check_settings(HomeAssistantSettings(display_url="ftp://mat"), "test")


def test_a_bad_display_url_in_the_config_file_is_refused_with_its_key(tmp_path) -> None:
    from roller.service.config import load_config

    path = tmp_path / "roller.toml"
    path.write_text('[device]\nid = "m"\n[homeassistant]\ndisplay_url = "pi.local:8080"\n')
    with pytest.raises(ConfigError, match=r"homeassistant\.display_url.*http"):
        load_config(path)
    path.write_text('[device]\nid = "m"\n[homeassistant]\nstate_interval_s = 0.01\n')
    with pytest.raises(ConfigError, match="state_interval_s"):
        load_config(path)


# -- templates on the payloads the service publishes ----------------------------------------

WALL_S = 1_700_000_000.0
"""The Unix time put back for the transcript's normalised ``"<wall>"`` times."""


def _unwall(value):
    if value == "<wall>":
        return WALL_S
    if isinstance(value, dict):
        return {k: _unwall(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_unwall(v) for v in value]
    return value


def golden_messages() -> list[tuple[str, bytes]]:
    out = []
    for line in GOLDEN.read_text().splitlines():
        m = json.loads(line)
        body = _unwall(m.get("json", m.get("text")))
        out.append((m["topic"], json.dumps(body).encode() if "json" in m else
                    (body or "").encode()))
    return out


def test_templates_render_on_what_the_service_publishes() -> None:
    """Every template, rendered with Jinja2 as Home Assistant does, on every message of the
    golden transcript its entity subscribes to: no error, a state Home Assistant accepts, and
    every ``value_json.X`` a field the contract declares and the payloads carry."""
    messages = golden_messages()
    cmps = discovery("golden")["cmps"]
    for cid, comp in cmps.items():
        if comp["p"] == "button" or len(comp) == 1:
            continue
        mine = [(t, p) for t, p in messages if topic_matches(comp["state_topic"], t)]
        assert mine, f"{cid}: no message on {comp['state_topic']} in the golden transcript"
        used = set(re.findall(r"value_json\.([a-z_]+)", comp["value_template"]))
        carried = set().union(*(json.loads(p) for _, p in mine))
        assert used <= carried, (cid, used - carried)
        results = [state_of(comp["p"], comp, render(comp["value_template"], p))
                   for _, p in mine]
        seen = [r for r in results if r is not None]
        assert seen, f"{cid}: Home Assistant would ignore every message"
        if comp["p"] == "event":
            types = {kind for _, (kind, _attrs) in seen}
            assert types == set(comp["event_types"]), (cid, types)
        elif comp["p"] != "event" and cid != "roller_golden_mean_speed":
            assert any(value is not None for _, value in seen), f"{cid}: always unknown"


def test_uncalibrated_speed_is_unknown_not_a_valid_reading() -> None:
    messages = [json.loads(p) for t, p in golden_messages() if t == "roller/golden/state"]
    speed = discovery("golden")["cmps"]["roller_golden_speed"]
    first = messages[0]
    assert first["calibrated"] is False and first["speed_mm_s"] is None
    assert state_of("sensor", speed, render(speed["value_template"], json.dumps(first))) == \
        ("state", None)
    assert all(m["speed_mm_s"] % contract.STATE_SPEED_STEP_MM_S == 0 for m in messages
               if m["speed_mm_s"] is not None)


def test_the_recorder_writes_a_few_thousand_rows_an_hour_not_tens_of_thousands() -> None:
    """The golden session (150 s of rolling) scaled to an hour: the state topic and the events
    against the old five entities on the 10 Hz live topic."""
    messages = golden_messages()
    cmps = {k: v for k, v in discovery("golden")["cmps"].items() if len(v) > 1}
    rows = recorder_rows(cmps, messages)
    per_hour = sum(rows.values()) * 3600 / 150
    old = {"speed": {"p": "sensor", "state_topic": "roller/golden/live",
                     "value_template": "{{ value_json.speed_m_s }}"},
           "hold": {"p": "sensor", "state_topic": "roller/golden/live",
                    "value_template": "{{ value_json.hold_time_s }}"}}
    old_per_hour = sum(recorder_rows(old, messages).values()) * 3600 / 150
    assert per_hour < 8000, rows
    # The day's totals: at most about a row a minute each (150 s here), the last session one
    # at its end (and its first, unknown, state).
    for key in ("today_minutes", "today_distance"):
        assert rows[f"roller_golden_{key}"] <= 2 + 150 / 60, (key, rows)
    assert rows["roller_golden_last_session"] == 2, rows
    assert old_per_hour > 5 * per_hour, (old_per_hour, per_hour)


# -- the state sink ------------------------------------------------------------------------

def test_state_is_sent_at_most_once_an_interval_and_only_on_change(tmp_path) -> None:
    config = RollerConfig(device=DeviceSettings(id="sink", name="Sink"),
                          state_dir=str(tmp_path))
    clock = ManualClock(1000.0)
    service = build_service(config, simulate=True, seed=3, clock=clock)
    sink = next(s for s in service.sinks if isinstance(s, HomeAssistantSink))
    sent: list[tuple[float, dict]] = []
    sink.send = lambda payload: sent.append((clock.monotonic(), dict(payload))) or True
    try:
        for _ in range(round(60 / 0.03)):
            clock.advance(0.03)
            service.step()
    finally:
        service.close()
    times = [t for t, _ in sent]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    assert len(sent) >= 20, len(sent)  # someone is rolling: things change
    assert min(gaps[:-1]) >= config.homeassistant.state_interval_s - 1e-9, min(gaps)
    payloads = [p for _, p in sent]
    assert all(a != b for a, b in itertools.pairwise(payloads))
    fields = {f.name for f in contract.STATE_FIELDS}
    assert all(set(p) == fields for p in payloads)
    running = [p for p in payloads if p["session_state"] == "running"]
    assert running and running[-1]["session_strokes"] > 0
    # Shutdown ends the session and the sink sends its final counts: the session's own.
    assert payloads[-1]["session_state"] == "finished"
    assert payloads[-1]["session_strokes"] == service.session.strokes


def test_todays_totals_start_from_the_history_and_the_last_session_is_its_summary(tmp_path):
    """A service started with one session of today in its history: the first state already
    counts it (and shows it as the last session); the day's totals then grow with the session
    under way, never drop, change at most about once a minute, and at shutdown the last
    session is the one just ended."""
    from roller.coaching.history import History
    from roller.coaching.records import SessionSummary

    config = RollerConfig(device=DeviceSettings(id="day", name="Day"), state_dir=str(tmp_path))
    clock = ManualClock(1000.0)
    earlier = clock.unix_s() - 600
    with History(config.history.path(tmp_path)) as history:
        history.record(SessionSummary(
            routine="r", routine_title="Morning", started_at=earlier - 300, ended_at=earlier,
            duration_s=300, end_reason="completed", active_s=250.0, sides_s={"left": 100.0,
            "right": 100.0}, strokes=40, holds=3, longest_hold_s=20.0, too_fast_count=1,
            too_fast_s=2.0, mean_speed_m_s=0.025, median_speed_m_s=0.024, peak_speed_m_s=0.06,
            steps=(), distance_m=7.25), device_id="day")
    service = build_service(config, simulate=True, seed=3, clock=clock)
    sink = next(s for s in service.sinks if isinstance(s, HomeAssistantSink))
    sent: list[dict] = []
    sink.send = lambda payload: sent.append(dict(payload)) or True
    try:
        for _ in range(round(150 / 0.05)):
            clock.advance(0.05)
            service.step()
    finally:
        service.close()
    first, last = sent[0], sent[-1]
    assert (first["today_active_s"], first["today_holds"], first["today_distance_m"],
            first["today_sessions"]) == (240, 3, 7, 1)  # whole minutes and metres, down
    assert first["last_session"]["routine_title"] == "Morning"
    assert first["last_session"]["left_share_pct"] == 50
    days = [(p["today_active_s"], p["today_holds"], p["today_distance_m"]) for p in sent]
    assert all(b[i] >= a[i] for a, b in itertools.pairwise(days) for i in range(3)), days
    minutes = {p["today_active_s"] for p in sent}
    assert len(minutes) <= 2 + 150 / 60, minutes
    ended = service.session.to_dict(clock.monotonic())
    assert last["last_session"]["active_s"] == round(ended["active_s"])
    assert last["today_sessions"] == 2 and last["today_holds"] == 3 + ended["holds"]
    assert last["today_active_s"] == (250 + ended["active_s"]) // 60 * 60


def test_the_last_session_attributes_are_an_object_home_assistant_keeps() -> None:
    """The Last session entity's attributes render to a JSON object (Home Assistant warns on
    anything else), with the times in local ISO form, and to {} before the first session."""
    from ha_rules import attributes_of

    comp = discovery("golden")["cmps"]["roller_golden_last_session"]
    assert comp["json_attributes_topic"] == comp["state_topic"] == "roller/golden/state"
    states = [p for t, p in golden_messages() if t == "roller/golden/state"]
    attributes = [attributes_of(comp, render(comp["json_attributes_template"], p))
                  for p in states]
    assert attributes[0] == {}
    final = attributes[-1]
    assert final["started"] == dt.datetime.fromtimestamp(WALL_S).astimezone().isoformat()
    assert final["routine_title"] and final["active_s"] > 0 and final["end_reason"]
    value = state_of("sensor", comp, render(comp["value_template"], states[-1]))
    assert value == ("state", round(final["active_s"] / 60, 1))


def test_an_unchanged_state_goes_out_again_after_a_reconnect_and_on_the_heartbeat() -> None:
    sent: list[dict] = []
    link = [1]
    sink = HomeAssistantSink(lambda p: sent.append(dict(p)) or True, HomeAssistantSettings(),
                             connects=lambda: link[0])
    session = Session()

    def run(start_s: float, stop_s: float) -> None:
        for i in range(round((stop_s - start_s) / 0.1)):
            sink.on_step(Tick(now=start_s + i * 0.1, events=[], live=None, session=session,
                              session_changed=False, session_touched=False, coach=None,
                              summary=None, sensor_ok=True, events_published=0))

    run(0.0, 10.0)
    assert len(sent) == 1 and sent[0]["session_state"] == "idle"  # nothing changes: once
    link[0] = 2  # the broker restarted: it may have lost the retained copy
    run(10.0, 20.0)
    assert len(sent) == 2 and sent[1] == sent[0]
    run(20.0, 320.0)
    assert len(sent) == 3  # the heartbeat (300 s)


# -- against a real mosquitto ---------------------------------------------------------------

@pytest.mark.broker
def test_roller_run_announces_itself_sends_state_at_1_hz_and_obeys_its_buttons(broker,
                                                                               tmp_path):
    env = {**os.environ, "ROLLER_CONFIG": "", "STATE_DIRECTORY": str(tmp_path / "state")}
    cfg = tmp_path / "roller.toml"
    cfg.write_text('[device]\nid = "ha-test"\nname = "HA test"\n')
    sub = Subscriber(broker.host, broker.port, ["roller/ha-test/state", "roller/ha-test/error"])
    log = open(tmp_path / "roller-run.log", "w")  # noqa: SIM115 - the child owns it
    proc = subprocess.Popen([sys.executable, "-m", "roller.cli", "run", "--simulate",
                             "--config", str(cfg), "--broker", broker.address], cwd=REPO,
                            env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
    try:
        state = "roller/ha-test/state"
        sub.wait_topic(state, 1, 20)
        config = retained(broker.host, broker.port, "homeassistant/device/ha-test/config")
        assert config is not None, "no retained discovery config"
        body = config.json()
        assert check_device_config(body, base="roller/ha-test") == []
        assert body["dev"]["hw"]  # the emulated chip's name
        press = body["cmps"]["roller_ha-test_start"]
        sub.client.publish(press["command_topic"], press["payload_press"], qos=1)
        sub.wait_for(lambda ms: any(m.topic == state and m.json()["session_state"] ==
                                    "running" for m in ms), 10, "the session running")
        pause = body["cmps"]["roller_ha-test_pause"]
        sub.client.publish(pause["command_topic"], pause["payload_press"], qos=1)
        sub.wait_for(lambda ms: any(m.topic == state and m.json()["session_state"] ==
                                    "paused" for m in ms), 10, "the session paused")
        begin = time.monotonic()
        time.sleep(6.0)
        window = [m for m in sub.on(state) if m.at >= begin]
        arrivals = [m.at for m in sub.on(state)]
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(15)
        log.close()
    errors = [m.json() for m in sub.messages if m.topic.endswith("/error")]
    assert errors == [], errors
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    print(f"state: {len(window)} messages in 6 s, gaps {min(gaps):.2f}..{max(gaps):.2f} s")
    assert len(window) <= 7, f"{len(window)} state messages in 6 s"
    # The service sends them >= 1 s apart; delivery under load may bunch two a little.
    assert min(gaps) >= 0.5, f"state messages {min(gaps):.2f} s apart"
    sub.close()


def test_docs_list_every_entity() -> None:
    text = (REPO / "docs" / "mqtt.md").read_text(encoding="utf-8")
    section = text[text.index("## Home Assistant"):text.index("### Recorder rows")]
    listed = re.findall(r"^\| `([a-z_]+)` \| (\w+)", section, flags=re.MULTILINE)
    assert listed == [(e.key, e.platform) for e in ENTITIES], \
        "docs/mqtt.md's Home Assistant table is stale"
