"""Terminal rendering for the baton CLI: live execution progress, plans, statuses and health."""

from __future__ import annotations

import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

from baton.v1 import (
    automation_pb2,
    common_pb2,
    execution_pb2,
    orchestrator_pb2,
    plan_pb2,
)
from google.protobuf import duration_pb2, json_format, struct_pb2, timestamp_pb2
from google.protobuf.message import Message
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

E = execution_pb2

TERMINAL = frozenset({E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED})
"""Execution states after which nothing more happens."""

_DONE_STEPS = frozenset({E.STEP_STATE_COMPLETED, E.STEP_STATE_FAILED, E.STEP_STATE_SKIPPED})

_STYLES = {
    "completed": "green",
    "running": "cyan",
    "pending": "dim",
    "queued": "dim",
    "failed": "red",
    "cancelled": "yellow",
    "skipped": "yellow",
    "paused": "magenta",
    "healthy": "green",
    "degraded": "yellow",
    "offline": "red",
    "critical": "red",
}


# ---- small formatting helpers ---------------------------------------------------------------


def make_console() -> Console:
    """Returns the stdout console; off a terminal it is wide enough not to wrap tables."""
    return Console(highlight=False) if sys.stdout.isatty() else Console(highlight=False, width=140)


def label(full_name: str) -> str:
    """Returns an enum value name without its type prefix, in lower case (EXECUTION_STATE_FAILED → failed)."""
    for prefix in (
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
    ):
        if full_name.startswith(prefix):
            return full_name[len(prefix) :].lower()
    return full_name.lower()


def execution_state(value: int) -> str:
    """Returns the short name of an ExecutionState value."""
    return label(E.ExecutionState.Name(value))


def step_state(value: int) -> str:
    """Returns the short name of a StepState value."""
    return label(E.StepState.Name(value))


def styled(name: str) -> Text:
    """Returns a state name coloured by what it means."""
    return Text(name, style=_STYLES.get(name, ""))


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


def _when(ts: timestamp_pb2.Timestamp) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)


def to_json(message: Message) -> dict[str, Any]:
    """Returns a message as JSON with proto field names."""
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


# ---- events and progress ----------------------------------------------------------------------


def describe_event(event: execution_pb2.ExecutionEvent) -> str:
    """Returns one line saying what an event records."""
    kind = event.WhichOneof("kind")
    if kind == "execution_started":
        plan = event.execution_started.plan
        return f"execution started: plan {plan.plan_id}, {len(plan.workflow_steps)} steps"
    if kind == "step_started":
        e1 = event.step_started
        return f"{e1.step_id} started: {e1.agent}.{e1.operation} (attempt {e1.attempt})"
    if kind == "step_attempt_failed":
        e2 = event.step_attempt_failed
        retry = f", retry at {_when(e2.retry_at):%H:%M:%S}" if e2.HasField("retry_at") else ""
        return f"{e2.step_id} attempt {e2.attempt} failed: {e2.error_type}: {e2.error_message}{retry}"
    if kind == "step_succeeded":
        e3 = event.step_succeeded
        return f"{e3.step_id} succeeded (attempt {e3.attempt}, quality {e3.quality.score:.0f})"
    if kind == "step_failed":
        e4 = event.step_failed
        action = label(plan_pb2.FallbackAction.Name(e4.fallback_action))
        return f"{e4.step_id} failed: {e4.error_type}: {e4.error_message} → {action}"
    if kind == "step_skipped":
        return f"{event.step_skipped.step_id} skipped ({event.step_skipped.reason})"
    if kind == "step_delayed":
        return f"{event.step_delayed.step_id} delayed until {_when(event.step_delayed.start_at):%H:%M:%S}"
    if kind == "gate_evaluated":
        g = event.gate_evaluated
        outcome = "passed" if g.passed else f"failed → {label(plan_pb2.GateAction.Name(g.action))}"
        return f"gate {g.gate_id} on {g.checkpoint}: score {g.score:.0f}, {outcome}"
    if kind == "execution_completed":
        return "execution completed"
    if kind == "execution_failed":
        return f"execution failed: {event.execution_failed.reason}"
    if kind == "execution_cancelled":
        return f"execution cancelled: {event.execution_cancelled.reason}"
    return kind or "unknown event"


def steps_done(status: execution_pb2.ExecutionStatus) -> int:
    """Returns the number of steps completed, failed or skipped."""
    return sum(1 for t in status.performance_metrics.step_timings if t.status in _DONE_STEPS)


def summary_line(status: execution_pb2.ExecutionStatus) -> str:
    """Returns the one-line outcome of an execution."""
    state = execution_state(status.status)
    total = status.progress.total_steps
    took = format_seconds(seconds(status.performance_metrics.total_duration))
    errors = status.error_summary.total_errors
    line = f"execution {status.execution_id} {state} in {took}: {steps_done(status)}/{total} steps, {errors} errors"
    if status.degraded:
        line += f" (degraded: {'; '.join(status.degraded_reasons)})"
    if status.failure_reason:
        line += f"\nreason: {status.failure_reason}"
    return line


def steps_table(
    status: execution_pb2.ExecutionStatus | None,
    plan: plan_pb2.OrchestrationPlan | None,
    *,
    now: datetime | None = None,
) -> Table:
    """Returns a table of the steps: state, agent.operation, attempts, duration."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("step")
    table.add_column("state")
    table.add_column("agent.operation")
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    if status is not None and status.performance_metrics.step_timings:
        for timing in status.performance_metrics.step_timings:
            if timing.HasField("duration"):
                took = format_seconds(seconds(timing.duration))
            elif timing.HasField("start_time") and timing.status == E.STEP_STATE_RUNNING:
                elapsed = ((now or datetime.now(UTC)) - _when(timing.start_time)).total_seconds()
                took = format_seconds(max(elapsed, 0.0)) + "…"
            else:
                took = ""
            table.add_row(
                timing.step_id,
                styled(step_state(timing.status)),
                f"{timing.agent}.{timing.operation}",
                str(timing.attempts or ""),
                took,
            )
    elif plan is not None:
        for step in plan.workflow_steps:
            table.add_row(step.step_id, styled("pending"), f"{step.agent}.{step.operation}", "", "")
    return table


class ExecutionView:
    """Shows an execution's progress: a live bar and step table on a terminal, else one line per update."""

    def __init__(
        self,
        console: Console,
        execution_id: str,
        *,
        live: bool,
        plan: plan_pb2.OrchestrationPlan | None = None,
    ) -> None:
        self.console = console
        self.execution_id = execution_id
        self.plan = plan
        self.live = live
        self.status: execution_pb2.ExecutionStatus | None = None
        self.last_event = ""
        self.notes: list[str] = []
        self._live: Live | None = None
        self._spinner = Spinner("dots")

    def __enter__(self) -> ExecutionView:
        if self.live:
            self._live = Live(self, console=self.console, refresh_per_second=10, transient=False)
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def update(self, update: orchestrator_pb2.ExecutionUpdate) -> None:
        """Takes one update from WatchExecution."""
        self.status = update.status
        self.last_event = f"#{update.sequence} {describe_event(update.event)}"
        if self._live is None:
            status = update.status
            state = execution_state(status.status)
            print(
                f"{self.last_event}  [{steps_done(status)}/{status.progress.total_steps} steps, {state}]",
                flush=True,
            )

    def finish(self, status: execution_pb2.ExecutionStatus) -> None:
        """Takes the final status (when it came from GetExecution rather than the stream)."""
        self.status = status

    def note(self, message: str) -> None:
        """Shows a message about the watch itself (a reconnect, say)."""
        if self._live is None:
            print(message, file=sys.stderr, flush=True)
        else:
            self.notes = [*self.notes[-2:], message]

    @staticmethod
    def _elapsed(status: execution_pb2.ExecutionStatus | None) -> str:
        if status is None:
            return ""
        perf = status.performance_metrics
        if status.status not in TERMINAL and perf.HasField("start_time"):
            return format_seconds(max((datetime.now(UTC) - _when(perf.start_time)).total_seconds(), 0.0))
        return format_seconds(seconds(perf.total_duration))

    def __rich__(self) -> RenderableType:
        status = self.status
        planned = len(self.plan.workflow_steps) if self.plan is not None else 0
        total = status.progress.total_steps if status is not None else planned
        done = steps_done(status) if status is not None else 0
        state = execution_state(status.status) if status is not None else "queued"
        workflow = status.workflow_type if status is not None else (self.plan.workflow_type if self.plan else "")
        header = Table.grid(padding=(0, 1))
        header.add_row(
            self._spinner if state in ("running", "queued") else Text("●", style=_STYLES.get(state, "")),
            Text(f"execution {self.execution_id}", style="bold"),
            Text(workflow),
            styled(state),
        )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(total, 1), completed=done, width=40),
            Text(f"{done}/{total} steps"),
            Text(self._elapsed(status), style="dim"),
        )
        parts: list[RenderableType] = [header, bar, steps_table(status, self.plan)]
        if self.last_event:
            parts.append(Text(self.last_event, style="dim"))
        parts.extend(Text(n, style="yellow") for n in self.notes)
        return Group(*parts)


# ---- status, plan, health ---------------------------------------------------------------------


def _grid(rows: Sequence[tuple[str, RenderableType | str]]) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def render_status(console: Console, status: execution_pb2.ExecutionStatus) -> None:
    """Prints an ExecutionStatus as a readable summary."""
    perf = status.performance_metrics
    rows: list[tuple[str, RenderableType | str]] = [
        ("execution", status.execution_id),
        ("workflow", status.workflow_type),
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
    if perf.HasField("start_time"):
        rows.insert(4, ("started", f"{_when(perf.start_time):%Y-%m-%d %H:%M:%S} UTC"))
    if status.degraded:
        rows.append(("degraded", "; ".join(status.degraded_reasons)))
    if status.failure_reason:
        rows.append(("failure", Text(status.failure_reason, style="red")))
    console.print(_grid(rows))
    console.print()
    console.print(steps_table(status, None))
    if status.error_summary.error_details:
        console.print()
        errors = Table(box=None, pad_edge=False, header_style="bold", title="errors", title_justify="left")
        for column in ("step", "attempt", "error", "recovery", "impact"):
            errors.add_column(column)
        for err in status.error_summary.error_details:
            errors.add_row(
                err.step_id,
                str(err.attempt or ""),
                f"{err.error_type}: {err.error_message}",
                err.recovery_action,
                label(E.Impact.Name(err.impact)),
            )
        console.print(errors)
    outputs = step_outputs(status)
    if outputs:
        ordered = [t.step_id for t in status.performance_metrics.step_timings if t.step_id in outputs]
        console.print()
        console.print(f"[bold]results[/bold] of {', '.join(ordered)}  (baton status --json shows them)")
    for text in status.results.recommendations[:5]:
        console.print(f"  • {text}", markup=False)


def _retries(step: plan_pb2.WorkflowStep, plan: plan_pb2.OrchestrationPlan) -> int:
    if step.error_handling.HasField("retry_count"):
        return step.error_handling.retry_count
    return plan.execution_strategy.retry_policy.max_retries


def render_plan(console: Console, plan: plan_pb2.OrchestrationPlan) -> None:
    """Prints an OrchestrationPlan: its strategy, its steps as a table, and its quality gates."""
    strategy = plan.execution_strategy
    version = f" v{plan.workflow_version}" if plan.workflow_version else ""
    console.print(
        _grid(
            [
                ("plan", plan.plan_id),
                ("workflow", f"{plan.workflow_type}{version}"),
                ("user", plan.user_id),
                ("mode", label(plan_pb2.ExecutionMode.Name(strategy.execution_mode))),
                ("priority", label(plan_pb2.Priority.Name(strategy.priority))),
                ("estimated", format_setting(seconds(plan.estimated_duration))),
                ("timeout", format_setting(seconds(plan.timeout)) if plan.HasField("timeout") else "default (10m)"),
                ("degraded mode", "allowed" if strategy.fallback_strategy.degraded_mode else "no"),
            ]
        )
    )
    console.print()
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("step", "agent.operation", "depends on", "timeout", "retries", "fallback", "optional"):
        table.add_column(column)
    for step in plan.workflow_steps:
        timeout = format_setting(seconds(step.timing.timeout)) if step.timing.HasField("timeout") else "30s"
        fallback = label(plan_pb2.FallbackAction.Name(step.error_handling.fallback_action))
        if step.error_handling.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
            alt = step.error_handling.alternative
            fallback += f" ({alt.agent}.{alt.operation})"
        table.add_row(
            step.step_id,
            f"{step.agent}.{step.operation}",
            ", ".join(step.dependencies) or "—",
            timeout,
            str(_retries(step, plan)),
            "fail" if fallback == "unspecified" else fallback,
            "yes" if step.optional else "",
        )
    console.print(table)
    for gate in plan.quality_gates:
        criteria = ", ".join(
            f"{c.metric} {label(plan_pb2.ComparisonOperator.Name(c.operator))} {c.value:g} (w{c.weight:g})"
            for c in gate.criteria
        )
        action = label(plan_pb2.GateAction.Name(gate.action_on_failure))
        console.print(f"gate {gate.gate_id} after {gate.checkpoint}: {criteria}; on failure {action}", markup=False)


def render_health(console: Console, health: orchestrator_pb2.SystemHealth) -> None:
    """Prints SystemHealth: the overall figures and a table of agents."""
    util = health.resource_utilization
    console.print(
        _grid(
            [
                ("overall", styled(label(orchestrator_pb2.OverallHealth.Name(health.overall_health)))),
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
            styled(label(common_pb2.AgentHealth.Name(agent.status))),
            f"{agent.load:.0f}",
            f"{seconds(agent.response_time) * 1000:.1f} ms",
            f"{agent.error_rate:.1f}%",
            str(agent.queue_depth),
            str(agent.requests_served),
            str(_struct_dict(agent.metrics).get("circuit_breaker", "")),
        )
    console.print(table)


# ---- results --------------------------------------------------------------------------------


def step_outputs(status: execution_pb2.ExecutionStatus) -> dict[str, dict[str, Any]]:
    """Returns every completed step's response as JSON, keyed by step_id (intermediate and primary)."""
    outputs: dict[str, dict[str, Any]] = {}
    for struct in (status.results.intermediate_results, status.results.primary_outputs):
        for step_id, value in _struct_dict(struct).items():
            if isinstance(value, dict):
                outputs[step_id] = value
    return outputs


def _struct_dict(struct: struct_pb2.Struct) -> dict[str, Any]:
    return json_format.MessageToDict(struct)


def outputs_of(
    plan: plan_pb2.OrchestrationPlan, outputs: Mapping[str, dict[str, Any]], operation: str
) -> list[dict[str, Any]]:
    """Returns the outputs of the plan's steps that call `operation`, in plan order."""
    return [outputs[s.step_id] for s in plan.workflow_steps if s.operation == operation and s.step_id in outputs]


def render_journey_results(
    console: Console,
    plan: plan_pb2.OrchestrationPlan,
    status: execution_pb2.ExecutionStatus,
    applications: Sequence[automation_pb2.Application],
    *,
    top: int = 5,
) -> None:
    """Prints what a job-application journey found: the resume analysis, the best matches, the applications."""
    outputs = step_outputs(status)
    for analysis in outputs_of(plan, outputs, "AnalyzeDocument")[:1]:
        console.print("[bold]Resume analysis[/bold]")
        years = analysis.get("years_experience", 0)
        rows: list[tuple[str, RenderableType | str]] = [
            ("candidate", str(analysis.get("candidate_name", "—"))),
            ("titles", ", ".join(analysis.get("titles", [])) or "—"),
            ("experience", f"{years:g} years"),
            ("skills", ", ".join(analysis.get("skills", [])) or "—"),
            ("profile", f"{analysis.get('profile_completeness', 0):.0f}% complete"),
        ]
        console.print(_grid(rows))
        console.print()
    searches = outputs_of(plan, outputs, "SearchJobs")
    if searches:
        found = sum(int(s.get("total_matches", len(s.get("jobs", [])))) for s in searches)
        boards = sorted({b for s in searches for b in s.get("sources_searched", [])})
        console.print(f"[bold]Job search[/bold]: {found} postings on {', '.join(boards) or 'the boards'}")
        console.print()
    titles: dict[str, str] = {}
    for scored in outputs_of(plan, outputs, "ScoreMatches")[:1]:
        matches = scored.get("matches", [])
        table = Table(
            box=None, pad_edge=False, header_style="bold", title=f"Top matches ({len(matches)})", title_justify="left"
        )
        for column, justify in (("score", "right"), ("title", "left"), ("company", "left"), ("job", "left")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for match in matches:
            titles[str(match.get("job_id", ""))] = f"{match.get('title', '')} at {match.get('company', '')}"
        for match in matches[:top]:
            table.add_row(
                f"{float(match.get('score', 0)):.1f}",
                str(match.get("title", "")),
                str(match.get("company", "")),
                str(match.get("job_id", "")),
            )
        console.print(table)
        console.print()
    table = Table(
        box=None, pad_edge=False, header_style="bold", title=f"Applications ({len(applications)})", title_justify="left"
    )
    for column in ("job", "state", "board", "application", "for"):
        table.add_column(column)
    for app in applications:
        table.add_row(
            app.job_id,
            styled(label(automation_pb2.ApplicationState.Name(app.state))),
            app.source,
            app.application_id,
            titles.get(app.job_id, ""),
        )
    console.print(table)
