"""``roller demo`` as a user runs it: a subprocess that prints a URL, serves live data, and
stops everything it started on Ctrl-C (SIGINT)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie counts as gone: it has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


class Lines:
    """Collects a child's output lines in a thread so the test can wait for one."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for raw in stream:
            self.lines.append(raw.decode(errors="replace").rstrip("\n"))

    def wait_for(self, pattern: str, timeout_s: float) -> re.Match[str]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for line in self.lines:
                m = re.search(pattern, line)
                if m:
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} within {timeout_s} s:\n"
                             + "\n".join(self.lines))


def sse_messages(url: str, want, timeout_s: float) -> list[dict]:
    """Read the display's event stream until ``want(messages)`` is true."""
    got: list[dict] = []
    done = threading.Event()

    def read() -> None:
        with urllib.request.urlopen(url, timeout=timeout_s) as res:
            for raw in res:
                line = raw.decode().strip()
                if line.startswith("data:"):
                    got.append(json.loads(line[5:]))
                    if want(got):
                        done.set()
                        return

    thread = threading.Thread(target=read, daemon=True)
    thread.start()
    done.wait(timeout_s)
    return got


@pytest.mark.parametrize("broker_kind", ["mosquitto", "amqtt", "external"])
def test_roller_demo_runs_and_stops_cleanly(tmp_path: Path, broker_kind: str,
                                            request) -> None:
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
    env.pop("ROLLER_CONFIG", None)
    cmd = [sys.executable, "-m", "roller.cli", "demo", "--port", "0"]
    external = None
    if broker_kind == "external":  # --broker: use it, start none, leave it running
        external = request.getfixturevalue("broker")
        cmd += ["--broker", external.address]
    else:
        cmd += ["--broker-kind", broker_kind]
    demo = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT)
    out = Lines(demo.stdout)
    try:
        paired = out.wait_for(r"open (http://\S+)", 20).group(1)
        assert "?token=" in paired  # the demo's link pairs the page at once
        url = paired.split("?", 1)[0]
        service_pid = int(out.wait_for(r"service pid (\d+)", 5).group(1))
        broker_pid = None
        if broker_kind == "mosquitto":
            broker_pid = int(out.wait_for(r"started mosquitto on \S+ \(pid (\d+)\)", 5).group(1))
        with urllib.request.urlopen(url, timeout=5) as res:
            page = res.read().decode()
        assert "roller companion" in page and "/static/app.js" in page

        def have_live_and_coach(msgs: list[dict]) -> bool:
            topics = {m.get("topic") for m in msgs if m.get("device") == "demo"}
            return {"live", "coach"} <= topics

        t0 = time.monotonic()
        msgs = sse_messages(url + "events", have_live_and_coach, 30)
        assert have_live_and_coach(msgs), f"after {time.monotonic() - t0:.1f} s: {msgs[:5]}"
        live = next(m["payload"] for m in msgs if m.get("topic") == "live")
        assert {"speed_m_s", "phase", "stroke_count"} <= set(live)
        coach = next(m["payload"] for m in msgs if m.get("topic") == "coach")
        assert coach["routine"] == "lower_back_hips" and coach["prompt"]
        assert alive(service_pid)
    finally:
        demo.send_signal(signal.SIGINT)
        try:
            code = demo.wait(20)
        except subprocess.TimeoutExpired:
            demo.kill()
            raise
    assert code == 0, "\n".join(out.lines)
    assert any("stopping" in line for line in out.lines)
    assert not alive(service_pid), "the service outlived the demo"
    if broker_pid is not None:
        assert not alive(broker_pid), "mosquitto outlived the demo"
    assert "Traceback" not in "\n".join(out.lines)
    if external is not None:
        assert not any("started" in line for line in out.lines)
        assert external.process is not None and external.process.poll() is None


def test_children_die_with_a_killed_demo(tmp_path: Path) -> None:
    """kill -9 gives the demo no chance to clean up: the service and mosquitto must still go."""
    env = dict(os.environ, XDG_STATE_HOME=str(tmp_path / "state"), PYTHONUNBUFFERED="1")
    env.pop("ROLLER_CONFIG", None)
    demo = subprocess.Popen([sys.executable, "-m", "roller.cli", "demo", "--port", "0",
                             "--broker-kind", "mosquitto"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = Lines(demo.stdout)
    try:
        out.wait_for(r"open (http://\S+)", 20)
        service_pid = int(out.wait_for(r"service pid (\d+)", 5).group(1))
        broker_pid = int(out.wait_for(r"started mosquitto on \S+ \(pid (\d+)\)", 5).group(1))
    finally:
        demo.kill()
        demo.wait(10)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and (alive(service_pid) or alive(broker_pid)):
        time.sleep(0.05)
    assert not alive(service_pid), "the service was orphaned"
    assert not alive(broker_pid), "mosquitto was orphaned"
