"""What each long-running process loads and how long ``roller display`` takes to start.

Runs ``roller run --simulate`` (4 s) and ``roller display`` (3 s) in fresh interpreters with no
broker on the port, and counts the project modules in ``sys.modules`` when each exits, by
package (the same method as tests/test_process_imports.py). Then starts ``roller display``
``--runs`` times and prints the median wall time to its URL line and the CPU time (user + sys)
it had used by then: CPU time moves less with other load on a shared machine.

    .venv/bin/python benchmarks/bench_process_startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_DUMP = """
import atexit, json, sys
atexit.register(lambda: json.dump(sorted(sys.modules), open({out!r}, "w")))
from roller.cli import main
sys.exit(main({argv!r}))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def loaded(argv: list[str], run_for_s: float) -> list[str]:
    """The project modules ``roller <argv>`` had loaded when stopped after ``run_for_s``."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "modules.json"
        env = {**os.environ, "XDG_STATE_HOME": tmp, "HOME": tmp}
        proc = subprocess.Popen([sys.executable, "-c", _DUMP.format(out=str(out), argv=argv)],
                                cwd=tmp, env=env, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        time.sleep(run_for_s)
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        return [m for m in json.loads(out.read_text())
                if m.split(".")[0] in ("roller", "firmware_bridge")]


def by_package(modules: list[str]) -> dict[str, int]:
    count = collections.Counter(m.split(".")[1] if m.startswith("roller.") else m.split(".")[0]
                                for m in modules)
    return dict(sorted(count.items()))


def display_start(runs: int) -> tuple[float, float]:
    """Median (wall time, CPU time) [s] from exec to ``roller display``'s URL line."""
    wall, cpu = [], []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "XDG_STATE_HOME": tmp, "HOME": tmp}
            start = time.monotonic()
            proc = subprocess.Popen(
                [sys.executable, "-m", "roller.cli", "display", "--broker",
                 f"127.0.0.1:{free_port()}", "--http-port", str(free_port()), "--http-host",
                 "127.0.0.1"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                env=env, cwd=tmp)
            assert proc.stdout is not None
            line = proc.stdout.readline()
            wall.append(time.monotonic() - start)
            proc.kill()
            _, _, usage = os.wait4(proc.pid, 0)
            cpu.append(usage.ru_utime + usage.ru_stime)
            if "open" not in line:
                raise RuntimeError(f"roller display did not start: {line!r}")
    return statistics.median(wall), statistics.median(cpu)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args(argv)
    run = loaded(["run", "--simulate", "--broker", f"127.0.0.1:{free_port()}"], 4.0)
    display = loaded(["display", "--broker", f"127.0.0.1:{free_port()}", "--http-port",
                      str(free_port())], 3.0)
    print(f"roller run loads {len(run)} project modules: {by_package(run)}")
    print(f"roller display loads {len(display)} project modules: {by_package(display)}")
    wall_s, cpu_s = display_start(args.runs)
    print(f"roller display start-up to its URL (median of {args.runs}): wall {wall_s:.3f} s, "
          f"CPU {cpu_s:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
