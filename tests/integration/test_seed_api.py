"""baton.v1.SeedApi over real gRPC on loopback: the seed's shapes from the same engine, heartbeats included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc, seed_api_pb2, seed_api_pb2_grpc
from google.protobuf import struct_pb2

from server.app import RunningServer, start_server
from server.config import ServerConfig

HEARTBEAT = 0.2
"""The test server's heartbeat interval (seconds without an event)."""


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            watch_heartbeat=HEARTBEAT,
        )
    )
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def channel(server: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(server.address) as open_channel:
        yield open_channel


def _context(**fields: object) -> struct_pb2.Struct:
    context = struct_pb2.Struct()
    context.update(fields)
    return context


async def _manual_application(seed: seed_api_pb2_grpc.SeedApiStub) -> str:
    """Starts an application run for a manual user: it waits for approval until signalled."""
    execution = await seed.Execute(
        seed_api_pb2.SeedExecuteRequest(
            workflow_type="application",
            user_context=_context(user_id="u1", journey_context={"user_preferences": {"automation_level": "manual"}}),
        ),
        timeout=10,
    )
    return str(execution.execution_id)


async def test_the_seed_service_runs_an_execution_the_orchestrator_reports_alike(channel: grpc.aio.Channel) -> None:
    seed = seed_api_pb2_grpc.SeedApiStub(channel)
    rich = orchestrator_pb2_grpc.OrchestratorStub(channel)
    execution = await seed.Execute(
        seed_api_pb2.SeedExecuteRequest(
            workflow_type="job_search",
            user_context=_context(user_id="u1", keywords=["python"]),
            execution_options=seed_api_pb2.SeedExecutionOptions(priority="high", timeout="5m"),
            request_id="seed-1",
        ),
        timeout=10,
    )
    assert (execution.status, execution.created, execution.workflow_type) == ("queued", True, "job_discovery")
    again = await seed.Execute(
        seed_api_pb2.SeedExecuteRequest(
            workflow_type="job_search", user_context=_context(user_id="u1"), request_id="seed-1"
        ),
        timeout=10,
    )
    assert (again.execution_id, again.created) == (execution.execution_id, False)  # the same idempotency
    statuses = [
        s
        async for s in seed.WatchStatus(seed_api_pb2.SeedWatchRequest(execution_id=execution.execution_id), timeout=30)
    ]
    assert statuses[-1].status == "completed"
    status = await seed.GetStatus(seed_api_pb2.SeedStatusRequest(execution_id=execution.execution_id), timeout=10)
    full = await rich.GetExecution(
        orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id), timeout=10
    )
    assert status.sequence == full.last_sequence == statuses[-1].sequence
    assert status.quality_score == full.quality_metrics.overall_quality_score


async def test_a_seed_watch_sends_the_latest_status_again_as_a_heartbeat(channel: grpc.aio.Channel) -> None:
    seed = seed_api_pb2_grpc.SeedApiStub(channel)
    execution_id = await _manual_application(seed)
    stream = seed.WatchStatus(seed_api_pb2.SeedWatchRequest(execution_id=execution_id), timeout=30)
    last = None
    async for status in stream:
        if status.heartbeat:
            break
        last = status
    assert last is not None and last.current_step == "Approve the applications"
    expected = seed_api_pb2.SeedStatus()
    expected.CopyFrom(last)
    expected.heartbeat = True
    expected.estimated_completion.CopyFrom(status.estimated_completion)  # "at least now" moves on
    assert status == expected
    stream.cancel()


async def test_a_heartbeat_before_any_update_carries_the_current_status(channel: grpc.aio.Channel) -> None:
    seed = seed_api_pb2_grpc.SeedApiStub(channel)
    execution_id = await _manual_application(seed)
    waiting = None
    async for status in seed.WatchStatus(seed_api_pb2.SeedWatchRequest(execution_id=execution_id), timeout=30):
        if status.current_step == "Approve the applications":
            waiting = status
            break
    assert waiting is not None
    # Resumed after the latest event: nothing is replayed, so the first thing is a heartbeat.
    resumed = seed.WatchStatus(
        seed_api_pb2.SeedWatchRequest(execution_id=execution_id, after_sequence=waiting.sequence), timeout=30
    )
    first = await resumed.read()
    assert first.heartbeat and (first.status, first.sequence, first.current_step) == (
        "running",
        waiting.sequence,
        "Approve the applications",
    )
    resumed.cancel()


@pytest.mark.parametrize(
    ("request_", "field", "code"),
    [
        (seed_api_pb2.SeedExecuteRequest(user_context=_context(user_id="u")), "workflow_type", "INVALID_ARGUMENT"),
        (
            seed_api_pb2.SeedExecuteRequest(
                workflow_type="job_search", user_context=_context(journey_type="job_search")
            ),
            "user_context.user_id",
            "INVALID_ARGUMENT",
        ),
        (
            seed_api_pb2.SeedExecuteRequest(
                workflow_type="job_search",
                user_context=_context(user_id="u"),
                execution_options=seed_api_pb2.SeedExecutionOptions(timeout="0s"),
            ),
            "execution_options.timeout",
            "INVALID_ARGUMENT",
        ),
    ],
)
async def test_bad_seed_requests_are_refused_naming_the_field(
    channel: grpc.aio.Channel, request_: seed_api_pb2.SeedExecuteRequest, field: str, code: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await seed_api_pb2_grpc.SeedApiStub(channel).Execute(request_, timeout=10)
    assert caught.value.code().name == code
    assert (caught.value.details() or "").startswith(f"{field}:")


async def test_status_and_watch_of_an_unknown_execution_are_not_found(channel: grpc.aio.Channel) -> None:
    seed = seed_api_pb2_grpc.SeedApiStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await seed.GetStatus(seed_api_pb2.SeedStatusRequest(execution_id="nope"), timeout=10)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await seed.WatchStatus(seed_api_pb2.SeedWatchRequest(execution_id="nope"), timeout=10).read()
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


async def test_the_seed_health_speaks_words(channel: grpc.aio.Channel) -> None:
    health = await seed_api_pb2_grpc.SeedApiStub(channel).GetHealth(seed_api_pb2.SeedHealthRequest(), timeout=10)
    assert health.overall_health == "healthy"
    assert {s.status for s in health.agent_statuses.values()} == {"healthy"}
    assert len(health.agent_statuses) == 7
