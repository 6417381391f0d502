"""How fast ``roller analyze --json`` is on a long recording, against numpy.loadtxt alone.

    .venv/bin/python benchmarks/bench_analyze.py [--minutes 30] [--rate 1000] [--repeat 3]

Writes a simulated 30-minute 1 kHz recording (1.8 M samples) to a temporary directory, then
times ``numpy.loadtxt`` parsing it (in this process: the parse alone) and ``roller analyze FILE
--json`` as a separate process (everything: interpreter start-up, imports, validation, the
pipeline, the JSON), and reports the ratio (target <= 1.2) and the analysing process' peak
memory (target <= 60 MB, from ``getrusage(RUSAGE_CHILDREN).ru_maxrss`` in a small wrapper
process). Best of ``--repeat`` runs each, to keep other load on the machine out of the
figures; the CPU time of each (this process' for loadtxt, the child's user + system for
analyze) is printed too, since on a shared machine it varies less than the wall time. Last,
the recording is analysed once more with the plain-decimal reader switched off (numpy's reader
alone), and the two outputs are compared: the fast reader must not change one event.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from firmware_bridge.simulator import SimulatedRoller, person_scenario  # noqa: E402
from roller.recordings.simulate import write_recording  # noqa: E402

# Runs the command from a small, fresh process: a child forked from this (large) one would
# report this one's memory as its own. Prints the child's output, then wall time and peak RSS.
_MEASURE = """
import resource, subprocess, sys, time
start = time.perf_counter()
proc = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE)
wall = time.perf_counter() - start
sys.stdout.write(proc.stdout.decode())
usage = resource.getrusage(resource.RUSAGE_CHILDREN)
sys.stdout.write("\\n@@%f %d %f" % (wall, usage.ru_maxrss, usage.ru_utime + usage.ru_stime))
sys.exit(proc.returncode)
"""

_NUMPY_READER_ONLY = """
import sys
from roller.recordings import plain_decimals
plain_decimals.parse = lambda raw, n_columns: None
from roller.cli import main
sys.exit(main(["analyze", sys.argv[1], "--json"]))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=float, default=1000.0, help="sample rate [Hz]")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--keep", metavar="DIR", help="write the recording here and keep it")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "long.csv"
        sim = SimulatedRoller(person_scenario(args.minutes * 60, seed=1), seed=1)
        start = time.perf_counter()
        n = write_recording(sim, str(path), args.rate, jitter_s=0.2 / args.rate,
                            drop_fraction=0.005)
        size_mb = path.stat().st_size / 1e6
        print(f"recording: {n} samples, {sim.duration_s / 60:.1f} min at {args.rate:.0f} Hz, "
              f"{size_mb:.0f} MB (written in {time.perf_counter() - start:.1f} s)")

        loadtxt_s = []
        loadtxt_cpu_s = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            cpu = time.process_time()
            data = np.loadtxt(path, delimiter=",", skiprows=1)
            loadtxt_cpu_s.append(time.process_time() - cpu)
            loadtxt_s.append(time.perf_counter() - start)
            del data
        print(f"numpy.loadtxt alone: {min(loadtxt_s):.2f} s, CPU {min(loadtxt_cpu_s):.2f} s "
              f"(best of {args.repeat})")

        cmd = [sys.executable, "-m", "roller.cli", "analyze", str(path), "--json"]
        analyze_s = []
        analyze_cpu_s = []
        peaks_mb = []
        out = ""
        for _ in range(args.repeat):
            proc = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True,
                                  text=True, check=False,
                                  env=dict(os.environ, PYTHONPATH=str(ROOT)))
            if proc.returncode != 0:
                print(proc.stderr, file=sys.stderr)
                return 1
            out, _, figures = proc.stdout.rpartition("\n@@")
            wall_s, peak_kb, cpu_s = (float(x) for x in figures.split())
            analyze_s.append(wall_s)
            analyze_cpu_s.append(cpu_s)
            peaks_mb.append(peak_kb / 1024)
        peak_mb = max(peaks_mb)
        result = json.loads(out)
        truth = sim.truth()
        ratio = min(analyze_s) / min(loadtxt_s)
        cpu_ratio = min(analyze_cpu_s) / min(loadtxt_cpu_s)
        print(f"roller analyze --json: {min(analyze_s):.2f} s, CPU {min(analyze_cpu_s):.2f} s "
              f"(best of {args.repeat}, whole process)")
        print(f"ratio analyze / loadtxt: {ratio:.2f} wall, {cpu_ratio:.2f} CPU   "
              f"(target <= 1.2)")
        print(f"peak memory of roller analyze: {peak_mb:.0f} MB   (target <= 60 MB)")
        # the same events as with numpy's reader alone (the plain-decimal reader switched off)
        numpy_only = subprocess.run(
            [sys.executable, "-c", _NUMPY_READER_ONLY, str(path)], capture_output=True,
            text=True, check=False, env=dict(os.environ, PYTHONPATH=str(ROOT)))
        same = numpy_only.returncode == 0 and json.loads(numpy_only.stdout) == result
        print(f"same output as with numpy's reader alone: {'yes' if same else 'NO'}")
        print(f"found {len(result['strokes'])} strokes (truth {len(truth.strokes)}), "
              f"{len(result['holds'])} holds (truth {len(truth.holds)}), "
              f"{len(result['too_fast'])} too-fast (truth {len(truth.too_fast)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
