// baton web view: what every page shares (the JSON API, the bearer token, live streams, small DOM helpers).
// Plain JS, no build step. Text reaches the page through textContent only, never innerHTML, so data
// from an execution can never become markup.
"use strict";

const baton = (() => {
  const TOKEN_KEY = "baton.token";

  /** Makes an element: el("td", {class: "x", title: "y"}, "text", child, ...). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
      else if (name === "style") node.style.cssText = value; // CSSOM: allowed by the page's CSP, unlike the attribute
      else node.setAttribute(name, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  /** Makes an SVG element. */
  function svg(tag, attrs, ...children) {
    const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
    for (const [name, value] of Object.entries(attrs || {})) {
      if (value !== undefined && value !== null) node.setAttribute(name, String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY) || "";
  }

  function headers(extra) {
    const h = Object.assign({ Accept: "application/json" }, extra || {});
    const t = token();
    if (t) h.Authorization = t.toLowerCase().startsWith("bearer ") ? t : "Bearer " + t;
    return h;
  }

  class ApiError extends Error {
    constructor(status, code, message) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  async function errorOf(response) {
    let code = "HTTP_" + response.status;
    let message = response.statusText || code;
    try {
      const body = await response.json();
      if (body && body.error) {
        code = body.error.code || code;
        message = body.error.message || message;
      }
    } catch (_) {
      /* not JSON */
    }
    if (response.status === 401) showTokenForm("This server needs a bearer token: " + message);
    return new ApiError(response.status, code, message);
  }

  /** GETs (or POSTs, with body) a JSON API path; throws ApiError. */
  async function api(path, body) {
    const init = { headers: headers(), cache: "no-store" };
    if (body !== undefined) {
      init.method = "POST";
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch(path, init);
    if (!response.ok) throw await errorOf(response);
    return response.json();
  }

  const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

  /**
   * Follows a server-sent event stream, resuming after the last event's id (Last-Event-ID) when
   * the connection breaks. fetch rather than EventSource, so that the bearer token travels in the
   * Authorization header. Calls on(name, data, id) per event; resolves when the stream says "end",
   * rejects with an ApiError the server answered (not found, forbidden...).
   */
  async function follow(url, on) {
    let last = null;
    let delay = 500;
    for (;;) {
      const h = headers({ Accept: "text/event-stream" });
      if (last !== null) h["Last-Event-ID"] = last;
      let response;
      try {
        response = await fetch(url, { headers: h, cache: "no-store" });
      } catch (_) {
        on("disconnected", null, last);
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
        continue;
      }
      if (!response.ok) {
        const error = await errorOf(response);
        if (response.status !== 429 && response.status < 500) throw error;
        on("disconnected", null, last);
        await sleep(delay);
        delay = Math.min(delay * 2, 5000);
        continue;
      }
      on("connected", null, last);
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = "";
      let ended = false;
      try {
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          // baton sends \n line ends; a lone \r (allowed by the format) is read as one too.
          buffer += value.replace(/\r\n?/g, "\n");
          let cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            const block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            let name = "message";
            let id = null;
            const data = [];
            for (const line of block.split("\n")) {
              if (line.startsWith(":")) continue;
              const colon = line.indexOf(":");
              const field = colon < 0 ? line : line.slice(0, colon);
              const text = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
              if (field === "event") name = text;
              else if (field === "data") data.push(text);
              else if (field === "id") id = text;
            }
            if (id !== null) last = id;
            if (!data.length) continue;
            delay = 500;
            const parsed = JSON.parse(data.join("\n"));
            if (name === "end") {
              ended = true;
              on("end", parsed, last);
              return;
            }
            if (name === "error" && parsed.code !== "UNAVAILABLE") {
              throw new ApiError(0, parsed.code, parsed.message);
            }
            on(name, parsed, last);
          }
        }
      } catch (error) {
        if (error instanceof ApiError) throw error;
      } finally {
        if (!ended) reader.cancel().catch(() => {});
      }
      on("disconnected", null, last);
      await sleep(delay);
      delay = Math.min(delay * 2, 5000);
    }
  }

  // ---- names and formats ----

  const short = (enumName, prefix) => (enumName || "").replace(prefix, "").toLowerCase() || "unknown";
  const executionState = (s) => short(s, "EXECUTION_STATE_");
  const stepState = (s) => short(s, "STEP_STATE_");
  const TERMINAL = new Set(["completed", "failed", "cancelled"]);

  function when(timestamp) {
    if (!timestamp) return "";
    const d = new Date(timestamp);
    return isNaN(d) ? String(timestamp) : d.toLocaleString();
  }

  function clock(timestamp) {
    if (!timestamp) return "";
    const d = new Date(timestamp);
    return isNaN(d) ? "" : d.toLocaleTimeString([], { hour12: false }) + "." + String(d.getMilliseconds()).padStart(3, "0");
  }

  /** Seconds of a JSON Duration ("1.5s"). */
  const seconds = (duration) => (duration ? parseFloat(duration) : 0);

  function badge(state) {
    return el("span", { class: "badge state-" + state }, state);
  }

  // ---- the token form and the navigation ----

  function showTokenForm(message) {
    const form = document.getElementById("token-form");
    if (!form) return;
    form.hidden = false;
    const note = document.getElementById("token-note");
    if (note && message) note.textContent = message;
  }

  function setUpNavigation() {
    const form = document.getElementById("token-form");
    const input = document.getElementById("token-input");
    document.getElementById("token-button").addEventListener("click", () => {
      form.hidden = !form.hidden;
    });
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, input.value.trim());
      input.value = "";
      form.hidden = true;
      location.reload();
    });
    document.getElementById("token-clear").addEventListener("click", () => {
      sessionStorage.removeItem(TOKEN_KEY);
      location.reload();
    });
    document.getElementById("token-button").textContent = token() ? "Token ✓" : "Token";
    const here = location.pathname.split("/")[1] || "executions";
    for (const link of document.querySelectorAll("nav a[data-page]")) {
      if (link.dataset.page === here) link.classList.add("current");
    }
  }

  function showError(error) {
    const box = document.getElementById("error");
    if (!box) return;
    if (!error) {
      box.hidden = true;
      return;
    }
    box.hidden = false;
    box.textContent = (error.code ? error.code + ": " : "") + (error.message || String(error));
  }

  document.addEventListener("DOMContentLoaded", setUpNavigation);

  return { el, svg, api, follow, sleep, ApiError, executionState, stepState, TERMINAL, when, clock, seconds, badge, showError };
})();
