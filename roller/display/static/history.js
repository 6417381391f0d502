// roller companion display: the History view. Our own code, no libraries.
// The display server keeps the sessions it heard each roller finish (roller/display/
// session_log.py); this page asks for one roller's with GET /api/history?device=ID (one small
// query: a row per session) and, when a session is tapped, for its chart and steps with
// GET /api/history/session. Charts are SVG drawn at the size the layout gives them.
"use strict";

(function () {
  const $ = (id) => document.getElementById(id);
  const SVG = "http://www.w3.org/2000/svg";
  const record = window.rollerDisplay || {};
  const CONTRACT = JSON.parse(($("contract") || {}).textContent || "{}");
  const DAY_MS = 86400000;
  const WEEKS = 12;             // the calendar and the weekly charts
  const RECENT_DAYS = 28;       // the tiles and the per-muscle totals
  const COLOURS = { band: "#27d366", bandDim: "#0f3d22", limit: "#ff4545", hold: "#4fb3ff",
                    tooFast: "#ff4545", speed: "#ffffff", stroke: "#ffd400", left: "#4fb3ff",
                    right: "#ffae00", slow: "#27d366", grid: "#333", text: "#b8b8b8" };

  let open = false;
  let data = null;              // {device, columns, rows: [{...}]}
  let shownSession = null;

  // ---------------------------------------------------------------- opening and loading
  $("history-btn").addEventListener("click", () => (open ? close() : show()));
  $("hist-back").addEventListener("click", () => showOverview());

  function show() {
    open = true;
    document.body.dataset.view = "history";
    $("history").hidden = false;
    $("history-btn").setAttribute("aria-pressed", "true");
    $("history-btn").textContent = "Coaching";
    showOverview();
    load();
  }

  function close() {
    open = false;
    document.body.dataset.view = "";
    $("history").hidden = true;
    $("history-btn").setAttribute("aria-pressed", "false");
    $("history-btn").textContent = "History";
  }

  function band() {
    const b = record.band || (CONTRACT.band && { target: CONTRACT.band.target_m_s,
                                                 limit: CONTRACT.band.limit_m_s });
    return b || { target: 0.025, limit: 0.05 };
  }

  async function load() {
    const t0 = performance.now();
    $("history").dataset.ready = "false";
    const device = record.device || "";
    let body;
    try {
      const res = await fetch("/api/history" + (device ? "?device=" + encodeURIComponent(device) : ""),
                              { cache: "no-store" });
      body = await res.json();
      if (!res.ok) throw new Error(body.error || res.status);
    } catch (err) {
      $("hist-note").textContent = "could not load the history: " + err.message;
      return;
    }
    const t1 = performance.now();
    const cols = body.columns;
    data = { device: body.device, rows: body.rows.map((r) => {
      const o = {};
      cols.forEach((c, i) => { o[c] = r[i]; });
      return o;
    }) };
    renderOverview();
    const t2 = performance.now();
    record.historyLoad = { fetch_ms: t1 - t0, render_ms: t2 - t1, total_ms: t2 - t0,
                           rows: data.rows.length };
    $("history").dataset.ready = "true";
  }

  // ---------------------------------------------------------------- figures
  function dayKey(ms) {
    const d = new Date(ms);
    return d.getFullYear() + "-" + String(d.getMonth() + 1).padStart(2, "0") + "-" +
      String(d.getDate()).padStart(2, "0");
  }
  function startOfDay(ms) { const d = new Date(ms); d.setHours(0, 0, 0, 0); return d.getTime(); }
  function startOfWeek(ms) {             // Monday
    const d = new Date(startOfDay(ms));
    d.setDate(d.getDate() - ((d.getDay() + 6) % 7));
    return d.getTime();
  }
  function addDays(ms, n) { const d = new Date(ms); d.setDate(d.getDate() + n); return d.getTime(); }
  function minutes(s) { return s / 60; }
  function pct(x) { return x == null ? "-" : Math.round(x * 100) + "%"; }
  function slowShare(rows) {
    let rolling = 0, fast = 0;
    for (const r of rows) { rolling += r.rolling_s; fast += Math.min(r.too_fast_s, r.rolling_s); }
    return rolling > 0 ? (rolling - fast) / rolling : null;
  }
  function leftShare(rows) {
    let l = 0, r = 0;
    for (const x of rows) { l += x.left_s; r += x.right_s; }
    return l + r > 0 ? l / (l + r) : null;
  }

  function byDay(rows) {
    const days = new Map();
    for (const r of rows) {
      const k = dayKey(r.started_unix_s * 1000);
      if (!days.has(k)) days.set(k, []);
      days.get(k).push(r);
    }
    return days;
  }

  // consecutive days with a session, up to today (or yesterday, when today has none yet)
  function streak(days, now) {
    let day = startOfDay(now);
    if (!days.has(dayKey(day))) day = addDays(day, -1);
    let n = 0;
    while (days.has(dayKey(day))) { n += 1; day = addDays(day, -1); }
    return n;
  }

  // ---------------------------------------------------------------- the overview
  function renderOverview() {
    const rows = data.rows;
    const now = Date.now();
    $("hist-device").textContent = data.device ? "\u00b7 " + data.device : "";
    $("hist-note").textContent = rows.length
      ? `${rows.length} session${rows.length === 1 ? "" : "s"} heard by this display`
      : "No sessions yet: finished sessions appear here.";
    const days = byDay(rows);
    const recent = rows.filter((r) => r.started_unix_s * 1000 >= addDays(startOfDay(now), -RECENT_DAYS + 1));
    const week = rows.filter((r) => r.started_unix_s * 1000 >= startOfWeek(now));
    $("hist-streak").textContent = String(streak(days, now));
    $("hist-week-min").textContent = String(Math.round(minutes(week.reduce((a, r) => a + r.active_s, 0))));
    $("hist-slow").textContent = pct(slowShare(recent));
    const ls = leftShare(recent);
    $("hist-balance-now").textContent = ls == null ? "-" : `${Math.round(ls * 100)} / ${100 - Math.round(ls * 100)}`;
    drawCalendar(days, now);
    const weeks = weekly(rows, now);
    drawWeeks(weeks);
    drawDoses(recent);
    drawBalance(weeks);
    drawList(rows);
  }

  function weekly(rows, now) {
    const first = addDays(startOfWeek(now), -7 * (WEEKS - 1));
    const weeks = [];
    for (let i = 0; i < WEEKS; i++) weeks.push({ start: addDays(first, 7 * i), rows: [] });
    for (const r of rows) {
      const ms = r.started_unix_s * 1000;
      if (ms < first) continue;
      const i = Math.min(WEEKS - 1, Math.floor((startOfWeek(ms) - first) / (7 * DAY_MS) + 0.5));
      weeks[i].rows.push(r);
    }
    for (const w of weeks) {
      w.minutes = minutes(w.rows.reduce((a, r) => a + r.active_s, 0));
      w.left = leftShare(w.rows);
      w.slow = slowShare(w.rows);
    }
    return weeks;
  }

  function svgSize(svg, aspect, minH, maxH) {
    const w = Math.max(200, Math.round(svg.clientWidth || svg.parentNode.clientWidth || 300));
    const h = Math.round(Math.min(maxH, Math.max(minH, w * aspect)));
    svg.setAttribute("viewBox", `0 0 ${w} ${h}`);
    svg.setAttribute("height", String(h));
    svg.textContent = "";
    return [w, h];
  }

  function el(parent, name, attrs, text) {
    const e = document.createElementNS(SVG, name);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    if (text != null) e.textContent = text;
    parent.appendChild(e);
    return e;
  }

  function shortDate(ms) {
    return new Date(ms).toLocaleDateString(undefined, { day: "numeric", month: "short" });
  }

  function drawCalendar(days, now) {
    const svg = $("hist-calendar");
    const [w, h] = svgSize(svg, 0.45, 110, 190);
    const left = 30, top = 4, bottom = 16;
    const cell = Math.min((w - left - 4) / WEEKS, (h - top - bottom) / 7);
    const first = addDays(startOfWeek(now), -7 * (WEEKS - 1));
    const labels = ["M", "", "W", "", "F", "", "S"];
    labels.forEach((t, i) => t && el(svg, "text", { x: left - 8, y: top + cell * (i + 0.7), "text-anchor": "end",
                                                   fill: COLOURS.text, "font-size": 11 }, t));
    for (let wk = 0; wk < WEEKS; wk++) {
      for (let d = 0; d < 7; d++) {
        const day = addDays(first, wk * 7 + d);
        if (day > now) continue;
        const list = days.get(dayKey(day)) || [];
        const mins = minutes(list.reduce((a, r) => a + r.active_s, 0));
        const level = mins <= 0 ? 0 : mins < 2 ? 1 : mins < 4 ? 2 : mins < 6 ? 3 : 4;
        const fill = ["#262626", "#0f5a2e", "#188a45", "#22b35a", "#3ee07a"][level];
        const rect = el(svg, "rect", { x: left + wk * cell + 1, y: top + d * cell + 1, width: cell - 3,
                                       height: cell - 3, rx: 3, fill, "data-date": dayKey(day),
                                       "data-minutes": mins.toFixed(1), class: "cal-day" });
        if (dayKey(day) === dayKey(now)) { rect.setAttribute("stroke", "#ffd400"); rect.setAttribute("stroke-width", 2); }
        el(rect, "title", {}, `${shortDate(day)}: ${list.length ? Math.round(mins) + " min" : "no session"}`);
        if (list.length) {
          rect.style.cursor = "pointer";
          rect.addEventListener("click", () => openSession(list[list.length - 1]));
        }
      }
      if (wk % 4 === 0) {
        el(svg, "text", { x: left + wk * cell + 1, y: top + 7 * cell + 12, fill: COLOURS.text, "font-size": 11 },
           shortDate(addDays(first, wk * 7)));
      }
    }
  }

  function drawWeeks(weeks) {
    const svg = $("hist-weeks");
    const [w, h] = svgSize(svg, 0.42, 110, 190);
    const left = 6, bottom = 16, top = 14;
    const most = Math.max(10, ...weeks.map((x) => x.minutes));
    const slot = (w - left) / weeks.length;
    weeks.forEach((wk, i) => {
      const bh = (h - top - bottom) * wk.minutes / most;
      const x = left + i * slot;
      el(svg, "rect", { x: x + slot * 0.15, y: h - bottom - bh, width: slot * 0.7, height: Math.max(bh, 0.5),
                        rx: 2, fill: i === weeks.length - 1 ? "#ffd400" : "#4fb3ff", class: "week-bar",
                        "data-minutes": wk.minutes.toFixed(1) });
      if (wk.minutes > 0) {
        el(svg, "text", { x: x + slot / 2, y: h - bottom - bh - 3, "text-anchor": "middle", fill: "#fff",
                          "font-size": 10 }, String(Math.round(wk.minutes)));
      }
      if (i % 3 === 0) {
        el(svg, "text", { x: x + slot / 2, y: h - 3, "text-anchor": "middle", fill: COLOURS.text,
                          "font-size": 10 }, shortDate(wk.start));
      }
    });
  }

  function drawDoses(rows) {
    const box = $("hist-doses");
    box.textContent = "";
    const totals = new Map();               // muscle -> {left, right, none} [s]
    for (const r of rows) {
      for (const [muscle, side, s] of r.doses) {
        if (!totals.has(muscle)) totals.set(muscle, { left: 0, right: 0, none: 0 });
        const t = totals.get(muscle);
        t[side in t ? side : "none"] += s;
      }
    }
    if (!totals.size) { box.textContent = "Nothing in the last 4 weeks."; return; }
    const most = Math.max(...Array.from(totals.values()).map((t) => Math.max(t.left, t.right, t.none)));
    for (const [muscle, t] of totals) {
      const row = document.createElement("div");
      row.className = "dose-row";
      row.dataset.muscle = muscle;
      const name = document.createElement("span");
      name.className = "dose-name";
      name.textContent = muscle.replace(/_/g, " ");
      row.appendChild(name);
      const sides = t.left + t.right > 0 ? [["left", "L"], ["right", "R"]] : [["none", ""]];
      for (const [side, tag] of sides) {
        const cell = document.createElement("span");
        cell.className = "dose-cell dose-" + side;
        const bar = document.createElement("span");
        bar.className = "dose-bar";
        bar.style.width = Math.round(100 * t[side] / most) + "%";
        const val = document.createElement("span");
        val.className = "dose-val";
        val.textContent = (tag ? tag + " " : "") + Math.round(minutes(t[side])) + " min";
        cell.append(bar, val);
        row.appendChild(cell);
      }
      if (t.left + t.right > 0) {
        const lr = t.left / (t.left + t.right);
        const flag = document.createElement("span");
        flag.className = "dose-flag";
        flag.textContent = Math.abs(lr - 0.5) <= 0.1 ? "even" : lr > 0.5 ? "more left" : "more right";
        flag.dataset.even = String(Math.abs(lr - 0.5) <= 0.1);
        row.appendChild(flag);
      }
      box.appendChild(row);
    }
  }

  function drawBalance(weeks) {
    const svg = $("hist-balance");
    const [w, h] = svgSize(svg, 0.42, 110, 190);
    const left = 34, right = 6, top = 8, bottom = 16;
    const x = (i) => left + (w - left - right) * (weeks.length > 1 ? i / (weeks.length - 1) : 0.5);
    const y = (f) => top + (h - top - bottom) * (1 - f);
    el(svg, "rect", { x: left, y: y(0.6), width: w - left - right, height: y(0.4) - y(0.6),
                      fill: "#1d2a36" });                                   // "even": 40-60 % left
    for (const f of [0, 0.5, 1]) {
      el(svg, "line", { x1: left, x2: w - right, y1: y(f), y2: y(f), stroke: COLOURS.grid });
      el(svg, "text", { x: left - 4, y: y(f) + 4, "text-anchor": "end", fill: COLOURS.text, "font-size": 10 },
         Math.round(f * 100) + "%");
    }
    for (const [key, colour, cls] of [["left", COLOURS.left, "balance-line"], ["slow", COLOURS.slow, "slow-line"]]) {
      let d = "";
      weeks.forEach((wk, i) => {
        if (wk[key] == null) return;
        d += (d ? "L" : "M") + x(i).toFixed(1) + "," + y(wk[key]).toFixed(1);
        el(svg, "circle", { cx: x(i), cy: y(wk[key]), r: 3, fill: colour });
      });
      if (d) el(svg, "path", { d, fill: "none", stroke: colour, "stroke-width": 2, class: cls });
    }
    weeks.forEach((wk, i) => {
      if (i % 3 === 0) el(svg, "text", { x: x(i), y: h - 3, "text-anchor": "middle", fill: COLOURS.text,
                                         "font-size": 10 }, shortDate(wk.start));
    });
  }

  function plural(n, word) { return `${n} ${word}${n === 1 ? "" : "s"}`; }

  function mmss(s) {
    s = Math.round(s || 0);
    return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
  }

  function drawList(rows) {
    const list = $("hist-list");
    list.textContent = "";
    const shown = rows.slice(-60).reverse();        // the newest 60; the calendar reaches older
    for (const r of shown) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "session-item";
      b.dataset.session = r.session_id;
      const when = new Date(r.started_unix_s * 1000);
      const ls = leftShare([r]);
      b.textContent = `${when.toLocaleDateString(undefined, { weekday: "short", day: "numeric", month: "short" })} ` +
        `${when.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })} \u00b7 ${mmss(r.active_s)} \u00b7 ` +
        `slow ${pct(slowShare([r]))}` + (ls == null ? "" : ` \u00b7 L/R ${Math.round(ls * 100)}/${100 - Math.round(ls * 100)}`);
      b.addEventListener("click", () => openSession(r));
      li.appendChild(b);
      list.appendChild(li);
    }
  }

  // ---------------------------------------------------------------- one session
  function showOverview() {
    $("hist-overview").hidden = false;
    $("hist-session").hidden = true;
    shownSession = null;
  }

  async function openSession(row) {
    const t0 = performance.now();
    $("hist-overview").hidden = true;
    $("hist-session").hidden = false;
    $("history").scrollTop = 0;
    $("hs-title").textContent = new Date(row.started_unix_s * 1000).toLocaleString(undefined,
      { weekday: "short", day: "numeric", month: "short", hour: "2-digit", minute: "2-digit" });
    $("hist-session").dataset.ready = "false";
    let s;
    try {
      const res = await fetch(`/api/history/session?device=${encodeURIComponent(data.device)}` +
                              `&id=${encodeURIComponent(row.session_id)}`, { cache: "no-store" });
      s = await res.json();
      if (!res.ok) throw new Error(s.error || res.status);
    } catch (err) {
      $("hs-figures").textContent = "could not load the session: " + err.message;
      return;
    }
    shownSession = s;
    const ls = leftShare([s]);
    $("hs-title").textContent = (s.routine_title || "Session") + " \u00b7 " + $("hs-title").textContent;
    $("hs-figures").textContent = [
      `${mmss(s.active_s)} active`, plural(s.strokes, "stroke"), plural(s.holds, "hold"),
      `too fast ${s.too_fast_count}\u00d7 (${s.too_fast_s.toFixed(1)} s)`,
      `slow band ${pct(slowShare([s]))}`,
      ls == null ? "" : `left ${Math.round(ls * 100)}% / right ${100 - Math.round(ls * 100)}%`,
      s.mean_speed_m_s == null ? "" : `mean ${(s.mean_speed_m_s * 100).toFixed(1)} cm/s`,
    ].filter(Boolean).join(" \u00b7 ");
    $("hs-nochart").hidden = !!s.chart;
    $("hs-chart").hidden = !s.chart;
    $("hs-legend").hidden = !s.chart;
    if (s.chart) drawSession(s.chart);
    drawSteps(s.steps);
    $("hist-session").dataset.ready = "true";
    record.sessionLoad = { total_ms: performance.now() - t0 };
  }

  function drawSession(c) {
    const svg = $("hs-chart");
    const narrow = (svg.clientWidth || 400) < 500;
    const [w, h] = svgSize(svg, narrow ? 0.75 : 0.34, 200, 320);
    const left = 34, right = 8, top = 22, bottom = 18;
    const b = band();
    const end = Math.max(c.end_s, 1);
    let most = b.limit * 200;
    for (const [, v] of c.speed) most = Math.max(most, v * 1.08);
    const x = (t) => left + (w - left - right) * Math.min(Math.max(t / end, 0), 1);
    const y = (v) => top + (h - top - bottom) * (1 - v / most);
    const g = (id) => el(svg, "g", { id });
    // the steps as labelled spans behind everything
    const steps = g("hs-steps-spans");
    c.steps.forEach(([s0, s1, title, side], i) => {
      el(steps, "rect", { x: x(s0), y: top, width: Math.max(0, x(s1) - x(s0)), height: h - top - bottom,
                          fill: i % 2 ? "#1a1a1a" : "#111", class: "step-span" });
      // the longest label that fits its span: "Glutes, right side", "Glutes R", "R"
      const tag = side === "left" ? "L" : side === "right" ? "R" : "";
      // a short name: an abbreviation in the title (QL, SI), else its first word
      const word = (title.match(/\b[A-Z]{2,}\b/) || [title.split(/[ ,(]/)[0]])[0];
      const room = x(s1) - x(s0) - 4;
      const n = String(i + 1);        // the step's row in the table below
      const label = [title, (word + " " + tag).trim(), n + tag, n].find((t) => t && t.length * 6.4 <= room);
      if (label) {
        el(steps, "text", { x: x(s0) + 3, y: top - 6, fill: "#fff", "font-size": 11, class: "step-label" },
           label);
      }
    });
    // the go-slow band, the limit
    const bandG = g("hs-band");
    el(bandG, "rect", { x: left, y: y(b.target * 100), width: w - left - right,
                        height: y(0) - y(b.target * 100), fill: COLOURS.band, "fill-opacity": 0.22 });
    el(bandG, "rect", { x: left, y: y(b.limit * 100), width: w - left - right,
                        height: y(b.target * 100) - y(b.limit * 100), fill: COLOURS.band, "fill-opacity": 0.08 });
    el(bandG, "line", { x1: left, x2: w - right, y1: y(b.limit * 100), y2: y(b.limit * 100),
                        stroke: COLOURS.limit, "stroke-dasharray": "6 4", "stroke-width": 1.5 });
    // holds and too-fast passes
    const holds = g("hs-holds");
    for (const [s0, s1] of c.holds) {
      el(holds, "rect", { x: x(s0), y: top, width: Math.max(1, x(s1) - x(s0)), height: h - top - bottom,
                          fill: COLOURS.hold, "fill-opacity": 0.25, class: "hold" });
    }
    const fast = g("hs-too-fast");
    for (const [s0, s1, peak] of c.too_fast) {
      el(fast, "rect", { x: x(s0), y: top, width: Math.max(1.5, x(s1) - x(s0)), height: h - top - bottom,
                         fill: COLOURS.tooFast, "fill-opacity": 0.3 });
      const px = x((s0 + s1) / 2), py = Math.max(top + 2, y(peak) - 2);
      el(fast, "path", { d: `M${px - 5},${py - 8}L${px + 5},${py - 8}L${px},${py}Z`, fill: COLOURS.tooFast,
                         class: "too-fast-mark" });
    }
    // the speed, then the strokes on top
    let d = "";
    let prev = -1;
    for (const [t, v] of c.speed) {
      d += (d && t - prev <= 2 ? "L" : "M") + x(t).toFixed(1) + "," + y(v).toFixed(1);
      prev = t;
    }
    el(g("hs-speed"), "path", { d, fill: "none", stroke: COLOURS.speed, "stroke-width": 1.5 });
    const strokes = g("hs-strokes");
    for (const [s0, s1, mean] of c.strokes) {
      el(strokes, "line", { x1: x(s0), x2: x(s1), y1: y(mean), y2: y(mean), stroke: COLOURS.stroke,
                            "stroke-width": 2, "stroke-opacity": 0.6 });
      el(strokes, "circle", { cx: x((s0 + s1) / 2), cy: y(mean), r: 2.5, fill: COLOURS.stroke, class: "stroke" });
    }
    // axes
    const axes = g("hs-axes");
    for (const v of [0, b.target * 100, b.limit * 100]) {
      el(axes, "text", { x: left - 4, y: y(v) + 4, "text-anchor": "end", fill: COLOURS.text, "font-size": 10 },
         String(+v.toFixed(1)));
    }
    el(axes, "text", { x: 2, y: top - 6, fill: COLOURS.text, "font-size": 10 }, "cm/s");
    const stepS = end > 1200 ? 300 : end > 300 ? 60 : 30;
    for (let t = 0; t <= end; t += stepS) {
      el(axes, "text", { x: x(t), y: h - 4, "text-anchor": "middle", fill: COLOURS.text, "font-size": 10 },
         mmss(t));
    }
  }

  function drawSteps(steps) {
    const table = $("hs-steps");
    table.textContent = "";
    // the dose each step got: rolling and holding time (the holds and whether it was met beside)
    const head = ["Step", "Side", "Rolling / holding", "Strokes", "Holds", "Too fast", "Mean", ""];
    const tr = document.createElement("tr");
    for (const hname of head) { const th = document.createElement("th"); th.textContent = hname; tr.appendChild(th); }
    const thead = document.createElement("thead"); thead.appendChild(tr); table.appendChild(thead);
    const tbody = document.createElement("tbody");
    steps.forEach((st, i) => {
      const row = document.createElement("tr");
      const status = st.completed ? "done" : st.skipped ? "skipped" : "not reached";
      row.dataset.status = status;
      const cells = [`${i + 1}. ${st.title}`, st.side === "none" ? "-" : st.side,
                     `${Math.round(st.rolling_s || 0)}/${Math.round(st.holding_s || 0)} s`, String(st.strokes),
                     String(st.holds), `${st.too_fast_count}\u00d7`,
                     st.mean_speed_m_s == null ? "-" : (st.mean_speed_m_s * 100).toFixed(1) + " cm/s", status];
      for (const c of cells) { const td = document.createElement("td"); td.textContent = c; row.appendChild(td); }
      tbody.appendChild(row);
    });
    table.appendChild(tbody);
  }

  // charts follow the layout (a phone turned, a window resized)
  let resizeTimer = 0;
  window.addEventListener("resize", () => {
    clearTimeout(resizeTimer);
    resizeTimer = setTimeout(() => {
      if (!open || !data) return;
      if (shownSession && shownSession.chart) drawSession(shownSession.chart);
      else renderOverview();
    }, 150);
  });
  record.history = { show, close, load };
  // another roller picked while the view is open: its history
  record.onDevice = (id) => { if (open && data && data.device !== id) { showOverview(); load(); } };
})();
