// roller companion display: our own code, no libraries. Data arrives over Server-Sent Events
// from the display server (which subscribes to the MQTT broker); commands go back as POSTs.
"use strict";

(function () {
  const TRACE_WINDOW_S = 30;   // seconds of speed shown in the trace
  const LIVE_STALE_S = 3;      // no live message for this long: the speed is unknown
  const $ = (id) => document.getElementById(id);

  // What the page must agree on with the roller, embedded by the display server from the
  // Python declarations (roller/verbs.py, roller/cues.py, the pipeline's band): no copies here.
  const CONTRACT = JSON.parse(($("contract") || {}).textContent || "{}");
  const VERBS = CONTRACT.verbs || [];
  const CUES = CONTRACT.cues || {};
  const BAND = CONTRACT.band || null;                 // {target_m_s, limit_m_s} or null
  const SPEECH_STALE_S = (CONTRACT.speech && CONTRACT.speech.stale_s) || 3;

  // id -> {status, coach, live, session, liveAt, trace: [[t, cm/s]]}; no prototype, so an id
  // such as "__proto__" or "constructor" is a key like any other
  const devices = Object.create(null);
  let current = null;          // the device shown
  let streamOpen = false;
  let brokerConnected = false;
  let soundOn = false;
  let audio = null;            // AudioContext, created on the "sound on" click
  let heardKey = "";           // the coach's last utterance this page has dealt with
  let lastCue = "";
  let lastTooFast = false;

  // What the page did, for people debugging it and for the end-to-end tests.
  // liveShown: [stroke_count, Date.now()] when a live message was drawn (the last 200).
  // spoken: sentences started; cancels: sentences cut for a more urgent one.
  const record = { spoken: [], beeps: [], tones: [], messages: 0, liveShown: [], cancels: 0 };
  window.rollerDisplay = record;

  const query = new URLSearchParams(location.search);
  // The roller asked for in the link (?device=) or picked last time; shown as soon as it appears.
  let wanted = query.get("device") || localStorage.getItem("roller.device") || "";

  // ---------------------------------------------------------------- pairing
  // Watching needs nothing; the buttons need the display's pairing token. It comes once in the
  // link roller display prints (?token=...), is kept by this browser, and leaves the address
  // bar at once (not bookmarked, shared or read over a shoulder). Sent as a Bearer header.
  const TOKEN_KEY = "roller.token";
  let token = "";
  try { token = localStorage.getItem(TOKEN_KEY) || ""; } catch (err) { token = ""; }
  if (query.has("token")) {
    token = query.get("token") || "";
    try { localStorage.setItem(TOKEN_KEY, token); } catch (err) { /* private mode: this visit */ }
    const rest = new URLSearchParams(location.search);
    rest.delete("token");
    const search = rest.toString();
    history.replaceState(history.state, "",
      location.pathname + (search ? "?" + search : "") + location.hash);
  }
  let paired = null;           // null: not known yet (the display has not answered)
  record.paired = null;

  function authHeaders() { return token ? { Authorization: "Bearer " + token } : {}; }

  function setPaired(yes) {
    paired = yes;
    record.paired = yes;
    document.body.dataset.paired = String(yes);
    $("pair-note").hidden = yes;
    if (!yes && token) {       // a replaced token: forget it, the new link brings the new one
      token = "";
      try { localStorage.removeItem(TOKEN_KEY); } catch (err) { /* nothing kept */ }
    }
  }

  // a tap on a button of an unpaired page: the line that says how to pair lights up
  // (the header's toast has no room on a phone when there are several rollers)
  let nudgeTimer = 0;
  function nudgePairNote() {
    const note = $("pair-note");
    note.dataset.nudged = "true";
    record.nudges = (record.nudges || 0) + 1;
    clearTimeout(nudgeTimer);
    nudgeTimer = setTimeout(() => { note.dataset.nudged = "false"; }, 2500);
  }

  async function checkPairing() {
    try {
      const res = await fetch("/api/pairing", { headers: authHeaders(), cache: "no-store" });
      if (res.ok) setPaired(!!(await res.json()).paired);
    } catch (err) { /* unreachable: the connection pill says so; asked again on reconnect */ }
  }

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
      d.coachAge = msg.received_at ? Math.max(0, Date.now() / 1000 - msg.received_at) : 0;
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
    record.device = id;        // for the History view (history.js)
    if (record.onDevice) record.onDevice(id);
    $("device").value = id;
    // another roller: what it said before is not news (it is too old to speak anyway)
    const d = devices[id];
    heardKey = d && d.coach ? speechKey(d.coach.speech) : "";
    lastCue = d && d.coach ? d.coach.cue : "";
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
    // a roller going offline changes what its last coach state means: render it again
    if (["all", "coach", "status", "session"].includes(what)) renderCoach(d);
    if (what === "all" || what === "live" || what === "session") renderLive(d);
  }

  function fmtS(s) { return Math.max(0, Math.round(s || 0)) + " s"; }

  // A roller that is offline is not coaching: its last retained coach state is history. After
  // a clean shutdown that state already says so (done, cue "shutdown", with the summary); after
  // a lost link it may still hold a live prompt, which is replaced by an offline notice (and
  // the last summary the session topic carries, if any). Nothing live is shown or spoken.
  function offlineView(d) {
    const c = d.coach;
    if (d.status !== "offline" || c.state === "done") return c;
    const last = c.step ? `It was at ${c.step.title}` : "It was not coaching";
    const summary = d.session && d.session.routine ? d.session.routine : null;
    return Object.assign({}, c, {
      state: "done", cue: "offline", step: null, hold: null, breath: null, too_fast: false,
      prompt: "The roller is offline.",
      detail: `${last} when it went offline; this page carries on when it is back.`,
      summary: summary, speech: null,
    });
  }

  function renderCoach(d) {
    if (!d.coach) return;
    const offline = d.status === "offline";
    const c = offlineView(d);
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
      $("step-title").textContent = offline ? "Roller offline"
        : c.state === "done" ? "Session over" : c.routine_title;
      $("side-badge").hidden = true;
    }
    $("main").dataset.state = c.state || "";
    $("main").dataset.offline = String(offline);
    $("prompt").textContent = c.prompt || "";
    $("detail").textContent = c.detail || "";
    $("prompt-box").dataset.cue = c.cue || "none";
    $("prompt-box").dataset.look = (CUES[c.cue] && CUES[c.cue].look) || "neutral";

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

    // progress: the step, and each side against the routine's dose for that side (rolling plus
    // its holds' minimum, side_targets_s)
    $("step-row").hidden = !step;
    $("step-bar").style.width = Math.round((c.step_progress || 0) * 100) + "%";
    // the dose on this muscle and side: rolling time, and holds of the hold window
    const dose = c.dose;
    $("step-time").textContent = !dose ? "" : dose.met ? "dose met"
      : `${Math.round(Math.min(dose.rolling_s, dose.rolling_target_s))}/${Math.round(dose.rolling_target_s)} s` +
        (dose.holds_target ? ` \u00b7 hold ${dose.holds}/${dose.holds_target}` : "");
    $("step-row").dataset.met = String(!!(dose && dose.met));
    for (const side of ["left", "right"]) {
      const done = (c.sides_s && c.sides_s[side]) || 0;
      const target = (c.side_targets_s && c.side_targets_s[side]) || 0;
      $(side + "-bar").style.width = (target > 0 ? Math.min(100, Math.round(done / target * 100)) : 0) + "%";
      $(side + "-time").textContent = `${Math.round(done)} / ${Math.round(target)} s`;
    }
    const band = bandOf(c);
    record.band = band;        // the History view draws the same band
    $("band-legend").textContent = band
      ? `green band: go slow (aim ${cm(band.target)}, max ${cm(band.limit)} cm/s)` : "";
    $("pause-btn").textContent = c.state === "paused" ? "Resume" : "Pause";
    $("pause-btn").dataset.verb = c.state === "paused" ? "resume" : "pause";
    // a button is enabled only when its command is possible in the session's state
    // (roller/coaching/session.py); pain always is: safety first
    const possible = offline ? [] : POSSIBLE[sessionState(d, c)] || [];
    for (const btn of document.querySelectorAll("#controls button[data-verb]")) {
      btn.disabled = btn.classList.contains("danger") ? false
        : !possible.includes(btn.dataset.verb);
    }
    renderSummary(c);
    fitText();
    if (!offline) speakAndCue(c, d.coachAge || 0);
  }

  // What each session state allows (Session.start/pause/resume/skip/stop refuse the rest).
  const POSSIBLE = { idle: ["start", "next"], running: ["pause", "next", "stop"],
                     paused: ["resume", "next", "stop"], finished: ["start"] };
  const FROM_COACH = { ready: "idle", active: "running", transition: "running",
                       paused: "paused", done: "finished" };

  // The session's state: its own message when it is about the session shown, else the coach's.
  function sessionState(d, c) {
    const s = d.session;
    if (s && s.state && s.session_id && s.session_id === c.session_id) return s.state;
    return FROM_COACH[c.state] || "idle";
  }

  // The go-slow band [cm/s]: the roller's own (in its coach state), else the server's.
  function bandOf(c) {
    if (c && c.speed_target_m_s && c.speed_limit_m_s) {
      return { target: c.speed_target_m_s, limit: c.speed_limit_m_s };
    }
    return BAND ? { target: BAND.target_m_s, limit: BAND.limit_m_s } : null;
  }

  // The prompt takes the room left on the screen; long sentences (a step's position) get
  // smaller type rather than running under the buttons.
  function fitText() {
    const box = $("prompt-box");
    box.style.fontSize = "";
    const base = parseFloat(getComputedStyle(box).fontSize);
    let scale = 1;
    while (box.scrollHeight > box.clientHeight + 1 && base * scale > 15) {
      scale *= 0.92;
      box.style.fontSize = (base * scale).toFixed(1) + "px";
    }
  }

  function cm(m_s) { return (m_s * 100).toFixed(1).replace(/\.0$/, ""); }

  function renderSummary(c) {
    const box = $("summary");
    const s = c.state === "done" ? c.summary : null;
    box.hidden = !s;
    if (!s) return;
    const reason = { completed: "Routine complete", stopped: "Session stopped", pain: "Stopped for pain",
                     idle: "Session ended after a long rest", shutdown: "Session saved at switch-off" };
    $("summary-title").textContent = reason[s.end_reason] || "Session summary";
    box.dataset.reason = s.end_reason || "";
    const left = s.sides_s.left || 0, right = s.sides_s.right || 0;
    const share = left + right > 0 ? `left ${Math.round(left / (left + right) * 100)}% / right ${Math.round(right / (left + right) * 100)}%` : "-";
    const rows = [
      ["Active time", mmss(s.active_s)],
      ["Left / right", `${fmtS(left)} / ${fmtS(right)} (${share})`],
      ["Strokes", String(s.strokes)],
      ["Mean speed", s.mean_speed_m_s == null ? "-" : cm(s.mean_speed_m_s) + " cm/s"],
      ["Too fast", `${s.too_fast_count} ${s.too_fast_count === 1 ? "time" : "times"}, ` +
        `${s.too_fast_s.toFixed(1)} s`],
      ["Holds", `${s.holds}, longest ${fmtS(s.longest_hold_s)}`],
    ];
    // the dose per muscle and side (rolling + holding, left / right): one compact row
    const doses = Object.entries(s.doses || {}).map(([muscle, sides]) => {
      const t = (side) => sides[side] ? Math.round(sides[side].rolling_s + sides[side].holding_s) : null;
      const lr = [t("left"), t("right")].filter((v) => v !== null);
      const figures = lr.length ? lr.join("/") : String(t("none") || 0);
      return `${muscle.split(" ")[0]} ${figures} s`;
    });
    // (after a pain stop the advice takes its room: the screen has space for one of them)
    if (doses.length && !s.advice) rows.push(["Dose L/R", doses.join(", ")]);
    if (s.advice) rows.push(["Advice", s.advice]);
    loadVerdict(current, c.session_id);
    const dl = $("summary-list");
    dl.textContent = "";
    for (const [k, v] of rows) {
      const dt = document.createElement("dt"); dt.textContent = k;
      const dd = document.createElement("dd"); dd.textContent = v;
      dl.append(dt, dd);
    }
  }

  // The closing words against the last sessions (display server, roller/display/progress.py):
  // shown under the summary's title and spoken once, after what the coach says. The session
  // reaches the display's history with the roller's `session` message, which may come a
  // moment after the coach's: asked again a few times.
  let verdictFor = "";
  function loadVerdict(device, sessionId) {
    const key = device + "|" + sessionId;
    if (!sessionId || key === verdictFor) return;
    verdictFor = key;
    $("summary-verdict").textContent = "";
    const ask = async (tries) => {
      if (verdictFor !== key) return;
      try {
        const res = await fetch(`/api/history/verdict?device=${encodeURIComponent(device)}` +
                                `&id=${encodeURIComponent(sessionId)}`, { cache: "no-store" });
        if (res.status === 404 && tries > 0) { setTimeout(() => ask(tries - 1), 700); return; }
        if (!res.ok || verdictFor !== key) return;
        const v = await res.json();
        $("summary-verdict").textContent = v.text;
        record.verdict = v.text;
        const fresh = devices[device] && devices[device].status !== "offline" && (devices[device].coachAge || 0) < 60;
        if (fresh) say(v.text, 1, 0, Date.now() + 30000);
      } catch (err) { /* the summary stands without it */ }
    };
    ask(8);
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
      // the colour follows the number shown against the band, not the (delayed) alert
      const band = bandOf(d.coach);
      box.dataset.band = !band ? "" : d.live.speed_m_s > band.limit ? "over" : "in";
      $("strokes").textContent = sessionStrokes(d);
      $("phase").textContent = d.live.calibrated === false ? "calibrating\u2026" : d.live.phase;
      // the live alert sounds at once, with the too-fast cue's tone (the coach's prompt follows)
      const tone = CUES.too_fast && CUES.too_fast.tone;
      // ... only while a session is under way: nothing sounds before the start or after the end
      const coaching = d.coach && ["active", "transition"].includes(d.coach.state);
      if (d.live.too_fast && !lastTooFast && tone && coaching) beep(tone);
      lastTooFast = !!d.live.too_fast;
    } else {
      $("speed").textContent = "--";
      box.dataset.tooFast = "";
      box.dataset.band = "";
      $("phase").textContent = d.live ? "no data" : "";
    }
    drawTrace(d, now);
  }

  // The session's strokes (the `session` message, the same figure the summary and the
  // history give), not the pipeline's count since it started; 0 before a session.
  function sessionStrokes(d) {
    const s = d.session, c = d.coach;
    if (s && typeof s.strokes === "number" && (!c || !c.session_id || s.session_id === c.session_id)) {
      return String(s.strokes);
    }
    return String(c && c.session_id && typeof c.strokes === "number" ? c.strokes : 0);
  }

  function drawTrace(d, now) {
    const canvas = $("trace");
    // draw at the size the layout gives it, so lines are not stretched
    const ratio = window.devicePixelRatio || 1;
    const cw = Math.round(canvas.clientWidth * ratio), ch = Math.round(canvas.clientHeight * ratio);
    if (cw > 0 && ch > 0 && (canvas.width !== cw || canvas.height !== ch)) {
      canvas.width = cw; canvas.height = ch;
    }
    const ctx = canvas.getContext("2d");
    const w = canvas.width, h = canvas.height;
    const band = bandOf(d.coach);
    const target = band ? band.target * 100 : 0;
    const limit = band ? band.limit * 100 : 0;
    let top = Math.max(limit * 2, 1);
    for (const [, v] of d.trace) top = Math.max(top, v * 1.25);   // room for the peak's label
    top = Math.ceil(top);
    const y = (v) => h - (v / top) * h;
    const x = (t) => w - ((now - t) / TRACE_WINDOW_S) * w;
    ctx.clearRect(0, 0, w, h);
    if (band) {
      ctx.fillStyle = "#0f3d22";                    // the go-slow band: 0 .. limit
      ctx.fillRect(0, y(limit), w, h - y(limit));
      ctx.fillStyle = "#3d0f0f";                    // too fast: above the limit
      ctx.fillRect(0, 0, w, y(limit));
      ctx.strokeStyle = "#27d366"; ctx.lineWidth = 2 * ratio; ctx.setLineDash([8 * ratio, 6 * ratio]);
      ctx.beginPath(); ctx.moveTo(0, y(target)); ctx.lineTo(w, y(target)); ctx.stroke();
      ctx.strokeStyle = "#ff4545"; ctx.setLineDash([]);
      ctx.beginPath(); ctx.moveTo(0, y(limit)); ctx.lineTo(w, y(limit)); ctx.stroke();
    }
    ctx.setLineDash([]);
    ctx.strokeStyle = "#ffffff"; ctx.lineWidth = 3 * ratio;
    ctx.beginPath();
    d.trace.forEach(([t, v], i) => (i ? ctx.lineTo(x(t), y(v)) : ctx.moveTo(x(t), y(v))));
    ctx.stroke();
    // the scale: cm/s at the band's lines and the top, and the window's length; the peak of
    // the window marked with its figure (the top always leaves room above it)
    const font = Math.round(Math.min(13 * ratio, Math.max(9 * ratio, h / 9)));
    ctx.font = `${font}px sans-serif`;
    ctx.fillStyle = "#c8c8c8";
    ctx.textBaseline = "middle";
    const ticks = [0, top];
    if (band) ticks.push(target, limit);
    for (const v of ticks) {
      const yy = Math.min(Math.max(y(v), font / 2), h - font / 2);
      ctx.fillText(v === top ? `${top.toFixed(0)} cm/s` : cm(v / 100), 4 * ratio, yy);
    }
    ctx.textAlign = "right";
    ctx.fillText(`last ${TRACE_WINDOW_S} s`, w - 4 * ratio, font / 2 + 2 * ratio);
    let peak = null;
    for (const p of d.trace) if (!peak || p[1] > peak[1]) peak = p;
    record.tracePeak = peak ? peak[1] : null;
    if (peak && peak[1] > 0.5) {
      const px = x(peak[0]), py = y(peak[1]);
      ctx.fillStyle = "#ffffff";
      ctx.beginPath(); ctx.arc(px, py, 4 * ratio, 0, 2 * Math.PI); ctx.fill();
      ctx.textAlign = px > w / 2 ? "right" : "left";
      ctx.textBaseline = "bottom";
      ctx.fillText(`peak ${peak[1].toFixed(1)}`, px + (px > w / 2 ? -6 : 6) * ratio,
                   Math.max(py - 2 * ratio, font));
    }
    ctx.textAlign = "left";
    ctx.textBaseline = "alphabetic";
  }

  // ---------------------------------------------------------------- sound
  // The page speaks only what the coach decided to say (c.speech, roller/speech.py), once,
  // while it is fresh; it cuts a sentence only for a more urgent one. Tones come from the
  // cue table, for what must be instant.
  function speechKey(sp) { return sp ? `${sp.id}|${sp.decided_s}|${sp.text}` : ""; }

  // Tests run a stand-in voice faster than real time and tell the page by how much.
  function timeScale() { return window.__rollerTimeScale || 1; }
  const CHIME_MS = 800;        // the chime's three notes; no sentence starts over them
  // only a safety or slow-down sentence cuts one being said (as the coach decides)
  const URGENT = (CUES.too_fast && CUES.too_fast.priority) || Infinity;

  function speakAndCue(c, ageS) {
    if (c.cue !== lastCue) {
      const tone = CUES[c.cue] && CUES[c.cue].tone;
      if (tone === "chime") chime();
      else if (tone) beep(tone);
      lastCue = c.cue;
    }
    const sp = c.speech;
    const key = speechKey(sp);
    if (!sp || key === heardKey) return;
    heardKey = key;
    const lateS = Math.max(0, (c.t_s || 0) - (sp.decided_s || 0)) + ageS;
    if (lateS > SPEECH_STALE_S) return;   // its moment has passed (e.g. a replayed state)
    say(sp.text, sp.priority || 0, sp.duration_s,
        Date.now() + (SPEECH_STALE_S - lateS) * 1000 / timeScale(), sp.id, sp.replaces_id);
  }

  // One voice channel: a sentence, or a chime, at a time. A sentence is cut only for a more
  // urgent one (or one the coach says makes it obsolete); others wait for its end (the voice's
  // end or error event) while still fresh; a chime waits for the voice too, and the next
  // sentence waits for the chime.
  let talking = null;          // {priority, id, until (ms)}: the sentence being spoken
  let waiting = [];            // sentences waiting: {text, priority, durationS, deadlineMs, id}
  let quietUntil = 0;          // ms: a chime sounds until then
  let chimeDeadline = 0;       // ms: a chime waits for the voice until then (0: none waits)
  let wakeTimer = 0;

  function say(text, priority, durationS, deadlineMs, id, replacesId) {
    if (!soundOn || !text) return;
    const item = { text, priority, durationS, deadlineMs: deadlineMs || Date.now() + 3000, id };
    if (talking) {
      // the coach decided its words after what this page said by itself on "Sound on"
      const obsolete = (replacesId != null && replacesId === talking.id) ||
        (talking.id == null && id != null);
      const urgent = priority > talking.priority && priority >= URGENT;
      if (!urgent && !obsolete) {
        waiting.push(item);
        return;
      }
      if (talking.id == null) record.echoCuts = (record.echoCuts || 0) + 1;
      else record.cancels += 1;
      talking = null;
      if ("speechSynthesis" in window) window.speechSynthesis.cancel();
    }
    waiting.push(item);
    next();
  }

  function chime() {
    if (!soundOn || !audio) return;
    chimeDeadline = Date.now() + 3000 / timeScale();
    next();
  }

  // whatever may sound now: a waiting chime first, then the most urgent fresh sentence
  function next() {
    const now = Date.now();
    if (talking && now >= talking.until) talking = null;   // a voice that never said its end
    if (talking) return;
    if (now < quietUntil) { wake(quietUntil - now); return; }
    if (chimeDeadline) {
      const fresh = now <= chimeDeadline;
      chimeDeadline = 0;
      if (fresh) {
        beep("chime");
        quietUntil = now + CHIME_MS / timeScale();
        wake(CHIME_MS / timeScale());
        return;
      }
    }
    waiting = waiting.filter((w) => now <= w.deadlineMs);
    if (!waiting.length) return;
    waiting.sort((a, b) => b.priority - a.priority);
    start(waiting.shift());
  }

  function wake(ms) {
    clearTimeout(wakeTimer);
    wakeTimer = setTimeout(next, Math.max(0, ms) + 5);
  }

  function start(item) {
    const words = item.text.trim().split(/\s+/).length;
    const estS = Math.max(item.durationS || 0, words / 2.5, 0.8);
    // the voice's end event ends it; this only frees a voice that never reports (+3 s: slow)
    const mine = { priority: item.priority, id: item.id,
                   until: Date.now() + (estS * 2 + 3) * 1000 / timeScale() };
    talking = mine;
    record.spoken.push(item.text);
    if (!("speechSynthesis" in window)) { talking = null; return; }
    const u = new SpeechSynthesisUtterance(item.text);
    u.rate = 0.95;
    u.onend = u.onerror = () => {
      if (talking !== mine) return;
      talking = null;
      next();
    };
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
    record.tones.push([kind, Date.now()]);
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
      // the current prompt, once: what the coach has already said is not said again
      const d = devices[current];
      const c = d && d.coach ? offlineView(d) : null;
      if (d && d.coach) heardKey = speechKey(d.coach.speech);
      // its spoken form when the coach is saying it, else the prompt without bracketed asides
      const sp = c && c.speech && c.speech.kind === c.cue ? c.speech.text : "";
      const words = c ? sp || c.prompt.replace(/\s*\([^)]*\)/g, "") : "Sound is on.";
      say(words, c && CUES[c.cue] ? CUES[c.cue].priority : 0);
    } else {
      talking = null;
      waiting = [];
      chimeDeadline = 0;
      if ("speechSynthesis" in window) window.speechSynthesis.cancel();
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
      if (VERBS.length && !VERBS.includes(verb)) { toast(`not sent: unknown command ${verb}`); return; }
      if (!current) { toast("no roller to send to yet"); return; }
      if (paired === false) {
        toast(verb === "pain" ? "not sent: pair this page first \u2013 stop rolling anyway"
                              : "not sent: pair this page first (see below)");
        nudgePairNote();
        return;
      }
      try {
        const res = await fetch("/api/cmd/" + verb, {
          method: "POST",
          headers: Object.assign({ "Content-Type": "application/json" }, authHeaders()),
          body: JSON.stringify({ device: current }),
        });
        const body = await res.json();
        if (res.status === 401) setPaired(false);
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
    es.onopen = () => { streamOpen = true; renderConnection(); checkPairing(); };
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
  setInterval(() => {
    if (current && devices[current]) renderLive(devices[current]);
    if (waiting.length || chimeDeadline) next();   // a voice that never reports its end
  }, 500);
  window.addEventListener("resize", fitText);
})();
