"""The MQTT contract module against what really goes over the wire and what the docs say.

The golden transcript (tests/golden/mqtt_transcript.jsonl, recorded from a real broker by
test_golden_transcript.py) is the evidence: every topic's QoS and retain flag must be the
contract's, and every payload field must be in the contract's field table for that topic.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roller.commands.analyze import analysis_json
from roller.contract import messages as contract
from roller.pipeline.events import Hold, Stroke, TooFast
from roller.recordings.summary import RecordingReport

REPO = Path(__file__).resolve().parents[1]
GOLDEN = REPO / "tests" / "golden" / "mqtt_transcript.jsonl"


def golden() -> list[dict]:
    return [json.loads(line) for line in GOLDEN.read_text().splitlines()]


def topic_name(topic: str) -> str:
    return topic.split("/", 2)[2]


def test_docs_tables_are_generated_from_the_contract() -> None:
    text = (REPO / "docs" / "mqtt.md").read_text(encoding="utf-8")
    assert contract.render_docs(text) == text, \
        "stale: run python -m roller.contract.messages docs/mqtt.md"
    for name in contract.blocks():
        assert f"<!-- contract:{name} -->" in text, f"docs/mqtt.md lacks the {name} table"


def test_an_unknown_block_in_the_docs_is_named() -> None:
    with pytest.raises(ValueError, match="'lunch'"):
        contract.render_docs("<!-- contract:lunch -->\n<!-- /contract -->")


def test_every_message_has_the_contracts_qos_and_retain_flag() -> None:
    seen = set()
    for m in golden():
        if not m["topic"].startswith("roller/"):
            continue
        name = topic_name(m["topic"])
        assert m["qos"] == contract.qos(name), name
        if not name.startswith("cmd/"):  # a command's retain flag is the sender's
            assert m["retain"] == contract.retain(name), name
        seen.add(name.split("/")[0])
    assert seen == {t.name.split("/")[0] for t in contract.TOPICS}


def test_every_payload_field_is_in_the_contracts_table_and_back() -> None:
    keys: dict[str, set[str]] = {}
    for m in golden():
        name = topic_name(m["topic"]) if m["topic"].startswith("roller/") else ""
        if "json" in m and not name.startswith("cmd/") and name:
            keys.setdefault(name, set()).update(m["json"])
    for name, seen in keys.items():
        if name.startswith("event/"):
            table = {f.name for f in contract.FIELDS["event"] + contract.FIELDS[name]}
        else:
            table = {f.name for f in contract.FIELDS[name]}
        assert seen <= table, f"{name}: undocumented fields {sorted(seen - table)}"
        optional = {f.name for f in contract.FIELDS.get(name, ()) if "optional" in f.type}
        assert table - optional <= seen, f"{name}: documented but never sent " \
                                         f"{sorted(table - optional - seen)}"


def test_field_names_carry_units() -> None:
    for name, fields in contract.FIELDS.items():
        for f in fields:
            if f.unit == "s":
                assert f.name.endswith("_s") or f.name in ("hold",), (name, f.name)
            if f.unit == "m/s":
                assert f.name.endswith("_m_s"), (name, f.name)
            if f.unit == "m":
                assert f.name.endswith("_m"), (name, f.name)


def test_the_service_takes_exactly_the_contracts_verbs() -> None:
    """The running service lists the verbs it knows in an ``unknown_command`` error."""
    errors = [m["json"] for m in golden() if m["topic"].endswith("/error")
              and m["json"]["error"] == "unknown_command"]
    assert errors and errors[0]["expected"] == sorted(contract.COMMAND_VERBS)


def test_analyze_json_uses_the_mqtt_event_schema_and_keeps_the_old_names() -> None:
    summary = RecordingReport(max_speed_m_s=0.05, radius_m=0.075)
    summary.saw_samples(10.0, 20.0, 2000)
    stroke = Stroke(start=10.5, end=12.25, distance_m=0.05, peak_speed_m_s=0.04,
                    mean_speed_m_s=0.0286, direction=1, emitted_at=12.35)
    hold = Hold(start=13.0, end=18.0, emitted_at=18.2)
    fast = TooFast(start=18.5, end=19.0, peak_speed_m_s=0.1, limit_m_s=0.05, emitted_at=18.8)
    summary.add([stroke, hold, fast])
    body = analysis_json(summary)
    for key, event in (("strokes", stroke), ("holds", hold), ("too_fast", fast)):
        got = body[key][0]
        mqtt = contract.event_payload(event, session_id=None)
        del mqtt["session_id"]
        assert {k: got[k] for k in mqtt} == mqtt
        assert got["kind"] == event.kind
        assert not {"start", "end", "emitted_at"} & set(got)  # one name per field, with its unit
    assert body["start_s"] == 10.0
    assert not {"start", "end", "deprecated"} & set(body)


def test_coach_summary_has_unix_names_only() -> None:
    body = contract.summary_payload({"started_at": 1.5, "ended_at": 2.5, "strokes": 3})
    assert body == {"started_unix_s": 1.5, "ended_unix_s": 2.5, "strokes": 3}


def test_an_unknown_topic_is_refused_with_the_names() -> None:
    with pytest.raises(ValueError, match="expected one of"):
        contract.qos("lunch")


def test_the_display_gets_verbs_kinds_and_the_band_from_one_place() -> None:
    from roller.pipeline import PipelineSettings

    p = PipelineSettings()
    served = contract.display_contract(target_speed_m_s=p.target_speed_m_s,
                                       max_speed_m_s=p.max_speed_m_s)
    assert served["band"] == {"target_m_s": p.target_speed_m_s, "limit_m_s": p.max_speed_m_s}
    assert served["verbs"] == list(contract.COMMAND_VERBS)
    assert list(served["command_verbs"]) == list(contract.COMMAND_VERBS)
    assert served["topics"]["health"] == {"qos": 1, "retain": True}
    json.dumps(served)  # servable as is


def test_the_coach_draws_the_band_the_pipeline_judges_by(tmp_path) -> None:
    from firmware_bridge.clock import ManualClock
    from roller.pipeline import PipelineSettings
    from roller.service.config import RollerConfig
    from roller.service.wiring import make_coach

    config = RollerConfig(pipeline=PipelineSettings(max_speed_m_s=0.04, target_speed_m_s=0.02))
    state = make_coach(config, ManualClock()).snapshot(0.0).to_dict()
    assert (state["speed_target_m_s"], state["speed_limit_m_s"]) == (0.02, 0.04)


def test_home_assistant_reads_only_fields_the_contract_declares() -> None:
    import re

    from roller.mqtt.homeassistant import discovery_config

    topics = contract.Topics("r1")
    every_event = {f.name for name, fs in contract.FIELDS.items() if name.startswith("event")
                   for f in fs}
    by_topic = {topics.state: {f.name for f in contract.STATE_FIELDS},
                topics.events: every_event,
                **{topics.event(kind): {f.name for f in contract.EVENT_ENVELOPE + fields}
                   for kind, fields in contract.EVENT_FIELDS.items()}}
    for key, comp in discovery_config(topics, name="Roller one")["cmps"].items():
        if "state_topic" not in comp:
            continue  # a button, or a retired entity
        fields = by_topic[comp["state_topic"]]
        used = set(re.findall(r"value_json\.([a-z_]+)", comp["value_template"]))
        assert used and used <= fields, (key, used - fields)


def test_the_shipped_broker_config_is_what_demo_and_tests_run_with() -> None:
    """config/mosquitto.conf, the demo's broker and the README say one limit: the clients'."""
    from conftest import BROKER_CONF

    from roller.mqtt.client import MAX_PACKET_BYTES
    from roller.mqtt.local_broker import BROKER_LIMITS

    lines = [ln for ln in BROKER_CONF.read_text().splitlines() if ln and not ln.startswith("#")]
    assert lines == BROKER_LIMITS.splitlines() == [f"message_size_limit {MAX_PACKET_BYTES}"]
    readme = (BROKER_CONF.parent.parent / "README.md").read_text()
    assert f"message_size_limit {MAX_PACKET_BYTES}" in readme
