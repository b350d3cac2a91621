"""Plan validation: every rule a plan keeps before it may run, each breach named by its field."""

# Client-built plans (ExecuteWorkflowRequest.plan) and planned plans pass through the same
# `validate_plan`; a breach raises `PlanInvalidError`, which the API answers with
# INVALID_ARGUMENT and the message ``<field>: <what is wrong>``. The first breach found is
# reported, checking in plan order: plan-level fields, the execution strategy, each step on its
# own, the dependency graph, the expressions' references, then the quality gates.

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import jmespath
from baton.v1 import plan_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.duration_pb2 import Duration
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
from server.planner._expressions import compile_error, iter_expressions, referenced_steps, strip_expressions

__all__ = [
    "MAX_CONCURRENCY",
    "MAX_CUSTOM_BACKOFFS",
    "MAX_PLAN_TIMEOUT",
    "MAX_RETRIES",
    "MAX_STEPS",
    "MAX_STEP_TIMEOUT",
    "MIN_TIMEOUT",
    "PlanInvalidError",
    "validate_plan",
]

MAX_STEPS = 200
"""The most steps a plan may have."""
MIN_TIMEOUT = 0.001
"""Seconds: the shortest step or plan timeout (1 ms)."""
MAX_STEP_TIMEOUT = 3600.0
"""Seconds: the longest per-attempt step timeout (1 hour)."""
MAX_PLAN_TIMEOUT = 86400.0
"""Seconds: the longest execution timeout and scheduling delay (24 hours)."""
MAX_BACKOFF = 3600.0
"""Seconds: the longest retry wait (1 hour)."""
MAX_RETRIES = 10
"""The most retries of a step or a retry policy."""
MAX_MULTIPLIER = 10.0
"""The largest exponential backoff multiplier."""
MAX_CUSTOM_BACKOFFS = 10
"""The most custom backoff waits."""
MAX_CONCURRENCY = 64
"""The largest hybrid-mode concurrency."""

_STEP_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
# Durations beyond this are not valid google.protobuf.Duration values (about 10,000 years).
_DURATION_LIMIT = 315_576_000_000


def validate_plan(plan: plan_pb2.OrchestrationPlan) -> None:
    """Checks that a plan may run, and raises at the first rule it breaks.

    Args:
        plan: a client-built or planned plan.

    Raises:
        PlanInvalidError: with ``.field`` the offending field's path (for example
            ``workflow_steps[2].dependencies[0]``) and a message saying what is wrong.
    """
    _check_plan_fields(plan)
    _check_strategy(plan.execution_strategy)
    steps = plan.workflow_steps
    if not steps:
        raise PlanInvalidError("workflow_steps", "a plan needs at least 1 step")
    if len(steps) > MAX_STEPS:
        raise PlanInvalidError("workflow_steps", f"a plan may have at most {MAX_STEPS} steps, not {len(steps)}")
    index: dict[str, int] = {}
    for i, step in enumerate(steps):
        _check_step(i, step, index)
        index[step.step_id] = i
    for i, step in enumerate(steps):
        _check_dependencies(i, step, index)
    _check_acyclic(steps, index)
    ancestors = _ancestors(steps)
    for i, step in enumerate(steps):
        _check_references(i, step, index, ancestors[step.step_id])
    _check_gates(plan.quality_gates, index)


# ---- plan level ---------------------------------------------------------------------------


def _check_plan_fields(plan: plan_pb2.OrchestrationPlan) -> None:
    if plan.HasField("timeout"):
        _check_duration("timeout", plan.timeout, minimum=MIN_TIMEOUT, maximum=MAX_PLAN_TIMEOUT)
    if plan.HasField("estimated_duration"):
        _check_duration("estimated_duration", plan.estimated_duration)
    _check_range("complexity_score", plan.complexity_score, 0.0, 100.0)


def _check_strategy(strategy: plan_pb2.ExecutionStrategy) -> None:
    field = "execution_strategy"
    _check_enum(f"{field}.execution_mode", strategy.execution_mode, plan_pb2.ExecutionMode.DESCRIPTOR)
    _check_enum(f"{field}.priority", strategy.priority, plan_pb2.Priority.DESCRIPTOR)
    if not 0 <= strategy.max_concurrency <= MAX_CONCURRENCY:
        raise PlanInvalidError(
            f"{field}.max_concurrency",
            f"must be between 0 and {MAX_CONCURRENCY}, not {strategy.max_concurrency}",
        )
    _check_retry_policy(f"{field}.retry_policy", strategy.retry_policy)


def _check_retry_policy(field: str, policy: plan_pb2.RetryPolicy) -> None:
    if not 0 <= policy.max_retries <= MAX_RETRIES:
        raise PlanInvalidError(f"{field}.max_retries", f"must be between 0 and {MAX_RETRIES}, not {policy.max_retries}")
    _check_enum(f"{field}.backoff_strategy", policy.backoff_strategy, plan_pb2.BackoffStrategy.DESCRIPTOR)
    _check_enum(f"{field}.circuit_breaker", policy.circuit_breaker, plan_pb2.CircuitBreakerMode.DESCRIPTOR)
    if policy.HasField("initial_backoff"):
        _check_duration(f"{field}.initial_backoff", policy.initial_backoff, maximum=MAX_BACKOFF)
    if policy.HasField("max_backoff"):
        _check_duration(f"{field}.max_backoff", policy.max_backoff, maximum=MAX_BACKOFF)
    multiplier = policy.backoff_multiplier
    if not math.isfinite(multiplier) or not (multiplier == 0 or 1 <= multiplier <= MAX_MULTIPLIER):
        raise PlanInvalidError(
            f"{field}.backoff_multiplier",
            f"must be 0 (the default, 2) or between 1 and {MAX_MULTIPLIER:g}, not {multiplier:g}",
        )
    _check_range(f"{field}.jitter", policy.jitter, 0.0, 1.0)
    if len(policy.custom_backoffs) > MAX_CUSTOM_BACKOFFS:
        raise PlanInvalidError(
            f"{field}.custom_backoffs",
            f"at most {MAX_CUSTOM_BACKOFFS} waits, not {len(policy.custom_backoffs)}",
        )
    for j, wait in enumerate(policy.custom_backoffs):
        _check_duration(f"{field}.custom_backoffs[{j}]", wait, maximum=MAX_BACKOFF)
    if policy.backoff_strategy == plan_pb2.BACKOFF_STRATEGY_CUSTOM and not policy.custom_backoffs:
        raise PlanInvalidError(f"{field}.custom_backoffs", "BACKOFF_STRATEGY_CUSTOM needs at least one wait")


# ---- steps --------------------------------------------------------------------------------


def _check_step(i: int, step: plan_pb2.WorkflowStep, seen: Mapping[str, int]) -> None:
    field = f"workflow_steps[{i}]"
    if not step.step_id:
        raise PlanInvalidError(f"{field}.step_id", "is required")
    if not _STEP_ID.fullmatch(step.step_id):
        raise PlanInvalidError(
            f"{field}.step_id",
            f'"{step.step_id}" must be 1 to 64 letters, digits, "_" or "-"',
        )
    if step.step_id in seen:
        raise PlanInvalidError(
            f"{field}.step_id",
            f'"{step.step_id}" is already the id of workflow_steps[{seen[step.step_id]}]; step ids must be unique',
        )
    op = _operation(f"{field}.agent", f"{field}.operation", step.agent, step.operation)
    _check_configuration(f"{field}.inputs.configuration", step.inputs.configuration, op)
    _check_range(f"{field}.inputs.quality_requirements", step.inputs.quality_requirements, 0.0, 100.0)
    _check_timing(f"{field}.timing", step.timing)
    _check_error_handling(f"{field}.error_handling", step)


def _operation(agent_field: str, operation_field: str, agent: str, name: str) -> Operation:
    if not agent:
        raise PlanInvalidError(agent_field, f"is required; known agents: {', '.join(AGENTS)}")
    try:
        return operation(agent, name)
    except UnknownAgentError:
        raise PlanInvalidError(agent_field, f'unknown agent "{agent}"; known agents: {", ".join(AGENTS)}') from None
    except UnknownOperationError:
        known = ", ".join(_operation_names(agent))
        if not name:
            raise PlanInvalidError(operation_field, f'is required; agent "{agent}" has: {known}') from None
        raise PlanInvalidError(
            operation_field, f'agent "{agent}" has no operation "{name}"; its operations: {known}'
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
    config: dict[str, Any] = json_format.MessageToDict(configuration)
    descriptor = op.request_class.DESCRIPTOR
    fields = descriptor.fields_by_name
    for key in config:
        if key not in fields:
            raise PlanInvalidError(
                f"{field}.{key}",
                f'"{key}" is not a field of {descriptor.full_name} ({op.agent}.{op.name}); '
                f"its fields: {', '.join(fields)}",
            )
    for path, expression in iter_expressions(config):
        _compile(f"{field}{path}", expression)
    literal = strip_expressions(config)
    for key, value in literal.items():
        try:
            json_format.ParseDict({key: value}, op.request_class())
        except json_format.ParseError as error:
            raise PlanInvalidError(
                f"{field}.{key}", f"does not parse as {descriptor.full_name}.{key}: {error}"
            ) from None


def _compile(field: str, expression: str) -> None:
    problem = compile_error(expression)
    if problem is not None:
        raise PlanInvalidError(field, f'expression "{expression}" does not compile: {problem}')


def _check_timing(field: str, timing: plan_pb2.StepTiming) -> None:
    if timing.HasField("timeout"):
        _check_duration(f"{field}.timeout", timing.timeout, minimum=MIN_TIMEOUT, maximum=MAX_STEP_TIMEOUT)
    if timing.HasField("estimated_duration"):
        _check_duration(f"{field}.estimated_duration", timing.estimated_duration)
    _check_enum(f"{field}.scheduling", timing.scheduling, plan_pb2.Scheduling.DESCRIPTOR)
    if timing.HasField("delay"):
        _check_duration(f"{field}.delay", timing.delay, maximum=MAX_PLAN_TIMEOUT)
        if _seconds(timing.delay) > 0 and timing.scheduling != plan_pb2.SCHEDULING_SCHEDULED:
            raise PlanInvalidError(f"{field}.delay", "is set but scheduling is not SCHEDULING_SCHEDULED")
    if timing.scheduling == plan_pb2.SCHEDULING_CONDITIONAL:
        if not timing.condition:
            raise PlanInvalidError(f"{field}.condition", "SCHEDULING_CONDITIONAL needs a condition")
        _compile(f"{field}.condition", timing.condition)
    elif timing.condition:
        # A condition the engine would ignore is a mistake the author should hear about.
        raise PlanInvalidError(f"{field}.condition", "is set but scheduling is not SCHEDULING_CONDITIONAL")


def _check_error_handling(field: str, step: plan_pb2.WorkflowStep) -> None:
    handling = step.error_handling
    if handling.HasField("retry_count") and not 0 <= handling.retry_count <= MAX_RETRIES:
        raise PlanInvalidError(
            f"{field}.retry_count", f"must be between 0 and {MAX_RETRIES}, not {handling.retry_count}"
        )
    _check_enum(f"{field}.fallback_action", handling.fallback_action, plan_pb2.FallbackAction.DESCRIPTOR)
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


# ---- the graph ----------------------------------------------------------------------------


def _check_dependencies(i: int, step: plan_pb2.WorkflowStep, index: Mapping[str, int]) -> None:
    listed: set[str] = set()
    for j, dep in enumerate(step.dependencies):
        field = f"workflow_steps[{i}].dependencies[{j}]"
        if dep == step.step_id:
            raise PlanInvalidError(field, f'step "{step.step_id}" depends on itself')
        if dep not in index:
            raise PlanInvalidError(field, f'step "{step.step_id}" depends on unknown step "{dep}"')
        if dep in listed:
            raise PlanInvalidError(field, f'step "{step.step_id}" lists dependency "{dep}" twice')
        listed.add(dep)


def _check_acyclic(steps: Sequence[plan_pb2.WorkflowStep], index: Mapping[str, int]) -> None:
    cycle = _find_cycle([(s.step_id, list(s.dependencies)) for s in steps])
    if cycle is not None:
        raise PlanInvalidError(
            f"workflow_steps[{index[cycle[0]]}].dependencies",
            f"cycle: {' -> '.join(cycle)} (each step depends on the next)",
        )


def _find_cycle(graph: Sequence[tuple[str, Sequence[str]]]) -> list[str] | None:
    """Returns a dependency cycle as [a, b, ..., a], searching in plan order, or None."""
    deps = dict(graph)
    visiting, done = 1, 2
    state: dict[str, int] = {}
    for root, _ in graph:
        if root in state:
            continue
        path = [root]
        state[root] = visiting
        pending = [iter(deps[root])]
        while pending:
            nxt = next(pending[-1], None)
            if nxt is None:
                state[path.pop()] = done
                pending.pop()
            elif state.get(nxt) == visiting:
                return [*path[path.index(nxt) :], nxt]
            elif nxt not in state:
                state[nxt] = visiting
                path.append(nxt)
                pending.append(iter(deps[nxt]))
    return None


def _ancestors(steps: Sequence[plan_pb2.WorkflowStep]) -> dict[str, frozenset[str]]:
    """Every step's transitive dependencies; the graph is known to be acyclic and closed."""
    deps = {s.step_id: tuple(s.dependencies) for s in steps}
    result: dict[str, frozenset[str]] = {}
    for root in deps:
        stack = [(root, False)]
        while stack:
            sid, expanded = stack.pop()
            if sid in result:
                continue
            if expanded:
                acc: set[str] = set()
                for dep in deps[sid]:
                    acc.add(dep)
                    acc |= result[dep]
                result[sid] = frozenset(acc)
            else:
                stack.append((sid, True))
                stack.extend((dep, False) for dep in deps[sid] if dep not in result)
    return result


def _check_references(i: int, step: plan_pb2.WorkflowStep, index: Mapping[str, int], ancestors: frozenset[str]) -> None:
    """A step may read only steps it waits for; any other output may not exist yet (a race)."""
    field = f"workflow_steps[{i}]"
    sources: list[tuple[str, Iterable[tuple[str, str]]]] = [
        (f"{field}.inputs.configuration", iter_expressions(json_format.MessageToDict(step.inputs.configuration)))
    ]
    if step.timing.condition:
        sources.append((f"{field}.timing.condition", [("", step.timing.condition)]))
    alt = step.error_handling.alternative
    if step.error_handling.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE and alt.HasField("configuration"):
        sources.append(
            (
                f"{field}.error_handling.alternative.configuration",
                iter_expressions(json_format.MessageToDict(alt.configuration)),
            )
        )
    for prefix, expressions in sources:
        for path, expression in expressions:
            try:
                read = referenced_steps(expression)
            except jmespath.exceptions.JMESPathError as error:
                # Unreachable for a plan that passed the step checks, which compile every expression.
                raise PlanInvalidError(f"{prefix}{path}", f"does not compile: {error}") from None
            for ref in sorted(read):
                if ref not in index:
                    raise PlanInvalidError(
                        f"{prefix}{path}", f'expression reads steps.{ref}, but the plan has no step "{ref}"'
                    )
                if ref == step.step_id:
                    raise PlanInvalidError(f"{prefix}{path}", f'step "{ref}" reads its own output')
                if ref not in ancestors:
                    raise PlanInvalidError(
                        f"{prefix}{path}",
                        f'expression reads steps.{ref}, but step "{step.step_id}" does not depend on "{ref}" '
                        "(directly or through other steps), so its output may not exist yet",
                    )


# ---- quality gates ------------------------------------------------------------------------


def _check_gates(gates: Sequence[plan_pb2.QualityGate], index: Mapping[str, int]) -> None:
    seen: dict[str, int] = {}
    for g, gate in enumerate(gates):
        field = f"quality_gates[{g}]"
        if not gate.gate_id:
            raise PlanInvalidError(f"{field}.gate_id", "is required")
        if gate.gate_id in seen:
            raise PlanInvalidError(
                f"{field}.gate_id",
                f'"{gate.gate_id}" is already the id of quality_gates[{seen[gate.gate_id]}]; gate ids must be unique',
            )
        seen[gate.gate_id] = g
        if gate.checkpoint not in index:
            raise PlanInvalidError(
                f"{field}.checkpoint", f'gate "{gate.gate_id}" checks unknown step "{gate.checkpoint}"'
            )
        if not gate.criteria:
            raise PlanInvalidError(f"{field}.criteria", "a gate needs at least one criterion")
        for c, criterion in enumerate(gate.criteria):
            cfield = f"{field}.criteria[{c}]"
            if not criterion.metric:
                raise PlanInvalidError(f"{cfield}.metric", 'is required ("score" is the overall score)')
            if criterion.operator == plan_pb2.COMPARISON_OPERATOR_UNSPECIFIED:
                raise PlanInvalidError(f"{cfield}.operator", "is required: one of gt, lt, eq, gte, lte")
            _check_enum(f"{cfield}.operator", criterion.operator, plan_pb2.ComparisonOperator.DESCRIPTOR)
            if not math.isfinite(criterion.value):
                raise PlanInvalidError(f"{cfield}.value", "must be a finite number")
            _check_range(f"{cfield}.weight", criterion.weight, 0.0, 100.0)
        if sum(c.weight for c in gate.criteria) <= 0:
            raise PlanInvalidError(f"{field}.criteria", "the criteria's weights must not all be 0")
        if gate.action_on_failure == plan_pb2.GATE_ACTION_ESCALATE:
            raise PlanInvalidError(f"{field}.action_on_failure", "escalate is not supported yet")
        _check_enum(f"{field}.action_on_failure", gate.action_on_failure, plan_pb2.GateAction.DESCRIPTOR)
        _check_range(f"{field}.pass_score", gate.pass_score, 0.0, 100.0)


# ---- values -------------------------------------------------------------------------------


def _check_enum(field: str, value: int, descriptor: EnumDescriptor) -> None:
    if value not in descriptor.values_by_number:
        names = ", ".join(v.name for v in descriptor.values)
        raise PlanInvalidError(field, f"{value} is not a {descriptor.name} value; valid values: {names}")


def _check_range(field: str, value: float, low: float, high: float) -> None:
    if not math.isfinite(value) or not low <= value <= high:
        raise PlanInvalidError(field, f"must be between {low:g} and {high:g}, not {value:g}")


def _seconds(duration: Duration) -> float:
    return duration.seconds + duration.nanos / 1e9


def _check_duration(field: str, duration: Duration, *, minimum: float = 0.0, maximum: float | None = None) -> None:
    s, n = duration.seconds, duration.nanos
    if abs(s) > _DURATION_LIMIT or abs(n) > 999_999_999 or (s > 0 > n) or (s < 0 < n):
        raise PlanInvalidError(field, "is not a valid google.protobuf.Duration")
    value = _seconds(duration)
    if value < 0:
        raise PlanInvalidError(field, f"must not be negative, not {_human(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = (
            f"between {_human(minimum)} and {_human(maximum)}" if maximum is not None else f"at least {_human(minimum)}"
        )
        raise PlanInvalidError(field, f"must be {bound}, not {_human(value)}")


def _human(seconds: float) -> str:
    if seconds != 0 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if 0 < abs(seconds) < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"
