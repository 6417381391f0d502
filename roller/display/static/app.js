// roller companion display: our own code, no libraries. Data arrives over Server-Sent Events
// from the display server (which subscribes to the MQTT broker); commands go back as POSTs.
"use strict";

(function () {
  const TRACE_WINDOW_S = 30;   // seconds of speed shown in the trace
  const LIVE_STALE_S = 3;      // no live message for this long: the speed is unknown
  const $ = (id) => document.getElementById(id);

  const devices = {};          // id -> {status, coach, live, session, liveAt, trace: [[t, cm/s]]}
  let current = null;          // the device shown
  let streamOpen = false;
  let brokerConnected = false;
  let soundOn = false;
  let audio = null;            // AudioContext, created on the "sound on" click
  let lastSpokenKey = "";
  let lastCue = "";
  let lastTooFast = false;

  // What the page did, for people debugging it and for the end-to-end tests.
  // liveShown: [stroke_count, Date.now()] when a live message was drawn (the last 200).
  const record = { spoken: [], beeps: [], messages: 0, liveShown: [] };
  window.rollerDisplay = record;

  const query = new URLSearchParams(location.search);
  // The roller asked for in the link (?device=) or picked last time; shown as soon as it appears.
  let wanted = query.get("device") || localStorage.getItem("roller.device") || "";

  function device(id) {
    if (!devices[id]) {
      devices[id] = { status: null, coach: null, live: null, session: null, liveAt: 0, trace: [] };
      refreshPicker();
    }
    return devices[id];
  }

  // ---------------------------------------------------------------- incoming messages
  function onMessage(msg) {
    record.messages += 1;
    if (msg.type === "config") {
      // the server's [display] device: used when neither the link nor this browser chose one
      if (!wanted && msg.device) {
        wanted = msg.device;
        if (devices[wanted] && current !== wanted) choose(wanted);
      }
      return;
    }
    if (msg.type === "broker") {
      brokerConnected = msg.connected;
      renderConnection();
      return;
    }
    if (msg.type !== "mqtt") return;
    const d = device(msg.device);
    const now = performance.now() / 1000;
    if (msg.topic === "live" && msg.payload && typeof msg.payload === "object") {
      // a replayed message may be old (the roller went quiet): date it by when the server got it
      const age = msg.received_at ? Math.max(0, Date.now() / 1000 - msg.received_at) : 0;
      d.live = msg.payload;
      d.liveAt = now - age;
      if (age < LIVE_STALE_S) d.trace.push([now, (msg.payload.speed_m_s || 0) * 100]);
      while (d.trace.length && d.trace[0][0] < now - TRACE_WINDOW_S) d.trace.shift();
    } else if (msg.topic === "coach") {
      d.coach = msg.payload && typeof msg.payload === "object" ? msg.payload : null;
    } else if (msg.topic === "status") {
      d.status = msg.payload;
    } else if (msg.topic === "session") {
      d.session = msg.payload;
    } else if (msg.topic === "error") {
      // e.g. a refused command ("cannot pause: the session is idle"): say so where it was tapped
      if (msg.device === current && msg.payload && msg.payload.message) toast(msg.payload.message);
      return;
    } else {
      return;
    }
    if (current === null || !devices[current] || (msg.device === wanted && current !== wanted)) {
      choose(pickDefault());
    }
    else if (msg.device === current) render(msg.topic);
    if (msg.topic === "live" && msg.device === current) {
      record.liveShown.push([msg.payload.stroke_count, Date.now()]);
      if (record.liveShown.length > 200) record.liveShown.shift();
    }
    if (msg.topic === "status") { refreshPicker(); renderConnection(); }
  }

  function pickDefault() {
    const ids = Object.keys(devices).sort();
    if (wanted && devices[wanted]) return wanted;
    const online = ids.filter((id) => devices[id].status === "online");
    return online[0] || ids[0] || null;
  }

  function choose(id) {
    if (id === null) return;
    current = id;
    $("device").value = id;
    lastSpokenKey = "";
    lastCue = "";
    render("all");
    renderConnection();
  }

  function refreshPicker() {
    const ids = Object.keys(devices).sort();
    const select = $("device");
    const have = Array.from(select.options).map((o) => o.value).join(",");
    if (have !== ids.join(",")) {
      select.textContent = "";
      for (const id of ids) {
        const opt = document.createElement("option");
        opt.value = id;
        opt.textContent = id;
        select.appendChild(opt);
      }
      if (current) select.value = current;
    }
    for (const opt of select.options) {
      const st = devices[opt.value] && devices[opt.value].status;
      opt.textContent = opt.value + (st === "offline" ? " (offline)" : "");
    }
    $("device-picker").hidden = ids.length < 2;
    $("device-name").textContent = ids.length === 1 ? ids[0] : "";
  }

  // ---------------------------------------------------------------- rendering
  function renderConnection() {
    const pill = $("conn");
    const d = current && devices[current];
    let text, level;
    if (!streamOpen) { text = "reconnecting to the display\u2026"; level = "bad"; }
    else if (!brokerConnected) { text = "broker offline, retrying\u2026"; level = "bad"; }
    else if (!d) { text = "waiting for a roller\u2026"; level = "warn"; }
    else if (d.status === "offline") { text = "roller offline"; level = "bad"; }
    else { text = "connected"; level = "ok"; }
    pill.textContent = text;
    pill.dataset.level = level;
  }

  function render(what) {
    const d = devices[current];
    if (!d) return;
    if (what === "all" || what === "coach") renderCoach(d);
    if (what === "all" || what === "live") renderLive(d);
  }

  function fmtS(s) { return Math.max(0, Math.round(s || 0)) + " s"; }

  function renderCoach(d) {
    const c = d.coach;
    if (!c) return;
    const step = c.step;
    if (step) {
      $("step-line").textContent = `Step ${c.step_index + 1} of ${c.step_count} \u00b7 ${c.routine_title}` +
        (step.prop === "ball" ? " \u00b7 with a ball" : "");
      $("step-title").textContent = step.title;
      const badge = $("side-badge");
      badge.hidden = step.side === "none";
      badge.textContent = step.side.toUpperCase();
    } else {
      $("step-line").textContent = c.routine_title + (c.state === "ready" ? " \u00b7 ready" : "");
      $("step-title").textContent = c.state === "done" ? "Session over" : c.routine_title;
      $("side-badge").hidden = true;
    }
    $("main").dataset.state = c.state || "";
    $("prompt").textContent = c.prompt || "";
    $("detail").textContent = c.detail || "";
    $("prompt-box").dataset.cue = c.cue || "none";

    // hold countdown with the breathing rhythm
    const hold = $("hold");
    if (c.hold) {
      hold.hidden = false;
      const remaining = c.hold.remaining_s;
      const reached = remaining <= 0;
      $("hold-count").textContent = reached ? Math.round(c.hold.elapsed_s) : Math.ceil(remaining);
      $("hold-label").textContent = reached
        ? `held ${Math.round(c.hold.elapsed_s)} s: ${Math.round(c.hold.min_s)}-${Math.round(c.hold.max_s)} s is plenty`
        : `seconds until ${Math.round(c.hold.min_s)} s`;
      $("breath").textContent = c.breath === "in" ? "Breathe in" : c.breath === "out" ? "Breathe out" : "";
      hold.dataset.breath = c.breath || "";
      hold.dataset.reached = String(reached);
    } else {
      hold.hidden = true;
    }

    // progress: the step, and each side against the routine's target for that side
    $("step-row").hidden = !step;
    $("step-bar").style.width = Math.round((c.step_progress || 0) * 100) + "%";
    $("step-time").textContent = `${Math.round(c.step_active_s || 0)} / ${Math.round(c.step_target_s || 0)} s`;
    for (const side of ["left", "right"]) {
      const done = (c.sides_s && c.sides_s[side]) || 0;
      const target = (c.side_targets_s && c.side_targets_s[side]) || 0;
      $(side + "-bar").style.width = (target > 0 ? Math.min(100, Math.round(done / target * 100)) : 0) + "%";
      $(side + "-time").textContent = `${Math.round(done)} / ${Math.round(target)} s`;
    }
    if (c.speed_target_m_s && c.speed_limit_m_s) {
      $("band-legend").textContent = `green band: go slow (aim ${cm(c.speed_target_m_s)}, ` +
        `max ${cm(c.speed_limit_m_s)} cm/s)`;
    }
    $("pause-btn").textContent = c.state === "paused" ? "Resume" : "Pause";
    $("pause-btn").dataset.verb = c.state === "paused" ? "resume" : "pause";
    renderSummary(c);
    speakAndCue(c);
  }

  function cm(m_s) { return (m_s * 100).toFixed(1).replace(/\.0$/, ""); }

  function renderSummary(c) {
    const box = $("summary");
    const s = c.state === "done" ? c.summary : null;
    box.hidden = !s;
    if (!s) return;
    const reason = { completed: "Routine complete", stopped: "Session stopped", pain: "Stopped for pain" };
    $("summary-title").textContent = reason[s.end_reason] || "Session summary";
    const left = s.sides_s.left || 0, right = s.sides_s.right || 0;
    const share = left + right > 0 ? `left ${Math.round(left / (left + right) * 100)}% / right ${Math.round(right / (left + right) * 100)}%` : "-";
    const rows = [
      ["Active time", mmss(s.active_s)],
      ["Left / right", `${fmtS(left)} / ${fmtS(right)} (${share})`],
      ["Strokes", String(s.strokes)],
      ["Mean speed", s.mean_speed_m_s == null ? "-" : cm(s.mean_speed_m_s) + " cm/s"],
      ["Too fast", `${s.too_fast_count} times, ${s.too_fast_s.toFixed(1)} s`],
      ["Holds", `${s.holds}, longest ${fmtS(s.longest_hold_s)}`],
    ];
    if (s.advice) rows.push(["Advice", s.advice]);
    const dl = $("summary-list");
    dl.textContent = "";
    for (const [k, v] of rows) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      dl.append(dt, dd);
    }
  }

  function mmss(s) {
    s = Math.round(s || 0);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function renderLive(d) {
    const now = performance.now() / 1000;
    const fresh = d.live && now - d.liveAt < LIVE_STALE_S;
    const box = $("speed-box");
    if (fresh) {
      $("speed").textContent = (d.live.speed_m_s * 100).toFixed(1);
      box.dataset.tooFast = String(!!d.live.too_fast);
      $("strokes").textContent = d.live.stroke_count;
      $("phase").textContent = d.live.calibrated === false ? "calibrating\u2026" : d.live.phase;
      if (d.live.too_fast && !lastTooFast) beep("too_fast");
      lastTooFast = !!d.live.too_fast;
    } else {
      $("speed").textContent = "--";
      box.dataset.tooFast = "";
      $("phase").textContent = d.live ? "no data" : "";
    }
    drawTrace(d, now);
  }

  function drawTrace(d, now) {
    const canvas = $("trace");
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    const c = d.coach || {};
    const target = (c.speed_target_m_s || 0.025) * 100;
    const limit = (c.speed_limit_m_s || 0.05) * 100;
    let top = limit * 2;
    for (const [, v] of d.trace) top = Math.max(top, v * 1.1);
    const y = (v) => h - (v / top) * h;
    const x = (t) => w - ((now - t) / TRACE_WINDOW_S) * w;
    ctx.clearRect(0, 0, w, h);
    ctx.fillStyle = "#0f3d22";                      // the go-slow band: 0 .. limit
    ctx.fillRect(0, y(limit), w, h - y(limit));
    ctx.fillStyle = "#3d0f0f";                      // too fast: above the limit
    ctx.fillRect(0, 0, w, y(limit));
    ctx.strokeStyle = "#27d366"; ctx.lineWidth = 2; ctx.setLineDash([8, 6]);
    ctx.beginPath(); ctx.moveTo(0, y(target)); ctx.lineTo(w, y(target)); ctx.stroke();
    ctx.strokeStyle = "#ff4545"; ctx.setLineDash([]);
    ctx.beginPath(); ctx.moveTo(0, y(limit)); ctx.lineTo(w, y(limit)); ctx.stroke();
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 4;
    ctx.beginPath();
    d.trace.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
  }

  // ---------------------------------------------------------------- sound
  function speakAndCue(c) {
    const key = (c.cue || "") + "|" + (c.prompt || "");
    if (c.cue !== lastCue) {
      if (c.cue === "too_fast") beep("too_fast");
      else if (c.cue === "hold_reached") beep("hold_end");
      else if (c.cue === "routine_done" || c.cue === "switch_sides" || c.cue === "step_done") beep("chime");
      lastCue = c.cue;
    }
    if (key !== lastSpokenKey) {
      lastSpokenKey = key;
      speak(c.prompt);
    }
  }

  function speak(text) {
    if (!soundOn || !text) return;
    record.spoken.push(text);
    if (!("speechSynthesis" in window)) return;
    const u = new SpeechSynthesisUtterance(text);
    u.rate = 0.95;
    window.speechSynthesis.cancel();   // the newest prompt matters, not a queue of old ones
    window.speechSynthesis.speak(u);
  }

  const lastBeepAt = {};
  function beep(kind) {
    if (!soundOn || !audio) return;
    // the live flag and the coach's prompt both announce a too-fast pass: one beep is enough
    const t = performance.now();
    if (lastBeepAt[kind] && t - lastBeepAt[kind] < 1500) return;
    lastBeepAt[kind] = t;
    record.beeps.push(kind);
    const tones = { too_fast: [[880, 0, 0.12], [880, 0.18, 0.12]],
                    hold_end: [[660, 0, 0.25], [990, 0.3, 0.4]],
                    chime: [[523, 0, 0.2], [659, 0.2, 0.2], [784, 0.4, 0.35]] }[kind] || [];
    const t0 = audio.currentTime + 0.02;
    for (const [freq, at, len] of tones) {
      const osc = audio.createOscillator();
      const gain = audio.createGain();
      osc.frequency.value = freq;
      osc.type = "sine";
      gain.gain.setValueAtTime(0.0001, t0 + at);
      gain.gain.exponentialRampToValueAtTime(0.4, t0 + at + 0.02);
      gain.gain.exponentialRampToValueAtTime(0.0001, t0 + at + len);
      osc.connect(gain).connect(audio.destination);
      osc.start(t0 + at);
      osc.stop(t0 + at + len + 0.05);
    }
  }

  $("sound").addEventListener("click", () => {
    soundOn = !soundOn;
    const btn = $("sound");
    btn.setAttribute("aria-pressed", String(soundOn));
    btn.textContent = soundOn ? "Sound off" : "Sound on";
    if (soundOn) {
      // Browsers allow audio only after a user gesture: this click is it.
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!audio && Ctx) audio = new Ctx();
      if (audio && audio.state === "suspended") audio.resume();
      lastSpokenKey = "";
      const d = devices[current];
      speak(d && d.coach ? d.coach.prompt : "Sound is on.");
    } else if ("speechSynthesis" in window) {
      window.speechSynthesis.cancel();
    }
  });

  // ---------------------------------------------------------------- commands
  let toastTimer = 0;
  function toast(text) {
    $("toast").textContent = text;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { $("toast").textContent = ""; }, 4000);
  }

  for (const btn of document.querySelectorAll("#controls button[data-verb]")) {
    btn.addEventListener("click", async () => {
      const verb = btn.dataset.verb;
      if (!current) { toast("no roller to send to yet"); return; }
      try {
        const res = await fetch("/api/cmd/" + verb, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ device: current }),
        });
        const body = await res.json();
        toast(res.ok ? `sent: ${verb}` : `not sent: ${body.error}`);
      } catch (err) {
        toast("not sent: the display server is unreachable");
      }
    });
  }

  $("device").addEventListener("change", (e) => {
    wanted = e.target.value;
    localStorage.setItem("roller.device", wanted);
    choose(e.target.value);
  });

  // ---------------------------------------------------------------- the stream
  function connect() {
    const es = new EventSource("/events");
    es.onopen = () => { streamOpen = true; renderConnection(); };
    es.onerror = () => {
      streamOpen = false;
      renderConnection();
      // EventSource retries by itself while CONNECTING; if the browser gave up, start over.
      if (es.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
    };
    es.onmessage = (e) => {
      try { onMessage(JSON.parse(e.data)); } catch (err) { console.error("bad message", err); }
    };
  }
  connect();
  // keep the trace moving and notice a silent roller even when no message arrives
  setInterval(() => { if (current && devices[current]) renderLive(devices[current]); }, 500);
})();
