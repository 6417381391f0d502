"""Shared fixtures: a real mosquitto broker on a free loopback port, stoppable and restartable."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BROKER_CONF = REPO / "config" / "mosquitto.conf"
"""The roller's broker limits (message_size_limit): every test broker runs with them."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """Debian's mosquitto, run as a child process on 127.0.0.1:``port``.

    ``stop()`` and ``start()`` simulate an outage; the port stays the same so clients can
    reconnect. Persistence is off: a restart loses the broker's retained messages and queues,
    as a crashed broker would, which is what the outbox must survive. It runs with the
    roller's config/mosquitto.conf (``limits=False``: without, to test the clients' own bound).
    """

    def __init__(self, workdir: Path, port: int | None = None, *, limits: bool = True) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.workdir = workdir
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "log_dest stderr\n"
            "log_type error\nlog_type warning\nlog_type notice\n"
            + (BROKER_CONF.read_text() if limits else "")
        )
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        if self.process is not None:
            return
        exe = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        log = open(self.log, "ab")  # noqa: SIM115 - the child owns it
        self.process = subprocess.Popen([exe, "-c", str(self.conf)], stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            try:
                with socket.create_connection((self.host, self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.address}")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def restart(self, down_for_s: float = 0.0) -> None:
        self.stop()
        time.sleep(down_for_s)
        self.start()


def _have_mosquitto() -> bool:
    return bool(shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").exists())


@pytest.fixture
def broker(tmp_path: Path):
    """A fresh mosquitto for one test. Fails (not skips) when mosquitto is missing: the
    setup script installs it, so its absence is a broken machine, not an optional feature."""
    if not _have_mosquitto():
        pytest.fail("mosquitto is not installed: run scripts/setup --test")
    b = Broker(tmp_path)
    b.start()
    yield b
    b.stop()
