"""A hostile-LAN campaign against the display's HTTP server: counts of what was sent, answered,
dropped and refused (by reason), and whether good requests still get through during it.

Starts a local mosquitto (or amqtt), the display server with a pairing token and a client
subscribed to every roller's commands, then sends, in turn: paired commands (the only ones that
may reach the broker), commands without or with a wrong token, from another site, with a
foreign Host, with ids that would make a bad topic, malformed requests, random bytes, slow
(slowloris) clients, more connections than the cap, and clients that hang up mid-request.
A good ``GET /api/state`` is timed after each phase. Prints a table and the refusal counts.

    .venv/bin/python benchmarks/bench_display_http_campaign.py [--scale 1]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import socket
import statistics
import threading
import time
from collections import Counter

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from roller.display import DisplayServer, DisplaySettings, MqttBridge
from roller.mqtt.client import MqttSettings
from roller.mqtt.local_broker import start_local_broker

TIMEOUT_S = 2.0


def exchange(port: int, data: bytes, *, half_close: bool = True, wait_s: float = 10.0) -> int:
    """The answer's status, or 0 when the server closed without one."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=wait_s) as s:
            s.sendall(data)
            if half_close:
                s.shutdown(socket.SHUT_WR)
            out = b""
            while chunk := s.recv(65536):
                out += chunk
    except OSError:
        return 0
    return int(out[9:12]) if out.startswith(b"HTTP/1.") else 0


def post(port: int, device: object, *, token: str | None, host: str = "127.0.0.1",
         origin: str | None = None, verb: str = "pause") -> bytes:
    body = json.dumps({"device": device}).encode()
    head = [f"POST /api/cmd/{verb} HTTP/1.1", f"Host: {host}", "Content-Type: application/json",
            f"Content-Length: {len(body)}"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    if origin:
        head.append(f"Origin: {origin}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1, help="multiply every count")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    n = args.scale
    rng = random.Random(args.seed)

    broker = start_local_broker("auto")
    received: list[str] = []
    sub = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="campaign")
    subscribed = threading.Event()
    sub.on_message = lambda c, u, m: received.append(m.topic)
    sub.on_subscribe = lambda *a: subscribed.set()
    sub.on_connect = lambda c, u, f, r, p=None: c.subscribe("roller/+/cmd/#", qos=1)
    sub.connect(broker.host, broker.port)
    sub.loop_start()
    subscribed.wait(5)
    bridge = MqttBridge(MqttSettings(host=broker.host, port=broker.port))
    server = DisplayServer(DisplaySettings(http_host="127.0.0.1", http_port=0,
                                           request_timeout_s=TIMEOUT_S), bridge)
    server.start()
    bridge.wait_connected(5)
    port, token = server.port, server.token
    good = (b"GET /api/state HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
    rows: list[tuple[str, int, Counter[int], float]] = []

    def phase(name: str, requests: list[bytes], **kw) -> None:
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        work = list(requests)

        def worker() -> None:
            while True:
                with lock:
                    if not work:
                        return
                    data = work.pop()
                status = exchange(port, data, **kw)
                with lock:
                    statuses[status] += 1

        threads = [threading.Thread(target=worker) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        t0 = time.perf_counter()
        assert exchange(port, good) == 200, f"after {name}: a good request was not answered"
        rows.append((name, len(requests), statuses, (time.perf_counter() - t0) * 1000))

    phase("paired commands", [post(port, f"mat-{i % 5}", token=token) for i in range(50 * n)])
    phase("no token", [post(port, "mat-1", token=None) for _ in range(200 * n)])
    phase("wrong token", [post(port, "mat-1", token="x" * 22) for _ in range(200 * n)])
    phase("another site (Origin)", [post(port, "mat-1", token=token,
                                         origin="http://evil.example") for _ in range(100 * n)])
    phase("foreign Host (rebinding)", [post(port, "mat-1", token=token, host="evil.example")
                                       for _ in range(100 * n)])
    bad_ids = ["mat-1\n", "a/b", "#", "+", "", "x" * 65, "m\u00e4t", "mat\x00", 7, None]
    phase("bad device ids", [post(port, d, token=token) for d in bad_ids for _ in range(10 * n)])
    auth = f"Authorization: Bearer {token}\r\n".encode()
    malformed = [
        b"\x16\x03\x01\x02\x00\x01\r\n\r\n", b"GET / HTTP/2.0\r\n\r\n",
        b"GET /" + b"a" * 10000 + b" HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n",
        b"POST /api/cmd/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
        b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"POST /api/cmd/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
        b"Content-Type: application/json\r\nContent-Length: 999999999\r\n\r\n{",
        b"POST /api/cmd/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
        b"Content-Type: application/json\r\nContent-Length: 2000\r\n\r\n" + b"[" * 1000 +
        b"]" * 1000,
        b"POST /api/cmd/pause HTTP/1.1\r\nHost: 127.0.0.1\r\n" + auth +
        b"Content-Type: application/json\r\nContent-Length: 14\r\n\r\n{\"device\":\"\xff\"}",
        b"PUT / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", b"OPTIONS / HTTP/1.1\r\nHost: a\r\n\r\n",
        b"GET /static/../server.py HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        b"GET /static/%2e%2e/server.py HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
    ]
    phase("malformed requests", malformed * 10 * n)
    phase("random bytes", [rng.randbytes(rng.randint(0, 3000)) for _ in range(500 * n)])

    # slowloris: 20 connections from 10 addresses trickling a header byte every 0.3 s
    closed_after: list[float] = []
    trickled: Counter[int] = Counter()

    def trickle(i: int) -> None:
        t0 = time.monotonic()
        out = b""
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10,
                                          source_address=(f"127.0.1.{i % 10 + 1}", 0)) as s:
                s.sendall(b"GET / HTTP/1.1\r\n")
                with contextlib.suppress(OSError):
                    while time.monotonic() - t0 < 15:
                        s.sendall(b"X")
                        time.sleep(0.3)
                with contextlib.suppress(OSError):
                    while chunk := s.recv(65536):
                        out += chunk
        except OSError:
            pass
        closed_after.append(time.monotonic() - t0)
        trickled[int(out[9:12]) if out.startswith(b"HTTP/1.") else 0] += 1

    threads = [threading.Thread(target=trickle, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    t0 = time.perf_counter()
    assert exchange(port, good) == 200
    rows.append(("slowloris (20 trickling)", 20, trickled,
                 (time.perf_counter() - t0) * 1000))

    # beyond the cap: 100 idle connections at once from 10 addresses, then 20 requests
    held = []
    for i in range(100):
        try:
            held.append(socket.create_connection(("127.0.0.1", port), timeout=5,
                                                 source_address=(f"127.0.2.{i % 10 + 1}", 0)))
        except OSError:
            break
    time.sleep(0.3)
    over = Counter(exchange(port, good) for _ in range(20))
    for s in held:
        s.close()
    time.sleep(0.3)
    t0 = time.perf_counter()
    assert exchange(port, good) == 200
    rows.append((f"over the cap ({len(held)} idle held)", 20, over,
                 (time.perf_counter() - t0) * 1000))

    # clients that hang up mid-request with a reset
    linger = (1).to_bytes(4, "little") + (0).to_bytes(4, "little")
    for i in range(100 * n):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, linger)
        s.sendall(b"GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n" if i % 2 else
                  post(port, "mat-1", token=token)[:-5])
        s.close()
    t0 = time.perf_counter()
    assert exchange(port, good) == 200
    rows.append(("aborted clients", 100 * n, Counter(), (time.perf_counter() - t0) * 1000))

    time.sleep(0.5)
    print(f"{'phase':34} {'sent':>6}  answers by status (0: closed without one)"
          f"{'':6} good GET after [ms]")
    for name, sent, statuses, ms in rows:
        answers = ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items()))
        print(f"{name:34} {sent:6}  {answers:50} {ms:6.1f}")
    print(f"slowloris connections closed after {statistics.median(closed_after):.2f} s (median),"
          f" {max(closed_after):.2f} s (max); request_timeout_s = {TIMEOUT_S}")
    print(f"commands that reached the broker: {len(received)} (paired ones sent: {50 * n}); "
          f"all to well-formed topics: {all(t.count('/') == 3 for t in received)}")
    refused = server.refusals.counts()
    print(f"server: {server.httpd.accepted} connections, {server.httpd.answered} answers, "
          f"{sum(refused.values())} refused; log lines for them: "
          f"{server.refusals.lines_logged}")
    print("refused by reason: " + ", ".join(f"{k} {v}" for k, v in sorted(refused.items())))
    server.close()
    sub.loop_stop()
    sub.disconnect()
    broker.stop()


if __name__ == "__main__":
    main()
