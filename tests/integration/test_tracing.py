"""OpenTelemetry traces over real gRPC: one execution is one trace, a span per step attempt, agents beneath.

Each test gets its own TracerProvider with an in-memory exporter, passed explicitly to the
orchestrator and to a reference fleet the test owns (nothing global, so tests do not see each
other's spans), and asserts the span tree the README describes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanKind, StatusCode

from agents import Fleet, FleetConfig, start_fleet
from server.app import RunningServer, start_server
from server.config import ServerConfig
from tests.integration.support import execute_plan, step, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub
EXECUTE = "/baton.v1.Orchestrator/ExecuteWorkflow"
SPAN_POLLS = 200
"""Looks at the finished spans, 50 ms apart, before a test gives up on one (~10 s)."""


@dataclass
class Traced:
    """An orchestrator and a fleet sharing one tracer provider that records spans in memory."""

    exporter: InMemorySpanExporter
    provider: TracerProvider
    fleet: Fleet
    store_url: str
    server: RunningServer | None = None

    async def start(self) -> RunningServer:
        self.server = await start_server(
            ServerConfig(listen="127.0.0.1:0", store_url=self.store_url, agents=self.fleet.address),
            tracer_provider=self.provider,
        )
        return self.server

    def spans(self) -> list[ReadableSpan]:
        return list(self.exporter.get_finished_spans())

    async def wait_for(self, what: str, found: Callable[[list[ReadableSpan]], bool]) -> None:
        """Waits until the finished spans satisfy `found` (spans end a moment after their RPC)."""
        for _ in range(SPAN_POLLS):
            if found(self.spans()):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {what} in time; spans: {[s.name for s in self.spans()]}")


@pytest.fixture
async def traced(tmp_path: Path) -> AsyncIterator[Traced]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fleet = await start_fleet(FleetConfig(listen="127.0.0.1:0", faults=True), tracer_provider=provider)
    t = Traced(exporter, provider, fleet, f"sqlite:///{tmp_path}/baton.db")
    try:
        yield t
    finally:
        if t.server is not None:
            await t.server.stop(grace=0.5)
        await fleet.stop(0.5)
        provider.shutdown()


@pytest.fixture
async def stub(traced: Traced) -> AsyncIterator[Stub]:
    server = await traced.start()
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield orchestrator_pb2_grpc.OrchestratorStub(channel)


async def _set_faults(fleet: Fleet, **fields: object) -> None:
    latency_ms = float(fields.pop("latency_ms", 0))  # type: ignore[arg-type]
    config = faults_pb2.FaultConfig(**fields)  # type: ignore[arg-type]
    config.latency.FromNanoseconds(int(latency_ms * 1e6))
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)


def _attempts(spans: list[ReadableSpan], execution_id: str) -> list[ReadableSpan]:
    """The spans the orchestrator made for the execution's agent calls, in start order."""
    mine = [s for s in spans if (s.attributes or {}).get("baton.execution_id") == execution_id]
    return sorted(mine, key=lambda s: s.start_time or 0)


def _children(spans: list[ReadableSpan], parent: ReadableSpan) -> list[ReadableSpan]:
    return [s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id]


def _trace_hex(span: ReadableSpan) -> str:
    return f"{span.context.trace_id:032x}"


async def test_one_execution_is_one_trace_with_a_span_per_step_attempt_and_the_agents_spans_beneath(
    traced: Traced, stub: Stub
) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    final = (await watch_all(stub, execution.execution_id))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    eid = execution.execution_id
    assert traced.server is not None
    for address in (traced.server.address, traced.fleet.address):
        async with grpc.aio.insecure_channel(address) as channel:
            await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest())
    await traced.wait_for("5 attempts with their agent spans", lambda s: len(_attempts(s, eid)) == 5)
    spans = traced.spans()

    # The root: ExecuteWorkflow's server span (the client sent no trace context).
    (root,) = [s for s in spans if s.name == EXECUTE]
    assert root.kind == SpanKind.SERVER and root.parent is None
    trace_id = root.context.trace_id

    attempts = _attempts(spans, eid)
    assert sorted(s.attributes["baton.step_id"] for s in attempts) == ["A", "B", "C", "D", "E"]  # type: ignore[index]
    for attempt in attempts:
        attributes = dict(attempt.attributes or {})
        step_id = attributes["baton.step_id"]
        assert attempt.name == f"step {step_id}"
        assert attempt.kind == SpanKind.CLIENT
        assert attempt.context.trace_id == trace_id
        assert attempt.parent is not None and attempt.parent.span_id == root.context.span_id
        assert attributes == {
            "baton.execution_id": eid,
            "baton.step_id": step_id,
            "baton.attempt": 1,
            "baton.agent": "analytics",
            "baton.operation": "RecordEvents",
            "baton.idempotency_key": f"{eid}/{step_id}",
            "baton.call_kind": "step",
            "baton.outcome": "OK",
            "rpc.system": "grpc",
            "rpc.service": "baton.v1.Analytics",
            "rpc.method": "RecordEvents",
            "rpc.grpc.status_code": 0,
        }
        # The agent's server span is the attempt's child: the context went in the call's metadata.
        (agent,) = _children(spans, attempt)
        assert agent.name == "/baton.v1.Analytics/RecordEvents" and agent.kind == SpanKind.SERVER
        assert agent.context.trace_id == trace_id

    # Every span of the execution is in that one trace; no status poll or health check is traced.
    execution_spans = [s for s in spans if s.context.trace_id == trace_id]
    assert len(execution_spans) == 1 + 5 + 5
    assert not [s for s in spans if "GetStatus" in s.name or "grpc.health" in s.name]

    status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=eid))
    assert status.trace_id == f"{trace_id:032x}"
    assert final.trace_id == status.trace_id, "the watch's statuses carry it too"


async def test_the_clients_span_is_the_root_when_the_client_sends_its_trace_context(traced: Traced, stub: Stub) -> None:
    assert traced.server is not None
    tracer = traced.provider.get_tracer("test client")
    with tracer.start_as_current_span("client journey") as journey:
        async with grpc.aio.insecure_channel(
            traced.server.address, interceptors=aio_client_interceptors(tracer_provider=traced.provider)
        ) as channel:
            client = orchestrator_pb2_grpc.OrchestratorStub(channel)
            execution = await client.ExecuteWorkflow(execute_plan(w_plan()))
    await watch_all(stub, execution.execution_id)
    eid = execution.execution_id
    await traced.wait_for("5 attempts", lambda s: len(_attempts(s, eid)) == 5)
    spans = traced.spans()

    (client_call,) = [s for s in spans if s.name == EXECUTE and s.kind == SpanKind.CLIENT]
    (server_call,) = [s for s in spans if s.name == EXECUTE and s.kind == SpanKind.SERVER]
    assert client_call.parent is not None and client_call.parent.span_id == journey.get_span_context().span_id
    assert server_call.parent is not None and server_call.parent.span_id == client_call.context.span_id
    trace_id = journey.get_span_context().trace_id
    assert {s.context.trace_id for s in _attempts(spans, eid)} == {trace_id}
    assert {s.parent.span_id for s in _attempts(spans, eid) if s.parent} == {server_call.context.span_id}
    status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=eid))
    assert status.trace_id == f"{trace_id:032x}"


async def test_a_retried_step_has_a_span_per_attempt_each_with_its_outcome(traced: Traced, stub: Stub) -> None:
    await _set_faults(traced.fleet, agent="analytics", fail_next=1)
    plan = plan_pb2.OrchestrationPlan(workflow_steps=[step("flaky")])
    plan.execution_strategy.retry_policy.max_retries = 2
    plan.execution_strategy.retry_policy.initial_backoff.FromMilliseconds(10)
    execution = await stub.ExecuteWorkflow(execute_plan(plan))
    final = (await watch_all(stub, execution.execution_id))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    eid = execution.execution_id
    await traced.wait_for("2 attempts", lambda s: len(_attempts(s, eid)) == 2)
    spans = traced.spans()

    first, second = _attempts(spans, eid)
    assert [s.attributes["baton.attempt"] for s in (first, second)] == [1, 2]  # type: ignore[index]
    # The same key for both attempts: the agent applies the effect once.
    assert {s.attributes["baton.idempotency_key"] for s in (first, second)} == {f"{eid}/flaky"}  # type: ignore[index]
    assert first.attributes["baton.outcome"] == "UNAVAILABLE"  # type: ignore[index]
    assert first.attributes["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]  # type: ignore[index]
    assert first.status.status_code == StatusCode.ERROR
    assert second.attributes["baton.outcome"] == "OK"  # type: ignore[index]
    assert second.status.status_code == StatusCode.UNSET
    assert first.context.trace_id == second.context.trace_id
    assert first.parent == second.parent
    # The failed attempt reached the agent too: its server span is the attempt's child, in error.
    (failed_call,) = _children(spans, first)
    assert failed_call.status.status_code == StatusCode.ERROR


async def test_a_compensation_attempt_has_its_own_span_in_the_executions_trace(traced: Traced, stub: Stub) -> None:
    submit = step(
        "submit", agent="automation", operation="SubmitApplication", config={"user_id": "u1", "job_ids": ["job-0001"]}
    )
    submit.compensation.agent = "automation"
    submit.compensation.operation = "WithdrawApplication"
    submit.compensation.configuration.update(
        {"user_id": "u1", "application_ids": "${steps.submit.applications[*].application_id}", "reason": "test"}
    )
    # An empty user_id is the agent's INVALID_ARGUMENT: no retry, the execution fails and unwinds.
    bad = step("bad", "submit", config={"user_id": ""})
    plan = plan_pb2.OrchestrationPlan(workflow_steps=[submit, bad])
    execution = await stub.ExecuteWorkflow(execute_plan(plan))
    final = (await watch_all(stub, execution.execution_id))[-1].status
    assert final.status == E.EXECUTION_STATE_FAILED
    eid = execution.execution_id
    await traced.wait_for("3 calls", lambda s: len(_attempts(s, eid)) == 3)

    kinds = [(s.attributes or {}).get("baton.call_kind") for s in _attempts(traced.spans(), eid)]
    assert kinds == ["step", "step", "compensation"]
    undo = _attempts(traced.spans(), eid)[-1]
    assert undo.name == "compensation submit"
    assert dict(undo.attributes or {})["baton.idempotency_key"] == f"{eid}/submit/compensate"
    assert dict(undo.attributes or {})["baton.operation"] == "WithdrawApplication"
    assert len({s.context.trace_id for s in _attempts(traced.spans(), eid)}) == 1


async def test_after_a_restart_the_resumed_attempt_joins_the_executions_trace(traced: Traced) -> None:
    await _set_faults(traced.fleet, agent="analytics", latency_ms=60_000)
    first = await traced.start()
    async with grpc.aio.insecure_channel(first.address) as channel:
        execution = await orchestrator_pb2_grpc.OrchestratorStub(channel).ExecuteWorkflow(
            execute_plan(plan_pb2.OrchestrationPlan(workflow_steps=[step("slow")]))
        )
    eid = execution.execution_id
    # The agent has the call (its server span started, unseen); stop while the attempt is in flight.
    await asyncio.sleep(0.5)
    await first.stop(grace=0)
    traced.server = None
    await traced.wait_for("the interrupted attempt's span", lambda s: len(_attempts(s, eid)) == 1)
    (interrupted,) = _attempts(traced.spans(), eid)
    assert interrupted.attributes["baton.outcome"] == "CANCELLED"  # type: ignore[index]

    await _set_faults(traced.fleet, agent="analytics", latency_ms=0)
    second = await traced.start()  # a new server on the same SQLite file recovers the execution
    async with grpc.aio.insecure_channel(second.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        final = (await watch_all(stub, eid))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    await traced.wait_for("the resumed attempt's span", lambda s: len(_attempts(s, eid)) == 2)
    spans = traced.spans()
    interrupted, resumed = _attempts(spans, eid)
    assert resumed.attributes["baton.outcome"] == "OK"  # type: ignore[index]
    (root,) = [s for s in spans if s.name == EXECUTE]
    assert resumed.context.trace_id == interrupted.context.trace_id == root.context.trace_id
    assert resumed.parent is not None and resumed.parent.span_id == root.context.span_id
    assert final.trace_id == _trace_hex(root)


async def test_without_tracing_nothing_is_stored_and_no_trace_id_is_shown(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    fleet = await start_fleet(FleetConfig(listen="127.0.0.1:0", faults=True), tracer_provider=provider)
    # The default: no --trace-exporter, so no provider, even with a traced fleet and client.
    server = await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents=fleet.address)
    )
    try:
        tracer = provider.get_tracer("test client")
        with tracer.start_as_current_span("client"):
            async with grpc.aio.insecure_channel(
                server.address, interceptors=aio_client_interceptors(tracer_provider=provider)
            ) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
                execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
                final = (await watch_all(stub, execution.execution_id))[-1].status
        assert final.status == E.EXECUTION_STATE_COMPLETED
        assert final.trace_id == ""
        events = await server.store.read_events(execution.execution_id, limit=1)
        assert events[0].execution_started.trace_parent == ""
        # The agents were called with no trace context: each call is a root of its own.
        agent_spans = [s for s in exporter.get_finished_spans() if s.name.startswith("/baton.v1.Analytics/")]
        assert len(agent_spans) == 5 and all(s.parent is None for s in agent_spans)
    finally:
        await server.stop(grace=0.5)
        await fleet.stop(0.5)
        provider.shutdown()


async def test_an_execution_sampled_out_records_no_span_anywhere_and_shows_no_trace_id(tmp_path: Path) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The agents' own sampler would record every call that comes without a sampled-out parent.
    agents_exporter = InMemorySpanExporter()
    agents_provider = TracerProvider()
    agents_provider.add_span_processor(SimpleSpanProcessor(agents_exporter))
    fleet = await start_fleet(FleetConfig(listen="127.0.0.1:0", faults=True), tracer_provider=agents_provider)
    server = await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents=fleet.address),
        tracer_provider=provider,
    )
    try:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
            final = (await watch_all(stub, execution.execution_id))[-1].status
        assert final.status == E.EXECUTION_STATE_COMPLETED
        # The decision is stored with the execution and followed by every attempt and agent.
        events = await server.store.read_events(execution.execution_id, limit=1)
        trace_parent = events[0].execution_started.trace_parent
        assert trace_parent and int(trace_parent.rsplit("-", 1)[1], 16) & 1 == 0, trace_parent
        assert final.trace_id == ""
        await asyncio.sleep(0.2)
        assert exporter.get_finished_spans() == ()
        assert agents_exporter.get_finished_spans() == ()
    finally:
        await server.stop(grace=0.5)
        await fleet.stop(0.5)
        provider.shutdown()
        agents_provider.shutdown()


@pytest.mark.parametrize(
    "traceparent",
    [
        "garbage",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",  # an all-zero trace id is invalid
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",  # version ff is forbidden
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-" + "x" * 4000,
    ],
)
async def test_a_malformed_traceparent_from_a_client_starts_a_fresh_trace(
    traced: Traced, stub: Stub, traceparent: str
) -> None:
    request = execute_plan(plan_pb2.OrchestrationPlan(workflow_steps=[step("A")]))
    execution = await stub.ExecuteWorkflow(request, metadata=(("traceparent", traceparent),))
    final = (await watch_all(stub, execution.execution_id))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    (root,) = [s for s in traced.spans() if s.name == EXECUTE]
    assert root.parent is None
    assert final.trace_id == _trace_hex(root)
    events = await traced.server.store.read_events(execution.execution_id, limit=1)  # type: ignore[union-attr]
    assert events[0].execution_started.trace_parent.split("-")[:3] == [
        "00",
        final.trace_id,
        f"{root.context.span_id:016x}",
    ]
