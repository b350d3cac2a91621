"""The seed's execution_context over real gRPC: validated, recorded, and acted on.

debug_mode records each attempt's request in its step_started event; tracing disabled records
no span of the execution's agent calls (an in-memory exporter shared by the orchestrator and
a fleet the test owns, as in test_tracing.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import execution_context_pb2, execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from google.protobuf import json_format
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents import FleetConfig, start_fleet
from server.app import start_server
from server.config import ServerConfig
from tests.integration.support import execute_plan, step, w_plan, watch_all

E = execution_pb2
X = execution_context_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


def with_context(context: dict[str, Any], plan: plan_pb2.OrchestrationPlan | None = None) -> Any:
    request = execute_plan(plan or w_plan())
    json_format.ParseDict(context, request.execution_context)
    return request


@pytest.mark.parametrize(
    ("context", "named"),
    [
        ({"environment": 9}, "execution_context.environment:"),
        ({"feature_flags": {"Debug": True}}, "execution_context.feature_flags['Debug']:"),
        ({"feature_flags": {"": True}}, "execution_context.feature_flags['']:"),
        ({"feature_flags": {f"flag_{n}": True for n in range(33)}}, "execution_context.feature_flags: at most 32"),
        (
            {"resource_allocation": {"reserved_capacity": 101}},
            "execution_context.resource_allocation.reserved_capacity:",
        ),
        (
            {"resource_allocation": {"reserved_capacity": -1}},
            "execution_context.resource_allocation.reserved_capacity:",
        ),
        ({"resource_allocation": {"auto_scaling": 5}}, "execution_context.resource_allocation.auto_scaling:"),
        ({"monitoring": {"tracing": 3}}, "execution_context.monitoring.tracing:"),
        ({"monitoring": {"profiling": -2}}, "execution_context.monitoring.profiling:"),
    ],
)
async def test_an_invalid_execution_context_is_refused_naming_the_field(
    stub: Stub, context: dict[str, Any], named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ExecuteWorkflow(with_context(context))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(named), refused.value.details()
    listed = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest())
    assert not listed.executions


SEED_CONTEXT = {
    "environment": "ENVIRONMENT_STAGING",
    "feature_flags": {"advanced_ai": True, "experimental_features": False, "debug_mode": False},
    "resource_allocation": {
        "reserved_capacity": 40,
        "auto_scaling": "TOGGLE_ENABLED",
        "priority_queues": "TOGGLE_DISABLED",
    },
    "monitoring": {
        "metrics_collection": "TOGGLE_ENABLED",
        "alerting": "TOGGLE_DISABLED",
        "tracing": "TOGGLE_ENABLED",
        "profiling": "TOGGLE_DISABLED",
    },
}


async def test_the_execution_context_is_recorded_and_shown_with_the_execution(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(with_context(SEED_CONTEXT))
    updates = await watch_all(stub, execution.execution_id)
    expected = json_format.ParseDict(SEED_CONTEXT, X.ExecutionContext())
    assert updates[0].event.execution_started.execution_context == expected
    assert updates[-1].status.execution_context == expected
    status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id))
    assert status.execution_context == expected and status.status == E.EXECUTION_STATE_COMPLETED
    plain = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    shown = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=plain.execution_id))
    assert not shown.HasField("execution_context") and not shown.HasField("trigger")


def _started_requests(updates: list[orchestrator_pb2.ExecutionUpdate]) -> dict[str, Any]:
    return {
        u.event.step_started.step_id: json_format.MessageToDict(u.event.step_started.request)
        for u in updates
        if u.event.WhichOneof("kind") == "step_started"
    }


async def test_debug_mode_keeps_each_attempts_full_request_in_its_started_event(stub: Stub) -> None:
    resume = "Jordan Rivera, backend engineer. " * 400  # ~13 kB: kept whole
    plan = plan_pb2.OrchestrationPlan(
        workflow_steps=[
            step(
                "analyze",
                agent="document_intelligence",
                operation="AnalyzeDocument",
                config={"user_id": "${user.user_id}", "content": resume},
            ),
            step("record", "analyze", config={"user_id": "${user.user_id}"}),
        ]
    )
    debug = await stub.ExecuteWorkflow(with_context({"feature_flags": {"debug_mode": True}}, plan))
    plain = await stub.ExecuteWorkflow(with_context({"feature_flags": {"debug_mode": False}}, plan))
    debug_updates = await watch_all(stub, debug.execution_id)
    plain_updates = await watch_all(stub, plain.execution_id)
    assert debug_updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
    assert _started_requests(debug_updates) == {
        "analyze": {"user_id": "u1", "content": resume},  # the expression resolved, the text whole
        "record": {"user_id": "u1"},
    }
    assert _started_requests(plain_updates) == {"analyze": {}, "record": {}}


async def test_a_map_steps_items_record_their_requests_in_debug_mode(stub: Stub) -> None:
    fan = step("fan", config={"user_id": "${user.user_id}", "events": [{"name": "${item}"}]})
    fan.for_each = '${`["a", "b"]`}'
    plan = plan_pb2.OrchestrationPlan(workflow_steps=[fan])
    execution = await stub.ExecuteWorkflow(with_context({"feature_flags": {"debug_mode": True}}, plan))
    updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED, updates[-1].status.failure_reason
    items = sorted(
        (u.event.step_item_started.item, json_format.MessageToDict(u.event.step_item_started.request))
        for u in updates
        if u.event.WhichOneof("kind") == "step_item_started"
    )
    assert items == [
        (0, {"user_id": "u1", "events": [{"name": "a"}]}),
        (1, {"user_id": "u1", "events": [{"name": "b"}]}),
    ]


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[tuple[Stub, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fleet = await start_fleet(FleetConfig(listen="127.0.0.1:0"), tracer_provider=provider)
    server = None
    try:
        server = await start_server(
            ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents=fleet.address),
            tracer_provider=provider,
        )
        async with grpc.aio.insecure_channel(server.address) as channel:
            yield Stub(channel), exporter
    finally:
        if server is not None:
            await server.stop(grace=0.5)
        await fleet.stop(0.5)
        provider.shutdown()


def _of(spans: list[ReadableSpan], execution_id: str) -> list[ReadableSpan]:
    return [s for s in spans if (s.attributes or {}).get("baton.execution_id") == execution_id]


async def test_tracing_disabled_records_no_span_of_the_executions_calls_here_or_in_the_agents(
    traced: tuple[Stub, InMemorySpanExporter],
) -> None:
    stub, exporter = traced
    off = await stub.ExecuteWorkflow(with_context({"monitoring": {"tracing": "TOGGLE_DISABLED"}}))
    on = await stub.ExecuteWorkflow(with_context({"monitoring": {"tracing": "TOGGLE_ENABLED"}}))
    for execution in (off, on):
        final = (await watch_all(stub, execution.execution_id))[-1].status
        assert final.status == E.EXECUTION_STATE_COMPLETED
    for _ in range(200):
        if len(_of(list(exporter.get_finished_spans()), on.execution_id)) == 5:
            break
        await asyncio.sleep(0.05)
    spans = list(exporter.get_finished_spans())
    traced_attempts = _of(spans, on.execution_id)
    assert len(traced_attempts) == 5
    traced_trace = traced_attempts[0].context.trace_id
    # The traced execution: its RPC, 5 attempts, 5 agent spans in one trace.
    assert len([s for s in spans if s.context.trace_id == traced_trace]) == 11
    assert _of(spans, off.execution_id) == []
    # The untraced one: only the submitting RPC's own span is in its trace (no agent span either).
    submits = [s for s in spans if s.name == "/baton.v1.Orchestrator/ExecuteWorkflow"]
    assert len(submits) == 2
    (off_submit,) = [s for s in submits if s.context.trace_id != traced_trace]
    assert [s.name for s in spans if s.context.trace_id == off_submit.context.trace_id] == [off_submit.name]
    status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=off.execution_id))
    assert status.trace_id == "" and status.execution_context.monitoring.tracing == X.TOGGLE_DISABLED
    on_status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=on.execution_id))
    assert on_status.trace_id == f"{traced_trace:032x}"


async def test_a_trigger_rules_execution_context_applies_to_what_it_starts(stub: Stub) -> None:
    from baton.v1 import triggers_pb2

    rule = triggers_pb2.TriggerRule(name="debugged", event_type="ping", workflow_type="job_discovery")
    rule.execution_context.feature_flags["debug_mode"] = True
    await stub.RegisterTriggerRule(triggers_pb2.RegisterTriggerRuleRequest(rule=rule))
    reply = await stub.PublishEvent(triggers_pb2.PublishEventRequest(event_id="p1", event_type="ping", subject="u9"))
    updates = await watch_all(stub, reply.executions[0].execution_id, deadline=60)
    assert updates[-1].status.execution_context.feature_flags["debug_mode"]
    requests = _started_requests(updates)
    assert requests["search_jobs"]["user_id"] == "u9"
