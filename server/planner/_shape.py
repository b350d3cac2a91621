"""The shape of a plan, computed from its final DAG: critical path, complexity, resources, failure paths."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType

from baton.v1 import plan_pb2

from agents_clients.catalog import AGENTS
from server.planner._steps import is_approval

__all__ = ["complexity", "critical_path", "failure_paths", "resources"]

# What each agent's work leans on, for resource_requirements: parsing and scoring are CPU work,
# scoring holds every posting in memory, boards and notifications are remote calls, and
# submissions and analytics write records.
_AGENT_RESOURCES: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        "document_intelligence": frozenset({"cpu"}),
        "job_discovery": frozenset({"network"}),
        "matching_intelligence": frozenset({"cpu", "memory"}),
        "automation": frozenset({"network", "storage"}),
        "ui_ux": frozenset({"network"}),
        "analytics": frozenset({"storage"}),
        "security": frozenset({"cpu"}),
    }
)


def _topological(steps: Sequence[plan_pb2.WorkflowStep]) -> list[plan_pb2.WorkflowStep]:
    """Kahn's algorithm taking ready steps in plan order; steps left in a cycle come last."""
    pending = list(steps)
    done: set[str] = set()
    order: list[plan_pb2.WorkflowStep] = []
    while pending:
        ready = [s for s in pending if all(d in done for d in s.dependencies)]
        if not ready:
            # Validation names the cycle; the order only has to be total.
            ready = pending[:1]
        for step in ready:
            order.append(step)
            done.add(step.step_id)
        pending = [s for s in pending if s.step_id not in done]
    return order


def critical_path(steps: Sequence[plan_pb2.WorkflowStep]) -> tuple[list[str], float]:
    """The longest chain by estimated seconds (plus scheduling delays) and its length."""
    finish: dict[str, float] = {}
    previous: dict[str, str] = {}
    for step in _topological(steps):
        start = 0.0
        for dep in step.dependencies:
            if dep in finish and finish[dep] > start:
                start, previous[step.step_id] = finish[dep], dep
        own = step.timing.estimated_duration.ToNanoseconds() / 1e9
        if step.timing.scheduling == plan_pb2.SCHEDULING_SCHEDULED:
            own += step.timing.delay.ToNanoseconds() / 1e9
        finish[step.step_id] = start + own
    if not finish:
        return [], 0.0
    last = max(finish, key=lambda sid: finish[sid])
    path = [last]
    while path[-1] in previous:
        path.append(previous[path[-1]])
    return path[::-1], finish[last]


def _depth(steps: Sequence[plan_pb2.WorkflowStep]) -> int:
    level: dict[str, int] = {}
    for step in _topological(steps):
        level[step.step_id] = 1 + max((level.get(d, 0) for d in step.dependencies), default=0)
    return max(level.values(), default=0)


def complexity(plan: plan_pb2.OrchestrationPlan) -> float:
    """0-100: 40 for size (20 steps), 25 for depth (10 levels), 25 for breadth (7 agents), 10 for gates (5)."""
    steps = plan.workflow_steps
    agents = {s.agent for s in steps if not is_approval(s)}
    score = (
        40 * min(len(steps) / 20, 1.0)
        + 25 * min(_depth(steps) / 10, 1.0)
        + 25 * min(len(agents) / len(AGENTS), 1.0)
        + 10 * min(len(plan.quality_gates) / 5, 1.0)
    )
    return round(score, 1)


def resources(steps: Sequence[plan_pb2.WorkflowStep]) -> plan_pb2.ResourceRequirements:
    kinds: set[str] = set()
    for step in steps:
        kinds |= _AGENT_RESOURCES.get(step.agent, frozenset())
    return plan_pb2.ResourceRequirements(
        cpu_intensive="cpu" in kinds,
        memory_intensive="memory" in kinds,
        network_intensive="network" in kinds,
        storage_intensive="storage" in kinds,
    )


def failure_paths(steps: Sequence[plan_pb2.WorkflowStep]) -> list[str]:
    paths: list[str] = []
    for step in steps:
        handling = step.error_handling
        if handling.fallback_action == plan_pb2.FALLBACK_ACTION_SKIP:
            paths.append(f"{step.step_id}: skipped if it fails")
        elif handling.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
            alt = handling.alternative
            paths.append(f"{step.step_id}: {alt.agent}.{alt.operation} if it fails")
    return paths
