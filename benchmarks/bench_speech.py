"""What a person hears: a full simulated routine through the real page, with speech logged.

A simulated person's IMU goes through the real pipeline and coach on a ManualClock; the coach
states are published to a local mosquitto the way the service publishes them (retained
``coach``, on a prompt/cue/step/breath change and at least every ``publish_interval_s``), paced
at ``--speedup`` times real time, to the real display server and headless chromium with
*Sound on* clicked. An init script replaces the browser's ``speechSynthesis`` with a recorder
that behaves like a voice (a queue; each sentence lasts its words at ``--words-per-s``, scaled
by the speedup; ``cancel()`` cuts the current one and empties the queue) and logs start, end
and cut. Prints, in simulated seconds:

* utterances per active minute (the routine's active time, from the coach's summary);
* cut-offs (a sentence cancelled before its end), and those cut by an equal or lower priority;
* stale prompts (spoken more than 3 s after the coach first showed or decided them);
* repeats (a sentence spoken a third time within 60 s);
* steps whose position instruction was not spoken in full;
* holds cut by a step change (a hold counting down when its step ended);
* how often *Sound on* spoke.

    .venv/bin/python benchmarks/bench_speech.py [--seed N] [--speedup 4]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import tempfile
import time
from dataclasses import asdict, is_dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from firmware_bridge.clock import ManualClock
from firmware_bridge.simulator import SimulatedRoller, person_scenario
from roller.coaching.coach import Coach, CoachSettings
from roller.coaching.routine import load_routine
from roller.display import DisplayServer, DisplaySettings, MqttBridge
from roller.mqtt.client import MqttSettings
from roller.mqtt.local_broker import start_local_broker
from roller.pipeline import Pipeline, PipelineSettings

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RATE_HZ = 200.0
BLOCK = 20  # 0.1 s per pipeline update, the service's pace
STALE_S = 3.0

# A voice that takes time: speak() queues, each sentence lasts its words at WPS (scaled by the
# speedup), cancel() cuts the one being spoken and drops the queue. Everything is logged with
# Date.now() so Python can map it onto the simulated clock.
VOICE = """
(() => {
  const WPS = %(wps)f, SPEEDUP = %(speedup)f;
  const log = [];
  window.__speechLog = log;
  let queue = [], speaking = null, timer = 0;
  function next() {
    speaking = queue.shift() || null;
    if (!speaking) return;
    const words = speaking.text.trim().split(/\\s+/).length;
    const ms = Math.max(words / WPS, 0.8) * 1000 / SPEEDUP;
    log.push({ev: "start", text: speaking.text, at: Date.now()});
    const u = speaking;
    timer = setTimeout(() => {
      log.push({ev: "end", text: u.text, at: Date.now()});
      speaking = null;
      if (u.onend) u.onend({});
      next();
    }, ms);
  }
  const synth = {
    speak(u) { queue.push(u); log.push({ev: "queue", text: u.text, at: Date.now()});
               if (!speaking) next(); },
    cancel() {
      log.push({ev: "cancel", at: Date.now()});
      if (speaking) { clearTimeout(timer); log.push({ev: "cut", text: speaking.text,
                                                     at: Date.now()}); speaking = null; }
      for (const u of queue) log.push({ev: "dropped", text: u.text, at: Date.now()});
      queue = [];
    },
    get speaking() { return !!speaking; },
    get pending() { return queue.length > 0; },
    getVoices() { return []; },
    pause() {}, resume() {},
  };
  Object.defineProperty(window, "speechSynthesis", {value: synth, configurable: true});
  window.SpeechSynthesisUtterance = function (text) { this.text = text; };
})();
"""


def simulate(seed: int, duration_s: float) -> tuple[list[tuple[float, dict[str, Any]]], Coach,
                                                    dict[float, tuple[str, float]]]:
    """Coach states as the service would publish them: (coach time [s], payload), the coach,
    and the pipeline's live phase at each published time."""
    sim = SimulatedRoller(person_scenario(duration_s, seed=seed), seed=seed)
    t, samples = sim.recording(RATE_HZ)
    pipeline = Pipeline(PipelineSettings())
    clock = ManualClock(float(t[0]))
    coach = Coach(load_routine(), CoachSettings(), clock, wall_clock=lambda: 1.7e9)
    out: list[tuple[float, dict[str, Any]]] = []
    phases: dict[float, tuple[str, float]] = {}
    last_key: tuple | None = None
    last_pub = -1e9
    for i in range(0, len(t), BLOCK):
        events = pipeline.update(t[i:i + BLOCK], samples[i:i + BLOCK])
        now = float(t[min(i + BLOCK, len(t)) - 1])
        clock.advance(max(now - clock.monotonic(), 0.0))
        state = coach.update(events, pipeline.live, now)
        # the service's rule (roller/service/loop.py _update_coach)
        key = (state.state, state.step_index, state.prompt, state.cue, state.breath,
               state.summary is not None)
        if key != last_key or now - last_pub >= coach.settings.publish_interval_s:
            body = state.to_dict() if hasattr(state, "to_dict") else asdict(state)
            out.append((now, body))
            live = pipeline.live
            phases[now] = (live.phase, live.hold_time_s) if live is not None else ("idle", 0.0)
            last_key, last_pub = key, now
        if state.state == "done" and state.summary is not None:
            break
    return out, coach, phases


def count_holds_cut(states: list[tuple[float, dict[str, Any]]],
                    phases: dict[float, tuple[str, float]]) -> int:
    """Holds still under way (the person still holding, short of the window) when their step
    ended: the live hold time at the first state after the step is below the hold's min_s."""
    cut = 0
    for (_, a), (tb, b) in itertools.pairwise(states):
        if not (a.get("hold") and a.get("state") == "active"):
            continue
        if b.get("state") == "active" and b.get("step_index") == a.get("step_index"):
            continue
        phase, hold_s = phases.get(tb, ("idle", 0.0))
        if phase == "holding" and hold_s < a["hold"]["min_s"]:
            cut += 1
    return cut


def _plain(value: Any) -> Any:
    return asdict(value) if is_dataclass(value) else value


def analyse(states: list[tuple[float, dict[str, Any]]], log: list[dict[str, Any]],
            to_sim: Any, coach: Coach, sound_on_sim: float,
            phases: dict[float, tuple[str, float]]) -> dict[str, Any]:
    """The figures, in simulated seconds, from the published states and the voice's log."""
    final = states[-1][1]
    summary = final.get("summary") or {}
    active_min = summary.get("active_s", 0.0) / 60.0
    # when each sentence was first asked for: a prompt change or the coach's speech decision
    asked: list[tuple[float, str]] = []
    prev_prompt = None
    for t, st in states:
        if st.get("prompt") != prev_prompt:
            asked.append((t, st.get("prompt") or ""))
            prev_prompt = st.get("prompt")
        sp = st.get("speech")
        if sp:
            asked.append((sp["asked_s"], sp["text"]))
    priority = {}
    for _, st in states:
        if st.get("speech"):
            priority[st["speech"]["text"]] = st["speech"]["priority"]
    starts = [(to_sim(e["at"]), e["text"]) for e in log if e["ev"] == "start"]
    cuts = [(to_sim(e["at"]), e["text"]) for e in log if e["ev"] == "cut"]
    sound_on = [s for s in starts if sound_on_sim - 0.1 <= s[0] <= sound_on_sim + 2.0]
    stale = []
    for t, text in starts:
        times = [a for a, txt in asked if txt == text and a <= t + 0.2]
        if times and t - max(times) > STALE_S:
            stale.append((t, text, t - max(times)))
    repeats = 0
    for i, (t, text) in enumerate(starts):
        if sum(1 for u, x in starts[:i] if x == text and u > t - 60.0) >= 2:
            repeats += 1
    # a cut by equal or lower priority: the next start right after the cut is not higher
    bad_cuts = 0
    for t, text in cuts:
        nxt = next((x for u, x in starts if u >= t - 0.05 and x != text), None)
        if nxt is None or priority.get(nxt, 0) <= priority.get(text, 0):
            bad_cuts += 1
    ended_texts = {e["text"] for e in log if e["ev"] == "end"}
    not_spoken, not_full = [], []
    for step in coach.routine.steps:
        pos = " ".join(step.position.split())
        heard = {x for _, x in starts if pos in " ".join(x.split())}
        if not heard:
            not_spoken.append(step.id)
        elif not heard & ended_texts:
            not_full.append(step.id)
    holds_cut = count_holds_cut(states, phases)
    return {"utterances": len(starts), "active_min": active_min,
            "per_active_min": len(starts) / active_min if active_min else float("nan"),
            "cut_offs": len(cuts), "cut_by_equal_or_lower": bad_cuts, "stale": len(stale),
            "repeats": repeats, "position_not_spoken": not_spoken,
            "position_cut": not_full, "holds_cut_by_step_change": holds_cut,
            "sound_on_spoke": len(sound_on), "stale_examples": stale[:3],
            "most_said": max(((sum(1 for _, x in starts if x == s), s) for s in
                              {x for _, x in starts}), default=(0, ""))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=2)
    parser.add_argument("--duration-s", type=float, default=400.0)
    parser.add_argument("--speedup", type=float, default=4.0)
    parser.add_argument("--words-per-s", type=float, default=2.5)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    states, coach, phases = simulate(args.seed, args.duration_s)
    broker = start_local_broker("mosquitto")
    server = DisplayServer(DisplaySettings(http_host="127.0.0.1", http_port=0),
                           MqttBridge(MqttSettings(host=broker.host, port=broker.port)))
    server.start()
    client = mqtt.Client(callback_api_version=CallbackAPIVersion.VERSION2, client_id="bench")
    client.connect(broker.host, broker.port)
    client.loop_start()
    device = "speech"
    try:
        with tempfile.TemporaryDirectory() as profile, sync_playwright() as p:
            ctx = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM,
                                                       headless=True, args=ARGS)
            ctx.add_init_script(VOICE % {"wps": args.words_per_s, "speedup": args.speedup})
            page = ctx.new_page()
            client.publish(f"roller/{device}/status", b"online", qos=1, retain=True)
            t_first = states[0][0]
            client.publish(f"roller/{device}/coach", json.dumps(states[0][1]).encode(),
                           qos=1, retain=True).wait_for_publish(5)
            page.goto(server.url() + f"?device={device}")
            page.wait_for_selector("#conn[data-level=ok]", timeout=10000)
            page.wait_for_function("document.getElementById('prompt-box').dataset.cue "
                                   "!== 'none'", timeout=10000)
            wall0 = time.time() + 0.5
            time.sleep(0.5)
            page.click("#sound")
            for t_sim, body in states[1:]:
                at = wall0 + (t_sim - t_first) / args.speedup
                time.sleep(max(0.0, at - time.time()))
                client.publish(f"roller/{device}/coach", json.dumps(body).encode(), qos=1,
                               retain=True)
            time.sleep(15.0 / args.speedup)  # let the closing words finish
            log = page.evaluate("window.__speechLog")
            ctx.close()
    finally:
        client.loop_stop()
        client.disconnect()
        server.close()
        broker.stop()

    def to_sim(ms: float) -> float:
        return t_first + (ms / 1000.0 - wall0) * args.speedup

    figures = analyse(states, log, to_sim, coach, t_first, phases)
    if args.json:
        print(json.dumps(figures, default=_plain, indent=1))
        return 0
    f = figures
    print(f"speech over a simulated routine (seed {args.seed}, {f['active_min']:.2f} active "
          f"min, x{args.speedup:g} speed, voice {args.words_per_s:g} words/s):")
    print(f"  utterances {f['utterances']} = {f['per_active_min']:.1f} per active minute")
    print(f"  cut-offs {f['cut_offs']} (by an equal or lower priority: "
          f"{f['cut_by_equal_or_lower']})")
    print(f"  stale (> {STALE_S:g} s late) {f['stale']}   repeats (3rd time in 60 s) "
          f"{f['repeats']}   most said: {f['most_said'][0]}x {f['most_said'][1]!r}")
    print(f"  steps whose position was not spoken: {len(f['position_not_spoken'])} "
          f"{f['position_not_spoken']}; only cut off: {len(f['position_cut'])} "
          f"{f['position_cut']}")
    print(f"  holds cut by a step change: {f['holds_cut_by_step_change']}")
    print(f"  'Sound on' spoke {f['sound_on_spoke']} time(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
