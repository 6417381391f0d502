"""Never alive but deaf (issue 20): a dead, stuck or failing MQTT client is noticed and rebuilt.

Against a real mosquitto: paho's network thread killed the way a MemoryError on a huge packet
killed it, a callback that raises, and a client that hears nothing past its keepalive (on the
manual clock). Each time health and the systemd status say so, and delivery and commands resume
by themselves. Also: why a broker cannot be reached is named (refused, unknown host, TLS, login)
at a bounded rate, for the service and the display alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import getpass
import logging
import socket
import time

import pytest
from conftest import Broker
from test_mqtt_support import Subscriber
from test_service import STEP_S, advance, make_service, wait

from firmware_bridge.clock import ManualClock
from roller.contract.messages import Topics
from roller.display.bridge import MqttBridge
from roller.mqtt.client import MqttSettings
from roller.mqtt.outbox import Outbox
from roller.mqtt.publisher import Publisher
from roller.service.systemd import Notifier, broker_status

# A killed thread is the point of these tests, not a failure of them.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")

FAST = {"keepalive_s": 2, "reconnect_min_delay_s": 0.05, "reconnect_max_delay_s": 0.25,
        "shutdown_flush_s": 1.0}


def kill_thread(thread, exc_type=SystemExit) -> None:
    """End ``thread`` by raising ``exc_type`` in it, as the MemoryError reading a 256 MB packet
    did in paho's packet reader. (paho survives an Exception raised while it waits in select:
    it counts as a lost connection; SystemExit is not an Exception, so it ends the thread
    wherever it lands.)"""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident),
                                                      ctypes.py_object(exc_type))
    assert done == 1


def step_until(service, clock, predicate, timeout_s: float, what: str) -> float:
    """Run service steps (as the loop would, every 30 ms of real time) until ``predicate``;
    returns the real seconds it took."""
    began = time.monotonic()
    while not predicate():
        assert time.monotonic() - began < timeout_s, f"timed out waiting for {what}"
        advance(service, clock, STEP_S)
        time.sleep(STEP_S)
    return time.monotonic() - began


def test_a_killed_network_thread_is_noticed_reported_and_delivery_resumes(broker, tmp_path):
    device = "deaf"
    sub = Subscriber(broker.host, broker.port, [f"roller/{device}/health",
                                                 f"roller/{device}/session"])
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # systemd's notify socket
    systemd.bind(str(tmp_path / "notify"))
    systemd.setblocking(False)
    clock = ManualClock(100.0)
    service = make_service(broker, tmp_path, clock=clock, device=device, auto_start=False,
                           health_interval_s=0.5,
                           notifier=Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify")}))
    pub = service.publisher
    pub.start()
    assert pub.wait_connected(5)
    advance(service, clock, 0.5)
    old = pub.client
    kill_thread(old._thread)
    noticed_s = step_until(service, clock, lambda: pub.link.rebuilds == 1, 10, "the rebuild")
    assert "network thread ended" in pub.link.last_failure
    assert pub.wait_connected(5) and pub.client is not old
    assert pub.degraded and pub.stats()["client_failure"] is not None
    status = broker_status(pub)
    assert status.startswith("running (MQTT client rebuilt") and "thread ended" in status
    advance(service, clock, STEP_S)
    notes = []
    with contextlib.suppress(BlockingIOError):
        while True:
            notes.append(systemd.recv(4096).decode())
    assert f"STATUS={status}" in notes, notes  # `systemctl status` says so
    # health says so, and commands are heard again
    def degraded_health() -> bool:
        return any(m.json()["mqtt"]["client_rebuilds"] == 1 and m.json()["state"] == "degraded"
                   and "thread ended" in m.json()["mqtt"]["client_failure"]
                   for m in sub.on(f"roller/{device}/health"))

    step_until(service, clock, degraded_health, 10, "a degraded health naming the rebuild")
    sub.client.publish(f"roller/{device}/cmd/start", b"", qos=1).wait_for_publish(5)
    step_until(service, clock, lambda: service.session.state == "running", 10, "cmd/start")
    sub.wait_for(lambda ms: any(m.topic.endswith("/session") and m.json()["state"] == "running"
                                for m in ms), 10, "the running session")
    print(f"\nkilled network thread noticed and the client rebuilt in {noticed_s:.2f} s")
    service.close()
    sub.close()
    systemd.close()


def test_a_callback_that_raises_is_noticed_and_the_client_rebuilt(broker, tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="roller.mqtt.publisher")
    sub = Subscriber(broker.host, broker.port, "roller/cb/event/#")
    pub = Publisher(MqttSettings(host=broker.host, port=broker.port, **FAST), Topics("cb"),
                    Outbox(tmp_path / "o.sqlite3"))
    raised = []

    def on_published(mid: int) -> None:  # fails once, as a bug in a callback would
        if not raised:
            raised.append(mid)
            raise RuntimeError("a bug in on_publish")
        Publisher._on_published(pub, mid)

    pub.link._on_published = on_published
    pub.start()
    assert pub.wait_connected(5)
    pub.publish_event("stroke", {"n": 1})
    began = time.monotonic()
    while pub.link.rebuilds == 0:
        assert time.monotonic() - began < 10, "the raising callback was not noticed"
        pub.pump()
        time.sleep(0.03)
    noticed_s = time.monotonic() - began
    assert pub.link.callback_failures == 1
    assert "on_publish raised RuntimeError" in pub.stats()["client_failure"]
    assert any("on_publish raised" in r.getMessage() for r in caplog.records)
    assert pub.wait_connected(5)
    pub.publish_event("stroke", {"n": 2})
    assert pub.flush(5)
    got = sorted({m.json()["n"] for m in sub.wait_topic("roller/cb/event/stroke", 2, 10)})
    assert got == [1, 2]  # the first went out again from the outbox: nothing lost
    print(f"\na raising callback noticed and the client rebuilt in {noticed_s:.2f} s")
    pub.close()
    sub.close()


def test_a_callback_that_blocks_is_noticed_after_the_keepalive_and_delivery_resumes(
        broker, tmp_path):
    """A command sink that never returns holds paho's thread: no ping answered, nothing
    heard. The watch gives up on that client after 2 keepalives + 1 s and builds another."""
    import threading

    release = threading.Event()
    sub = Subscriber(broker.host, broker.port, "roller/hang/event/#")
    pub = Publisher(MqttSettings(host=broker.host, port=broker.port, **FAST), Topics("hang"),
                    Outbox(tmp_path / "o.sqlite3"), on_command=lambda verb, raw: release.wait())
    pub.start()
    assert pub.wait_connected(5)
    time.sleep(0.3)  # subscribed
    sub.client.publish("roller/hang/cmd/start", b"", qos=1).wait_for_publish(5)
    began = time.monotonic()
    while pub.link.rebuilds == 0:
        assert time.monotonic() - began < 3 * pub.link.stuck_after_s, "the hang was not noticed"
        pub.pump()
        time.sleep(0.03)
    noticed_s = time.monotonic() - began
    assert "stuck" in pub.link.last_failure
    assert noticed_s >= pub.link.stuck_after_s - 2 * FAST["keepalive_s"] - 0.5
    assert pub.wait_connected(5)
    pub.on_command = None
    release.set()  # the old thread wakes to a retired client and ends
    pub.publish_event("stroke", {"n": 1})
    assert pub.flush(5)
    sub.wait_topic("roller/hang/event/stroke", 1, 10)
    print(f"\na blocked callback noticed after {noticed_s:.1f} s (keepalive "
          f"{FAST['keepalive_s']} s, limit {pub.link.stuck_after_s:.0f} s)")
    pub.close()
    sub.close()


def test_a_client_that_hears_nothing_past_its_keepalive_is_rebuilt_on_the_manual_clock(
        broker, tmp_path):
    """The timing rule on the manual clock: nothing heard for 2 keepalives + 1 s while
    "connected" is a stuck client (the broker answers a ping every keepalive)."""
    clock = ManualClock(50.0)
    pub = Publisher(MqttSettings(host=broker.host, port=broker.port, **FAST), Topics("mute"),
                    Outbox(tmp_path / "o.sqlite3"), clock=clock)
    pub.start()
    assert pub.wait_connected(5)
    time.sleep(0.3)  # the SUBACK and our retained health settle (heard at 50.0)
    clock.advance(pub.link.stuck_after_s - 0.5)
    pub.pump()
    assert pub.link.rebuilds == 0
    clock.advance(1.0)
    pub.pump()
    assert pub.link.rebuilds == 1 and "stuck" in pub.link.last_failure
    assert pub.wait_connected(5)
    clock.advance(pub.link.stuck_after_s - 0.5)  # heard again since the new connect
    pub.pump()
    assert pub.link.rebuilds == 1
    pub.close()


def test_the_display_rebuilds_a_dead_client_too(broker):
    bridge = MqttBridge(MqttSettings(host=broker.host, port=broker.port, **FAST))
    sub = bridge.subscribe()
    bridge.start()
    assert bridge.wait_connected(5)
    kill_thread(bridge.client._thread)
    began = time.monotonic()
    wait(lambda: bridge.link.rebuilds == 1 and bridge.connected, 10, "the display's rebuild")
    took_s = time.monotonic() - began
    pub = Subscriber(broker.host, broker.port, "roller/+/status")
    pub.client.publish("roller/mat-9/status", b"online", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    seen = []
    while time.monotonic() < deadline and not any(m.get("topic") == "status" for m in seen):
        seen.append(sub.get(5))
    assert any(m.get("device") == "mat-9" for m in seen if m.get("topic") == "status")
    assert bridge.snapshot()["client_rebuilds"] == 1
    print(f"\nthe display's dead client rebuilt in {took_s:.2f} s")
    bridge.close()
    pub.close()


@pytest.mark.parametrize(("host", "port_kind", "tls", "expected"), [
    ("127.0.0.1", "closed", False, "connection refused"),
    ("no-such-host.invalid", "closed", False, "unknown host"),
    ("127.0.0.1", "broker", True, "TLS"),
])
def test_an_unreachable_broker_is_named_with_its_cause_at_a_bounded_rate(
        broker, tmp_path, caplog, host, port_kind, tls, expected):
    caplog.set_level(logging.DEBUG)
    port = broker.port if port_kind == "broker" else _closed_port()
    pub = Publisher(MqttSettings(host=host, port=port, tls=tls, **FAST), Topics("far"),
                    Outbox(tmp_path / "o.sqlite3"))
    pub.start()
    deadline = time.monotonic() + 10
    while expected not in (pub.link_problem or "") and time.monotonic() < deadline:
        pub.pump()
        time.sleep(0.03)
    assert expected in pub.link_problem, pub.link_problem
    for _ in range(60):  # 2 s more of the loop: many attempts, few lines
        pub.pump()
        time.sleep(0.03)
    status = broker_status(pub)
    assert status.startswith("degraded: broker") and expected in status
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    named = [r for r in warnings if expected in r.getMessage()]
    assert 1 <= len(named) <= 3, [r.getMessage() for r in warnings]
    assert not any("not connected" in r.getMessage() for r in warnings)
    assert pub.client.connect_attempts >= 3
    print(f"\n{pub.client.connect_attempts} attempts, {len(named)} line(s): {status}")
    pub.close()


def test_a_refused_login_is_named(tmp_path):
    import subprocess

    passwd = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(passwd), "mat-1", "right"], check=True)
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text().replace("allow_anonymous true",
                                                 f"allow_anonymous false\npassword_file {passwd}\n"
                                                 f"user {getpass.getuser()}"))
    b.start()
    try:
        pub = Publisher(MqttSettings(host=b.host, port=b.port, username="mat-1", **FAST),
                        Topics("mat-1"), Outbox(tmp_path / "o.sqlite3"), password="wrong")
        pub.start()
        deadline = time.monotonic() + 10
        while "login" not in (pub.link_problem or "") and time.monotonic() < deadline:
            pub.pump()
            time.sleep(0.03)
        assert "refused the login" in pub.link_problem, pub.link_problem
        pub.close()
    finally:
        b.stop()


def _closed_port() -> int:
    from conftest import free_port
    return free_port()


def test_duplicate_device_rules_on_the_manual_clock():
    """Which health counts as a second process, and how often it is reported, in simulated
    time (no broker: the rules alone)."""
    import json

    from roller.mqtt.duplicate_device import DUPLICATE_MEMORY_S, REPORT_INTERVAL_S, DuplicateWatch

    clock = ManualClock(10.0, unix_start_s=1_800_000_000.0)
    reports = []
    watch = DuplicateWatch("mat-1", lambda code, msg, **kw: reports.append(kw["other_instance"]),
                           clock=clock, instance="aaaaaa-00000002")

    def health(instance: str, sent: float) -> bytes:
        return json.dumps({"instance": instance, "time_unix_s": sent}).encode()

    # our previous run on this machine, retained, sent a moment before we started: not a twin
    watch.saw_health(health("aaaaaa-00000001", 1_800_000_000.0 - 2), retained=True)
    assert watch.duplicate_of is None and reports == []
    # another process on this machine, retained but sent after we started: a twin
    clock.advance(1.0)
    watch.saw_health(health("aaaaaa-00000003", clock.unix_s()), retained=True)
    assert watch.duplicate_of == "aaaaaa-00000003" and reports == ["aaaaaa-00000003"]
    # seen again and again: reported again only after REPORT_INTERVAL_S
    for _ in range(10):
        clock.advance(REPORT_INTERVAL_S / 20)
        watch.saw_health(health("aaaaaa-00000003", clock.unix_s()), retained=False)
    assert reports == ["aaaaaa-00000003"]
    clock.advance(REPORT_INTERVAL_S / 2)
    watch.saw_health(health("aaaaaa-00000003", clock.unix_s()), retained=False)
    assert reports == ["aaaaaa-00000003"] * 2
    # another machine's old retained health: a roller moved away long ago
    watch.saw_health(health("bbbbbb-00000001", clock.unix_s() - 3600), retained=True)
    assert watch.duplicate_of == "aaaaaa-00000003"
    # forgotten DUPLICATE_MEMORY_S after the last sighting
    clock.advance(DUPLICATE_MEMORY_S + 1)
    assert watch.duplicate_of is None
    # our own health never counts
    watch.saw_health(health("aaaaaa-00000002", clock.unix_s()), retained=False)
    assert watch.duplicate_of is None and len(reports) == 2


def test_connect_failures_are_described_for_a_maker():
    import socket
    import ssl

    from roller.mqtt.client import describe_connect_error, describe_refusal

    cases = {
        ConnectionRefusedError(111, "Connection refused"): "connection refused",
        socket.gaierror(-2, "Name or service not known"): "unknown host 'b.local'",
        TimeoutError("timed out"): "no answer",
        ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"): "TLS handshake",
        OSError(113, "No route to host"): "No route to host",
    }
    for exc, words in cases.items():
        text = describe_connect_error(exc, "b.local", 8883)
        assert text.startswith("b.local:8883 unreachable: ") and words in text, text
    reset = describe_connect_error(ConnectionResetError(104, "Connection reset by peer"),
                                   "b.local", 1883, tls=True)
    assert "TLS handshake failed" in reset and "is 1883 a TLS port?" in reset
    assert "refused the login" in describe_refusal("Bad user name or password", "b", 1)
    assert "refused the login" in describe_refusal("Not authorized", "b", 1)


def test_the_rate_limited_log_runs_on_the_manual_clock(caplog):
    from roller.base.untrusted import RateLimitedLog

    caplog.set_level(logging.WARNING, logger="roller.test.rate")
    clock = ManualClock(0.0)
    limited = RateLimitedLog(logging.getLogger("roller.test.rate"), interval_s=60.0, burst=2,
                             clock=clock)
    assert [limited(logging.WARNING, "line %d", i) for i in range(5)] == [True, True] + [False] * 3
    clock.advance(59.9)
    assert not limited(logging.WARNING, "still in the window")
    clock.advance(0.1)
    assert limited(logging.WARNING, "a new window")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["line 0", "line 1", "4 similar message(s) not logged in the last 60 s "
                     "(6 in all)", "a new window"]
