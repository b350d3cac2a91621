"""Printed views of one answer each: an execution's status, a plan, the system's health."""

from __future__ import annotations

from baton.v1 import common_pb2, execution_pb2, orchestrator_pb2, plan_pb2, routing_pb2
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from server.cli._common import DEFAULT_TARGET
from server.cli._format import (
    TERMINAL,
    callback_line,
    end_cause,
    enum_label,
    execution_state,
    format_seconds,
    format_setting,
    grid,
    item_label,
    seconds,
    struct_dict,
    styled,
    when,
)
from server.cli._results import step_outputs
from server.cli._view import steps_done, steps_table
from server.cli._waiting import compensations_table, render_paused, render_waiting
from server.engine.model import DEFAULT_MAP_CONCURRENCY

E = execution_pb2


def render_status(console: Console, status: execution_pb2.ExecutionStatus, *, target: str = DEFAULT_TARGET) -> None:
    """Prints an ExecutionStatus as a readable summary, with its waiting steps and compensations.

    Args:
        console: where to print.
        status: the status.
        target: the orchestrator it came from, named in the commands that continue a waiting step.
    """
    perf = status.performance_metrics
    rows: list[tuple[str, RenderableType | str]] = [
        ("execution", status.execution_id),
        ("workflow", f"{status.workflow_type}{version_label(status.workflow_version, status)}"),
        ("user", status.user_id),
        ("state", styled(execution_state(status.status))),
        (
            "progress",
            f"{steps_done(status)}/{status.progress.total_steps} steps ({status.progress.completion_percentage:.0f}%)",
        ),
        ("duration", format_seconds(seconds(perf.total_duration))),
        ("quality", f"{status.quality_metrics.overall_quality_score:.1f}"),
        (
            "errors",
            f"{status.error_summary.total_errors} ({status.error_summary.recovered_errors} recovered, "
            f"{status.error_summary.critical_errors} critical)",
        ),
        ("last sequence", str(status.last_sequence)),
    ]
    if status.resource_usage.cost_estimate:
        rows.insert(-1, ("cost", f"{status.resource_usage.cost_estimate:g}"))
    if status.status not in TERMINAL and status.progress.HasField("estimated_time_remaining"):
        remaining = format_seconds(seconds(status.progress.estimated_time_remaining))
        if status.progress.HasField("estimated_completion"):
            remaining += f" (done about {when(status.progress.estimated_completion):%H:%M:%S} UTC)"
        rows.insert(-1, ("remaining", remaining))
    if status.run > 1:
        rows.append(("run", f"{status.run} (rerun {status.run - 1} times)"))
    if perf.HasField("start_time"):
        rows.insert(4, ("started", f"{when(perf.start_time):%Y-%m-%d %H:%M:%S} UTC"))
    if status.degraded:
        rows.append(("degraded", "; ".join(status.degraded_reasons)))
    if status.end_cause != E.END_CAUSE_UNSPECIFIED:
        rows.append(("cause", end_cause(status.end_cause)))
    if status.failure_reason:
        rows.append(("failure", Text(status.failure_reason, style="red")))
    if status.trace_id:
        rows.append(("trace", status.trace_id))
    if status.HasField("trigger"):
        trigger = status.trigger
        rows.append(
            (
                "trigger",
                Text(f"event {trigger.event_id} ({trigger.event_type}), rule {trigger.rule} v{trigger.rule_version}"),
            )
        )
    if status.HasField("callback"):
        rows.append(("callback", callback_line(status.callback)))
    console.print(grid(rows))
    console.print()
    console.print(steps_table(status, None))
    if status.waiting and status.status not in TERMINAL:
        console.print()
        console.print(render_waiting(status.execution_id, status.waiting, target))
    if status.status == E.EXECUTION_STATE_PAUSED:
        console.print()
        console.print(render_paused(status.execution_id, target))
    undo = compensations_table(status)
    if undo is not None:
        console.print()
        console.print(undo)
    if status.error_summary.error_details:
        console.print()
        errors = Table(box=None, pad_edge=False, header_style="bold", title="errors", title_justify="left")
        for column in ("step", "attempt", "error", "recovery", "impact"):
            errors.add_column(column)
        for err in status.error_summary.error_details:
            errors.add_row(
                item_label(err.step_id, err),
                str(err.attempt or ""),
                f"{err.error_type}: {err.error_message}",
                err.recovery_action + (", user notified" if err.user_notified else ""),
                enum_label(E.Impact, err.impact),
            )
        console.print(errors)
    outputs = step_outputs(status)
    if outputs:
        ordered = [t.step_id for t in status.performance_metrics.step_timings if t.step_id in outputs]
        console.print()
        console.print(f"[bold]results[/bold] of {', '.join(ordered)}  (baton status --json shows them)")
    for text in status.results.recommendations[:5]:
        console.print(f"  • {text}", markup=False)


def _map_of(step: plan_pb2.WorkflowStep) -> str:
    """How a map step runs: "submit runs once per item of ${...} (3 at a time, a failed item skipped)"."""
    at_once = step.max_concurrency or DEFAULT_MAP_CONCURRENCY
    failure = "skipped" if step.item_failure == plan_pb2.ITEM_FAILURE_SKIP_ITEM else "fails the step"
    return f"{step.step_id} runs once per item of {step.for_each} ({at_once} at a time, a failed item {failure})"


def _retries(step: plan_pb2.WorkflowStep, plan: plan_pb2.OrchestrationPlan) -> int:
    if step.error_handling.HasField("retry_count"):
        return step.error_handling.retry_count
    return plan.execution_strategy.retry_policy.max_retries


def _call_of(step: plan_pb2.WorkflowStep) -> str:
    if step.kind == plan_pb2.STEP_KIND_APPROVAL:
        return "approval (waits for a person)"
    return f"{step.agent}.{step.operation}"


def _timeout_of(step: plan_pb2.WorkflowStep) -> str:
    if step.kind == plan_pb2.STEP_KIND_APPROVAL:
        wait = format_setting(seconds(step.approval.timeout)) if step.approval.HasField("timeout") else "1h"
        on_timeout = step.approval.on_timeout or plan_pb2.APPROVAL_TIMEOUT_ACTION_FAIL
        return f"{wait}, then {enum_label(plan_pb2.ApprovalTimeoutAction, on_timeout)}"
    return format_setting(seconds(step.timing.timeout)) if step.timing.HasField("timeout") else "30s"


def _fallback_of(step: plan_pb2.WorkflowStep) -> str:
    fallback = enum_label(plan_pb2.FallbackAction, step.error_handling.fallback_action)
    if step.error_handling.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
        alt = step.error_handling.alternative
        fallback += f" ({alt.agent}.{alt.operation})"
    return "fail" if fallback == "unspecified" else fallback


def version_label(workflow_version: str, carrier: plan_pb2.OrchestrationPlan | E.ExecutionStatus) -> str:
    """ " v1.1.0 (variant b of job_discovery@1.2.0)": the version a plan or an execution is pinned to."""
    label = f" v{workflow_version}" if workflow_version else ""
    if carrier.HasField("variant"):
        label += f" (variant {carrier.variant.name} of {carrier.variant.experiment})"
    return label


def render_plan(console: Console, plan: plan_pb2.OrchestrationPlan) -> None:
    """Prints an OrchestrationPlan: its strategy, its steps as a table, and its quality gates."""
    strategy = plan.execution_strategy
    version = version_label(plan.workflow_version, plan)
    console.print(
        grid(
            [
                ("plan", plan.plan_id),
                ("workflow", f"{plan.workflow_type}{version}"),
                ("user", plan.user_id),
                ("mode", enum_label(plan_pb2.ExecutionMode, strategy.execution_mode)),
                ("priority", enum_label(plan_pb2.Priority, strategy.priority)),
                ("estimated", f"{format_seconds(seconds(plan.estimated_duration))} along the critical path"),
                ("timeout", format_setting(seconds(plan.timeout)) if plan.HasField("timeout") else "default (10m)"),
                ("degraded mode", "allowed" if strategy.fallback_strategy.degraded_mode else "no"),
            ]
        )
    )
    console.print()
    table = Table(box=None, pad_edge=False, header_style="bold")
    undoable = any(step.HasField("compensation") for step in plan.workflow_steps)
    columns = ["step", "agent.operation", "depends on", "estimate", "timeout", "retries", "fallback", "optional"]
    for column in [*columns, "undone by"] if undoable else columns:
        table.add_column(column)
    for step in plan.workflow_steps:
        row = [
            step.step_id,
            _call_of(step),
            ", ".join(step.dependencies) or "—",
            _estimate_of(step),
            _timeout_of(step),
            str(_retries(step, plan)),
            _fallback_of(step),
            "yes" if step.optional else "",
        ]
        if undoable:
            undo = step.compensation
            row.append(f"{undo.agent}.{undo.operation}" if step.HasField("compensation") else "")
        table.add_row(*row)
    console.print(table)
    for step in plan.workflow_steps:
        if step.kind == plan_pb2.STEP_KIND_APPROVAL and step.approval.prompt:
            console.print(f"approval {step.step_id} asks: {step.approval.prompt}", markup=False)
        if step.for_each:
            console.print(_map_of(step), markup=False)
    for gate in plan.quality_gates:
        criteria = ", ".join(
            f"{c.metric} {enum_label(plan_pb2.ComparisonOperator, c.operator)} {c.value:g} (w{c.weight:g})"
            for c in gate.criteria
        )
        action = enum_label(plan_pb2.GateAction, gate.action_on_failure)
        console.print(f"gate {gate.gate_id} after {gate.checkpoint}: {criteria}; on failure {action}", markup=False)


def _estimate_of(step: plan_pb2.WorkflowStep) -> str:
    """ "0.012s p50 of 50 runs (p95 0.3s)" from history, or "0.5s declared": a step's estimate and its source."""
    timing = step.timing
    estimate = format_seconds(seconds(timing.estimated_duration))
    if timing.estimate_source != plan_pb2.ESTIMATE_SOURCE_HISTORY:
        return f"{estimate} declared"
    p95 = f", p95 {format_seconds(seconds(timing.estimated_p95))}" if timing.HasField("estimated_p95") else ""
    return f"{estimate} (p50 of {timing.estimate_samples}{p95})"


def render_health(console: Console, health: orchestrator_pb2.SystemHealth) -> None:
    """Prints SystemHealth: the overall figures and a table of agents."""
    util = health.resource_utilization
    console.print(
        grid(
            [
                ("overall", styled(enum_label(orchestrator_pb2.OverallHealth, health.overall_health))),
                ("active workflows", str(health.active_workflows)),
                ("queue depth", str(health.queue_depth)),
                ("cpu / memory / storage", f"{util.cpu:.1f}% / {util.memory:.1f}% / {util.storage:.1f}%"),
            ]
        )
    )
    console.print()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in (
        ("agent", "left"),
        ("status", "left"),
        ("load", "right"),
        ("response time", "right"),
        ("error rate", "right"),
        ("queue", "right"),
        ("served", "right"),
        ("breaker", "left"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, agent in sorted(health.agent_statuses.items()):
        table.add_row(
            name,
            styled(enum_label(common_pb2.AgentHealth, agent.status)),
            f"{agent.load:.0f}",
            f"{seconds(agent.response_time) * 1000:.1f} ms",
            f"{agent.error_rate:.1f}%",
            str(agent.queue_depth),
            str(agent.requests_served),
            str(struct_dict(agent.metrics).get("circuit_breaker", "")),
        )
    console.print(table)
    _render_routes(console, health)


def _render_routes(console: Console, health: orchestrator_pb2.SystemHealth) -> None:
    """Prints the agents' endpoints, when some agent has several (README: Routing across agent replicas)."""
    if all(len(routes.endpoints) <= 1 for routes in health.routes.values()):
        return
    console.print()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column, justify in (
        ("agent", "left"),
        ("endpoint", "left"),
        ("state", "left"),
        ("requests", "right"),
        ("errors", "right"),
        ("in flight", "right"),
        ("latency ewma", "right"),
        ("ejections", "right"),
        ("hedges", "right"),
    ):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for name, routes in sorted(health.routes.items()):
        for route in routes.endpoints:
            try:
                state = routing_pb2.EndpointState.Name(route.state).removeprefix("ENDPOINT_STATE_").lower()
            except ValueError:  # a state this CLI does not know yet
                state = str(route.state)
            if route.state == routing_pb2.ENDPOINT_STATE_EJECTED:
                state += f" ({seconds(route.ejected_for):.0f} s left)"
            table.add_row(
                name,
                route.address,
                state,
                str(route.requests),
                str(route.errors),
                str(route.in_flight),
                f"{seconds(route.latency_ewma) * 1000:.1f} ms",
                str(route.ejections),
                str(route.hedges),
            )
    console.print(table)
