"""The service end to end: the real driver on B's emulated chip fed by the simulator, A's
pipeline, a real mosquitto and an independent subscriber.

In-process tests drive :class:`roller.service.loop.Service` step by step on a ManualClock (ten
simulated seconds take a fraction of a second); subprocess tests run ``roller run --simulate``
as systemd would and kill it.
"""

from __future__ import annotations

import dataclasses
import getpass
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import Broker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_mqtt_support import Subscriber, retained

from firmware_bridge.clock import ManualClock
from firmware_bridge.sensor import SensorSettings, open_sensor
from firmware_bridge.simulator import HoldSegment, RestSegment, Scenario, StrokeSegment
from roller.coaching.history import History
from roller.coaching.session import SessionSettings
from roller.contract.command_table import CommandError, decode_payload
from roller.contract.messages import Topics
from roller.mqtt.client import MqttSettings
from roller.mqtt.outbox import Outbox
from roller.mqtt.publisher import Publisher
from roller.pipeline import Pipeline, PipelineSettings
from roller.service.config import DeviceSettings, RollerConfig
from roller.service.loop import Service, ServiceSettings
from roller.service.systemd import Notifier

REPO = Path(__file__).resolve().parent.parent
FAST_MQTT = {"keepalive_s": 2, "reconnect_min_delay_s": 0.05, "reconnect_max_delay_s": 0.25,
             "shutdown_flush_s": 2.0}
STEP_S = 0.02


def session_scenario() -> Scenario:
    """Still (to calibrate), slow strokes, one too-fast pass, a hold, more slow strokes."""
    slow = [StrokeSegment(0.08 * (-1) ** i, 0.03) for i in range(6)]
    return Scenario(segments=(RestSegment(3.0), *slow, StrokeSegment(0.25, 0.12),
                              RestSegment(1.0), HoldSegment(6.0), *slow, RestSegment(2.0)),
                    gyro_bias_rad_s=(0.02, -0.01, 0.015))


def make_service(broker: Broker, state: Path, *, clock: ManualClock, device: str = "svc",
                 scenario: Scenario | None = None, seed: int = 0, controls=None,
                 notifier: Notifier | None = None, auto_start: bool = True,
                 **service) -> Service:
    config = RollerConfig(
        device=DeviceSettings(id=device),
        mqtt=MqttSettings(host=broker.host, port=broker.port, **FAST_MQTT),
        service=ServiceSettings(**service), session=SessionSettings(auto_start=auto_start),
        state_dir=str(state))
    publisher = Publisher(config.mqtt, Topics(device), Outbox(state / "outbox.sqlite3"))
    driver = open_sensor(SensorSettings(), simulate=True, scenario=scenario or session_scenario(),
                         seed=seed, clock=clock)
    return Service(config.service, config.session, device_id=config.device_id, driver=driver,
                   pipeline=Pipeline(PipelineSettings()), publisher=publisher,
                   controls=controls, clock=clock,
                   notifier=notifier or Notifier({}))


def advance(service: Service, clock: ManualClock, seconds: float) -> list:
    events = []
    for _ in range(round(seconds / STEP_S)):
        clock.advance(STEP_S)
        events.extend(service.step())
    return events


def wait(predicate, timeout_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def settle(service: Service, timeout_s: float = 5.0) -> None:
    """Let the broker acknowledge everything (pumping as the loop would)."""
    def done() -> bool:
        service.publisher.pump()
        return len(service.publisher.outbox) == 0
    wait(done, timeout_s, "the outbox to drain")


def test_events_and_live_reach_a_subscriber(broker, tmp_path):
    sub = Subscriber(broker.host, broker.port, "roller/svc/#")
    clock = ManualClock(100.0)
    service = make_service(broker, tmp_path, clock=clock)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    events = advance(service, clock, session_scenario().duration_s + 2)
    kinds = [e.kind for e in events]
    assert kinds.count("stroke") >= 8, kinds
    assert "too_fast_alert" in kinds and "hold" in kinds
    settle(service)
    got = sub.wait_for(lambda ms: sum("/event/" in m.topic for m in ms) >= len(events), 5,
                       "every event")
    published = [m for m in got if "/event/" in m.topic]
    assert [m.json()["seq"] for m in published] == list(range(1, len(events) + 1))
    assert [m.topic.rsplit("/", 1)[1] for m in published] == kinds
    stroke = next(m.json() for m in published if m.topic.endswith("/stroke"))
    assert {"start_s", "end_s", "distance_m", "peak_speed_m_s", "session_id"} <= set(stroke)
    live = [m.json() for m in got if m.topic == "roller/svc/live"]
    # ~10 Hz of simulated time
    expected = (session_scenario().duration_s + 2) / 0.1
    assert 0.8 * expected <= len(live) <= 1.1 * expected
    assert {"t_s", "speed_m_s", "phase", "stroke_count", "hold_time_s", "too_fast"} <= set(live[0])
    assert max(m["speed_m_s"] for m in live) > 0.08  # the fast pass is visible live
    # the running session's figures go out at most every publish_interval_s: within it
    session = retained(broker.host, broker.port, "roller/svc/session")
    assert session is not None and session.json()["state"] == "running"
    assert 0 < session.json()["strokes"] <= kinds.count("stroke")
    health = retained(broker.host, broker.port, "roller/svc/health")
    assert health is not None and health.json()["sensor"]["connected"] is True
    service.close()
    assert retained(broker.host, broker.port, "roller/svc/status").payload == b"offline"
    # the shutdown ended the session, and the last figures say so, every stroke counted
    final = retained(broker.host, broker.port, "roller/svc/session").json()
    assert final["state"] == "finished" and final["end_reason"] == "shutdown"
    assert final["strokes"] == kinds.count("stroke")
    sub.close()


def test_a_session_that_begins_with_a_fast_pass_includes_its_alert(broker, tmp_path):
    """The alert comes mid-stroke, before the stroke itself is known: it starts the session."""
    sub = Subscriber(broker.host, broker.port, "roller/svc/event/#")
    scenario = Scenario(segments=(RestSegment(3.0), StrokeSegment(0.25, 0.12),
                                  StrokeSegment(-0.08, 0.03), RestSegment(2.0)),
                        gyro_bias_rad_s=(0.02, -0.01, 0.015))
    clock = ManualClock(100.0)
    service = make_service(broker, tmp_path, clock=clock, scenario=scenario)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    events = advance(service, clock, scenario.duration_s + 1)
    assert events[0].kind == "too_fast_alert"
    settle(service)
    got = [m.json() for m in sub.wait_for(lambda ms: len(ms) >= len(events), 5, "events")]
    sessions = {m["session_id"] for m in got}
    assert len(sessions) == 1 and None not in sessions, got
    service.close()
    sub.close()


def test_rolling_on_after_stop_is_no_new_session_until_the_roller_has_rested(broker, tmp_path):
    slow = [StrokeSegment(0.08 * (-1) ** i, 0.03) for i in range(4)]
    # the rest: 10 s before the stillness counts as nobody there, then restart_rest_s (30 s)
    scenario = Scenario(segments=(RestSegment(3.0), *slow, *slow, RestSegment(50.0), *slow,
                                  RestSegment(2.0)),
                        gyro_bias_rad_s=(0.02, -0.01, 0.015))
    clock = ManualClock(100.0)
    service = make_service(broker, tmp_path, clock=clock, scenario=scenario)
    strokes = 0
    while strokes < 3:
        strokes += sum(e.kind == "stroke" for e in advance(service, clock, STEP_S))
    assert service.session.state == "running"
    first = service.session.id
    service.submit_command("stop", b"", "test")
    advance(service, clock, 20.0)  # the person carries on rolling after pressing Stop
    assert service.session.state == "finished" and service.session.id == first
    advance(service, clock, 55.0)  # a rest of more than restart_rest_s, then rolling again
    assert service.session.state == "running" and service.session.id != first
    service.close()


def test_commands_change_the_session_and_bad_ones_are_reported(broker, tmp_path):
    sub = Subscriber(broker.host, broker.port, "roller/svc/#")
    clock = ManualClock()
    service = make_service(broker, tmp_path, clock=clock, auto_start=False)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    time.sleep(0.1)  # SUBSCRIBE cmd/+ in flight
    for verb, payload in (("start", b""), ("pause", b"{}"), ("resume", b" "), ("stop", b"")):
        sub.client.publish(f"roller/svc/cmd/{verb}", payload, qos=1).wait_for_publish(5)
        wait(lambda: len(service.inbox) > 0, 5, f"cmd/{verb}")
        advance(service, clock, 0.2)
        assert service.session.state == {"start": "running", "pause": "paused",
                                         "resume": "running", "stop": "finished"}[verb]
    sub.client.publish("roller/svc/cmd/pause", b"", qos=1)  # nothing to pause now
    sub.client.publish("roller/svc/cmd/start", b"[1, 2]", qos=1)  # not an object
    sub.client.publish("roller/svc/cmd/dance", b"", qos=1)  # unknown verb
    wait(lambda: len(service.inbox) >= 3, 5, "three commands")
    advance(service, clock, 0.1)
    errors = [m.json() for m in sub.wait_topic("roller/svc/error", 3)]
    assert [e["error"] for e in errors] == ["not_possible", "bad_payload", "unknown_command"]
    assert errors[1]["expected"] == "nothing or a JSON object"
    assert "start" in errors[2]["expected"]
    assert service.session.state == "finished"  # nothing changed
    service.close()
    sub.close()


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(verb=st.one_of(st.sampled_from(["start", "pause", "resume", "next", "stop",
                                       "start_pause"]),
                      st.text(st.characters(blacklist_characters="/+#\x00",
                                            blacklist_categories=("Cs",)),
                              min_size=1, max_size=20)),
       payload=st.one_of(st.binary(max_size=60),
                         st.builds(lambda v: json.dumps(v).encode(),
                                   st.recursive(st.none() | st.booleans() | st.integers()
                                                | st.text(max_size=8),
                                                lambda c: st.lists(c, max_size=3)
                                                | st.dictionaries(st.text(max_size=5), c,
                                                                  max_size=3),
                                                max_leaves=6))))
def test_fuzzed_commands_never_crash_the_loop(fuzz_service, verb, payload):
    service, clock, sub, marks = fuzz_service
    n0 = len(sub.on("roller/fuzz/error"))
    service.submit_command(verb, payload)
    advance(service, clock, STEP_S)
    # A marker on the same connection: once it arrives, every error before it has arrived.
    marks.append(len(marks))
    service.publisher.client.publish("roller/fuzz/marker", str(marks[-1]), qos=1)
    sub.wait_for(lambda ms: any(m.topic == "roller/fuzz/marker"
                                and m.payload == str(marks[-1]).encode() for m in ms), 5,
                 "the marker")
    new = sub.on("roller/fuzz/error")[n0:]
    try:
        data = decode_payload(verb, payload)
        takes_object = verb in service.commands and \
            service.commands.parse(verb, b"{}")[0].payload is dict
        bad = verb not in service.commands or (data != {} and not takes_object)
    except CommandError:
        bad = True
    if bad:  # refused with exactly one error naming the command
        assert len(new) == 1 and new[0].json()["command"] == verb
        # A verb taking a JSON object checks it in its handler (the coach's `start`), which
        # refuses what it cannot use as not possible.
        own_check = verb in service.commands and \
            service.commands.parse(verb, b"{}")[0].payload is dict
        allowed = ("unknown_command", "bad_payload") + (("not_possible",) if own_check else ())
        assert new[0].json()["error"] in allowed
    else:  # accepted, or refused as not possible now (or, for a verb that checks its own
        # JSON object, as a bad payload)
        assert len(new) <= 1
        allowed = ("not_possible", "bad_payload") if takes_object else ("not_possible",)
        assert all(m.json()["error"] in allowed for m in new)
    assert not service.stopping


@pytest.fixture(scope="module")
def fuzz_service(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fuzz")
    b = Broker(tmp)
    b.start()
    sub = Subscriber(b.host, b.port, ["roller/fuzz/error", "roller/fuzz/marker"])
    clock = ManualClock()
    service = make_service(b, tmp, clock=clock, device="fuzz")
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    advance(service, clock, 1.0)
    yield service, clock, sub, []
    service.close()
    sub.close()
    b.stop()


def persistent_broker(tmp_path: Path) -> Broker:
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text().replace("persistence false", "persistence true")
                      + f"persistence_location {tmp_path}/\nuser {getpass.getuser()}\n")
    b.start()
    return b


def test_broker_restart_mid_session_loses_no_event(tmp_path):
    broker = persistent_broker(tmp_path)
    try:
        sub = Subscriber(broker.host, broker.port, "roller/svc/event/#", client_id="watch",
                         clean_session=False)
        clock = ManualClock()
        service = make_service(broker, tmp_path, clock=clock)
        service.publisher.start()
        assert service.publisher.wait_connected(5)
        events = advance(service, clock, 8)
        broker.stop()
        events += advance(service, clock, 10)  # strokes and the fast pass while it is down
        broker.start()
        events += advance(service, clock, session_scenario().duration_s - 16)
        assert len(events) >= 8
        settle(service, 10)
        got = sub.wait_for(lambda ms: {m.json()["seq"] for m in ms} >= set(
            range(1, len(events) + 1)), 10, "every seq")
        assert {m.json()["seq"] for m in got} == set(range(1, len(events) + 1))
        service.close()
        sub.close()
    finally:
        broker.stop()


def test_restart_with_events_pending_delivers_them_in_order(broker, tmp_path):
    broker.stop()
    clock = ManualClock()
    first = make_service(broker, tmp_path, clock=clock)
    first.publisher.start()
    events = advance(first, clock, session_scenario().duration_s)
    assert len(events) >= 8
    first.close()  # broker down: everything stays in the outbox
    pending = Outbox(tmp_path / "outbox.sqlite3").peek_all()
    assert [m.seq for m in pending if m.seq] == list(range(1, len(events) + 1))
    broker.start()
    sub = Subscriber(broker.host, broker.port, "roller/svc/#")
    clock2 = ManualClock()
    second = make_service(broker, tmp_path, clock=clock2, scenario=Scenario(
        segments=(RestSegment(5.0),)))
    second.publisher.start()
    assert second.publisher.wait_connected(5)
    advance(second, clock2, 0.5)
    settle(second)
    got = sub.wait_topic("roller/svc/event/stroke", sum(e.kind == "stroke" for e in events))
    all_events = [m.json()["seq"] for m in sub.messages if "/event/" in m.topic]
    assert all_events == list(range(1, len(events) + 1))
    assert got[0].json()["kind"] == "stroke"
    final = retained(broker.host, broker.port, "roller/svc/session").json()
    assert final["end_reason"] == "shutdown"
    second.close()
    sub.close()


def test_readiness_and_watchdog_over_notify_socket(broker, tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    clock = ManualClock()
    notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"})
    service = make_service(broker, tmp_path, clock=clock, notifier=notifier)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    advance(service, clock, 0.1)
    messages = {sock.recv(4096).decode() for _ in range(2)}
    assert messages == {"READY=1\nSTATUS=running", "WATCHDOG=1"}
    assert service.ready
    advance(service, clock, 1.0)  # a watchdog ping every 1 s (half of 2 s)
    assert sock.recv(4096) == b"WATCHDOG=1"
    broker.stop()
    wait(lambda: not service.publisher.connected, 5, "the disconnect")
    advance(service, clock, STEP_S)
    status = sock.recv(4096).decode()
    assert status.startswith("STATUS=degraded: broker") and "kept in the outbox" in status
    broker.start()
    assert service.publisher.wait_connected(5)
    advance(service, clock, STEP_S)
    assert sock.recv(4096) == b"STATUS=running"
    service.close()
    assert sock.recv(4096) == b"STOPPING=1"
    sock.close()


def test_degraded_ready_when_the_broker_is_unreachable(broker, tmp_path):
    broker.stop()
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    clock = ManualClock()
    service = make_service(broker, tmp_path, clock=clock, ready_timeout_s=1.0,
                           notifier=Notifier({"NOTIFY_SOCKET": path}))
    service.publisher.start()
    advance(service, clock, 1.2)
    msg = sock.recv(4096).decode()
    assert msg.startswith("READY=1\nSTATUS=degraded:") and "unreachable" in msg
    service.close()
    sock.close()


def test_sensor_fault_is_reported_and_recovered(broker, tmp_path):
    sub = Subscriber(broker.host, broker.port, "roller/svc/#")
    clock = ManualClock()
    service = make_service(broker, tmp_path, clock=clock, sensor_stale_s=0.5)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    advance(service, clock, 1.0)
    chip = service.driver.dev.bus.chips[service.driver.address]  # the emulated chip
    chip.unplug()
    advance(service, clock, 2.0)
    err = sub.wait_topic("roller/svc/error")[0].json()
    assert err["error"] == "sensor_fault"
    wait(lambda: any(m.json()["state"] == "degraded" for m in sub.on("roller/svc/health")), 5,
         "degraded health")
    chip.replug()
    advance(service, clock, 3.0)
    wait(lambda: sub.on("roller/svc/health")[-1].json()["state"] == "ok", 5, "health ok again")
    service.close()
    sub.close()


# -- the real command line --------------------------------------------------------------------
def roller_run(broker: Broker, tmp_path: Path, *extra: str, env_extra=None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("ROLLER_CONFIG", "NOTIFY_SOCKET",
                                                            "WATCHDOG_USEC")}
    env["XDG_STATE_HOME"] = str(tmp_path / "xdg")
    env.update(env_extra or {})
    log = open(tmp_path / "roller-run.log", "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "roller.cli", "run", "--simulate",
                             "--broker", broker.address, *extra], cwd=REPO, env=env,
                            stdout=log, stderr=subprocess.STDOUT, text=True)


def test_roller_run_without_a_config_file_then_sigterm(broker, tmp_path):
    path = str(tmp_path / "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(15)
    sub = Subscriber(broker.host, broker.port, ["roller/+/status", "roller/+/live",
                                                 "homeassistant/device/+/config"])
    proc = roller_run(broker, tmp_path, env_extra={"NOTIFY_SOCKET": path,
                                                   "WATCHDOG_USEC": "1000000"})
    try:
        notes = [sock.recv(4096).decode()]
        while notes[-1] == "WATCHDOG=1":  # pings start with the loop, READY once connected
            notes.append(sock.recv(4096).decode())
        assert notes[-1] == "READY=1\nSTATUS=running", notes
        sub.wait_for(lambda ms: sum(m.topic.endswith("/live") for m in ms) >= 5, 10, "live")
        status = [m for m in sub.messages if m.topic.endswith("/status")]
        device = status[0].topic.split("/")[1]
        assert status[0].payload == b"online"
        assert any(m.topic == f"homeassistant/device/{device}/config" for m in sub.messages)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, (tmp_path / "roller-run.log").read_text()
        stopping = sock.recv(4096)
        while stopping == b"WATCHDOG=1":
            stopping = sock.recv(4096)
        assert stopping == b"STOPPING=1"
        sub.wait_for(lambda ms: ms[-1].topic == f"roller/{device}/status"
                     and ms[-1].payload == b"offline", 5, "offline after SIGTERM")
        assert (tmp_path / "xdg" / "roller" / "outbox.sqlite3").exists()
    finally:
        proc.kill()
        proc.wait()
        sub.close()
        sock.close()


def test_a_session_ended_by_sigterm_is_in_the_history_and_says_so(broker, tmp_path):
    """Issue 9 item 2, through the real command line: SIGTERM ends the running session as
    ``shutdown``; it is stored in the history, and the retained session and coach say it
    ended (a display then shows the offline roller's summary, not a live prompt)."""
    config = tmp_path / "roller.toml"
    config.write_text("[device]\nid = \"term\"\n[session]\nmin_record_active_s = 1.0\n",
                      encoding="utf-8")
    sub = Subscriber(broker.host, broker.port, ["roller/term/coach", "roller/term/session",
                                                 "roller/term/status"])
    proc = roller_run(broker, tmp_path, "--config", str(config))
    try:
        sub.wait_for(lambda ms: any(m.topic.endswith("/coach") and m.json()["state"] == "active"
                                    and m.json()["step_active_s"] >= 2 for m in ms), 60,
                     "a coached session with activity")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, (tmp_path / "roller-run.log").read_text()
        sub.wait_for(lambda ms: ms[-1].topic == "roller/term/status"
                     and ms[-1].payload == b"offline", 5, "offline after SIGTERM")
    finally:
        proc.kill()
        proc.wait()
        sub.close()
    session = retained(broker.host, broker.port, "roller/term/session").json()
    coach = retained(broker.host, broker.port, "roller/term/coach").json()
    assert session["state"] == "finished" and session["end_reason"] == "shutdown"
    assert coach["state"] == "done" and coach["cue"] == "shutdown"
    assert coach["session_id"] == session["session_id"]
    assert coach["summary"]["end_reason"] == "shutdown"
    with History(tmp_path / "xdg" / "roller" / "history.sqlite3") as history:
        rows = history.sessions()
    assert [row.end_reason for row in rows] == ["shutdown"]
    assert rows[0].active_s >= 2


def test_last_will_after_kill_9_of_roller_run(broker, tmp_path):
    sub = Subscriber(broker.host, broker.port, "roller/+/status")
    proc = roller_run(broker, tmp_path)
    try:
        sub.wait_for(lambda ms: any(m.payload == b"online" for m in ms), 15, "online")
        proc.kill()
        proc.wait(5)
        sub.wait_for(lambda ms: ms[-1].payload == b"offline", 5, "the last will")
    finally:
        proc.kill()
        proc.wait()
        sub.close()


def test_loop_period_never_exceeds_half_the_drivers_safe_read_interval(broker, tmp_path):
    assert dataclasses.is_dataclass(ServiceSettings)
    clock = ManualClock()
    service = make_service(broker, tmp_path, clock=clock, read_interval_s=1.0)
    assert service.period_s == pytest.approx(service.driver.max_read_interval_s / 2)
    relaxed = make_service(broker, tmp_path / "b", clock=clock, read_interval_s=0.005)
    assert relaxed.period_s == pytest.approx(0.005)
    service.close()
    relaxed.close()


def test_gpio_buttons_led_and_buzzer(broker, tmp_path):
    from gpiozero.pins.mock import MockFactory

    from firmware_bridge.gpio import Controls, GpioSettings

    factory = MockFactory()
    clock = ManualClock()
    service = make_service(broker, tmp_path, clock=clock, auto_start=False)
    gpio = GpioSettings(start_pause_pin=17, next_pin=27, status_led_pin=22, buzzer_pin=23,
                        bounce_time_s=0.0)
    service.controls = Controls(
        gpio, pin_factory=factory,
        on_start_pause=lambda: service.submit_command("start_pause", b"", "gpio"),
        on_next=lambda: service.submit_command("next", b"", "gpio"))
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    button = factory.pin(17)
    button.drive_low()  # pressed (pull-up button to GND)
    button.drive_high()
    advance(service, clock, 0.1)
    assert service.session.state == "running"  # the one button started a session
    button.drive_low()
    button.drive_high()
    advance(service, clock, 0.1)
    assert service.session.state == "paused"
    assert service.controls.status in ("idle", "rolling", "holding")
    buzzer = factory.pin(23)
    events = advance(service, clock, session_scenario().duration_s)
    assert any(e.kind == "too_fast_alert" for e in events)
    assert any(state for _, state in buzzer.states)  # it was switched on for the alert
    service.driver.dev.bus.chips[service.driver.address].unplug()
    advance(service, clock, 2.0)
    assert service.controls.status == "fault"
    service.close()


def test_calibration_is_loaded_at_start_and_saved_when_confident(broker, tmp_path):
    from roller.pipeline.calibration import Calibration
    from roller.service.wiring import make_pipeline as _make_pipeline

    path = tmp_path / "calibration.json"
    Calibration(gyro_bias_rad_s=(0.01, -0.02, 0.03), roll_axis=(0.0, 1.0, 0.0),
                confident=True).save(path)
    pipeline = _make_pipeline(RollerConfig(), path)
    # the saved calibration seeds the estimates (live from the start) but pins nothing
    assert pipeline.calibration.gyro_bias_rad_s == pytest.approx((0.01, -0.02, 0.03))
    assert pipeline.calibration.roll_axis == pytest.approx((0.0, 1.0, 0.0))
    assert pipeline.calibration.confident
    assert not pipeline.internal_state()["axis"]["pinned"]
    assert pipeline.settings.roll_axis is None
    pinned = RollerConfig(pipeline=PipelineSettings(gyro_bias_rad_s=[0.0, 0.0, 0.0]))
    assert _make_pipeline(pinned, path).calibration.gyro_bias_rad_s == (0.0, 0.0, 0.0)
    absent = _make_pipeline(RollerConfig(), tmp_path / "absent.json")
    assert absent.calibration.roll_axis is None and not absent.calibration.confident

    path.unlink()
    clock = ManualClock()
    service = make_service(broker, tmp_path, clock=clock)
    service.calibration_path = path
    advance(service, clock, session_scenario().duration_s)
    assert service.pipeline.calibration.confident
    service.close()
    saved = Calibration.load(path)
    assert saved.gyro_bias_rad_s == pytest.approx((0.02, -0.01, 0.015), abs=0.005)


def test_a_command_flood_is_bounded_and_reported(broker, tmp_path):
    from roller.contract.command_table import MAX_QUEUED_COMMANDS

    sub = Subscriber(broker.host, broker.port, "roller/svc/error")
    clock = ManualClock()
    service = make_service(broker, tmp_path, clock=clock)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    for _ in range(MAX_QUEUED_COMMANDS + 10):
        service.submit_command("pause", b"", "test")
    assert service.commands_dropped == 10
    advance(service, clock, STEP_S)
    errors = [m.json() for m in sub.wait_for(
        lambda ms: any(m.json()["error"] == "too_many_commands" for m in ms), 5, "flood error")]
    flood = next(e for e in errors if e["error"] == "too_many_commands")
    assert flood["dropped_total"] == 10
    advance(service, clock, 0.5)  # the loop goes on
    assert service.steps > 1
    service.close()
    sub.close()
