"""Admission control over real gRPC, on SQLite and PostgreSQL: the queue, its bound and its order.

The reference fleet's FaultInjection slows the one agent every plan calls, so executions queue.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path

import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from google.rpc import error_details_pb2, status_pb2

from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.engine.admission import AdmissionLimits, QueueFullError
from server.store import ExecutionRecord, ExecutionStore, PostgresExecutionStore, SqliteExecutionStore
from tests.integration.pg_support import fresh_database
from tests.integration.store_support import T0, new_execution, started, step_events
from tests.integration.support import TERMINAL, execute_plan, step

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub
LATENCY_MS = 800
PRIORITIES = (plan_pb2.PRIORITY_LOW, plan_pb2.PRIORITY_MEDIUM, plan_pb2.PRIORITY_HIGH, plan_pb2.PRIORITY_CRITICAL)


@pytest.fixture(params=["sqlite", "postgres"])
async def admitting(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningServer]:
    """An orchestrator with --max-running 4 --max-queued 20 and the embedded fleet (faults on)."""

    async def serve(store_url: str) -> RunningServer:
        return await start_server(
            ServerConfig(
                listen="127.0.0.1:0",
                store_url=store_url,
                agents="embedded",
                agent_faults=True,
                admission=AdmissionLimits(max_running=4, max_queued=20, retry_after_seconds=2.0),
            )
        )

    if request.param == "sqlite":
        running = await serve(f"sqlite:///{tmp_path}/baton.db")
        try:
            yield running
        finally:
            await running.stop(grace=0.5)
        return
    async with fresh_database() as url:
        running = await serve(url)
        try:
            yield running
        finally:
            await running.stop(grace=0.5)


async def _slow_agents(server: RunningServer, latency_ms: int) -> None:
    assert server.fleet is not None
    request = faults_pb2.FaultConfig(agent="analytics")
    request.latency.FromNanoseconds(latency_ms * 1_000_000)
    async with grpc.aio.insecure_channel(server.fleet.address) as channel:  # type: ignore[attr-defined]
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(request)


def _request(index: int, priority: int) -> orchestrator_pb2.ExecuteWorkflowRequest:
    plan = plan_pb2.OrchestrationPlan(workflow_type="one_call", workflow_steps=[step("A", timeout=30)])
    request = execute_plan(plan, user_id=f"user-{index}")
    request.execution_options.priority = priority  # type: ignore[assignment]
    return request


def _retry_delay(error: grpc.aio.AioRpcError) -> float:
    """The RetryInfo delay in the error's status details (grpc-status-details-bin)."""
    details = dict(error.trailing_metadata() or ())
    status = status_pb2.Status.FromString(details["grpc-status-details-bin"])
    assert status.code == grpc.StatusCode.RESOURCE_EXHAUSTED.value[0]
    info = error_details_pb2.RetryInfo()
    assert status.details[0].Unpack(info)
    return info.retry_delay.ToTimedelta().total_seconds()


async def _submit(stub: Stub, index: int, priority: int) -> orchestrator_pb2.Execution | grpc.aio.AioRpcError:
    try:
        return await stub.ExecuteWorkflow(_request(index, priority), timeout=20)
    except grpc.aio.AioRpcError as error:
        return error


async def _wait_terminal(stub: Stub, execution_id: str) -> execution_pb2.ExecutionStatus:
    request = orchestrator_pb2.GetExecutionRequest(execution_id=execution_id)
    for _ in range(600):
        status = await stub.GetExecution(request, timeout=5)
        if status.status in TERMINAL:
            return status
        await asyncio.sleep(0.05)
    raise AssertionError(f"execution {execution_id} did not end")


async def _queue_depth(stub: Stub, expected: int) -> int:
    """GetSystemHealth's queue depth once it is `expected`, or the last one seen after 5 s: under
    load, health answers from counts up to a refresh old (server.health.ANSWER_WITHIN)."""
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        health = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest(), timeout=5)
        if health.queue_depth == expected or asyncio.get_running_loop().time() > deadline:
            return health.queue_depth
        await asyncio.sleep(0.05)


async def _times(stub: Stub, execution_id: str) -> tuple[float, float]:
    """(first step started, execution ended) of a finished execution, in seconds."""
    events = [
        update.event
        async for update in stub.WatchExecution(
            orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id), timeout=10
        )
    ]
    started = next(e.time for e in events if e.WhichOneof("kind") == "step_started")
    return started.ToDatetime().timestamp(), events[-1].time.ToDatetime().timestamp()


async def test_forty_submissions_give_24_accepted_16_refused_with_a_retry_hint_and_run_in_priority_order(
    admitting: RunningServer,
) -> None:
    await _slow_agents(admitting, LATENCY_MS)
    async with grpc.aio.insecure_channel(admitting.address) as channel:
        stub = Stub(channel)
        answers = await asyncio.gather(*(_submit(stub, i, PRIORITIES[i % 4]) for i in range(40)))
        accepted = [a for a in answers if isinstance(a, orchestrator_pb2.Execution)]
        refused = [a for a in answers if isinstance(a, grpc.aio.AioRpcError)]
        assert (len(accepted), len(refused)) == (24, 16)
        for error in refused:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_queued" in (error.details() or "")
            assert _retry_delay(error) == 2.0

        # While the first four run, the other twenty wait, in one order: priority, then age.
        assert await _queue_depth(stub, 20) == 20
        statuses = [
            await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=a.execution_id), timeout=5)
            for a in accepted
        ]
        queued = {s.execution_id: s.queue_position for s in statuses if s.queue_position}
        assert sorted(queued.values()) == list(range(1, 21))
        priority = {a.execution_id: a.plan.execution_strategy.priority for a in accepted}
        by_position = sorted(queued, key=queued.__getitem__)
        assert [priority[e] for e in by_position] == sorted((priority[e] for e in queued), reverse=True)

        finals = await asyncio.gather(*(_wait_terminal(stub, a.execution_id) for a in accepted))
        assert {s.status for s in finals} == {E.EXECUTION_STATE_COMPLETED}
        times = {e: await _times(stub, e) for e in queued}
        # A higher class never starts or ends a wave (LATENCY_MS) after a lower one.
        slack = LATENCY_MS / 1000 / 4
        for high in queued:
            for low in queued:
                if priority[high] > priority[low]:
                    assert times[high][0] <= times[low][0] + slack, (priority[high], priority[low])
                    assert times[high][1] <= times[low][1] + slack, (priority[high], priority[low])
        assert await _queue_depth(stub, 0) == 0


async def test_a_queued_execution_can_be_cancelled_and_refuses_pause(admitting: RunningServer) -> None:
    await _slow_agents(admitting, 2000)
    async with grpc.aio.insecure_channel(admitting.address) as channel:
        stub = Stub(channel)
        first = [await stub.ExecuteWorkflow(_request(i, plan_pb2.PRIORITY_HIGH), timeout=10) for i in range(4)]
        waiting = await stub.ExecuteWorkflow(_request(9, plan_pb2.PRIORITY_LOW), timeout=10)
        status = await stub.GetExecution(
            orchestrator_pb2.GetExecutionRequest(execution_id=waiting.execution_id), timeout=5
        )
        assert (status.status, status.queue_position) == (E.EXECUTION_STATE_QUEUED, 1)
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.PauseExecution(
                orchestrator_pb2.PauseExecutionRequest(execution_id=waiting.execution_id), timeout=5
            )
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "queued (position 1)" in (refused.value.details() or "")

        await stub.CancelExecution(
            orchestrator_pb2.CancelExecutionRequest(execution_id=waiting.execution_id, reason="not now"), timeout=10
        )
        cancelled = await _wait_terminal(stub, waiting.execution_id)
        assert (cancelled.status, cancelled.queue_position) == (E.EXECUTION_STATE_CANCELLED, 0)
        kinds = [
            update.event.WhichOneof("kind")
            async for update in stub.WatchExecution(
                orchestrator_pb2.WatchExecutionRequest(execution_id=waiting.execution_id), timeout=10
            )
        ]
        assert "step_started" not in kinds  # nothing of it ran
        assert await _queue_depth(stub, 0) == 0
        for execution in first:
            assert (await _wait_terminal(stub, execution.execution_id)).status == E.EXECUTION_STATE_COMPLETED


# ---- the store's queue order, deterministic: every time is given ------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ExecutionStore]:
    if request.param == "sqlite":
        sqlite = SqliteExecutionStore(str(tmp_path / "queue.db"))
        await sqlite.open()
        try:
            yield sqlite
        finally:
            await sqlite.close()
        return
    async with fresh_database() as url:
        postgres = PostgresExecutionStore(url)
        await postgres.open()
        try:
            yield postgres
        finally:
            await postgres.close()


async def _create(
    store: ExecutionStore, execution_id: str, priority: int, at: datetime, limits: AdmissionLimits
) -> ExecutionRecord:
    new = replace(new_execution(execution_id, created_at=at), priority=priority, admission=limits)
    record, created = await store.create_execution(new, started(at))
    assert created
    return record


async def test_the_queue_admits_by_class_then_age_and_aging_lifts_a_low_execution_above_later_ones(
    store: ExecutionStore,
) -> None:
    limits = AdmissionLimits(max_running=1, max_queued=3, aging_seconds=10)
    second = timedelta(seconds=1)
    assert not (await _create(store, "run", plan_pb2.PRIORITY_MEDIUM, T0, limits)).waiting
    low = await _create(store, "low", plan_pb2.PRIORITY_LOW, T0, limits)
    await _create(store, "high-1", plan_pb2.PRIORITY_HIGH, T0 + second, limits)
    await _create(store, "critical", plan_pb2.PRIORITY_CRITICAL, T0 + 2 * second, limits)
    assert low.waiting
    with pytest.raises(QueueFullError) as full:
        await _create(store, "one-too-many", plan_pb2.PRIORITY_CRITICAL, T0 + 3 * second, limits)
    assert (full.value.max_queued, full.value.retry_after) == (3, limits.retry_after_seconds)
    assert await store.get_execution("one-too-many") is None  # nothing recorded for a refused one
    assert await store.count_waiting() == 3

    async def positions(at: datetime) -> dict[str, int]:
        names = ("run", "low", "high-1", "critical", "high-2")
        return {n: p for n in names if (p := await store.queue_position(n, limits.aging_seconds, at))}

    assert await store.admit(limits, T0 + 5 * second) == []  # "run" holds the one slot
    assert await positions(T0 + 5 * second) == {"critical": 1, "high-1": 2, "low": 3}
    await store.append("run", step_events(2, 1, T0 + 5 * second), E.EXECUTION_STATE_COMPLETED)
    assert await store.admit(limits, T0 + 5 * second) == ["critical"]

    # At T0+25s a new HIGH arrives; by T0+30s "low" has waited 3 agings: it is CRITICAL, and the
    # oldest of its class, so it goes before both HIGHs (one of them older than anything but it).
    await _create(store, "high-2", plan_pb2.PRIORITY_HIGH, T0 + 25 * second, limits)
    assert await positions(T0 + 29 * second) == {"high-1": 1, "low": 2, "high-2": 3}
    assert await positions(T0 + 30 * second) == {"low": 1, "high-1": 2, "high-2": 3}
    await store.append("critical", step_events(2, 1, T0 + 30 * second), E.EXECUTION_STATE_COMPLETED)
    assert await store.admit(limits, T0 + 30 * second) == ["low"]
    assert not (await store.get_execution("low")).waiting  # type: ignore[union-attr]
    assert [u.execution_id for u in await store.unfinished_executions() if u.waiting] == ["high-1", "high-2"]
    assert await store.count_waiting() == 2
