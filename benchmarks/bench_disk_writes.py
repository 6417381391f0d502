"""What the service writes to its disk while someone rolls: syncs and bytes per minute.

    .venv/bin/python benchmarks/bench_disk_writes.py [--seconds 60] [--rate-hz 1000]
        [--workdir DIR] [--broker-down] [--kills 0]

Starts its own mosquitto on a free loopback port and ``roller run --simulate`` (the simulated
person rolls strokes, holds and too-fast passes all the time) under
``strace -f -e trace=fsync,fdatasync,sync_file_range``, then over the measuring window counts

- syncs: the fsync / fdatasync / sync_file_range calls of every thread (strace's timestamped
  log, cut to the window), and
- bytes written: ``write_bytes`` of ``/proc/PID/io`` (what the process caused to be sent to the
  storage layer: page-cache pages it dirtied; a page rewritten while still dirty counts once,
  which is how an SD card sees it too),

and the events the broker received in that window (so "while rolling" is checked, not assumed).
The state directory must be on a real disk (default: a temporary directory under /var/tmp; a
tmpfs would show no writes at all).

``--broker-down`` measures the same with the broker stopped after the warm-up (everything waits
in the outbox). ``--kills N`` adds the crash campaign instead: N times, a child process writes
events into a real outbox as fast as it can and is SIGKILLed at a random moment; each reopened
file must pass ``PRAGMA integrity_check`` and hold every event the child had reported stored and
not acknowledged (see tests/test_outbox_kills.py, which runs fewer).

Targets (issue 21 item 5): <= 30 syncs and <= 300 kB written per minute while rolling; no loss
and no corruption across 50 kills.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "tests"))

from bench_service import Listener, start_broker  # noqa: E402

TRACE_WRITES = os.environ.get("BENCH_TRACE_WRITES", "")
"""``,pwrite64,write`` (say) adds the writes to the trace log, to see where bytes go."""

TARGETS = {"syncs_per_min": 30.0, "kb_per_min": 300.0}
SYNC_LINE = re.compile(r"^(\d+)\s+(\d+\.\d+)\s+(fsync|fdatasync|sync_file_range)\(")


def write_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == "write_bytes":
            return int(value)
    raise RuntimeError(f"/proc/{pid}/io has no write_bytes")


def traced_pid(marker: str, timeout_s: float = 10.0) -> int:
    """The pid of the process whose command line holds ``marker`` (strace's tracee)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for proc in Path("/proc").iterdir():
            if not proc.name.isdigit():
                continue
            try:
                argv = (proc / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if argv and b"strace" not in argv[0] and marker.encode() in argv:
                return int(proc.name)
        time.sleep(0.05)
    raise RuntimeError(f"no process with {marker} on its command line")


def syncs_between(log: Path, t0: float, t1: float) -> dict[str, int]:
    counts: dict[str, int] = {}
    for line in log.read_text().splitlines():
        found = SYNC_LINE.match(line)
        if found and t0 <= float(found.group(2)) < t1:
            counts[found.group(3)] = counts.get(found.group(3), 0) + 1
    return counts


def bench_rolling(workdir: Path, seconds: float, rate_hz: float, broker_down: bool) -> dict:
    broker, port = start_broker(workdir)
    config = workdir / "bench.toml"
    state = workdir / "state"
    config.write_text(f'state_dir = "{state}"\n[device]\nid = "disk"\n'
                      f"[sensor]\noutput_rate_hz = {rate_hz}\n")
    listener = Listener(port, "roller/disk/event/#")
    env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    trace = workdir / "strace.log"
    out = open(workdir / "roller-run.log", "w")  # noqa: SIM115 - the child owns it
    tracer = subprocess.Popen(
        ["strace", "-f", "-qq", "-ttt", "--seccomp-bpf", "-o", str(trace),
         "-e", f"trace=fsync,fdatasync,sync_file_range{TRACE_WRITES}",
         str(REPO / ".venv" / "bin" / "roller"), "run", "--simulate", "--config", str(config),
         "--broker", f"127.0.0.1:{port}", "--log-level", "warning"],
        stdout=out, stderr=out, env=env)
    try:
        pid = traced_pid(str(config))
        deadline = time.monotonic() + 30
        while not listener.got:
            if tracer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("roller run published no event: "
                                   + (workdir / "roller-run.log").read_text()[-2000:])
            time.sleep(0.05)
        time.sleep(3.0)  # warm up: imports done, the first session started
        if broker_down:
            broker.terminate()
            broker.wait(5)
            time.sleep(1.0)
        listener.take()
        io0, t0 = write_bytes(pid), time.time()
        time.sleep(seconds)
        io1, t1 = write_bytes(pid), time.time()
        events = listener.take()
        pending = None
    finally:
        with contextlib.suppress(ProcessLookupError, UnboundLocalError):
            os.kill(pid, signal.SIGTERM)  # strace does not pass its own SIGTERM on
        try:
            tracer.wait(20)
        except subprocess.TimeoutExpired:
            tracer.kill()
            tracer.wait(5)
        listener.close()
        if broker.poll() is None:
            broker.terminate()
            broker.wait(5)
    if broker_down:
        import sqlite3

        with sqlite3.connect(state / "outbox.sqlite3") as db:
            pending = db.execute("SELECT COUNT(*) FROM outbox WHERE topic LIKE '%/event/%'"
                                 ).fetchone()[0]
    minutes = (t1 - t0) / 60
    syncs = syncs_between(trace, t0, t1)
    return {"minutes": minutes, "syncs": syncs, "syncs_per_min": sum(syncs.values()) / minutes,
            "kb_per_min": (io1 - io0) / 1000 / minutes,
            "events_per_min": len(events) / minutes, "pending_events": pending,
            "exit_status": tracer.returncode}


def bench_kills(workdir: Path, kills: int, seed: int) -> dict:
    from test_outbox_kills import kill_campaign

    started = time.monotonic()
    result = kill_campaign(workdir, kills=kills, seed=seed)
    result["seconds"] = time.monotonic() - started
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="measuring window [s]")
    parser.add_argument("--rate-hz", type=float, default=1000.0, help="emulated IMU rate [Hz]")
    parser.add_argument("--workdir", type=Path, default=None,
                        help="where the state directory goes (a real disk; default /var/tmp)")
    parser.add_argument("--broker-down", action="store_true",
                        help="stop the broker after the warm-up: everything waits on disk")
    parser.add_argument("--kills", type=int, default=0,
                        help="run the SIGKILL campaign with this many kills instead")
    parser.add_argument("--seed", type=int, default=1, help="seed of the kill campaign")
    args = parser.parse_args(argv)
    base = args.workdir or Path("/var/tmp")
    base.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="roller-disk-", dir=base))
    try:
        if args.kills:
            r = bench_kills(workdir, args.kills, args.seed)
            print(f"SIGKILL campaign: {r['kills']} kills during writes in {r['seconds']:.1f} s; "
                  f"{r['reported']} events reported stored, {r['acked']} acknowledged, "
                  f"{r['lost']} lost, {r['corrupt']} corrupt databases, "
                  f"{r['seq_reused']} (epoch, seq) reused for another payload")
            ok = r["lost"] == 0 and r["corrupt"] == 0 and r["seq_reused"] == 0
        else:
            r = bench_rolling(workdir, args.seconds, args.rate_hz, args.broker_down)
            where = "broker stopped" if args.broker_down else "mosquitto on loopback"
            print(f"roller run --simulate at {args.rate_hz:.0f} Hz, {r['minutes'] * 60:.0f} s "
                  f"window, {where}, state on {base}")
            print(f"  events delivered: {r['events_per_min']:.0f}/min"
                  + (f"; {r['pending_events']} events waiting in the outbox at the end"
                     if args.broker_down else ""))
            print(f"  syncs: {r['syncs_per_min']:.1f}/min {r['syncs']} "
                  f"(target <= {TARGETS['syncs_per_min']:.0f})")
            print(f"  written: {r['kb_per_min']:.0f} kB/min (/proc/PID/io write_bytes; "
                  f"target <= {TARGETS['kb_per_min']:.0f})")
            ok = (r["syncs_per_min"] <= TARGETS["syncs_per_min"]
                  and r["kb_per_min"] <= TARGETS["kb_per_min"])
        print("targets met" if ok else "TARGETS MISSED")
    finally:
        if TRACE_WRITES:
            print(f"trace log kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
