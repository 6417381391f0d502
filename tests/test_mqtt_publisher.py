"""The publisher against a real mosquitto, watched by an independent paho subscriber.

Covers: retained status online/offline and the last will, QoS 1 events numbered and in order,
live at QoS 0, zero events lost across a broker restart, events pending in the outbox delivered
by the next publisher (service restart), starting while the broker is down, the full-outbox
policy reported on ``error``, Home Assistant discovery and its re-announcement, commands in,
and username/password login.
"""

from __future__ import annotations

import contextlib
import getpass
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest
from conftest import Broker
from test_mqtt_support import Subscriber, retained

from roller.contract.messages import Topics
from roller.mqtt.client import PASSWORD_ENV, MqttSettings, resolve_password
from roller.mqtt.homeassistant import discovery_config
from roller.mqtt.outbox import Outbox
from roller.mqtt.publisher import Publisher

FAST = {"keepalive_s": 2, "reconnect_min_delay_s": 0.05, "reconnect_max_delay_s": 0.25,
        "shutdown_flush_s": 2.0}


def make(broker, tmp_path: Path, device: str = "r1", *, discovery=None, outbox_max=50_000,
         password: str | None = None, **overrides) -> Publisher:
    settings = MqttSettings(host=broker.host, port=broker.port,
                            outbox_max_messages=outbox_max, **{**FAST, **overrides})
    topics = Topics(device)
    box = Outbox(tmp_path / f"{device}-outbox.sqlite3", max_messages=outbox_max)
    return Publisher(settings, topics, box, discovery=discovery, password=password)


def seqs(messages) -> list[int]:
    return [m.json()["seq"] for m in messages]


def as_me() -> str:
    """mosquitto started as root drops to user 'mosquitto', who cannot read pytest's private
    tmp dirs; ask it to stay the user running the tests (ignored when not root)."""
    return f"user {getpass.getuser()}\n"


def persistent_broker(tmp_path: Path) -> Broker:
    """A mosquitto that keeps sessions and queued QoS 1 messages across a restart, so a test
    subscriber with a persistent session misses nothing the broker acknowledged."""
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text().replace("persistence false", "persistence true")
                      + f"persistence_location {tmp_path}/\nautosave_interval 1\n"
                      + as_me())
    b.start()
    return b


def test_status_events_and_live_reach_an_independent_subscriber(broker, tmp_path):
    sub = Subscriber(broker.host, broker.port, "roller/#")
    pub = make(broker, tmp_path)
    pub.start()
    assert pub.wait_connected(5)
    sub.wait_topic("roller/r1/status")
    for i in range(5):
        pub.publish_event("stroke", {"distance_m": 0.05 + i / 100})
    assert pub.publish_live({"speed_m_s": 0.02, "phase": "rolling"})
    got = sub.wait_topic("roller/r1/event/stroke", 5)
    assert seqs(got) == [1, 2, 3, 4, 5]
    body = got[0].json()
    assert body["device_id"] == "r1" and body["kind"] == "stroke"
    assert body["distance_m"] == pytest.approx(0.05)
    assert got[0].qos == 1
    live = sub.wait_topic("roller/r1/live")[0]
    assert live.json()["phase"] == "rolling" and live.qos == 0
    assert pub.flush(2) and len(pub.outbox) == 0
    online = retained(broker.host, broker.port, "roller/r1/status")
    assert online is not None and online.payload == b"online" and online.retain
    pub.close()
    offline = retained(broker.host, broker.port, "roller/r1/status")
    assert offline is not None and offline.payload == b"offline"
    sub.close()


def test_retained_session_supersedes_and_is_seen_by_late_subscribers(broker, tmp_path):
    pub = make(broker, tmp_path)
    pub.start()
    assert pub.wait_connected(5)
    pub.publish_retained("session", {"state": "running", "strokes": 1})
    pub.publish_retained("session", {"state": "finished", "strokes": 7})
    assert pub.flush(2)
    got = retained(broker.host, broker.port, "roller/r1/session")
    assert got is not None and got.json() == {"state": "finished", "strokes": 7}
    pub.close()


def test_last_will_after_kill_9(broker, tmp_path):
    script = textwrap.dedent(f"""
        import time
        from roller.mqtt.outbox import Outbox
        from roller.mqtt.client import PASSWORD_ENV, MqttSettings, resolve_password
        from roller.mqtt.publisher import Publisher
        from roller.contract.messages import Topics
        p = Publisher(MqttSettings(host="{broker.host}", port={broker.port}, keepalive_s=2),
                      Topics("doomed"), Outbox(r"{tmp_path}/o.sqlite3"))
        p.start()
        assert p.wait_connected(5)
        print("up", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "up"
        sub = Subscriber(broker.host, broker.port, "roller/doomed/status")
        assert sub.wait_topic("roller/doomed/status")[-1].payload == b"online"
        proc.kill()  # SIGKILL: no chance to say goodbye
        proc.wait(5)
        sub.wait_for(lambda ms: ms[-1].payload == b"offline", 5, "the last will")
        sub.close()
    finally:
        proc.kill()
        proc.wait()


def test_broker_restart_mid_stream_loses_no_event(tmp_path):
    broker = persistent_broker(tmp_path)
    try:
        # A persistent session: the broker queues what arrives while the watcher reconnects.
        sub = Subscriber(broker.host, broker.port, "roller/r1/event/#", client_id="watcher",
                         clean_session=False)
        pub = make(broker, tmp_path)
        pub.start()
        assert pub.wait_connected(5)
        total = 0
        for round_ in range(3):
            for _ in range(20):
                total += 1
                pub.publish_event("stroke", {"n": total})
                time.sleep(0.002)
            if round_ < 2:
                broker.stop()
                for _ in range(10):  # events while the broker is down go to the outbox
                    total += 1
                    pub.publish_event("hold", {"n": total})
                broker.start()
        deadline = time.monotonic() + 10
        while len(pub.outbox) and time.monotonic() < deadline:
            pub.pump()
            time.sleep(0.01)
        assert len(pub.outbox) == 0
        got = sub.wait_for(lambda ms: {m.json()["seq"] for m in ms} >= set(range(1, total + 1)),
                           10, f"seq 1..{total}")
        numbers = [m.json()["seq"] for m in got]
        assert set(numbers) == set(range(1, total + 1))  # nothing lost (duplicates allowed)
        first_seen = sorted(set(numbers), key=numbers.index)
        assert first_seen == sorted(first_seen)  # and in order
        pub.close()
        sub.close()
    finally:
        broker.stop()


def test_pending_events_are_delivered_by_the_next_process_in_order(broker, tmp_path):
    broker.stop()  # the first run never reaches the broker
    first = make(broker, tmp_path)
    first.start()
    for i in range(6):
        first.publish_event("stroke", {"n": i})
    first.publish_retained("session", {"strokes": 6})
    assert len(first.outbox) == 7
    first.close()
    broker.start()
    sub = Subscriber(broker.host, broker.port, "roller/r1/#")
    second = make(broker, tmp_path)
    second.start()  # a restarted service: same outbox file
    assert second.wait_connected(5)
    assert second.flush(5)
    got = sub.wait_topic("roller/r1/event/stroke", 6)
    assert seqs(got) == [1, 2, 3, 4, 5, 6]
    assert [m.json()["n"] for m in got] == list(range(6))
    assert second.publish_event("stroke", {"n": 6}).seq == 7  # numbering continues
    assert sub.wait_topic("roller/r1/session")[0].json() == {"strokes": 6}
    second.close()
    sub.close()


def test_starting_while_the_broker_is_down_connects_later(broker, tmp_path):
    broker.stop()
    pub = make(broker, tmp_path)
    pub.start()  # must not raise or block
    assert not pub.wait_connected(0.3)
    assert not pub.publish_live({"speed_m_s": 0.0})
    assert pub.live_skipped == 1
    pub.publish_event("stroke", {"n": 1})
    broker.start()
    assert pub.wait_connected(5)
    assert pub.flush(3)
    pub.close()


def test_full_outbox_drops_oldest_and_reports_it(broker, tmp_path):
    broker.stop()
    pub = make(broker, tmp_path, outbox_max=10)
    pub.start()
    for i in range(15):
        pub.publish_event("stroke", {"n": i})
    assert len(pub.outbox) == 10 and pub.outbox.dropped == 5
    broker.start()
    sub = Subscriber(broker.host, broker.port, "roller/r1/#")
    assert pub.wait_connected(5)
    assert pub.flush(3)
    err = sub.wait_topic("roller/r1/error")[0].json()
    assert err["error"] == "outbox_full"
    assert err["dropped_total"] == 5 and err["last_dropped_seq"] == 5
    got = sub.wait_topic("roller/r1/event/stroke", 10)
    assert seqs(got) == list(range(6, 16))
    pub.close()
    sub.close()


def test_home_assistant_discovery_and_reannouncement(broker, tmp_path):
    topics = Topics("r1")
    config = discovery_config(topics, name="Roller one")
    sub = Subscriber(broker.host, broker.port, "homeassistant/device/#")
    pub = make(broker, tmp_path, discovery=config)
    pub.start()
    assert pub.wait_connected(5)
    first = sub.wait_topic("homeassistant/device/r1/config")[0]
    body = first.json()
    assert body["o"]["name"] == "roller-companion" and body["dev"]["ids"] == ["roller_r1"]
    platforms = {c["p"] for c in body["cmps"].values()}
    assert platforms == {"sensor", "binary_sensor", "button", "event"}
    by_key = {k.removeprefix("roller_r1_"): c for k, c in body["cmps"].items()}
    assert {"speed", "phase", "strokes", "too_fast", "current_step"} <= set(by_key)
    assert by_key["hold_time"] == {"p": "sensor"}  # retired: Home Assistant removes it
    assert by_key["speed"]["unit_of_measurement"] == "mm/s"
    assert by_key["speed"]["state_topic"] == "roller/r1/state"
    assert by_key["too_fast"]["p"] == "binary_sensor"
    assert all(c["unique_id"] for c in body["cmps"].values() if len(c) > 1)
    # the device's status in the availability list (buttons add the session's state to theirs)
    assert body["availability_mode"] == "all"
    assert [a["topic"] for a in body["availability"]] == ["roller/r1/status"]
    stored = retained(broker.host, broker.port, "homeassistant/device/r1/config")
    assert stored is not None and stored.json() == body
    # Home Assistant restarts and announces itself: the roller announces again.
    ha = Subscriber(broker.host, broker.port, "nothing/here")
    ha.client.publish("homeassistant/status", b"online", qos=1).wait_for_publish(5)
    sub.wait_topic("homeassistant/device/r1/config", 2)
    ha.close()
    pub.close()
    sub.close()


def test_discovery_disabled_removes_the_device(broker, tmp_path):
    old = make(broker, tmp_path, discovery=discovery_config(Topics("r1"), name="x"))
    old.start()
    assert old.wait_connected(5)
    old.close()
    assert retained(broker.host, broker.port, "homeassistant/device/r1/config") is not None
    pub = make(broker, tmp_path, discovery={})
    pub.start()
    assert pub.wait_connected(5)
    deadline = time.monotonic() + 5
    while retained(broker.host, broker.port, "homeassistant/device/r1/config") is not None:
        assert time.monotonic() < deadline, "discovery config still retained"
    pub.close()


def test_commands_are_handed_to_the_sink(broker, tmp_path):
    got = []
    pub = make(broker, tmp_path)
    pub.on_command = lambda verb, payload: got.append((verb, payload))
    pub.start()
    assert pub.wait_connected(5)
    sub = Subscriber(broker.host, broker.port, "roller/r1/status")
    sub.wait_topic("roller/r1/status")
    time.sleep(0.1)  # the publisher's SUBSCRIBE to cmd/+ is in flight right after connect
    sub.client.publish("roller/r1/cmd/start", b"", qos=1).wait_for_publish(5)
    sub.client.publish("roller/r2/cmd/stop", b"", qos=1).wait_for_publish(5)  # another roller
    sub.client.publish("roller/r1/cmd/pause", b'{"x": 1}', qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert got == [("start", b""), ("pause", b'{"x": 1}')]
    pub.close()
    sub.close()


def test_many_rollers_share_one_broker(broker, tmp_path):
    sub = Subscriber(broker.host, broker.port, "roller/+/live")
    pubs = [make(broker, tmp_path, f"mat{i}") for i in range(3)]
    for p in pubs:
        p.start()
        assert p.wait_connected(5)
        p.publish_live({"speed_m_s": 0.01})
    sub.wait_for(lambda ms: len({m.topic for m in ms}) == 3, 5, "live from 3 rollers")
    assert {m.topic for m in sub.messages} == {f"roller/mat{i}/live" for i in range(3)}
    for p in pubs:
        p.close()
    sub.close()


@pytest.mark.skipif(not shutil.which("mosquitto_passwd"), reason="needs mosquitto_passwd")
def test_username_and_password_from_the_environment(tmp_path, monkeypatch):
    pwfile = tmp_path / "passwd"
    subprocess.run(["mosquitto_passwd", "-b", "-c", str(pwfile), "roller", "pa55word"],
                   check=True, capture_output=True)
    os.chmod(pwfile, 0o600)
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text().replace(
        "allow_anonymous true", f"allow_anonymous false\npassword_file {pwfile}\n" + as_me()))
    b.start()
    try:
        monkeypatch.setenv(PASSWORD_ENV, "pa55word")
        settings = MqttSettings(username="roller")
        good = make(b, tmp_path, "authok", username="roller", password=resolve_password(settings))
        good.start()
        assert good.wait_connected(5)
        good.close()
        bad = make(b, tmp_path, "authbad", username="roller", password="wrong")
        bad.start()
        assert not bad.wait_connected(1.0)
        bad.close()
    finally:
        b.stop()


def test_payloads_are_json_with_nan_as_null(broker, tmp_path):
    sub = Subscriber(broker.host, broker.port, "roller/r1/live")
    pub = make(broker, tmp_path)
    pub.start()
    assert pub.wait_connected(5)
    pub.publish_live({"speed_m_s": float("nan"), "phase": "idle"})
    body = json.loads(sub.wait_topic("roller/r1/live")[0].payload)
    assert body == {"speed_m_s": None, "phase": "idle"}
    pub.close()
    sub.close()


def _make_tls_files(d: Path) -> tuple[Path, Path, Path]:
    """A throwaway CA and a server certificate for 127.0.0.1 (EC keys: fast)."""
    def ssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)

    ssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=roller test CA")
    ssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
        "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1")
    (d / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
    return d / "ca.pem", d / "server.pem", d / "server.key"


@pytest.mark.skipif(not shutil.which("openssl"), reason="needs the openssl command")
def test_tls_connection_with_a_private_ca(tmp_path):
    ca, cert, key = _make_tls_files(tmp_path)
    b = Broker(tmp_path)
    b.conf.write_text(b.conf.read_text() + f"certfile {cert}\nkeyfile {key}\n" + as_me())
    b.start()
    try:
        pub = make(b, tmp_path, "tls", tls=True, tls_ca_file=str(ca))
        pub.start()
        assert pub.wait_connected(5)
        pub.publish_event("stroke", {"n": 1})
        assert pub.flush(3)
        pub.close()
        # Without our CA the server is not trusted: no connection.
        untrusted = make(b, tmp_path, "tls2", tls=True)
        untrusted.start()
        assert not untrusted.wait_connected(1.0)
        untrusted.close()
    finally:
        b.stop()


class Cable:
    """A TCP forwarder between the publisher and the broker that can be cut like a network:
    while cut, bytes vanish (no FIN, no RST) until the keepalive notices; when reconnected, the
    stale connections are reset, as a router reboot would."""

    def __init__(self, broker: Broker) -> None:
        self.target = (broker.host, broker.port)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.port = self.listener.getsockname()[1]
        self.cut = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                if not self.cut.is_set():
                    b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.close()

    def unplug(self) -> None:
        self.cut.set()

    def plug_in(self) -> None:
        self.cut.clear()
        for s in self.conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
        self.conns.clear()

    def close(self) -> None:
        self.listener.close()
        self.plug_in()


def test_network_drop_loses_no_event(broker, tmp_path):
    cable = Cable(broker)
    sub = Subscriber(broker.host, broker.port, "roller/r1/event/#")  # on the broker's side
    settings = MqttSettings(host="127.0.0.1", port=cable.port, keepalive_s=1,
                            reconnect_min_delay_s=0.05, reconnect_max_delay_s=0.2)
    pub = Publisher(settings, Topics("r1"), Outbox(tmp_path / "o.sqlite3"))
    pub.start()
    assert pub.wait_connected(5)
    for i in range(5):
        pub.publish_event("stroke", {"n": i})
    cable.unplug()
    for i in range(5, 15):  # sent into the void, or kept while the link is known to be down
        pub.publish_event("stroke", {"n": i})
        time.sleep(0.05)
    deadline = time.monotonic() + 6
    while pub.connected and time.monotonic() < deadline:  # the keepalive notices
        time.sleep(0.05)
    assert not pub.connected
    cable.plug_in()
    assert pub.wait_connected(5)
    assert pub.flush(5)
    got = sub.wait_for(lambda ms: {m.json()["seq"] for m in ms} >= set(range(1, 16)), 5,
                       "seq 1..15")
    assert {m.json()["seq"] for m in got} == set(range(1, 16))
    pub.close()
    sub.close()
    cable.close()
