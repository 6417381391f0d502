"""No single message takes a roller process's memory past a stated bound (issue 20).

A 256 MB retained message planted on a topic the service subscribes to (its own ``health``)
killed paho's network thread under a memory limit and lifted an unlimited service to ~820 MB.
Here ``roller run --simulate`` runs under an address-space limit of its normal peak + 200 MB
with such a message waiting on the broker, both with the roller's broker limit
(config/mosquitto.conf: the broker refuses it) and without it (the client's own MQTT 5
Maximum Packet Size: the broker drops it for us): the service answers commands and delivers.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, Broker
from test_mqtt_support import Subscriber

HUGE_BYTES = 256 * 1024 * 1024 - 64
"""A 256 MB payload (MQTT's remaining length tops out at 256 MiB - 1 for the whole packet)."""

MARGIN_BYTES = 200 * 1024 * 1024
"""The bound: the service's normal peak address space + 200 MB."""


def plant_retained(host: str, port: int, topic: str, size: int) -> None:
    """Publish ``size`` bytes retained on ``topic`` (QoS 0) from a raw MQTT 3.1.1 socket,
    streamed in 1 MiB pieces, so this test never holds the message itself."""
    def remaining(n: int) -> bytes:
        out = bytearray()
        while True:
            byte, n = n % 128, n // 128
            out.append(byte | (0x80 if n else 0))
            if not n:
                return bytes(out)

    def text(s: str) -> bytes:
        raw = s.encode()
        return len(raw).to_bytes(2, "big") + raw

    with socket.create_connection((host, port), timeout=30) as sock:
        body = text("MQTT") + bytes([4, 0x02]) + (60).to_bytes(2, "big") + text("planter")
        sock.sendall(bytes([0x10]) + remaining(len(body)) + body)
        assert sock.recv(4)[:1] == b"\x20"  # CONNACK
        head = text(topic)
        sock.sendall(bytes([0x31]) + remaining(len(head) + size) + head)
        chunk = b"x" * (1 << 20)
        left = size
        while left:
            piece = chunk[:min(left, len(chunk))]
            sock.sendall(piece)
            left -= len(piece)
        sock.sendall(b"\xe0\x00")  # DISCONNECT
        with contextlib.suppress(OSError):
            sock.recv(1)


def status_kb(pid: int) -> dict[str, int]:
    """VmPeak, VmHWM (peak RSS), VmRSS of ``pid`` [kB]."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmPeak", "VmHWM", "VmRSS"):
            out[key] = int(value.split()[0])
    return out


def start_service(broker: Broker, tmp_path: Path, device: str, name: str,
                  limit_bytes: int | None = None) -> subprocess.Popen:
    config = tmp_path / f"{name}.toml"
    config.write_text(f'state_dir = "{tmp_path / name}"\n[device]\nid = "{device}"\n'
                      "[service]\nhealth_interval_s = 1.0\n")
    env = {k: v for k, v in os.environ.items() if k not in ("ROLLER_CONFIG", "NOTIFY_SOCKET",
                                                            "WATCHDOG_USEC")}

    def limit() -> None:
        if limit_bytes is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_bytes, limit_bytes))

    log = open(tmp_path / f"{name}.log", "w")  # noqa: SIM115 - the child owns it
    return subprocess.Popen([sys.executable, "-m", "roller.cli", "run", "--simulate",
                             "--broker", broker.address, "--config", str(config)],
                            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                            preexec_fn=limit)


def stop(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            return proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    return proc.wait(5)


@pytest.mark.parametrize("broker_limit", [True, False], ids=["broker-limit", "client-bound"])
def test_a_256_mb_retained_message_under_a_memory_limit(tmp_path, broker_limit):
    (tmp_path / "broker").mkdir()
    broker = Broker(tmp_path / "broker", limits=broker_limit)
    broker.start()
    device = "huge"
    sub = Subscriber(broker.host, broker.port, [f"roller/{device}/live",
                                                 f"roller/{device}/session",
                                                 f"roller/{device}/event/#"])
    try:
        # The normal peak, without the message.
        proc = start_service(broker, tmp_path, device, "normal")
        sub.wait_for(lambda ms: sum(m.topic.endswith("/live") for m in ms) >= 30, 30, "live")
        normal = status_kb(proc.pid)
        assert stop(proc) == 0
        limit = normal["VmPeak"] * 1024 + MARGIN_BYTES
        # The message, then the service under the limit.
        began = time.monotonic()
        plant_retained(broker.host, broker.port, f"roller/{device}/health", HUGE_BYTES)
        planted_s = time.monotonic() - began
        sub.messages.clear()
        proc = start_service(broker, tmp_path, device, "limited", limit_bytes=limit)
        sub.wait_for(lambda ms: sum(m.topic.endswith("/live") for m in ms) >= 30, 30,
                     "live under the limit")
        sub.client.publish(f"roller/{device}/cmd/start", b"", qos=1).wait_for_publish(5)
        sub.wait_for(lambda ms: any(m.topic.endswith("/session") and m.payload != b""
                                    and m.json().get("state") == "running" for m in ms), 20,
                     "the session started by cmd/start")
        n = sum(m.topic.endswith("/live") for m in sub.messages)
        sub.wait_for(lambda ms: sum(m.topic.endswith("/live") for m in ms) >= n + 20, 10,
                     "live going on")
        during = status_kb(proc.pid)
        assert proc.poll() is None
        assert during["VmHWM"] * 1024 < normal["VmHWM"] * 1024 + MARGIN_BYTES
        assert stop(proc) == 0, (tmp_path / "limited.log").read_text()[-2000:]
        log = (tmp_path / "limited.log").read_text()
        assert "MemoryError" not in log and "Traceback" not in log
        print(f"\n{'broker limit' if broker_limit else 'client bound only'}: normal peak RSS "
              f"{normal['VmHWM'] / 1024:.0f} MB (address space {normal['VmPeak'] / 1024:.0f} MB); "
              f"with a {HUGE_BYTES / 2**20:.0f} MB retained message on its health topic under "
              f"RLIMIT_AS {limit / 2**20:.0f} MB: peak RSS {during['VmHWM'] / 1024:.0f} MB, "
              f"commands answered, live flowing (planted in {planted_s:.1f} s)")
    finally:
        sub.client.publish(f"roller/{device}/health", b"", qos=1, retain=True)
        sub.close()
        broker.stop()
