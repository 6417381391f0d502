"""``roller display``: the web page beside the mat, fed from the MQTT broker."""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import sys
import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from roller.display import DisplayServer

HELP = "serve the live web display (subscribes to the rollers over MQTT)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="TOML config file (default: $ROLLER_CONFIG, else built-in defaults)")
    parser.add_argument("--broker", metavar="HOST:PORT",
                        help="MQTT broker, overriding mqtt.host and mqtt.port")
    parser.add_argument("--http-port", type=int, metavar="P",
                        help="port of the page, overriding display.http_port (0: any free port)")
    parser.add_argument("--http-host", metavar="ADDR",
                        help="address to serve on, overriding display.http_host "
                             "(127.0.0.1: this machine only)")
    parser.add_argument("--new-token", action="store_true",
                        help="replace the pairing token (kept in the state directory): every "
                             "paired phone must open the new link to use the buttons again")


def run(args: argparse.Namespace) -> int:
    from roller.base.errors import ConfigError
    from roller.display import DisplayServer, MqttBridge
    from roller.display.config import load_display_config, override_broker
    from roller.display.pairing import PairingToken

    config = load_display_config(args.config)
    if args.broker:
        config = override_broker(config, args.broker)
    settings = config.display
    if args.http_port is not None:
        if not 0 <= args.http_port <= 65535:
            raise ConfigError("--http-port", "a port from 0 to 65535", args.http_port)
        settings = dataclasses.replace(settings, http_port=args.http_port)
    if args.http_host:
        settings = dataclasses.replace(settings, http_host=args.http_host)
    pairing = PairingToken.load_or_create(token_dir(config.state_path), rotate=args.new_token)
    try:
        server = DisplayServer(settings, MqttBridge(config.mqtt),
                               speed_band_m_s=config.speed_band_m_s, pairing=pairing)
    except OSError as exc:
        print(f"roller display: cannot serve on {settings.http_host}:{settings.http_port}: "
              f"{exc.strerror or exc}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop.set())
    server.start()
    everywhere = settings.http_host in ("0.0.0.0", "::", "")  # then say the machine's name
    name = f"{socket.gethostname()}.local" if everywhere else None
    print(f"roller display: open {server.url(name)} (broker {config.mqtt.host}:{config.mqtt.port}, "
          f"topics {config.mqtt.topic_prefix}/+/...)", flush=True)
    print_pairing("roller display", server)
    try:
        stop.wait()
    finally:
        server.close()
    return 0


def print_pairing(who: str, server: DisplayServer) -> None:
    """The links that pair a page (watching needs none; the buttons need the token)."""
    links = server.pairing_links()
    if "lan" in links:
        print(f"{who}: to use the buttons on a phone on this network, open {links['lan']}",
              flush=True)
    if "local" in links:
        print(f"{who}: to use the buttons on this machine, open {links['local']}", flush=True)
    kept = f"kept in {server.pairing.path}" if server.pairing.path else "not kept: pair again " \
        "after a restart"
    print(f"{who}: without the token the page shows the live state only (pairing token "
          f"{kept}; --new-token replaces it)", flush=True)


def token_dir(state_path: Path) -> Path:
    """Where the pairing token is kept: the directory systemd gives the display unit
    (``StateDirectory=roller-display``, in ``$STATE_DIRECTORY``) when it runs as one, since the
    service's state directory is read-only to it; else the config's state directory."""
    systemd = os.environ.get("STATE_DIRECTORY")
    return Path(systemd.split(":")[0]) if systemd else state_path
