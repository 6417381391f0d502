"""The display's HTTP side against a hostile LAN: a real server, real sockets, real mosquitto.

Every request gets a clear answer or is dropped, and the server goes on answering: malformed
request lines, huge heads and bodies, chunked bodies, bad or deeply nested JSON, non-UTF-8,
wrong methods, path traversal, device ids that would make a malformed topic. Commands need the
pairing token and pass the Host/Origin checks; watching needs neither. Slow clients are closed
after the request deadline (event streams are exempt), connections are capped, aborted clients
leave no traceback, refusals are counted and logged at a bounded rate. A hypothesis fuzz test
throws random bytes at the socket and checks that a good request is still answered.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import stat
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from conftest import Broker
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.enums import CallbackAPIVersion

from roller.base.errors import ConfigError
from roller.base.request_guard import RequestGuard
from roller.contract.messages import ID_RULE, SAFE_ID
from roller.display import DisplayServer, DisplaySettings, MqttBridge
from roller.display.pairing import TOKEN_FILE_NAME, PairingToken
from roller.mqtt.client import MqttSettings

TIMEOUT_S = 1.0
"""The test server's request deadline (the default is 5 s): slow clients are closed after it."""


class CommandWatcher:
    """A client subscribed to every roller's commands, as the service would be."""

    def __init__(self, broker: Broker) -> None:
        self.received: list[tuple[str, bytes]] = []
        self._subscribed = threading.Event()
        self.client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2,
                                  client_id=f"test-cmds-{time.monotonic_ns()}")
        self.client.on_message = lambda c, u, m: self.received.append((m.topic, m.payload))
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, u, f, r, p=None: c.subscribe("roller/#", qos=1)
        self.client.connect(broker.host, broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(5)

    def commands(self) -> list[str]:
        return [t for t, _ in self.received if "/cmd/" in t]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    b = Broker(tmp_path_factory.mktemp("broker"))
    b.start()
    yield b
    b.stop()


@pytest.fixture(scope="module")
def watcher(broker):
    w = CommandWatcher(broker)
    yield w
    w.close()


@pytest.fixture(scope="module")
def display(broker, tmp_path_factory):
    state = tmp_path_factory.mktemp("state")
    bridge = MqttBridge(MqttSettings(host=broker.host, port=broker.port,
                                     reconnect_min_delay_s=0.1, reconnect_max_delay_s=0.5))
    server = DisplayServer(
        DisplaySettings(http_host="127.0.0.1", http_port=0, keepalive_s=1.0,
                        request_timeout_s=TIMEOUT_S, allowed_hosts=("roller.test",)),
        bridge, pairing=PairingToken.load_or_create(state))
    server.start()
    assert bridge.wait_connected(5)
    yield server
    server.close()


# ---------------------------------------------------------------- a raw HTTP client

class Answer:
    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        match = re.match(r"HTTP/1\.[01] (\d{3}) ", lines[0])
        assert match, f"not an HTTP answer: {raw[:200]!r}"
        self.status = int(match.group(1))
        self.headers = {k.strip().lower(): v.strip()
                        for k, _, v in (line.partition(":") for line in lines[1:])}

    def json(self):
        return json.loads(self.body)

    def error(self) -> str:
        return self.json()["error"]


def exchange(server: DisplayServer, data: bytes, *, wait_s: float = 5.0,
             half_close: bool = True) -> Answer | None:
    """Send ``data`` on a new connection and read until the server closes it; None when it
    closed without answering."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=wait_s) as s:
        s.sendall(data)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
    return Answer(out) if out else None


def request(server: DisplayServer, method: str, path: str, body: bytes = b"", *,
            host: str | None = None, headers: dict[str, str] | None = None,
            token: str | None = None) -> Answer:
    host = host if host is not None else f"127.0.0.1:{server.port}"
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", "Connection: close"]
    if token:
        lines.append(f"Authorization: Bearer {token}")
    if body or method == "POST":
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    answer = exchange(server, ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    assert answer is not None, f"{method} {path}: no answer"
    return answer


def command(server: DisplayServer, verb: str, device: str, **kw) -> Answer:
    kw.setdefault("token", server.token)
    return request(server, "POST", f"/api/cmd/{verb}", json.dumps({"device": device}).encode(),
                   **kw)


def still_answers(server: DisplayServer) -> None:
    answer = request(server, "GET", "/api/state")
    assert answer.status == 200 and answer.json()["connected"] is True


def wait_for(predicate, timeout_s: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


# ---------------------------------------------------------------- pairing

def test_commands_need_the_pairing_token_and_watching_does_not(display, watcher) -> None:
    before = len(watcher.commands())
    missing = command(display, "pause", "mat-1", token="")
    assert missing.status == 401 and "not paired" in missing.error()
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = command(display, "pause", "mat-1", token="x" * 22)
    assert wrong.status == 401 and "not the display's" in wrong.error()
    basic = request(display, "POST", "/api/cmd/pause", b'{"device": "mat-1"}',
                    headers={"Authorization": f"Basic {display.token}"})
    assert basic.status == 401
    time.sleep(0.3)
    assert len(watcher.commands()) == before, "a refused command reached the broker"
    good = command(display, "pause", "mat-1")
    assert good.status == 200 and good.json() == {"ok": True, "device": "mat-1", "verb": "pause"}
    assert wait_for(lambda: "roller/mat-1/cmd/pause" in watcher.commands()[before:])
    # the page asks whether its token is good; watching needs none
    assert request(display, "GET", "/api/pairing").json() == {"paired": False}
    assert request(display, "GET", "/api/pairing", token=display.token).json() == {"paired": True}
    for path in ("/", "/api/state", "/api/contract", "/static/app.js", "/static/style.css"):
        assert request(display, "GET", path).status == 200, path
    head = request(display, "HEAD", "/")
    assert head.status == 200 and head.body == b""


def test_the_token_is_kept_in_the_state_dir_and_can_be_replaced(tmp_path) -> None:
    first = PairingToken.load_or_create(tmp_path)
    path = tmp_path / TOKEN_FILE_NAME
    assert first.path == path and path.read_text().strip() == first.token
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first.token) >= 22 and first.matches(first.token)
    assert not first.matches(first.token[:-1]) and not first.matches("") and \
        not first.matches(None)
    assert PairingToken.load_or_create(tmp_path).token == first.token  # a restart: still paired
    rotated = PairingToken.load_or_create(tmp_path, rotate=True)
    assert rotated.token != first.token and path.read_text().strip() == rotated.token
    path.write_bytes(b"\xff\x00 not a token")  # a damaged file: replaced, not trusted
    repaired = PairingToken.load_or_create(tmp_path)
    assert repaired.token not in (first.token, rotated.token)
    assert path.read_text().strip() == repaired.token
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    kept_nowhere = PairingToken.load_or_create(blocked)  # its state dir is a file
    assert kept_nowhere.path is None and kept_nowhere.matches(kept_nowhere.token)


# ---------------------------------------------------------------- Host and Origin

def test_host_must_name_the_display(display) -> None:
    port = display.port
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "LOCALHOST", f"[::1]:{port}",
                 f"roller.test:{port}", "192.168.1.20:8080", "roller.test."):
        assert request(display, "GET", "/api/state", host=host).status == 200, host
    for host in ("evil.example", f"evil.example:{port}", "127.0.0.1.evil.example",
                 "roller.test.evil.example", "localhost:99999", "a b", "[zz]:1", ":80",
                 "r\u00f6ller.test"):
        answer = request(display, "GET", "/api/state", host=host)
        assert answer.status == 403, host
        assert "allowed_hosts" in answer.error() or "host[:port]" in answer.error(), host
    post = command(display, "pause", "mat-1", host="evil.example")
    assert post.status == 403 and "evil.example" in post.error()
    no_host = exchange(display, b"GET /api/state HTTP/1.0\r\n\r\n")
    assert no_host.status == 403 and "Host header is required" in no_host.error()
    two = exchange(display, b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nHost: evil.example\r\n"
                            b"\r\n")
    assert two.status == 403 and "more than one Host" in two.error()


def test_a_command_from_another_site_is_refused(display, watcher) -> None:
    before = len(watcher.commands())
    page = f"http://127.0.0.1:{display.port}"
    for origin in ("http://evil.example", "null", f"http://127.0.0.1:{display.port + 1}",
                   f"{page}.evil.example", "file://", f"{page}/path"):
        answer = command(display, "stop", "mat-1", headers={"Origin": origin})
        assert answer.status == 403, origin
        assert "another site" in answer.error() or "not the page" in answer.error(), origin
    time.sleep(0.3)
    assert len(watcher.commands()) == before
    assert command(display, "stop", "mat-1", headers={"Origin": page}).status == 200
    assert wait_for(lambda: "roller/mat-1/cmd/stop" in watcher.commands()[before:])


def test_allowed_host_names_are_checked_when_loaded() -> None:
    with pytest.raises(ConfigError) as info:
        RequestGuard(["good.name", "bad name"])
    assert "display.allowed_hosts" in str(info.value) and "bad name" in str(info.value)


# ---------------------------------------------------------------- device ids

@pytest.mark.parametrize("device", ["mat-1\n", "mat-1\r\n", "a/b", "+", "#", "", " mat",
                                    "x" * 65, "m\u00e4t", "mat\x00"])
def test_a_device_id_that_would_make_a_bad_topic_is_refused(display, watcher, device) -> None:
    before = len(watcher.commands())
    answer = command(display, "pause", device)
    assert answer.status == 400
    assert "device id" in answer.error() and ID_RULE in answer.error()
    time.sleep(0.2)
    assert len(watcher.commands()) == before
    still_answers(display)
    assert display.bridge.connected


@pytest.mark.parametrize("device", ["__proto__", "constructor", "prototype"])
def test_prototype_names_as_device_ids_follow_the_id_rule(display, watcher, device) -> None:
    """Refused when the id rule refuses them; otherwise an id like any other, published to
    exactly its own topic (the page keeps devices in a prototype-less map either way)."""
    before = len(watcher.commands())
    answer = command(display, "pause", device)
    if SAFE_ID.fullmatch(device):
        assert answer.status == 200
        assert wait_for(lambda: f"roller/{device}/cmd/pause" in watcher.commands()[before:])
    else:
        assert answer.status == 400 and "device id" in answer.error()


# ---------------------------------------------------------------- malformed requests

def _post_head(display: DisplayServer, extra: str) -> bytes:
    return (f"POST /api/cmd/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Authorization: Bearer {display.token}\r\n{extra}").encode("latin-1")


MALFORMED = {
    "garbage line": (lambda d: b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n", 400),
    "no version": (lambda d: b"POST /api/cmd/pause\r\n\r\n", 400),
    "HTTP/2": (lambda d: b"GET / HTTP/2.0\r\nHost: 127.0.0.1\r\n\r\n", 505),
    "bad version": (lambda d: b"GET / HTTP/1.x\r\nHost: 127.0.0.1\r\n\r\n", 400),
    "long request line": (lambda d: b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n\r\n", 414),
    "huge header": (lambda d: b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20_000
                    + b"\r\n\r\n", 431),
    "many headers": (lambda d: b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     + b"".join(b"X-%d: 1\r\n" % i for i in range(150)) + b"\r\n", 431),
    "header without colon": (lambda d: b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nnonsense\r\n"
                             b"\r\n", 200),
    "chunked body": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                             "Transfer-Encoding: chunked\r\n\r\n"
                                             "5\r\n{\"a\":\r\n0\r\n\r\n"), 411),
    "no length": (lambda d: _post_head(d, "Content-Type: application/json\r\n\r\n{}"), 411),
    "negative length": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                                "Content-Length: -1\r\n\r\n"), 411),
    "two lengths": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                            "Content-Length: 2\r\nContent-Length: 3\r\n\r\n"
                                            "{}"), 411),
    "huge length": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                            "Content-Length: 1000000000\r\n\r\n{"), 413),
    "text body": (lambda d: _post_head(d, "Content-Type: text/plain\r\nContent-Length: 2\r\n"
                                          "\r\n{}"), 415),
    "bad JSON": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                         "Content-Length: 8\r\n\r\nnot json"), 400),
    "1000 [": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                       "Content-Length: 2000\r\n\r\n" + "[" * 1000
                                       + "]" * 1000), 400),
    "deep object": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                            "Content-Length: 3601\r\n\r\n"
                                            + '{"a":' * 600 + "1" + "}" * 600), 400),
    "not UTF-8": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                          "Content-Length: 14\r\n\r\n")
                  + b'{"device":"\xff"}', 400),
    "short body": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                           "Content-Length: 40\r\n\r\n{\"device\""), 400),
    "a list": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                       "Content-Length: 8\r\n\r\n[\"mat1\"]"), 400),
    "payload not object": (lambda d: _post_head(d, "Content-Type: application/json\r\n"
                                                   "Content-Length: 30\r\n\r\n"
                                                   '{"device":"m","payload":[1,2]}'), 400),
    "PUT": (lambda d: b"PUT /api/cmd/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    "DELETE": (lambda d: b"DELETE / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    "OPTIONS (CORS preflight)": (lambda d: b"OPTIONS /api/cmd/pause HTTP/1.1\r\nHost: "
                                           b"127.0.0.1\r\nOrigin: http://evil.example\r\n"
                                           b"Access-Control-Request-Method: POST\r\n\r\n", 405),
    "nonsense method": (lambda d: b"G\x00T / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", 405),
    "POST elsewhere": (lambda d: _post_head(d, "Content-Length: 0\r\n\r\n").replace(
        b"/api/cmd/pause", b"/api/state"), 404),
    "unknown verb": (lambda d: _post_head(d, "Content-Length: 0\r\n\r\n").replace(
        b"pause", b"explode"), 404),
}

TRAVERSAL = ["/static/../server.py", "/static/%2e%2e/server.py", "/static/..%2fserver.py",
             "/static/../../../../etc/passwd", "/static/", "/static/.", "/static/..",
             "/static/app.js%00.png", "/static/app.js\x00", "/static//etc/passwd",
             "/static/\\..\\server.py", "/..", "/static/nope.js", "/%ff%fe", "/\xff\xfe"]


@pytest.mark.parametrize("name", list(MALFORMED))
def test_a_malformed_request_gets_a_clear_answer(display, watcher, name) -> None:
    data, expected = MALFORMED[name]
    before = len(watcher.commands())
    answer = exchange(display, data(display))
    assert answer is not None, f"{name}: the connection closed without an answer"
    assert answer.status == expected, (name, answer.status, answer.body[:200])
    if expected >= 400:
        assert answer.headers["content-type"] == "application/json"
        assert answer.error(), name  # says what was wrong
        print(f"{name}: {answer.status} {answer.error()}")
    if expected == 405:
        assert answer.headers["allow"] == "GET, HEAD, POST"
        assert "access-control-allow-origin" not in answer.headers
    assert len(watcher.commands()) == before
    still_answers(display)


@pytest.mark.parametrize("path", TRAVERSAL)
def test_static_paths_cannot_leave_the_static_folder(display, path) -> None:
    answer = exchange(display, f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
                               .encode("latin-1"))
    assert answer is not None and answer.status in (400, 404), path
    assert b"import" not in answer.body and b"root:" not in answer.body
    still_answers(display)


def test_an_answered_request_leaves_the_connection_usable(display) -> None:
    """Two requests on one kept-alive connection (a browser's), then a refused one closes it."""
    with socket.create_connection(("127.0.0.1", display.port), timeout=5) as s:
        reader = s.makefile("rb")
        for _ in range(2):
            s.sendall(b"GET /api/contract HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert reader.readline().startswith(b"HTTP/1.1 200")
            headers = {}
            while (line := reader.readline()) != b"\r\n":
                k, _, v = line.decode().partition(":")
                headers[k.lower()] = v.strip()
            assert headers["keep-alive"] == f"timeout={int(TIMEOUT_S)}"
            reader.read(int(headers["content-length"]))
        s.sendall(b"GET /nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        rest = reader.read()
        assert rest.startswith(b"HTTP/1.1 404") and b"Connection: close" in rest


# ---------------------------------------------------------------- slow and many clients

def test_a_slow_client_is_closed_after_the_request_deadline(display) -> None:
    with socket.create_connection(("127.0.0.1", display.port), timeout=10) as s:
        t0 = time.monotonic()
        s.sendall(b"GET / HTTP/1.1\r\n")
        out = b""
        try:
            while time.monotonic() - t0 < 8:  # one header byte every 0.2 s: never complete
                s.sendall(b"X")
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass
        try:
            while chunk := s.recv(65536):
                out += chunk
        except ConnectionResetError:
            pass
        took = time.monotonic() - t0
    assert took < TIMEOUT_S + 1.5, f"a trickling request held the connection {took:.1f} s"
    assert out.startswith(b"HTTP/1.1 408")
    # a connection that sends nothing (closed quietly: browsers keep spare ones open), and a
    # body that never arrives (408)
    for data, expected in ((b"", None), (_post_head(display, "Content-Type: application/json"
                                                             "\r\nContent-Length: 100\r\n\r\n"
                                                             "{\"dev"), 408)):
        timeouts = display.refusals.counts().get("timeout", 0)
        t0 = time.monotonic()
        answer = exchange(display, data, half_close=False)
        took = time.monotonic() - t0
        assert took < TIMEOUT_S + 1.5, (data[:20], took)
        assert (answer.status if answer else None) == expected
        assert display.refusals.counts().get("timeout", 0) == timeouts + (expected is not None)
    still_answers(display)


def test_event_streams_are_exempt_from_the_deadline_and_get_keepalives(display) -> None:
    with socket.create_connection(("127.0.0.1", display.port), timeout=5) as s:
        s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.settimeout(0.5)
        got = b""
        deadline = time.monotonic() + 3 * TIMEOUT_S + 0.5
        while time.monotonic() < deadline:
            try:
                chunk = s.recv(65536)
            except TimeoutError:
                continue
            assert chunk, "the server closed an event stream that was idle"
            got += chunk
    assert got.startswith(b"HTTP/1.1 200") and b"text/event-stream" in got
    assert got.count(b": keepalive") >= 2


def test_connections_beyond_the_cap_get_a_quick_503(broker) -> None:
    bridge = MqttBridge(MqttSettings(host=broker.host, port=broker.port))
    server = DisplayServer(DisplaySettings(http_host="127.0.0.1", http_port=0,
                                           max_connections=4, request_timeout_s=5.0), bridge)
    server.start()
    held = []
    try:
        assert bridge.wait_connected(5)
        for _ in range(4):  # idle connections, each holding a slot for the deadline
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        assert wait_for(lambda: server.httpd.active == 4)
        t0 = time.monotonic()
        answer = exchange(server, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        took = time.monotonic() - t0
        assert answer is not None and answer.status == 503 and took < 1.0, took
        assert "too many connections" in answer.error()
        assert server.refusals.counts()["busy"] >= 1
        for s in held:
            s.close()
        held.clear()
        assert wait_for(lambda: server.httpd.active == 0)
        still_answers(server)
        # event streams may take half of the slots at most
        for _ in range(2):
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
            held.append(s)
        third = exchange(server, b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert third.status == 503 and "live streams" in third.error()
        still_answers(server)
    finally:
        for s in held:
            s.close()
        server.close()


def test_one_address_cannot_take_every_connection(broker) -> None:
    """A host on the LAN holding connections open (a quarter of the cap) leaves room for the
    phone: another address is still answered."""
    bridge = MqttBridge(MqttSettings(host=broker.host, port=broker.port))
    server = DisplayServer(DisplaySettings(http_host="0.0.0.0", http_port=0,
                                           max_connections=16, request_timeout_s=5.0), bridge)
    server.start()
    held = []
    try:
        assert bridge.wait_connected(5)
        for _ in range(4):
            held.append(socket.create_connection(("127.0.0.1", server.port), timeout=5))
        assert wait_for(lambda: server.httpd.active == 4)
        answer = exchange(server, b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert answer is not None and answer.status == 503
        with socket.create_connection(("127.0.0.1", server.port), timeout=5,
                                      source_address=("127.0.0.2", 0)) as other:
            other.sendall(b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Connection: close\r\n\r\n")
            assert other.recv(100).startswith(b"HTTP/1.1 200")
    finally:
        for s in held:
            s.close()
        server.close()


def test_aborted_clients_leave_no_traceback(display, capfd, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="roller.display")
    linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")  # close() sends a reset
    for i in range(30):
        s = socket.create_connection(("127.0.0.1", display.port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        if i % 3 == 0:  # an event stream, cut once it flows
            s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            s.recv(10)
        elif i % 3 == 1:  # a command cut in its body
            s.sendall(_post_head(display, "Content-Type: application/json\r\n"
                                          "Content-Length: 50\r\n\r\n{\"de"))
        else:  # the page, never read
            s.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        s.close()
    time.sleep(2.5)  # the streams' next keepalive writes meet the reset
    still_answers(display)
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err[-2000:]
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all(r.exc_info is None for r in caplog.records)


def test_the_token_never_reaches_a_log(display, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="roller.display")
    link = f"/?token={display.token}"
    assert request(display, "GET", link).status == 200
    assert request(display, "GET", link, host="evil.example").status == 403
    assert command(display, "pause", "mat-1\n").status == 400
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "evil.example" in logged and "token=" in logged
    assert display.token not in logged


def test_refusals_are_counted_and_logged_at_a_bounded_rate(display, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="roller.display")
    before = display.refusals.counts().get("bad_token", 0)
    lines_before = display.refusals.lines_logged
    for _ in range(200):
        assert command(display, "pain", "mat-1", token="y" * 22).status == 401
    assert display.refusals.counts()["bad_token"] - before == 200
    warned = [r for r in caplog.records if "bad_token" in r.getMessage()]
    assert len(warned) <= 1, [r.getMessage() for r in warned]
    assert display.refusals.lines_logged - lines_before <= 1


# ---------------------------------------------------------------- fuzz

METHODS = st.sampled_from(["GET", "POST", "HEAD", "PUT", "", "GET GET", "\x00", "POST\t"])
PATHS = st.sampled_from(["/", "/api/cmd/pause", "/api/cmd/pain", "/events", "/api/state",
                         "/static/app.js", "/static/../x", "*", "http://a/", ""])
HEADER = st.tuples(st.sampled_from(["Host", "Content-Length", "Content-Type", "Origin",
                                    "Authorization", "Transfer-Encoding", "Connection",
                                    "Expect", "X"]),
                   st.text(st.characters(min_codepoint=0, max_codepoint=255), max_size=40))


@st.composite
def requests(draw) -> bytes:
    if draw(st.booleans()):
        return draw(st.binary(max_size=3000))
    head = f"{draw(METHODS)} {draw(PATHS)} {draw(st.sampled_from(['HTTP/1.1', 'HTTP/1.0', '']))}"
    headers = "".join(f"{k}: {v}\r\n" for k, v in draw(st.lists(HEADER, max_size=8)))
    body = draw(st.binary(max_size=200))
    sep = draw(st.sampled_from(["\r\n", "\n", "\r"]))
    return (head + sep + headers + sep).encode("latin-1") + body


FUZZ_COUNTS = {"sent": 0, "answered": 0, "dropped": 0}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                    HealthCheck.data_too_large])
@given(data=requests())
def test_fuzz_random_bytes_never_stop_the_server(fuzz_display, data) -> None:
    server, _ = fuzz_display
    FUZZ_COUNTS["sent"] += 1
    t0 = time.monotonic()
    try:
        answer = exchange(server, data, wait_s=3 * TIMEOUT_S + 2)
    except (ConnectionResetError, BrokenPipeError):
        answer = None
    assert time.monotonic() - t0 < 2 * TIMEOUT_S + 2
    FUZZ_COUNTS["answered" if answer else "dropped"] += 1
    if answer is not None:
        assert 200 <= answer.status < 600
    if FUZZ_COUNTS["sent"] % 50 == 0:
        still_answers(server)


@pytest.fixture(scope="module")
def fuzz_display(display, watcher):
    before = len(watcher.commands())
    yield display, watcher
    # nothing random was ever published, and the server still answers a good request
    still_answers(display)
    assert watcher.commands()[before:] == [], watcher.commands()[before:]
    print(f"\nfuzz: {FUZZ_COUNTS}; refusals by reason: {display.refusals.counts()}")


def test_display_command_prints_a_pairing_link_kept_across_restarts(broker, tmp_path) -> None:
    import subprocess
    import sys

    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path))
    env.pop("ROLLER_CONFIG", None)
    env.pop("STATE_DIRECTORY", None)

    def run(*extra: str) -> list[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "roller.cli", "display", "--broker", broker.address,
             "--http-port", "0", "--http-host", "0.0.0.0", *extra],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            lines = [proc.stdout.readline() for _ in range(3)]
            lines += [proc.stdout.readline()] if "phone" in "".join(lines) else []
        finally:
            proc.terminate()
            proc.wait(10)
        return lines

    first = run()
    text = "".join(first)
    token_file = Path(tmp_path) / "roller" / TOKEN_FILE_NAME
    token = token_file.read_text().strip()
    assert "http://127.0.0.1:" in text and f"/?token={token}" in text
    assert "live state only" in text and str(token_file) in text
    assert f"?token={token}" in "".join(run())  # a restart: the same token
    rotated = "".join(run("--new-token"))
    new = token_file.read_text().strip()
    assert new != token and f"?token={new}" in rotated
