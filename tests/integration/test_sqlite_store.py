"""What only the SQLite store shows: its writers, group commit, migrations, locks and kill -9.

The contract every store keeps (reads, writes, lists, parking, quarantine) is in
test_store_contract.py, which runs against this store too.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest
from baton.v1 import execution_pb2

from server.store import (
    PostgresExecutionStore,
    SequenceConflictError,
    SqliteExecutionStore,
    UnfinishedExecution,
    open_store,
)
from server.store._migrations import apply_sqlite_migrations, load_migrations
from tests.integration.store_support import create, new_execution, started, step_events

E = execution_pb2
WRITERS = ["loop", "thread"]
REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(params=WRITERS)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[SqliteExecutionStore]:
    opened = SqliteExecutionStore(str(tmp_path / "store.db"), writer=request.param)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def test_a_reused_execution_id_is_an_integrity_error_of_its_own_write_alone(store: SqliteExecutionStore) -> None:
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
    assert versions == [(m.version,) for m in load_migrations("sqlite")]
    assert journal_mode == "wal"


async def test_a_database_of_the_first_schema_is_migrated_with_its_executions_kept(tmp_path: Path) -> None:
    path = str(tmp_path / "store.db")
    conn = sqlite3.connect(path, isolation_level=None)
    apply_sqlite_migrations(conn, load_migrations("sqlite")[:1])
    conn.execute(
        "INSERT INTO executions (execution_no, execution_id, user_id, workflow_type, plan_id, priority, state,"
        " created_at, updated_at, last_sequence) VALUES (1, 'old', 'u', 'w', 'p', 2, ?, 0, 0, 1)",
        (E.EXECUTION_STATE_RUNNING,),
    )
    conn.execute(
        "INSERT INTO events (execution_no, sequence, kind, recorded_at, payload)"
        " VALUES (1, 1, 'execution_started', 0, ?)",
        (started().SerializeToString(),),
    )
    conn.close()

    store = SqliteExecutionStore(path)
    await store.open()
    try:
        record = await store.get_execution("old")
        assert record is not None and record.quarantine_error == ""
        assert await store.unfinished_executions() == [UnfinishedExecution("old", parked=False, wake_at=None)]
        assert await store.read_events("old") == [started()]
        await store.park("old", None)
        assert (await store.unfinished_executions())[0].parked
    finally:
        await store.close()


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

    assert isinstance(open_store("postgresql://baton:secret@db/baton"), PostgresExecutionStore)
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
