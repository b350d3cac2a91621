// One execution, live: its plan as a graph coloured by step state, a timeline of attempts, the
// events, the results, and the actions its state allows. Fed by the server-sent events of
// /api/executions/{id}/events (WatchExecution), resumed by sequence when the connection breaks.
"use strict";

(() => {
  const { el, api, follow, badge, executionState, stepState, TERMINAL, when, clock, showError } = baton;
  const id = decodeURIComponent(location.pathname.split("/")[2] || "");
  const base = "/api/executions/" + encodeURIComponent(id);
  const MAX_LOG_ROWS = 2000;

  let plan = null;
  let update = null; // the graph's recolouring function
  let status = null;
  let lastSequence = 0;
  let endedAt = null;
  const events = [];

  document.getElementById("execution-id").textContent = id;
  document.title = "baton · " + id;

  // ---- step states: the status's step timings, its waiting steps, its compensations ----

  function stepStates() {
    const states = new Map();
    const timings = (status && status.performance_metrics && status.performance_metrics.step_timings) || [];
    for (const t of timings) {
      let state = stepState(t.status);
      let detail = "";
      if (t.items_total) detail = `${t.items_done || 0}/${t.items_total}`;
      else if ((t.attempts || 0) > 1) detail = `attempt ${t.attempts}`;
      const compensation = (t.compensation || "").replace("COMPENSATION_STATE_", "").toLowerCase();
      if (compensation === "succeeded") state = "compensated";
      else if (compensation === "running" || compensation === "pending") state = "compensating";
      else if (compensation === "failed") state = "failed";
      states.set(t.step_id, { state, detail });
    }
    for (const w of (status && status.waiting) || []) {
      const kind = (w.kind || "").replace("WAIT_KIND_", "").toLowerCase();
      states.set(w.step_id, { state: "waiting", detail: kind });
    }
    return states;
  }

  // ---- header, actions, waiting steps ----

  let actionsKey = "";

  async function act(action, stepId) {
    for (const b of document.querySelectorAll("button[data-action]")) b.disabled = true;
    if ((action === "cancel" || action === "reject") && !confirm(`${action} execution ${id}?`)) {
      actionsKey = "";
      renderActions();
      return;
    }
    try {
      const body = { reason: "from the web view" };
      if (stepId) body.step_id = stepId;
      const reply = await api(`${base}/${action}`, body);
      showError(null);
      if (reply && reply.status && (!status || Number(reply.last_sequence || 0) >= Number(status.last_sequence || 0))) {
        status = reply;
      }
    } catch (error) {
      showError(error);
    }
    actionsKey = "";
    render();
  }

  function renderActions() {
    const state = status ? executionState(status.status) : "";
    const waiting = ((status && status.waiting) || []).filter((w) =>
      ["WAIT_KIND_APPROVAL", "WAIT_KIND_ESCALATION"].includes(w.kind),
    );
    const buttons = [];
    if (state === "running" || state === "queued") buttons.push("pause");
    if (state === "paused") buttons.push("resume");
    if (["queued", "running", "paused"].includes(state)) buttons.push("cancel");
    const key = JSON.stringify([buttons, waiting.map((w) => [w.step_id, w.prompt])]);
    if (key === actionsKey) return;
    actionsKey = key;
    const label = { pause: "Pause", resume: "Resume", cancel: "Cancel" };
    document.getElementById("actions").replaceChildren(
      ...buttons.map((a) =>
        el("button", { type: "button", class: "action " + a, "data-action": a, onclick: () => act(a) }, label[a]),
      ),
    );
    document.getElementById("waiting").replaceChildren(
      ...waiting.map((w) =>
        el(
          "div",
          { class: "waiting-step", "data-step-id": w.step_id },
          el("strong", {}, `${w.step_id} waits for ${w.kind === "WAIT_KIND_ESCALATION" ? "a decision" : "approval"}`),
          w.prompt ? el("p", {}, w.prompt) : null,
          w.data ? el("pre", { class: "json" }, JSON.stringify(w.data, null, 2)) : null,
          w.timeout_at ? el("p", { class: "muted small" }, "until " + when(w.timeout_at)) : null,
          el(
            "div",
            { class: "actions" },
            el(
              "button",
              { type: "button", class: "action approve", "data-action": "approve", onclick: () => act("approve", w.step_id) },
              "Approve",
            ),
            el(
              "button",
              { type: "button", class: "action reject", "data-action": "reject", onclick: () => act("reject", w.step_id) },
              "Reject",
            ),
          ),
        ),
      ),
    );
  }

  function renderHeader() {
    if (!status) return;
    const state = executionState(status.status);
    const badgeNode = document.getElementById("state");
    badgeNode.className = "badge state-" + state;
    badgeNode.textContent = state;
    badgeNode.dataset.state = state;
    const progress = status.progress || {};
    const parts = [
      status.workflow_type && `${status.workflow_type}`,
      status.user_id && `for ${status.user_id}`,
      status.run > 1 && `run ${status.run}`,
      progress.total_steps && `${progress.current_step || 0}/${progress.total_steps} steps`,
      status.degraded && `degraded: ${(status.degraded_reasons || []).join("; ")}`,
      status.failure_reason && `ended: ${status.failure_reason}`,
      status.queue_position && `queue position ${status.queue_position}`,
    ].filter(Boolean);
    document.getElementById("summary").textContent = parts.join(" · ");
    const done = state === "completed" ? 100 : progress.completion_percentage || 0;
    document.getElementById("progress-bar").style.width = Math.max(0, Math.min(100, done)) + "%";
    document.getElementById("progress").className = "progress state-" + state;
  }

  // ---- the timeline ----

  function segmentsByStep() {
    const rows = new Map();
    const open = new Map(); // step_id + kind → segment
    const row = (s) => rows.get(s) || rows.set(s, []).get(s);
    function start(step, kind, at, label) {
      const seg = { kind, start: at, end: null, label };
      row(step).push(seg);
      open.set(step + "/" + kind, seg);
      return seg;
    }
    function finish(step, kind, at, outcome, detail) {
      const seg = open.get(step + "/" + kind);
      if (!seg) return;
      seg.end = at;
      seg.outcome = outcome;
      if (detail) seg.label += " · " + detail;
      open.delete(step + "/" + kind);
    }
    for (const e of events) {
      const at = Date.parse(e.time);
      const [kind, body] = Object.entries(e).find(([k]) => !["sequence", "time", "actor"].includes(k)) || [];
      if (!body) continue;
      const step = body.step_id;
      switch (kind) {
        case "step_started":
          start(step, "attempt", at, `attempt ${body.attempt || 1} · ${body.agent}.${body.operation}`);
          break;
        case "step_map_started":
          start(step, "attempt", at, "map");
          break;
        case "step_attempt_failed":
          finish(step, "attempt", at, "failed", `${body.error_type || ""} ${body.error_message || ""}`.trim());
          if (body.retry_at) {
            const seg = start(step, "retry", at, "waiting to retry");
            seg.end = Date.parse(body.retry_at);
            open.delete(step + "/retry");
          }
          break;
        case "step_succeeded":
          finish(step, "attempt", at, "succeeded");
          finish(step, "waiting", at, "succeeded");
          break;
        case "step_failed":
          finish(step, "attempt", at, "failed", body.error_type || "");
          finish(step, "waiting", at, "failed");
          break;
        case "step_skipped":
          finish(step, "waiting", at, "skipped");
          row(step).push({ kind: "skipped", start: at, end: at, label: "skipped " + (body.reason || "") });
          break;
        case "step_delayed": {
          const seg = start(step, "delay", at, "scheduled");
          seg.end = Date.parse(body.start_at);
          open.delete(step + "/delay");
          break;
        }
        case "step_waiting":
          start(step, "waiting", at, "waiting: " + (body.prompt || (body.kind || "").replace("WAIT_KIND_", "").toLowerCase()));
          break;
        case "signal_received":
          if (step) finish(step, "waiting", at, "signalled", (body.signal || "").replace("SIGNAL_", "").toLowerCase());
          break;
        case "compensation_started":
          start(step, "compensation", at, `compensation · ${body.agent}.${body.operation}`);
          break;
        case "compensation_succeeded":
          finish(step, "compensation", at, "succeeded");
          break;
        case "compensation_attempt_failed":
          finish(step, "compensation", at, "failed");
          break;
        case "compensation_settled":
          finish(step, "compensation", at, "settled");
          break;
        default:
          break;
      }
    }
    return rows;
  }

  function renderTimeline() {
    const box = document.getElementById("timeline");
    if (!plan || !events.length) return;
    const first = Date.parse(events[0].time);
    const last = endedAt || Date.now();
    const span = Math.max(1, last - first);
    const rows = segmentsByStep();
    const pct = (t) => Math.max(0, Math.min(100, ((t - first) / span) * 100));
    const lines = plan.workflow_steps.map((s) => {
      const track = el("div", { class: "track" });
      for (const seg of rows.get(s.step_id) || []) {
        const end = seg.end === null || isNaN(seg.end) ? last : seg.end;
        const left = pct(seg.start);
        const width = Math.max(0.4, pct(end) - left);
        const cls = `seg ${seg.kind} ${seg.outcome || (seg.end === null ? "open" : "")}`;
        const title = `${seg.label} (${((end - seg.start) / 1000).toFixed(2)} s)`;
        track.append(el("div", { class: cls, style: `left:${left}%;width:${width}%`, title }));
      }
      return el("div", { class: "line", "data-step-id": s.step_id }, el("div", { class: "step" }, s.step_name || s.step_id), track);
    });
    const axis = el(
      "div",
      { class: "axis muted small" },
      el("span", {}, clock(events[0].time)),
      el("span", {}, `${(span / 1000).toFixed(1)} s`),
      el("span", {}, endedAt ? clock(new Date(endedAt).toISOString()) : "now"),
    );
    const legend = el(
      "div",
      { class: "legend small" },
      ...[
        ["attempt succeeded", "attempt succeeded"],
        ["attempt failed", "failed attempt"],
        ["retry", "retry wait"],
        ["delay", "scheduled delay"],
        ["waiting", "waiting for a signal"],
        ["compensation", "compensation"],
        ["attempt open", "running"],
      ].map(([cls, text]) => el("span", {}, el("i", { class: "seg " + cls }), text)),
    );
    box.replaceChildren(...lines, axis, legend);
  }

  // ---- the event log ----

  function detailOf(kind, body) {
    const clip = (s, n = 160) => (s.length > n ? s.slice(0, n - 1) + "…" : s);
    switch (kind) {
      case "execution_started":
        return `${body.plan.workflow_type || ""}, ${(body.plan.workflow_steps || []).length} steps`;
      case "step_started":
        return `${body.agent}.${body.operation}, attempt ${body.attempt || 1}`;
      case "step_attempt_failed":
        return clip(
          `attempt ${body.attempt || 1}: ${body.error_type || ""} ${body.error_message || ""}` +
            (body.retry_at ? `; retry at ${clock(body.retry_at)}` : ""),
        );
      case "step_succeeded":
        return `attempt ${body.attempt || 1}`;
      case "step_failed":
        return clip(`${body.error_type || ""}: ${body.error_message || ""}`);
      case "step_skipped":
        return clip(`${(body.cause || "").replace("SKIP_CAUSE_", "").toLowerCase()} ${body.reason || ""}`);
      case "step_waiting":
        return clip(`${(body.kind || "").replace("WAIT_KIND_", "").toLowerCase()}: ${body.prompt || ""}`);
      case "signal_received":
        return clip(`${(body.signal || "").replace("SIGNAL_", "").toLowerCase()} ${body.reason || ""}`);
      case "gate_evaluated":
        return `${body.gate_id}: score ${Number(body.score || 0).toFixed(1)}, ${body.passed ? "passed" : "failed"}`;
      case "execution_failed":
      case "execution_cancelled":
      case "execution_paused":
      case "execution_resumed":
        return clip(body.reason || "");
      default: {
        const rest = Object.assign({}, body);
        delete rest.step_id;
        const text = JSON.stringify(rest);
        return text === "{}" ? "" : clip(text);
      }
    }
  }

  const logBody = document.querySelector("#events tbody");

  function logEvent(e) {
    const [kind, body] = Object.entries(e).find(([k]) => !["sequence", "time", "actor"].includes(k)) || ["?", {}];
    logBody.append(
      el(
        "tr",
        { class: "kind-" + kind, "data-sequence": e.sequence },
        el("td", { class: "mono" }, e.sequence),
        el("td", { class: "mono" }, clock(e.time)),
        el("td", {}, kind.replace(/_/g, " ")),
        el("td", { class: "mono" }, (body && body.step_id) || ""),
        el("td", {}, detailOf(kind, body || {})),
      ),
    );
    while (logBody.rows.length > MAX_LOG_ROWS) logBody.deleteRow(0);
    document.getElementById("event-count").textContent = `${events.length} events`;
  }

  // ---- results ----

  async function loadResults() {
    let full;
    try {
      full = await api(base);
    } catch (error) {
      showError(error);
      return;
    }
    status = Object.assign({}, full, { last_sequence: status ? status.last_sequence : full.last_sequence });
    const r = full.results || {};
    const parts = [];
    if ((r.recommendations || []).length) {
      parts.push(el("h3", {}, "Recommendations"), el("ul", {}, ...r.recommendations.map((x) => el("li", {}, x))));
    }
    if (r.primary_outputs && Object.keys(r.primary_outputs).length) {
      parts.push(el("h3", {}, "Primary outputs"), el("pre", { class: "json" }, JSON.stringify(r.primary_outputs, null, 2)));
    }
    const steps = r.intermediate_results || {};
    if (Object.keys(steps).length) {
      parts.push(el("h3", {}, "Each step's output"));
      for (const [step, output] of Object.entries(steps)) {
        parts.push(
          el("details", { "data-step-id": step }, el("summary", {}, step), el("pre", { class: "json" }, JSON.stringify(output, null, 2))),
        );
      }
    }
    for (const [step, bytes] of Object.entries(r.omitted_outputs || {})) {
      parts.push(el("p", { class: "muted small" }, `${step}: output of ${bytes} bytes omitted (GetStepOutput reads it)`));
    }
    if (!parts.length) parts.push(el("p", { class: "muted" }, "No results."));
    document.getElementById("results").replaceChildren(...parts);
    render();
  }

  // ---- putting it together ----

  let pending = false;
  function render() {
    if (pending) return;
    pending = true;
    requestAnimationFrame(() => {
      pending = false;
      renderHeader();
      renderActions();
      if (update) update(stepStates());
      renderTimeline();
    });
  }

  function live(text, cls) {
    const node = document.getElementById("live");
    node.textContent = text;
    node.className = "live " + cls;
  }

  function onUpdate(u) {
    const sequence = Number(u.sequence || 0);
    if (sequence <= lastSequence) return; // never applied twice, whatever the network does
    lastSequence = sequence;
    const e = u.event || {};
    events.push(e);
    if (e.execution_started && !plan) {
      plan = e.execution_started.plan;
      update = batonGraph.draw(document.getElementById("graph"), plan.workflow_steps || []);
    }
    if (u.status) status = u.status;
    if (status && TERMINAL.has(executionState(status.status)) && !endedAt) endedAt = Date.parse(e.time) || Date.now();
    logEvent(e);
    render();
  }

  const legend = document.getElementById("legend");
  legend.replaceChildren(
    ...["pending", "running", "waiting", "completed", "failed", "skipped", "compensating", "compensated"].map((s) =>
      el("span", {}, el("i", { class: "swatch state-" + s }), s),
    ),
  );

  live("connecting…", "connecting");
  follow(base + "/events", (name, data) => {
    if (name === "update") onUpdate(data);
    else if (name === "status") {
      status = data;
      render();
    } else if (name === "connected") live("live", "on");
    else if (name === "disconnected") live("reconnecting…", "off");
    else if (name === "end") {
      live("ended", "ended");
      endedAt = endedAt || Date.now();
      loadResults();
    }
  }).catch((error) => {
    live("stopped", "off");
    showError(error);
  });
  setInterval(() => {
    if (!endedAt && events.length && !document.hidden) renderTimeline();
  }, 1000);
})();
