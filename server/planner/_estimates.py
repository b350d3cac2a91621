"""Rule 7 of the planner (planner.py): step estimates from recorded durations, adaptive timeouts."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import NamedTuple

from baton.v1 import plan_pb2

from server.planner._steps import is_approval

__all__ = ["ADAPTIVE_TIMEOUT_FLOOR", "Estimates", "RecordedDurations", "apply_estimates"]

ADAPTIVE_TIMEOUT_FLOOR = 1.0
"""Seconds below which an adaptive timeout never goes (unless the declared timeout is shorter)."""


class RecordedDurations(NamedTuple):
    """An operation's recorded durations, as the estimates hook answers (server/estimates)."""

    p50: float
    """Seconds."""
    p95: float
    """Seconds."""
    samples: int = 0
    """Successful attempts recorded."""
    enough: bool = True
    """Whether there are enough samples to trust them over the definition's declared duration."""
    p99: float = 0.0
    """Seconds; 0 when unknown (then no adaptive timeout)."""


Estimates = Callable[[str, str], tuple[float, float] | RecordedDurations | None]
"""(agent, operation) → the recorded durations ((p50, p95) seconds, or a RecordedDurations
with the sample count), or None when unknown."""


def apply_estimates(plan: plan_pb2.OrchestrationPlan, estimates: Estimates | None, timeout_factor: float) -> None:
    """Sets each call step's estimate, its source and (timeout_factor > 0) its adaptive timeout."""
    for step in plan.workflow_steps:
        if is_approval(step):
            continue
        timing = step.timing
        timing.estimate_source = plan_pb2.ESTIMATE_SOURCE_DECLARED
        recorded = estimates(step.agent, step.operation) if estimates is not None else None
        if recorded is None:
            continue
        p50, p95 = recorded[0], recorded[1]
        samples, enough, p99 = (
            (recorded.samples, recorded.enough, recorded.p99)
            if isinstance(recorded, RecordedDurations)
            else (0, True, 0.0)
        )
        timing.estimate_samples = max(samples, 0)
        if not enough or not all(math.isfinite(x) and x >= 0 for x in (p50, p95, p99)):
            continue
        if timing.HasField("timeout"):
            declared = timing.timeout.ToNanoseconds() / 1e9
            if timeout_factor > 0 and p99 > 0:
                adaptive = min(max(p99 * timeout_factor, min(ADAPTIVE_TIMEOUT_FLOOR, declared)), declared)
                timing.timeout.FromNanoseconds(round(adaptive * 1e9))
            # An attempt cannot outlast its deadline, whatever history says.
            limit = timing.timeout.ToNanoseconds() / 1e9
            p50, p95 = min(p50, limit), min(p95, limit)
        timing.estimated_duration.FromNanoseconds(round(p50 * 1e9))
        timing.estimated_p95.FromNanoseconds(round(p95 * 1e9))
        timing.estimate_source = plan_pb2.ESTIMATE_SOURCE_HISTORY
