"""The audit trail and data lifecycle over real gRPC: actors on events, ListAuditEvents, DeleteUserData, retention.

Each store-backed test runs on SQLite and on PostgreSQL; deletions are checked in the tables
themselves, not only through the API.
"""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.retention import RetentionSweeper, sweep
from server.store import USER_DATA_DELETED, NewExecution, PostgresExecutionStore, SqliteExecutionStore
from server.store._migrations import apply_sqlite_migrations, load_migrations
from server.store._pg_migrations import apply_postgres_migrations
from tests.integration.auth_support import ALICE, bearer, make_keys, start_secured
from tests.integration.pg_support import fresh_database
from tests.integration.support import TERMINAL, execute_plan, step, w_plan, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]

CLIENT_KINDS = {"execution_started", "execution_paused", "execution_resumed", "signal_received"}


@dataclass
class Server:
    """A running orchestrator, a stub on it, and a count of a table's rows behind its back."""

    running: RunningServer
    stub: Stub
    url: str

    async def rows(self, table: str, column: str, values: list[str]) -> int:
        """How many rows of `table` have `column` in `values` (read from the database itself)."""
        joined = "events JOIN executions USING (execution_no)" if table == "events" else table
        if self.url.startswith("sqlite:///"):
            with sqlite3.connect(self.url.removeprefix("sqlite:///")) as conn:
                marks = ", ".join("?" * len(values))
                query = f"SELECT COUNT(*) FROM {joined} WHERE {column} IN ({marks})"
                return int(conn.execute(query, values).fetchone()[0])
        conn = await asyncpg.connect(self.url)
        try:
            return int(await conn.fetchval(f"SELECT count(*) FROM {joined} WHERE {column} = ANY($1)", values))
        finally:
            await conn.close()

    async def events_of(self, execution_ids: list[str]) -> int:
        """Events of the executions, counted by execution_no from the ids' rows before deletion."""
        return await self.rows("events", "execution_id", execution_ids)


async def _start(url: str, **settings: object) -> RunningServer:
    return await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=url, agents="embedded", agent_faults=True, **settings)
    )  # type: ignore[arg-type]


@pytest.fixture(params=["sqlite", "postgres"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Server]:
    async with _url(request.param, tmp_path) as url:
        running = await _start(url)
        try:
            async with grpc.aio.insecure_channel(running.address) as channel:
                yield Server(running, orchestrator_pb2_grpc.OrchestratorStub(channel), url)
        finally:
            await running.stop(grace=0.5)


class _url:
    def __init__(self, kind: str, tmp_path: Path) -> None:
        self.kind, self.tmp_path = kind, tmp_path
        self._pg = fresh_database() if kind == "postgres" else None

    async def __aenter__(self) -> str:
        if self._pg is None:
            return f"sqlite:///{self.tmp_path}/baton.db"
        return await self._pg.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        if self._pg is not None:
            await self._pg.__aexit__(*exc)  # type: ignore[arg-type]


async def _error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def _slow_agents(running: RunningServer, latency_ms: int) -> None:
    assert running.fleet is not None
    config = faults_pb2.FaultConfig(agent="analytics")
    config.latency.FromMilliseconds(latency_ms)
    async with grpc.aio.insecure_channel(running.fleet.address) as channel:  # type: ignore[attr-defined]
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)


async def _until(stub: Stub, execution_id: str, seen: Callable[[O.ExecutionUpdate], bool]) -> O.ExecutionUpdate:
    async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=execution_id), timeout=30):
        if seen(update):
            return update
    raise AssertionError("the execution ended before the awaited update")


def _approval_plan() -> plan_pb2.OrchestrationPlan:
    """A → approve (job ids) → B."""
    approve = plan_pb2.WorkflowStep(
        step_id="approve", step_name="approve", kind=plan_pb2.STEP_KIND_APPROVAL, dependencies=["A"]
    )
    approve.approval.prompt = "Apply?"
    approve.approval.data.update({"job_ids": ["job-1", "job-2"]})
    return plan_pb2.OrchestrationPlan(
        workflow_type="approval", workflow_steps=[step("A"), approve, step("B", "approve")]
    )


def _compensated_plan() -> plan_pb2.OrchestrationPlan:
    """A, whose compensation is another call, then B: a cancel after A unwinds."""
    first = step("A")
    first.compensation.agent, first.compensation.operation = "analytics", "RecordEvents"
    first.compensation.configuration.update({"user_id": "${user.user_id}"})
    return plan_pb2.OrchestrationPlan(workflow_type="compensated", workflow_steps=[first, step("B", "A")])


async def _history(stub: Stub, execution_id: str) -> list[E.ExecutionEvent]:
    return [update.event for update in await watch_all(stub, execution_id)]


def _stamped(events: list[E.ExecutionEvent]) -> list[tuple[int, str]]:
    return [(e.sequence, e.WhichOneof("kind") or "") for e in events if e.HasField("actor")]


# ---- the actor on exactly the events clients cause -------------------------------------------------


async def test_each_client_request_records_its_actor_on_its_own_event_and_no_other(
    orchestrator: RunningServer, stub: Stub
) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(_approval_plan(), user_id="u-audit"))
    execution_id = execution.execution_id
    await _until(stub, execution_id, lambda u: u.event.HasField("step_waiting"))
    await stub.PauseExecution(O.PauseExecutionRequest(execution_id=execution_id, reason="lunch"))
    await stub.ResumeExecution(O.ResumeExecutionRequest(execution_id=execution_id, reason="back"))
    signal = O.SignalExecutionRequest(execution_id=execution_id, signal=E.SIGNAL_INPUT, reason="a note")
    signal.payload.update({"note": "x"})
    await stub.SignalExecution(signal)
    await stub.SignalExecution(O.SignalExecutionRequest(execution_id=execution_id, signal=E.SIGNAL_APPROVE))
    history = await _history(stub, execution_id)

    assert history[-1].HasField("execution_completed")
    stamped = _stamped(history)
    assert [kind for _, kind in stamped] == [
        "execution_started",
        "execution_paused",
        "execution_resumed",
        "signal_received",
        "signal_received",
    ]
    for event in history:
        if event.HasField("actor"):
            assert event.actor.subject == "" and not event.actor.roles  # authentication is off
            assert event.actor.peer.startswith(("ipv4:127.0.0.1:", "ipv6:")), event.actor.peer
    assert history[0].actor.claimed_user == "u-audit"
    assert all(not e.actor.claimed_user for e in history[1:])  # a control names no user of its own

    trail = await stub.ListAuditEvents(O.ListAuditEventsRequest(execution_id=execution_id))
    assert [(e.sequence, e.action) for e in trail.entries] == list(reversed(stamped))
    assert [e.reason for e in trail.entries] == ["", "a note", "back", "lunch", ""]
    assert {e.user_id for e in trail.entries} == {"u-audit"}
    assert trail.entries[-1].actor.claimed_user == "u-audit"
    assert trail.entries[0].time.ToDatetime() >= trail.entries[-1].time.ToDatetime()


async def test_a_cancel_records_its_actor_on_the_unwinding_and_the_end_carries_none(
    orchestrator: RunningServer, stub: Stub
) -> None:
    await _slow_agents(orchestrator, 1500)
    execution = await stub.ExecuteWorkflow(execute_plan(_compensated_plan(), user_id="u-cancel"))
    await _until(stub, execution.execution_id, lambda u: u.event.HasField("step_started"))
    await _slow_agents(orchestrator, 0)
    await stub.CancelExecution(O.CancelExecutionRequest(execution_id=execution.execution_id, reason="stop it"))
    history = await _history(stub, execution.execution_id)

    kinds = [e.WhichOneof("kind") for e in history]
    assert kinds[-1] == "execution_cancelled"
    assert "compensation_started" in kinds
    assert [kind for _, kind in _stamped(history)] == ["execution_started", "execution_unwinding"]
    trail = await stub.ListAuditEvents(O.ListAuditEventsRequest(execution_id=execution.execution_id))
    assert (trail.entries[0].action, trail.entries[0].reason) == ("execution_unwinding", "stop it")


async def test_a_rejection_records_its_actor_on_the_signal_and_not_on_the_end(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(_approval_plan(), user_id="u-reject"))
    await _until(stub, execution.execution_id, lambda u: u.event.HasField("step_waiting"))
    await stub.SignalExecution(
        O.SignalExecutionRequest(execution_id=execution.execution_id, signal=E.SIGNAL_REJECT, reason="no")
    )
    history = await _history(stub, execution.execution_id)

    assert history[-1].HasField("execution_cancelled")
    assert [kind for _, kind in _stamped(history)] == ["execution_started", "signal_received"]


async def test_a_repeated_request_id_records_no_second_entry(stub: Stub) -> None:
    first = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-again", request_id="same"))
    again = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-again", request_id="same"))

    assert again.execution_id == first.execution_id and not again.created
    trail = await stub.ListAuditEvents(O.ListAuditEventsRequest(user_id="u-again"))
    assert [(e.execution_id, e.action) for e in trail.entries] == [(first.execution_id, "execution_started")]


# ---- ListAuditEvents -----------------------------------------------------------------------------


async def test_list_audit_events_filters_and_pages_newest_first(server: Server) -> None:
    stub = server.stub
    submitted = []
    for n in range(5):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-a" if n < 3 else "u-b"))
        submitted.append(execution.execution_id)

    seen, token, pages = [], "", 0
    while True:
        page = await stub.ListAuditEvents(O.ListAuditEventsRequest(page_size=2, page_token=token))
        seen += [e.execution_id for e in page.entries]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    by_user = await stub.ListAuditEvents(O.ListAuditEventsRequest(user_id="u-b"))
    by_execution = await stub.ListAuditEvents(O.ListAuditEventsRequest(execution_id=submitted[1]))
    by_subject = await stub.ListAuditEvents(O.ListAuditEventsRequest(subject="someone"))
    everything = await stub.ListAuditEvents(O.ListAuditEventsRequest())

    assert seen == list(reversed(submitted)) and pages == 3
    assert [e.execution_id for e in by_user.entries] == list(reversed(submitted[3:]))
    assert [(e.execution_id, e.action) for e in by_execution.entries][-1] == (submitted[1], "execution_started")
    assert list(by_subject.entries) == []  # with authentication off every subject is empty
    assert len(everything.entries) >= 5 and everything.next_page_token == ""


@pytest.mark.parametrize(
    ("request_", "field"),
    [
        (O.ListAuditEventsRequest(page_size=1001), "page_size"),
        (O.ListAuditEventsRequest(page_size=-1), "page_size"),
        (O.ListAuditEventsRequest(page_token="not-a-token"), "page_token"),
        (O.ListAuditEventsRequest(page_token="YTE6OTIyMzM3MjAzNjg1NDc3NTgwOA"), "page_token"),
        (O.ListAuditEventsRequest(user_id="u" * 300_000), "user_id"),
    ],
    ids=["page-size-too-big", "page-size-negative", "garbage-token", "token-past-int64", "huge-filter"],
)
async def test_a_bad_audit_request_is_invalid_and_names_the_field(
    stub: Stub, request_: O.ListAuditEventsRequest, field: str
) -> None:
    error = await _error(stub.ListAuditEvents(request_))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(f"{field}") or f"{field} " in error.details(), error.details()
    assert len(error.details()) < 300


# ---- DeleteUserData ----------------------------------------------------------------------------------


async def test_deleting_a_users_data_removes_everything_and_refuses_while_one_runs(server: Server) -> None:
    stub, running = server.stub, server.running
    done = []
    for _ in range(2):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-del"))
        assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
        done.append(execution.execution_id)
    kept = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-keep"))
    await watch_all(stub, kept.execution_id)
    await _slow_agents(running, 2000)
    busy = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-del"))
    await _until(stub, busy.execution_id, lambda u: u.event.HasField("step_started"))

    refused = await _error(stub.DeleteUserData(O.DeleteUserDataRequest(user_id="u-del")))

    assert refused.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert busy.execution_id in refused.details() and "unfinished" in refused.details()
    assert refused.details().startswith("user_id: ")
    assert await server.rows("executions", "user_id", ["u-del"]) == 3
    await _slow_agents(running, 0)
    await stub.CancelExecution(O.CancelExecutionRequest(execution_id=busy.execution_id))
    await watch_all(stub, busy.execution_id)
    mine = [*done, busy.execution_id]
    events = await server.events_of(mine)
    assert events > 6

    deleted = await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="u-del"))

    assert (deleted.executions_deleted, deleted.events_deleted) == (3, events)
    for execution_id in mine:
        error = await _error(stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
        watch = await _error(watch_all(stub, execution_id))
        assert watch.code() == grpc.StatusCode.NOT_FOUND
    assert list((await stub.ListExecutions(O.ListExecutionsRequest(user_id="u-del"))).executions) == []
    assert await server.rows("executions", "execution_id", mine) == 0
    assert await server.rows("events", "execution_id", mine) == 0
    assert await server.rows("audit_events", "execution_id", mine) == 0
    assert await server.rows("executions", "user_id", ["u-del"]) == 0
    # Another user's data is untouched.
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=kept.execution_id))
    assert status.status == E.EXECUTION_STATE_COMPLETED
    assert await server.rows("audit_events", "execution_id", [kept.execution_id]) == 1
    # The deletion itself stays on record.
    trail = await stub.ListAuditEvents(O.ListAuditEventsRequest(user_id="u-del"))
    (note,) = trail.entries
    assert (note.action, note.execution_id, note.sequence) == (USER_DATA_DELETED, "", 0)
    assert note.reason == f"deleted 3 executions and {events} events"
    assert note.actor.peer.startswith(("ipv4:", "ipv6:"))

    again = await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="u-del"))
    assert (again.executions_deleted, again.events_deleted) == (0, 0)


async def test_deleting_a_user_with_nothing_stored_answers_zeros(stub: Stub) -> None:
    reply = await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="never-seen"))
    assert (reply.executions_deleted, reply.events_deleted) == (0, 0)


@pytest.mark.parametrize(
    ("request_", "field"),
    [(O.DeleteUserDataRequest(), "user_id: required"), (O.DeleteUserDataRequest(user_id="u" * 300_000), "user_id")],
    ids=["missing", "huge"],
)
async def test_a_bad_delete_request_is_invalid_and_names_the_field(
    stub: Stub, request_: O.DeleteUserDataRequest, field: str
) -> None:
    error = await _error(stub.DeleteUserData(request_))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field)


async def test_a_server_restarts_fine_after_deletions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/baton.db"
    running = await _start(url)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            gone = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-gone"))
            await watch_all(stub, gone.execution_id)
            kept = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-kept"))
            await watch_all(stub, kept.execution_id)
            await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="u-gone"))
    finally:
        await running.stop(grace=0.5)

    running = await _start(url)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            error = await _error(stub.GetExecution(O.GetExecutionRequest(execution_id=gone.execution_id)))
            assert error.code() == grpc.StatusCode.NOT_FOUND
            status = await stub.GetExecution(O.GetExecutionRequest(execution_id=kept.execution_id))
            assert status.status == E.EXECUTION_STATE_COMPLETED
            again = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-gone"))
            assert (await watch_all(stub, again.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
            trail = await stub.ListAuditEvents(O.ListAuditEventsRequest(user_id="u-gone"))
            assert [e.action for e in trail.entries] == ["execution_started", USER_DATA_DELETED]
    finally:
        await running.stop(grace=0.5)


# ---- retention ---------------------------------------------------------------------------------------


class _Clock:
    """A clock fixed at a moment, for the sweeper's cutoff (its sleeps are real and short)."""

    def __init__(self, now: datetime) -> None:
        self.moment = now

    def now(self) -> datetime:
        return self.moment

    async def sleep_until(self, when: datetime) -> None:
        await asyncio.sleep(3600)


async def test_a_sweep_deletes_only_finished_executions_older_than_the_cutoff(server: Server) -> None:
    stub, running = server.stub, server.running
    finished = []
    for user in ("u-r1", "u-r2"):
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id=user))
        await watch_all(stub, execution.execution_id)
        finished.append(execution.execution_id)
    await _slow_agents(running, 3000)
    busy = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-r1"))
    await _until(stub, busy.execution_id, lambda u: u.event.HasField("step_started"))

    nothing = await sweep(running.store, datetime.now(UTC) - timedelta(days=30))
    sweeper = RetentionSweeper(
        running.store,
        _Clock(datetime.now(UTC) + timedelta(days=30, seconds=1)),
        timedelta(days=30),
        forget=running.engine.forget,
        batch=1,
    )
    swept = await sweeper.sweep()

    assert nothing.execution_ids == []
    assert sorted(swept.execution_ids) == sorted(finished)
    for execution_id in finished:
        error = await _error(stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
    assert await server.rows("events", "execution_id", finished) == 0
    assert await server.rows("audit_events", "execution_id", finished) == 0
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=busy.execution_id))
    assert status.status not in TERMINAL
    await _slow_agents(running, 0)
    assert (await watch_all(stub, busy.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED


async def test_a_server_with_retention_sweeps_at_start(tmp_path: Path) -> None:
    path = tmp_path / "baton.db"
    store = SqliteExecutionStore(str(path))
    await store.open()
    long_ago = datetime(2020, 1, 1, tzinfo=UTC)
    try:
        for execution_id, kind, state in (
            ("ancient", "execution_cancelled", E.EXECUTION_STATE_CANCELLED),
            ("ancient-paused", "execution_paused", E.EXECUTION_STATE_PAUSED),
        ):
            first = E.ExecutionEvent(sequence=1)
            first.time.FromDatetime(long_ago)
            first.execution_started.plan.CopyFrom(w_plan())
            first.execution_started.plan.user_id = "u-old"
            first.execution_started.plan.plan_id = f"plan-{execution_id}"
            first.execution_started.deadline.FromDatetime(long_ago + timedelta(days=3650 * 2))
            await store.create_execution(NewExecution(execution_id, "u-old", "w", "p", "", 2, long_ago), first)
            second = E.ExecutionEvent(sequence=2)
            second.time.FromDatetime(long_ago)
            getattr(second, kind).reason = "long ago"
            await store.append(execution_id, [second], state)
    finally:
        await store.close()

    running = await _start(f"sqlite:///{path}", retention=30 * 86400.0)
    try:
        for _ in range(100):
            if await running.store.get_execution("ancient") is None:
                break
            await asyncio.sleep(0.05)
        assert await running.store.get_execution("ancient") is None
        paused = await running.store.get_execution("ancient-paused")
        assert paused is not None
        assert (paused.state, paused.quarantine_error) == (E.EXECUTION_STATE_PAUSED, "")
    finally:
        await running.stop(grace=0.5)


# ---- databases made before the audit trail -------------------------------------------------------


def _finished_history(execution_id: str) -> list[E.ExecutionEvent]:
    first = E.ExecutionEvent(sequence=1)
    first.time.FromDatetime(datetime(2026, 1, 1, tzinfo=UTC))
    first.execution_started.plan.CopyFrom(w_plan())
    first.execution_started.plan.plan_id = f"plan-{execution_id}"
    end = E.ExecutionEvent(sequence=2)
    end.time.FromDatetime(datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    end.execution_completed.SetInParent()
    return [first, end]


async def test_a_sqlite_database_of_the_previous_schema_migrates_and_its_executions_can_be_deleted(
    tmp_path: Path,
) -> None:
    path = str(tmp_path / "old.db")
    conn = sqlite3.connect(path, isolation_level=None)
    apply_sqlite_migrations(conn, [m for m in load_migrations("sqlite") if m.version <= 2])
    for no, (execution_id, user) in enumerate((("old-1", "u-old"), ("old-2", "u-other")), start=1):
        conn.execute(
            "INSERT INTO executions (execution_no, execution_id, user_id, workflow_type, plan_id, priority, state,"
            " created_at, updated_at, last_sequence) VALUES (?, ?, ?, 'w', 'p', 2, ?, 0, 0, 2)",
            (no, execution_id, user, E.EXECUTION_STATE_COMPLETED),
        )
        for event in _finished_history(execution_id):
            conn.execute(
                "INSERT INTO events (execution_no, sequence, kind, recorded_at, payload) VALUES (?, ?, ?, 0, ?)",
                (no, event.sequence, event.WhichOneof("kind"), event.SerializeToString()),
            )
    conn.close()

    running = await _start(f"sqlite:///{path}")
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            before = await stub.ListAuditEvents(O.ListAuditEventsRequest())
            deleted = await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="u-old"))
            status = await stub.GetExecution(O.GetExecutionRequest(execution_id="old-2"))
    finally:
        await running.stop(grace=0.5)

    assert list(before.entries) == []  # recorded before the audit trail: no actor, no entry
    assert (deleted.executions_deleted, deleted.events_deleted) == (1, 2)
    assert status.status == E.EXECUTION_STATE_COMPLETED
    with sqlite3.connect(path) as check:
        versions = [row[0] for row in check.execute("SELECT version FROM schema_migrations ORDER BY version")]
    assert versions == [m.version for m in load_migrations("sqlite")]


async def test_a_postgres_database_of_the_previous_schema_migrates_and_its_executions_can_be_deleted() -> None:
    async with fresh_database() as url:
        conn = await asyncpg.connect(url)
        try:
            await apply_postgres_migrations(conn, [m for m in load_migrations("postgres") if m.version <= 3])
            for execution_id, user in (("old-1", "u-old"), ("old-2", "u-other")):
                no = await conn.fetchval(
                    "INSERT INTO executions (execution_id, user_id, workflow_type, plan_id, priority, state,"
                    " created_at, updated_at, last_sequence) VALUES ($1, $2, 'w', 'p', 2, $3, now(), now(), 2)"
                    " RETURNING execution_no",
                    execution_id,
                    user,
                    E.EXECUTION_STATE_COMPLETED,
                )
                for event in _finished_history(execution_id):
                    await conn.execute(
                        "INSERT INTO events (execution_no, sequence, kind, payload) VALUES ($1, $2, $3, $4)",
                        no,
                        event.sequence,
                        event.WhichOneof("kind"),
                        event.SerializeToString(),
                    )
        finally:
            await conn.close()

        running = await _start(url)
        try:
            async with grpc.aio.insecure_channel(running.address) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
                before = await stub.ListAuditEvents(O.ListAuditEventsRequest())
                deleted = await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="u-old"))
                status = await stub.GetExecution(O.GetExecutionRequest(execution_id="old-2"))
        finally:
            await running.stop(grace=0.5)

    assert list(before.entries) == []
    assert (deleted.executions_deleted, deleted.events_deleted) == (1, 2)
    assert status.status == E.EXECUTION_STATE_COMPLETED


# ---- the CLI -------------------------------------------------------------------------------------


async def _baton(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs `python -m server.cli ARGS` without blocking the test's event loop."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *args,
        cwd=ROOT,
        env={**os.environ, "COLUMNS": "250"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return subprocess.CompletedProcess(list(args), proc.returncode or 0, out.decode(), err.decode())


async def test_baton_audit_lists_who_did_what_and_delete_user_deletes(orchestrator: RunningServer, stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-cli-audit"))
    await watch_all(stub, execution.execution_id)
    target = ("--target", orchestrator.address)

    table = await _baton("audit", "--user", "u-cli-audit", *target)
    as_json = await _baton("audit", "--execution", execution.execution_id, "--json", *target)
    limited = await _baton("audit", "--limit", "0", *target)
    deleted = await _baton("delete-user", "u-cli-audit", *target)
    after = await _baton("audit", "--user", "u-cli-audit", "--json", *target)
    none = await _baton("audit", "--subject", "nobody", *target)

    assert table.returncode == 0, table.stderr
    assert "execution_started" in table.stdout and execution.execution_id in table.stdout
    assert "anonymous, claims u-cli-audit" in table.stdout
    (entry,) = json.loads(as_json.stdout)["entries"]
    assert (entry["action"], entry["execution_id"], entry["actor"]["claimed_user"]) == (
        "execution_started",
        execution.execution_id,
        "u-cli-audit",
    )
    assert limited.returncode == 2 and "--limit" in limited.stderr
    assert deleted.returncode == 0, deleted.stderr
    assert deleted.stdout.startswith("deleted user u-cli-audit: 1 executions, ")
    assert [e["action"] for e in json.loads(after.stdout)["entries"]] == [USER_DATA_DELETED]
    assert none.returncode == 0 and "no audit entries" in none.stdout


async def test_baton_delete_user_while_one_runs_exits_one_naming_it(orchestrator: RunningServer, stub: Stub) -> None:
    await _slow_agents(orchestrator, 3000)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-cli-busy"))

    refused = await _baton("delete-user", "u-cli-busy", "--target", orchestrator.address)

    assert refused.returncode == 1
    assert "FAILED_PRECONDITION" in refused.stderr and execution.execution_id in refused.stderr
    await stub.CancelExecution(O.CancelExecutionRequest(execution_id=execution.execution_id))


async def test_replicas_sweeping_one_postgres_database_at_once_delete_each_execution_once() -> None:
    async with fresh_database() as url:
        replicas = [PostgresExecutionStore(url) for _ in range(3)]
        await asyncio.gather(*(replica.open() for replica in replicas))
        try:
            long_ago = datetime(2020, 1, 1, tzinfo=UTC)
            for n in range(60):
                execution_id = f"old-{n}"
                events = _finished_history(execution_id)
                await replicas[0].create_execution(
                    NewExecution(execution_id, f"u{n % 4}", "w", "p", "", 2, long_ago), events[0]
                )
                await replicas[0].append(execution_id, events[1:], E.EXECUTION_STATE_COMPLETED)
            cutoff = datetime(2027, 1, 1, tzinfo=UTC)

            results = await asyncio.gather(*(sweep(replica, cutoff, batch=7, pause=0) for replica in replicas))

            deleted = [execution_id for result in results for execution_id in result.execution_ids]
            assert sorted(deleted) == sorted(f"old-{n}" for n in range(60))  # each once, none twice
            assert sum(result.events for result in results) == 120
            assert await replicas[1].count_by_state() == {}
        finally:
            await asyncio.gather(*(replica.close() for replica in replicas))


# ---- with authentication on ---------------------------------------------------------------------


async def test_with_jwt_the_actor_is_the_authenticated_subject_and_the_trail_lists_by_subject(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    running = await start_secured(tmp_path, keys)
    alice, ada = bearer(keys.token(ALICE)), bearer(keys.token("ada", "admin", "operator"))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            execution = await stub.ExecuteWorkflow(execute_plan(_approval_plan(), user_id=""), metadata=alice)
            execution_id = execution.execution_id
            await _until_with(stub, execution_id, alice)
            await stub.SignalExecution(
                O.SignalExecutionRequest(execution_id=execution_id, signal=E.SIGNAL_REJECT, reason="not these"),
                metadata=ada,
            )
            by_alice = await stub.ListAuditEvents(O.ListAuditEventsRequest(subject=ALICE), metadata=ada)
            by_ada = await stub.ListAuditEvents(O.ListAuditEventsRequest(subject="ada"), metadata=ada)
            denied = await _error(stub.ListAuditEvents(O.ListAuditEventsRequest(), metadata=alice))
            deleting = await _error(stub.DeleteUserData(O.DeleteUserDataRequest(user_id=ALICE), metadata=alice))
            for update in await _watch_with(stub, execution_id, ada):
                assert update.event.WhichOneof("kind") != "execution_failed"
            deleted = await stub.DeleteUserData(O.DeleteUserDataRequest(user_id=ALICE), metadata=ada)
            after = await stub.ListAuditEvents(O.ListAuditEventsRequest(user_id=ALICE), metadata=ada)
    finally:
        await running.stop(grace=0.5)

    (started,) = by_alice.entries
    assert (started.action, started.execution_id, started.user_id) == ("execution_started", execution_id, ALICE)
    assert (started.actor.subject, list(started.actor.roles), started.actor.claimed_user) == (ALICE, ["user"], "")
    (rejected,) = by_ada.entries
    assert (rejected.action, rejected.reason, rejected.user_id) == ("signal_received", "not these", ALICE)
    assert list(rejected.actor.roles) == ["admin", "operator"]
    assert denied.code() == grpc.StatusCode.PERMISSION_DENIED
    assert deleting.code() == grpc.StatusCode.PERMISSION_DENIED
    assert deleted.executions_deleted == 1
    (note,) = after.entries
    assert (note.action, note.actor.subject) == (USER_DATA_DELETED, "ada")


async def _until_with(stub: Stub, execution_id: str, metadata: tuple[tuple[str, str], ...]) -> None:
    request = O.WatchExecutionRequest(execution_id=execution_id)
    async for update in stub.WatchExecution(request, metadata=metadata, timeout=30):
        if update.event.HasField("step_waiting"):
            return
    raise AssertionError("the execution ended before its approval step waited")


async def _watch_with(stub: Stub, execution_id: str, metadata: tuple[tuple[str, str], ...]) -> list[O.ExecutionUpdate]:
    request = O.WatchExecutionRequest(execution_id=execution_id)
    return [update async for update in stub.WatchExecution(request, metadata=metadata, timeout=30)]


async def test_baton_audit_and_delete_user_send_the_token(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    running = await start_secured(tmp_path, keys)
    target = ("--target", running.address)
    try:
        as_user = await _baton("audit", "--token", keys.token(ALICE), *target)
        as_operator = await _baton("audit", "--json", "--token", keys.token("oscar", "operator"), *target)
        deleted = await _baton("delete-user", "nobody", "--token", keys.token("ada", "admin"), *target)
    finally:
        await running.stop(grace=0.5)

    assert as_user.returncode == 1 and "PERMISSION_DENIED" in as_user.stderr
    assert as_operator.returncode == 0, as_operator.stderr
    assert json.loads(as_operator.stdout) == {}  # nothing recorded yet
    assert deleted.returncode == 0 and deleted.stdout.startswith("deleted user nobody: 0 executions, 0 events")
