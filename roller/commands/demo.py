"""``roller demo``: the whole product on this laptop, with a simulated person on the roller.

Starts, in order: an MQTT broker (unless ``--broker`` names one: Debian's mosquitto when it is
installed, else the in-process amqtt broker), the display (in this process), and the service
``roller run --simulate --person demo`` as a child process, whose emulated IMU is moved by a
simulated person who lies still for 30 s (time to open the page and press Start), then does the
routine once -- slow strokes, one too fast in the first minute, a hold on each side -- and lies
still after it (the session starts at their first strokes, or at Start). Prints the page's
URL. Ctrl-C (or SIGTERM) stops the service first (so it can publish its last state), then the
display, then the broker; children also die if this process is killed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roller.display import DisplayServer
    from roller.display.pairing import PairingToken
    from roller.mqtt.client import MqttSettings

DEMO_START_DELAY_S = 30.0
"""How long the demo's simulated person lies still before rolling [s]
(:data:`firmware_bridge.simulator.demo_person.DEMO_START_DELAY_S`; a test checks they agree:
`roller demo` does not load the simulator itself)."""

HELP = "run everything on this laptop: broker, simulated roller + service, and the display"

DEMO_DEVICE_ID = "demo"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--broker", metavar="HOST:PORT",
                        help="use this MQTT broker instead of starting one")
    parser.add_argument("--port", type=int, default=8080,
                        help="port of the display page (default 8080; a free one if taken; "
                             "0: any free port)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to serve the page on (default 127.0.0.1; 0.0.0.0 to "
                             "open it from a phone on the same network)")
    parser.add_argument("--broker-kind", choices=("auto", "mosquitto", "amqtt"), default="auto",
                        help="which local broker to start (default: mosquitto if installed)")
    parser.add_argument("--seed", type=int, default=0,
                        help="random seed of the simulated person")
    parser.add_argument("--config", metavar="FILE",
                        help="a config file for the service (default: a demo config with "
                             "device id 'demo' and its own state directory)")
    parser.add_argument("--phone", action="store_true",
                        help="a simulated phone as the sensor: a local stand-in speaking "
                             "phyphox's remote-access protocol (port 8081), which the service "
                             "polls as it would a real phone")


def run(args: argparse.Namespace) -> int:
    from roller.base.paths import default_state_dir, ensure_dir
    from roller.display.config import load_display_config
    from roller.display.pairing import PairingToken
    from roller.mqtt.local_broker import LocalBroker, die_with_parent, start_local_broker
    from roller.service.config import load_config, override_broker

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())

    broker: LocalBroker | None = None
    display: DisplayServer | None = None
    service: subprocess.Popen[bytes] | None = None
    phone = None
    tmp = tempfile.TemporaryDirectory(prefix="roller-demo-")
    try:
        if args.broker:
            address = args.broker
        else:
            broker = start_local_broker(args.broker_kind)
            address = broker.address
            where = f" (pid {broker.pid})" if broker.pid is not None else " (in this process)"
            print(f"roller demo: started {broker.kind} on {address}{where}", flush=True)

        if args.config:
            config_file = Path(args.config)
        else:
            state = ensure_dir(default_state_dir() / "demo")
            config_file = Path(tmp.name) / "demo.toml"
            config_file.write_text(
                f'state_dir = "{_toml_escape(str(state))}"\n\n'
                f'[device]\nid = "{DEMO_DEVICE_ID}"\nname = "Demo roller"\n')
        # The service child reads the same file; the display here takes its own sections.
        config = override_broker(load_config(config_file), address)
        seen = override_broker(load_display_config(config_file), address)
        display = _start_display(seen.mqtt, args.host, args.port, seen.speed_band_m_s,
                                 pairing=PairingToken.load_or_create(seen.state_path))
        sensor = ["--simulate", "--person", "demo", "--seed", str(args.seed)]
        if getattr(args, "phone", False):
            from roller.phone.phyphox_standin import StandInPhyphox, simulated_phone_source

            phone = StandInPhyphox(simulated_phone_source(seed=args.seed)).start()
            print(f"roller demo: a simulated phone (phyphox remote access) at {phone.url}",
                  flush=True)
            sensor = ["--phone", f"phyphox:{phone.url}"]
        cmd = [sys.executable, "-m", "roller.cli", "run", *sensor,
               "--broker", address, "--config", str(config_file), "--log-level", "warning"]
        service = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, start_new_session=True,
                                   preexec_fn=die_with_parent)
        url = display.url()
        if phone is None:
            print(f"roller demo: a simulated person is on the roller of device "
                  f"'{config.device_id}' (service pid {service.pid}); they lie still for "
                  f"{DEMO_START_DELAY_S:.0f} s, then roll the routine once (about 9 min) and "
                  "lie still: open the page and press Start before then (or let their first "
                  "strokes start the session)", flush=True)
        else:
            print(f"roller demo: a simulated person is rolling as device "
                  f"'{config.device_id}' (service pid {service.pid})", flush=True)
        # On a laptop the person is at this machine: the link to open is the paired one, so
        # the buttons work at once (the token pairs the page; without it the page only watches).
        links = display.pairing_links()
        print(f"roller demo: open {links.get('local', url)}", flush=True)
        if "lan" in links:
            print(f"roller demo: on a phone on this network, open {links['lan']}", flush=True)
        print(f"roller demo: (the token in the link lets that page send commands; "
              f"{url} without it shows the live state only)", flush=True)
        print("roller demo: press Ctrl-C to stop", flush=True)
        while not stop.is_set():
            if service.poll() is not None:
                print(f"roller demo: the service exited with status {service.returncode}; "
                      "stopping", file=sys.stderr, flush=True)
                return 1
            if broker is not None and not broker.running():
                print("roller demo: the broker stopped; stopping", file=sys.stderr, flush=True)
                return 1
            stop.wait(0.2)
        print("roller demo: stopping", flush=True)
        return 0
    finally:
        if service is not None:
            _stop_child(service)
        if phone is not None:
            phone.stop()
        if display is not None:
            display.close()
        if broker is not None:
            broker.stop()
        tmp.cleanup()
        if not args.config:
            history = default_state_dir() / "demo" / "history.sqlite3"
            if history.exists():
                print(f"roller demo: past demo sessions: roller history --db {history}",
                      flush=True)


def _start_display(mqtt: MqttSettings, host: str, port: int,
                   band: tuple[float, float] | None = None, *,
                   pairing: PairingToken | None = None) -> DisplayServer:
    """The display on ``host:port``; when that port is taken, on any free one. ``band``: the
    pipeline's go-slow (target, limit) [m/s]; ``pairing``: the token its buttons need."""
    from roller.display import DisplayServer, DisplaySettings, MqttBridge

    settings = DisplaySettings(http_host=host, http_port=port)
    try:
        server = DisplayServer(settings, MqttBridge(mqtt), speed_band_m_s=band, pairing=pairing)
    except OSError:
        if port == 0:
            raise
        print(f"roller demo: port {port} is taken; using a free one", flush=True)
        server = DisplayServer(dataclasses.replace(settings, http_port=0), MqttBridge(mqtt),
                               speed_band_m_s=band, pairing=pairing)
    server.start()
    return server


def _stop_child(child: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM (an orderly shutdown for ``roller run``), then SIGKILL if it hangs."""
    if child.poll() is not None:
        return
    try:
        os.killpg(child.pid, signal.SIGTERM)  # its own session: the service and anything it ran
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and child.poll() is None:
        time.sleep(0.05)
    if child.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(child.pid, signal.SIGKILL)
        child.wait()


def _toml_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
