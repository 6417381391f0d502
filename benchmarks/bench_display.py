"""End-to-end latency of the display: MQTT publish -> broker -> display server -> SSE -> page drawn.

Starts a local mosquitto (or amqtt), the display server, and headless chromium on the page; then
publishes ``live`` messages at 10 Hz (the service's rate) with a running stroke count, and reads
back from the page when each one was drawn (``window.rollerDisplay.liveShown``: the wall clock
right after rendering). Prints latency percentiles in ms. Same machine, same wall clock.

    .venv/bin/python benchmarks/bench_display.py [--messages 300] [--rate-hz 10] [--devices 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from roller.display import DisplayServer, DisplaySettings, MqttBridge
from roller.mqtt.client import MqttSettings
from roller.mqtt.local_broker import start_local_broker

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate-hz", type=float, default=10.0)
    parser.add_argument("--devices", type=int, default=1,
                        help="rollers publishing at once (the page shows the first)")
    parser.add_argument("--broker-kind", default="auto", choices=("auto", "mosquitto", "amqtt"))
    args = parser.parse_args(argv)

    from playwright.sync_api import sync_playwright

    broker = start_local_broker(args.broker_kind)
    server = DisplayServer(DisplaySettings(http_host="127.0.0.1", http_port=0),
                           MqttBridge(MqttSettings(host=broker.host, port=broker.port)))
    server.start()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench")
    client.connect(broker.host, broker.port)
    client.loop_start()
    sent: dict[int, float] = {}
    try:
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM,
                                                       headless=True, args=ARGS)
            page = ctx.new_page()
            devices = [f"bench{i:02d}" for i in range(args.devices)]
            for d in devices:
                client.publish(f"roller/{d}/status", b"online", qos=1, retain=True)
            page.goto(server.url() + f"?device={devices[0]}")
            page.wait_for_selector("#conn[data-level=ok]", timeout=10000)
            period = 1.0 / args.rate_hz
            next_at = time.monotonic()
            for i in range(1, args.messages + 1):
                body = json.dumps({"t_s": i * period, "speed_m_s": 0.03, "velocity_m_s": 0.03,
                                   "phase": "rolling", "stroke_count": i, "hold_time_s": 0.0,
                                   "too_fast": False, "calibrated": True}).encode()
                for d in devices:
                    if d == devices[0]:
                        sent[i] = time.time()
                    client.publish(f"roller/{d}/live", body, qos=0)
                next_at += period
                time.sleep(max(0.0, next_at - time.monotonic()))
            page.wait_for_function(
                f"window.rollerDisplay.liveShown.some(x => x[0] === {args.messages})",
                timeout=10000)
            shown = page.evaluate("window.rollerDisplay.liveShown")
            ctx.close()
    finally:
        client.loop_stop()
        client.disconnect()
        server.close()
        broker.stop()

    latencies = sorted((at / 1000.0 - sent[n]) * 1000.0 for n, at in shown if n in sent)
    if not latencies:
        print("no messages came back", file=sys.stderr)
        return 1
    q = statistics.quantiles(latencies, n=100)
    print(f"display end-to-end latency ({broker.kind}, {args.devices} device(s) at "
          f"{args.rate_hz:g} Hz, last {len(latencies)} of {args.messages} messages):")
    print(f"  median {statistics.median(latencies):.1f} ms   p90 {q[89]:.1f} ms   "
          f"p99 {q[98]:.1f} ms   max {latencies[-1]:.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
