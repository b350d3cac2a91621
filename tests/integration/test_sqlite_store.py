"""The SQLite execution store on real files: writes, reads, group commit, migrations, kill -9."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from baton.v1 import execution_pb2

from server.store import (
    ExecutionNotFoundError,
    ExecutionQuery,
    InvalidPageTokenError,
    NewExecution,
    SequenceConflictError,
    SqliteExecutionStore,
    open_store,
)

E = execution_pb2
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
WRITERS = ["loop", "thread"]
REPOSITORY = Path(__file__).resolve().parents[2]


def new_execution(
    execution_id: str,
    *,
    user_id: str = "user-1",
    request_id: str = "",
    workflow_type: str = "job_search",
    created_at: datetime = T0,
) -> NewExecution:
    return NewExecution(
        execution_id=execution_id,
        user_id=user_id,
        workflow_type=workflow_type,
        plan_id=f"plan-{execution_id}",
        request_id=request_id,
        priority=2,
        created_at=created_at,
    )


def started(at: datetime = T0) -> execution_pb2.ExecutionEvent:
    event = E.ExecutionEvent(sequence=1)
    event.time.FromDatetime(at)
    event.execution_started.request_id = "r"
    return event


def step_events(first: int, count: int, at: datetime = T0) -> list[execution_pb2.ExecutionEvent]:
    events = []
    for sequence in range(first, first + count):
        event = E.ExecutionEvent(sequence=sequence)
        event.time.FromDatetime(at + timedelta(seconds=sequence))
        event.step_started.step_id = f"step-{sequence}"
        event.step_started.attempt = 1
        events.append(event)
    return events


async def create(store: SqliteExecutionStore, execution_id: str, **kwargs: object) -> None:
    created_at = kwargs.get("created_at", T0)
    assert isinstance(created_at, datetime)
    await store.create_execution(new_execution(execution_id, **kwargs), started(created_at))  # type: ignore[arg-type]


@pytest.fixture(params=WRITERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteExecutionStore]:
    opened = SqliteExecutionStore(str(tmp_path / "store.db"), writer=request.param)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_create_execution_records_the_execution_and_its_first_event(store: SqliteExecutionStore) -> None:
    record, created = await store.create_execution(new_execution("x1", request_id="req-1"), started())

    assert created
    assert record.state == E.EXECUTION_STATE_QUEUED
    assert record.last_sequence == 1
    assert record.created_at == T0
    assert record.created_at.tzinfo is not None
    assert await store.get_execution("x1") == record
    events = await store.read_events("x1")
    assert [event.WhichOneof("kind") for event in events] == ["execution_started"]
    assert events[0] == started()


async def test_a_repeated_request_id_returns_the_existing_execution(store: SqliteExecutionStore) -> None:
    first, created = await store.create_execution(new_execution("x1", request_id="req-1"), started())
    again, created_again = await store.create_execution(new_execution("x2", request_id="req-1"), started())
    other_user, created_for_other = await store.create_execution(
        new_execution("x3", user_id="user-2", request_id="req-1"), started()
    )

    assert created and not created_again and created_for_other
    assert again == first
    assert other_user.execution_id == "x3"
    assert await store.get_execution("x2") is None


async def test_duplicate_creates_in_one_batch_create_one_execution(store: SqliteExecutionStore) -> None:
    results = await asyncio.gather(
        *(store.create_execution(new_execution(f"x{i}", request_id="same"), started()) for i in range(5))
    )

    assert [created for _, created in results] == [True, False, False, False, False]
    assert {record.execution_id for record, _ in results} == {"x0"}
    assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: 1}


async def test_executions_without_request_id_are_never_deduplicated(store: SqliteExecutionStore) -> None:
    await create(store, "x1")
    await create(store, "x2")

    assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: 2}


async def test_appended_events_read_back_in_order_and_update_the_record(store: SqliteExecutionStore) -> None:
    await create(store, "x1")
    await store.append("x1", step_events(2, 3), E.EXECUTION_STATE_RUNNING)
    await store.append("x1", step_events(5, 1), E.EXECUTION_STATE_COMPLETED)

    events = await store.read_events("x1")
    record = await store.get_execution("x1")

    assert [event.sequence for event in events] == [1, 2, 3, 4, 5]
    assert events[1:] == step_events(2, 4)
    assert record is not None
    assert record.state == E.EXECUTION_STATE_COMPLETED
    assert record.last_sequence == 5
    assert record.updated_at == T0 + timedelta(seconds=5)


async def test_an_append_that_skips_or_repeats_a_sequence_is_a_conflict(store: SqliteExecutionStore) -> None:
    await create(store, "x1")
    await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)

    with pytest.raises(SequenceConflictError):
        await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_FAILED)
    with pytest.raises(SequenceConflictError):
        await store.append("x1", step_events(4, 1), E.EXECUTION_STATE_FAILED)

    record = await store.get_execution("x1")
    assert record is not None
    assert (record.state, record.last_sequence) == (E.EXECUTION_STATE_RUNNING, 2)
    assert len(await store.read_events("x1")) == 2


async def test_an_append_to_an_unknown_execution_is_not_found(store: SqliteExecutionStore) -> None:
    with pytest.raises(ExecutionNotFoundError) as raised:
        await store.append("nope", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    assert raised.value.args == ("nope",)

    assert await store.get_execution("nope") is None
    assert await store.read_events("nope") == []


async def test_an_append_with_gaps_between_its_own_events_is_refused_before_queueing(
    store: SqliteExecutionStore,
) -> None:
    await create(store, "x1")
    events = step_events(2, 1) + step_events(4, 1)

    with pytest.raises(ValueError, match="sequence"):
        await store.append("x1", events, E.EXECUTION_STATE_RUNNING)
    with pytest.raises(ValueError, match="no events"):
        await store.append("x1", [], E.EXECUTION_STATE_RUNNING)


async def test_a_failing_write_fails_alone_in_its_batch(store: SqliteExecutionStore) -> None:
    for name in ("a", "b", "c"):
        await create(store, name)

    results = await asyncio.gather(
        store.append("a", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        store.append("b", step_events(7, 1), E.EXECUTION_STATE_RUNNING),
        store.append("missing", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        store.append("c", step_events(2, 2), E.EXECUTION_STATE_RUNNING),
        return_exceptions=True,
    )

    assert results[0] is None and results[3] is None
    assert isinstance(results[1], SequenceConflictError)
    assert isinstance(results[2], ExecutionNotFoundError)
    assert [e.sequence for e in await store.read_events("a")] == [1, 2]
    assert [e.sequence for e in await store.read_events("b")] == [1]
    assert [e.sequence for e in await store.read_events("c")] == [1, 2, 3]


async def test_a_constraint_violation_fails_only_its_own_write(store: SqliteExecutionStore) -> None:
    await create(store, "taken")

    results = await asyncio.gather(
        store.create_execution(new_execution("fresh-1"), started()),
        store.create_execution(new_execution("taken", request_id="another"), started()),
        store.append("taken", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        store.create_execution(new_execution("fresh-2"), started()),
        return_exceptions=True,
    )

    assert isinstance(results[1], sqlite3.IntegrityError)
    assert results[2] is None
    assert await store.get_execution("fresh-1") is not None
    assert await store.get_execution("fresh-2") is not None
    taken = await store.get_execution("taken")
    assert taken is not None and taken.request_id == "" and taken.last_sequence == 2


async def test_read_events_after_a_sequence_returns_only_the_tail(store: SqliteExecutionStore) -> None:
    await create(store, "x1")
    await store.append("x1", step_events(2, 9), E.EXECUTION_STATE_RUNNING)

    assert [e.sequence for e in await store.read_events("x1", after_sequence=7)] == [8, 9, 10]
    assert [e.sequence for e in await store.read_events("x1", after_sequence=2, limit=2)] == [3, 4]
    assert await store.read_events("x1", after_sequence=10) == []
    assert await store.read_events("x1", limit=0) == []


async def test_list_executions_filters_by_user_state_and_workflow(store: SqliteExecutionStore) -> None:
    await create(store, "a", user_id="u1", workflow_type="job_search", created_at=T0)
    await create(store, "b", user_id="u1", workflow_type="document_analysis", created_at=T0 + timedelta(seconds=1))
    await create(store, "c", user_id="u2", workflow_type="job_search", created_at=T0 + timedelta(seconds=2))
    await store.append("b", step_events(2, 1), E.EXECUTION_STATE_COMPLETED)

    def ids(page_records: Sequence[object]) -> list[str]:
        return [record.execution_id for record in page_records]  # type: ignore[attr-defined]

    assert ids((await store.list_executions(ExecutionQuery())).records) == ["c", "b", "a"]
    assert ids((await store.list_executions(ExecutionQuery(user_id="u1"))).records) == ["b", "a"]
    completed = ExecutionQuery(states=(E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED))
    assert ids((await store.list_executions(completed)).records) == ["b"]
    assert ids((await store.list_executions(ExecutionQuery(workflow_type="job_search"))).records) == ["c", "a"]
    both = ExecutionQuery(user_id="u2", workflow_type="job_search", states=(E.EXECUTION_STATE_QUEUED,))
    assert ids((await store.list_executions(both)).records) == ["c"]


async def test_list_executions_pages_newest_first_and_stably_through_ties(store: SqliteExecutionStore) -> None:
    # Ten executions share one created_at, so only the id orders them; five more are newer.
    for i in range(10):
        await create(store, f"tie-{i}", created_at=T0)
    for i in range(5):
        await create(store, f"new-{i}", created_at=T0 + timedelta(minutes=i + 1))

    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await store.list_executions(ExecutionQuery(page_size=4, page_token=token))
        seen.extend(record.execution_id for record in page.records)
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert pages == 4
    assert seen == [f"new-{i}" for i in reversed(range(5))] + [f"tie-{i}" for i in reversed(range(10))]


async def test_the_last_full_page_has_no_next_token(store: SqliteExecutionStore) -> None:
    for i in range(4):
        await create(store, f"x{i}", created_at=T0 + timedelta(seconds=i))

    page = await store.list_executions(ExecutionQuery(page_size=4))

    assert len(page.records) == 4
    assert page.next_page_token == ""


@pytest.mark.parametrize("token", ["not a token", "bm9wZQ", "MjoxOng", "MTp4Ong", "MTo1Og", "!!!"])
async def test_a_malformed_page_token_is_refused(store: SqliteExecutionStore, token: str) -> None:
    with pytest.raises(InvalidPageTokenError):
        await store.list_executions(ExecutionQuery(page_token=token))


async def test_unfinished_executions_are_the_non_terminal_ones_oldest_first(store: SqliteExecutionStore) -> None:
    final_states = {
        "done": E.EXECUTION_STATE_COMPLETED,
        "failed": E.EXECUTION_STATE_FAILED,
        "cancelled": E.EXECUTION_STATE_CANCELLED,
        "running": E.EXECUTION_STATE_RUNNING,
        "paused": E.EXECUTION_STATE_PAUSED,
    }
    for offset, (name, state) in enumerate(final_states.items()):
        await create(store, name, created_at=T0 + timedelta(seconds=10 - offset))
        await store.append(name, step_events(2, 1), state)
    await create(store, "queued", created_at=T0)

    assert await store.unfinished_executions() == ["queued", "paused", "running"]


async def test_count_by_state_counts_every_state(store: SqliteExecutionStore) -> None:
    for i in range(3):
        await create(store, f"q{i}")
    for i in range(2):
        await create(store, f"r{i}")
        await store.append(f"r{i}", step_events(2, 1), E.EXECUTION_STATE_RUNNING)

    assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: 3, E.EXECUTION_STATE_RUNNING: 2}


async def test_commit_listeners_see_each_commit_in_order_once_it_is_durable(store: SqliteExecutionStore) -> None:
    seen: list[tuple[str, list[int]]] = []
    durable: list[bool] = []
    probe = sqlite3.connect(store.path)

    def listener(execution_id: str, events: Sequence[execution_pb2.ExecutionEvent]) -> None:
        seen.append((execution_id, [event.sequence for event in events]))
        # Another connection can already read the events: the listener runs after COMMIT.
        last = events[-1].sequence
        row = probe.execute("SELECT last_sequence FROM executions WHERE execution_id = ?", (execution_id,)).fetchone()
        durable.append(row is not None and row[0] >= last)

    store.add_commit_listener(listener)
    await create(store, "a")
    await asyncio.gather(
        store.append("a", step_events(2, 2), E.EXECUTION_STATE_RUNNING),
        create(store, "b"),
    )
    await store.append("a", step_events(4, 1), E.EXECUTION_STATE_RUNNING)
    with pytest.raises(SequenceConflictError):
        await store.append("a", step_events(9, 1), E.EXECUTION_STATE_RUNNING)
    probe.close()

    assert seen == [("a", [1]), ("a", [2, 3]), ("b", [1]), ("a", [4])]
    assert all(durable)


async def test_a_failing_listener_does_not_break_writes_or_other_listeners(store: SqliteExecutionStore) -> None:
    seen: list[str] = []

    def broken(execution_id: str, events: Sequence[execution_pb2.ExecutionEvent]) -> None:
        raise RuntimeError("listener bug")

    store.add_commit_listener(broken)
    store.add_commit_listener(lambda execution_id, events: seen.append(execution_id))
    await create(store, "a")

    assert seen == ["a"]


async def test_concurrent_appends_are_grouped_into_fewer_transactions(store: SqliteExecutionStore) -> None:
    count = 200
    await asyncio.gather(*(create(store, f"x{i}") for i in range(count)))
    commits_before = store.stats.commits

    await asyncio.gather(*(store.append(f"x{i}", step_events(2, 1), E.EXECUTION_STATE_RUNNING) for i in range(count)))

    commits = store.stats.commits - commits_before
    assert 1 <= commits < count
    assert store.stats.largest_batch > 1
    assert await store.count_by_state() == {E.EXECUTION_STATE_RUNNING: count}


async def test_a_burst_larger_than_one_batch_commits_in_several_transactions(tmp_path: Path) -> None:
    store = SqliteExecutionStore(str(tmp_path / "store.db"), writer="loop")
    await store.open()
    try:
        count = 2_500
        await asyncio.gather(*(create(store, f"x{i}") for i in range(count)))

        assert store.stats.largest_batch <= 1_000
        assert store.stats.commits >= 3
        assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: count}
    finally:
        await store.close()


async def test_close_commits_writes_still_queued(tmp_path: Path) -> None:
    for writer in WRITERS:
        path = str(tmp_path / f"{writer}.db")
        store = SqliteExecutionStore(path, writer=writer)
        await store.open()
        await create(store, "x1")
        pending = asyncio.ensure_future(store.append("x1", step_events(2, 5), E.EXECUTION_STATE_RUNNING))
        await asyncio.sleep(0)
        await store.close()
        await pending

        reopened = SqliteExecutionStore(path, writer=writer)
        await reopened.open()
        try:
            assert len(await reopened.read_events("x1")) == 6
        finally:
            await reopened.close()
        with pytest.raises(RuntimeError):
            await store.append("x1", step_events(7, 1), E.EXECUTION_STATE_RUNNING)


async def test_reopening_applies_each_migration_once_and_keeps_the_data(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    for round_ in range(3):
        store = SqliteExecutionStore(path)
        await store.open()
        try:
            await create(store, f"x{round_}")
            assert len(await store.unfinished_executions()) == round_ + 1
        finally:
            await store.close()

    with sqlite3.connect(path) as conn:
        versions = conn.execute("SELECT version FROM schema_migrations").fetchall()
        journal_mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
    assert versions == [(1,)]
    assert journal_mode == "wal"


async def test_a_write_lock_held_by_another_process_delays_writes_without_failing_them(tmp_path: Path) -> None:
    store = SqliteExecutionStore(str(tmp_path / "store.db"), writer="loop")
    await store.open()
    try:
        await create(store, "x1")
        other = sqlite3.connect(store.path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN IMMEDIATE")
        release = threading.Timer(0.1, other.execute, args=("COMMIT",))
        release.start()
        started_at = time.monotonic()

        await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)

        assert time.monotonic() - started_at >= 0.05
        assert store.stats.busy_retries > 0
        release.join()
        other.close()
    finally:
        await store.close()


def test_open_store_understands_sqlite_urls_and_refuses_others(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    absolute = open_store(f"sqlite:///{tmp_path}/deep/er/a.db")
    assert isinstance(absolute, SqliteExecutionStore)
    assert absolute.path == f"{tmp_path}/deep/er/a.db"
    assert (tmp_path / "deep" / "er").is_dir()

    monkeypatch.chdir(tmp_path)
    relative = open_store("sqlite:///var/b.db?synchronous=FULL")
    assert isinstance(relative, SqliteExecutionStore)
    assert relative.path == "var/b.db"
    assert relative.writer_mode == "thread"
    assert (tmp_path / "var").is_dir()

    with pytest.raises(NotImplementedError, match="PostgreSQL store is not built yet"):
        open_store("postgresql://baton:secret@db/baton")
    with pytest.raises(ValueError, match="'mysql'"):
        open_store("mysql://db/baton")
    with pytest.raises(ValueError):
        open_store("sqlite:///:memory:")
    with pytest.raises(ValueError):
        open_store("sqlite:///x.db?journal=off")
    with pytest.raises(ValueError):
        open_store("sqlite:///x.db?synchronous=OFF")


# The child appends to four executions concurrently and prints "<execution> <sequence>" for
# every append once it has returned (that is, once it is acknowledged as durable).
_CHILD = """
import asyncio, sys
from datetime import UTC, datetime
from baton.v1 import execution_pb2 as E
from server.store import NewExecution, SqliteExecutionStore

async def main(path, writer):
    store = SqliteExecutionStore(path, writer=writer)
    await store.open()
    now = datetime.now(UTC)

    async def run(name):
        first = E.ExecutionEvent(sequence=1)
        first.time.FromDatetime(now)
        first.execution_started.request_id = name
        await store.create_execution(NewExecution(name, "u", "w", "p", name, 2, now), first)
        print(name, 1, flush=True)
        sequence = 2
        while True:
            event = E.ExecutionEvent(sequence=sequence)
            event.time.FromDatetime(now)
            event.step_started.step_id = "s%d" % sequence
            await store.append(name, [event], E.EXECUTION_STATE_RUNNING)
            print(name, sequence, flush=True)
            sequence += 1

    await asyncio.gather(*(run("x%d" % i) for i in range(4)))

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


@pytest.mark.parametrize("writer", WRITERS)
async def test_every_acknowledged_append_survives_kill_9(tmp_path: Path, writer: str) -> None:
    path = str(tmp_path / "store.db")
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        path,
        writer,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPOSITORY,
    )
    assert child.stdout is not None
    output = b""
    while output.count(b"\n") < 2_000:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        if not line:
            break
        output += line
    os.kill(child.pid, signal.SIGKILL)
    rest, errors = await asyncio.wait_for(child.communicate(), timeout=30)
    output += rest
    assert child.returncode == -signal.SIGKILL
    # Every line printed before the kill is in the pipe; a last line cut by the kill is dropped.
    lines = output.split(b"\n")[:-1]
    assert len(lines) >= 2_000, errors.decode()

    highest: dict[str, int] = {}
    for line in lines:
        name, sequence = line.decode().split()
        highest[name] = max(highest.get(name, 0), int(sequence))

    store = SqliteExecutionStore(path, writer=writer)
    await store.open()
    try:
        for name in ("x0", "x1", "x2", "x3"):
            sequences = [event.sequence for event in await store.read_events(name)]
            record = await store.get_execution(name)
            assert record is not None
            assert sequences == list(range(1, record.last_sequence + 1))
            assert record.last_sequence >= highest.get(name, 1)
    finally:
        await store.close()
