"""The engine's plan model: validated proto plans turned into frozen values with defaults applied.

Validation (field-by-field, naming what is wrong) is the planner's job; this module assumes a
valid plan and only resolves the "unset means ..." defaults that plan.proto documents.
"""

from __future__ import annotations

import graphlib
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from baton.v1 import plan_pb2
from google.protobuf import struct_pb2
from google.protobuf.duration_pb2 import Duration

from server.engine.expressions import expression_of, has_expressions

DEFAULT_STEP_TIMEOUT = 30.0
"""Seconds an attempt may take when its timing.timeout is unset."""
DEFAULT_EXECUTION_TIMEOUT = 600.0
"""Seconds an execution may take when neither the plan nor the request sets a timeout."""
DEFAULT_INITIAL_BACKOFF = 0.2
"""Seconds of the first retry wait when unset."""
DEFAULT_MAX_BACKOFF = 30.0
"""Seconds any retry wait is capped at when unset."""
DEFAULT_MULTIPLIER = 2.0
"""Growth factor of exponential backoff when unset."""
DEFAULT_JITTER = 0.2
"""The jitter fraction when unset: each wait moves by up to ± 20 %."""
DEFAULT_MAX_CIRCUIT_WAITS = 2
"""Times a step's call waits for an open breaker's probe, spending no attempt, when unset."""
DEFAULT_MAX_CONCURRENCY = 2
"""Steps running at once in hybrid mode when unset."""
DEFAULT_APPROVAL_TIMEOUT = 3600.0
"""Seconds an approval step waits when its timeout is unset."""
DEFAULT_COMPENSATION_RETRIES = 5
"""Retries of a compensation after its first attempt when unset."""
DEFAULT_MAP_CONCURRENCY = 8
"""Items of a map step in flight at once when its max_concurrency is unset."""
MAX_MAP_ITEMS = 10_000
"""The most items a map step runs: a for_each list longer than this fails the step (a clear error,
not thousands of calls and events from one hostile or mistaken list)."""


LOW_QUALITY = "LOW_QUALITY"
"""The error type of a response below its step's quality_requirements."""


def seconds(duration: Duration) -> float:
    """Returns a Duration in seconds."""
    return duration.seconds + duration.nanos / 1e9


@dataclass(frozen=True)
class RetryPolicy:
    """How a step's failed attempts are retried."""

    max_retries: int = 0
    """Retries after the first attempt. Default 0."""
    strategy: int = plan_pb2.BACKOFF_STRATEGY_EXPONENTIAL
    """A BackoffStrategy value. Default exponential."""
    initial_backoff: float = DEFAULT_INITIAL_BACKOFF
    """Seconds of the first wait. Default 0.2."""
    max_backoff: float = DEFAULT_MAX_BACKOFF
    """Seconds every wait is capped at. Default 30."""
    multiplier: float = DEFAULT_MULTIPLIER
    """Exponential growth factor. Default 2."""
    jitter: float = DEFAULT_JITTER
    """Each wait is moved by up to ± jitter * wait. Default 0.2 (plan.proto: unset means 0.2)."""
    custom: tuple[float, ...] = ()
    """The waits of the custom strategy, the last repeated."""
    use_breaker: bool = True
    """Whether calls go through the agent's circuit breaker. Default True."""
    max_circuit_waits: int = DEFAULT_MAX_CIRCUIT_WAITS
    """Times a step's call that meets an open breaker waits for its probe time instead of
    spending a retry. Default 2 (about two reset timeouts: an agent back within a minute is waited for)."""

    @classmethod
    def from_proto(cls, proto: plan_pb2.RetryPolicy) -> RetryPolicy:
        """Builds a policy from its proto, applying the documented defaults."""
        return cls(
            max_retries=proto.max_retries,
            strategy=proto.backoff_strategy or plan_pb2.BACKOFF_STRATEGY_EXPONENTIAL,
            initial_backoff=seconds(proto.initial_backoff)
            if proto.HasField("initial_backoff")
            else DEFAULT_INITIAL_BACKOFF,
            max_backoff=seconds(proto.max_backoff) if proto.HasField("max_backoff") else DEFAULT_MAX_BACKOFF,
            multiplier=proto.backoff_multiplier or DEFAULT_MULTIPLIER,
            jitter=proto.jitter if proto.HasField("jitter") else DEFAULT_JITTER,
            custom=tuple(seconds(d) for d in proto.custom_backoffs),
            use_breaker=proto.circuit_breaker != plan_pb2.CIRCUIT_BREAKER_MODE_DISABLED,
            max_circuit_waits=proto.max_circuit_waits
            if proto.HasField("max_circuit_waits")
            else DEFAULT_MAX_CIRCUIT_WAITS,
        )

    def backoff(self, retry: int, unit_random: float) -> float:
        """Returns the wait in seconds before retry number `retry` (1 for the first retry).

        Args:
            retry: which retry this is, from 1.
            unit_random: a number in [0, 1) that places the jitter (injected for determinism).
        """
        if self.strategy == plan_pb2.BACKOFF_STRATEGY_LINEAR:
            wait = self.initial_backoff * retry
        elif self.strategy == plan_pb2.BACKOFF_STRATEGY_CUSTOM and self.custom:
            wait = self.custom[min(retry, len(self.custom)) - 1]
        else:
            wait = self.initial_backoff * self.multiplier ** (retry - 1)
        wait = min(wait, self.max_backoff)
        if self.jitter:
            wait += wait * self.jitter * (2.0 * unit_random - 1.0)
        return max(wait, 0.0)


@dataclass(frozen=True)
class Call:
    """An agent operation and the request configuration it is called with."""

    agent: str
    operation: str
    configuration: Mapping[str, Any]
    """The request as JSON; string values "${EXPR}" are resolved before the call."""
    dynamic: bool = False
    """Whether the configuration holds expressions (static ones are sent as they are)."""


@dataclass(frozen=True)
class Approval:
    """What an approval step shows and how long it waits."""

    timeout: float
    """Seconds the step waits for a signal. Default 1 hour."""
    on_timeout: int
    """An ApprovalTimeoutAction value, never UNSPECIFIED."""
    prompt: str
    data: Mapping[str, Any]
    """What an approval lets happen; string values "${EXPR}" are resolved when the step starts waiting."""


@dataclass(frozen=True)
class Compensation:
    """The call that undoes a completed step's effect."""

    call: Call
    timeout: float
    """Seconds per attempt. Default: the step's own timeout."""
    retries: int
    """Retries after the first attempt. Default 5."""


@dataclass(frozen=True)
class MapSpec:
    """How a map step (for_each) runs its items."""

    items: str
    """The JMESPath expression (without "${ }") whose value is the list of items."""
    max_concurrency: int = DEFAULT_MAP_CONCURRENCY
    """Items in flight at once. Default 8."""
    skip_failed_items: bool = False
    """ITEM_FAILURE_SKIP_ITEM: a failed item is skipped and the others go on; else (the default,
    ITEM_FAILURE_FAIL_STEP) the step fails once the items in flight have ended."""


@dataclass(frozen=True)
class Step:
    """One step of a plan, defaults applied."""

    step_id: str
    name: str
    call: Call
    """The agent call; for an approval step, an empty one (never called)."""
    dependencies: tuple[str, ...]
    timeout: float
    """Seconds per attempt (the gRPC deadline)."""
    retries: int
    """Retries after the first attempt, on each path (primary, alternative)."""
    fallback: int
    """A FallbackAction value, never UNSPECIFIED."""
    alternative: Call | None
    scheduling: int
    """A Scheduling value, never UNSPECIFIED."""
    delay: float
    """Seconds a scheduled step waits."""
    condition: str
    """The JMESPath condition of a conditional step."""
    optional: bool
    quality_requirement: float
    estimated_duration: float
    """Seconds, 0 when unknown."""
    approval: Approval | None = None
    """Set for approval steps (which wait for a signal instead of calling an agent)."""
    compensation: Compensation | None = None
    """The call that undoes the step's effect (of each item, for a map step); None when it has nothing to undo."""
    map: MapSpec | None = None
    """Set for a map step (for_each): the call is made once per item."""
    fail_below_quality: bool = False
    """Whether a response below `quality_requirement` fails the step (LOW_QUALITY)."""
    notify_on_failure: bool = False
    """Whether the user is told through ui_ux when the step fails (notification_required)."""

    def below_quality(self, score: float) -> bool:
        """Whether a response's quality score misses the step's quality_requirements."""
        return self.approval is None and self.quality_requirement > 0 and score < self.quality_requirement

    def quality_miss(self, score: float) -> str:
        """The LOW_QUALITY error's message for a response of `score`."""
        return f"quality {score:.1f} is below the step's quality_requirements {self.quality_requirement:g}"

    def call_on(self, alternative: bool) -> Call:
        """The call an attempt makes: the alternative one after a fallback to it, else the step's own."""
        return self.alternative if alternative and self.alternative is not None else self.call


@dataclass(frozen=True)
class QualityGate:
    """A quality gate: weighted criteria over the checkpoint step's quality report."""

    gate_id: str
    checkpoint: str
    criteria: tuple[plan_pb2.QualityCriterion, ...]
    action: plan_pb2.GateAction
    """A GateAction value, never UNSPECIFIED."""
    pass_score: float


PLAN_CACHE = 256
"""Runnable plans kept by Plan.from_proto for plans sent again."""


@dataclass(frozen=True)
class Plan:
    """A validated plan ready to run."""

    plan_id: str
    workflow_type: str
    steps: Mapping[str, Step]
    """Steps by id, in plan order."""
    order: tuple[str, ...]
    """Step ids in a topological order (plan order among ties)."""
    dependents: Mapping[str, tuple[str, ...]]
    """Step id → the steps that depend on it."""
    mode: int
    """An ExecutionMode value, never UNSPECIFIED."""
    max_concurrency: int
    """Steps running at once: 1 sequential, N hybrid, unbounded (0) parallel."""
    retry: RetryPolicy
    degraded_mode: bool
    gates: Mapping[str, tuple[QualityGate, ...]]
    """Checkpoint step id → its gates."""
    final_steps: tuple[str, ...]
    """Steps no other step depends on (their outputs are the primary outputs)."""
    estimated: bool = False
    """Whether any step declares an estimated duration (else no time-remaining estimate)."""

    @classmethod
    def from_proto(cls, proto: plan_pb2.OrchestrationPlan) -> Plan:
        """The runnable plan of a validated proto plan.

        Clients and the planner send the same plans again and again: what a plan's steps,
        strategy and gates build is kept (`PLAN_CACHE` of them, least recently used out) and
        shared, since a Plan and everything in it is immutable; only the id and type differ.
        """
        key = b"\0".join(
            (
                proto.execution_strategy.SerializeToString(deterministic=True),
                *(step.SerializeToString(deterministic=True) for step in proto.workflow_steps),
                b"\1",
                *(gate.SerializeToString(deterministic=True) for gate in proto.quality_gates),
            )
        )
        built = _PLANS.get(key)
        if built is None:
            built = cls._build(proto)
            _PLANS[key] = built
            if len(_PLANS) > PLAN_CACHE:
                _PLANS.popitem(last=False)
        else:
            _PLANS.move_to_end(key)
        if (built.plan_id, built.workflow_type) == (proto.plan_id, proto.workflow_type):
            return built
        return replace(built, plan_id=proto.plan_id, workflow_type=proto.workflow_type)

    @classmethod
    def _build(cls, proto: plan_pb2.OrchestrationPlan) -> Plan:
        """Builds the runnable plan of a validated proto plan."""
        strategy = proto.execution_strategy
        retry = RetryPolicy.from_proto(strategy.retry_policy)
        steps = {s.step_id: _step_from_proto(s, retry.max_retries) for s in proto.workflow_steps}
        dependents: dict[str, list[str]] = {sid: [] for sid in steps}
        for step in steps.values():
            for dep in step.dependencies:
                dependents[dep].append(step.step_id)
        mode = strategy.execution_mode or plan_pb2.EXECUTION_MODE_PARALLEL
        if mode == plan_pb2.EXECUTION_MODE_SEQUENTIAL:
            concurrency = 1
        elif mode == plan_pb2.EXECUTION_MODE_HYBRID:
            concurrency = strategy.max_concurrency or DEFAULT_MAX_CONCURRENCY
        else:
            concurrency = 0
        gates: dict[str, list[QualityGate]] = {}
        for g in proto.quality_gates:
            gates.setdefault(g.checkpoint, []).append(
                QualityGate(
                    gate_id=g.gate_id,
                    checkpoint=g.checkpoint,
                    criteria=tuple(g.criteria),
                    action=g.action_on_failure or plan_pb2.GATE_ACTION_STOP,
                    pass_score=g.pass_score or 100.0,
                )
            )
        return cls(
            plan_id=proto.plan_id,
            workflow_type=proto.workflow_type,
            steps=MappingProxyType(steps),
            order=_topological_order(steps),
            dependents=MappingProxyType({k: tuple(v) for k, v in dependents.items()}),
            mode=mode,
            max_concurrency=concurrency,
            retry=retry,
            degraded_mode=strategy.fallback_strategy.degraded_mode,
            gates=MappingProxyType({k: tuple(v) for k, v in gates.items()}),
            final_steps=tuple(sid for sid in steps if not dependents[sid]),
            estimated=any(s.estimated_duration > 0 for s in steps.values()),
        )


_PLANS: OrderedDict[bytes, Plan] = OrderedDict()


def _step_from_proto(proto: plan_pb2.WorkflowStep, default_retries: int) -> Step:
    timing = proto.timing
    handling = proto.error_handling
    alternative = None
    if handling.HasField("alternative") and handling.alternative.agent:
        alt = handling.alternative
        alternative = _call(
            alt.agent,
            alt.operation,
            _struct(alt.configuration) if alt.HasField("configuration") else _struct(proto.inputs.configuration),
        )
    approval = None
    if proto.kind == plan_pb2.STEP_KIND_APPROVAL:
        spec = proto.approval
        approval = Approval(
            timeout=seconds(spec.timeout) if spec.HasField("timeout") else DEFAULT_APPROVAL_TIMEOUT,
            on_timeout=spec.on_timeout or plan_pb2.APPROVAL_TIMEOUT_ACTION_FAIL,
            prompt=spec.prompt,
            data=_struct(spec.data),
        )
    compensation = None
    step_timeout = seconds(timing.timeout) if timing.HasField("timeout") else DEFAULT_STEP_TIMEOUT
    if proto.HasField("compensation") and proto.compensation.agent:
        comp = proto.compensation
        compensation = Compensation(
            call=_call(comp.agent, comp.operation, _struct(comp.configuration)),
            timeout=seconds(comp.timeout) if comp.HasField("timeout") else step_timeout,
            retries=comp.retry_count if comp.HasField("retry_count") else DEFAULT_COMPENSATION_RETRIES,
        )
    return Step(
        step_id=proto.step_id,
        name=proto.step_name or proto.step_id,
        call=_call(proto.agent, proto.operation, _struct(proto.inputs.configuration)),
        dependencies=tuple(proto.dependencies),
        timeout=step_timeout,
        retries=handling.retry_count if handling.HasField("retry_count") else default_retries,
        fallback=handling.fallback_action or plan_pb2.FALLBACK_ACTION_FAIL,
        alternative=alternative,
        scheduling=timing.scheduling or plan_pb2.SCHEDULING_IMMEDIATE,
        delay=seconds(timing.delay),
        condition=timing.condition,
        optional=proto.optional,
        quality_requirement=proto.inputs.quality_requirements,
        estimated_duration=seconds(timing.estimated_duration),
        approval=approval,
        compensation=compensation,
        fail_below_quality=proto.inputs.fail_below_quality,
        notify_on_failure=handling.notification_required,
        map=_map_spec(proto),
    )


def _map_spec(proto: plan_pb2.WorkflowStep) -> MapSpec | None:
    items = expression_of(proto.for_each)
    if items is None:
        return None
    return MapSpec(
        items=items,
        max_concurrency=proto.max_concurrency or DEFAULT_MAP_CONCURRENCY,
        skip_failed_items=proto.item_failure == plan_pb2.ITEM_FAILURE_SKIP_ITEM,
    )


def _call(agent: str, operation: str, configuration: Mapping[str, Any]) -> Call:
    return Call(agent, operation, configuration, dynamic=has_expressions(configuration))


def struct_json(struct: struct_pb2.Struct) -> dict[str, Any]:
    """A Struct as plain JSON (json_format's generic printer is several times slower)."""
    return {key: _value(value) for key, value in struct.fields.items()}


def _struct(struct: struct_pb2.Struct) -> Mapping[str, Any]:
    return MappingProxyType(struct_json(struct))


def _value(value: struct_pb2.Value) -> Any:
    """A Struct Value as plain JSON (json_format's generic printer is several times slower)."""
    kind = value.WhichOneof("kind")
    if kind == "struct_value":
        return {key: _value(v) for key, v in value.struct_value.fields.items()}
    if kind == "list_value":
        return [_value(v) for v in value.list_value.values]
    if kind == "null_value" or kind is None:
        return None
    return getattr(value, kind)


def _topological_order(steps: Mapping[str, Step]) -> tuple[str, ...]:
    """A topological order taking ready steps in plan order, so the order is deterministic."""
    position = {sid: index for index, sid in enumerate(steps)}
    sorter: graphlib.TopologicalSorter[str] = graphlib.TopologicalSorter()
    for sid, step in steps.items():
        sorter.add(sid, *step.dependencies)
    try:
        sorter.prepare()
    except graphlib.CycleError as exc:
        raise ValueError(f"plan has a cycle: {' -> '.join(exc.args[1])}") from None
    order: list[str] = []
    while sorter.is_active():
        ready = sorted(sorter.get_ready(), key=position.__getitem__)
        order.extend(ready)
        sorter.done(*ready)
    return tuple(order)
