"""The display's History view end to end: real mosquitto, the real display server keeping its
own history from what the rollers publish, real headless chromium.

- The data path: two rollers publish a session as the service does (``coach``, ``session``,
  ``live``, ``event/<kind>``); the display keeps each roller's session with its chart, and a
  retained ``session`` heard again after a restart changes nothing.
- The view: a year of daily sessions seeded into the display's history loads and draws in
  under a second; tapping a session shows its chart and steps; screenshots at 800x480,
  1024x600 and 390x844 (kept in docs/screenshots with ROLLER_SCREENSHOTS=docs/screenshots).
"""

from __future__ import annotations

import json
import math
import os
import random
import time
import urllib.request
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from test_display import CHROMIUM, CHROMIUM_ARGS, Pub
from test_history import session as coached_session

from roller.coaching.routine import load_routine
from roller.contract.messages import session_payload, summary_payload
from roller.display import DisplayServer, DisplaySettings, MqttBridge
from roller.display.session_log import SessionLog
from roller.mqtt.client import MqttSettings


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    """Where the screenshots go: a temporary folder, or ROLLER_SCREENSHOTS=docs/screenshots to
    keep them as the README's pictures (a test run does not rewrite tracked files)."""
    kept = os.environ.get("ROLLER_SCREENSHOTS")
    return Path(kept) if kept else tmp_path_factory.mktemp("screenshots")


SIZES = {"pi-800x480": (800, 480), "pi-1024x600": (1024, 600), "phone-390x844": (390, 844)}


# -- what a roller publishes ----------------------------------------------------------------
def finished_session(sid: str, summary, *, distance_m: float = 1.2) -> dict:
    s = summary
    return session_payload(
        session_id=sid, state="finished", end_reason=s.end_reason, started_unix_s=s.started_at,
        ended_unix_s=s.ended_at, active_s=s.active_s, running_s=s.duration_s,
        strokes=s.strokes, distance_m=distance_m, holds=s.holds,
        hold_time_s=sum(sum(st["holds_s"]) for st in s.steps),
        too_fast_count=s.too_fast_count, too_fast_s=s.too_fast_s,
        mean_speed_m_s=s.mean_speed_m_s, median_speed_m_s=s.median_speed_m_s,
        peak_speed_m_s=s.peak_speed_m_s or 0.0, routine=summary_payload(s.to_dict()))


def coach_state(sid: str, index: int | None, title: str = "", side: str = "none") -> dict:
    step = None if index is None else {"id": f"s{index}", "title": title, "muscle": "glutes",
                                       "side": side, "prop": "roller"}
    return {"state": "active" if step else "ready", "session_id": sid, "step_index": index,
            "step": step, "t_s": 0.0}


def publish_a_session(pub: Pub, device: str, sid: str, *, mono0: float) -> None:
    """About 3 s of a coached session as the service sends it, on the roller's monotonic
    clock starting at ``mono0``: a step change, strokes, a hold, a too-fast pass."""
    pub.send(device, "session", {"session_id": sid, "state": "running"}, retain=True)
    pub.send(device, "coach", coach_state(sid, 0, "Glutes, right side", "right"), retain=True)
    began = time.monotonic()
    for i in range(30):
        time.sleep(max(0.0, began + i * 0.1 - time.monotonic()))  # at the roller's pace
        t = mono0 + i * 0.1
        speed = 0.09 if 10 <= i < 14 else 0.025
        pub.send(device, "live", {"t_s": t, "speed_m_s": speed, "phase": "rolling"})
        if i == 15:
            pub.send(device, "coach", coach_state(sid, 1, "Glutes, left side", "left"),
                     retain=True)
        time.sleep(0.02)
    pub.send(device, "event/stroke", {"session_id": sid, "start_s": mono0 + 0.2,
                                      "end_s": mono0 + 0.9, "mean_speed_m_s": 0.03,
                                      "distance_m": 0.021})
    pub.send(device, "event/too_fast", {"session_id": sid, "start_s": mono0 + 1.0,
                                        "end_s": mono0 + 1.4, "peak_speed_m_s": 0.09})
    pub.send(device, "event/hold", {"session_id": sid, "start_s": mono0 + 1.6,
                                    "end_s": mono0 + 2.8, "duration_s": 1.2})
    pub.send(device, "event/stroke", {"session_id": "another", "start_s": mono0,
                                      "end_s": mono0 + 0.5, "mean_speed_m_s": 0.03})
    time.sleep(0.2)  # the events reach the display before the end, as from the outbox
    pub.send(device, "session", finished_session(sid, coached_session(10, 12)), retain=True)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


def wait_for(check, timeout_s: float = 5.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.05)
    raise AssertionError("timed out")


def make_display(broker, history: SessionLog) -> DisplayServer:
    bridge = MqttBridge(MqttSettings(host=broker.host, port=broker.port,
                                     reconnect_min_delay_s=0.1, reconnect_max_delay_s=0.5))
    server = DisplayServer(DisplaySettings(http_host="127.0.0.1", http_port=0, keepalive_s=2),
                           bridge, history=history)
    server.start()
    assert bridge.wait_connected(5)
    return server


@pytest.mark.broker
def test_the_display_keeps_each_rollers_sessions_from_the_broker(broker, tmp_path) -> None:
    path = tmp_path / "display" / "display-history.sqlite3"
    display = make_display(broker, SessionLog(path))
    pub = Pub(broker)
    try:
        publish_a_session(pub, "mat1", "s-1", mono0=5000.0)
        publish_a_session(pub, "mat2", "s-9", mono0=10.0)  # another roller, another clock
        base = display.url()
        got = wait_for(lambda: (h := get_json(base + "api/history?device=mat2"))["rows"] and h)
        assert got["devices"] == ["mat1", "mat2"]
        row = dict(zip(got["columns"], got["rows"][0], strict=True))
        assert row["session_id"] == "s-9" and row["has_chart"] and row["strokes"] == 3
        assert ["glutes", "left", pytest.approx(12, abs=0.2)] in row["doses"]
        s = get_json(base + "api/history/session?device=mat1&id=s-1")
        chart = s["chart"]
        assert [st["title"] for st in s["steps"]] == ["Glutes right", "Glutes left"]
        assert [x[2:] for x in chart["steps"]] == [["Glutes, right side", "right"],
                                                   ["Glutes, left side", "left"]]
        assert chart["steps"][0][1] == chart["steps"][1][0]  # spans meet at the change
        assert 1.0 < chart["steps"][1][0] < 2.5
        assert len(chart["strokes"]) == 1  # the other session's stroke is not this one's
        (stroke,) = chart["strokes"]
        assert stroke[1] - stroke[0] == pytest.approx(0.7, abs=0.01)
        assert 0.0 <= stroke[0] < 1.0  # the roller's clock moved onto the display's
        assert chart["too_fast"][0][2] == pytest.approx(9.0)
        assert chart["holds"][0][1] - chart["holds"][0][0] == pytest.approx(1.2, abs=0.01)
        speeds = [v for _, v in chart["speed"]]
        assert max(speeds) == pytest.approx(9.0) and len(speeds) >= 5
        # a missing or malformed request says what was wrong
        with pytest.raises(urllib.error.HTTPError) as err:
            get_json(base + "api/history/session?device=mat1&id=nope")
        assert err.value.code == 404
        with pytest.raises(urllib.error.HTTPError) as err:
            get_json(base + "api/history?device=bad%20id")
        assert err.value.code == 400
    finally:
        pub.close()
        display.close()
    # restarted: the retained `session` messages are heard again; nothing doubles, the
    # charts stay
    display = make_display(broker, SessionLog(path))
    try:
        time.sleep(0.5)
        for device in ("mat1", "mat2"):
            h = get_json(display.url() + f"api/history?device={device}")
            assert len(h["rows"]) == 1 and h["rows"][0][-1] is True
        assert display.history_recorder.stored == 2
    finally:
        display.close()


# -- a year of sessions ---------------------------------------------------------------------
def seed_year(log: SessionLog, device: str, *, days: int = 365, seed: int = 1,
              now: datetime | None = None) -> int:
    """One session a day (a few days missed) for ``days`` days, each with a chart, as the
    display would have kept them."""
    rng = random.Random(seed)
    routine = load_routine()
    now = now or datetime.now()
    stored = 0
    for back in range(days, -1, -1):
        if back > 2 and rng.random() < 0.12:
            continue  # a missed day (the last three are rolled: a streak to show)
        day = (now - timedelta(days=back)).replace(hour=7, minute=0, second=0)
        # most days once, some twice (morning and evening): a year holds 365-odd sessions
        for start_h in (0, 11)[:2 if rng.random() < 0.2 else 1]:
            start = day + timedelta(hours=start_h, minutes=rng.randint(0, 120))
            if start > now:
                start = now - timedelta(minutes=20 + start_h)
            log_session(log, device, rng, routine, start, (days - back) / days, seed)
            stored += 1
    return stored


def log_session(log: SessionLog, device: str, rng: random.Random, routine, start: datetime,
                progress: float, seed: int) -> None:
    """One seeded session, slower and more even the further ``progress`` (0..1) is."""
    steps, chart = [], {"speed": [], "strokes": [], "holds": [], "too_fast": [],
                        "steps": []}
    t = 0.0
    lean = rng.uniform(-0.25, 0.25) * (1 - progress)
    for st in routine.steps:
        scale = 1 + (lean if st.side == "left" else -lean if st.side == "right" else 0)
        active = max(5.0, st.target_active_s * scale * rng.uniform(0.8, 1.15))
        fast_share = max(0.0, rng.gauss(0.18 - 0.12 * progress, 0.03))
        rolling = active * 0.7
        step_chart(chart, rng, t, active, fast_share)
        chart["steps"].append([round(t, 2), round(t + active, 2), st.title, st.side])
        t += active + rng.uniform(4, 8)
        strokes = int(rolling / 2.5)
        steps.append({"id": st.id, "title": st.title, "muscle": st.muscle, "side": st.side,
                      "prop": st.prop, "target_s": st.target_active_s, "active_s": active,
                      "rolling_s": rolling, "holding_s": active - rolling,
                      "strokes": strokes, "holds_s": [round(active - rolling, 1)],
                      "longest_hold_s": active - rolling, "too_fast_count": 2,
                      "too_fast_s": rolling * fast_share, "mean_speed_m_s": 0.03,
                      "peak_speed_m_s": 0.09, "completed": True, "skipped": False})
    chart["end_s"] = round(t, 2)
    chart["t0_unix_s"] = start.timestamp()
    sides = {side: sum(s["active_s"] for s in steps if s["side"] == side)
             for side in ("left", "right", "none")}
    summary = {"routine": routine.name, "routine_title": routine.title, "steps": steps,
               "sides_s": sides, "end_reason": "completed"}
    payload = {"session_id": f"{start:%Y%m%d-%H%M}-{seed}", "state": "finished",
               "end_reason": "completed", "started_unix_s": start.timestamp(),
               "ended_unix_s": start.timestamp() + t,
               "active_s": sum(s["active_s"] for s in steps),
               "strokes": sum(s["strokes"] for s in steps), "distance_m": 6.0,
               "holds": len(steps), "hold_time_s": sum(s["holding_s"] for s in steps),
               "too_fast_count": 2 * len(steps),
               "too_fast_s": sum(s["too_fast_s"] for s in steps),
               "mean_speed_m_s": 0.03, "routine": summary}
    assert log.record_finished(device, payload, chart)


def step_chart(chart: dict, rng: random.Random, t0: float, active: float,
               fast_share: float) -> None:
    """Speed at 2 Hz for one step: strokes of 2.5 s (a half sine about their mean speed),
    a hold, one too-fast pass."""
    hold_at = t0 + active * rng.uniform(0.4, 0.55)
    hold_len = active * 0.3
    strokes = []
    s = t0 + 0.5
    while s + 2.5 <= t0 + active:
        if not (hold_at - 2.5 < s < hold_at + hold_len):
            strokes.append([round(s, 2), round(s + 2.5, 2), round(rng.uniform(1.6, 3.0), 2)])
        s += 2.6
    fast_at = t0 + active * 0.2
    fast_len = max(0.6, fast_share * active * 0.5)
    t = t0
    while t < t0 + active:
        v = 0.15 if hold_at <= t < hold_at + hold_len else 0.3
        for a, b, mean in strokes:
            if a <= t < b:
                v = mean * math.pi / 2 * math.sin(math.pi * (t - a) / (b - a))
        if fast_at <= t < fast_at + fast_len:
            v = 8.5
        chart["speed"].append([round(t, 2), round(v, 2)])
        t += 0.5
    chart["strokes"] += strokes
    chart["holds"].append([round(hold_at, 2), round(hold_at + hold_len, 2)])
    chart["too_fast"].append([round(fast_at, 2), round(fast_at + fast_len, 2), 8.5])


@pytest.fixture(scope="module")
def year_log(tmp_path_factory) -> tuple[SessionLog, int]:
    log = SessionLog(tmp_path_factory.mktemp("display") / "display-history.sqlite3")
    return log, seed_year(log, "mat1")


@pytest.fixture(scope="module")
def year_display(year_log, tmp_path_factory):
    from conftest import Broker

    broker = Broker(tmp_path_factory.mktemp("broker"))
    broker.start()
    display = make_display(broker, year_log[0])
    pub = Pub(broker)
    pub.send("mat1", "status", b"online", retain=True)
    pub.send("mat1", "coach", {"state": "ready", "session_id": None, "routine_title":
                               "Lower back and hips", "step": None, "step_index": None,
                               "step_count": 7, "prompt": "Press Start when you are ready.",
                               "cue": "ready", "speed_target_m_s": 0.025,
                               "speed_limit_m_s": 0.05}, retain=True)
    display.test_pub = pub  # the test of the closing words publishes one more session
    yield display
    pub.close()
    display.close()
    broker.stop()


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run scripts/setup --test")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path_factory.mktemp("chromium-profile")), executable_path=CHROMIUM,
            headless=True, args=CHROMIUM_ARGS, viewport={"width": 1024, "height": 600})
        yield context
        context.close()


def open_history(page, display) -> dict:
    page.goto(display.url())
    page.wait_for_selector("#conn[data-level=ok]", timeout=5000)
    page.click("#history-btn")
    page.wait_for_selector("#history[data-ready=true]", timeout=5000)
    return page.evaluate("window.rollerDisplay.historyLoad")


@pytest.mark.browser
@pytest.mark.parametrize("name", list(SIZES))
def test_a_year_of_sessions_loads_in_under_a_second(year_display, year_log, browser, shots,
                                                    name) -> None:
    page = browser.new_page()
    try:
        page.set_viewport_size(dict(zip(("width", "height"), SIZES[name], strict=True)))
        load = open_history(page, year_display)
        print(f"\nHistory view at {name}, {load['rows']} sessions: fetch "
              f"{load['fetch_ms']:.0f} ms, drawn {load['render_ms']:.0f} ms, total "
              f"{load['total_ms']:.0f} ms")
        assert load["rows"] == year_log[1] >= 365
        assert load["total_ms"] < 1000
        # the parts: a calendar of 12 weeks, minutes per week, the doses, the weekly lines
        assert page.locator("#hist-calendar rect.cal-day").count() >= 7 * 11
        assert page.locator("#hist-calendar rect.cal-day[data-minutes='0.0']").count() >= 1
        assert int(page.text_content("#hist-streak")) >= 3
        assert page.locator("#hist-weeks rect.week-bar").count() == 12
        muscles = page.locator(".dose-row").evaluate_all("rs => rs.map(r => r.dataset.muscle)")
        assert set(muscles) == {"glutes", "piriformis", "quadratus lumborum",
                                "sacroiliac joint area"}
        assert page.locator("#hist-balance path.balance-line").count() == 1
        assert page.locator("#hist-balance path.slow-line").count() == 1
        slow = page.text_content("#hist-slow")
        assert slow.endswith("%") and 50 <= int(slow[:-1]) <= 100
        # nothing spills sideways out of the screen
        assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[name][0]
        page.screenshot(path=str(shots / f"history-{name}.png"))
        # tap the newest session: its chart and steps
        page.click("#hist-list .session-item >> nth=0")
        page.wait_for_selector("#hist-session[data-ready=true]", timeout=5000)
        assert page.locator("#hs-chart .step-span").count() == 7
        labels = page.locator("#hs-chart .step-label").all_text_contents()
        assert len(labels) == 7  # each step's span is labelled (shorter where narrow)
        assert labels[0].startswith("Glutes" if SIZES[name][0] > 500 else "1")
        assert page.locator("#hs-chart .stroke").count() > 20
        assert page.locator("#hs-chart .hold").count() == 7
        assert page.locator("#hs-chart .too-fast-mark").count() == 7
        assert page.locator("#hs-chart #hs-band rect").count() == 2
        assert page.locator("#hs-steps tbody tr").count() == 7
        assert page.evaluate("window.rollerDisplay.sessionLoad.total_ms") < 1000
        assert page.evaluate("document.documentElement.scrollWidth") <= SIZES[name][0]
        page.screenshot(path=str(shots / f"history-session-{name}.png"))
        # and back to coaching
        page.click("#hist-back")
        page.click("#history-btn")
        assert page.is_visible("#prompt") and not page.is_visible("#history")
    finally:
        page.close()


@pytest.mark.browser
def test_the_calendar_opens_that_days_session(year_display, browser) -> None:
    page = browser.new_page()
    try:
        open_history(page, year_display)
        day = page.locator("#hist-calendar rect.cal-day:not([data-minutes='0.0'])").last
        date = day.get_attribute("data-date")
        day.click()
        page.wait_for_selector("#hist-session[data-ready=true]", timeout=5000)
        shown = page.text_content("#hs-title")
        assert datetime.strptime(date, "%Y-%m-%d").strftime("%-d") in shown
    finally:
        page.close()


@pytest.mark.browser
def test_the_view_follows_the_roller_picked(year_display, year_log, browser) -> None:
    log, _ = year_log
    summary = coached_session(20, 20, wall=time.time() - 3600)
    assert log.record_finished("mat2", finished_session("mat2-only", summary))
    year_display.test_pub.send("mat2", "status", b"online", retain=True)
    page = browser.new_page()
    try:
        open_history(page, year_display)
        assert page.text_content("#hist-device") == "\u00b7 mat1"
        page.wait_for_selector("#device-picker:not([hidden])", timeout=5000)
        page.select_option("#device", "mat2")
        wait_for(lambda: page.text_content("#hist-device").endswith("mat2"))  # (CSP: no eval)
        page.wait_for_selector("#history[data-ready=true]", timeout=5000)
        assert page.text_content("#hist-note") == "1 session heard by this display"
        assert page.locator("#hist-list .session-item").count() == 1
    finally:
        page.close()


@pytest.mark.browser
def test_the_summary_judges_the_session_against_the_last_ones(year_display, browser,
                                                               shots) -> None:
    page = browser.new_page()
    try:
        page.set_viewport_size({"width": 1024, "height": 600})
        page.goto(year_display.url() + "?device=mat1")  # the browser may remember mat2
        page.wait_for_selector("#conn[data-level=ok]", timeout=5000)
        summary = coached_session(30, 25, wall=time.time() - 120)
        body = summary_payload(summary.to_dict())
        pub = year_display.test_pub
        pub.send("mat1", "coach", {"state": "done", "session_id": "today-1", "cue": "stopped",
                                   "routine_title": "Test routine", "step": None,
                                   "prompt": "Session stopped. Well done.", "detail": "",
                                   "summary": body, "end_reason": "stopped"}, retain=True)
        pub.send("mat1", "session", finished_session("today-1", summary), retain=True)
        page.wait_for_selector("#summary-verdict:not(:empty)", timeout=8000)
        text = page.text_content("#summary-verdict")
        # the coached session: 0.8 s too fast in 3 strokes' worth of rolling, 25/30 left/right
        assert "of your rolling was in the slow band" in text
        assert "your last 5 sessions" in text
        assert text.count(".") <= 3  # one or two sentences (a figure may have a point)
        page.screenshot(path=str(shots / "history-verdict-pi-1024x600.png"))
    finally:
        page.close()


def test_a_history_file_that_cannot_be_opened_leaves_the_display_working(tmp_path) -> None:
    from roller.display.server import open_history

    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the state directory should be")
    log = open_history(blocker / "display-history.sqlite3")
    assert log.path is None  # in memory
    assert log.record_finished("mat1", {"session_id": "a", "state": "finished",
                                        "started_unix_s": 1.0, "active_s": 5.0})
    assert log.summaries("mat1")[0][0] == "a"
    junk = tmp_path / "junk.sqlite3"
    junk.write_bytes(b"not a database" * 100)
    assert open_history(junk).path is None
