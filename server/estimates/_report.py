"""A workflow type's report from its ended executions: outcomes, time, cost, critical path, advice.

Rules:
1. Executions are read newest first; each one's cost is its status's cost_estimate (calls made times
   the prices its plan carried), each operation's calls and retries are summed over them
   (server/engine/calls.py), each call priced as its own execution's plan priced it.
2. A step's measured duration is its first start to its end (retries and their waits
   included), averaged over the executions where it completed.
3. The critical path is the longest chain of the newest execution's plan under those means (a
   step never measured counts 0); each step's share is its mean over the path's length.
4. Recommendations: the critical path's largest step (said to dominate it from DOMINANT_SHARE
   of the path on); the operation whose retries cost most, when any retry cost anything.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from baton.v1 import execution_pb2, reports_pb2
from google.protobuf import duration_pb2

from server.engine.calls import cost_of
from server.engine.state import ExecutionState
from server.estimates._recorder import OperationStats

__all__ = ["DOMINANT_SHARE", "workflow_report"]

DOMINANT_SHARE = 40.0
"""Percent of the critical path from which its largest step is called dominant (rule 4)."""

E = execution_pb2


def _duration(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(round(max(seconds, 0.0) * 1e9))
    return d


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return 0.0
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


@dataclass
class _Operation:
    calls: int = 0
    retries: int = 0
    cost: float = 0.0
    retry_cost: float = 0.0


def workflow_report(
    workflow_type: str,
    states: Sequence[ExecutionState],
    stats: Callable[[str, str], OperationStats | None],
    unit_cost: Callable[[str, str], float],
) -> reports_pb2.WorkflowReport:
    """The report of `states` (ended executions of the type, newest first; rules at the top).

    Args:
        workflow_type: the type reported.
        states: the executions' folded states, newest first.
        stats: the recorded durations of an operation (DurationRecorder.stats).
        unit_cost: the current price of one call (CostModel.unit_cost).
    """
    report = reports_pb2.WorkflowReport(workflow_type=workflow_type, executions=len(states))
    durations: list[float] = []
    operations: dict[tuple[str, str], _Operation] = {}
    step_seconds: dict[str, list[float]] = {}
    for state in states:
        if state.status == E.EXECUTION_STATE_COMPLETED:
            report.completed += 1
        else:
            report.failed += 1
        if state.start_time is not None and state.end_time is not None:
            durations.append((state.end_time.ToNanoseconds() - state.start_time.ToNanoseconds()) / 1e9)
        prices = state.started.plan.unit_costs
        report.total_cost += cost_of(state.calls, prices)
        for (agent, operation), tally in state.calls.items():
            entry = operations.setdefault((agent, operation), _Operation())
            price = float(prices.get(f"{agent}.{operation}", 0.0))
            entry.calls += tally.calls
            entry.retries += tally.retries
            entry.cost += tally.calls * price
            entry.retry_cost += tally.retries * price
        for sid, run in state.steps.items():
            if run.state == E.STEP_STATE_COMPLETED and run.start_time is not None and run.end_time is not None:
                seconds = (run.end_time.ToNanoseconds() - run.start_time.ToNanoseconds()) / 1e9
                step_seconds.setdefault(sid, []).append(seconds)
    if states:
        report.mean_cost = report.total_cost / len(states)
    if durations:
        report.duration_p50.CopyFrom(_duration(_quantile(durations, 0.5)))
        report.duration_p95.CopyFrom(_duration(_quantile(durations, 0.95)))
    for (agent, operation), entry in sorted(operations.items(), key=lambda kv: (-kv[1].cost, kv[0])):
        row = report.operations.add(
            agent=agent,
            operation=operation,
            calls=entry.calls,
            retries=entry.retries,
            cost=entry.cost,
            retry_cost=entry.retry_cost,
            unit_cost=unit_cost(agent, operation),
        )
        recorded = stats(agent, operation)
        if recorded is not None:
            row.samples = recorded.samples
            row.p50.CopyFrom(_duration(recorded.p50))
            row.p95.CopyFrom(_duration(recorded.p95))
            row.p99.CopyFrom(_duration(recorded.p99))
    means = {sid: statistics.fmean(values) for sid, values in step_seconds.items()}
    if states:
        _critical_path(report, states[0], means)
    report.recommendations.extend(_advice(report, {sid: len(v) for sid, v in step_seconds.items()}))
    return report


def _critical_path(report: reports_pb2.WorkflowReport, newest: ExecutionState, means: dict[str, float]) -> None:
    plan = newest.plan
    finish: dict[str, float] = {}
    previous: dict[str, str] = {}
    for sid in plan.order:
        start = 0.0
        for dep in plan.steps[sid].dependencies:
            if dep in finish and finish[dep] > start:
                start, previous[sid] = finish[dep], dep
        finish[sid] = start + means.get(sid, 0.0)
    if not finish:
        return
    last = max(plan.order, key=lambda sid: finish[sid])
    total = finish[last]
    path = [last]
    while path[-1] in previous:
        path.append(previous[path[-1]])
    for sid in reversed(path):
        call = plan.steps[sid].call
        mean = means.get(sid, 0.0)
        report.critical_path.add(
            step_id=sid,
            agent=call.agent,
            operation=call.operation,
            mean_duration=_duration(mean),
            share=100.0 * mean / total if total > 0 else 0.0,
        )


def _advice(report: reports_pb2.WorkflowReport, runs: dict[str, int]) -> list[str]:
    advice: list[str] = []
    if report.critical_path:
        top = max(report.critical_path, key=lambda s: s.share)
        if top.share > 0:
            seconds = top.mean_duration.ToNanoseconds() / 1e9
            how = (
                "dominates the critical path"
                if top.share >= DOMINANT_SHARE
                else "is the largest part of the critical path"
            )
            advice.append(
                f"Step {top.step_id} ({top.agent}.{top.operation}) {how}: "
                f"{top.share:.0f}% of it, {seconds:.3g}s on average over {runs.get(top.step_id, 0)} runs. "
                "Every run waits for it: make it faster (a faster agent replica, a smaller request) or take "
                "work off the path (steps that do not need its output need not depend on it)."
            )
    costly = max(report.operations, key=lambda o: o.retry_cost, default=None)
    if costly is not None and costly.retry_cost > 0:
        share = 100.0 * costly.retry_cost / report.total_cost if report.total_cost > 0 else 0.0
        advice.append(
            f"Retries of {costly.agent}.{costly.operation} cost the most: {costly.retry_cost:.4g} "
            f"({share:.0f}% of the workflow's cost) for {costly.retries} retries of {costly.calls} calls. "
            "Check the agent's errors and breaker in GetSystemHealth; a longer timeout (if they time out) "
            "or fewer retries for this step cost less."
        )
    return advice
