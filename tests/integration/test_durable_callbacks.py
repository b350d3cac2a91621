"""Durable callbacks through the real orchestrator (gRPC on loopback, a real HTTP receiver, SQLite).

The outbox keeps a callback owed from the commit that ends the execution until its outcome is
recorded: these tests show the history it leaves, retries across a receiver's outage (timings
scaled down by flags: a 0.1 s first backoff instead of 1 s), a 4xx failing for good, the
deadline, and that events after the terminal one break no watch. The kill -9 case is in
tests/e2e/test_callback_survives_kill.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from server.app import RunningServer, start_server
from server.callbacks import CallbackConfig, delivery_id_of
from server.config import ServerConfig
from server.store import SqliteExecutionStore
from server.store.base import PendingCallback
from tests.conftest import free_port
from tests.integration.callback_support import Receiver
from tests.integration.pg_support import fresh_database
from tests.integration.store_support import create, inject_sqlite_event
from tests.integration.support import execute_plan, w_plan, watch_all
from tests.integration.test_callback_outbox_store import end_with_callback

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub
TERMINAL_KINDS = ("execution_completed", "execution_failed", "execution_cancelled")


@asynccontextmanager
async def served(tmp_path: Path, **settings: Any) -> AsyncIterator[tuple[RunningServer, Stub]]:
    """An orchestrator whose callbacks may reach 127.0.0.1, retried quickly (scaled timings)."""
    defaults: dict[str, Any] = {"allow": ("127.0.0.1",), "backoff": 0.1, "max_backoff": 0.4, "poll_interval": 0.1}
    callbacks = CallbackConfig(**{**defaults, **settings})
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded", callbacks=callbacks
        )
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield running, Stub(channel)
    finally:
        await running.stop(grace=0.5)


async def settled(stub: Stub, execution_id: str, within: float = 20.0) -> execution_pb2.ExecutionStatus:
    """The status once the callback's outcome is recorded."""
    async with asyncio.timeout(within):
        while True:
            status: execution_pb2.ExecutionStatus = await stub.GetExecution(
                O.GetExecutionRequest(execution_id=execution_id)
            )
            if status.callback.state in (E.CALLBACK_STATE_DELIVERED, E.CALLBACK_STATE_FAILED):
                return status
            await asyncio.sleep(0.05)


async def until_attempted(running: RunningServer, attempts: int) -> list[PendingCallback]:
    """The outbox once a row has `attempts` failed attempts recorded."""
    async with asyncio.timeout(10):
        while True:
            rows = await running.store.pending_callbacks()
            if any(row.attempts >= attempts for row in rows):
                return rows
            await asyncio.sleep(0.05)


async def until_owed(running: RunningServer, count: int) -> None:
    """Returns once the outbox holds `count` rows."""
    async with asyncio.timeout(10):
        while True:
            if len(await running.store.pending_callbacks()) == count:
                return
            await asyncio.sleep(0.05)


def kinds(updates: list[orchestrator_pb2.ExecutionUpdate]) -> list[str]:
    return [u.event.WhichOneof("kind") or "" for u in updates]


async def test_the_receiver_gets_the_final_status_once_and_the_history_records_it(tmp_path: Path) -> None:
    async with Receiver(204) as receiver, served(tmp_path) as (running, stub):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=receiver.url))
        execution_id = execution.execution_id
        status = await settled(stub, execution_id)
        history = await watch_all(stub, execution_id)
        assert await running.store.pending_callbacks() == []
        await asyncio.sleep(0.3)  # nothing more arrives
    [got] = receiver.received
    assert got.headers["Baton-Delivery-Id"] == delivery_id_of(execution_id)
    assert status.callback.state == E.CALLBACK_STATE_DELIVERED
    assert (status.callback.delivery_id, status.callback.attempts, status.callback.detail) == (
        delivery_id_of(execution_id),
        1,
        "HTTP 204",
    )
    assert status.status == E.EXECUTION_STATE_COMPLETED
    # The callback's events come after the terminal one, which they leave the last of the run's.
    assert kinds(history)[-3:] == ["execution_completed", "callback_scheduled", "callback_delivered"]
    assert kinds(history).count("callback_delivered") == 1
    assert [u.sequence for u in history] == list(range(1, len(history) + 1))
    assert all(u.status.status == E.EXECUTION_STATE_COMPLETED for u in history[-3:])
    # The end keeps its time: the outcome came later, the duration is the run's.
    assert history[-1].status.performance_metrics.end_time == history[-3].status.performance_metrics.end_time


async def test_a_live_watch_ends_at_the_end_and_a_watch_after_it_ends_at_once(tmp_path: Path) -> None:
    async with Receiver(200) as receiver, served(tmp_path) as (_, stub):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=receiver.url))
        live = await watch_all(stub, execution.execution_id)
        assert live[-1].status.status == E.EXECUTION_STATE_COMPLETED
        assert any(kind in TERMINAL_KINDS for kind in kinds(live))
        status = await settled(stub, execution.execution_id)
        after_end = await watch_all(stub, execution.execution_id, after=status.last_sequence)
        tail = await watch_all(stub, execution.execution_id, after=status.last_sequence - 1)
    assert after_end == []
    assert kinds(tail) == ["callback_delivered"] and tail[0].status.callback.state == E.CALLBACK_STATE_DELIVERED


async def test_a_receiver_down_for_a_while_still_gets_it_with_the_same_delivery_id(tmp_path: Path) -> None:
    port = free_port()
    receiver = Receiver(200, port=port)
    url = f"http://127.0.0.1:{port}/hook"
    async with served(tmp_path) as (running, stub):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=url))
        # Nothing listens: attempts fail and back off (0.1 s doubling to 0.4 s, scaled from 1 s to
        # 60 s); each is counted in the store, whose row stays owed.
        [row] = await until_attempted(running, 3)
        assert "cannot connect" in row.last_error
        down_since = time.monotonic()
        await asyncio.sleep(1.0)
        async with receiver:
            status = await settled(stub, execution.execution_id)
            delivered_after = time.monotonic() - down_since
    [got] = receiver.received
    assert got.headers["Baton-Delivery-Id"] == delivery_id_of(execution.execution_id)
    assert int(got.headers["Baton-Delivery-Attempt"]) == status.callback.attempts >= 4
    assert status.callback.state == E.CALLBACK_STATE_DELIVERED
    assert delivered_after < 5.0


async def test_a_4xx_fails_the_callback_for_good_without_a_retry(tmp_path: Path) -> None:
    async with Receiver(410) as receiver, served(tmp_path) as (running, stub):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=receiver.url))
        status = await settled(stub, execution.execution_id)
        await asyncio.sleep(0.5)  # several poll intervals: nothing is sent again
        assert await running.store.pending_callbacks() == []
        history = await watch_all(stub, execution.execution_id)
    assert len(receiver.received) == 1
    assert status.callback.state == E.CALLBACK_STATE_FAILED and "HTTP 410" in status.callback.detail
    assert kinds(history)[-2:] == ["callback_scheduled", "callback_failed"]


async def test_a_callback_not_delivered_before_its_deadline_fails(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}/hook"
    async with served(tmp_path, deadline=1.0) as (running, stub):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=url))
        status = await settled(stub, execution.execution_id)
        assert await running.store.pending_callbacks() == []
    assert status.callback.state == E.CALLBACK_STATE_FAILED
    assert "deadline" in status.callback.detail and status.callback.attempts >= 1
    ended = status.performance_metrics.end_time.ToDatetime()
    assert abs((status.callback.deadline.ToDatetime() - ended).total_seconds() - 1.0) < 0.5


async def test_an_execution_without_a_callback_url_records_no_callback(tmp_path: Path) -> None:
    async with served(tmp_path) as (running, stub):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
        history = await watch_all(stub, execution.execution_id)
        assert await running.store.pending_callbacks() == []
    assert kinds(history)[-1] == "execution_completed"
    assert not history[-1].status.HasField("callback")


async def test_replicas_sharing_postgresql_send_each_callback_once(tmp_path: Path) -> None:
    callbacks = CallbackConfig(allow=("127.0.0.1",), backoff=0.1, max_backoff=0.4, poll_interval=0.05)
    async with fresh_database() as url, Receiver(200) as receiver:
        replicas = [
            await start_server(
                ServerConfig(listen="127.0.0.1:0", store_url=url, agents="embedded", replica=name, callbacks=callbacks)
            )
            for name in ("a", "b")
        ]
        try:
            async with grpc.aio.insecure_channel(replicas[0].address) as channel:
                stub = Stub(channel)
                executions = [
                    await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id=f"u{i}", callback_url=receiver.url))
                    for i in range(8)
                ]
                statuses = [await settled(stub, execution.execution_id) for execution in executions]
                histories = [await watch_all(stub, execution.execution_id) for execution in executions]
                await asyncio.sleep(0.5)  # both replicas look at the outbox several times more
        finally:
            for running in replicas:
                await running.stop(grace=0.5)
    sent = [r.headers["Baton-Delivery-Id"] for r in receiver.received]
    assert sorted(sent) == sorted(delivery_id_of(e.execution_id) for e in executions)
    assert all(s.callback.state == E.CALLBACK_STATE_DELIVERED for s in statuses)
    assert all(kinds(history).count("callback_delivered") == 1 for history in histories)


async def test_deleting_the_users_data_deletes_their_owed_callback_and_stops_its_attempts(tmp_path: Path) -> None:
    port = free_port()
    async with served(tmp_path) as (running, stub):
        execution = await stub.ExecuteWorkflow(
            execute_plan(w_plan(), user_id="leaving", callback_url=f"http://127.0.0.1:{port}/hook")
        )
        await until_attempted(running, 1)
        assert running.relay is not None and running.relay.held == 1
        await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="leaving"))
        assert await running.store.pending_callbacks() == []
        assert running.relay.held == 0
        async with Receiver(200, port=port) as receiver:
            await asyncio.sleep(1.0)  # more than the longest backoff: an attempt would have come
        assert await running.store.get_execution(execution.execution_id) is None
    assert receiver.received == []


async def test_memory_holds_a_window_of_the_outbox_and_the_rest_waits_in_the_store(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    async with served(tmp_path, max_pending=2) as (running, stub):
        executions = [
            await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id=f"u{i}", callback_url=url)) for i in range(5)
        ]
        for execution in executions:
            await watch_all(stub, execution.execution_id)
        await until_attempted(running, 2)
        assert running.relay is not None and running.callbacks is not None
        assert len(await running.store.pending_callbacks()) == 5
        assert running.relay.held <= 2 and running.callbacks.pending <= 2
        async with Receiver(200, port=port) as receiver:
            statuses = [await settled(stub, execution.execution_id) for execution in executions]
    assert all(status.callback.state == E.CALLBACK_STATE_DELIVERED for status in statuses)
    assert sorted(r.headers["Baton-Delivery-Id"] for r in receiver.received) == sorted(
        delivery_id_of(execution.execution_id) for execution in executions
    )


async def test_a_callback_whose_history_cannot_be_folded_fails_for_good_and_start_up_goes_on(tmp_path: Path) -> None:
    path = str(tmp_path / "baton.db")
    store = SqliteExecutionStore(path)
    await store.open()
    await create(store, "broken")
    await store.close()
    inject_sqlite_event(path, "broken", b"\xff\xff not an event")
    store = SqliteExecutionStore(path)
    await store.open()
    end = end_with_callback(3)
    end[1].callback_scheduled.deadline.FromDatetime(datetime.now(UTC) + timedelta(hours=1))
    await store.append("broken", end, E.EXECUTION_STATE_COMPLETED)
    await store.close()
    async with served(tmp_path) as (running, stub):
        await until_owed(running, 0)
        events = await running.store.read_events("broken", after_sequence=3)
        assert (await stub.GetSystemHealth(O.GetSystemHealthRequest())).overall_health
    assert events[-1].WhichOneof("kind") == "callback_failed"
    assert "history cannot be read" in events[-1].callback_failed.detail


async def test_attempts_and_backoff_carry_across_a_restart(tmp_path: Path) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/hook"
    async with served(tmp_path) as (running, stub):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url=url))
        await until_attempted(running, 3)
    # Stopped: what it held is freed, its attempt count kept in the store.
    [row] = await reopened_outbox(tmp_path)
    assert row.attempts >= 3
    async with Receiver(200, port=port) as receiver, served(tmp_path) as (_, stub):
        status = await settled(stub, execution.execution_id)
    [got] = receiver.received
    assert int(got.headers["Baton-Delivery-Attempt"]) == row.attempts + 1 == status.callback.attempts


async def reopened_outbox(tmp_path: Path) -> list[PendingCallback]:
    store = SqliteExecutionStore(str(tmp_path / "baton.db"))
    await store.open()
    try:
        return await store.pending_callbacks()
    finally:
        await store.close()


async def test_an_idle_server_looks_at_the_outbox_without_writing(tmp_path: Path) -> None:
    async with served(tmp_path) as (running, _):
        assert isinstance(running.store, SqliteExecutionStore)
        await asyncio.sleep(0.3)
        before = running.store.stats.commits
        await asyncio.sleep(1.0)  # ten looks (poll_interval 0.1 s)
        assert running.store.stats.commits == before


async def test_a_callback_deleted_by_another_process_stops_at_its_next_retry(tmp_path: Path) -> None:
    port = free_port()
    async with served(tmp_path) as (running, stub):
        await stub.ExecuteWorkflow(
            execute_plan(w_plan(), user_id="leaving", callback_url=f"http://127.0.0.1:{port}/hook")
        )
        await until_attempted(running, 1)
        other = SqliteExecutionStore(str(tmp_path / "baton.db"))  # another process's view of the file
        await other.open()
        try:
            await other.delete_user_data("leaving")
        finally:
            await other.close()
        assert running.relay is not None
        async with asyncio.timeout(5):
            while True:
                if not running.relay.held:
                    break
                await asyncio.sleep(0.05)
        async with Receiver(200, port=port) as receiver:
            await asyncio.sleep(1.0)  # more than the longest backoff: an attempt would have come
    assert receiver.received == []
