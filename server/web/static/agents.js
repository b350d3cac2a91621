// The agents: health, breaker, load, latency and capacity per agent (GetSystemHealth), refreshed every 5 s.
"use strict";

(() => {
  const { el, api, seconds, when, showError } = baton;
  const word = (value, prefix) => (value || "").replace(prefix, "").toLowerCase() || "unknown";
  // Load, error rate, CPU and memory all arrive in percent (0 to 100; CPU is of one core, so more with several).
  const percent = (x) => `${Number(x || 0).toFixed(1)} %`;

  function capacityOf(health, agent) {
    const parts = [];
    for (const [scope, c] of Object.entries(health.capacity || {})) {
      if (scope !== agent && !scope.startsWith(agent + ".")) continue;
      const bits = [];
      if (c.max_in_flight) bits.push(`${c.in_flight || 0}/${c.max_in_flight} in flight`);
      if (c.waiting_for_slot) bits.push(`${c.waiting_for_slot} waiting`);
      if (c.rate) bits.push(`${c.rate}/s (${Number(c.tokens || 0).toFixed(1)} tokens)`);
      if (c.waiting_for_token) bits.push(`${c.waiting_for_token} waiting for a token`);
      if (bits.length) parts.push(`${scope}: ${bits.join(", ")}`);
    }
    return parts.join("; ");
  }

  async function load() {
    let health;
    try {
      health = await api("/api/health");
      showError(null);
    } catch (error) {
      showError(error);
      return;
    }
    const overall = word(health.overall_health, "OVERALL_HEALTH_");
    const badge = document.getElementById("overall");
    badge.className = "badge health-" + overall;
    badge.textContent = overall;
    const util = health.resource_utilization || {};
    document.getElementById("system").textContent = [
      `${health.active_workflows || 0} active executions`,
      `${health.queue_depth || 0} queued`,
      `CPU ${percent(util.cpu)}`,
      `memory ${percent(util.memory)}`,
      `checked ${when(health.checked_at)}`,
    ].join(" · ");
    const agents = Object.entries(health.agent_statuses || {}).sort(([a], [b]) => a.localeCompare(b));
    document.querySelector("#agents tbody").replaceChildren(
      ...agents.map(([name, a]) => {
        const state = word(a.status, "AGENT_HEALTH_");
        const breaker = (a.metrics && a.metrics.circuit_breaker) || "closed";
        return el(
          "tr",
          { "data-agent": name, "data-health": state, "data-breaker": breaker },
          el("td", { class: "mono" }, name),
          el("td", {}, el("span", { class: "badge health-" + state }, state)),
          el("td", {}, el("span", { class: "badge breaker-" + breaker.replace(/[^a-z-]/g, "") }, breaker)),
          el("td", {}, el("div", { class: "meter", title: percent(a.load) }, el("div", { style: `width:${Math.max(0, Math.min(100, a.load || 0))}%` })), percent(a.load)),
          el("td", {}, `${(seconds(a.response_time) * 1000).toFixed(0)} ms`),
          el("td", {}, percent(a.error_rate)),
          el("td", {}, a.queue_depth || 0),
          el("td", {}, a.requests_served || 0),
          el("td", { class: "small" }, capacityOf(health, name)),
        );
      }),
    );
  }

  load();
  setInterval(() => {
    if (!document.hidden) load();
  }, 5000);
})();
