"""``roller demo`` as a newcomer meets it, in headless Chromium (issue 17 item 4): the paired
page opened, *Sound on*, Start pressed after ``--start-after`` seconds; prints each change of
the page's cue with the time, then every tone and sentence, and those after the routine ended.

Real time: about 11 minutes (the demo's person lies still 30 s, the routine takes about 9 min,
then ``--after`` seconds are watched). The voice is the tests' stand-in for ``speechSynthesis``
(tests/speech_in_page.py) at 2.6 words a second.

    .venv/bin/python benchmarks/bench_demo_page.py [--start-after 10] [--after 120]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# by its path: a dependency installs a package called ``tests`` into the venv
_HARNESS = Path(__file__).resolve().parents[1] / "tests" / "speech_in_page.py"
_spec = importlib.util.spec_from_file_location("speech_in_page", _HARNESS)
assert _spec is not None and _spec.loader is not None
harness = sys.modules["speech_in_page"] = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

PAGE_STATE = ("({cue: document.getElementById('prompt-box').dataset.cue,"
              " prompt: document.getElementById('prompt').textContent,"
              " phase: document.getElementById('phase').textContent,"
              " strokes: document.getElementById('strokes').textContent})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--start-after", type=float, default=10.0,
                        help="press Start this long after the demo started [s]; -1: never")
    parser.add_argument("--after", type=float, default=120.0,
                        help="watch this long after the routine ended [s]")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="bench-demo-") as tmp:
        env = dict(os.environ, XDG_STATE_HOME=str(Path(tmp) / "state"), PYTHONUNBUFFERED="1")
        env.pop("ROLLER_CONFIG", None)
        demo = subprocess.Popen([sys.executable, "-m", "roller.cli", "demo", "--port", "0"],
                                cwd=tmp, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT)
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(
            raw.decode().rstrip() for raw in demo.stdout), daemon=True).start()
        t0 = time.time()
        try:
            while not any("open http" in line for line in lines):
                if time.time() - t0 > 30 or demo.poll() is not None:
                    print("\n".join(lines), file=sys.stderr)
                    return 1
                time.sleep(0.1)
            url = next(m.group(1) for line in lines
                       if (m := re.search(r"open (http://\S+)", line)))
            with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
                ctx = p.chromium.launch_persistent_context(
                    profile, executable_path=harness.CHROMIUM, headless=True,
                    args=harness.CHROMIUM_ARGS)
                ctx.add_init_script(harness.STAND_IN_VOICE % {"wps": 2.6, "speedup": 1.0})
                page = ctx.new_page()
                page.goto(url)
                page.wait_for_selector("#conn[data-level=ok]", timeout=15000)
                page.click("#sound")
                pressed = args.start_after < 0
                ended = None
                last = None
                while time.time() - t0 < 1200:
                    at = time.time() - t0
                    if not pressed and at >= args.start_after:
                        page.click("#controls button[data-verb=start]")
                        pressed = True
                        print(f"{at:6.1f} s  pressed Start")
                    st = page.evaluate(PAGE_STATE)
                    if st["cue"] != last:
                        last = st["cue"]
                        print(f"{at:6.1f} s  {st['cue']:<13} {st['phase']:<13} strokes "
                              f"{st['strokes']:<4} {st['prompt'][:60]}")
                    if st["cue"] == "routine_done" and ended is None:
                        ended = time.time()
                    if ended is not None and time.time() - ended > args.after:
                        break
                    time.sleep(1.0)
                tones = page.evaluate("window.rollerDisplay.tones")
                log = page.evaluate("window.__speechLog")
                ctx.close()
        finally:
            demo.send_signal(signal.SIGINT)
            demo.wait(20)
    said = [(e["at"] / 1000 - t0, e.get("text", "")) for e in log if e["ev"] == "start"]
    sounds = [(at / 1000 - t0, kind) for kind, at in tones]
    print("tones: " + ", ".join(f"{kind} {at:.1f} s" for at, kind in sounds))
    print(f"sentences: {len(said)}")
    if ended is None:
        print("the routine did not end")
        return 1
    end_s = ended - t0
    print(f"routine ended at {end_s:.1f} s; in the {args.after:.0f} s after it: "
          f"{sum(1 for at, _ in sounds if at > end_s + 0.5)} tones, sentences "
          f"{[(round(at - end_s, 1), text) for at, text in said if at > end_s + 0.5]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
