// taskmon — coroutine supervision for standalone Asio.
// SPDX-License-Identifier: MIT
//
// Internal: the health server's GET /ui, one self-contained page (inline CSS and JavaScript, no external
// resource, ~15 KB): the supervision tree (groups with their strategy, members in order) with each component's
// state in the timeline's colours, restarts (in window), backoff or cooldown left, heartbeat age and liveness
// deadline left (ticking each second; a deadline at 0 re-reads the snapshot, heartbeats being no events), last
// error and a
// strip of its last 24 restarts, failures and warnings in the timeline's marks; live from /events (EventSource,
// which reconnects by itself), reconciled with /api/tree at most every 2 s; groups collapsible, rows filterable
// by state and name. Text from the monitor is set with textContent only, never parsed as HTML. The page writes
// the sequence of the last event it applied into #last-seq, each component's state into its row's data-state and
// the time of its last full render into body's data-render-ms (the browser test reads them; see also ?hold
// below). `@ACTIONS@` is replaced by "1" when the operator actions are enabled (then each row has their buttons,
// and the token is asked for on the page and kept in sessionStorage), else "0"; `@RUN_ACTIONS@` likewise for the
// runs' pause, resume and stop buttons. The runs (the snapshot's "runs", then each run_state event) are shown
// above the tree, one line each with its status in data-status; each operator_action event is shown in
// #action-log, who did what (the last in body's data-last-action).
#pragma once

#include <string>
#include <string_view>
#include <utility>

namespace taskmon::detail {

inline constexpr std::string_view live_page_html = R"taskmon_ui(<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>taskmon live</title>
<style>
body{font:13px/1.4 system-ui,sans-serif;margin:0;color:#212121;background:#fafafa}
header{position:sticky;top:0;background:#fff;border-bottom:1px solid #e0e0e0;padding:8px 12px;z-index:1}
h1{font-size:16px;margin:0 12px 0 0;display:inline}
#conn{padding:1px 6px;border-radius:3px;background:#9e9e9e;color:#fff}
#conn.live{background:#43a047}
.bar{display:flex;flex-wrap:wrap;gap:6px;align-items:center;margin-top:6px}
.chip{border:1px solid #bdbdbd;border-radius:10px;padding:1px 8px;cursor:pointer;user-select:none;background:#fff}
.chip.off{opacity:.35}
.chip i{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:4px;vertical-align:-1px}
main{padding:8px 12px}
details{margin:2px 0 2px 14px;border-left:2px solid #eceff1;padding-left:6px}
summary{cursor:pointer;padding:2px 0;font-weight:600}
summary .meta{font-weight:400;color:#616161;margin-left:6px}
table{border-collapse:collapse;width:100%;margin:2px 0}
td{padding:2px 6px;border-bottom:1px solid #f0f0f0;vertical-align:middle;white-space:nowrap}
td.err{white-space:normal;max-width:420px;overflow:hidden;text-overflow:ellipsis;color:#8e1c1c;
  font-family:monospace;font-size:12px}
.st{display:inline-block;min-width:84px;text-align:center;border-radius:3px;padding:0 4px;font-size:12px}
.num{text-align:right;font-variant-numeric:tabular-nums}
.muted{color:#9e9e9e}
button{font-size:11px;padding:0 5px;margin-right:2px}
input[type=search]{width:180px}
.hidden{display:none}
#runs .run{padding:3px 0;border-bottom:1px solid #f0f0f0}
#runs .run b{margin-right:6px}
#action-log{color:#37474f;font-size:12px;margin:4px 0 0}
</style>
</head>
<body data-actions="@ACTIONS@" data-run-actions="@RUN_ACTIONS@">
<header>
<h1>taskmon</h1><span id="conn">connecting</span>
<span class="muted" style="margin-left:12px">components <b id="count">0</b> · last event <b id="last-seq">0</b></span>
<div class="bar" id="states"></div>
<div class="bar">
<input type="search" id="filter" placeholder="filter by name">
<button id="expand">expand all</button><button id="collapse">collapse all</button>
<span id="token-box" class="hidden">token <input type="password" id="token" size="16"></span>
<span id="action-result" class="muted"></span>
</div>
<div id="action-log"></div>
</header>
<main><div id="runs"></div><div id="tree"></div></main>
<script>
"use strict";
const STATES = {running:["#43a047","#fff"],restarting:["#ffd54f","#3e2723"],quarantined:["#8e24aa","#fff"],
  gave_up:["#d32f2f","#fff"],failed:["#8e1c1c","#fff"],unresponsive:["#5d4037","#fff"],stopping:["#bdbdbd","#212121"],
  stopped:["#9e9e9e","#212121"],completed:["#64b5f6","#0d2a40"],not_started:["#e0e0e0","#212121"]};
const MARKS = {restarted:"restart",trial_started:"restart",failed:"failure",cancelled_unexpectedly:"failure",
  factory_failed:"failure",gave_up:"failure",escalated:"failure",watchdog_timeout:"warning",startup_timeout:"warning",
  stop_timeout:"warning",quarantined:"warning",restart_requested:"note",reset:"note"};
const NEXT_STATE = {started:"running",restarted:"running",trial_started:"running",ready:"running",
  quarantine_closed:"running",restart_scheduled:"restarting",restart_requested:"restarting",failed:"restarting",
  cancelled_unexpectedly:"restarting",factory_failed:"restarting",gave_up:"gave_up",escalated:"gave_up",
  not_enabled:"failed",no_factory:"failed",completed:"completed",stopped:"stopped",stop_timeout:"unresponsive",
  quarantined:"quarantined",watchdog_timeout:"restarting",startup_timeout:"restarting"};
const HISTORY = 24;
const actions = document.body.dataset.actions === "1";
const runActions = document.body.dataset.runActions === "1";
let runs = new Map();
let comps = new Map(), groups = new Map(), rows = new Map(), marksOf = new Map();
let hiddenStates = new Set(), lastSeq = 0, refetchTimer = null, chipsTimer = null, skew = 0;
const $ = id => document.getElementById(id);
function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k);
  return e;
}
function dur(ns) {
  if (ns === null || ns === undefined) return "";
  const s = ns / 1e9;
  if (s < 1) return Math.round(ns / 1e6) + " ms";
  if (s < 120) return s.toFixed(1) + " s";
  if (s < 7200) return (s / 60).toFixed(1) + " min";
  return (s / 3600).toFixed(1) + " h";
}
function nowNs() { return Date.now() * 1e6 + skew; }
function left(atNs) { return atNs === null || atNs === undefined ? null : Math.max(0, atNs - nowNs()); }

function strip(name) {
  const marks = marksOf.get(name) || [];
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("width", HISTORY * 11 + 8); svg.setAttribute("height", 14);
  marks.forEach((m, i) => {
    const x = 6 + i * 11, g = document.createElementNS(ns, "path");
    if (m.mark === "restart") { g.setAttribute("d", `M${x},1 L${x},13 M${x - 3},1 L${x + 3},1 L${x},5 Z`);
      g.setAttribute("stroke", "#0d47a1"); g.setAttribute("stroke-width", "2"); g.setAttribute("fill", "#0d47a1"); }
    else if (m.mark === "failure") { g.setAttribute("d", `M${x - 3},4 l6,6 M${x - 3},10 l6,-6`);
      g.setAttribute("stroke", "#b71c1c"); g.setAttribute("stroke-width", "2.5");
      g.setAttribute("stroke-linecap", "round"); }
    else if (m.mark === "warning") { g.setAttribute("d", `M${x},2 l5,9 l-10,0 z`); g.setAttribute("fill", "#ef6c00"); }
    else { g.setAttribute("d", `M${x},3 l4,4 l-4,4 l-4,-4 z`); g.setAttribute("fill", "#37474f"); }
    const t = document.createElementNS(ns, "title");
    t.textContent = `${m.kind} #${m.seq} ${new Date(m.t / 1e6).toISOString()}${m.reason ? " " + m.reason : ""}`;
    g.append(t); svg.append(g);
  });
  return svg;
}

function act(name, verb) {
  const token = $("token").value;
  sessionStorage.setItem("taskmon-token", token);
  fetch(`/api/components/${encodeURIComponent(name)}/${verb}`,
        {method: "POST", headers: {"Authorization": "Bearer " + token, "X-Taskmon-Action": "1"}})
    .then(r => r.text().then(t => { $("action-result").textContent = `${verb} ${name}: ${r.status} ${t.trim()}`; }))
    .catch(e => { $("action-result").textContent = `${verb} ${name}: ${e}`; });
}

function actRun(name, verb) {
  const token = $("token").value;
  sessionStorage.setItem("taskmon-token", token);
  fetch(`/api/runs/${encodeURIComponent(name)}/${verb}`,
        {method: "POST", headers: {"Authorization": "Bearer " + token, "X-Taskmon-Action": "1"}})
    .then(r => r.text().then(t => { $("action-result").textContent = `${verb} ${name}: ${r.status} ${t.trim()}`; }))
    .catch(e => { $("action-result").textContent = `${verb} ${name}: ${e}`; });
}
function renderRuns() {
  const box = $("runs");
  box.replaceChildren();
  for (const r of runs.values()) {
    const flags = [r.paused ? "paused" : "", r.shedding ? "shedding load" : "",
      r.waiting_for_input ? "waiting for input: " + (r.interrupt_id || "") : ""].filter(Boolean).join(" · ");
    const d = el("div", {class: "run", "data-run": r.name, "data-status": r.status}, el("b", {text: "run " + r.name}),
      el("span", {class: "st run-status", text: r.status.replace(/_/g, " ")}),
      ` step ${r.step} (${r.steps_finished} finished) `, el("span", {class: "muted", text: flags}));
    const [bg, fg] = {running: STATES.running, paused: STATES.stopping, waiting_for_input: STATES.restarting,
      failed: STATES.failed, completed: STATES.completed}[r.status] || STATES.stopped;
    d.children[1].style.background = bg; d.children[1].style.color = fg;
    if (runActions) {
      for (const verb of ["pause", "resume", "stop"]) {
        const b = el("button", {text: verb, "data-verb": verb}); b.onclick = () => actRun(r.name, verb); d.append(b);
      }
    }
    box.append(d);
  }
}
function applyAction(a) {
  const text = `${new Date(a.time_ns / 1e6).toISOString()} ${a.action} ${a.target} ${a.name} ` +
    `by ${a.origin.remote_address} (${a.origin.via})`;
  const log = $("action-log");
  log.prepend(el("div", {text}));
  while (log.children.length > 5) log.lastChild.remove();
  document.body.dataset.lastAction = `${a.action} ${a.target} ${a.name}`;
}
function fillRow(tr, c) {
  const [bg, fg] = STATES[c.state] || ["#546e7a", "#fff"];
  tr.dataset.state = c.state;
  tr.replaceChildren();
  const st = el("span", {class: "st", text: c.state.replace("_", " ")});
  st.style.background = bg; st.style.color = fg;
  const wait = c.state === "quarantined" ? left(c.next_trial_at_ns) : left(c.next_restart_at_ns);
  const waitText = wait === null ? "" : (c.state === "quarantined" ? "cooldown " : "backoff ") + dur(wait);
  const age = c.last_beat_ns ? Math.max(0, nowNs() - c.last_beat_ns) : null;
  const due = c.state === "running" ? left(c.liveness_deadline_ns) : null;
  const hb = [age === null ? "" : "heartbeat " + dur(age) + " ago",
              due === null ? "" : "deadline in " + dur(due)].filter(Boolean).join(", ");
  tr.append(el("td", {}, st), el("td", {text: c.name}),
    el("td", {class: "num", title: "restarts (in window)", text: `${c.restart_count} (${c.restarts_in_window})`}),
    el("td", {class: "num wait", text: waitText}), el("td", {class: "muted", text: hb}),
    el("td", {}, strip(c.name)), el("td", {class: "err", title: c.last_error || "", text: c.last_error || ""}));
  if (actions) {
    const td = el("td");
    for (const verb of ["restart", "reset", "disable", "enable"]) {
      const b = el("button", {text: verb, "data-verb": verb}); b.onclick = () => act(c.name, verb); td.append(b);
    }
    tr.append(td);
  }
}
function row(c) {
  let tr = rows.get(c.name);
  if (!tr) { tr = el("tr", {"data-component": c.name}); rows.set(c.name, tr); }
  fillRow(tr, c);
  return tr;
}
function groupNode(name, seen) {
  const g = groups.get(name);
  seen.add(name);
  const d = el("details", {open: "", "data-group": name});
  const meta = `${g.strategy} · ${g.state} · ${g.restart_count} restarts (${g.restarts_in_window} in window)`;
  const table = el("table");
  d.append(el("summary", {}, name, el("span", {class: "meta", text: meta})), table);
  for (const m of g.members) {
    if (groups.has(m)) { d.append(groupNode(m, seen)); continue; }
    const c = comps.get(m);
    if (c) { table.append(row(c)); seen.add(m); }
  }
  return d;
}
function render() {
  const started = performance.now();
  const tree = $("tree"), seen = new Set();
  rows = new Map();
  tree.replaceChildren();
  for (const [name, g] of groups) if (!g.parent) tree.append(groupNode(name, seen));
  const loose = [...comps.values()].filter(c => !seen.has(c.name) && !c.spawned);
  if (loose.length) {
    const d = el("details", {open: "", "data-group": ""}), table = el("table");
    d.append(el("summary", {}, "ungrouped", el("span", {class: "meta", text: `${loose.length} components`})), table);
    for (const c of loose) table.append(row(c));
    tree.append(d);
  }
  $("count").textContent = comps.size;
  renderChips(); applyFilter();
  document.body.dataset.renderMs = Math.round(performance.now() - started);
}
function renderChips() {
  const counts = {};
  for (const c of comps.values()) counts[c.state] = (counts[c.state] || 0) + 1;
  const bar = $("states");
  bar.replaceChildren();
  for (const s of Object.keys(STATES)) {
    if (!counts[s] && !hiddenStates.has(s)) continue;
    const i = el("i"); i.style.background = STATES[s][0];
    const chip = el("span", {class: "chip" + (hiddenStates.has(s) ? " off" : ""), "data-state": s}, i,
                    `${s} ${counts[s] || 0}`);
    chip.onclick = () => {
      if (hiddenStates.has(s)) hiddenStates.delete(s); else hiddenStates.add(s);
      renderChips(); applyFilter();
    };
    bar.append(chip);
  }
}
function applyFilter() {
  const text = $("filter").value.toLowerCase();
  for (const [name, tr] of rows) {
    const out = hiddenStates.has(tr.dataset.state) || (text && !name.toLowerCase().includes(text));
    tr.classList.toggle("hidden", Boolean(out));
  }
  for (const d of [...document.querySelectorAll("#tree details")].reverse()) {
    const visible = d.querySelector("tr:not(.hidden)");
    d.classList.toggle("hidden", !visible);
  }
}
function applySnapshot(s) {
  comps = new Map(s.components.map(c => [c.name, c]));
  groups = new Map(s.groups.map(g => [g.name, g]));
  skew = s.time_ns - Date.now() * 1e6;
  for (const c of comps.values()) {
    c.last_beat_ns = c.last_heartbeat_age_ns === null ? null : s.time_ns - c.last_heartbeat_age_ns;
  }
  if (s.runs) { runs = new Map(s.runs.map(r => [r.name, r])); renderRuns(); }
  setSeq(s.last_sequence);  // authoritative: after a restart of the process the sequences start again at 1
  render();
}
function setSeq(n) { lastSeq = n; $("last-seq").textContent = n; }
function refetchSoon() {
  if (refetchTimer) return;
  refetchTimer = setTimeout(() => {
    refetchTimer = null;
    fetch("/api/tree").then(r => r.json()).then(applySnapshot).catch(() => {});
  }, 2000);
}
function applyEvent(e) {
  if (e.sequence > lastSeq) setSeq(e.sequence);
  document.body.dataset.lastKind = e.kind;
  if (e.kind.startsWith("group_") || e.kind === "closed") { refetchSoon(); return; }
  const c = comps.get(e.component);
  if (!c) { refetchSoon(); return; }
  if (MARKS[e.kind]) {
    const h = marksOf.get(e.component) || [];
    h.push({mark: MARKS[e.kind], kind: e.kind, seq: e.sequence, t: e.time_ns, reason: e.reason});
    if (h.length > HISTORY) h.shift();
    marksOf.set(e.component, h);
  }
  if (e.kind === "removed") { comps.delete(e.component); refetchSoon(); render(); return; }
  c.restart_count = e.restart_count; c.failure_count = e.failure_count;
  if (NEXT_STATE[e.kind]) c.state = NEXT_STATE[e.kind];
  if (MARKS[e.kind] === "failure" && e.kind !== "gave_up" && e.kind !== "escalated") c.last_error = e.reason;
  if (e.kind === "restart_scheduled") c.next_restart_at_ns = e.time_ns + e.delay_ns;
  if (e.kind === "quarantined") c.next_trial_at_ns = e.time_ns + e.delay_ns;
  if (c.state === "running") { c.next_restart_at_ns = null; c.next_trial_at_ns = null; }
  const tr = rows.get(c.name);
  if (tr) fillRow(tr, c);
  if (!chipsTimer) chipsTimer = setTimeout(() => { chipsTimer = null; renderChips(); applyFilter(); }, 250);
  refetchSoon();
}
function connect() {
  const source = new EventSource("/events");
  const live = () => {
    $("conn").textContent = "live"; $("conn").className = "live"; document.body.dataset.conn = "live";
  };
  // A reconnection sends Last-Event-ID: when the server still has every event after it, the stream resumes with
  // them and no snapshot (this page's state stays, the missed events are applied); else a snapshot comes first
  // and replaces the components, groups and runs. Either way the stream is live once open.
  source.onopen = live;
  source.addEventListener("snapshot", m => { applySnapshot(JSON.parse(m.data)); live(); });
  source.onmessage = m => {
    const e = JSON.parse(m.data);
    if (e.type === "run_state") { runs.set(e.run.name, e.run); renderRuns(); return; }
    if (e.type === "operator_action") { applyAction(e); return; }
    if (e.type === undefined) applyEvent(e);  // a MonitorEvent; a type this page does not know is skipped
  };
  source.onerror = () => {
    $("conn").textContent = "reconnecting"; $("conn").className = ""; document.body.dataset.conn = "down";
    // EventSource retries by itself after a dropped stream, but gives up for good after an HTTP error (a 503 when
    // max_event_clients streams are open): then a new one, 5 s later.
    if (source.readyState === EventSource.CLOSED) setTimeout(connect, 5000);
  };
}
$("filter").oninput = applyFilter;
const openAll = open => document.querySelectorAll("#tree details").forEach(d => { d.open = open; });
$("expand").onclick = () => openAll(true);
$("collapse").onclick = () => openAll(false);
if (actions || runActions) {
  $("token-box").classList.remove("hidden");
  $("token").value = sessionStorage.getItem("taskmon-token") || "";
}
setInterval(() => {
  for (const [name, tr] of rows) {
    const c = comps.get(name);
    if (!c) continue;
    if (c.state === "restarting" || c.state === "quarantined" || c.last_beat_ns) fillRow(tr, c);
    // Heartbeats are not events: a deadline that counts down to 0 may have moved; the snapshot tells.
    if (c.state === "running" && left(c.liveness_deadline_ns) === 0) refetchSoon();
  }
}, 1000);
connect();
// ?hold: an iframe on /events keeps the load event pending, so that a headless browser's --timeout (not the load)
// decides when the DOM is dumped or the screenshot taken, with the live events applied meanwhile.
if (new URLSearchParams(location.search).has("hold")) document.body.append(el("iframe", {src: "/events", hidden: ""}));
</script>
</body>
</html>
)taskmon_ui";

/// The page, with the operator actions' buttons (components', runs') shown or not.
[[nodiscard]] inline std::string live_page(bool actions_enabled, bool run_actions_enabled = false) {
    std::string page{live_page_html};
    for (const auto& [marker, on] : {std::pair<std::string_view, bool>{"@ACTIONS@", actions_enabled},
                                     std::pair<std::string_view, bool>{"@RUN_ACTIONS@", run_actions_enabled}}) {
        const auto at = page.find(marker);
        if (at != std::string::npos) page.replace(at, marker.size(), on ? "1" : "0");
    }
    return page;
}

}  // namespace taskmon::detail
