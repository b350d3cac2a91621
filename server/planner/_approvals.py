"""Approval steps: the `approval:` block of a definition's step, and how the planner inserts it."""

# A definition marks a step that acts in the user's name with ``requires_approval: true`` and
# describes, in its ``approval:`` block, the approval step the planner inserts before it when the
# user's automation level asks for one (see planner.py, rule 4). Inserting approval A before
# guarded step G:
#
# - A waits for what G waited for (G's dependencies) and takes G's run-or-skip condition, so the
#   person is only asked when G would run; A's data shows what G would do.
# - G then waits for A alone, its request takes A's ``approved_inputs`` (the fields the person
#   may narrow, read from A's output), a map step's for_each becomes ``approved_for_each`` (the
#   items the person approved) when set, and its condition becomes ``approved_condition`` (by
#   default: A produced an output, i.e. was approved, not skipped).
# - A is placed right before G in plan order; nothing else changes.

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import jmespath
from baton.v1 import plan_pb2
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from server.planner._errors import DefinitionError
from server.planner._expressions import iter_expressions, referenced_steps, without_references
from server.planner._values import DEFAULT_APPROVAL_TIMEOUT, seconds

__all__ = ["APPROVAL_KEYS", "ApprovalTemplate", "approval_wait", "insert_approval", "parse_approval"]

APPROVAL_KEYS = (
    "step_id",
    "step_name",
    "prompt",
    "data",
    "timeout",
    "on_timeout",
    "approved_inputs",
    "approved_for_each",
    "approved_condition",
)
"""The keys of a definition's ``approval:`` block."""
_REQUIRED = ("step_id", "step_name", "prompt")
_ON_TIMEOUT = {
    "fail": plan_pb2.APPROVAL_TIMEOUT_ACTION_FAIL,
    "skip": plan_pb2.APPROVAL_TIMEOUT_ACTION_SKIP,
    "approve": plan_pb2.APPROVAL_TIMEOUT_ACTION_APPROVE,
}


@dataclass(frozen=True)
class ApprovalTemplate:
    """The approval step a definition asks for before one of its steps."""

    guarded_step: str
    """The step_id of the step that waits for the approval."""
    step_bytes: bytes
    """The serialized approval WorkflowStep (id, name, kind and approval; no dependencies yet)."""
    approved_inputs_bytes: bytes
    """A serialized Struct: configuration fields of the guarded step that replace its own."""
    approved_condition: str
    """The guarded step's condition once the approval is inserted; empty for the default."""
    approved_for_each: str = ""
    """The guarded map step's for_each once the approval is inserted; empty: it keeps its own."""

    @property
    def step_id(self) -> str:
        """The approval step's id."""
        return self.step().step_id

    def step(self) -> plan_pb2.WorkflowStep:
        """Returns a fresh copy of the approval step."""
        return plan_pb2.WorkflowStep.FromString(self.step_bytes)

    def approved_inputs(self) -> dict[str, Any]:
        """Returns the guarded step's replaced configuration fields, as JSON."""
        inputs: dict[str, Any] = json_format.MessageToDict(Struct.FromString(self.approved_inputs_bytes))
        return inputs

    def condition(self) -> str:
        """Returns the guarded step's condition once the approval is inserted."""
        # An approval skipped (by its condition or on timeout) has no output: nothing was approved.
        return self.approved_condition or f"steps.{self.step_id} != `null`"


def parse_approval(source: str, where: str, guarded: plan_pb2.WorkflowStep, raw: Any) -> ApprovalTemplate:
    """Reads a definition's ``approval:`` block for step `guarded`.

    Args:
        source: the definition file, for errors.
        where: the block's place in the file, e.g. ``workflow_steps[4].approval``.
        guarded: the step the block belongs to, as parsed.
        raw: the block as YAML gave it.

    Raises:
        DefinitionError: naming the key that is missing, unknown or malformed. Whether the
            inserted step makes a valid plan is checked by the caller.
    """
    if not isinstance(raw, dict):
        raise DefinitionError(source, f"{where} must be a mapping with keys {', '.join(APPROVAL_KEYS)}")
    unknown = [k for k in raw if k not in APPROVAL_KEYS]
    if unknown:
        raise DefinitionError(source, f"{where}: unknown key {unknown[0]!r}; valid keys: {', '.join(APPROVAL_KEYS)}")
    for key in _REQUIRED:
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            raise DefinitionError(source, f"{where}.{key} is required: a non-empty string")
    step = plan_pb2.WorkflowStep(step_id=raw["step_id"], step_name=raw["step_name"], kind=plan_pb2.STEP_KIND_APPROVAL)
    step.approval.prompt = raw["prompt"]
    if "timeout" in raw:
        try:
            step.approval.timeout.FromJsonString(str(raw["timeout"]))
        except ValueError as error:
            raise DefinitionError(source, f"{where}.timeout: {error}") from None
    if "on_timeout" in raw:
        action = _ON_TIMEOUT.get(str(raw["on_timeout"]).lower().removeprefix("approval_timeout_action_"))
        if action is None:
            raise DefinitionError(source, f"{where}.on_timeout must be one of {', '.join(_ON_TIMEOUT)}")
        if action == plan_pb2.APPROVAL_TIMEOUT_ACTION_APPROVE:
            # The step is guarded because it acts in the user's name; silence is not consent.
            raise DefinitionError(
                source,
                f"{where}.on_timeout approve would let {guarded.step_id} run without an answer; use fail or skip",
            )
        step.approval.on_timeout = action
    _fill(source, f"{where}.data", step.approval.data, raw.get("data", {}))
    approved_inputs = Struct()
    _fill(source, f"{where}.approved_inputs", approved_inputs, raw.get("approved_inputs", {}))
    condition = raw.get("approved_condition", "")
    if not isinstance(condition, str):
        raise DefinitionError(source, f"{where}.approved_condition must be a JMESPath expression (a string)")
    for_each = raw.get("approved_for_each", "")
    if for_each and (not isinstance(for_each, str) or not guarded.for_each):
        raise DefinitionError(
            source, f'{where}.approved_for_each must be a "${{EXPR}}" string, on a step that has for_each'
        )
    return ApprovalTemplate(
        guarded_step=guarded.step_id,
        step_bytes=step.SerializeToString(deterministic=True),
        approved_inputs_bytes=approved_inputs.SerializeToString(deterministic=True),
        approved_condition=condition,
        approved_for_each=for_each,
    )


def insert_approval(plan: plan_pb2.OrchestrationPlan, template: ApprovalTemplate) -> bool:
    """Inserts a template's approval step before its guarded step, as the rules above say.

    Returns:
        False, changing nothing, when the plan no longer has the guarded step.
    """
    steps = plan.workflow_steps
    index = next((i for i, s in enumerate(steps) if s.step_id == template.guarded_step), None)
    if index is None:
        return False
    guarded = steps[index]
    approval = template.step()
    approval.dependencies.extend(guarded.dependencies)
    if guarded.timing.scheduling == plan_pb2.SCHEDULING_CONDITIONAL:
        approval.timing.scheduling = plan_pb2.SCHEDULING_CONDITIONAL
        approval.timing.condition = guarded.timing.condition
    present = {s.step_id for s in steps}
    data: dict[str, Any] = json_format.MessageToDict(approval.approval.data)
    for absent in sorted(_read(data) - present):
        # Like any request field of a dropped step's output (planner.py), it would be null.
        data = without_references(data, absent)
    approval.approval.data.Clear()
    approval.approval.data.update(data)

    del guarded.dependencies[:]
    guarded.dependencies.append(approval.step_id)
    config: dict[str, Any] = json_format.MessageToDict(guarded.inputs.configuration)
    config.update(template.approved_inputs())
    guarded.inputs.configuration.Clear()
    guarded.inputs.configuration.update(config)
    if template.approved_for_each:
        guarded.for_each = template.approved_for_each
    guarded.timing.scheduling = plan_pb2.SCHEDULING_CONDITIONAL
    guarded.timing.condition = template.condition()
    steps.insert(index, approval)
    return True


def approval_wait(step: plan_pb2.WorkflowStep) -> float:
    """Seconds an approval step may wait: its timeout, or the default when unset."""
    return seconds(step.approval.timeout) if step.approval.HasField("timeout") else DEFAULT_APPROVAL_TIMEOUT


def _read(value: Any) -> set[str]:
    found: set[str] = set()
    for _, expression in iter_expressions(value):
        try:
            found |= referenced_steps(expression)
        except jmespath.exceptions.JMESPathError:
            # Validation names a broken expression with its field; here it reads nothing.
            continue
    return found


def _fill(source: str, where: str, struct: Struct, value: Any) -> None:
    if not isinstance(value, Mapping):
        raise DefinitionError(source, f"{where} must be a mapping")
    try:
        struct.update(value)
    except (TypeError, ValueError) as error:
        # YAML reads some unquoted scalars (dates, for one) as values JSON does not have.
        raise DefinitionError(source, f"{where}: {error}; quote the value") from None
