"""A plan's DAG as Graphviz DOT or a Mermaid flowchart, optionally coloured by each step's state.

Rules:

- **Nodes are numbered, labels are quoted.** Step ids come from users, so no id is ever used as
  a node name: node ``n3`` is the plan's fourth step, and its label (the step id and its
  ``agent.operation``) is a quoted string with every character that could end it or start
  markup escaped (DOT: backslash and double quote; Mermaid: entity codes). A label's parts (the
  step id, the call, the state) are one line each: a newline in a step id becomes a space.
- **Edges are dependencies**, from the step depended on to the step that waits for it; a
  dependency naming no step of the plan is left out (a plan the server accepted has none).
- **Colours by state** (STATE_COLOURS): completed green, running blue, failed red,
  waiting/paused/delayed/retrying amber, skipped/cancelled grey, compensated purple, pending
  white. A step whose effect was undone (or is being undone) is drawn compensated, whatever
  state it ended in; one whose compensation failed keeps its own state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from baton.v1 import execution_pb2, plan_pb2

E = execution_pb2

STATE_COLOURS: Mapping[str, tuple[str, str]] = {
    "pending": ("#ffffff", "#9e9e9e"),
    "running": ("#cfe2ff", "#0d6efd"),
    "completed": ("#d1e7dd", "#198754"),
    "failed": ("#f8d7da", "#dc3545"),
    "waiting": ("#fff3cd", "#fd7e14"),
    "skipped": ("#e9ecef", "#6c757d"),
    "cancelled": ("#e9ecef", "#6c757d"),
    "compensated": ("#e2d9f3", "#6f42c1"),
}
"""A drawn state → its fill and stroke colours."""

_DRAWN: Mapping[int, str] = {
    E.STEP_STATE_PENDING: "pending",
    E.STEP_STATE_RUNNING: "running",
    E.STEP_STATE_COMPLETED: "completed",
    E.STEP_STATE_FAILED: "failed",
    E.STEP_STATE_SKIPPED: "skipped",
}
"""Step states → the state drawn; any other (waiting, delayed, retrying, paused...) is "waiting"."""


@dataclass(frozen=True)
class StepLook:
    """How one step is drawn."""

    label: tuple[str, ...]
    """The label's lines (unescaped)."""
    state: str = ""
    """A key of STATE_COLOURS; empty for a plan drawn without states."""


def drawn_state(timing: execution_pb2.StepTimingReport, cancelled: bool = False) -> str:
    """The state a step is drawn in, from its timing report.

    Args:
        timing: the step's report in the execution's status.
        cancelled: whether the execution was cancelled (its steps that never ran are drawn cancelled).
    """
    if timing.compensation in (
        E.COMPENSATION_STATE_SUCCEEDED,
        E.COMPENSATION_STATE_RUNNING,
        E.COMPENSATION_STATE_PENDING,
    ):
        return "compensated"  # undone, or being undone
    state = _DRAWN.get(timing.status, "waiting")
    if cancelled and state == "pending":
        return "cancelled"
    return state


def _call(step: plan_pb2.WorkflowStep) -> str:
    if step.kind == plan_pb2.STEP_KIND_APPROVAL:
        return "approval"
    call = f"{step.agent}.{step.operation}"
    return f"{call} for each item" if step.for_each else call


def looks(plan: plan_pb2.OrchestrationPlan, status: execution_pb2.ExecutionStatus | None = None) -> dict[str, StepLook]:
    """Each step's label and, given the execution's status, the state it is drawn in."""
    states: dict[str, str] = {}
    if status is not None:
        cancelled = status.status == E.EXECUTION_STATE_CANCELLED
        states = {t.step_id: drawn_state(t, cancelled) for t in status.performance_metrics.step_timings}
    shown: dict[str, StepLook] = {}
    for step in plan.workflow_steps:
        state = states.get(step.step_id, "pending") if status is not None else ""
        label = (" ".join(step.step_id.splitlines()), _call(step), *([state] if state else []))
        shown[step.step_id] = StepLook(label=label, state=state)
    return shown


def _edges(plan: plan_pb2.OrchestrationPlan, ids: Mapping[str, str]) -> list[tuple[str, str]]:
    return [(ids[dep], ids[step.step_id]) for step in plan.workflow_steps for dep in step.dependencies if dep in ids]


def _node_ids(plan: plan_pb2.OrchestrationPlan) -> dict[str, str]:
    ids: dict[str, str] = {}
    for step in plan.workflow_steps:
        ids.setdefault(step.step_id, f"n{len(ids)}")
    return ids


def dot_string(text: str) -> str:
    """A DOT quoted string holding `text` exactly (one line: a newline becomes a space)."""
    flat = " ".join(text.splitlines()) if text else ""
    return '"' + flat.replace("\\", "\\\\").replace('"', '\\"') + '"'


def to_dot(plan: plan_pb2.OrchestrationPlan, status: execution_pb2.ExecutionStatus | None = None) -> str:
    """The plan's DAG in Graphviz DOT (states coloured when `status` is given)."""
    ids = _node_ids(plan)
    shown = looks(plan, status)
    title = status.execution_id if status is not None else plan.plan_id
    lines = [
        "digraph baton {",
        f"  label={dot_string(f'{plan.workflow_type} {title}'.strip())};",
        "  labelloc=t;",
        "  rankdir=LR;",
        '  node [shape=box, style="rounded,filled", fillcolor="#ffffff", fontname="Helvetica"];',
    ]
    for step_id, node in ids.items():
        look = shown[step_id]
        # "\n" between the escaped lines is DOT's own line break inside a label.
        label = '"' + "\\n".join(dot_string(line)[1:-1] for line in look.label) + '"'
        attrs = [f"label={label}"]
        if look.state:
            fill, stroke = STATE_COLOURS[look.state]
            attrs += [f'fillcolor="{fill}"', f'color="{stroke}"']
        lines.append(f"  {node} [{', '.join(attrs)}];")
    lines.extend(f"  {a} -> {b};" for a, b in _edges(plan, ids))
    lines.append("}")
    return "\n".join(lines) + "\n"


_MERMAID_ESCAPES = {
    "#": "#35;",
    '"': "#quot;",
    "<": "#lt;",
    ">": "#gt;",
    "&": "#amp;",
    "`": "#96;",
    "|": "#124;",
    "[": "#91;",
    "]": "#93;",
    "{": "#123;",
    "}": "#125;",
    "(": "#40;",
    ")": "#41;",
    ";": "#59;",
    "%": "#37;",
}
"""Characters a Mermaid label may not hold as they are, and their entity codes."""


def mermaid_text(text: str) -> str:
    """`text` for a quoted Mermaid label: markup characters as entity codes, one line."""
    flat = " ".join(text.splitlines()) if text else ""
    return "".join(_MERMAID_ESCAPES.get(ch, ch) for ch in flat)


def to_mermaid(plan: plan_pb2.OrchestrationPlan, status: execution_pb2.ExecutionStatus | None = None) -> str:
    """The plan's DAG as a Mermaid flowchart (states as classes when `status` is given)."""
    ids = _node_ids(plan)
    shown = looks(plan, status)
    lines = ["flowchart LR"]
    for step_id, node in ids.items():
        label = "<br/>".join(mermaid_text(line) for line in shown[step_id].label)
        lines.append(f'  {node}["{label}"]')
    lines.extend(f"  {a} --> {b}" for a, b in _edges(plan, ids))
    used = sorted({look.state for look in shown.values() if look.state})
    for state in used:
        fill, stroke = STATE_COLOURS[state]
        lines.append(f"  classDef {state} fill:{fill},stroke:{stroke},color:#000")
        members = ",".join(ids[s] for s, look in shown.items() if look.state == state)
        lines.append(f"  class {members} {state}")
    return "\n".join(lines) + "\n"
