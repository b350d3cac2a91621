"""What a finished journey produced (analysis, matches, applications) and how its failures were handled."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from baton.v1 import automation_pb2, execution_pb2, plan_pb2
from rich.console import Console, RenderableType
from rich.table import Table

from server.cli._format import end_cause, enum_label, execution_state, grid, item_label, struct_dict, styled
from server.cli._waiting import compensation_label

E = execution_pb2

CIRCUIT_OPEN = "CIRCUIT_OPEN"
"""The error type of an attempt an open circuit breaker refused without calling the agent."""
RETRY_BUDGET_EXHAUSTED = "RETRY_BUDGET_EXHAUSTED"
"""The error type of a retry the agent's retry budget refused without calling the agent."""


def step_outputs(status: execution_pb2.ExecutionStatus) -> dict[str, dict[str, Any]]:
    """Returns every completed step's response as JSON, keyed by step_id (intermediate and primary)."""
    outputs: dict[str, dict[str, Any]] = {}
    for struct in (status.results.intermediate_results, status.results.primary_outputs):
        for step_id, value in struct_dict(struct).items():
            if isinstance(value, dict):
                outputs[step_id] = value
    return outputs


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
        console.print(grid(rows))
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
    if not applications:
        console.print("[bold]Applications[/bold]: none submitted")
        return
    table = Table(
        box=None, pad_edge=False, header_style="bold", title=f"Applications ({len(applications)})", title_justify="left"
    )
    for column in ("job", "state", "board", "application", "for"):
        table.add_column(column)
    for app in applications:
        table.add_row(
            app.job_id,
            styled(enum_label(automation_pb2.ApplicationState, app.state)),
            app.source,
            app.application_id,
            titles.get(app.job_id, ""),
        )
    console.print(table)


# ---- how failures were handled ---------------------------------------------------------------


@dataclass
class RunReport:
    """What went wrong during a run and what the orchestrator did about it, one line per fact."""

    retries: list[str] = field(default_factory=list)
    """Per step: how many attempts were retried, and why."""
    retry_count: int = 0
    """Attempts that failed and were retried."""
    breaker_trips: list[str] = field(default_factory=list)
    """Per agent: the attempts an open circuit breaker refused."""
    breaker_count: int = 0
    """Attempts refused by an open breaker (failed with CIRCUIT_OPEN)."""
    breaker_waits: int = 0
    """Of those, the attempts parked until the breaker's probe time (spending no retry)."""
    budget_refusals: int = 0
    """Retries the agent's retry budget refused unsent (RETRY_BUDGET_EXHAUSTED)."""
    boards: list[str] = field(default_factory=list)
    """Job boards avoided or limited, and what that did (filled by the caller that knows them)."""
    capacity: list[str] = field(default_factory=list)
    """Calls held by a bulkhead or a rate limit (filled by the caller that knows them)."""
    fallbacks: list[str] = field(default_factory=list)
    """Steps skipped or switched to an alternative after failing, or skipped in degraded mode, and
    map steps' items skipped after failing."""
    fallback_count: int = 0
    """Steps (and items) that fell back (one that switched to its alternative and was then skipped
    counts once)."""
    items_fell_back: bool = False
    """Whether some of the fallbacks are map steps' items."""
    gates: list[str] = field(default_factory=list)
    """Quality gates that failed, and their action."""
    compensations: list[str] = field(default_factory=list)
    """Per compensated step (or map step's item): the undoing call and its outcome."""
    outcome: str = ""
    """The execution's end, its cause and reason."""

    @property
    def quiet(self) -> bool:
        """Whether nothing failed at all."""
        return not (self.retries or self.breaker_trips or self.fallbacks or self.gates or self.compensations)


def _count(count: int, one: str, many: str = "") -> str:
    """`1 retry`, `2 retries`: the count with the word in the right number."""
    return f"{count} {one if count == 1 else (many or one + 's')}"


def run_report(status: execution_pb2.ExecutionStatus, events: Sequence[execution_pb2.ExecutionEvent]) -> RunReport:
    """Reads a run's retries, breaker trips, fallbacks, gate failures and compensations from its history.

    Args:
        status: the execution's final status (its compensations and step timings).
        events: its events, in sequence order.
    """
    report = RunReport()
    agents: dict[tuple[str, int, bool], str] = {}
    # (step, how it fell back) → the line: a skip is recorded as step_failed then step_skipped, and
    # the skip's cause (fallback or degraded mode) replaces the first line instead of adding one.
    fallbacks: dict[tuple[str, str], str] = {}
    retried: dict[str, Counter[str]] = defaultdict(Counter)
    refused: dict[str, list[str]] = defaultdict(list)
    timings = {t.step_id: t for t in status.performance_metrics.step_timings}
    for event in events:
        kind = event.WhichOneof("kind")
        if kind == "step_started":
            s = event.step_started
            agents[(s.step_id, s.attempt, False)] = s.agent
        elif kind == "step_item_started":
            i = event.step_item_started
            agents[(f"{i.step_id} item {i.item}", i.attempt, False)] = i.agent
        elif kind == "compensation_started":
            c = event.compensation_started
            agents[(item_label(c.step_id, c), c.attempt, True)] = c.agent
        elif kind in ("step_attempt_failed", "step_item_attempt_failed", "compensation_attempt_failed"):
            undo = kind == "compensation_attempt_failed"
            f = getattr(event, kind)
            if kind == "step_item_attempt_failed":
                who = f"{f.step_id} item {f.item}"
            else:
                who = item_label(f.step_id, f) if undo else f.step_id
            name = f"{who} (compensation)" if undo else who
            if f.HasField("retry_at"):
                retried[name][f.error_type] += 1
                report.retry_count += 1
            if f.error_type == CIRCUIT_OPEN:
                agent = agents.get((who, f.attempt, undo), "?")
                refused[agent].append(f"{name} attempt {f.attempt}")
                report.breaker_count += 1
                report.breaker_waits += not undo and bool(getattr(f, "circuit_wait", False))
            elif f.error_type == RETRY_BUDGET_EXHAUSTED:
                report.budget_refusals += 1
        elif kind == "step_item_failed" and event.step_item_failed.item_failure == plan_pb2.ITEM_FAILURE_SKIP_ITEM:
            fi = event.step_item_failed
            who = f"{fi.step_id} item {fi.item}"
            fallbacks[(who, "skip")] = f"{who} skipped after failing ({fi.error_type})"
            report.items_fell_back = True
        elif kind == "step_failed":
            sf = event.step_failed
            if sf.fallback_action == plan_pb2.FALLBACK_ACTION_SKIP:
                fallbacks[(sf.step_id, "skip")] = f"{sf.step_id} skipped after failing ({sf.error_type})"
            elif sf.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
                timing = timings.get(sf.step_id)
                alternative = f" {timing.agent}.{timing.operation}" if timing is not None else ""
                line = f"{sf.step_id} switched to its alternative{alternative} ({sf.error_type})"
                fallbacks[(sf.step_id, "alternative")] = line
        elif kind == "step_skipped":
            sk = event.step_skipped
            if sk.cause == E.SKIP_CAUSE_DEGRADED:
                fallbacks[(sk.step_id, "skip")] = f"{sk.step_id} skipped in degraded mode: {sk.reason}"
            elif sk.cause == E.SKIP_CAUSE_APPROVAL_TIMEOUT:
                fallbacks[(sk.step_id, "skip")] = f"{sk.step_id} skipped: {sk.reason}"
        elif kind == "gate_evaluated" and not event.gate_evaluated.passed:
            g = event.gate_evaluated
            action = enum_label(plan_pb2.GateAction, g.action).replace("_", " ")
            report.gates.append(f"{g.gate_id} on {g.checkpoint}: score {g.score:.0f} → {action}")
    report.fallbacks = list(fallbacks.values())
    report.fallback_count = len({step_id for step_id, _ in fallbacks})
    for name, errors in retried.items():
        why = ", ".join(f"{n} {error}" for error, n in errors.items())
        report.retries.append(f"{name}: {_count(sum(errors.values()), 'retry', 'retries')} after {why}")
    for agent, attempts in refused.items():
        report.breaker_trips.append(f"{agent}: refused {', '.join(attempts)}")
    for undo in status.compensations:
        tries = f", {_count(undo.attempts, 'attempt')}" if undo.attempts else ""
        error = f": {undo.error_message}" if undo.state == E.COMPENSATION_STATE_FAILED and undo.error_message else ""
        name = item_label(undo.step_id, undo)
        report.compensations.append(
            f"{name} by {undo.agent}.{undo.operation}: {compensation_label(undo.state)}{tries}{error}"
        )
    report.outcome = execution_state(status.status)
    if status.end_cause != E.END_CAUSE_UNSPECIFIED:
        report.outcome += f" ({end_cause(status.end_cause)})"
    if status.failure_reason:
        report.outcome += f": {status.failure_reason}"
    return report


def render_run_report(console: Console, report: RunReport) -> None:
    """Prints a RunReport: a heading, then one row per kind of handling, each with its facts."""
    console.print("[bold]How failures were handled[/bold]")
    if report.quiet:
        console.print("nothing failed: no retry, no breaker trip, no fallback, nothing to undo", markup=False)
        quiet: list[tuple[str, RenderableType | str]] = []
        if report.boards:
            quiet.append(("job boards", "\n".join(report.boards)))
        if report.capacity:
            quiet.append(("capacity", "\n".join(report.capacity)))
        console.print(grid([*quiet, ("outcome", report.outcome)]))
        return
    refusals = _count(report.breaker_count, "attempt") + " refused by an open breaker"
    if report.breaker_waits:
        refusals += f" ({report.breaker_waits} waited for its probe time, spending no retry)"
    breaker_lines = [refusals, *report.breaker_trips]
    if report.budget_refusals:
        breaker_lines.append(_count(report.budget_refusals, "retry", "retries") + " refused by the retry budget")
    rows: list[tuple[str, RenderableType | str]] = [
        ("retries", "\n".join([_count(report.retry_count, "attempt") + " retried", *report.retries])),
        ("breaker trips", "\n".join(breaker_lines)),
        (
            "fallbacks",
            "\n".join(
                [
                    _count(
                        report.fallback_count,
                        *(("step or item", "steps or items") if report.items_fell_back else ("step",)),
                    )
                    + " fell back",
                    *report.fallbacks,
                ]
            ),
        ),
        (
            "compensations",
            # A map step's items are undone one by one: each is an effect of its own.
            "\n".join([_count(len(report.compensations), "effect") + " to undo", *report.compensations]),
        ),
    ]
    if report.gates:
        rows.insert(3, ("failed gates", "\n".join(report.gates)))
    if report.boards:
        rows.append(("job boards", "\n".join(report.boards)))
    if report.capacity:
        rows.append(("capacity", "\n".join(report.capacity)))
    rows.append(("outcome", report.outcome))
    console.print(grid(rows))
