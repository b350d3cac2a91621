"""The Orchestrator servicer: thin translation between protos and the planner, engine and store.

Past the house's ~500 lines because it is the one class implementing baton.v1.Orchestrator: one
short method per RPC, each validating its request and delegating (server.api.limits and .audit
hold the checks that grew large).
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import datetime
from typing import cast

import grpc
from baton.v1 import (
    execution_pb2,
    journey_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
    registry_pb2,
    reports_pb2,
    triggers_pb2,
)
from baton.v1.execution_context_pb2 import ExecutionContext
from google.protobuf import json_format

from agents_clients import CapacityCaller, CapacityWait
from server.api import registry as registry_rpcs
from server.api.audit import actor_of, audit_page, check_exact
from server.api.capacity import add_waits, capacity_health, shown
from server.api.errors import RequestError, invalid, streaming, unary
from server.api.estimates import Estimates
from server.api.execution_context import check_execution_context, unsampled, untraced
from server.api.folded import FoldedStates
from server.api.limits import RequestLimits, check_key, check_plan, check_request, check_struct
from server.api.quarantine import quarantine, quarantined_error, quarantined_status
from server.api.quotas import SubmissionBuckets
from server.api.shared_updates import SerializedUpdate, SharedUpdates
from server.api.sizing import fit_status, fit_update, message_budget, surely_fits
from server.api.triggers import TRIGGER_REQUEST_PREFIX, TriggerApi
from server.auth import Principal, Role, current_principal
from server.auth.policy import may_control, may_read
from server.callbacks import DestinationPolicy
from server.config import LimitsConfig
from server.engine import Clock, Engine, ExecutionState, FoldError, SignalCommand, Submission, render
from server.engine.model import seconds
from server.health import HealthMonitor
from server.planner import Planner, PlanningError, validate_plan
from server.quoting import quote
from server.registry import WorkflowRegistry
from server.store.base import (
    AuditQuery,
    CorruptHistoryError,
    DeletionNote,
    ExecutionNotFoundError,
    ExecutionQuery,
    ExecutionRecord,
    ExecutionStore,
    UnfinishedExecutionsError,
)
from server.streaming import ExecutionHub, HistoryUnreadableError

logger = logging.getLogger(__name__)

MAX_REQUEST_ID = 128
MAX_TIMEOUT_SECONDS = 24 * 3600.0
VALID_PLAN_CACHE = 256
"""Explicit plans remembered as valid (least recently used dropped first)."""
MAX_REASON = 1024
"""Characters of a cancel's, pause's, resume's, rerun's or signal's reason (it is stored in the history)."""
MAX_STEP_ID = 64
"""Characters of a signal's step_id or a rerun's from_step: no plan step has a longer id."""
MAX_PAGE_TOKEN = 1024
"""Characters of a ListExecutions page token (the store's tokens take well under 200)."""
SIGNALS = frozenset({execution_pb2.SIGNAL_APPROVE, execution_pb2.SIGNAL_REJECT, execution_pb2.SIGNAL_INPUT})
"""The signals a waiting step can be given."""


class OrchestratorServicer(orchestrator_pb2_grpc.OrchestratorServicer):
    """Implements baton.v1.Orchestrator."""

    def __init__(
        self,
        *,
        engine: Engine,
        store: ExecutionStore,
        planner: Planner,
        hub: ExecutionHub,
        health: HealthMonitor,
        clock: Clock,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        max_message_bytes: int = 4 * 1024 * 1024,
        trace_parent: Callable[[], str] | None = None,
        callback_policy: DestinationPolicy | None = None,
        limits: LimitsConfig | None = None,
        capacity: CapacityCaller | None = None,
        forget_callbacks: Callable[[Sequence[str]], None] | None = None,
        registry: WorkflowRegistry | None = None,
        estimates: Estimates | None = None,
    ) -> None:
        """Wires the servicer.

        Args:
            max_message_bytes: the server's message size limit; no status or update it sends
                is larger than this or than a default client's 4 MiB (see server.api.sizing).
            trace_parent: returns the ``traceparent`` of the current RPC's span, stored with each
                new execution (server.telemetry.tracing); None when tracing is off.
            callback_policy: where callback_url may point (default: public addresses only).
            limits: the request bounds and the submission quota (server.api.limits, .quotas).
            capacity: the agent calls' limits, whose waits statuses show (server.api.capacity).
            forget_callbacks: told the executions a deletion removed, so that the callbacks this
                process was sending about them stop at once (server.callbacks.CallbackRelay).
            registry: the registered workflow versions requests are planned from; None for
                the planner's built-ins only (and no registry RPCs: FAILED_PRECONDITION).
            estimates: recorded durations for plans, the cost model's prices, GetWorkflowReport
                (server.api.estimates); None: declared durations, plans without prices, no report.
        """
        self.engine = engine
        self.store = store
        self.planner = planner
        self.hub = hub
        self.health = health
        self.clock = clock
        self.new_id = new_id
        self.trace_parent = trace_parent
        self.budget = message_budget(max_message_bytes)
        """The bytes a status or an update may take."""
        self._valid_plans: OrderedDict[bytes, None] = OrderedDict()
        self.shared = SharedUpdates()
        """Each event's status and full update, made once for all its watches."""
        self.folded = FoldedStates(store)
        """Folded states of recently read executions, advanced by their history's tail."""
        self.callback_policy = callback_policy or DestinationPolicy()
        limits = limits or LimitsConfig()
        self.limits = RequestLimits.of(limits, max_message_bytes)
        self.submissions = SubmissionBuckets(limits.submissions_per_minute)
        self.capacity = capacity
        self.forget_callbacks = forget_callbacks
        self.triggers = TriggerApi(self)
        """PublishEvent and the trigger rules' RPCs (server.api.triggers)."""
        self.registry = registry
        self.estimates = estimates

    # ---- planning ---------------------------------------------------------------------------

    async def _plan(
        self, request: orchestrator_pb2.ExecuteWorkflowRequest | orchestrator_pb2.PlanWorkflowRequest, now: datetime
    ) -> plan_pb2.OrchestrationPlan:
        # An explicit plan is walked only when not already known valid (see _validate).
        check_request(request, with_plan=False, limits=self.limits)
        registry_rpcs.check_version_request(request)
        options = request.execution_options
        if options.HasField("timeout"):
            timeout = seconds(options.timeout)
            if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
                raise invalid("execution_options.timeout", f"must be above 0 and at most 24h, got {timeout:g}s")
        if isinstance(request, orchestrator_pb2.ExecuteWorkflowRequest) and request.HasField("plan"):
            plan = plan_pb2.OrchestrationPlan()
            plan.CopyFrom(request.plan)
            user_id = request.user_context.user_id or plan.user_id
            if not user_id:
                raise invalid("user_context.user_id", "required (the execution's owner)")
            if plan.user_id and plan.user_id != user_id:
                raise invalid("plan.user_id", f"is {quote(plan.user_id)} but user_context.user_id is {quote(user_id)}")
            plan.user_id = user_id
            plan.plan_id = plan.plan_id or self.new_id()
            plan.workflow_type = plan.workflow_type or request.workflow_type or "custom"
            if not plan.HasField("created_at"):
                plan.created_at.FromDatetime(now)
            self._validate(request.plan, plan)
            if self.estimates is not None:
                self.estimates.price(plan)
            return plan
        # The version the execution is pinned to (server.registry, rule 5): its plan records it.
        definition = None
        if self.registry is not None:
            definition = await self.registry.pick(
                request.workflow_type, request.user_context.journey_type, request.workflow_version
            )
        elif request.workflow_version:
            raise invalid("workflow_version", "this server has no workflow registry")
        plan = self.planner.plan(
            request.workflow_type,
            request.user_context,
            request.execution_options,
            plan_id=self.new_id(),
            now=now,
            health=self.health.agent_statuses(),
            definition=definition,
            **(self.estimates.planning() if self.estimates is not None else {}),
        )
        if self.estimates is not None:
            self.estimates.price(plan)
        return plan

    def _validate(self, as_sent: plan_pb2.OrchestrationPlan, plan: plan_pb2.OrchestrationPlan) -> None:
        """Validates an explicit plan; clients resend the same plan, so valid ones are remembered.

        Validation is a pure function of the plan, so a plan byte-for-byte equal to one already
        found valid (before the orchestrator filled in its id, owner and time) is valid too; the
        same holds for the request bounds of server.api.limits, checked here with it.
        """
        key = as_sent.SerializeToString(deterministic=True) + b"\0" + plan.user_id.encode()
        if key in self._valid_plans:
            self._valid_plans.move_to_end(key)
            return
        check_plan(as_sent, limits=self.limits)
        try:
            validate_plan(plan)
        except PlanningError as exc:
            raise invalid(f"plan.{exc.field}", exc.message) from None
        self._valid_plans[key] = None
        if len(self._valid_plans) > VALID_PLAN_CACHE:
            self._valid_plans.popitem(last=False)

    @unary
    async def PlanWorkflow(
        self, request: orchestrator_pb2.PlanWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> plan_pb2.OrchestrationPlan:
        _own(request, current_principal())
        return await self._plan(request, self.clock.now())

    @unary
    async def ExecuteWorkflow(
        self, request: orchestrator_pb2.ExecuteWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.Execution:
        principal = current_principal()
        check_key("request_id", request.request_id, MAX_REQUEST_ID)
        _own(request, principal)
        # Before anything costs: a user past the quota is refused without being planned (the
        # ids are checked first: they key the quota's table).
        check_key("user_context.user_id", request.user_context.user_id)
        check_key("plan.user_id", request.plan.user_id)
        self.submissions.take(
            principal.subject if principal.authenticated else request.user_context.user_id or request.plan.user_id
        )
        problem = request.callback_url and self.callback_policy.url_problem(request.callback_url)
        if problem:
            raise invalid("callback_url", problem)
        if request.request_id.startswith(TRIGGER_REQUEST_PREFIX):
            raise invalid("request_id", f"{TRIGGER_REQUEST_PREFIX!r} starts the request ids of triggered executions")
        execution_context = None
        if request.HasField("execution_context"):
            check_execution_context("execution_context", request.execution_context)
            execution_context = request.execution_context
        plan = await self._plan(request, self.clock.now())
        record, created = await self.engine.submit(
            Submission(
                execution_id=self.new_id(),
                plan=plan,
                user_context=request.user_context,
                options=request.execution_options,
                callback_url=request.callback_url,
                request_id=request.request_id,
                trace_parent=self.execution_trace_parent(execution_context),
                actor=actor_of(context, claimed_user=plan.user_id),
                execution_context=execution_context,
            )
        )
        if not created:
            first = await self.store.read_events(record.execution_id, limit=1)
            plan = first[0].execution_started.plan
        return orchestrator_pb2.Execution(
            execution_id=record.execution_id, plan=plan, status=_state(record.state), created=created
        )

    def execution_trace_parent(self, execution_context: ExecutionContext | None) -> str:
        """The trace context to store with a new execution: the current RPC's, marked not sampled
        when the execution's context turns tracing off (server.api.execution_context)."""
        trace_parent = self.trace_parent() if self.trace_parent is not None else ""
        if execution_context is not None and untraced(execution_context):
            return unsampled(trace_parent)
        return trace_parent

    # ---- event-driven triggers (server.api.triggers) -----------------------------------------

    @unary
    async def PublishEvent(
        self, request: triggers_pb2.PublishEventRequest, context: grpc.aio.ServicerContext
    ) -> triggers_pb2.PublishEventResponse:
        return await self.triggers.publish(request, actor_of(context))

    @unary
    async def RegisterTriggerRule(
        self, request: triggers_pb2.RegisterTriggerRuleRequest, context: grpc.aio.ServicerContext
    ) -> triggers_pb2.TriggerRule:
        return await self.triggers.register(request)

    @unary
    async def ListTriggerRules(
        self, request: triggers_pb2.ListTriggerRulesRequest, context: grpc.aio.ServicerContext
    ) -> triggers_pb2.ListTriggerRulesResponse:
        return await self.triggers.list(request)

    @unary
    async def DeleteTriggerRule(
        self, request: triggers_pb2.DeleteTriggerRuleRequest, context: grpc.aio.ServicerContext
    ) -> triggers_pb2.DeleteTriggerRuleResponse:
        return await self.triggers.delete(request)

    # ---- reading ----------------------------------------------------------------------------

    @unary
    async def GetExecution(
        self, request: orchestrator_pb2.GetExecutionRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ExecutionStatus:
        return await self._status(request.execution_id)

    async def _state(self, execution_id: str) -> ExecutionState | ExecutionRecord:
        """Folds the execution; returns its record instead when it is (or now gets) quarantined.

        Raises:
            RequestError: no execution_id.
            ExecutionNotFoundError: no such execution.
        """
        _check_execution_id(execution_id)
        record = await self._record(execution_id)
        if record.quarantine_error:
            return record
        try:
            return await self.folded.state(execution_id)
        except ExecutionNotFoundError:
            raise
        except CorruptHistoryError as error:
            return await quarantine(self.store, record, error)
        except Exception as error:
            # Whatever the fold raises on a stored history, it will raise again: quarantine.
            return await quarantine(self.store, record, error)

    async def _record(self, execution_id: str, *, control: bool = False) -> ExecutionRecord:
        """The execution's record, when the caller may see it (and, with `control`, control it).

        Raises:
            ExecutionNotFoundError: no such execution, or another user's (the same answer, so an
                identifier tells nothing about whether it exists).
            RequestError: PERMISSION_DENIED: an operator controlling another user's execution.
        """
        record = await self.store.get_execution(execution_id)
        principal = current_principal()
        if record is None or not may_read(principal, record.user_id):
            raise ExecutionNotFoundError(execution_id)
        if control and not may_control(principal, record.user_id):
            raise RequestError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"execution_id: controlling another user's execution needs the {Role.ADMIN} role",
            )
        return record

    async def _may_control(self, execution_id: str) -> None:
        """Refuses a control of an execution the caller may not control (see _record)."""
        if not current_principal().has(Role.ADMIN):  # an admin (or ANONYMOUS) needs no read
            await self._record(execution_id, control=True)

    async def _status(self, execution_id: str) -> execution_pb2.ExecutionStatus:
        state = await self._state(execution_id)
        if isinstance(state, ExecutionRecord):
            return quarantined_status(state)
        status = fit_status(render(state), self.budget)
        add_waits(status, self._capacity_waits(state))
        if status.status == execution_pb2.EXECUTION_STATE_QUEUED:
            status.queue_position = await self.engine.queue_position(execution_id)
        return status

    def _capacity_waits(self, state: ExecutionState) -> list[CapacityWait]:
        """The steps of `state` whose calls wait for agent capacity now (server.api.capacity)."""
        if self.capacity is None:
            return []
        waits = self.capacity.waits.of(state.execution_id)
        return shown(state, waits) if waits else []

    @streaming
    async def WatchExecution(
        self, request: orchestrator_pb2.WatchExecutionRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[orchestrator_pb2.ExecutionUpdate | SerializedUpdate]:
        _check_execution_id(request.execution_id)
        if request.after_sequence < 0:
            raise invalid("after_sequence", f"must be 0 or more, got {request.after_sequence}")
        if request.view not in orchestrator_pb2.WatchView.values():
            raise invalid("view", f"{request.view} is not a WatchView value")
        if not current_principal().reads_all:
            await self._record(request.execution_id)
        # No summary-row read up front (a watch is on every journey's hot path): a quarantined
        # execution shows itself by a history that cannot be read or folded, or, for one the
        # engine quarantined with a readable history, by its record when the watch goes idle.
        shown_waits: list[CapacityWait] = []
        # WATCH_VIEW_EVENTS: a status only when the execution's state changed since the last one
        # sent; WATCH_VIEW_STATE_CHANGES: only those updates.
        every_status = request.view not in (
            orchestrator_pb2.WATCH_VIEW_EVENTS,
            orchestrator_pb2.WATCH_VIEW_STATE_CHANGES,
        )
        every_event = request.view != orchestrator_pb2.WATCH_VIEW_STATE_CHANGES
        shown_state = -1
        try:
            async for event, state in self.hub.watch(request.execution_id, request.after_sequence):
                waits = self._capacity_waits(state)
                if event is None:
                    record = await self.store.get_execution(request.execution_id)
                    if record is None:  # deleted meanwhile (DeleteUserData, on any replica)
                        raise ExecutionNotFoundError(request.execution_id)
                    if record.quarantine_error:
                        raise quarantined_error(record)
                    sent = max(request.after_sequence, state.last_sequence)
                    beat = orchestrator_pb2.ExecutionUpdate(sequence=sent, heartbeat=True)
                    if waits != shown_waits:
                        # A wait for agent capacity began or ended: the heartbeat carries the status.
                        beat.status.CopyFrom(render(state, with_results=False))
                        add_waits(beat.status, waits)
                        shown_waits = waits
                    yield beat
                    continue
                changed = state.status != shown_state or waits != shown_waits
                if not (every_event or changed):
                    continue
                fits = surely_fits(state.storage_bytes, len(state.steps), self.budget)
                if every_status and fits and not waits and not shown_waits:
                    shown_state = state.status
                    yield self.shared.update(event, state)  # the same bytes for every watch
                    continue
                update = orchestrator_pb2.ExecutionUpdate(sequence=event.sequence, event=event)
                if every_status or changed:
                    shown_state = state.status
                    update.status.CopyFrom(self.shared.status(state))
                    add_waits(update.status, waits)
                    shown_waits = waits
                yield update if fits else fit_update(update, self.budget)
        except HistoryUnreadableError as error:
            record = await self.store.get_execution(request.execution_id)
            if record is None:
                raise ExecutionNotFoundError(request.execution_id) from None
            if record.quarantine_error:
                raise quarantined_error(record) from None  # already set aside (and logged) once
            raise quarantined_error(await quarantine(self.store, record, error.cause)) from None

    @unary
    async def GetStepOutput(
        self, request: orchestrator_pb2.GetStepOutputRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.StepOutput:
        _check_execution_id(request.execution_id)
        if not request.step_id:
            raise invalid("step_id", "required")
        check_key("step_id", request.step_id, MAX_STEP_ID)
        state = await self._state(request.execution_id)
        if isinstance(state, ExecutionRecord):
            raise quarantined_error(state)
        run = state.steps.get(request.step_id)
        if run is None:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"step_id: execution {quote(request.execution_id)} has no step {quote(request.step_id)}",
            )
        output = run.output_json()
        if output is None:
            raise RequestError(
                grpc.StatusCode.NOT_FOUND,
                f"step_id: step {quote(request.step_id)} of execution {quote(request.execution_id)} has no output"
                f" (it is {execution_pb2.StepState.Name(run.state)})",
            )
        reply = orchestrator_pb2.StepOutput(execution_id=request.execution_id, step_id=request.step_id)
        reply.output.update(output if isinstance(output, dict) else {"value": output})
        if reply.ByteSize() > self.budget:
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"step_id: the output of step {quote(request.step_id)} is {reply.ByteSize()} bytes,"
                f" more than the {self.budget} a reply may take",
            )
        return reply

    @unary
    async def ListExecutions(
        self, request: orchestrator_pb2.ListExecutionsRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ListExecutionsResponse:
        if not 0 <= request.page_size <= 1000:
            raise invalid("page_size", f"must be from 1 to 1000 (0 means 50), got {request.page_size}")
        check_key("user_id", request.user_id)
        check_key("workflow_type", request.workflow_type)
        check_key("page_token", request.page_token, MAX_PAGE_TOKEN)
        principal = current_principal()
        page = await self.store.list_executions(
            ExecutionQuery(
                # A user lists their own executions, whatever the request names.
                user_id=request.user_id if principal.reads_all else principal.subject,
                states=tuple(request.status),
                workflow_type=request.workflow_type,
                page_size=request.page_size or 50,
                page_token=request.page_token,
            )
        )
        return orchestrator_pb2.ListExecutionsResponse(
            executions=[_summary(r) for r in page.records], next_page_token=page.next_page_token
        )

    # ---- controlling ------------------------------------------------------------------------

    @unary
    async def CancelExecution(
        self, request: orchestrator_pb2.CancelExecutionRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ExecutionStatus:
        _check_control(request.execution_id, request.reason)
        record = await self._record(request.execution_id, control=True)
        if record.quarantine_error:
            return quarantined_status(record)
        try:
            await self.engine.cancel(
                request.execution_id, request.reason or "cancelled by a client", actor=actor_of(context)
            )
        except (CorruptHistoryError, FoldError) as error:
            return quarantined_status(await quarantine(self.store, record, error))
        return await self._status(request.execution_id)

    @unary
    async def PauseExecution(
        self, request: orchestrator_pb2.PauseExecutionRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ExecutionStatus:
        _check_control(request.execution_id, request.reason)
        await self._may_control(request.execution_id)
        await self.engine.pause(request.execution_id, request.reason or "paused by a client", actor=actor_of(context))
        return await self._status(request.execution_id)

    @unary
    async def ResumeExecution(
        self, request: orchestrator_pb2.ResumeExecutionRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ExecutionStatus:
        _check_control(request.execution_id, request.reason)
        await self._may_control(request.execution_id)
        await self.engine.resume(request.execution_id, request.reason or "resumed by a client", actor=actor_of(context))
        return await self._status(request.execution_id)

    @unary
    async def RerunExecution(
        self, request: orchestrator_pb2.RerunExecutionRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ExecutionStatus:
        _check_control(request.execution_id, request.reason)
        check_key("from_step", request.from_step, MAX_STEP_ID)
        check_key("request_id", request.request_id, MAX_REQUEST_ID)
        record = await self._record(request.execution_id, control=True)
        if record.quarantine_error:
            raise quarantined_error(record)
        try:
            await self.engine.rerun(
                request.execution_id,
                request.reason or "rerun by a client",
                from_step=request.from_step,
                request_id=request.request_id,
                actor=actor_of(context),
            )
        except (CorruptHistoryError, FoldError) as error:
            raise quarantined_error(await quarantine(self.store, record, error)) from None
        return await self._status(request.execution_id)

    @unary
    async def SignalExecution(
        self, request: orchestrator_pb2.SignalExecutionRequest, context: grpc.aio.ServicerContext
    ) -> execution_pb2.ExecutionStatus:
        _check_control(request.execution_id, request.reason)
        if request.signal not in SIGNALS:
            raise invalid(
                "signal", f"must be SIGNAL_APPROVE, SIGNAL_REJECT or SIGNAL_INPUT, got {_signal_name(request.signal)}"
            )
        if len(request.step_id) > MAX_STEP_ID:
            raise invalid("step_id", f"at most {MAX_STEP_ID} characters, got {len(request.step_id)}")
        check_struct("payload", request.payload, limits=self.limits)
        await self._may_control(request.execution_id)
        command = SignalCommand(
            signal=request.signal,
            step_id=request.step_id,
            payload=json_format.MessageToDict(request.payload),
            reason=request.reason,
            actor=actor_of(context),
        )
        await self.engine.signal(request.execution_id, command)
        return await self._status(request.execution_id)

    # ---- the audit trail and users' data ------------------------------------------------------

    @unary
    async def ListAuditEvents(
        self, request: orchestrator_pb2.ListAuditEventsRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.ListAuditEventsResponse:
        if not 0 <= request.page_size <= 1000:
            raise invalid("page_size", f"must be from 1 to 1000 (0 means 100), got {request.page_size}")
        for name in ("subject", "execution_id", "user_id"):
            check_exact(name, getattr(request, name))
        page = await self.store.list_audit(
            AuditQuery(
                subject=request.subject,
                execution_id=request.execution_id,
                user_id=request.user_id,
                page_size=request.page_size,
                page_token=request.page_token,
            )
        )
        return audit_page(page, self.budget)

    @unary
    async def DeleteUserData(
        self, request: orchestrator_pb2.DeleteUserDataRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.DeleteUserDataResponse:
        user_id = request.user_id
        if not user_id:
            raise invalid("user_id", "required")
        check_exact("user_id", user_id)
        actor = actor_of(context)
        note = DeletionNote(self.clock.now(), actor.subject, actor.SerializeToString())
        try:
            deletion = await self.store.delete_user_data(user_id, note)
        except UnfinishedExecutionsError as error:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, f"user_id: {error}") from None
        self.forget(user_id, deletion.execution_ids)
        await self.triggers.forget_user(user_id)
        # The deletion is also an audit entry (USER_DATA_DELETED, written with it); this line
        # is for the operator reading the logs.
        logger.warning(
            "deleted the data of user %r: %d executions, %d events (asked by %r from %s)",
            user_id[:64],
            len(deletion.execution_ids),
            deletion.events,
            actor.subject or "anonymous",
            actor.peer,
        )
        return orchestrator_pb2.DeleteUserDataResponse(
            executions_deleted=len(deletion.execution_ids), events_deleted=deletion.events
        )

    def forget(self, user_id: str, execution_ids: list[str]) -> None:
        """Drops what this process holds in memory of deleted executions (engine, watchers, plans).

        Args:
            user_id: the user whose data went (their remembered valid plans are dropped too);
                empty when the executions are not one user's (retention).
            execution_ids: the executions deleted.
        """
        self.engine.forget(execution_ids)
        self.hub.forget(execution_ids)
        self.folded.forget(execution_ids)
        self.shared.forget(execution_ids)
        if self.forget_callbacks is not None:
            self.forget_callbacks(execution_ids)
        if user_id:
            owner = b"\0" + user_id.encode()  # how _validate keys them
            for key in [key for key in self._valid_plans if key.endswith(owner)]:
                del self._valid_plans[key]

    # ---- the workflow registry (server/api/registry.py) -------------------------------------------

    def _registry(self) -> WorkflowRegistry:
        if self.registry is None:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, "this server has no workflow registry")
        return self.registry

    @unary
    async def RegisterWorkflow(
        self, request: registry_pb2.RegisterWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.RegisterWorkflowResponse:
        return await registry_rpcs.register_workflow(self._registry(), request)

    @unary
    async def GetWorkflow(
        self, request: registry_pb2.GetWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.WorkflowDefinitionInfo:
        return await registry_rpcs.get_workflow(self._registry(), request)

    @unary
    async def ListWorkflows(
        self, request: registry_pb2.ListWorkflowsRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.ListWorkflowsResponse:
        return await registry_rpcs.list_workflows(self._registry(), request)

    @unary
    async def DeprecateWorkflow(
        self, request: registry_pb2.DeprecateWorkflowRequest, context: grpc.aio.ServicerContext
    ) -> registry_pb2.WorkflowDefinitionInfo:
        return await registry_rpcs.deprecate_workflow(self._registry(), request)

    @unary
    async def GetWorkflowReport(
        self, request: reports_pb2.GetWorkflowReportRequest, context: grpc.aio.ServicerContext
    ) -> reports_pb2.WorkflowReport:
        if self.estimates is None:
            raise RequestError(grpc.StatusCode.FAILED_PRECONDITION, "this server keeps no estimates or costs")
        return await self.estimates.report(request)

    @unary
    async def GetSystemHealth(
        self, request: orchestrator_pb2.GetSystemHealthRequest, context: grpc.aio.ServicerContext
    ) -> orchestrator_pb2.SystemHealth:
        health = await self.health.system_health()
        if self.capacity is not None:
            for scope, state in capacity_health(self.capacity).items():
                health.capacity[scope].CopyFrom(state)
        return health


def _own(
    request: orchestrator_pb2.ExecuteWorkflowRequest | orchestrator_pb2.PlanWorkflowRequest, principal: Principal
) -> None:
    """Makes the authenticated caller the owner: the request's user ids become its subject.

    Raises:
        RequestError: PERMISSION_DENIED naming a user id field that names someone else.
    """
    if not principal.authenticated:
        return  # authentication off: the owner is the user the request names
    fields: list[tuple[str, journey_pb2.UserJourney | plan_pb2.OrchestrationPlan]] = [
        ("user_context.user_id", request.user_context)
    ]
    if isinstance(request, orchestrator_pb2.ExecuteWorkflowRequest) and request.HasField("plan"):
        fields.append(("plan.user_id", request.plan))
    for name, holder in fields:
        if holder.user_id and holder.user_id != principal.subject:
            raise RequestError(
                grpc.StatusCode.PERMISSION_DENIED,
                f"{name}: names another user; an execution's owner is the authenticated caller"
                f" ({principal.subject!r}): leave it empty or give your own",
            )
        holder.user_id = principal.subject


def _check_execution_id(execution_id: str) -> None:
    """Refuses a missing execution_id, or one no execution can have (see server.api.limits.check_key)."""
    if not execution_id:
        raise invalid("execution_id", "required")
    check_key("execution_id", execution_id)


def _check_control(execution_id: str, reason: str) -> None:
    """Validates what every control request has: the execution and a bounded reason."""
    _check_execution_id(execution_id)
    if len(reason) > MAX_REASON:
        raise invalid("reason", f"at most {MAX_REASON} characters, got {len(reason)}")


def _signal_name(value: int) -> str:
    """The enum name of a Signal value, or the bare number for one this release does not know."""
    try:
        return execution_pb2.Signal.Name(value)
    except ValueError:
        return str(value)


def _state(value: int) -> execution_pb2.ExecutionState:
    return cast(execution_pb2.ExecutionState, value)


def _summary(record: ExecutionRecord) -> orchestrator_pb2.ExecutionSummary:
    summary = orchestrator_pb2.ExecutionSummary(
        execution_id=record.execution_id,
        user_id=record.user_id,
        workflow_type=record.workflow_type,
        status=_state(record.state),
        plan_id=record.plan_id,
    )
    summary.created_at.FromDatetime(record.created_at)
    summary.updated_at.FromDatetime(record.updated_at)
    return summary


__all__ = ["OrchestratorServicer", "RequestError"]
