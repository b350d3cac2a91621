"""Plan validation: every rule a plan keeps before it may run, each breach named by its field."""

# Client-built plans (ExecuteWorkflowRequest.plan) and planned plans pass through the same
# `validate_plan`; a breach raises `PlanInvalidError`, which the API answers with
# INVALID_ARGUMENT and the message ``<field>: <what is wrong>``. The first breach found is
# reported, checking in plan order: plan-level fields, the execution strategy, each step on its
# own (_steps.py), the dependency graph, the expressions' references, then the quality gates.
# The limits and the checks of single values live in _values.py.

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

import jmespath
from baton.v1 import plan_pb2

from server.planner._errors import PlanInvalidError
from server.planner._expressions import expression_of, iter_expressions, referenced_steps
from server.planner._steps import check_step, is_approval
from server.planner._values import (
    DEFAULT_APPROVAL_TIMEOUT,
    MAX_APPROVAL_TIMEOUT,
    MAX_BACKOFF,
    MAX_CIRCUIT_WAITS,
    MAX_CONCURRENCY,
    MAX_CUSTOM_BACKOFFS,
    MAX_MULTIPLIER,
    MAX_PLAN_TIMEOUT,
    MAX_PROMPT_LENGTH,
    MAX_RETRIES,
    MAX_STEP_TIMEOUT,
    MAX_STEPS,
    MAX_STRUCT_DEPTH,
    MIN_APPROVAL_TIMEOUT,
    MIN_TIMEOUT,
    check_duration,
    check_enum,
    check_range,
    struct_json,
)
from server.quoting import clip

__all__ = [
    "DEFAULT_APPROVAL_TIMEOUT",
    "MAX_APPROVAL_TIMEOUT",
    "MAX_CONCURRENCY",
    "MAX_CUSTOM_BACKOFFS",
    "MAX_PLAN_TIMEOUT",
    "MAX_PROMPT_LENGTH",
    "MAX_RETRIES",
    "MAX_STEPS",
    "MAX_STEP_TIMEOUT",
    "MAX_STRUCT_DEPTH",
    "MIN_APPROVAL_TIMEOUT",
    "MIN_TIMEOUT",
    "PlanInvalidError",
    "validate_plan",
]


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
        check_step(i, step, index)
        index[step.step_id] = i
    for i, step in enumerate(steps):
        _check_dependencies(i, step, index)
    _check_acyclic(steps, index)
    ancestors = _ancestors(steps)
    for i, step in enumerate(steps):
        _check_references(i, step, index, ancestors[step.step_id])
    _check_gates(plan.quality_gates, steps)


# ---- plan level ---------------------------------------------------------------------------


def _check_plan_fields(plan: plan_pb2.OrchestrationPlan) -> None:
    if plan.HasField("timeout"):
        check_duration("timeout", plan.timeout, minimum=MIN_TIMEOUT, maximum=MAX_PLAN_TIMEOUT)
    if plan.HasField("estimated_duration"):
        check_duration("estimated_duration", plan.estimated_duration)
    check_range("complexity_score", plan.complexity_score, 0.0, 100.0)


def _check_strategy(strategy: plan_pb2.ExecutionStrategy) -> None:
    field = "execution_strategy"
    check_enum(f"{field}.execution_mode", strategy.execution_mode, plan_pb2.ExecutionMode.DESCRIPTOR)
    check_enum(f"{field}.priority", strategy.priority, plan_pb2.Priority.DESCRIPTOR)
    if not 0 <= strategy.max_concurrency <= MAX_CONCURRENCY:
        raise PlanInvalidError(
            f"{field}.max_concurrency",
            f"must be between 0 and {MAX_CONCURRENCY}, not {strategy.max_concurrency}",
        )
    _check_retry_policy(f"{field}.retry_policy", strategy.retry_policy)


def _check_retry_policy(field: str, policy: plan_pb2.RetryPolicy) -> None:
    if not 0 <= policy.max_retries <= MAX_RETRIES:
        raise PlanInvalidError(f"{field}.max_retries", f"must be between 0 and {MAX_RETRIES}, not {policy.max_retries}")
    check_enum(f"{field}.backoff_strategy", policy.backoff_strategy, plan_pb2.BackoffStrategy.DESCRIPTOR)
    check_enum(f"{field}.circuit_breaker", policy.circuit_breaker, plan_pb2.CircuitBreakerMode.DESCRIPTOR)
    if policy.HasField("initial_backoff"):
        check_duration(f"{field}.initial_backoff", policy.initial_backoff, maximum=MAX_BACKOFF)
    if policy.HasField("max_backoff"):
        check_duration(f"{field}.max_backoff", policy.max_backoff, maximum=MAX_BACKOFF)
    multiplier = policy.backoff_multiplier
    if not math.isfinite(multiplier) or not (multiplier == 0 or 1 <= multiplier <= MAX_MULTIPLIER):
        raise PlanInvalidError(
            f"{field}.backoff_multiplier",
            f"must be 0 (the default, 2) or between 1 and {MAX_MULTIPLIER:g}, not {multiplier:g}",
        )
    check_range(f"{field}.jitter", policy.jitter, 0.0, 1.0)
    if not 0 <= policy.max_circuit_waits <= MAX_CIRCUIT_WAITS:
        raise PlanInvalidError(
            f"{field}.max_circuit_waits",
            f"must be between 0 and {MAX_CIRCUIT_WAITS}, not {policy.max_circuit_waits}",
        )
    if len(policy.custom_backoffs) > MAX_CUSTOM_BACKOFFS:
        raise PlanInvalidError(
            f"{field}.custom_backoffs",
            f"at most {MAX_CUSTOM_BACKOFFS} waits, not {len(policy.custom_backoffs)}",
        )
    for j, wait in enumerate(policy.custom_backoffs):
        check_duration(f"{field}.custom_backoffs[{j}]", wait, maximum=MAX_BACKOFF)
    if policy.backoff_strategy == plan_pb2.BACKOFF_STRATEGY_CUSTOM and not policy.custom_backoffs:
        raise PlanInvalidError(f"{field}.custom_backoffs", "BACKOFF_STRATEGY_CUSTOM needs at least one wait")


# ---- the graph ----------------------------------------------------------------------------


def _check_dependencies(i: int, step: plan_pb2.WorkflowStep, index: Mapping[str, int]) -> None:
    listed: set[str] = set()
    for j, dep in enumerate(step.dependencies):
        field = f"workflow_steps[{i}].dependencies[{j}]"
        if dep == step.step_id:
            raise PlanInvalidError(field, f'step "{step.step_id}" depends on itself')
        if dep not in index:
            raise PlanInvalidError(field, f'step "{step.step_id}" depends on unknown step "{clip(dep)}"')
        if dep in listed:
            raise PlanInvalidError(field, f'step "{step.step_id}" lists dependency "{clip(dep)}" twice')
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
    """A step may read only steps it waits for; any other output may not exist yet (a race).

    Its compensation runs after the step completed, so it may read the step's own output too.
    """
    field = f"workflow_steps[{i}]"
    # (where, expressions, the steps they may read)
    sources: list[tuple[str, Iterable[tuple[str, str]], frozenset[str]]] = [
        (
            f"{field}.inputs.configuration",
            iter_expressions(struct_json(f"{field}.inputs.configuration", step.inputs.configuration)),
            ancestors,
        )
    ]
    if step.timing.condition:
        sources.append((f"{field}.timing.condition", [("", step.timing.condition)], ancestors))
    for_each = expression_of(step.for_each)
    if for_each is not None:
        sources.append((f"{field}.for_each", [("", for_each)], ancestors))
    alt = step.error_handling.alternative
    if step.error_handling.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE and alt.HasField("configuration"):
        where = f"{field}.error_handling.alternative.configuration"
        sources.append((where, iter_expressions(struct_json(where, alt.configuration)), ancestors))
    if step.HasField("compensation"):
        where = f"{field}.compensation.configuration"
        own = ancestors | {step.step_id}
        sources.append((where, iter_expressions(struct_json(where, step.compensation.configuration)), own))
    if step.HasField("approval"):
        where = f"{field}.approval.data"
        sources.append((where, iter_expressions(struct_json(where, step.approval.data)), ancestors))
    for prefix, expressions, readable in sources:
        for path, expression in expressions:
            try:
                read = referenced_steps(expression)
            except jmespath.exceptions.JMESPathError as error:
                # Unreachable for a plan that passed the step checks, which compile every expression.
                raise PlanInvalidError(f"{prefix}{path}", f"does not compile: {clip(error, 200)}") from None
            for ref in sorted(read):
                if ref not in index:
                    raise PlanInvalidError(
                        f"{prefix}{path}", f'expression reads steps.{ref}, but the plan has no step "{ref}"'
                    )
                if ref in readable:
                    continue
                if ref == step.step_id:
                    raise PlanInvalidError(f"{prefix}{path}", f'step "{ref}" reads its own output')
                raise PlanInvalidError(
                    f"{prefix}{path}",
                    f'expression reads steps.{ref}, but step "{step.step_id}" does not depend on "{ref}" '
                    "(directly or through other steps), so its output may not exist yet",
                )


# ---- quality gates ------------------------------------------------------------------------


def _check_gates(gates: Sequence[plan_pb2.QualityGate], steps: Sequence[plan_pb2.WorkflowStep]) -> None:
    index = {s.step_id: i for i, s in enumerate(steps)}
    seen: dict[str, int] = {}
    for g, gate in enumerate(gates):
        field = f"quality_gates[{g}]"
        if not gate.gate_id:
            raise PlanInvalidError(f"{field}.gate_id", "is required")
        if gate.gate_id in seen:
            raise PlanInvalidError(
                f"{field}.gate_id",
                f'"{clip(gate.gate_id)}" is already the id of quality_gates[{seen[gate.gate_id]}];'
                " gate ids must be unique",
            )
        seen[gate.gate_id] = g
        if gate.checkpoint not in index:
            raise PlanInvalidError(
                f"{field}.checkpoint", f'gate "{clip(gate.gate_id)}" checks unknown step "{clip(gate.checkpoint)}"'
            )
        if is_approval(steps[index[gate.checkpoint]]):
            raise PlanInvalidError(
                f"{field}.checkpoint",
                f'gate "{clip(gate.gate_id)}" checks approval step "{gate.checkpoint}", which reports no quality',
            )
        if not gate.criteria:
            raise PlanInvalidError(f"{field}.criteria", "a gate needs at least one criterion")
        for c, criterion in enumerate(gate.criteria):
            cfield = f"{field}.criteria[{c}]"
            if not criterion.metric:
                raise PlanInvalidError(f"{cfield}.metric", 'is required ("score" is the overall score)')
            if criterion.operator == plan_pb2.COMPARISON_OPERATOR_UNSPECIFIED:
                raise PlanInvalidError(f"{cfield}.operator", "is required: one of gt, lt, eq, gte, lte")
            check_enum(f"{cfield}.operator", criterion.operator, plan_pb2.ComparisonOperator.DESCRIPTOR)
            if not math.isfinite(criterion.value):
                raise PlanInvalidError(f"{cfield}.value", "must be a finite number")
            check_range(f"{cfield}.weight", criterion.weight, 0.0, 100.0)
        if sum(c.weight for c in gate.criteria) <= 0:
            raise PlanInvalidError(f"{field}.criteria", "the criteria's weights must not all be 0")
        check_enum(f"{field}.action_on_failure", gate.action_on_failure, plan_pb2.GateAction.DESCRIPTOR)
        if gate.action_on_failure == plan_pb2.GATE_ACTION_RETRY and steps[index[gate.checkpoint]].for_each:
            raise PlanInvalidError(
                f"{field}.action_on_failure",
                f'gate "{clip(gate.gate_id)}" would re-run map step "{gate.checkpoint}" and all its items;'
                " use stop, continue_degraded or escalate",
            )
        check_range(f"{field}.pass_score", gate.pass_score, 0.0, 100.0)
