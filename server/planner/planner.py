"""The planner: a workflow definition adapted to one request, deterministically, into a valid plan."""

# Rules, applied in this order to a fresh copy of the definition's template (each rule's effect
# on the plan is visible in it; drops, avoided boards and inserted approvals are also listed, with
# their reason, in execution_strategy.fallback_strategy.fallback_paths):
#
# 1. Documents first. When current_data_state.profile_completeness < 50 or document_status is
#    UPLOADED or UNSPECIFIED, the definition's document_step is made the plan's only root (every
#    other root waits for it); a definition without one gets document_analysis's document step
#    prepended. The built-in definitions all start with analyze_resume already.
# 2. Speed. execution_options.quality_level, when set, decides; otherwise
#    user_preferences.processing_speed. FAST: parallel mode, every optional step dropped, gate
#    thresholds loosened by GATE_THRESHOLD_STEP. THOROUGH: every optional step kept, thresholds
#    tightened by GATE_THRESHOLD_STEP and every criterion required (pass_score 100). BALANCED or
#    unset: the definition as written.
# 3. Live health. An optional step whose agent reports AGENT_HEALTH_OFFLINE is dropped. Job
#    boards whose automation account_health is LIMITED or SUSPENDED are left out of every
#    request with a ``sources`` field (SearchJobs): a literal list is filtered; an absent one
#    becomes the other boards job_discovery reports (its api_rate_limits keys), sorted, and stays
#    absent, with a note, when job_discovery has reported none.
# 4. Approvals (journey_context.user_preferences.automation_level). A definition marks with
#    ``requires_approval`` its high-stakes steps: those that act in the user's name (submitting
#    applications), and only those. MANUAL ("nothing is submitted without the user's approval")
#    and SEMI_AUTOMATIC ("asks only before high-stakes steps") therefore both get an approval step
#    inserted before every requires_approval step still in the plan, as the definition's
#    ``approval`` block describes (see _approvals.py: the approval takes the step's dependencies
#    and condition, the step then waits for it and reads the approved inputs). FULLY_AUTOMATIC
#    and an unset level get none. Approvals come after the drops of rules 2-3, so a dropped step
#    is never guarded and an approval never shows a dropped step's output.
# 5. Priority: execution_options.priority when set, else journey_context.urgency_level (low,
#    medium, high, critical map one to one), else the definition's.
# 6. Timeout: execution_options.timeout when set, else the definition's (else the engine's
#    default), extended by the wait of every approval step (its approval.timeout, 1 hour when
#    unset), capped at 24 hours: the execution timeout bounds the work, each approval's own
#    timeout bounds the wait for the person.
# 7. Estimates: each call step's timing.estimated_duration is the p50 of `estimates(agent,
#    operation)` when it answers with enough samples (capped at the step's timeout; timing.
#    estimate_source HISTORY, with estimate_samples and estimated_p95), else the definition's
#    (estimate_source DECLARED, estimate_samples still the count so far); the plan's is the sum
#    along the critical path, whose step ids are the fallback_strategy.primary_path. An
#    approval step's estimate stays 0 and its source unspecified: a person's answer cannot be
#    estimated. Adaptive timeouts (timeout_factor > 0, off by default): a step whose estimate
#    comes from history gets timeout p99 * timeout_factor, clamped to [min(ADAPTIVE_TIMEOUT_FLOOR,
#    declared), declared]: never longer than the definition allows, never cut below a second.
# 8. Shape: complexity_score and resource_requirements are computed from the final DAG.
#
# Dropping a step keeps the DAG's order (_drops.py): its dependants inherit its dependencies,
# request fields (of inputs, alternatives and compensations) whose expression reads its output
# are removed (at run time they would be null, hence omitted), gates checking it go with it, and
# a step whose condition reads it is dropped as well.
#
# fallback_paths lists, in order: every drop, avoided board and inserted approval with its
# reason, then every step's failure path ("notify_user: skipped if it fails", "x: agent.Operation
# if it fails").

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from baton.v1 import common_pb2, journey_pb2, plan_pb2
from google.protobuf import json_format

from agents_clients.catalog import AGENTS, operation
from server.engine.model import DEFAULT_EXECUTION_TIMEOUT
from server.planner._approvals import approval_wait, insert_approval
from server.planner._definitions import WorkflowDefinition, load_definitions
from server.planner._drops import drop_step
from server.planner._errors import DefinitionError, PlanInvalidError, UnknownWorkflowError
from server.planner._estimates import ADAPTIVE_TIMEOUT_FLOOR, Estimates, RecordedDurations, apply_estimates
from server.planner._expressions import expression_of
from server.planner._shape import complexity, failure_paths, resources
from server.planner._shape import critical_path as critical_path_of
from server.planner._steps import is_approval
from server.planner.validation import MAX_PLAN_TIMEOUT, MIN_TIMEOUT, validate_plan

__all__ = [
    "ADAPTIVE_TIMEOUT_FLOOR",
    "DEFINITIONS_DIR",
    "DOCUMENT_ANALYSIS",
    "GATE_THRESHOLD_STEP",
    "PROFILE_COMPLETE",
    "Estimates",
    "Planner",
    "RecordedDurations",
]

DEFINITIONS_DIR = Path(__file__).with_name("definitions")
"""Where the built-in workflow definitions live (package data)."""

DOCUMENT_ANALYSIS = "document_analysis"
"""The workflow whose document step is prepended when a profile needs its documents read first."""

PROFILE_COMPLETE = 50.0
"""Below this profile completeness (0-100) the user's documents are analysed first."""

GATE_THRESHOLD_STEP = 10.0
"""Points by which THOROUGH tightens and FAST loosens every gate criterion's threshold."""

_URGENCY_PRIORITY: Mapping[int, plan_pb2.Priority] = MappingProxyType(
    {
        journey_pb2.URGENCY_LEVEL_LOW: plan_pb2.PRIORITY_LOW,
        journey_pb2.URGENCY_LEVEL_MEDIUM: plan_pb2.PRIORITY_MEDIUM,
        journey_pb2.URGENCY_LEVEL_HIGH: plan_pb2.PRIORITY_HIGH,
        journey_pb2.URGENCY_LEVEL_CRITICAL: plan_pb2.PRIORITY_CRITICAL,
    }
)

# The automation levels under which the planner inserts approvals (rule 4).
_ASKING_LEVELS = frozenset({journey_pb2.AUTOMATION_LEVEL_MANUAL, journey_pb2.AUTOMATION_LEVEL_SEMI_AUTOMATIC})
_BAD_ACCOUNT = frozenset({common_pb2.ACCOUNT_HEALTH_LIMITED, common_pb2.ACCOUNT_HEALTH_SUSPENDED})
_FAST, _BALANCED, _THOROUGH = "fast", "balanced", "thorough"
# The requests the start-up self-check plans every definition with.
_CHECK_USER = "definition-check"
_CHECK_TIME = datetime(2000, 1, 1, tzinfo=UTC)


class Planner:
    """Plans workflows from the built-in (or given) YAML definitions.

    The definitions are read and validated once, at construction; a planner holds no other
    state, so one instance may serve every request concurrently.
    """

    def __init__(self, definitions_dir: Path | None = None) -> None:
        """Loads and validates every definition.

        Args:
            definitions_dir: a directory of ``*.yaml`` definitions; None for the built-in ones.

        Raises:
            DefinitionError: a definition is malformed or plans an invalid plan under some
                combination of the request's adaptation rules.
        """
        definitions = load_definitions(definitions_dir or DEFINITIONS_DIR)
        self._definitions: Mapping[str, WorkflowDefinition] = MappingProxyType(
            {d.workflow_type: d for d in definitions}
        )
        names: dict[str, str] = {}
        journeys: dict[int, str] = {}
        for d in definitions:
            names[d.workflow_type] = d.workflow_type
            names.update(dict.fromkeys(d.aliases, d.workflow_type))
            journeys.update(dict.fromkeys(d.journey_types, d.workflow_type))
        self._names: Mapping[str, str] = MappingProxyType(names)
        self._journeys: Mapping[int, str] = MappingProxyType(journeys)
        for definition in definitions:
            self.check(definition)

    def workflow_types(self) -> list[str]:
        """Returns the canonical workflow types, sorted."""
        return sorted(self._definitions)

    def definitions(self) -> tuple[WorkflowDefinition, ...]:
        """Returns every definition, sorted by workflow type."""
        return tuple(self._definitions[name] for name in sorted(self._definitions))

    def resolve(
        self,
        workflow_type: str,
        journey_type: journey_pb2.JourneyType = journey_pb2.JOURNEY_TYPE_UNSPECIFIED,
    ) -> str:
        """Returns the canonical workflow type a request names.

        Args:
            workflow_type: a canonical type or an alias, any case; empty to use `journey_type`.
            journey_type: the journey type standing in for an empty `workflow_type`.

        Raises:
            UnknownWorkflowError: neither names a definition.
        """
        name = workflow_type.strip().lower()
        canonical = self._names.get(name) if name else self._journeys.get(journey_type)
        if canonical is None:
            aliases = sorted((a, c) for a, c in self._names.items() if a != c)
            raise UnknownWorkflowError(workflow_type, self.workflow_types(), aliases)
        return canonical

    def definition(self, workflow_type: str) -> WorkflowDefinition:
        """Returns the definition a workflow type or alias names.

        Raises:
            UnknownWorkflowError: it names none.
        """
        return self._definitions[self.resolve(workflow_type)]

    def plan(
        self,
        workflow_type: str,
        user_context: journey_pb2.UserJourney,
        options: journey_pb2.ExecutionOptions | None = None,
        *,
        plan_id: str,
        now: datetime,
        health: Mapping[str, common_pb2.AgentStatus] | None = None,
        estimates: Estimates | None = None,
        definition: WorkflowDefinition | None = None,
        timeout_factor: float = 0.0,
    ) -> plan_pb2.OrchestrationPlan:
        """Plans a workflow for a user; the same arguments always give the same plan.

        Args:
            workflow_type: a canonical type or alias; empty to use user_context.journey_type.
            user_context: the user's journey; user_id is required.
            options: the request's priority, timeout and quality level.
            plan_id: the new plan's id.
            now: the plan's created_at.
            health: the agents' latest statuses by agent name; absent agents count as healthy.
            estimates: recorded (p50, p95) seconds per (agent, operation).
            definition: the definition to plan (a registered version, see server.registry);
                None to plan the built-in one `workflow_type` names.
            timeout_factor: above 0, adaptive timeouts of p99 * this factor (rule 7); 0 for none.

        Returns:
            A plan that passed `validate_plan`.

        Raises:
            UnknownWorkflowError: the workflow type (or journey type) names no definition.
            PlanInvalidError: user_context.user_id is empty or an option is out of range.
        """
        if definition is None:
            definition = self._definitions[self.resolve(workflow_type, user_context.journey_type)]
        if not user_context.user_id:
            raise PlanInvalidError("user_context.user_id", "is required: the execution is owned by this user")
        options = options if options is not None else journey_pb2.ExecutionOptions()
        _check_options(options)
        health = health if health is not None else {}

        plan = definition.template()
        notes: list[str] = []
        preferences = user_context.journey_context.user_preferences
        if preferences.automation_level not in journey_pb2.AutomationLevel.DESCRIPTOR.values_by_number:
            # An unknown level must not pass for one that asks nothing: the user may expect approvals.
            raise PlanInvalidError(
                "user_context.journey_context.user_preferences.automation_level",
                f"{preferences.automation_level} is not an AutomationLevel value",
            )
        if _needs_documents_first(user_context.current_data_state):
            _documents_first(plan, definition, self._definitions.get(DOCUMENT_ANALYSIS), notes)
        _apply_speed(plan, _speed(options.quality_level, preferences.processing_speed), notes)
        _apply_health(plan, health, notes)
        _apply_approvals(plan, definition, preferences.automation_level, notes)

        strategy = plan.execution_strategy
        urgency = user_context.journey_context.urgency_level
        if options.priority != plan_pb2.PRIORITY_UNSPECIFIED:
            strategy.priority = options.priority
        elif urgency in _URGENCY_PRIORITY:
            strategy.priority = _URGENCY_PRIORITY[urgency]
        elif strategy.priority == plan_pb2.PRIORITY_UNSPECIFIED:
            strategy.priority = plan_pb2.PRIORITY_MEDIUM
        if options.HasField("timeout"):
            plan.timeout.CopyFrom(options.timeout)
        _extend_timeout(plan)

        apply_estimates(plan, estimates, timeout_factor)
        critical_path, total = critical_path_of(plan.workflow_steps)
        plan.estimated_duration.FromNanoseconds(round(total * 1e9))
        fallback = strategy.fallback_strategy
        fallback.primary_path = " -> ".join(critical_path)
        fallback.fallback_paths.extend(notes + failure_paths(plan.workflow_steps))
        plan.complexity_score = complexity(plan)
        plan.resource_requirements.CopyFrom(resources(plan.workflow_steps))

        plan.plan_id = plan_id
        plan.user_id = user_context.user_id
        plan.workflow_type = definition.workflow_type
        plan.workflow_version = definition.version
        plan.created_at.FromDatetime(now)
        validate_plan(plan)
        return plan

    def check(self, definition: WorkflowDefinition) -> None:
        """Plans a definition under each adaptation, so that a flaw shows now, not in a request.

        Every built-in passes this at start-up; a registered definition passes it before it is
        stored (server.registry), so both are validated by the same rules.

        Raises:
            DefinitionError: some adaptation of the definition plans an invalid plan.
        """
        levels = (
            journey_pb2.AUTOMATION_LEVEL_UNSPECIFIED,
            journey_pb2.AUTOMATION_LEVEL_MANUAL,
            journey_pb2.AUTOMATION_LEVEL_SEMI_AUTOMATIC,
        )
        speeds = (
            journey_pb2.PROCESSING_SPEED_BALANCED,
            journey_pb2.PROCESSING_SPEED_FAST,
            journey_pb2.PROCESSING_SPEED_THOROUGH,
        )
        offline = {a: common_pb2.AgentStatus(agent=a, status=common_pb2.AGENT_HEALTH_OFFLINE) for a in AGENTS}
        for level in levels:
            for speed in speeds:
                for completeness, health in ((0.0, None), (100.0, offline)):
                    user = journey_pb2.UserJourney(user_id=_CHECK_USER)
                    user.journey_context.user_preferences.automation_level = level
                    user.journey_context.user_preferences.processing_speed = speed
                    user.current_data_state.profile_completeness = completeness
                    user.current_data_state.document_status = journey_pb2.DOCUMENT_STATUS_ANALYZED
                    try:
                        self.plan(
                            definition.workflow_type,
                            user,
                            plan_id="check",
                            now=_CHECK_TIME,
                            health=health,
                            definition=definition,
                        )
                    except PlanInvalidError as error:
                        setting = (
                            f"automation_level {journey_pb2.AutomationLevel.Name(level)}, "
                            f"processing_speed {journey_pb2.ProcessingSpeed.Name(speed)}"
                        )
                        raise DefinitionError(definition.source, f"with {setting}: {error}") from None


# ---- rules --------------------------------------------------------------------------------


def _check_options(options: journey_pb2.ExecutionOptions) -> None:
    if options.priority not in plan_pb2.Priority.DESCRIPTOR.values_by_number:
        raise PlanInvalidError("execution_options.priority", f"{options.priority} is not a Priority value")
    if options.quality_level not in journey_pb2.QualityLevel.DESCRIPTOR.values_by_number:
        raise PlanInvalidError(
            "execution_options.quality_level", f"{options.quality_level} is not a QualityLevel value"
        )
    if options.HasField("timeout"):
        seconds = options.timeout.seconds + options.timeout.nanos / 1e9
        if not MIN_TIMEOUT <= seconds <= MAX_PLAN_TIMEOUT:
            raise PlanInvalidError(
                "execution_options.timeout", f"must be between 1ms and 24h, not {options.timeout.ToJsonString()}"
            )


def _needs_documents_first(state: journey_pb2.CurrentDataState) -> bool:
    unread = (journey_pb2.DOCUMENT_STATUS_UNSPECIFIED, journey_pb2.DOCUMENT_STATUS_UPLOADED)
    return state.profile_completeness < PROFILE_COMPLETE or state.document_status in unread


def _documents_first(
    plan: plan_pb2.OrchestrationPlan,
    definition: WorkflowDefinition,
    document_analysis: WorkflowDefinition | None,
    notes: list[str],
) -> None:
    steps = plan.workflow_steps
    first = definition.document_step if _find(steps, definition.document_step) is not None else ""
    if not first:
        if document_analysis is None or not document_analysis.document_step:
            return
        source = _find(document_analysis.template().workflow_steps, document_analysis.document_step)
        if source is None or _find(steps, source.step_id) is not None:
            return
        added = plan_pb2.WorkflowStep()
        added.CopyFrom(source)
        del added.dependencies[:]
        steps.insert(0, added)
        first = added.step_id
        notes.append(f"{first}: added first (the user's documents are not analysed yet)")
    for step in steps:
        if step.step_id != first and not step.dependencies:
            step.dependencies.append(first)


def _speed(quality: journey_pb2.QualityLevel, speed: journey_pb2.ProcessingSpeed) -> str:
    # The request's own option is more specific than the user's standing preference.
    if quality == journey_pb2.QUALITY_LEVEL_FAST:
        return _FAST
    if quality == journey_pb2.QUALITY_LEVEL_THOROUGH:
        return _THOROUGH
    if quality == journey_pb2.QUALITY_LEVEL_BALANCED:
        return _BALANCED
    if speed == journey_pb2.PROCESSING_SPEED_FAST:
        return _FAST
    if speed == journey_pb2.PROCESSING_SPEED_THOROUGH:
        return _THOROUGH
    return _BALANCED


def _apply_speed(plan: plan_pb2.OrchestrationPlan, speed: str, notes: list[str]) -> None:
    if speed == _FAST:
        plan.execution_strategy.execution_mode = plan_pb2.EXECUTION_MODE_PARALLEL
        plan.execution_strategy.max_concurrency = 0
        for step_id in [s.step_id for s in plan.workflow_steps if s.optional]:
            drop_step(plan, step_id, "processing speed fast: optional steps are left out", notes)
        _shift_gates(plan, -GATE_THRESHOLD_STEP)
    elif speed == _THOROUGH:
        _shift_gates(plan, GATE_THRESHOLD_STEP)
        for gate in plan.quality_gates:
            gate.pass_score = 100.0


def _shift_gates(plan: plan_pb2.OrchestrationPlan, stricter_by: float) -> None:
    """Moves every threshold `stricter_by` points toward stricter (negative: looser), within 0-100."""
    above = (plan_pb2.COMPARISON_OPERATOR_GT, plan_pb2.COMPARISON_OPERATOR_GTE)
    below = (plan_pb2.COMPARISON_OPERATOR_LT, plan_pb2.COMPARISON_OPERATOR_LTE)
    for gate in plan.quality_gates:
        for criterion in gate.criteria:
            if criterion.operator in above:
                criterion.value = min(100.0, max(0.0, criterion.value + stricter_by))
            elif criterion.operator in below:
                criterion.value = min(100.0, max(0.0, criterion.value - stricter_by))


def _apply_health(
    plan: plan_pb2.OrchestrationPlan, health: Mapping[str, common_pb2.AgentStatus], notes: list[str]
) -> None:
    for step_id, agent in [(s.step_id, s.agent) for s in plan.workflow_steps if s.optional]:
        status = health.get(agent)
        if status is not None and status.status == common_pb2.AGENT_HEALTH_OFFLINE:
            drop_step(plan, step_id, f"agent {agent} is offline", notes)
    _avoid_boards(plan, health, notes)


def _avoid_boards(
    plan: plan_pb2.OrchestrationPlan, health: Mapping[str, common_pb2.AgentStatus], notes: list[str]
) -> None:
    accounts = health["automation"].account_health if "automation" in health else {}
    bad = {board: state for board, state in sorted(accounts.items()) if state in _BAD_ACCOUNT}
    if not bad:
        return
    # Only boards job_discovery reports may be named: it rejects any other source (automation
    # also knows "direct", the employers' own sites, which no search covers).
    searchable = sorted(health["job_discovery"].api_rate_limits) if "job_discovery" in health else []
    for step in plan.workflow_steps:
        # Approvals are inserted after this rule (rule 4), so every step here is a call.
        field = operation(step.agent, step.operation).request_class.DESCRIPTOR.fields_by_name.get("sources")
        if field is None or not field.is_repeated:
            continue
        config: dict[str, Any] = json_format.MessageToDict(step.inputs.configuration)
        current = config.get("sources")
        if current is None:
            candidates = searchable
            if not candidates:
                notes.append(
                    f"{step.step_id}: cannot avoid job boards {_boards(bad, list(bad))}: "
                    "job_discovery has not reported its boards"
                )
                continue
        elif isinstance(current, list) and all(isinstance(b, str) and expression_of(b) is None for b in current):
            candidates = list(current)
        else:
            # A source list computed at run time cannot be filtered now.
            continue
        avoided = [b for b in candidates if b in bad]
        kept = [b for b in candidates if b not in bad]
        if not avoided:
            continue
        if kept:
            config["sources"] = kept
            _set_configuration(step.inputs, config)
            notes.append(f"{step.step_id}: avoiding job boards {_boards(bad, avoided)}; searching {', '.join(kept)}")
        else:
            notes.append(f"{step.step_id}: every job board is limited or suspended: {_boards(bad, avoided)}")


def _boards(states: Mapping[str, int], boards: Sequence[str]) -> str:
    return ", ".join(
        f"{b} ({common_pb2.AccountHealth.Name(states[b]).removeprefix('ACCOUNT_HEALTH_').lower()})" for b in boards
    )


def _apply_approvals(
    plan: plan_pb2.OrchestrationPlan,
    definition: WorkflowDefinition,
    level: journey_pb2.AutomationLevel,
    notes: list[str],
) -> None:
    if level not in _ASKING_LEVELS:
        return
    why = (
        "automation_level manual: nothing is submitted without the user's approval"
        if level == journey_pb2.AUTOMATION_LEVEL_MANUAL
        else "automation_level semi_automatic: high-stakes steps wait for the user's approval"
    )
    for approval in definition.approvals:
        if insert_approval(plan, approval):
            notes.append(f"{approval.step_id}: asks the user before {approval.guarded_step} ({why})")


def _extend_timeout(plan: plan_pb2.OrchestrationPlan) -> None:
    waits = [approval_wait(s) for s in plan.workflow_steps if is_approval(s)]
    if not waits:
        return
    base = plan.timeout.ToNanoseconds() / 1e9 if plan.HasField("timeout") else DEFAULT_EXECUTION_TIMEOUT
    plan.timeout.FromNanoseconds(round(min(base + sum(waits), MAX_PLAN_TIMEOUT) * 1e9))


def _set_configuration(inputs: plan_pb2.StepInputs, config: Mapping[str, Any]) -> None:
    inputs.configuration.Clear()
    inputs.configuration.update(config)


def _find(steps: Sequence[plan_pb2.WorkflowStep], step_id: str) -> plan_pb2.WorkflowStep | None:
    return next((s for s in steps if s.step_id == step_id), None) if step_id else None
