"""Hard kills during writes: a real child process writes events into a real SQLite outbox and
is SIGKILLed at a random moment, again and again on the same file.

After each kill the file must pass ``PRAGMA integrity_check``, and every event the child had
reported stored (``add`` returned) and not acknowledged must be in it: a crash of the process
loses nothing committed to the WAL, whatever the sync policy (issue 21 item 5). Across the
whole campaign no ``(epoch, seq)`` may be given to two different events (the numbering
survives the kills too). benchmarks/bench_disk_writes.py --kills 50 runs the same campaign
with 50 kills.
"""

from __future__ import annotations

import json
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CHILD = r"""
import json, random, sys
from roller.mqtt.outbox import Outbox

path, run, seed = sys.argv[1], sys.argv[2], int(sys.argv[3])
rng = random.Random(seed)
box = Outbox(path)
out = sys.stdout
out.write("ready\n")
out.flush()
k = 0
while True:
    k += 1
    msg = box.add("r/e/stroke", {"n": f"{run}-{k}", "pad": "x" * rng.randrange(300)},
                  numbered=True)
    body = json.loads(msg.payload)
    out.write(f"stored {body['epoch']} {body['seq']} {body['n']}\n")
    out.flush()
    if k % 3 == 0:
        box.add("r/coach", {"k": k}, retain=True, supersede=True)
    claimed = box.claim(rng.randrange(4))
    acked = [m for m in claimed if rng.random() < 0.8]
    for m in acked:  # said before the ack: an acknowledged event may be gone
        if m.seq is not None:
            b = json.loads(m.payload)
            out.write(f"acked {b['epoch']} {b['seq']}\n")
    out.flush()
    box.ack([m.id for m in acked])
"""


def kill_campaign(workdir: Path, *, kills: int, seed: int = 1) -> dict:
    """Run ``kills`` rounds of write-then-SIGKILL on one outbox file; count what was lost."""
    rng = random.Random(seed)
    path = workdir / "outbox.sqlite3"
    numbers: dict[tuple[str, int], str] = {}  # (epoch, seq) -> the event it was given to
    waiting: set[tuple[str, int]] = set()  # stored, not acknowledged: must be in the file
    totals = {"kills": 0, "reported": 0, "acked": 0, "lost": 0, "corrupt": 0, "seq_reused": 0,
              "lost_examples": []}
    for run in range(kills):
        child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), str(run),
                                  str(rng.randrange(1 << 30))],
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=REPO,
                                 bufsize=0)  # unbuffered: readline must not swallow reports
        assert child.stdout is not None
        first = child.stdout.readline()
        if first != b"ready\n":
            child.kill()
            raise AssertionError(f"the child did not start: {first!r} "
                                 f"{child.communicate()[1].decode()[-2000:]}")
        time.sleep(rng.uniform(0.02, 0.25))  # well inside its write loop
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate()
        if child.returncode != -signal.SIGKILL:
            raise AssertionError(f"the child ended by itself: {err.decode()[-2000:]}")
        totals["kills"] += 1
        lines = out.decode().split("\n")[:-1]  # the last, unfinished line is not a report
        for line in lines:
            word, *rest = line.split()
            key = (rest[0], int(rest[1]))
            if word == "stored":
                totals["reported"] += 1
                if numbers.setdefault(key, rest[2]) != rest[2]:
                    totals["seq_reused"] += 1
                waiting.add(key)
            elif word == "acked":
                totals["acked"] += 1
                waiting.discard(key)
        with sqlite3.connect(path) as db:
            check = db.execute("PRAGMA integrity_check").fetchone()[0]
            stored = db.execute("SELECT payload FROM outbox WHERE numbered = 1").fetchall()
        db.close()
        if check != "ok":
            totals["corrupt"] += 1
        present = set()
        for (payload,) in stored:
            body = json.loads(payload)
            present.add((body["epoch"], body["seq"]))
        lost = waiting - present
        totals["lost"] += len(lost)
        totals["lost_examples"].extend(sorted(lost)[:3])
        waiting -= lost  # counted once
    return totals


def test_hard_kills_during_writes_lose_nothing_unacknowledged_and_corrupt_nothing(tmp_path):
    result = kill_campaign(tmp_path, kills=50, seed=7)
    assert result["reported"] > 50 * 5  # the kills really fell among writes
    assert result["corrupt"] == 0
    assert result["lost"] == 0, result["lost_examples"]
    assert result["seq_reused"] == 0
