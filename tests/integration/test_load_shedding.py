"""Bursts over real gRPC against `baton serve` in its own process: every call gets a clear answer.

gRPC core cancels calls the application has not picked up yet past 1,000 waiting (at random) and
3,000 (all): a burst of a few thousand ExecuteWorkflow calls used to get ~20% bare CANCELLED. Now
each is served, or refused RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo`` (server.api.shedding).
"""

from __future__ import annotations

import asyncio
import collections
import subprocess
from pathlib import Path

import grpc
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from google.rpc import error_details_pb2, status_pb2

from tests.conftest import serve_orchestrator

BURST = 2_500
CHANNELS = 4


def request(index: int) -> orchestrator_pb2.ExecuteWorkflowRequest:
    """One RecordEvents step, from user `index` (so the per-user quota refuses none)."""
    plan = plan_pb2.OrchestrationPlan(workflow_type="burst")
    plan.workflow_steps.add(step_id="A", step_name="A", agent="analytics", operation="RecordEvents")
    call = orchestrator_pb2.ExecuteWorkflowRequest(plan=plan)
    call.user_context.user_id = f"burst-{index}"
    return call


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The RetryInfo delay in the error's status details, in seconds; None without one."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not isinstance(raw, bytes):
        return None
    for detail in status_pb2.Status.FromString(raw).details:
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


async def burst(address: str, calls: int) -> tuple[collections.Counter[str], list[str]]:
    """Fires `calls` ExecuteWorkflow at once; answers by code (``+retry`` with a RetryInfo), messages."""
    channels = [grpc.aio.insecure_channel(address) for _ in range(CHANNELS)]
    stubs = [orchestrator_pb2_grpc.OrchestratorStub(channel) for channel in channels]
    answers: collections.Counter[str] = collections.Counter()
    messages: list[str] = []

    async def one(index: int) -> None:
        try:
            await stubs[index % CHANNELS].ExecuteWorkflow(request(index), timeout=60)
            answers["OK"] += 1
        except grpc.aio.AioRpcError as error:
            delay = retry_delay(error)
            answers[error.code().name + ("+retry" if delay is not None else "")] += 1
            messages.append(f"{error.code().name} {delay}: {error.details()}")

    try:
        for channel in channels:
            await channel.channel_ready()
        await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        for channel in channels:
            await channel.close()
    return answers, messages


async def test_a_burst_past_grpc_cores_backlog_is_served_not_cancelled(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    _, address = serve_orchestrator(processes, tmp_path / "baton.db", "embedded", "--log-level", "warning")
    answers, messages = await burst(address, BURST)
    assert answers == {"OK": BURST}, (answers, messages[:3])


async def test_calls_past_the_in_flight_bound_get_resource_exhausted_with_a_retry_hint(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    _, address = serve_orchestrator(
        processes,
        tmp_path / "baton.db",
        "embedded",
        "--max-calls-in-flight",
        "1",
        "--calls-retry-after",
        "2.5",
        "--log-level",
        "warning",
    )
    answers, messages = await burst(address, 1_000)
    assert set(answers) == {"OK", "RESOURCE_EXHAUSTED+retry"}, (answers, messages[:3])
    refusal = "RESOURCE_EXHAUSTED 2.5: the server is handling 1 calls at once"
    assert all(message.startswith(refusal) for message in messages), messages[:3]

    # Refused and failed calls give their place back: one at a time, every call is served.
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        for _ in range(5):
            invalid = orchestrator_pb2.ExecuteWorkflowRequest()
            try:
                await stub.ExecuteWorkflow(invalid, timeout=10)
            except grpc.aio.AioRpcError as error:
                assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
        for index in range(5):
            await stub.ExecuteWorkflow(request(10_000 + index), timeout=10)
