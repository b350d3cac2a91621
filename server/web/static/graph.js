// The plan's DAG as SVG: layered by dependency level (left to right), each step a node coloured by its state.
"use strict";

const batonGraph = (() => {
  const { svg } = baton;
  const W = 180; // node width
  const H = 64; // node height
  const GAP_X = 48;
  const GAP_Y = 22;
  const PAD = 12;

  /**
   * Places steps in layers: a step's level is one more than its deepest dependency's; within a
   * level, steps are ordered by the mean position of their dependencies (fewer crossings), ties
   * in plan order.
   */
  function layout(steps) {
    const byId = new Map(steps.map((s, i) => [s.step_id, { step: s, index: i, level: 0, row: 0 }]));
    const level = new Map();
    const visiting = new Set();
    function depth(id) {
      if (level.has(id)) return level.get(id);
      if (visiting.has(id) || !byId.has(id)) return 0; // a cycle or an unknown id: the orchestrator refuses both
      visiting.add(id);
      const deps = byId.get(id).step.dependencies || [];
      const d = deps.length ? 1 + Math.max(...deps.map(depth)) : 0;
      visiting.delete(id);
      level.set(id, d);
      return d;
    }
    const layers = [];
    for (const s of steps) {
      const node = byId.get(s.step_id);
      node.level = depth(s.step_id);
      (layers[node.level] = layers[node.level] || []).push(node);
    }
    for (let l = 0; l < layers.length; l++) {
      const layer = layers[l] || [];
      if (l > 0) {
        const key = (n) => {
          const deps = (n.step.dependencies || []).map((d) => byId.get(d)).filter(Boolean);
          return deps.length ? deps.reduce((sum, d) => sum + d.row, 0) / deps.length : n.index;
        };
        layer.sort((a, b) => key(a) - key(b) || a.index - b.index);
      }
      layer.forEach((n, row) => (n.row = row));
      layers[l] = layer;
    }
    const tallest = Math.max(1, ...layers.map((l) => l.length));
    for (const layer of layers) {
      const offset = ((tallest - layer.length) * (H + GAP_Y)) / 2;
      for (const n of layer) {
        n.x = PAD + n.level * (W + GAP_X);
        n.y = PAD + offset + n.row * (H + GAP_Y);
      }
    }
    return {
      nodes: byId,
      width: PAD * 2 + layers.length * W + Math.max(0, layers.length - 1) * GAP_X,
      height: PAD * 2 + tallest * H + (tallest - 1) * GAP_Y,
    };
  }

  const clip = (text, n) => (text.length > n ? text.slice(0, n - 1) + "…" : text);

  /** Draws the plan into `container`; returns update(states) which recolours the nodes. */
  function draw(container, steps) {
    const placed = layout(steps);
    const root = svg("svg", {
      class: "dag",
      width: placed.width,
      height: placed.height,
      viewBox: `0 0 ${placed.width} ${placed.height}`,
      role: "img",
      "aria-label": "the plan's steps and their dependencies",
    });
    const defs = svg(
      "defs",
      {},
      svg(
        "marker",
        { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" },
        svg("path", { d: "M 0 0 L 10 5 L 0 10 z", class: "arrowhead" }),
      ),
    );
    root.append(defs);
    const edges = svg("g", { class: "edges" });
    const nodes = svg("g", { class: "nodes" });
    root.append(edges, nodes);
    const edgeOf = [];
    for (const { step, x, y } of placed.nodes.values()) {
      for (const dep of step.dependencies || []) {
        const from = placed.nodes.get(dep);
        if (!from) continue;
        const x1 = from.x + W;
        const y1 = from.y + H / 2;
        const x2 = x;
        const y2 = y + H / 2;
        const mid = (x1 + x2) / 2;
        const path = svg("path", {
          class: "edge",
          d: `M ${x1} ${y1} C ${mid} ${y1}, ${mid} ${y2}, ${x2 - 2} ${y2}`,
          "marker-end": "url(#arrow)",
          "data-from": dep,
          "data-to": step.step_id,
        });
        edges.append(path);
        edgeOf.push([dep, path]);
      }
    }
    const nodeOf = new Map();
    for (const { step, x, y } of placed.nodes.values()) {
      const what = step.kind === "STEP_KIND_APPROVAL" ? "approval" : `${step.agent || ""}.${step.operation || ""}`;
      const label = svg("text", { class: "state-label", x: x + 10, y: y + 56 }, "pending");
      const group = svg(
        "g",
        { class: "node state-pending", "data-step-id": step.step_id, "data-state": "pending", tabindex: 0 },
        svg("title", {}, `${step.step_name || step.step_id}\n${what}`),
        svg("rect", { x, y, width: W, height: H, rx: 8, ry: 8 }),
        svg("text", { class: "name", x: x + 10, y: y + 20 }, clip(step.step_name || step.step_id, 22)),
        svg("text", { class: "what", x: x + 10, y: y + 38 }, clip(what, 25)),
        label,
      );
      nodes.append(group);
      nodeOf.set(step.step_id, { group, label });
    }
    container.replaceChildren(root);
    // A wide plan is shrunk to fit, down to 70 %; wider than that, it scrolls.
    const room = container.clientWidth - 16;
    if (room > 0 && placed.width > room) {
      const scale = Math.max(0.7, room / placed.width);
      root.setAttribute("width", Math.round(placed.width * scale));
      root.setAttribute("height", Math.round(placed.height * scale));
    }

    /** states: step_id → {state, detail}; a step not in it is pending. */
    return function update(states) {
      for (const [id, { group, label }] of nodeOf) {
        const { state = "pending", detail = "" } = states.get(id) || {};
        if (group.dataset.state !== state) {
          group.setAttribute("class", "node state-" + state);
          group.dataset.state = state;
        }
        const text = detail ? `${state} · ${detail}` : state;
        if (label.textContent !== text) label.textContent = clip(text, 28);
      }
      for (const [dep, path] of edgeOf) {
        const state = (states.get(dep) || {}).state || "pending";
        path.setAttribute("class", "edge from-" + state);
      }
    };
  }

  return { draw, layout };
})();
