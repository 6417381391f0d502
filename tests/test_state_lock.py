"""One service per state directory (issue 20 item 3): a second process is refused with a line
naming the first (pid and command), and ``roller run`` exits 78 for it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roller.base.errors import ConfigError
from roller.base.state_lock import StateDirInUseError, hold_state_dir, release_state_dir

REPO = Path(__file__).resolve().parent.parent
ROLLER = REPO / ".venv" / "bin" / "roller"

HOLDER = """
import sys, time
from roller.base.state_lock import hold_state_dir
hold_state_dir(sys.argv[1])
print("held", flush=True)
time.sleep(60)
"""


def _holder(state: Path) -> subprocess.Popen:
    script = state / "holder.py"
    script.write_text(HOLDER)
    proc = subprocess.Popen([sys.executable, str(script), str(state), "--marker"],
                            stdout=subprocess.PIPE, cwd=REPO)
    assert proc.stdout is not None and proc.stdout.readline() == b"held\n"
    return proc


def test_a_second_process_is_refused_naming_the_first_and_takes_over_once_it_ends(tmp_path):
    holder = _holder(tmp_path)
    try:
        with pytest.raises(StateDirInUseError) as refused:
            hold_state_dir(tmp_path)
        message = str(refused.value)
        assert isinstance(refused.value, ConfigError)  # roller run: exit 78, one line
        assert f"pid {holder.pid}" in message and "--marker" in message
        assert str(tmp_path) in message and "\n" not in message
    finally:
        holder.kill()  # however it ends, the kernel releases the lock
        holder.wait(5)
    lock = hold_state_dir(tmp_path)
    try:
        assert lock.held and hold_state_dir(tmp_path) is lock  # once per process
        assert (tmp_path / "roller.lock").read_text().startswith(f"{os.getpid()} ")
    finally:
        release_state_dir(tmp_path)
    assert not lock.held


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_roller_runs_on_one_state_directory_the_second_exits_78(tmp_path):
    config = tmp_path / "roller.toml"
    config.write_text(f'state_dir = "{tmp_path / "state"}"\n[device]\nid = "twice"\n'
                      "[sensor]\noutput_rate_hz = 100\n")
    port = _closed_port()  # no broker: the service starts anyway and keeps its outbox
    cmd = [str(ROLLER), "run", "--simulate", "--config", str(config),
           "--broker", f"127.0.0.1:{port}", "--log-level", "warning"]
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, env=env, cwd=tmp_path)
    try:
        assert first.stderr is not None
        deadline = time.monotonic() + 30
        while not (tmp_path / "state" / "roller.lock").exists() or \
                not (tmp_path / "state" / "roller.lock").read_text():
            assert first.poll() is None and time.monotonic() < deadline, "the first did not start"
            time.sleep(0.05)
        second = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path,
                                timeout=60)
        assert first.poll() is None  # the first runs on, untouched
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(20)
    assert second.returncode == 78, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1, second.stderr
    assert f"pid {first.pid}" in lines[0] and "roller run" in lines[0]
    assert "in use by another roller" in lines[0]
