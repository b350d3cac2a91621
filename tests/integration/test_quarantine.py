"""Nothing stored can stop the server: poisoned histories are quarantined, everything else runs.

Events are written straight into the SQLite file (as a bug, a disk fault or a hand edit
would), then the real server starts on that store with the reference fleet embedded.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from google.protobuf import struct_pb2

from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.store import NewExecution, SqliteExecutionStore
from tests.integration.store_support import inject_sqlite_event, nested_struct
from tests.integration.support import execute_plan, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


def started_event(execution_id: str, now: datetime) -> execution_pb2.ExecutionEvent:
    """The execution_started event of a w_plan run, as the engine writes it."""
    plan = w_plan()
    plan.plan_id, plan.user_id = f"plan-{execution_id}", "u1"
    plan.created_at.FromDatetime(now)
    event = E.ExecutionEvent(sequence=1)
    event.time.FromDatetime(now)
    event.execution_started.plan.CopyFrom(plan)
    event.execution_started.user_context.user_id = "u1"
    event.execution_started.deadline.FromDatetime(now + timedelta(minutes=10))
    return event


def unknown_step_event() -> bytes:
    """A well-formed event the fold refuses: it names a step the plan does not have."""
    event = E.ExecutionEvent(sequence=2)
    event.step_started.step_id = "no-such-step"
    event.step_started.attempt = 1
    return event.SerializeToString()


def too_deep_event() -> bytes:
    """An event nested past the decoder's 100 levels (the issue's ~33 levels of user data)."""
    event = E.ExecutionEvent(sequence=2)
    event.execution_started.user_context.data.CopyFrom(nested_struct(40))
    return event.SerializeToString()


POISONS = {
    "poisoned-bytes": b"\x0a\xff\xff\xff\xff\x0f",
    "poisoned-fold": unknown_step_event(),
    "poisoned-deep": too_deep_event(),
}


async def seed(path: Path) -> None:
    """Records one healthy unfinished execution and three poisoned ones, the healthy one last."""
    store = SqliteExecutionStore(str(path))
    await store.open()
    now = datetime.now(UTC)
    try:
        for offset, execution_id in enumerate([*POISONS, "healthy"]):
            new = NewExecution(execution_id, "u1", "w", f"plan-{execution_id}", "", 2, now + timedelta(seconds=offset))
            await store.create_execution(new, started_event(execution_id, now))
    finally:
        await store.close()
    for execution_id, payload in POISONS.items():
        inject_sqlite_event(str(path), execution_id, payload)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "baton.db"


async def serve(db: Path) -> RunningServer:
    return await start_server(ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{db}", agents="embedded"))


@pytest.fixture
async def stub_of() -> AsyncIterator[list[grpc.aio.Channel]]:
    channels: list[grpc.aio.Channel] = []
    yield channels
    for channel in channels:
        await channel.close()


def connect(running: RunningServer, channels: list[grpc.aio.Channel]) -> Stub:
    channel = grpc.aio.insecure_channel(running.address)
    channels.append(channel)
    return Stub(channel)


def assert_quarantined(status: execution_pb2.ExecutionStatus, execution_id: str) -> None:
    assert status.execution_id == execution_id
    assert status.status == E.EXECUTION_STATE_FAILED
    assert status.end_cause == E.END_CAUSE_HISTORY_UNREADABLE
    assert "history is unreadable" in status.failure_reason
    assert [(d.error_type, d.impact) for d in status.error_summary.error_details] == [
        ("HISTORY_UNREADABLE", E.IMPACT_CRITICAL)
    ]
    assert status.error_summary.error_details[0].error_message in status.failure_reason


async def test_poisoned_histories_are_quarantined_and_the_server_starts_and_runs_the_rest(
    db: Path, stub_of: list[grpc.aio.Channel], caplog: pytest.LogCaptureFixture
) -> None:
    await seed(db)
    caplog.set_level(logging.ERROR)

    running = await serve(db)
    try:
        stub = connect(running, stub_of)
        healthy = await watch_all(stub, "healthy")
        assert healthy[-1].status.status == E.EXECUTION_STATE_COMPLETED
        fresh = await stub.ExecuteWorkflow(execute_plan(w_plan()))
        assert (await watch_all(stub, fresh.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED

        for execution_id in POISONS:
            status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution_id))
            assert_quarantined(status, execution_id)
            cancelled = await stub.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id=execution_id))
            assert cancelled == status
            with pytest.raises(grpc.aio.AioRpcError) as watched:
                await watch_all(stub, execution_id)
            assert watched.value.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert execution_id in (watched.value.details() or "")
            assert "quarantined" in (watched.value.details() or "")
            with pytest.raises(grpc.aio.AioRpcError) as output:
                await stub.GetStepOutput(orchestrator_pb2.GetStepOutputRequest(execution_id=execution_id, step_id="A"))
            assert output.value.code() == grpc.StatusCode.FAILED_PRECONDITION

        assert (
            "DecodeError"
            in (
                await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id="poisoned-deep"))
            ).failure_reason
        )
        assert (
            "no-such-step"
            in (
                await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id="poisoned-fold"))
            ).failure_reason
        )
        listed = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest())
        states = {summary.execution_id: summary.status for summary in listed.executions}
        assert {states[execution_id] for execution_id in POISONS} == {E.EXECUTION_STATE_FAILED}
        assert states["healthy"] == E.EXECUTION_STATE_COMPLETED
    finally:
        await running.stop(grace=0.5)
    quarantined = [r for r in caplog.records if "quarantined" in r.getMessage()]
    assert sorted(next(p for p in POISONS if p in r.getMessage()) for r in quarantined) == sorted(POISONS)

    again = await serve(db)
    try:
        stub = connect(again, stub_of)
        for execution_id in POISONS:
            status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution_id))
            assert_quarantined(status, execution_id)
    finally:
        await again.stop(grace=0.5)


async def test_a_history_poisoned_after_it_ended_is_quarantined_by_the_first_read_and_logged_once(
    db: Path, stub_of: list[grpc.aio.Channel], caplog: pytest.LogCaptureFixture
) -> None:
    running = await serve(db)
    try:
        stub = connect(running, stub_of)
        done = await stub.ExecuteWorkflow(execute_plan(w_plan()))
        other = await stub.ExecuteWorkflow(execute_plan(w_plan()))
        for execution in (done, other):
            assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
        poisoned_at = inject_sqlite_event(str(db), done.execution_id, b"\xff\xff\xff")
        inject_sqlite_event(str(db), other.execution_id, unknown_step_event())
        caplog.set_level(logging.ERROR)

        first = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=done.execution_id))
        second = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=done.execution_id))
        with pytest.raises(grpc.aio.AioRpcError) as watched:
            await watch_all(stub, other.execution_id)
        after_watch = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=other.execution_id))
    finally:
        await running.stop(grace=0.5)

    assert_quarantined(first, done.execution_id)
    assert second == first
    assert f"event {poisoned_at} cannot be decoded" in first.failure_reason
    assert watched.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert other.execution_id in (watched.value.details() or "")
    assert_quarantined(after_watch, other.execution_id)
    logged = [r.getMessage() for r in caplog.records if "quarantined" in r.getMessage()]
    assert len([m for m in logged if done.execution_id in m]) == 1
    assert len([m for m in logged if other.execution_id in m]) == 1


async def test_an_unfinished_execution_whose_stored_output_is_missing_is_quarantined_naming_its_digest(
    db: Path, stub_of: list[grpc.aio.Channel]
) -> None:
    # Step A's output is stored apart (a tiny threshold), then its payload row is lost.
    store = SqliteExecutionStore(str(db), payload_threshold=16)
    await store.open()
    now = datetime.now(UTC)
    output = struct_pb2.Struct(fields={"recorded": struct_pb2.Value(string_value="x" * 100)})
    try:
        for offset, execution_id in enumerate(["lost-output", "healthy"]):
            new = NewExecution(execution_id, "u1", "w", f"plan-{execution_id}", "", 2, now + timedelta(seconds=offset))
            await store.create_execution(new, started_event(execution_id, now))
        ran = [E.ExecutionEvent(sequence=2), E.ExecutionEvent(sequence=3)]
        ran[0].step_started.step_id, ran[0].step_started.attempt = "A", 1
        ran[1].step_succeeded.step_id, ran[1].step_succeeded.attempt = "A", 1
        ran[1].step_succeeded.output.Pack(output)
        await store.append("lost-output", ran, E.EXECUTION_STATE_RUNNING)
    finally:
        await store.close()
    conn = sqlite3.connect(db)
    with conn:
        (digest,) = conn.execute("SELECT sha256 FROM payloads").fetchone()
        conn.execute("DELETE FROM payloads")
    conn.close()
    assert digest == hashlib.sha256(output.SerializeToString()).hexdigest()

    running = await serve(db)
    try:
        stub = connect(running, stub_of)
        assert (await watch_all(stub, "healthy"))[-1].status.status == E.EXECUTION_STATE_COMPLETED
        status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id="lost-output"))
        with pytest.raises(grpc.aio.AioRpcError) as output_read:
            await stub.GetStepOutput(orchestrator_pb2.GetStepOutputRequest(execution_id="lost-output", step_id="A"))
    finally:
        await running.stop(grace=0.5)

    assert_quarantined(status, "lost-output")
    assert f"payload {digest} is missing" in status.failure_reason
    assert output_read.value.code() == grpc.StatusCode.FAILED_PRECONDITION
