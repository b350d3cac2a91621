"""Shutdown and long streams: drain with NOT_SERVING, watches that end UNAVAILABLE, heartbeats,
keepalive pings of eager clients, health that follows the store, Health/List, reflection v1."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

from server.app import RunningServer, start_server
from server.config import ServerConfig
from tests.conftest import output_of, serve_orchestrator

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _waiting_plan() -> plan_pb2.OrchestrationPlan:
    """A plan that waits for an approval: its watch stays open with nothing happening."""
    approve = plan_pb2.WorkflowStep(step_id="ok", kind=plan_pb2.STEP_KIND_APPROVAL)
    approve.approval.data.update({"job_ids": ["j1"]})
    return plan_pb2.OrchestrationPlan(workflow_type="waits", workflow_steps=[approve])


async def _start_waiting(stub: orchestrator_pb2_grpc.OrchestratorStub) -> str:
    request = orchestrator_pb2.ExecuteWorkflowRequest(plan=_waiting_plan())
    request.user_context.user_id = "u-long"
    execution = await stub.ExecuteWorkflow(request, timeout=10)
    return execution.execution_id


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            watch_heartbeat=0.5,
            health_interval=0.2,
        )
    )
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


async def test_an_idle_watch_gets_heartbeats_and_survives_a_client_that_pings_every_second(
    server: RunningServer,
) -> None:
    # grpc-js and Envoy ping long streams; gRPC's defaults would GOAWAY such a client ("too many pings").
    eager = [
        ("grpc.keepalive_time_ms", 1000),
        ("grpc.keepalive_timeout_ms", 5000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
    ]
    async with grpc.aio.insecure_channel(server.address, options=eager) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution_id = await _start_waiting(stub)
        watch = stub.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id), timeout=20)
        events, heartbeats = [], []
        started = time.monotonic()
        while time.monotonic() - started < 4.0:
            update = await watch.read()
            assert update is not grpc.aio.EOF
            (heartbeats if update.heartbeat else events).append(update)
        watch.cancel()
    kinds = [u.event.WhichOneof("kind") for u in events]
    assert kinds == ["execution_started", "step_waiting"]
    assert len(heartbeats) >= 4
    assert {u.sequence for u in heartbeats} == {2}  # the latest sequence sent; no event, no status
    assert not any(u.HasField("event") or u.HasField("status") for u in heartbeats)


async def test_health_follows_the_store_and_the_agents_and_lists_every_name(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        listed = await health.List(health_pb2.HealthListRequest(), timeout=5)
        assert listed.statuses["baton.v1.Orchestrator"].status == SERVING
        await asyncio.sleep(0.5)  # one probe round reports the agents too
        listed = await health.List(health_pb2.HealthListRequest(), timeout=5)
        assert listed.statuses["baton.v1.Automation"].status == SERVING

        async def unreachable() -> dict[int, int]:
            raise OSError("disk I/O error")

        real = server.store.count_by_state
        server.store.count_by_state = unreachable  # type: ignore[method-assign]
        try:
            await _until(health, "baton.v1.Orchestrator", NOT_SERVING)
            assert (await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=5)).status == NOT_SERVING
        finally:
            server.store.count_by_state = real  # type: ignore[method-assign]
        await _until(health, "baton.v1.Orchestrator", SERVING)


async def _until(health: health_pb2_grpc.HealthStub, service: str, status: int) -> None:
    for _ in range(50):
        reply = await health.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        if reply.status == status:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"{service} never became {status}")


async def test_reflection_answers_both_v1_and_v1alpha(server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(server.address) as channel:
        for version in ("v1", "v1alpha"):
            call = channel.stream_stream(
                f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
                request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
                response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
            )
            stream = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5)
            reply = await stream.read()
            names = {s.name for s in reply.list_services_response.service}
            assert {"baton.v1.Orchestrator", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection"} <= names


async def test_sigterm_drains_with_not_serving_while_serving_then_ends_open_watches_unavailable(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    proc, address = serve_orchestrator(processes, tmp_path / "baton.db", "embedded", "--drain", "1.5", "--grace", "1")
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        health = health_pb2_grpc.HealthStub(channel)
        execution_id = await _start_waiting(stub)
        watch = stub.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id), timeout=30)
        assert (await watch.read()).sequence == 1
        proc.send_signal(signal.SIGTERM)
        await _until(health, "baton.v1.Orchestrator", NOT_SERVING)
        # Draining: health says NOT_SERVING, yet requests are still served.
        status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution_id), timeout=5)
        assert status.status == execution_pb2.EXECUTION_STATE_RUNNING
        with pytest.raises(grpc.aio.AioRpcError) as ended:
            while (await watch.read()) is not grpc.aio.EOF:
                pass
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "after_sequence=2" in (ended.value.details() or "")
    assert await asyncio.to_thread(proc.wait, 15) == 0, output_of(proc)
