"""Dropping a step from a plan while keeping the rest valid: the planner's one way to remove work."""

# Dropping a step keeps the DAG's order: its dependants inherit its dependencies, request fields
# (of inputs, alternatives and compensations) whose expression reads its output are removed (at
# run time they would be null, hence omitted), gates checking it go with it, and a step whose
# condition or for_each (its list of items) reads it is dropped as well.

from __future__ import annotations

from typing import Any

from baton.v1 import plan_pb2
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from server.planner._expressions import expression_of, expression_reads, without_references

__all__ = ["drop_step"]


def drop_step(plan: plan_pb2.OrchestrationPlan, step_id: str, reason: str, notes: list[str]) -> None:
    """Removes a step (if present) as the rules above say, noting "<step_id>: dropped (<reason>)"."""
    steps = plan.workflow_steps
    index = next((i for i, s in enumerate(steps) if s.step_id == step_id), None)
    if index is None:
        return
    inherited = list(steps[index].dependencies)
    del steps[index]
    notes.append(f"{step_id}: dropped ({reason})")
    for g in reversed(range(len(plan.quality_gates))):
        if plan.quality_gates[g].checkpoint == step_id:
            del plan.quality_gates[g]
    orphaned: list[tuple[str, str]] = []
    for step in steps:
        if step_id in step.dependencies:
            rewired: list[str] = []
            for dep in step.dependencies:
                for new in inherited if dep == step_id else [dep]:
                    if new not in rewired:
                        rewired.append(new)
            del step.dependencies[:]
            step.dependencies.extend(rewired)
        _prune(step.inputs.configuration, step_id)
        if step.error_handling.HasField("alternative") and step.error_handling.alternative.HasField("configuration"):
            _prune(step.error_handling.alternative.configuration, step_id)
        if step.HasField("compensation"):
            _prune(step.compensation.configuration, step_id)
        if step.timing.condition and expression_reads(step.timing.condition, step_id):
            orphaned.append((step.step_id, "condition"))
        elif expression_reads(expression_of(step.for_each) or "", step_id):
            orphaned.append((step.step_id, "for_each"))
    for dependant, what in orphaned:
        # Its run-or-skip decision (or its items) came from the dropped step's output; without it there is none.
        drop_step(plan, dependant, f"its {what} reads {step_id}, which was dropped", notes)


def _prune(configuration: Struct, step_id: str) -> None:
    config: dict[str, Any] = json_format.MessageToDict(configuration)
    pruned = without_references(config, step_id)
    if pruned != config:
        configuration.Clear()
        configuration.update(pruned)
