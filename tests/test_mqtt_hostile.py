"""Hostile broker traffic against the service, on a real mosquitto (issue 12).

Whatever anyone publishes on ``cmd/<verb>`` -- any size up to what the broker takes, any
nesting, any bytes, retained or not -- the service answers on ``error`` or drops it counted,
and goes on listening; refusals are logged at a limited rate. A stored message no broker can
take is dropped instead of blocking the queue; a second roller with our device id is reported;
the outbox's disk faults and a history that cannot be opened are reported, not fatal.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time

import pytest
from conftest import Broker
from small_disk import small_disk
from test_mqtt_support import Subscriber
from test_service import STEP_S, advance, make_service, session_scenario, wait

from firmware_bridge.clock import ManualClock
from roller.coaching.history import HistorySettings
from roller.contract.command_table import MAX_COMMAND_BYTES
from roller.contract.messages import Topics
from roller.mqtt.client import MAX_PACKET_BYTES, MqttSettings
from roller.mqtt.outbox import Outbox
from roller.mqtt.publisher import Publisher
from roller.service.config import RollerConfig

FAST = {"keepalive_s": 2, "reconnect_min_delay_s": 0.05, "reconnect_max_delay_s": 0.25,
        "shutdown_flush_s": 1.0}

HOSTILE: dict[str, bytes] = {
    "1000 [ then 1000 ]": b"[" * 1000 + b"]" * 1000,
    "100000 [": b"[" * 100_000,
    "deep inside an object": b'{"step": ' + b"[" * 900 + b"]" * 900 + b"}",
    "1 MB object": b'{"step": "' + b"x" * (1 << 20) + b'"}',
    "8 MB of zeros": b"\0" * (8 << 20),
    "bad UTF-8": b'{"step": "\xff\xfe"}',
    "NUL in a string": b'{"step": "a\x00b"}',
    "NaN": b'{"step": NaN}',
    "huge number": b'{"step": 1' + b"0" * 5000 + b"}",
    "spaces hiding a payload": b" " * (MAX_COMMAND_BYTES + 10) + b'{"step": "x"}',
    "unterminated string of escapes": b'"' + b'\\"' * 2000,
    "a list": b"[1, 2]",
}
"""What anyone may publish; those larger than the clients' packet bound (:data:`OVERSIZED`)
never reach a roller process at all, the rest each get an answer."""

OVERSIZED = {name for name, raw in HOSTILE.items() if len(raw) > MAX_PACKET_BYTES - 1000}
"""The hostile payloads the broker must not send to a roller client (MQTT 5 Maximum Packet
Size): refused before paho holds them."""


@pytest.fixture(scope="module")
def shared_broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("hostile-broker"))
    b.start()
    yield b
    b.stop()


def started(broker, tmp_path, **kw):
    clock = ManualClock(100.0)
    service = make_service(broker, tmp_path, clock=clock, **kw)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    time.sleep(0.2)  # SUBSCRIBE cmd/+ in flight
    return service, clock


def test_hostile_command_payloads_get_an_error_each_and_the_service_goes_on(
        shared_broker, tmp_path, caplog):
    device = "hostile"
    sub = Subscriber(shared_broker.host, shared_broker.port, f"roller/{device}/error")
    service, clock = started(shared_broker, tmp_path, device=device, auto_start=False)
    caplog.set_level(logging.WARNING, logger="roller.mqtt.publisher")
    began = time.monotonic()
    for name, raw in HOSTILE.items():  # the oversized ones first: they must not block the rest
        if name in OVERSIZED:
            sub.client.publish(f"roller/{device}/cmd/start", raw, qos=1).wait_for_publish(10)
    answered = [raw for name, raw in HOSTILE.items() if name not in OVERSIZED]
    for raw in answered:
        sub.client.publish(f"roller/{device}/cmd/start", raw, qos=1).wait_for_publish(10)
    sub.client.publish(f"roller/{device}/cmd/" + "v" * 5000, b"", qos=1)  # a long verb
    wait(lambda: len(service.inbox) >= len(answered) + 1, 20, "the hostile commands")
    time.sleep(0.3)  # an oversized one would have come by now
    assert len(service.inbox) == len(answered) + 1  # the oversized never reached the process
    advance(service, clock, STEP_S)
    errors = [m.json() for m in sub.wait_topic(f"roller/{device}/error", len(answered) + 1, 10)]
    took_s = time.monotonic() - began
    assert [e["error"] for e in errors] == ["bad_payload"] * len(answered) + ["unknown_command"]
    assert all(len(e["message"]) < 400 for e in errors), [len(e["message"]) for e in errors]
    assert service.session.state == "idle"  # nothing acted
    # ... and it still listens: a good command works.
    sub.client.publish(f"roller/{device}/cmd/start", b"", qos=1).wait_for_publish(5)
    wait(lambda: len(service.inbox) > 0, 5, "cmd/start")
    advance(service, clock, STEP_S)
    assert service.session.state == "running"
    assert service.publisher.connects == 1  # never disconnected by any of it
    assert service.publisher.stats()["commands_refused"] == len(answered) + 1
    refusals = [r for r in caplog.records if r.getMessage().startswith("error ")]
    assert len(refusals) <= 5  # rate-limited: 11 refusals, at most 5 lines a minute
    print(f"\n{len(answered) + 1} hostile commands refused in {took_s:.2f} s, "
          f"{len(OVERSIZED)} oversized never delivered, {len(refusals)} log lines")
    service.close()
    sub.close()


def test_a_flood_of_refused_commands_logs_a_few_lines_and_counts_all(shared_broker, tmp_path,
                                                                       caplog):
    service, clock = started(shared_broker, tmp_path, device="flood")
    caplog.set_level(logging.WARNING, logger="roller.mqtt.publisher")
    for _ in range(10):
        for _ in range(200):
            service.submit_command("dance", b"")
        advance(service, clock, STEP_S)
    stats = service.publisher.stats()
    lines = [r for r in caplog.records if "unknown_command" in r.getMessage()]
    assert stats["commands_refused"] == 2000 and len(lines) == 5
    print(f"\n2000 refused commands: {len(lines)} log lines")
    service.close()


def test_a_retained_command_is_never_run_and_reported_once(shared_broker, tmp_path):
    device = "retained"
    sub = Subscriber(shared_broker.host, shared_broker.port, f"roller/{device}/error")
    # Sent retained before the service starts: a crash loop under systemd if it were run.
    sub.client.publish(f"roller/{device}/cmd/start", b"[" * 1000 + b"]" * 1000, qos=1,
                       retain=True).wait_for_publish(5)
    sub.client.publish(f"roller/{device}/cmd/start_pause", b"{}", qos=1,  # (b"" would clear)
                       retain=True).wait_for_publish(5)
    for run in range(2):  # a restart sees them again, and again does nothing
        service, clock = started(shared_broker, tmp_path / str(run), device=device,
                                 auto_start=False)
        advance(service, clock, 0.5)
        assert service.session.state == "idle" and len(service.inbox) == 0
        assert service.publisher.retained_commands == 2
        service.close()
    errors = [m.json() for m in sub.wait_topic(f"roller/{device}/error", 4, 5)]
    assert sorted(e["command"] for e in errors) == ["start", "start", "start_pause",
                                                    "start_pause"]
    assert {e["error"] for e in errors} == {"retained_command"}
    assert "empty retained message" in errors[0]["message"]
    for verb in ("start", "start_pause"):  # clean up the shared broker
        sub.client.publish(f"roller/{device}/cmd/{verb}", b"", qos=1,
                           retain=True).wait_for_publish(5)
    sub.close()


def test_a_stored_message_with_a_malformed_topic_is_dropped_not_retried(shared_broker,
                                                                          tmp_path):
    """An outbox from an older version may hold a topic the broker refuses (a device id
    ending in a newline): mosquitto would disconnect us at every try, for ever."""
    box = Outbox(tmp_path / "outbox.sqlite3")
    box.add("roller/mat-1\n/event/stroke", {"distance_m": 0.1}, numbered=True)
    box.add("roller/r9/event/+", {"distance_m": 0.2}, numbered=True)
    box.add("roller/r9/event/stroke", {"distance_m": 0.3}, numbered=True)
    box.close()
    sub = Subscriber(shared_broker.host, shared_broker.port, "roller/r9/#")
    pub = Publisher(MqttSettings(host=shared_broker.host, port=shared_broker.port, **FAST),
                    Topics("r9"), Outbox(tmp_path / "outbox.sqlite3"))
    pub.start()
    assert pub.wait_connected(5)
    wait(lambda: pub.pump() >= 0 and pub.pending == 0, 5, "the outbox to drain")
    got = sub.wait_topic("roller/r9/event/stroke", 1, 5)
    assert [m.json()["distance_m"] for m in got] == [0.3]
    errors = [m.json() for m in sub.wait_topic("roller/r9/error", 2, 5)]
    assert [e["error"] for e in errors] == ["undeliverable", "undeliverable"]
    assert errors[-1]["dropped_total"] == 2
    time.sleep(0.5)
    assert pub.connects == 1 and pub.stats()["undeliverable"] == 2
    pub.close()
    sub.close()


def test_direct_publishes_the_client_refuses_do_not_raise(shared_broker, tmp_path):
    pub = Publisher(MqttSettings(host=shared_broker.host, port=shared_broker.port, **FAST),
                    Topics("r8"), Outbox(tmp_path / "o.sqlite3"))
    pub.start()
    assert pub.wait_connected(5)
    assert pub._send("roller/r8/#", b"x", qos=1, retain=False) is None
    assert pub.undeliverable == 1 and pub.connected
    pub.close()


def start_twins(broker, tmp_path, device: str, instances: tuple[str, str]) -> list:
    """Two services with one device id (and one client id) and the given instances."""
    services = []
    for instance in instances:
        clock = ManualClock(100.0)
        service = make_service(broker, tmp_path / instance, clock=clock, device=device,
                               health_interval_s=0.5)
        service.publisher.instance = instance
        service.publisher.start()
        services.append((service, clock))
    return services


def run_twins(services, *, until=None, timeout_s: float = 30, steps: int | None = None) -> float:
    """Step both services (0.1 s each, 20 ms apart) until ``until()`` or ``steps`` rounds;
    returns the real seconds it took."""
    began = time.monotonic()
    rounds = 0
    while (time.monotonic() - began < timeout_s and (until is None or not until())
           and (steps is None or rounds < steps)):
        for service, clock in services:
            advance(service, clock, 0.1)
        time.sleep(0.02)
        rounds += 1
    return time.monotonic() - began


def both_see_a_duplicate(services) -> bool:
    return all(s.publisher.duplicate_of is not None for s, _ in services)


def test_a_second_roller_with_the_same_device_id_is_reported(shared_broker, tmp_path):
    """Two services called ``twin`` (same client id too: they kick each other off the broker
    again and again) on two machines: each sees the other's health and reports it."""
    sub = Subscriber(shared_broker.host, shared_broker.port, "roller/twin/error")
    services = start_twins(shared_broker, tmp_path, "twin", ("aaaaaa-00000001",
                                                             "bbbbbb-00000001"))
    run_twins(services, until=lambda: both_see_a_duplicate(services))
    (a, _), (b, _) = services
    assert a.publisher.duplicate_of == "bbbbbb-00000001"
    assert b.publisher.duplicate_of == "aaaaaa-00000001"
    assert a.publisher.degraded and b.publisher.degraded
    errors = [m.json() for m in sub.wait_topic("roller/twin/error", 1, 10)]
    assert {e["error"] for e in errors} == {"duplicate_device"}
    for service, _ in services:
        service.close()
    sub.close()


def test_two_processes_on_one_machine_with_one_device_id_are_reported_at_a_bounded_rate(
        shared_broker, tmp_path):
    """Two services from one config on one host (or two Pis cloned from one SD card: the same
    machine hash): each sees the other's health and says so, once, not at every sighting."""
    sub = Subscriber(shared_broker.host, shared_broker.port, "roller/clone/error")
    services = start_twins(shared_broker, tmp_path, "clone", ("dddddd-00000001",
                                                              "dddddd-00000002"))
    took_s = run_twins(services, until=lambda: both_see_a_duplicate(services))
    (a, _), (b, _) = services
    assert a.publisher.duplicate_of == "dddddd-00000002"
    assert b.publisher.duplicate_of == "dddddd-00000001"
    run_twins(services, steps=100)  # 5 more seconds of health every 0.5 s from both
    sub.wait_topic("roller/clone/error", 2, 10)
    time.sleep(0.5)
    errors = [m.json() for m in sub.on("roller/clone/error")]
    assert [e["error"] for e in errors] == ["duplicate_device"] * 2  # one each, not dozens
    assert {e["other_instance"] for e in errors} == {"dddddd-00000001", "dddddd-00000002"}
    assert a.publisher.stats()["duplicate_of"] == "dddddd-00000002" and a.publisher.degraded
    print(f"\ntwo processes on one machine told apart in {took_s:.2f} s, {len(errors)} reports")
    for service, _ in services:
        service.close()
    sub.close()


def test_our_own_earlier_run_is_no_duplicate(shared_broker, tmp_path):
    """A restart on the same machine finds its previous run's retained health (another run
    id, the same machine hash): not a second roller."""
    for run in ("00000001", "00000002"):
        clock = ManualClock(100.0)
        service = make_service(shared_broker, tmp_path / run, clock=clock, device="single",
                               health_interval_s=0.5)
        service.publisher.instance = f"cccccc-{run}"
        service.publisher.start()
        assert service.publisher.wait_connected(5)
        for _ in range(20):
            advance(service, clock, 0.1)
            time.sleep(0.02)
        assert service.publisher.duplicate_of is None
        service.close()


def test_a_full_disk_degrades_health_and_is_reported_once(shared_broker, tmp_path, caplog):
    caplog.set_level(logging.WARNING)
    sub = Subscriber(shared_broker.host, shared_broker.port, ["roller/disk/error",
                                                              "roller/disk/health"])
    with small_disk(tmp_path, 1 << 20) as disk:
        clock = ManualClock(100.0)
        service = make_service(shared_broker, disk.path, clock=clock, device="disk",
                               health_interval_s=0.5)
        box = service.publisher.outbox
        box.retry_interval_s = 0.2
        service.publisher.start()
        assert service.publisher.wait_connected(5)
        advance(service, clock, 3.0)
        disk.fill()
        advance(service, clock, session_scenario().duration_s - 3.0)  # events, on a full disk
        assert box.disk_error is not None
        stats = service.publisher.stats()
        assert stats["outbox_disk_error"] == box.disk_error and stats["epoch"] == box.epoch
        assert "outbox_in_memory" in stats
        sub.wait_for(lambda ms: any(m.topic.endswith("/health")
                                    and m.json()["state"] == "degraded" for m in ms), 5,
                     "a degraded health")
        disk.free()
        time.sleep(0.3)
        advance(service, clock, 1.0)
        assert box.disk_error is None and box.in_memory == 0
        assert any("writes to disk again" in r.getMessage() for r in caplog.records)
        advance(service, clock, 1.0)
        service.close()
    errors = [m.json() for m in sub.on("roller/disk/error")]
    assert [e["error"] for e in errors].count("outbox_disk") == 1, errors
    assert sub.on("roller/disk/health")[-1].json()["state"] == "ok"
    sub.close()


def test_a_history_that_cannot_be_opened_is_reported_and_coaching_goes_on(shared_broker,
                                                                           tmp_path):
    from roller.service.config import DeviceSettings
    from roller.service.wiring import build_service

    (tmp_path / "history.sqlite3").mkdir()  # a directory where the file should be
    sub = Subscriber(shared_broker.host, shared_broker.port, "roller/nohist/error")
    config = RollerConfig(device=DeviceSettings(id="nohist"),
                          mqtt=MqttSettings(host=shared_broker.host, port=shared_broker.port,
                                            **FAST),
                          history=HistorySettings(), state_dir=str(tmp_path))
    clock = ManualClock(100.0)
    service = build_service(config, simulate=True, clock=clock)
    service.publisher.start()
    assert service.publisher.wait_connected(5)
    errors = [m.json() for m in sub.wait_topic("roller/nohist/error", 1, 5)]
    assert errors[0]["error"] == "history_failed" and "history" in errors[0]["message"]
    advance(service, clock, 1.0)  # the loop runs
    assert service.steps > 0
    service.close()
    sub.close()


def test_hostile_health_on_our_topic_changes_nothing(shared_broker, tmp_path):
    service, clock = started(shared_broker, tmp_path, device="hh")
    sub = Subscriber(shared_broker.host, shared_broker.port, "roller/hh/error")
    for raw in (*HOSTILE.values(), json.dumps({"instance": ["x"]}).encode(),
                json.dumps({"instance": "zzzzzz-1", "time_unix_s": "now"}).encode()):
        sub.client.publish("roller/hh/health", raw, qos=1).wait_for_publish(10)
    time.sleep(0.5)
    advance(service, clock, STEP_S)
    assert service.publisher.connected and service.publisher.connects == 1
    # the last one is live from another machine: that is a duplicate, and the only report
    assert service.publisher.duplicate_of == "zzzzzz-1"
    service.close()
    sub.close()


def test_roller_run_with_a_hostile_retained_command_keeps_running(shared_broker, tmp_path):
    """The crash loop of issue 12: 1000 '[' then 1000 ']' sent retained on cmd/start killed
    ``roller run`` at every start. Now: ignored, reported, and the service runs on."""
    import signal
    import subprocess

    from test_service import roller_run

    device = "loop1"
    config = tmp_path / "roller.toml"
    config.write_text(f'[device]\nid = "{device}"\n')
    sub = Subscriber(shared_broker.host, shared_broker.port,
                     [f"roller/{device}/error", f"roller/{device}/live"])
    sub.client.publish(f"roller/{device}/cmd/start", b"[" * 1000 + b"]" * 1000, qos=1,
                       retain=True).wait_for_publish(5)
    proc = roller_run(shared_broker, tmp_path, "--config", str(config))
    try:
        errors = [m.json() for m in sub.wait_topic(f"roller/{device}/error", 1, 20)]
        assert errors[0]["error"] == "retained_command" and errors[0]["command"] == "start"
        sub.client.publish(f"roller/{device}/cmd/pause", b"[" * 1000 + b"]" * 1000,
                           qos=1).wait_for_publish(5)  # and live, once more
        errors = [m.json() for m in sub.wait_topic(f"roller/{device}/error", 2, 10)]
        assert errors[1]["error"] == "bad_payload"
        n = len(sub.on(f"roller/{device}/live"))
        sub.wait_for(lambda ms: sum(m.topic.endswith("/live") for m in ms) >= n + 20, 10,
                     "live messages going on")
        assert proc.poll() is None
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, (tmp_path / "roller-run.log").read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)
        sub.client.publish(f"roller/{device}/cmd/start", b"", qos=1,
                           retain=True).wait_for_publish(5)
        sub.close()
