"""What only the PostgreSQL store can show: migrations, group commit, listeners across processes, durability.

The contract every store keeps is in test_store_contract.py; here are the PostgreSQL store's own
promises. Each test gets a fresh database on the local server (tests/integration/pg_support.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import asyncpg
import pytest
from baton.v1 import execution_pb2

from server.store import CorruptHistoryError, PostgresExecutionStore, open_store
from server.store._migrations import Migration, load_migrations
from server.store._pg_migrations import apply_postgres_migrations
from server.store._pg_writer import connect_writer
from tests.integration.pg_support import ADMIN_URL, fresh_database, inject_postgres_event
from tests.integration.store_support import create, step_events

E = execution_pb2
REPOSITORY = Path(__file__).resolve().parents[2]
# Bounds waiting for something another store sends; reached only when the behaviour is broken.
WAIT_S = 20.0


@pytest.fixture
async def url() -> AsyncIterator[str]:
    async with fresh_database() as database:
        yield database


@pytest.fixture
async def store(url: str) -> AsyncIterator[PostgresExecutionStore]:
    opened = PostgresExecutionStore(url)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


class Seen:
    """A commit listener that records (execution_id, sequences) and lets a test await a sequence."""

    def __init__(self) -> None:
        self.commits: list[tuple[str, list[int]]] = []
        self._changed = asyncio.Event()

    def __call__(self, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent]) -> None:
        self.commits.append((execution_id, [event.sequence for event in events]))
        self._changed.set()

    def sequences(self, execution_id: str) -> list[int]:
        return [n for seen_id, sequences in self.commits if seen_id == execution_id for n in sequences]

    async def until(self, execution_id: str, last: int) -> list[int]:
        """Waits until the listener has seen `last` of the execution; returns what it saw of it."""

        async def reached() -> None:
            while last not in self.sequences(execution_id):
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(reached(), WAIT_S)
        return self.sequences(execution_id)


async def applied_versions(url: str) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return [row[0] for row in await conn.fetch("SELECT version FROM schema_migrations ORDER BY version")]
    finally:
        await conn.close()


# ---- migrations ------------------------------------------------------------------------------


async def test_reopening_applies_each_migration_once_and_keeps_the_data(url: str) -> None:
    first = PostgresExecutionStore(url)
    await first.open()
    await create(first, "kept")
    await first.close()

    again = PostgresExecutionStore(url)
    await again.open()
    try:
        assert await again.get_execution("kept") is not None
    finally:
        await again.close()
    assert await applied_versions(url) == [m.version for m in load_migrations("postgres")]


async def test_stores_opening_one_new_database_at_once_migrate_it_once(url: str) -> None:
    stores = [PostgresExecutionStore(url) for _ in range(4)]
    try:
        await asyncio.gather(*(store.open() for store in stores))
        await create(stores[0], "x1")
        assert await stores[3].get_execution("x1") is not None
    finally:
        await asyncio.gather(*(store.close() for store in stores))
    assert await applied_versions(url) == [m.version for m in load_migrations("postgres")]


async def test_a_failing_migration_leaves_the_database_as_it_was(url: str) -> None:
    good = Migration(1, "0001_good.sql", "CREATE TABLE good (x integer);")
    bad = Migration(2, "0002_bad.sql", "CREATE TABLE bad (x integer); SELECT no_such_function();")
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(asyncpg.UndefinedFunctionError):
            await apply_postgres_migrations(conn, [good, bad])
        tables = {row[0] for row in await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")}
        assert tables.isdisjoint({"good", "bad", "schema_migrations"})

        assert await apply_postgres_migrations(conn, [good]) == [1]
        assert await apply_postgres_migrations(conn, [good]) == []
    finally:
        await conn.close()


# ---- group commit and durability -------------------------------------------------------------


async def test_concurrent_appends_are_grouped_into_fewer_transactions(store: PostgresExecutionStore) -> None:
    for i in range(50):
        await create(store, f"x{i}")
    commits_before = store.stats.commits

    await asyncio.gather(*(store.append(f"x{i}", step_events(2, 1), E.EXECUTION_STATE_RUNNING) for i in range(50)))
    await asyncio.gather(*(store.append(f"x{i}", step_events(3, 2), E.EXECUTION_STATE_RUNNING) for i in range(50)))

    commits = store.stats.commits - commits_before
    assert commits < 10, commits
    assert store.stats.largest_batch > 1
    for i in range(50):
        assert [e.sequence for e in await store.read_events(f"x{i}")] == [1, 2, 3, 4]


async def test_the_writer_turns_synchronous_commit_back_on_when_the_database_has_it_off(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(url)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" SET synchronous_commit = off')
    finally:
        await admin.close()

    plain = await asyncpg.connect(url)
    writer = await connect_writer(url, connect_timeout=10)
    try:
        assert await plain.fetchval("SHOW synchronous_commit") == "off"
        assert await writer.fetchval("SHOW synchronous_commit") == "on"
    finally:
        await plain.close()
        await writer.close()


# The child appends to four executions concurrently and prints "<execution> <sequence>" for
# every append once it has returned (that is, once it is acknowledged as durable).
_CHILD = """
import asyncio, sys
from datetime import UTC, datetime
from baton.v1 import execution_pb2 as E
from server.store import NewExecution, PostgresExecutionStore

async def main(url):
    store = PostgresExecutionStore(url)
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

asyncio.run(main(sys.argv[1]))
"""


async def test_every_acknowledged_append_survives_kill_9(url: str) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD,
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPOSITORY,
    )
    assert child.stdout is not None
    output = b""
    while output.count(b"\n") < 1_000:
        line = await asyncio.wait_for(child.stdout.readline(), timeout=60)
        if not line:
            break
        output += line
    os.kill(child.pid, signal.SIGKILL)
    rest, errors = await asyncio.wait_for(child.communicate(), timeout=30)
    output += rest
    assert child.returncode == -signal.SIGKILL
    lines = output.split(b"\n")[:-1]
    assert len(lines) >= 1_000, errors.decode()
    highest: dict[str, int] = {}
    for line in lines:
        name, sequence = line.decode().split()
        highest[name] = max(highest.get(name, 0), int(sequence))

    store = PostgresExecutionStore(url)
    await store.open()
    try:
        for name, acknowledged in highest.items():
            sequences = [event.sequence for event in await store.read_events(name)]
            record = await store.get_execution(name)
            assert record is not None and record.last_sequence == len(sequences) >= acknowledged
            assert sequences == list(range(1, len(sequences) + 1))
    finally:
        await store.close()


async def test_writes_and_reads_go_on_when_the_server_ends_the_store_sessions(
    store: PostgresExecutionStore, url: str
) -> None:
    await create(store, "x1")
    assert await store.get_execution("x1") is not None

    assert await _terminate_sessions(url, "baton-writer", "baton-reader") == 2
    await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)

    assert [e.sequence for e in await store.read_events("x1")] == [1, 2]
    assert store.stats.reconnects == 1


async def test_a_batch_whose_session_ends_before_its_commit_is_committed_on_a_new_one(
    store: PostgresExecutionStore, url: str
) -> None:
    await create(store, "x1")
    blocker = await asyncpg.connect(url)
    try:
        # Holding x1's row makes the writer's batch wait inside its transaction, before COMMIT.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT 1 FROM executions WHERE execution_id = 'x1' FOR UPDATE")
        append = asyncio.ensure_future(store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING))
        await _until_waiting_for_a_lock(blocker, "baton-writer")
        assert await _terminate_sessions(url, "baton-writer") == 1
        await transaction.rollback()
        await asyncio.wait_for(append, WAIT_S)
    finally:
        await blocker.close()

    assert [e.sequence for e in await store.read_events("x1")] == [1, 2]
    assert store.stats.reconnects == 1


async def _terminate_sessions(url: str, *application_names: str) -> int:
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        ended: int = await admin.fetchval(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
            " WHERE datname = $1 AND application_name = ANY($2::text[])",
            url.rsplit("/", 1)[1],
            list(application_names),
        )
    finally:
        await admin.close()
    return ended


async def _until_waiting_for_a_lock(conn: asyncpg.Connection, application_name: str) -> None:
    """Polls pg_stat_activity (the server offers nothing to await) until the session waits for a lock."""

    query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'"
    for _ in range(int(WAIT_S / 0.01)):
        if await conn.fetchval(query, application_name):
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{application_name} never waited for a lock")


async def test_an_undecodable_payload_written_with_raw_sql_is_a_corrupt_history(
    store: PostgresExecutionStore, url: str
) -> None:
    await create(store, "x1")
    await store.append("x1", step_events(2, 2), E.EXECUTION_STATE_RUNNING)
    sequence = await inject_postgres_event(url, "x1", b"\x0a\xff\xff")

    with pytest.raises(CorruptHistoryError) as raised:
        await store.read_events("x1")

    assert (raised.value.execution_id, raised.value.sequence) == ("x1", sequence) == ("x1", 4)
    assert [e.sequence for e in await store.read_events("x1", limit=3)] == [1, 2, 3]


# ---- listeners across processes --------------------------------------------------------------


@pytest.fixture
async def pair(url: str) -> AsyncIterator[tuple[PostgresExecutionStore, PostgresExecutionStore]]:
    """Two stores on one database, as two replicas would have."""
    a, b = PostgresExecutionStore(url), PostgresExecutionStore(url)
    await a.open()
    await b.open()
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


async def test_a_commit_on_one_store_reaches_the_listeners_of_another_in_order(
    pair: tuple[PostgresExecutionStore, PostgresExecutionStore],
) -> None:
    a, b = pair
    on_a, on_b = Seen(), Seen()
    a.add_commit_listener(on_a)
    b.add_commit_listener(on_b)

    await create(a, "x1")
    for sequence in range(2, 12, 2):
        await a.append("x1", step_events(sequence, 2), E.EXECUTION_STATE_RUNNING)
    await create(a, "x2")

    assert await on_b.until("x1", 11) == list(range(1, 12))
    assert await on_b.until("x2", 1) == [1]
    # A store's own commits reach its listeners once: never again through the announcements.
    assert on_a.sequences("x1") == list(range(1, 12))
    assert b.fanout_stats.notifications == 7
    assert a.fanout_stats.notifications == 0


async def test_a_listener_registered_mid_stream_sees_every_later_commit_without_a_gap(
    pair: tuple[PostgresExecutionStore, PostgresExecutionStore],
) -> None:
    a, b = pair
    early = Seen()
    b.add_commit_listener(early)
    await create(a, "x1")
    await a.append("x1", step_events(2, 4), E.EXECUTION_STATE_RUNNING)
    await early.until("x1", 5)

    late = Seen()
    b.add_commit_listener(late)
    writes = [a.append("x1", step_events(sequence, 1), E.EXECUTION_STATE_RUNNING) for sequence in range(6, 26)]
    for write in writes:
        await write

    assert await late.until("x1", 25) == list(range(6, 26))
    assert await early.until("x1", 25) == list(range(1, 26))


async def test_a_commit_that_follows_unread_commits_of_another_store_is_handed_over_after_them(
    pair: tuple[PostgresExecutionStore, PostgresExecutionStore], url: str
) -> None:
    a, b = pair
    on_b = Seen()
    b.add_commit_listener(on_b)
    await create(a, "x1")
    await on_b.until("x1", 1)
    # B cannot hear A's next commits (its LISTEN connection is cut and cannot come back), then
    # takes the execution over.
    async with _listen_cut(url, b):
        await a.append("x1", step_events(2, 2), E.EXECUTION_STATE_RUNNING)
        await b.append("x1", step_events(4, 1), E.EXECUTION_STATE_RUNNING)
        await on_b.until("x1", 4)

    assert on_b.commits[0] == ("x1", [1])
    assert on_b.sequences("x1") == [1, 2, 3, 4]


async def test_the_listen_connection_is_reopened_and_commits_made_meanwhile_are_handed_over(
    pair: tuple[PostgresExecutionStore, PostgresExecutionStore], url: str
) -> None:
    a, b = pair
    on_b = Seen()
    b.add_commit_listener(on_b)
    await create(a, "x1")
    await on_b.until("x1", 1)
    lost = b.listen_backend_pid

    async with _listen_cut(url, b):
        await a.append("x1", step_events(2, 3), E.EXECUTION_STATE_RUNNING)

    assert await on_b.until("x1", 4) == [1, 2, 3, 4]
    await create(a, "x2")
    assert await on_b.until("x2", 1) == [1]
    assert b.fanout_stats.reconnects >= 1
    assert b.listen_backend_pid not in (None, lost)


@contextlib.asynccontextmanager
async def _listen_cut(url: str, store: PostgresExecutionStore) -> AsyncIterator[None]:
    """Cuts the store's LISTEN connection, and refuses new connections to the database meanwhile.

    The store's writer and read pool keep the connections they have; only LISTEN is gone.
    """
    name = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(ADMIN_URL)
    try:
        await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        try:
            assert await admin.fetchval("SELECT pg_terminate_backend($1)", store.listen_backend_pid)
            yield
        finally:
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
    finally:
        await admin.close()


# ---- URLs ------------------------------------------------------------------------------------


def test_open_store_makes_a_postgres_store_and_never_echoes_a_password() -> None:
    for url in (
        "postgresql://baton:s3cret@db.example:5432/baton",
        "postgres://baton@db/baton?sslmode=require",
        "postgresql+asyncpg://baton:s3cret@db/baton",
    ):
        assert isinstance(open_store(url), PostgresExecutionStore)
    for url in (
        "postgresql://baton:s3cret@db:notaport/baton",
        "postgresql://baton:s3cret@db:99999/baton",
        "postgresql://baton:s3cret@db:5432/",
        "postgresql://baton:s3cret@:5432/baton",
        "postgresql+psycopg://baton:s3cret@db/baton",
    ):
        with pytest.raises(ValueError) as raised:
            open_store(url)
        assert "s3cret" not in str(raised.value), url


async def test_opening_an_unreachable_database_fails_without_echoing_the_password() -> None:
    store = open_store("postgresql://baton:s3cret@127.0.0.1:1/baton")
    with pytest.raises(OSError) as raised:
        await store.open()
    assert "s3cret" not in str(raised.value)
    await store.close()
