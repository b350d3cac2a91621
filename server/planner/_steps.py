"""Plan validation of one step on its own: its kind, call, configuration, timing, error handling,
compensation and approval."""

# A call step (STEP_KIND_CALL, or unset) names an agent and an RPC of that agent's service and a
# configuration that parses as the RPC's request; its compensation, when set, is another such
# call. An approval step (STEP_KIND_APPROVAL) calls nothing: agent, operation, configuration,
# compensation and alternative stay empty and its `approval` says what the person is shown and
# how long they have. Only an approval step may set `approval`. A map step (for_each set) is a
# call step whose for_each is exactly one "${EXPR}"; max_concurrency and item_failure belong to
# it alone, and it has no alternative call (a fallback to one would re-run every item).

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from baton.v1 import plan_pb2
from google.protobuf import json_format
from google.protobuf.struct_pb2 import Struct

from agents_clients.catalog import (
    AGENTS,
    Operation,
    UnknownAgentError,
    UnknownOperationError,
    operation,
    operations,
)
from server.planner._errors import PlanInvalidError
from server.planner._expressions import expression_of, iter_expressions, strip_expressions
from server.planner._values import (
    MAX_APPROVAL_TIMEOUT,
    MAX_CONCURRENCY,
    MAX_PLAN_TIMEOUT,
    MAX_PROMPT_LENGTH,
    MAX_STEP_TIMEOUT,
    MIN_APPROVAL_TIMEOUT,
    MIN_TIMEOUT,
    check_duration,
    check_enum,
    check_range,
    check_retries,
    compile_expression,
    seconds,
    struct_json,
)
from server.quoting import clip

_STEP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")


def is_approval(step: plan_pb2.WorkflowStep) -> bool:
    """Whether a step waits for a person instead of calling an agent."""
    return step.kind == plan_pb2.STEP_KIND_APPROVAL


def check_step(i: int, step: plan_pb2.WorkflowStep, seen: Mapping[str, int]) -> None:
    """Checks one step's own fields; `seen` maps the ids of the steps before it to their index."""
    field = f"workflow_steps[{i}]"
    if not step.step_id:
        raise PlanInvalidError(f"{field}.step_id", "is required")
    if not _STEP_ID.fullmatch(step.step_id):
        raise PlanInvalidError(
            f"{field}.step_id",
            f'"{clip(step.step_id)}" must be 1 to 64 letters, digits, "_" or "-"',
        )
    if step.step_id in seen:
        raise PlanInvalidError(
            f"{field}.step_id",
            f'"{step.step_id}" is already the id of workflow_steps[{seen[step.step_id]}]; step ids must be unique',
        )
    check_enum(f"{field}.kind", step.kind, plan_pb2.StepKind.DESCRIPTOR)
    if is_approval(step):
        _check_approval_step(field, step)
    else:
        if step.HasField("approval"):
            raise PlanInvalidError(f"{field}.approval", "is set but kind is not STEP_KIND_APPROVAL")
        op = _operation(f"{field}.agent", f"{field}.operation", step.agent, step.operation)
        _check_configuration(f"{field}.inputs.configuration", step.inputs.configuration, op)
        if step.HasField("compensation"):
            _check_compensation(f"{field}.compensation", step.compensation)
    _check_map(field, step)
    check_range(f"{field}.inputs.quality_requirements", step.inputs.quality_requirements, 0.0, 100.0)
    struct_json(f"{field}.outputs.success_criteria", step.outputs.success_criteria)
    _check_timing(f"{field}.timing", step.timing)
    _check_error_handling(f"{field}.error_handling", step)


# ---- calls --------------------------------------------------------------------------------


def _operation(agent_field: str, operation_field: str, agent: str, name: str) -> Operation:
    if not agent:
        raise PlanInvalidError(agent_field, f"is required; known agents: {', '.join(AGENTS)}")
    try:
        return operation(agent, name)
    except UnknownAgentError:
        known_agents = ", ".join(AGENTS)
        raise PlanInvalidError(agent_field, f'unknown agent "{clip(agent)}"; known agents: {known_agents}') from None
    except UnknownOperationError:
        known = ", ".join(_operation_names(agent))
        if not name:
            raise PlanInvalidError(operation_field, f'is required; agent "{clip(agent)}" has: {known}') from None
        raise PlanInvalidError(
            operation_field, f'agent "{clip(agent)}" has no operation "{clip(name)}"; its operations: {known}'
        ) from None


def _operation_names(agent: str) -> list[str]:
    names = []
    # The catalog lists every RPC; only the unary ones are operations a step can call.
    for name in operations(agent):
        try:
            operation(agent, name)
        except UnknownOperationError:
            continue
        names.append(name)
    return names


def _check_configuration(field: str, configuration: Struct, op: Operation) -> None:
    config = struct_json(field, configuration)
    descriptor = op.request_class.DESCRIPTOR
    fields = descriptor.fields_by_name
    for key in config:
        if key not in fields:
            raise PlanInvalidError(
                f"{field}.{clip(key)}",
                f'"{clip(key)}" is not a field of {descriptor.full_name} ({op.agent}.{op.name}); '
                f"its fields: {', '.join(fields)}",
            )
    _compile_all(field, config)
    literal = strip_expressions(config)
    for key, value in literal.items():
        try:
            json_format.ParseDict({key: value}, op.request_class())
        except json_format.ParseError as error:
            raise PlanInvalidError(
                f"{field}.{key}", f"does not parse as {descriptor.full_name}.{key}: {clip(error, 200)}"
            ) from None


def _compile_all(field: str, value: Any) -> None:
    for path, expression in iter_expressions(value):
        compile_expression(f"{field}{path}", expression)


def _check_compensation(field: str, compensation: plan_pb2.Compensation) -> None:
    op = _operation(f"{field}.agent", f"{field}.operation", compensation.agent, compensation.operation)
    _check_configuration(f"{field}.configuration", compensation.configuration, op)
    if compensation.HasField("timeout"):
        check_duration(f"{field}.timeout", compensation.timeout, minimum=MIN_TIMEOUT, maximum=MAX_STEP_TIMEOUT)
    if compensation.HasField("retry_count"):
        check_retries(f"{field}.retry_count", compensation.retry_count)


# ---- map steps ----------------------------------------------------------------------------


def _check_map(field: str, step: plan_pb2.WorkflowStep) -> None:
    if not step.for_each:
        if step.max_concurrency:
            raise PlanInvalidError(
                f"{field}.max_concurrency", "is set but for_each is not (it caps a map step's items)"
            )
        if step.item_failure:
            raise PlanInvalidError(f"{field}.item_failure", "is set but for_each is not")
        return
    if is_approval(step):
        raise PlanInvalidError(f"{field}.for_each", "must be empty in an approval step, which calls no agent")
    expression = expression_of(step.for_each)
    if expression is None:
        raise PlanInvalidError(
            f"{field}.for_each", f'"{clip(step.for_each)}" must be one expression written "${{EXPR}}", giving a list'
        )
    compile_expression(f"{field}.for_each", expression)
    if step.max_concurrency > MAX_CONCURRENCY:
        raise PlanInvalidError(
            f"{field}.max_concurrency",
            f"must be between 0 (the default, 8) and {MAX_CONCURRENCY}, not {step.max_concurrency}",
        )
    check_enum(f"{field}.item_failure", step.item_failure, plan_pb2.ItemFailure.DESCRIPTOR)
    handling = step.error_handling
    if handling.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
        raise PlanInvalidError(
            f"{field}.error_handling.fallback_action",
            "a map step (for_each) has no alternative call; use item_failure and fallback skip or fail",
        )


# ---- approvals ----------------------------------------------------------------------------


def _check_approval_step(field: str, step: plan_pb2.WorkflowStep) -> None:
    # An approval calls nothing, so anything that describes a call would be silently ignored.
    for name, value in (("agent", step.agent), ("operation", step.operation)):
        if value:
            raise PlanInvalidError(f"{field}.{name}", "must be empty in an approval step, which calls no agent")
    if step.inputs.configuration.fields:
        raise PlanInvalidError(
            f"{field}.inputs.configuration",
            "must be empty in an approval step; what the person is shown goes in approval.data",
        )
    if step.HasField("compensation"):
        raise PlanInvalidError(
            f"{field}.compensation", "must be unset in an approval step, which has no effect to undo"
        )
    handling = step.error_handling
    if handling.HasField("alternative") or handling.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
        raise PlanInvalidError(
            f"{field}.error_handling.alternative", "an approval step has no call to replace with an alternative"
        )
    approval = step.approval
    where = f"{field}.approval"
    if approval.HasField("timeout"):
        check_duration(f"{where}.timeout", approval.timeout, minimum=MIN_APPROVAL_TIMEOUT, maximum=MAX_APPROVAL_TIMEOUT)
    check_enum(f"{where}.on_timeout", approval.on_timeout, plan_pb2.ApprovalTimeoutAction.DESCRIPTOR)
    if len(approval.prompt) > MAX_PROMPT_LENGTH:
        raise PlanInvalidError(
            f"{where}.prompt", f"is {len(approval.prompt)} characters long; at most {MAX_PROMPT_LENGTH} are allowed"
        )
    _compile_all(f"{where}.data", struct_json(f"{where}.data", approval.data))


# ---- timing and error handling ------------------------------------------------------------


def _check_timing(field: str, timing: plan_pb2.StepTiming) -> None:
    if timing.HasField("timeout"):
        check_duration(f"{field}.timeout", timing.timeout, minimum=MIN_TIMEOUT, maximum=MAX_STEP_TIMEOUT)
    if timing.HasField("estimated_duration"):
        check_duration(f"{field}.estimated_duration", timing.estimated_duration)
    check_enum(f"{field}.scheduling", timing.scheduling, plan_pb2.Scheduling.DESCRIPTOR)
    if timing.HasField("delay"):
        check_duration(f"{field}.delay", timing.delay, maximum=MAX_PLAN_TIMEOUT)
        if seconds(timing.delay) > 0 and timing.scheduling != plan_pb2.SCHEDULING_SCHEDULED:
            raise PlanInvalidError(f"{field}.delay", "is set but scheduling is not SCHEDULING_SCHEDULED")
    if timing.scheduling == plan_pb2.SCHEDULING_CONDITIONAL:
        if not timing.condition:
            raise PlanInvalidError(f"{field}.condition", "SCHEDULING_CONDITIONAL needs a condition")
        compile_expression(f"{field}.condition", timing.condition)
    elif timing.condition:
        # A condition the engine would ignore is a mistake the author should hear about.
        raise PlanInvalidError(f"{field}.condition", "is set but scheduling is not SCHEDULING_CONDITIONAL")


def _check_error_handling(field: str, step: plan_pb2.WorkflowStep) -> None:
    handling = step.error_handling
    if handling.HasField("retry_count"):
        check_retries(f"{field}.retry_count", handling.retry_count)
    check_enum(f"{field}.fallback_action", handling.fallback_action, plan_pb2.FallbackAction.DESCRIPTOR)
    if handling.fallback_action != plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
        return
    alt = handling.alternative
    if not handling.HasField("alternative") or not alt.agent:
        raise PlanInvalidError(
            f"{field}.alternative", "FALLBACK_ACTION_ALTERNATIVE needs an alternative agent and operation"
        )
    op = _operation(f"{field}.alternative.agent", f"{field}.alternative.operation", alt.agent, alt.operation)
    if alt.HasField("configuration"):
        _check_configuration(f"{field}.alternative.configuration", alt.configuration, op)
    else:
        # Unset means the step's own request is sent to the alternative, so it must fit there too.
        _check_configuration(
            f"{field.removesuffix('.error_handling')}.inputs.configuration", step.inputs.configuration, op
        )
