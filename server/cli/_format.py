"""Formatting shared by the CLI's displays: enum labels, durations, JSON, and one line per event."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

E = execution_pb2

TERMINAL = frozenset({E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED})
"""Execution states after which nothing more happens."""

DONE_STEPS = frozenset({E.STEP_STATE_COMPLETED, E.STEP_STATE_FAILED, E.STEP_STATE_SKIPPED})
"""Step states after which the step does nothing more (unless the execution unwinds)."""

_STYLES = {
    "completed": "green",
    "running": "cyan",
    "pending": "dim",
    "queued": "dim",
    "failed": "red",
    "cancelled": "yellow",
    "skipped": "yellow",
    "paused": "magenta",
    "waiting": "magenta",
    "compensating": "yellow",
    "succeeded": "green",
    "not_needed": "dim",
    "healthy": "green",
    "degraded": "yellow",
    "offline": "red",
    "critical": "red",
    "submitted": "green",
    "withdrawn": "yellow",
}

_PREFIXES = (
    "EXECUTION_STATE_",
    "STEP_STATE_",
    "AGENT_HEALTH_",
    "OVERALL_HEALTH_",
    "APPLICATION_STATE_",
    "EXECUTION_MODE_",
    "PRIORITY_",
    "FALLBACK_ACTION_",
    "GATE_ACTION_",
    "COMPARISON_OPERATOR_",
    "SCHEDULING_",
    "IMPACT_",
    "COMPENSATION_STATE_",
    "SIGNAL_",
    "WAIT_KIND_",
    "END_CAUSE_",
    "SKIP_CAUSE_",
    "APPROVAL_TIMEOUT_ACTION_",
    "STEP_KIND_",
)


def make_console() -> Console:
    """Returns the stdout console; off a terminal it is wide enough not to cut tables (pipes, files)."""
    return Console(highlight=False) if sys.stdout.isatty() else Console(highlight=False, width=200)


def label(full_name: str) -> str:
    """Returns an enum value name without its type prefix, in lower case (EXECUTION_STATE_FAILED → failed)."""
    for prefix in _PREFIXES:
        if full_name.startswith(prefix):
            return full_name[len(prefix) :].lower()
    return full_name.lower()


def enum_label(enum: Any, value: int) -> str:
    """Returns the short name of a value of a generated enum; the number for one this CLI does not know."""
    try:
        return label(str(enum.Name(value)))
    except ValueError:
        return str(value)


def execution_state(value: int) -> str:
    """Returns the short name of an ExecutionState value."""
    return enum_label(E.ExecutionState, value)


def end_cause(value: int) -> str:
    """Returns an EndCause value in words: step failed, quality gate, rejected."""
    return enum_label(E.EndCause, value).replace("_", " ")


def step_state(value: int) -> str:
    """Returns the short name of a StepState value."""
    return enum_label(E.StepState, value)


def styled(name: str) -> Text:
    """Returns a state name coloured by what it means."""
    return Text(name, style=_STYLES.get(name, ""))


def style_of(name: str) -> str:
    """Returns the style a state name is shown in."""
    return _STYLES.get(name, "")


def seconds(duration: duration_pb2.Duration) -> float:
    """Returns a Duration in seconds."""
    return duration.seconds + duration.nanos / 1e9


def format_seconds(value: float) -> str:
    """Formats seconds for people: 0.042s, 3.1s, 2m05s."""
    if value < 10:
        return f"{value:.3f}s" if value < 1 else f"{value:.2f}s"
    if value < 60:
        return f"{value:.1f}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m{rest:02d}s"


def format_setting(value: float) -> str:
    """Formats a configured duration: 5s, 0.2s, 3m, 2m30s."""
    if value < 60:
        return f"{value:g}s"
    minutes, rest = divmod(round(value), 60)
    return f"{minutes}m{rest:02d}s" if rest else f"{minutes}m"


def when(ts: timestamp_pb2.Timestamp) -> datetime:
    """Returns a Timestamp as an aware UTC datetime."""
    return ts.ToDatetime(tzinfo=UTC)


def to_json(message: Message) -> dict[str, Any]:
    """Returns a message as JSON with proto field names."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    """Returns a Struct as a plain dict."""
    return json_format.MessageToDict(struct)


def compact_json(value: Any, limit: int = 120) -> str:
    """Returns JSON on one line, cut at `limit` characters (a payload in an event line)."""
    text = json.dumps(value, separators=(",", ":"), sort_keys=True)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def grid(rows: Sequence[tuple[str, RenderableType | str]]) -> Table:
    """Returns a two-column grid of bold keys and their values."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows:
        table.add_row(key, value)
    return table


# ---- one line per event -----------------------------------------------------------------------


def _execution_event(event: execution_pb2.ExecutionEvent, kind: str) -> str | None:
    if kind == "execution_started":
        plan = event.execution_started.plan
        return f"execution started: plan {plan.plan_id}, {len(plan.workflow_steps)} steps"
    if kind == "execution_completed":
        return "execution completed"
    if kind == "execution_failed":
        return f"execution failed: {event.execution_failed.reason}"
    if kind == "execution_cancelled":
        return f"execution cancelled: {event.execution_cancelled.reason or 'by a client'}"
    if kind == "execution_unwinding":
        u = event.execution_unwinding
        outcome = execution_state(u.outcome)
        cause = end_cause(u.cause)
        return f"execution unwinding before it ends {outcome} ({cause}): {u.reason}; undoing completed steps"
    if kind == "execution_paused":
        return f"execution paused: {event.execution_paused.reason or 'by a client'}"
    if kind == "execution_resumed":
        r = event.execution_resumed
        deadline = f"; deadline now {when(r.deadline):%H:%M:%S}" if r.HasField("deadline") else ""
        return f"execution resumed: {r.reason or 'by a client'}{deadline}"
    if kind == "execution_rerun":
        rr = event.execution_rerun
        start = f"from step {rr.from_step}" if rr.from_step else "from where it stopped"
        steps = ", ".join(rr.reset_steps) or "none"
        return f"execution rerun (run {rr.run}) {start}: {rr.reason or 'by a client'}; steps to run again: {steps}"
    return None


def _step_event(event: execution_pb2.ExecutionEvent, kind: str) -> str | None:
    if kind == "step_started":
        e1 = event.step_started
        return f"{e1.step_id} started: {e1.agent}.{e1.operation} (attempt {e1.attempt})"
    if kind == "step_attempt_failed":
        e2 = event.step_attempt_failed
        retry = f", retry at {when(e2.retry_at):%H:%M:%S}" if e2.HasField("retry_at") else ""
        return f"{e2.step_id} attempt {e2.attempt} failed: {e2.error_type}: {e2.error_message}{retry}"
    if kind == "step_succeeded":
        e3 = event.step_succeeded
        return f"{e3.step_id} succeeded (attempt {e3.attempt}, quality {e3.quality.score:.0f})"
    if kind == "step_failed":
        e4 = event.step_failed
        action = enum_label(plan_pb2.FallbackAction, e4.fallback_action)
        return f"{e4.step_id} failed: {e4.error_type}: {e4.error_message} → {action}"
    if kind == "step_skipped":
        return f"{event.step_skipped.step_id} skipped ({event.step_skipped.reason})"
    if kind == "step_delayed":
        return f"{event.step_delayed.step_id} delayed until {when(event.step_delayed.start_at):%H:%M:%S}"
    if kind == "step_waiting":
        w = event.step_waiting
        until = f" (until {when(w.timeout_at):%H:%M:%S})" if w.HasField("timeout_at") else ""
        prompt = f": {w.prompt}" if w.prompt else ""
        return f"{w.step_id} {waiting_for(w.kind, w.gate_id)}{until}{prompt}"
    if kind == "gate_evaluated":
        g = event.gate_evaluated
        outcome = "passed" if g.passed else f"failed → {enum_label(plan_pb2.GateAction, g.action)}"
        return f"gate {g.gate_id} on {g.checkpoint}: score {g.score:.0f}, {outcome}"
    if kind == "signal_received":
        s = event.signal_received
        payload = struct_dict(s.payload)
        detail = f" with {compact_json(payload)}" if payload else ""
        reason = f": {s.reason}" if s.reason else ""
        return f"{s.step_id} got {enum_label(E.Signal, s.signal)}{detail}{reason}"
    return _item_event(event, kind)


def _item_event(event: execution_pb2.ExecutionEvent, kind: str) -> str | None:
    if kind == "step_map_started":
        m = event.step_map_started
        return f"{m.step_id} maps over {m.item_count} items"
    if kind == "step_item_started":
        i1 = event.step_item_started
        return f"{i1.step_id} item {i1.item} started: {i1.agent}.{i1.operation} (attempt {i1.attempt})"
    if kind == "step_item_attempt_failed":
        i2 = event.step_item_attempt_failed
        retry = f", retry at {when(i2.retry_at):%H:%M:%S}" if i2.HasField("retry_at") else ""
        return f"{i2.step_id} item {i2.item} attempt {i2.attempt} failed: {i2.error_type}: {i2.error_message}{retry}"
    if kind == "step_item_succeeded":
        i3 = event.step_item_succeeded
        return f"{i3.step_id} item {i3.item} succeeded (attempt {i3.attempt}, quality {i3.quality.score:.0f})"
    if kind == "step_item_failed":
        i4 = event.step_item_failed
        follows = "skipped" if i4.item_failure == plan_pb2.ITEM_FAILURE_SKIP_ITEM else "the step fails"
        return f"{i4.step_id} item {i4.item} failed: {i4.error_type}: {i4.error_message} → {follows}"
    return None


def item_label(step_id: str, message: Any) -> str:
    """A step's name, with the item of a map step when the message names one ("submit item 2")."""
    return f"{step_id} item {message.item}" if message.HasField("item") else step_id


def items_label(timing: execution_pb2.StepTimingReport) -> str:
    """A map step's items done of total ("2/3 items, 1 skipped"); empty for an ordinary step."""
    if not timing.items_total:
        return ""
    label = f"{timing.items_done}/{timing.items_total} items"
    if timing.items_skipped:
        label += f", {timing.items_skipped} skipped"
    if timing.items_failed:
        label += f", {timing.items_failed} failed"
    return label


def _compensation_event(event: execution_pb2.ExecutionEvent, kind: str) -> str | None:
    if kind == "compensation_started":
        c1 = event.compensation_started
        name = item_label(c1.step_id, c1)
        return f"{name} compensation started: {c1.agent}.{c1.operation} (attempt {c1.attempt})"
    if kind == "compensation_attempt_failed":
        c2 = event.compensation_attempt_failed
        retry = f", retry at {when(c2.retry_at):%H:%M:%S}" if c2.HasField("retry_at") else ", no retry left"
        name = item_label(c2.step_id, c2)
        return f"{name} compensation attempt {c2.attempt} failed: {c2.error_type}: {c2.error_message}{retry}"
    if kind == "compensation_succeeded":
        c3 = event.compensation_succeeded
        return f"{item_label(c3.step_id, c3)} compensated (attempt {c3.attempt}): its effect is undone"
    if kind == "compensation_settled":
        c4 = event.compensation_settled
        name = item_label(c4.step_id, c4)
        if c4.state == E.COMPENSATION_STATE_FAILED:
            return f"{name} compensation FAILED, its effect may remain: {c4.reason}"
        return f"{name} compensation {enum_label(E.CompensationState, c4.state).replace('_', ' ')}: {c4.reason}"
    return None


def callback_line(report: execution_pb2.CallbackReport) -> str:
    """The state of an execution's terminal callback in words (`baton status`)."""
    try:
        state = E.CallbackState.Name(report.state).removeprefix("CALLBACK_STATE_").lower()
    except ValueError:
        state = str(report.state)
    attempts = f", {report.attempts} attempts" if report.attempts else ""
    detail = f": {report.detail}" if report.detail else ""
    return f"{state}{attempts}{detail} (delivery {report.delivery_id})"


def _callback_event(event: execution_pb2.ExecutionEvent, kind: str) -> str | None:
    if kind == "callback_scheduled":
        deadline = event.callback_scheduled.deadline
        until = (
            f" (retried until {when(deadline):%Y-%m-%d %H:%M:%S})"
            if event.callback_scheduled.HasField("deadline")
            else ""
        )
        return f"callback scheduled{until}"
    if kind == "callback_delivered":
        d = event.callback_delivered
        return f"callback delivered: {d.detail} (attempt {d.attempts})"
    if kind == "callback_failed":
        f = event.callback_failed
        return f"callback FAILED after {f.attempts} attempts: {f.detail}"
    return None


def describe_event(event: execution_pb2.ExecutionEvent) -> str:
    """Returns one line saying what an event records."""
    kind = event.WhichOneof("kind")
    if kind is None:
        return "unknown event (from a newer server)"
    for describe in (_execution_event, _step_event, _compensation_event, _callback_event):
        line = describe(event, kind)
        if line is not None:
            return line
    return str(kind)


def waiting_for(kind: int, gate_id: str) -> str:
    """Says what a waiting step waits for: "waiting for approval", "waiting for a decision on gate G"
    or "waiting for agent capacity"."""
    if kind == E.WAIT_KIND_ESCALATION:
        return f"waiting for a decision on gate {gate_id}" if gate_id else "waiting for a decision"
    if kind == E.WAIT_KIND_CAPACITY:
        return "waiting for agent capacity"
    return "waiting for approval"
