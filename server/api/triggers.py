"""PublishEvent and the trigger rules' RPCs, delegated to by the Orchestrator servicer.

Rules:
1. A publication is validated, then looked up by event_id: an event already claimed is a
   duplicate, whose stored starts are submitted again (each idempotent by its request id, so
   nothing new starts: the answer names the executions the first publication started, and an
   execution a crash left unsubmitted is submitted now).
2. A new event is matched against the rules of its type, and every start it makes is planned,
   before anything is written: a rule the event cannot be applied to, or a plan the planner
   refuses, fails the publication (INVALID_ARGUMENT naming the rule) with nothing recorded, so
   it can be published again once the rule is fixed. Then the event is claimed (stored once,
   server.triggers.store rule 2) and its starts are submitted.
3. A triggered execution is owned by the event's subject, records the event and rule in its
   execution_started (`trigger`), and is submitted with the request id
   TRIGGER_REQUEST_PREFIX + a digest of the event id + "/" + the rule's name; ExecuteWorkflow
   refuses request ids with that prefix, so no client can take one first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import grpc
from baton.v1 import execution_context_pb2, execution_pb2, journey_pb2, plan_pb2, triggers_pb2
from google.protobuf import json_format

from server.api.errors import RequestError, invalid
from server.api.execution_context import check_execution_context
from server.api.limits import check_key, check_struct
from server.engine import Submission
from server.engine.model import seconds
from server.planner import PlanningError
from server.quoting import quote
from server.registry import WorkflowNotFoundError
from server.triggers import (
    MAX_RULES,
    PublishedEvent,
    RuleError,
    TriggerStart,
    TriggerStore,
    build_user_context,
    check_rule,
    event_document,
    matches,
    trigger_store_for,
)
from server.triggers.rules import check_event_type

if TYPE_CHECKING:
    from server.api.servicer import OrchestratorServicer

TRIGGER_REQUEST_PREFIX = "event/"
"""The request ids of triggered executions start with it (rule 3)."""
MAX_EVENT_ID = 128
"""Characters of an event_id."""
MAX_TIMEOUT_SECONDS = 24 * 3600.0
"""A rule's execution_options.timeout, as a request's."""


class TriggerApi:
    """The trigger RPCs of one OrchestratorServicer (its planner, engine, store and limits)."""

    def __init__(self, servicer: OrchestratorServicer) -> None:
        self.servicer = servicer
        self._store: TriggerStore | None = trigger_store_for(servicer.store)

    def store(self) -> TriggerStore:
        """The trigger tables.

        Raises:
            RequestError: FAILED_PRECONDITION: the execution store keeps none.
        """
        if self._store is None:
            raise RequestError(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"triggers need a SQLite or PostgreSQL store; this server's is {type(self.servicer.store).__name__}",
            )
        return self._store

    def published_store(self) -> TriggerStore | None:
        """The trigger tables, for retention's sweep of published events; None when the store keeps none."""
        return self._store

    async def forget_user(self, user_id: str) -> None:
        """Deletes the published events about a user, with the rest of their data (DeleteUserData)."""
        if self._store is not None:
            await self._store.delete_events_of(user_id)

    # ---- rules ----------------------------------------------------------------------------------

    async def register(self, request: triggers_pb2.RegisterTriggerRuleRequest) -> triggers_pb2.TriggerRule:
        """RegisterTriggerRule."""
        rule = triggers_pb2.TriggerRule()
        rule.CopyFrom(request.rule)
        rule.ClearField("version")
        rule.ClearField("registered_at")
        resolve = await self._resolver(rule.workflow_type)
        try:
            check_rule(rule, resolve)
        except RuleError as error:
            raise invalid(error.field, error.message) from None
        rule.workflow_type = resolve(rule.workflow_type)
        check_options("rule.execution_options", rule.execution_options)
        if rule.HasField("execution_context"):
            check_execution_context("rule.execution_context", rule.execution_context)
        rule.registered_at.FromDatetime(self.servicer.clock.now())
        outcome, stored = await self.store().put_rule(rule, replace=request.replace, max_rules=MAX_RULES)
        if outcome == "full" or stored is None:
            raise RequestError(
                grpc.StatusCode.RESOURCE_EXHAUSTED, f"rule: {MAX_RULES} rules are registered, the most allowed"
            )
        if outcome == "exists":
            raise RequestError(
                grpc.StatusCode.ALREADY_EXISTS,
                f"rule.name: a rule named {quote(rule.name)} with another definition exists (version"
                f" {stored.version}); set replace to replace it",
            )
        return stored

    async def _resolver(self, name: str) -> Callable[[str], str]:
        """What a rule's workflow_type denotes: a registered type (or an alias of one of its versions)
        when the server has a workflow registry, else a built-in. The registry is asked once, here,
        so that check_rule stays a pure function; the answer is raised in check_rule's order."""
        registry = self.servicer.registry
        if registry is None or not name:
            return self.servicer.planner.resolve
        try:
            canonical = await registry.resolve(name)
        except (WorkflowNotFoundError, PlanningError) as error:
            problem = str(error).removeprefix("workflow_type: ")

            def refuse(_: str) -> str:
                raise ValueError(problem)

            return refuse
        return lambda _: canonical

    async def list(self, request: triggers_pb2.ListTriggerRulesRequest) -> triggers_pb2.ListTriggerRulesResponse:
        """ListTriggerRules."""
        if request.event_type:
            _check_event_type("event_type", request.event_type)
        return triggers_pb2.ListTriggerRulesResponse(rules=await self.store().list_rules(request.event_type))

    async def delete(self, request: triggers_pb2.DeleteTriggerRuleRequest) -> triggers_pb2.DeleteTriggerRuleResponse:
        """DeleteTriggerRule."""
        if not request.name:
            raise invalid("name", "required")
        check_key("name", request.name, 64)
        deleted = await self.store().delete_rule(request.name)
        if deleted is None:
            raise RequestError(grpc.StatusCode.NOT_FOUND, f"name: no trigger rule is named {quote(request.name)}")
        return triggers_pb2.DeleteTriggerRuleResponse(rule=deleted)

    # ---- events ---------------------------------------------------------------------------------

    async def publish(
        self, request: triggers_pb2.PublishEventRequest, actor: execution_pb2.Actor
    ) -> triggers_pb2.PublishEventResponse:
        """PublishEvent (rules 1 and 2)."""
        servicer = self.servicer
        check_key("event_id", request.event_id, MAX_EVENT_ID)
        _check_event_type("event_type", request.event_type)
        if not request.subject:
            raise invalid("subject", "required (the user the event is about, who owns what it starts)")
        check_key("subject", request.subject)
        check_struct("payload", request.payload, limits=servicer.limits)
        store = self.store()
        event_id = request.event_id or servicer.new_id()
        now = servicer.clock.now()
        stored = await store.get_event(event_id)
        plans: list[plan_pb2.OrchestrationPlan] | None = None
        if stored is None:
            occurred = request.occurred_at.ToDatetime(tzinfo=UTC) if request.HasField("occurred_at") else None
            document = event_document(
                event_id, request.event_type, request.subject, json_format.MessageToDict(request.payload), occurred
            )
            starts: list[TriggerStart] = []
            try:
                for rule in await store.list_rules(request.event_type):
                    if matches(rule, document):
                        starts.append(_start(rule, event_id, build_user_context(rule, document, request.subject)))
            except RuleError as error:
                raise invalid(error.field, error.message) from None
            plans = [await self._plan(start, now) for start in starts]
            event = PublishedEvent(
                event_id=event_id,
                event_type=request.event_type,
                subject=request.subject,
                published_at=now,
                occurred_at=occurred,
                starts=tuple(starts),
            )
            stored, claimed = await store.claim_event(event)
            if not claimed:
                plans = None  # another publication claimed it first: submit what it stored
        reply = triggers_pb2.PublishEventResponse(event_id=event_id, duplicate=plans is None)
        reply.published_at.FromDatetime(stored.published_at)
        for index, start in enumerate(stored.starts):
            plan = plans[index] if plans is not None else await self._plan(start, now)
            record, created = await servicer.engine.submit(self._submission(stored, start, plan, actor))
            reply.executions.add(
                execution_id=record.execution_id, rule=start.rule, workflow_type=record.workflow_type, created=created
            )
        return reply

    async def _plan(self, start: TriggerStart, now: datetime) -> plan_pb2.OrchestrationPlan:
        # As ExecuteWorkflow plans: the latest registered version, the subject's A/B variant.
        try:
            return await self.servicer.plan_type(start.workflow_type, _journey(start), _options(start), "", now)
        except PlanningError as error:
            raise invalid(f"rule {quote(start.rule)}: {error.field}", error.message) from None

    def _submission(
        self, event: PublishedEvent, start: TriggerStart, plan: plan_pb2.OrchestrationPlan, actor: execution_pb2.Actor
    ) -> Submission:
        trigger = triggers_pb2.TriggeringEvent(
            event_id=event.event_id,
            event_type=event.event_type,
            subject=event.subject,
            rule=start.rule,
            rule_version=start.rule_version,
        )
        trigger.published_at.FromDatetime(event.published_at)
        if event.occurred_at is not None:
            trigger.occurred_at.FromDatetime(event.occurred_at)
        context = None
        if start.execution_context is not None:
            context = json_format.ParseDict(start.execution_context, execution_context_pb2.ExecutionContext())
        return Submission(
            execution_id=self.servicer.new_id(),
            plan=plan,
            user_context=_journey(start),
            options=_options(start),
            request_id=start.request_id,
            trace_parent=self.servicer.execution_trace_parent(context),
            actor=actor,
            trigger=trigger,
            execution_context=context,
        )


def check_options(field: str, options: journey_pb2.ExecutionOptions) -> None:
    """Checks execution options as ExecuteWorkflow does (enum values, the timeout's bounds).

    Raises:
        RequestError: INVALID_ARGUMENT naming the field.
    """
    if options.priority not in plan_pb2.Priority.values():
        raise invalid(f"{field}.priority", f"{options.priority} is not a Priority value")
    if options.quality_level not in journey_pb2.QualityLevel.values():
        raise invalid(f"{field}.quality_level", f"{options.quality_level} is not a QualityLevel value")
    if options.HasField("timeout"):
        timeout = seconds(options.timeout)
        if not 0 < timeout <= MAX_TIMEOUT_SECONDS:
            raise invalid(f"{field}.timeout", f"must be above 0 and at most 24h, got {timeout:g}s")


def _check_event_type(field: str, event_type: str) -> None:
    try:
        check_event_type(field, event_type)
    except RuleError as error:
        raise invalid(error.field, error.message) from None


def _start(rule: triggers_pb2.TriggerRule, event_id: str, journey: journey_pb2.UserJourney) -> TriggerStart:
    digest = hashlib.sha256(event_id.encode()).hexdigest()[:32]
    return TriggerStart(
        rule=rule.name,
        rule_version=rule.version,
        workflow_type=rule.workflow_type,
        request_id=f"{TRIGGER_REQUEST_PREFIX}{digest}/{rule.name}",
        user_context=json_format.MessageToDict(journey, preserving_proto_field_name=True),
        execution_options=json_format.MessageToDict(rule.execution_options, preserving_proto_field_name=True),
        execution_context=(
            json_format.MessageToDict(rule.execution_context, preserving_proto_field_name=True)
            if rule.HasField("execution_context")
            else None
        ),
    )


def _journey(start: TriggerStart) -> journey_pb2.UserJourney:
    return json_format.ParseDict(start.user_context, journey_pb2.UserJourney())


def _options(start: TriggerStart) -> journey_pb2.ExecutionOptions:
    return json_format.ParseDict(start.execution_options, journey_pb2.ExecutionOptions())


__all__ = ["TRIGGER_REQUEST_PREFIX", "TriggerApi", "check_options"]
