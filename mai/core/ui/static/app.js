// mai ui: the single page. Plain JavaScript, no build step, nothing loaded from elsewhere.
// Views: #/runs (the list), #/run/ID (one run), #/plan/ID (its plan). Text is always set with
// textContent; the only HTML taken from the server is the plan's SVG, escaped server-side.
"use strict";

const POLL_MS = 1500;
const TERMINAL = new Set(["SUCCEEDED", "FAILED", "CANCELLED", "DEAD"]);
let session = null;
let timer = null;
let pausedPoll = null; // [view token, refresh] of a poll skipped while the tab was hidden
let view = null; // a token: a poll whose view was left does nothing

// -- helpers ---------------------------------------------------------------------------------

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  if (opts.method === "POST") {
    opts.headers["content-type"] = "application/json";
    opts.headers["x-csrf-token"] = session ? session.csrf : "";
  }
  const response = await fetch(path, opts);
  let body = null;
  try {
    body = await response.json();
  } catch (e) {
    body = { ok: false, error: `${response.status} ${response.statusText}` };
  }
  if (!response.ok) {
    const err = new Error(body && body.error ? body.error : `HTTP ${response.status}`);
    err.status = response.status;
    throw err;
  }
  return body;
}

// replaceChildren without the null/false placeholders of optional parts
function fill(el, ...children) {
  el.replaceChildren(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
}

function pad(n) { return String(n).padStart(2, "0"); }

function fmtTime(epoch) {
  if (!epoch) return "–";
  const d = new Date(epoch * 1000);
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ` +
    `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
}

function fmtDur(s) {
  if (s === null || s === undefined) return "–";
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 1)} ms`;
  if (s < 60) return `${s.toFixed(2)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`;
}

function fmtBytes(n) {
  if (n === null || n === undefined) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1048576) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1048576).toFixed(1)} MiB`;
}

function pretty(value) {
  return h("pre", { class: "json" }, JSON.stringify(value, null, 2));
}

function badge(status) {
  return h("span", { class: `badge s-${status.toLowerCase()}` }, status);
}

function toast(text, ok) {
  const t = document.getElementById("toast");
  t.textContent = text;
  t.className = ok ? "show ok" : "show error";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => { t.className = ""; }, 5000);
}

function confirmAction(title, text, yes) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-title").textContent = title;
  document.getElementById("confirm-text").textContent = text;
  document.getElementById("confirm-yes").textContent = yes;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
  });
}

function stopPolling() {
  if (timer) clearTimeout(timer);
  timer = null;
}

function poll(token, fn) {
  stopPolling();
  timer = setTimeout(async () => {
    if (token !== view) return;
    if (document.hidden) { // a tab in the background asks nothing; it catches up when shown
      pausedPoll = [token, fn];
      return;
    }
    try {
      await fn();
      document.getElementById("live").className = "live on";
    } catch (e) {
      document.getElementById("live").className = "live off";
    }
    if (token === view) poll(token, fn);
  }, POLL_MS);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden || !pausedPoll) return;
  const [token, fn] = pausedPoll;
  pausedPoll = null;
  if (token !== view) return;
  fn().catch(() => {});
  poll(token, fn);
});

// -- the list of runs ------------------------------------------------------------------------

function runsParams() {
  const q = new URLSearchParams(location.hash.split("?")[1] || "");
  return { status: q.get("status") || "", workflow: q.get("workflow") || "", q: q.get("q") || "",
           after: q.get("after") || "" };
}

function setRunsParams(p) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(p)) if (v) q.set(k, v);
  const s = q.toString();
  location.hash = `#/runs${s ? "?" + s : ""}`;
}

async function showRuns(token) {
  const p = runsParams();
  const main = document.getElementById("main");
  const statusSel = h("select", { id: "f-status", "aria-label": "status" },
    h("option", { value: "" }, "any status"),
    session.statuses.map((s) => h("option", { value: s, selected: s === p.status }, s)));
  const wf = h("input", { id: "f-workflow", placeholder: "workflow name", value: p.workflow,
                          "aria-label": "workflow" });
  const search = h("input", { id: "f-search", placeholder: "run id starts with…", value: p.q,
                              "aria-label": "search by run id", type: "search" });
  const apply = (e) => {
    if (e) e.preventDefault();
    setRunsParams({ status: statusSel.value, workflow: wf.value.trim(), q: search.value.trim() });
  };
  statusSel.addEventListener("change", apply);
  const filters = h("form", { class: "filters", onsubmit: apply }, statusSel, wf, search,
    h("button", { type: "submit" }, "Filter"),
    (p.status || p.workflow || p.q) ? h("a", { href: "#/runs", class: "clear" }, "clear") : null);
  const tbody = h("tbody", { id: "runs-body" });
  const table = h("table", { class: "runs" },
    h("thead", {}, h("tr", {}, h("th", {}, "Run"), h("th", {}, "Workflow"), h("th", {}, "Status"),
      h("th", {}, "Started"), h("th", { class: "num" }, "Duration"),
      h("th", { class: "num" }, "Attempts"))), tbody);
  const pager = h("div", { class: "pager" });
  const count = h("span", { class: "muted", id: "runs-count" });
  fill(main, h("h1", {}, "Runs"), filters, table, h("div", { class: "below" }, count, pager));

  async function load() {
    const q = new URLSearchParams();
    for (const k of ["status", "workflow", "q", "after"]) if (p[k]) q.set(k, p[k]);
    q.set("limit", "50");
    const page = await api(`/api/runs?${q}`);
    if (token !== view) return;
    tbody.replaceChildren(...page.runs.map((r) => h("tr", { "data-run": r.run_id },
      h("td", {}, h("a", { href: `#/run/${encodeURIComponent(r.run_id)}`, class: "mono" }, r.run_id)),
      h("td", {}, r.workflow),
      h("td", {}, badge(r.status)),
      h("td", {}, fmtTime(r.created_at)),
      h("td", { class: "num" }, fmtDur(r.duration)),
      h("td", { class: "num" }, r.attempts))));
    if (!page.runs.length) {
      tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "muted empty" }, "No runs match.")));
    }
    count.textContent = `${page.runs.length} run${page.runs.length === 1 ? "" : "s"} on this page`;
    fill(pager,
      p.after ? h("a", { href: "#/runs", onclick: (e) => { e.preventDefault();
        setRunsParams({ status: p.status, workflow: p.workflow, q: p.q }); } }, "⇤ newest") : null,
      page.next ? h("a", { href: "#", id: "older", onclick: (e) => { e.preventDefault();
        setRunsParams({ status: p.status, workflow: p.workflow, q: p.q, after: page.next }); } },
        "older →") : null);
  }
  try {
    await load();
  } catch (e) {
    tbody.replaceChildren(h("tr", {}, h("td", { colspan: 6, class: "error" }, e.message)));
  }
  poll(token, load);
}

// -- one run ---------------------------------------------------------------------------------

function section(title, ...children) {
  const id = `sec-${title.toLowerCase().replace(/[^a-z]+/g, "-")}`;
  return h("section", { class: "card", id }, h("h2", {}, title), ...children);
}

function timeline(run) {
  const spans = run.trace;
  if (!spans.length) return h("p", { class: "muted" }, "No recorded steps yet.");
  const kinds = Object.fromEntries(run.steps.map((s) => [s.step_id, s.kind]));
  const live = !TERMINAL.has(run.status);
  const t0 = Math.min(...spans.map((s) => s.start));
  const last = Math.max(...spans.map((s) => s.end));
  // a live run is still doing (or waiting for) something not recorded yet: show it until now
  const t1 = live ? Math.max(last, run.now) : last;
  const total = Math.max(t1 - t0, 1e-6);
  const rows = spans.map((s) => {
    const depth = s.step_id.split(".").length - 1;
    const kind = kinds[s.step_id] || "composite";
    const left = ((s.start - t0) / total) * 100;
    const width = Math.max(((s.end - s.start) / total) * 100, 0.4);
    return h("div", { class: "gantt-row", "data-step": s.step_id },
      h("div", { class: "gantt-label", style: null, title: `${s.name} · step ${s.step_id}` },
        h("span", { class: `indent d${Math.min(depth, 8)}` }), s.name),
      h("div", { class: "gantt-track" },
        h("div", { class: `gantt-bar k-${kind}`, title: `${s.name}: ${fmtDur(s.duration)}`,
                   "data-left": left.toFixed(3), "data-width": width.toFixed(3) },
          h("span", {}, fmtDur(s.duration)))));
  });
  if (live && run.now > last) {
    const left = ((last - t0) / total) * 100;
    rows.push(h("div", { class: "gantt-row pending" },
      h("div", { class: "gantt-label" }, h("span", { class: "indent d1" }), "in progress…"),
      h("div", { class: "gantt-track" },
        h("div", { class: "gantt-bar k-live", title: "running or waiting; not recorded yet",
                   "data-left": left.toFixed(3), "data-width": Math.max(100 - left, 0.4).toFixed(3) },
          h("span", {}, fmtDur(run.now - last))))));
  }
  const box = h("div", { class: "gantt" },
    h("div", { class: "gantt-row axis" }, h("div", { class: "gantt-label" }, ""),
      h("div", { class: "gantt-track" }, h("span", { class: "t0" }, "0"),
        h("span", { class: "t1" }, fmtDur(total)))), rows);
  // position the bars through the CSSOM (the page's policy forbids inline style attributes)
  for (const bar of box.querySelectorAll(".gantt-bar")) {
    bar.style.left = `${bar.dataset.left}%`;
    bar.style.width = `${bar.dataset.width}%`;
  }
  return box;
}

function traceTree(run) {
  return h("table", { class: "trace" },
    h("thead", {}, h("tr", {}, h("th", {}, "Span"), h("th", {}, "Step"),
      h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "In"),
      h("th", { class: "num" }, "Out"), h("th", { class: "num" }, "Retries"))),
    h("tbody", {}, run.trace.map((s) => h("tr", {},
      h("td", {}, h("span", { class: `indent d${Math.min(s.step_id.split(".").length - 1, 8)}` }),
        s.name),
      h("td", { class: "mono" }, s.step_id),
      h("td", { class: "num" }, fmtDur(s.duration)),
      h("td", { class: "num" }, fmtBytes(s.input_bytes)),
      h("td", { class: "num" }, fmtBytes(s.output_bytes)),
      h("td", { class: `num${s.retries ? " warn" : ""}` }, s.retries)))));
}

function stepsList(run, open) {
  if (!run.steps.length) return h("p", { class: "muted" }, "No recorded steps yet.");
  return h("div", { class: "steps" }, run.steps.map((s) => {
    const d = h("details", { class: "step", "data-step": s.step_id, open: open.has(s.step_id) },
      h("summary", {}, h("span", { class: "mono" }, s.step_id), " ", h("b", {}, s.name),
        h("span", { class: `kind k-${s.kind}` }, s.kind),
        h("span", { class: "muted" }, ` ${fmtDur(s.duration)} · ${s.attempts} attempt` +
          `${s.attempts === 1 ? "" : "s"} · in ${fmtBytes(s.input_bytes)} · out ` +
          `${fmtBytes(s.output_bytes)}`)),
      h("div", { class: "io" },
        h("div", {}, h("h4", {}, "Input"), s.input === null
          ? h("p", { class: "muted" }, "not recorded") : pretty(s.input)),
        h("div", {}, h("h4", {}, "Output"), pretty(s.output))),
      h("p", { class: "muted small" }, `recorded ${fmtTime(s.finished_at)} by ${s.worker || "?"}`));
    d.addEventListener("toggle", () => { if (d.open) open.add(s.step_id); else open.delete(s.step_id); });
    return d;
  }));
}

function chatMessage(m) {
  if (m.role === "tool-call") {
    const args = typeof m.args === "string" ? (() => { try { return JSON.parse(m.args); }
      catch (e) { return m.args; } })() : m.args;
    return h("div", { class: "msg tool-call" }, h("div", { class: "who" }, `tool call · ${m.tool_name}`),
      pretty(args));
  }
  if (m.role === "tool") {
    return h("div", { class: `msg tool${m.error ? " error" : ""}` },
      h("div", { class: "who" }, `${m.error ? "tool error" : "tool result"} · ${m.tool_name}`),
      typeof m.content === "string" ? h("div", { class: "text" }, m.content) : pretty(m.content));
  }
  const who = { system: "system", user: "user", assistant: "model", retry: "retry prompt" }[m.role];
  return h("div", { class: `msg ${m.role}` }, h("div", { class: "who" },
    m.role === "retry" && m.tool_name ? `${who} · ${m.tool_name}` : who),
    h("div", { class: "text" }, m.text));
}

function conversationView(conv, run, ctl) {
  const live = !TERMINAL.has(run.status);
  const u = conv.usage;
  const items = [h("p", { class: "usage" },
    `${u.requests} model request${u.requests === 1 ? "" : "s"} · ${u.input_tokens} input + ` +
    `${u.output_tokens} output tokens billed · replayed from the record (not billed again): ` +
    `${conv.replayed.input_tokens} + ${conv.replayed.output_tokens}`)];
  for (const t of conv.turns) {
    for (const w of t.waits) items.push(h("div", { class: "msg wait" },
      h("div", { class: "who" }, `durable wait · step ${w.step_id}`), pretty(w.output)));
    for (const m of t.request) items.push(chatMessage(m));
    items.push(h("div", { class: "turn-meta" },
      `step ${t.step_id} · ${t.model_name || "model"} · ${t.usage.input_tokens} in / ` +
      `${t.usage.output_tokens} out tokens${t.replayed ? " · replayed" : ""}`));
    for (const m of t.response) items.push(chatMessage(m));
    for (const a of t.approvals || []) items.push(approvalView(a, live, ctl));
  }
  for (const w of conv.trailing_waits) items.push(h("div", { class: "msg wait" },
    h("div", { class: "who" }, `durable wait · step ${w.step_id}`), pretty(w.output)));
  return h("div", { class: "chat" }, items);
}

// The actions of one run's page: each asks for confirmation, then reports its outcome in #outcome.
function runActions(run, refresh) {
  const out = h("p", { id: "outcome", class: "outcome", role: "status" });
  const report = (ok, text) => {
    out.textContent = text;
    out.className = `outcome ${ok ? "ok" : "error"}`;
    toast(text, ok);
  };
  async function act(path, body, title, text, yes) {
    if (!(await confirmAction(title, text, yes))) {
      report(true, "nothing done");
      return;
    }
    try {
      const r = await api(`/api/runs/${encodeURIComponent(run.run_id)}/${path}`,
        { method: "POST", body: JSON.stringify(body || {}) });
      report(true, `${r.message} (status ${r.status})`);
    } catch (e) {
      report(false, `failed: ${e.message}`);
    }
    await refresh();
  }
  return { out, act, report };
}

function approvalView(a, live, ctl) {
  const args = h("span", { class: "mono" }, JSON.stringify(a.args));
  if (a.decided) {
    return h("div", { class: "msg approval decided", "data-topic": a.topic },
      h("div", { class: "who" }, `approval · ${a.tool_name} · step ${a.step_id}`),
      h("div", { class: "text" }, "decided: ", h("b", {}, JSON.stringify(a.decision)), " for ", args));
  }
  const decide = (word) => ctl.act("send", { topic: a.topic, payload: word },
    `${word === "approve" ? "Approve" : "Deny"} this tool call?`,
    `The agent of run ${ctl.runId} asks to call ${a.tool_name} with ${JSON.stringify(a.args)}. ` +
    `Send ${JSON.stringify(word)} on ${JSON.stringify(a.topic)}?`,
    word === "approve" ? "Approve" : "Deny");
  return h("div", { class: "msg approval pending", "data-topic": a.topic },
    h("div", { class: "who" }, `waiting for approval · ${a.tool_name} · step ${a.step_id}`),
    h("div", { class: "text" }, "the agent asks to call ", h("b", {}, a.tool_name), " with ", args),
    live ? h("div", { class: "decide" },
      h("button", { class: "approve", "data-action": "approve", onclick: () => decide("approve") }, "Approve"),
      h("button", { class: "danger", "data-action": "deny", onclick: () => decide("deny") }, "Deny"))
      : h("p", { class: "muted" }, "the run has finished: nothing to decide"));
}

function actionsView(run, ctl) {
  const { out, act, report } = ctl;
  const live = !TERMINAL.has(run.status);
  const parts = [];
  if (live) {
    parts.push(h("button", { id: "act-cancel", class: "danger", onclick: () => act("cancel", {},
      "Cancel this run?", `Run ${run.run_id} (${run.workflow}) will stop; its committed steps ` +
      "stay recorded. This cannot be undone.", "Cancel the run") }, "Cancel run"));
    const topic = h("input", { id: "send-topic", placeholder: "topic, e.g. approve", "aria-label": "topic" });
    const payload = h("input", { id: "send-payload", placeholder: "JSON payload, e.g. true",
                                 "aria-label": "payload" });
    parts.push(h("form", { class: "send", onsubmit: (e) => {
      e.preventDefault();
      let value = null;
      const raw = payload.value.trim();
      if (raw) {
        try { value = JSON.parse(raw); } catch (err) {
          report(false, `the payload is not JSON: ${err.message}`);
          return;
        }
      }
      if (!topic.value.trim()) { report(false, "give the event a topic"); return; }
      act("send", { topic: topic.value.trim(), payload: value }, "Send this event?",
        `Send ${JSON.stringify(topic.value.trim())} with payload ${JSON.stringify(value)} to run ` +
        `${run.run_id}?`, "Send");
    } }, topic, payload, h("button", { type: "submit", id: "act-send" }, "Send event")));
  }
  if (session.actions.requeue && (run.status === "FAILED" || run.status === "DEAD")) {
    const here = (session.app || []).includes(run.workflow);
    parts.push(h("button", { id: "act-requeue", onclick: () => act("requeue", {}, "Requeue this run?",
      `Run ${run.run_id} (${run.workflow}, ${run.status}) becomes PENDING again with its committed ` +
      "steps kept (they replay, they do not run again); " + (here
        ? "this mai ui process resumes it at once (--app)."
        : "a worker (or `mai runs resume`) picks it up."), "Requeue") }, "Requeue"));
  }
  if (!parts.length) parts.push(h("span", { class: "muted" }, "No action applies to a finished run."));
  return h("div", { class: "actions" }, parts, out);
}

async function showRun(token, runId) {
  const main = document.getElementById("main");
  const open = new Set();
  let last = "";
  let outcome = null;
  let steps = null; // how many steps to ask for (null: the server's window)
  async function load() {
    const query = steps === null ? "" : `?steps=${steps}`;
    const run = await api(`/api/runs/${encodeURIComponent(runId)}${query}`);
    if (token !== view) return;
    const text = JSON.stringify(run);
    if (text === last) return;
    // keep this page's reported outcome across re-renders (never another page's)
    const prev = last ? document.getElementById("outcome") : null;
    if (prev && prev.textContent) outcome = [prev.textContent, prev.className];
    last = text;
    const ctl = Object.assign(runActions(run, load), { runId: run.run_id });
    const err = run.error ? section("Error", pretty(run.error)) : null;
    const output = run.status === "SUCCEEDED" ? section("Output", pretty(run.output)) : null;
    fill(main,
      h("nav", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ", run.run_id),
      h("div", { class: "run-head" },
        h("h1", {}, h("span", { class: "mono" }, run.run_id), " ", badge(run.status)),
        h("a", { href: `#/plan/${encodeURIComponent(run.run_id)}`, class: "button" }, "Plan")),
      h("dl", { class: "facts" },
        h("dt", {}, "Workflow"), h("dd", {}, run.workflow),
        h("dt", {}, "Started"), h("dd", {}, fmtTime(run.created_at)),
        h("dt", {}, TERMINAL.has(run.status) ? "Took" : "Running for"), h("dd", {}, fmtDur(run.duration)),
        h("dt", {}, "Attempts"), h("dd", {}, run.attempts),
        h("dt", {}, "Queue"), h("dd", {}, run.queue),
        h("dt", {}, "Deadline"), h("dd", {}, run.deadline ? fmtTime(run.deadline) : "none"),
        h("dt", {}, "Owner"), h("dd", { class: "mono" }, run.owner || "–")),
      section("Actions", actionsView(run, ctl)),
      h("div", { class: "two" }, section("Input", pretty(run.input)), err || output ||
        section("Output", h("p", { class: "muted" }, "not finished"))),
      run.history.length ? section("Earlier attempts", h("ol", {}, run.history.map((a) =>
        h("li", {}, badge(a.status), ` ${fmtTime(a.finished_at)} `, a.error ? pretty(a.error) : "")))) : null,
      run.conversation ? section("Conversation", conversationView(run.conversation, run, ctl)) : null,
      section("Timeline", timeline(run)),
      section("Trace", traceTree(run)),
      run.steps_total > run.steps.length ? h("p", { class: "muted", id: "steps-window" },
        `Showing the first ${run.steps.length} of ${run.steps_total} steps (timeline, trace and ` +
        "steps) to keep this live page light. ",
        h("button", { id: "steps-all", onclick: () => { steps = run.steps_total; last = ""; load(); } },
          `Show all ${run.steps_total}`)) : null,
      section("Steps", stepsList(run, open)));
    if (outcome) {
      const out = document.getElementById("outcome");
      [out.textContent, out.className] = outcome;
    }
  }
  try {
    await load();
  } catch (e) {
    main.replaceChildren(h("nav", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs")),
      h("p", { class: "error" }, e.message));
    return;
  }
  poll(token, load);
}

// -- the plan --------------------------------------------------------------------------------

async function showPlan(token, runId) {
  const main = document.getElementById("main");
  let plan;
  try {
    plan = await api(`/api/runs/${encodeURIComponent(runId)}/plan`);
  } catch (e) {
    main.replaceChildren(h("p", { class: "error" }, e.message));
    return;
  }
  if (token !== view) return;
  const graph = h("div", { class: "plan", id: "plan-graph" });
  if (plan.svg) {
    const doc = new DOMParser().parseFromString(plan.svg, "image/svg+xml");
    graph.append(document.importNode(doc.documentElement, true));
  } else {
    graph.append(h("p", { class: "muted" }, "This run recorded no plan."));
  }
  let current = h("p", { class: "muted" },
    "Start `mai ui --app pkg.module` to compare with the current code's plan.");
  if (plan.current) {
    const c = plan.current;
    current = c.same ? h("p", { class: "ok" }, "The current code has the same plan.")
      : h("div", {}, h("p", {}, `The current code's plan differs (${c.plan_hash.slice(0, 12)}…):`),
        h("ul", { class: "diff" }, c.changes.map((x) => h("li", { class: x.compatible ? "ok" : "error" },
          `${x.compatible ? "compatible" : "refuses resume"}: ${x.description}` +
          `${x.step ? ` (step ${x.step})` : ""}`))));
  }
  fill(main,
    h("nav", { class: "crumbs" }, h("a", { href: "#/runs" }, "Runs"), " / ",
      h("a", { href: `#/run/${encodeURIComponent(runId)}` }, runId), " / plan"),
    h("h1", {}, `Plan of ${plan.workflow}`),
    h("p", { class: "muted mono" }, `hash ${plan.plan_hash}`),
    section("Graph", graph),
    section("Against the current code", current),
    plan.plan ? h("details", { class: "card" }, h("summary", {}, "Plan JSON"), pretty(plan.plan)) : null);
}

// -- routing ---------------------------------------------------------------------------------

async function route() {
  stopPolling();
  document.getElementById("toast").className = ""; // an outcome belongs to the page it was on
  const token = (view = {});
  const hash = location.hash || "#/runs";
  const [path] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean);
  if (parts[0] === "run" && parts[1]) return showRun(token, decodeURIComponent(parts[1]));
  if (parts[0] === "plan" && parts[1]) return showPlan(token, decodeURIComponent(parts[1]));
  return showRuns(token);
}

async function start() {
  try {
    session = await api("/api/session");
  } catch (e) {
    document.getElementById("main").replaceChildren(h("p", { class: "error" }, e.message));
    return;
  }
  document.getElementById("store").textContent = session.store;
  window.addEventListener("hashchange", route);
  route();
}

document.addEventListener("DOMContentLoaded", start);
