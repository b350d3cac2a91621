"""Per A/B variant outcomes of a workflow report (the README's "A/B variants").

Rules:
1. Executions count under the variant their plan records (VariantAssignment, set when they
   were planned), grouped by (experiment, variant name), ordered by experiment then name;
   executions outside experiments are left out.
2. Each figure comes with its sample size: completion over the variant's ended executions,
   durations over those with a start and an end, quality over those with a scored step (the
   execution's overall quality score, server.engine.status.overall_quality).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence

from baton.v1 import execution_pb2, variants_pb2
from google.protobuf import duration_pb2

from server.engine.state import ExecutionState
from server.engine.status import overall_quality

__all__ = ["variant_reports"]


def variant_reports(
    states: Sequence[ExecutionState],
    quantile: Callable[[Sequence[float], float], float],
    duration: Callable[[float], duration_pb2.Duration],
) -> list[variants_pb2.VariantReport]:
    """The per-variant reports of `states` (ended executions, newest first; rules at the top).

    Args:
        states: the executions' folded states, newest first.
        quantile: the report's quantile of a list of seconds.
        duration: seconds as a Duration.
    """
    groups: dict[tuple[str, str], list[ExecutionState]] = {}
    for state in states:
        plan = state.started.plan
        if plan.HasField("variant"):
            groups.setdefault((plan.variant.experiment, plan.variant.name), []).append(state)
    reports = []
    for (experiment, name), members in sorted(groups.items()):
        report = variants_pb2.VariantReport(
            experiment=experiment,
            name=name,
            workflow_version=members[0].started.plan.workflow_version,
            executions=len(members),
            completed=sum(1 for s in members if s.status == execution_pb2.EXECUTION_STATE_COMPLETED),
        )
        report.completion_rate = report.completed / report.executions
        durations = [
            (s.end_time.ToNanoseconds() - s.start_time.ToNanoseconds()) / 1e9
            for s in members
            if s.start_time is not None and s.end_time is not None
        ]
        report.duration_samples = len(durations)
        if durations:
            report.duration_p50.CopyFrom(duration(quantile(durations, 0.5)))
            report.duration_p95.CopyFrom(duration(quantile(durations, 0.95)))
        scores = [q for q in (overall_quality(s) for s in members) if q is not None]
        report.quality_samples = len(scores)
        if scores:
            report.quality = statistics.fmean(scores)
        reports.append(report)
    return reports
