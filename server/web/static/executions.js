// The executions list: filters (user, state, workflow) kept in the address, pages by ListExecutions' tokens.
"use strict";

(() => {
  const { el, api, badge, executionState, when, showError } = baton;
  const form = document.getElementById("filters");
  const body = document.querySelector("#executions tbody");
  const tokens = [""]; // the token of each page seen so far: tokens[i] opens page i + 1
  let page = 0;
  let next = "";

  function filters() {
    const query = new URLSearchParams();
    for (const name of ["user", "state", "workflow", "page_size"]) {
      const value = form.elements[name].value.trim();
      if (value) query.set(name, value);
    }
    return query;
  }

  function fromAddress() {
    const query = new URLSearchParams(location.search);
    for (const name of ["user", "state", "workflow", "page_size"]) {
      if (query.has(name)) form.elements[name].value = query.get(name);
    }
  }

  async function load() {
    const query = filters();
    if (tokens[page]) query.set("page_token", tokens[page]);
    let reply;
    try {
      reply = await api("/api/executions?" + query.toString());
      showError(null);
    } catch (error) {
      showError(error);
      return;
    }
    const rows = (reply.executions || []).map((e) => {
      const state = executionState(e.status);
      const link = el("a", { href: "/executions/" + encodeURIComponent(e.execution_id) }, e.execution_id);
      return el(
        "tr",
        { "data-execution-id": e.execution_id, "data-state": state },
        el("td", { class: "mono" }, link),
        el("td", {}, badge(state)),
        el("td", {}, e.workflow_type || ""),
        el("td", {}, e.user_id || ""),
        el("td", {}, when(e.created_at)),
        el("td", {}, when(e.updated_at)),
      );
    });
    body.replaceChildren(...rows);
    document.getElementById("empty").hidden = rows.length > 0;
    next = reply.next_page_token || "";
    document.getElementById("next").disabled = !next;
    document.getElementById("previous").disabled = page === 0;
    document.getElementById("first").disabled = page === 0;
    document.getElementById("page-number").textContent = "page " + (page + 1);
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    tokens.length = 1;
    page = 0;
    history.replaceState(null, "", "?" + filters().toString());
    load();
  });
  document.getElementById("next").addEventListener("click", () => {
    if (!next) return;
    tokens[page + 1] = next;
    page += 1;
    load();
  });
  document.getElementById("previous").addEventListener("click", () => {
    page = Math.max(0, page - 1);
    load();
  });
  document.getElementById("first").addEventListener("click", () => {
    page = 0;
    load();
  });

  fromAddress();
  load();
  setInterval(() => {
    if (document.getElementById("auto").checked && !document.hidden) load();
  }, 5000);
})();
