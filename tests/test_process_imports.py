"""Each process loads only itself: what ``roller run``, ``roller display`` and ``roller analyze``
really import, read from ``sys.modules`` of a real run in a fresh interpreter.

The package table in ``tests/test_layers.py`` says what may import what; this says what each
process ends up loading, which is what costs memory and start-up time on a Pi and what ties two
processes together. The service never loads the display; the display never loads the coach,
the service loop, the pipeline or the sensor drivers; ``analyze`` loads no driver, emulated
chip, MQTT or display code.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

_RUN = """
import atexit, json, sys
def _dump():
    with open({out!r}, "w") as f:
        json.dump(sorted(sys.modules), f)
atexit.register(_dump)
from roller.cli import main
sys.exit(main({argv!r}))
"""


def _loaded(tmp_path: Path, argv: list[str], *, run_for_s: float | None = None) -> set[str]:
    """The project modules a ``roller`` command had loaded when it exited (stopped with SIGTERM
    after ``run_for_s`` seconds for a long-running one)."""
    out = tmp_path / "modules.json"
    env_state = tmp_path / "state"
    code = _RUN.format(out=str(out), argv=argv)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**__import__("os").environ, "XDG_STATE_HOME": str(env_state),
                                 "HOME": str(tmp_path)})
    if run_for_s is not None:
        time.sleep(run_for_s)
        proc.send_signal(signal.SIGTERM)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    assert out.exists(), f"{argv} left no module list; stderr:\n{err}"
    return {m for m in json.loads(out.read_text())
            if m.split(".")[0] in ("roller", "firmware_bridge")}


def _any(loaded: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(m for m in loaded if m.startswith(prefixes))


DRIVERS = ("firmware_bridge.imu", "firmware_bridge.emulated", "firmware_bridge.sensor",
           "firmware_bridge.detection", "firmware_bridge.gpio", "firmware_bridge.simulator")


def _unused_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    path = tmp_path / "session.csv"
    subprocess.run([sys.executable, "-m", "roller.recordings.simulate", str(path),
                    "--seconds", "20"], check=True, capture_output=True, cwd=ROOT)
    return path


def test_analyze_loads_no_driver_mqtt_or_display(tmp_path: Path, recording: Path) -> None:
    loaded = _loaded(tmp_path, ["analyze", str(recording), "--json"])
    assert "roller.pipeline.pipeline" in loaded  # the check saw a real analysis
    assert _any(loaded, DRIVERS) == []
    assert _any(loaded, ("roller.mqtt", "roller.display", "roller.service",
                         "roller.coaching")) == []


@pytest.mark.xfail(strict=True, reason="roller.service.config lists the display's settings: "
                   "issue 15 (each process reads its own config sections)")
def test_the_service_never_loads_the_display(tmp_path: Path) -> None:
    # No broker on this port: the service runs degraded, which is enough to see what it loads.
    loaded = _loaded(tmp_path, ["run", "--simulate", "--broker", f"127.0.0.1:{_unused_port()}"],
                     run_for_s=4.0)
    assert "roller.service.loop" in loaded and "roller.pipeline.pipeline" in loaded
    assert _any(loaded, ("roller.display",)) == []


@pytest.mark.xfail(strict=True, reason="the display reads its config through roller.service.config:"
                   " issue 15 (each process reads its own config sections)")
def test_the_display_loads_no_coach_loop_pipeline_or_driver(tmp_path: Path) -> None:
    loaded = _loaded(tmp_path, ["display", "--broker", f"127.0.0.1:{_unused_port()}",
                                "--http-port", str(_unused_port())], run_for_s=3.0)
    assert "roller.display.server" in loaded
    assert _any(loaded, DRIVERS) == []
    assert _any(loaded, ("roller.coaching", "roller.service", "roller.pipeline",
                         "roller.recordings")) == []
