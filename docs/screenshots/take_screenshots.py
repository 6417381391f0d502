"""Take the README's display screenshots from a running ``roller demo`` (real data, real page).

    .venv/bin/roller demo --port 8080 &
    .venv/bin/python docs/screenshots/take_screenshots.py http://127.0.0.1:8080/

Watches the page in headless chromium at 1024x600 (a 7" Pi panel) and saves each picture
when the coach first shows that
moment (after at least ``--trace-s`` seconds on the page, so the speed trace is filled):
``demo-rolling.png``, ``demo-too-fast.png``, ``demo-hold.png``, ``demo-switch-sides.png``,
``demo-phone.png`` (390x844) and, at the end of the routine, ``demo-summary.png``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
WANTED = {"rolling": "demo-rolling.png", "too_fast": "demo-too-fast.png",
          "hold": "demo-hold.png", "switch_sides": "demo-switch-sides.png",
          "routine_done": "demo-summary.png"}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url")
    parser.add_argument("--timeout-s", type=float, default=900.0)
    parser.add_argument("--trace-s", type=float, default=25.0)
    parser.add_argument("--only", help="comma-separated cues to capture (default: all)")
    args = parser.parse_args(argv)
    wanted = dict(WANTED)
    if args.only:
        wanted = {k: v for k, v in WANTED.items() if k in args.only.split(",")}
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
        ctx = p.chromium.launch_persistent_context(
            profile, executable_path="/usr/bin/chromium", headless=True, args=ARGS,
            viewport={"width": 1024, "height": 600})
        page = ctx.new_page()
        page.goto(args.url)
        opened = time.monotonic()
        phone_done = False
        while wanted and time.monotonic() - opened < args.timeout_s:
            time.sleep(0.25)
            if time.monotonic() - opened < args.trace_s:
                continue
            cue = page.get_attribute("#prompt-box", "data-cue")
            if cue in wanted:
                page.wait_for_timeout(300)
                if page.get_attribute("#prompt-box", "data-cue") != cue:
                    continue  # a moment too short to show: wait for the next one
                name = wanted.pop(cue)
                page.screenshot(path=str(HERE / name))
                print(f"saved {name} ({cue}: {page.text_content('#prompt')})", flush=True)
            if not phone_done and cue == "rolling":
                page.set_viewport_size({"width": 390, "height": 844})
                page.wait_for_timeout(500)
                page.screenshot(path=str(HERE / "demo-phone.png"))
                page.set_viewport_size({"width": 1024, "height": 600})
                phone_done = True
                print("saved demo-phone.png", flush=True)
        ctx.close()
    if wanted:
        print(f"not seen in time: {', '.join(wanted)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
