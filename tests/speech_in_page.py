"""A whole simulated routine heard through the real page, with a voice that takes real time.

Shared by tests/test_display.py (the figures as a test) and benchmarks/bench_speech.py (the
figures printed). A simulated person's IMU goes through the real pipeline and coach on a
ManualClock; the coach states are published the way the service publishes them (on a change of
prompt, cue, step or breath, and at least every ``publish_interval_s``), paced at ``speedup``
times real time, to a real display page with *Sound on* clicked.

:data:`STAND_IN_VOICE` replaces the browser's ``speechSynthesis`` (injected with Playwright's
``add_init_script``; never shipped to users): it queues what ``speak()`` gets, says each
sentence for its words at ``wps`` words a second (scaled by the speedup), fires ``start``,
``end`` and ``error`` (``interrupted`` for the one cut by ``cancel()``, ``canceled`` for those
dropped from its queue) like Chromium's voice, and logs all of it. The page is told the speedup
(``window.__rollerTimeScale``) so its own waits scale with the voice.

:func:`analyse` turns the log into figures in simulated seconds (issue 17 item 2).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import SimulatedRoller, person_scenario
from roller.coaching.coach import Coach, CoachSettings
from roller.coaching.routine import load_routine
from roller.contract.cues import Priority
from roller.pipeline import Pipeline, PipelineSettings

RATE_HZ = 200.0
BLOCK = 20  # 0.1 s per pipeline update, the service's pace
DUE_S = 3.0
"""A sentence starting more than this after the coach decided it is late."""
CHIME_S = 0.8
"""How long the page's chime sounds [s] (three notes, roller/display/static/app.js)."""

STAND_IN_VOICE = """
(() => {
  const WPS = %(wps)f, SPEEDUP = %(speedup)f;
  const log = [];
  window.__speechLog = log;
  window.__rollerTimeScale = SPEEDUP;
  let queue = [], speaking = null, timer = 0;
  function fire(u, type, extra) {
    const ev = Object.assign({type: type, utterance: u}, extra || {});
    const handler = u["on" + type];
    if (handler) handler.call(u, ev);
    for (const f of (u.__listeners && u.__listeners[type]) || []) f.call(u, ev);
  }
  function next() {
    speaking = queue.shift() || null;
    if (!speaking) return;
    const u = speaking;
    const words = u.text.trim().split(/\\s+/).length;
    const ms = Math.max(words / WPS, 0.8) * 1000 / SPEEDUP;
    log.push({ev: "start", text: u.text, at: Date.now()});
    fire(u, "start");
    timer = setTimeout(() => {
      log.push({ev: "end", text: u.text, at: Date.now()});
      speaking = null;
      fire(u, "end");
      next();
    }, ms);
  }
  const synth = {
    speak(u) {
      queue.push(u);
      log.push({ev: "queue", text: u.text, at: Date.now()});
      if (!speaking) next();
    },
    cancel() {
      log.push({ev: "cancel", at: Date.now()});
      const cut = speaking, dropped = queue;
      speaking = null; queue = [];
      clearTimeout(timer);
      if (cut) { log.push({ev: "cut", text: cut.text, at: Date.now()});
                 fire(cut, "error", {error: "interrupted"}); }
      for (const u of dropped) { log.push({ev: "dropped", text: u.text, at: Date.now()});
                                 fire(u, "error", {error: "canceled"}); }
    },
    get speaking() { return !!speaking; },
    get pending() { return queue.length > 0; },
    get paused() { return false; },
    getVoices() { return []; },
    pause() {}, resume() {},
  };
  Object.defineProperty(window, "speechSynthesis", {value: synth, configurable: true});
  window.SpeechSynthesisUtterance = function (text) {
    this.text = text; this.__listeners = {};
    this.addEventListener = (type, f) => { (this.__listeners[type] ||= []).push(f); };
  };
})();
"""


@dataclass
class Routine:
    """A simulated routine as the service would publish it."""

    states: list[tuple[float, dict[str, Any]]]
    """(coach time [s], coach payload) in publishing order."""
    coach: Coach
    first_s: float = 0.0


def simulate(seed: int, duration_s: float) -> Routine:
    """Coach states as the service would publish them over a simulated person's routine."""
    sim = SimulatedRoller(person_scenario(duration_s, seed=seed), seed=seed)
    t, samples = sim.recording(RATE_HZ)
    pipeline = Pipeline(PipelineSettings())
    clock = ManualClock(float(t[0]))
    coach = Coach(load_routine(), CoachSettings(), clock, wall_clock=lambda: 1.7e9)
    out: list[tuple[float, dict[str, Any]]] = []
    last_key: tuple | None = None
    last_pub = -1e9
    for i in range(0, len(t), BLOCK):
        events = pipeline.update(t[i:i + BLOCK], samples[i:i + BLOCK])
        now = float(t[min(i + BLOCK, len(t)) - 1])
        clock.advance(max(now - clock.monotonic(), 0.0))
        state = coach.update(events, pipeline.live, now)
        # the service's rule (roller/service/loop.py), plus a new utterance goes out at once
        sp = state.speech["id"] if state.speech else None
        key = (state.state, state.step_index, state.prompt, state.cue, state.breath,
               state.summary is not None, sp)
        if key != last_key or now - last_pub >= coach.settings.publish_interval_s:
            out.append((now, state.to_dict()))
            last_key, last_pub = key, now
        if state.state == "done" and state.summary is not None:
            break
    return Routine(out, coach, out[0][0])


@dataclass
class Heard:
    """What the page did with the voice, in simulated seconds."""

    log: list[dict[str, Any]]
    """The voice's events: ev (queue, start, end, cut, dropped, cancel), text, t (sim s)."""
    tones: list[tuple[str, float]] = field(default_factory=list)
    """(kind, sim s) of each tone the page played."""
    sound_on_s: float = 0.0


def play(page: Any, url: str, publish: Callable[[str, dict[str, Any]], None],
         routine: Routine, *, speedup: float, settle_s: float = 12.0) -> Heard:
    """Drive ``page`` (with :data:`STAND_IN_VOICE` injected) through ``routine``: open
    ``url``, click *Sound on* at the first state, publish each coach state at its time."""
    states = routine.states
    publish("coach", states[0][1])
    page.goto(url)
    page.wait_for_selector("#conn[data-level=ok]", timeout=10000)
    page.wait_for_function("document.getElementById('prompt-box').dataset.cue !== 'none'",
                           timeout=10000)
    wall0 = time.time() + 0.3
    time.sleep(0.3)
    page.click("#sound")
    for t_sim, body in states[1:]:
        at = wall0 + (t_sim - routine.first_s) / speedup
        time.sleep(max(0.0, at - time.time()))
        publish("coach", body)
    time.sleep(settle_s / speedup)  # let the closing words finish
    raw = page.evaluate("window.__speechLog")
    tones = page.evaluate("window.rollerDisplay.tones || []")

    def sim(ms: float) -> float:
        return routine.first_s + (ms / 1000.0 - wall0) * speedup

    log = [dict(e, t=sim(e["at"])) for e in raw]
    return Heard(log, [(k, sim(at)) for k, at in tones], routine.first_s)


def _spans(log: list[dict[str, Any]]) -> list[tuple[float, float, str, bool]]:
    """(start, end, text, finished) of every sentence the voice began."""
    spans = []
    open_: dict[str, float] = {}
    for e in log:
        if e["ev"] == "start":
            open_[e["text"]] = e["t"]
        elif e["ev"] in ("end", "cut") and e.get("text") in open_:
            spans.append((open_.pop(e["text"]), e["t"], e["text"], e["ev"] == "end"))
    spans += [(t, t, text, False) for text, t in open_.items()]
    return sorted(spans)


def _said(step: Any, what: str) -> str:
    """A step's spoken position or caution (a routine from before they had spoken forms: the
    full text)."""
    spoken = getattr(step, f"spoken_{what}", None)
    return spoken if spoken is not None else " ".join(getattr(step, what).split())


def analyse(routine: Routine, heard: Heard) -> dict[str, Any]:
    """The figures of issue 17 item 2, in simulated seconds."""
    final = routine.states[-1][1]
    summary = final.get("summary") or {}
    active_s = float(summary.get("active_s", 0.0))
    decided: dict[int, dict[str, Any]] = {}
    for _, st in routine.states:
        sp = st.get("speech")
        if sp and sp["id"] not in decided:
            decided[sp["id"]] = sp
    spans = _spans(heard.log)
    starts = [(a, text) for a, _, text, _ in spans]
    talk_s = sum(b - a for a, b, _, _ in spans)
    urgent = [u for u in decided.values() if u["priority"] >= Priority.SLOW_DOWN]

    def excused(t: float, window_s: float) -> bool:
        """A safety or slow-down sentence was decided around ``t``."""
        return any(t - 0.5 <= u["decided_s"] <= t + window_s for u in urgent)

    priority = {u["text"]: u["priority"] for u in decided.values()}
    # the page's own echo of the prompt on "Sound on" gives way to the coach's next words
    echo = [(a, text) for a, b, text, done in spans[:1]
            if not done and a < heard.sound_on_s + 3.0]
    cut = [(a, text) for a, b, text, done in spans
           if not done and (a, text) not in echo
           and not (excused(b, 0.5) and priority.get(text, 0) < Priority.SAFETY)]
    talk_by_kind: dict[str, float] = {}
    kinds = {u["text"]: u["kind"] for u in decided.values()}
    for a, b, text, _ in spans:
        kind = kinds.get(text, "page")
        talk_by_kind[kind] = round(talk_by_kind.get(kind, 0.0) + b - a, 1)
    dropped, late = [], []
    for u in decided.values():
        heard_at = [a for a, text in starts if text == u["text"]
                    and u["decided_s"] - 0.5 <= a <= u["decided_s"] + 30]
        if not heard_at:
            if u["priority"] < Priority.SAFETY and excused(u["decided_s"] - u["duration_s"],
                                                         u["duration_s"] + DUE_S):
                continue
            dropped.append(u["text"])
        elif heard_at[0] - u["decided_s"] > DUE_S:
            late.append((u["text"], round(heard_at[0] - u["decided_s"], 1)))
    thrice = []
    for i, (a, text) in enumerate(starts):
        if sum(1 for b, x in starts[:i] if x == text and b > a - 60.0) >= 2:
            thrice.append(text)
    chime_overlaps = sum(1 for kind, t in heard.tones if kind == "chime" and any(
        a < t + CHIME_S and t < b for a, b, _, _ in spans))
    steps = routine.coach.routine.steps
    finished = {text for _, _, text, done in spans if done}
    position_missing = [s.id for s in steps
                        if not any(_said(s, "position") in text for text in finished)]
    caution_missing = [s.id for s in steps if _said(s, "caution") and
                       not any(_said(s, "caution") in text for text in finished)]
    bracketed = sorted({text for _, text in starts if "(" in text})
    active_min = active_s / 60.0
    return {
        "active_min": round(active_min, 2),
        "sentences": len(starts),
        "per_active_min": round(len(starts) / active_min, 2) if active_min else None,
        "talk_s": round(talk_s, 1),
        "talk_share": round(talk_s / active_s, 3) if active_s else None,
        "talk_by_kind_s": talk_by_kind, "sound_on_echo_cut": len(echo),
        "cut": cut, "dropped": dropped, "late": late, "said_3x_in_60s": thrice,
        "chime_overlaps": chime_overlaps, "position_missing": position_missing,
        "caution_missing": caution_missing, "bracketed": bracketed,
        "longest_sentence_words": max((len(x.split()) for _, x in starts), default=0),
    }


def run_with_server(seed: int, duration_s: float, speedup: float, wps: float,
                    ) -> tuple[Routine, Heard]:
    """The whole run on its own broker, display server and headless chromium (the bench)."""
    import tempfile

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    from playwright.sync_api import sync_playwright

    from roller.display import DisplayServer, DisplaySettings, MqttBridge
    from roller.mqtt.client import MqttSettings
    from roller.mqtt.local_broker import start_local_broker

    routine = simulate(seed, duration_s)
    broker = start_local_broker("mosquitto")
    server = DisplayServer(DisplaySettings(http_host="127.0.0.1", http_port=0),
                           MqttBridge(MqttSettings(host=broker.host, port=broker.port)))
    server.start()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench")
    client.connect(broker.host, broker.port)
    client.loop_start()
    device = "speech"

    def publish(topic: str, body: dict[str, Any]) -> None:
        client.publish(f"roller/{device}/{topic}", json.dumps(body).encode(), qos=1,
                       retain=True).wait_for_publish(5)

    try:
        client.publish(f"roller/{device}/status", b"online", qos=1, retain=True)
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(
                profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            ctx.add_init_script(STAND_IN_VOICE % {"wps": wps, "speedup": speedup})
            page = ctx.new_page()
            heard = play(page, server.url() + f"?device={device}", publish, routine,
                         speedup=speedup)
            ctx.close()
    finally:
        client.loop_stop()
        client.disconnect()
        server.close()
        broker.stop()
    return routine, heard


CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
