"""How fast the display's History view opens with a year of sessions (issue 18).

Seeds a year of daily sessions (some days twice, some missed; 393 with the default seed) into
the display's own history (:class:`roller.display.session_log.SessionLog`, a real SQLite file),
serves the page with the real display server, and in headless chromium taps *History* and
then the newest session, ``--repeat`` times per screen size. Prints the median and worst time
from the tap to drawn (``window.rollerDisplay.historyLoad`` / ``sessionLoad``: fetch + parse +
SVG drawing) and the size of ``/api/history``. No broker is needed: the history is already
kept.

    .venv/bin/python benchmarks/bench_history_view.py [--repeat 5] [--days 365]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from test_history_view import seed_year

from roller.display import DisplayServer, DisplaySettings, MqttBridge
from roller.display.session_log import SessionLog
from roller.mqtt.client import MqttSettings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZES = {"800x480": (800, 480), "1024x600": (1024, 600), "390x844": (390, 844)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--days", type=int, default=365)
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        log = SessionLog(Path(tmp) / "display-history.sqlite3")
        sessions = seed_year(log, "mat1", days=args.days)
        # no broker: the bridge keeps retrying in the background, the history is served
        server = DisplayServer(DisplaySettings(http_host="127.0.0.1", http_port=0),
                               MqttBridge(MqttSettings(host="127.0.0.1", port=9)),
                               history=log)
        server.start()
        try:
            with urllib.request.urlopen(server.url() + "api/history?device=mat1") as r:
                size = len(r.read())
            print(f"{sessions} sessions; /api/history is {size / 1024:.0f} kB")
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
                for name, (w, h) in SIZES.items():
                    page = browser.new_page(viewport={"width": w, "height": h})
                    page.goto(server.url())
                    overview, one = [], []
                    for _ in range(args.repeat):
                        page.click("#history-btn")
                        page.wait_for_selector("#history[data-ready=true]")
                        overview.append(page.evaluate("window.rollerDisplay.historyLoad"
                                                      ".total_ms"))
                        page.click("#hist-list .session-item >> nth=0")
                        page.wait_for_selector("#hist-session[data-ready=true]")
                        one.append(page.evaluate("window.rollerDisplay.sessionLoad.total_ms"))
                        page.click("#history-btn")  # back to coaching
                    print(f"{name:>9}: History view median {statistics.median(overview):.0f} ms"
                          f", worst {max(overview):.0f} ms; a session's chart median "
                          f"{statistics.median(one):.0f} ms, worst {max(one):.0f} ms")
                    page.close()
                browser.close()
        finally:
            server.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
