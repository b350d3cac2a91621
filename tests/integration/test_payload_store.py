"""Large outputs stored once (issue 12.4), over real SQLite (both writers) and real PostgreSQL.

An output above the store's payload_threshold is kept once in the `payloads` table under its
SHA-256 and referenced from its event; reads resolve it; deleting executions drops the payloads
nobody names any more (server/store/_payloads.py has the rules). Each test looks at the tables
themselves, through a connection of its own.
"""

from __future__ import annotations

import asyncio
import hashlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from baton.v1 import execution_pb2
from google.protobuf import struct_pb2

from server.cli import main
from server.config import ConfigError, ServerConfig
from server.store import (
    CorruptHistoryError,
    ExecutionStore,
    PostgresExecutionStore,
    SqliteExecutionStore,
    open_store,
)
from tests.integration.pg_support import fresh_database
from tests.integration.store_support import T0, create, step_events

E = execution_pb2
THRESHOLD = 16 * 1024
WAIT_S = 10.0

Query = Callable[[str], Awaitable[list[tuple[object, ...]]]]


@dataclass
class Backend:
    """A store under test, how to open another one on its database, and a raw SQL query on it."""

    store: ExecutionStore
    reopen: Callable[[int], Awaitable[ExecutionStore]]
    """Opens another store on the same database, with this payload threshold."""
    query: Query
    """Runs SQL on the database behind the store's back (and commits it)."""


@pytest.fixture(params=["sqlite-loop", "sqlite-thread", "postgres"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    opened: list[ExecutionStore] = []
    if request.param == "postgres":
        async with fresh_database() as url:
            conn = await asyncpg.connect(url)

            async def pg_query(sql: str) -> list[tuple[object, ...]]:
                return [tuple(row) for row in await conn.fetch(sql)]

            async def pg_open(threshold: int) -> ExecutionStore:
                store = PostgresExecutionStore(url, payload_threshold=threshold)
                await store.open()
                opened.append(store)
                return store

            try:
                yield Backend(await pg_open(THRESHOLD), pg_open, pg_query)
            finally:
                for store in opened:
                    await store.close()
                await conn.close()
        return
    path = str(tmp_path / "store.db")
    writer = request.param.removeprefix("sqlite-")

    async def sqlite_query(sql: str) -> list[tuple[object, ...]]:
        conn = sqlite3.connect(path, isolation_level=None)
        try:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
        finally:
            conn.close()

    async def sqlite_open(threshold: int) -> ExecutionStore:
        store = SqliteExecutionStore(path, writer=writer, payload_threshold=threshold)
        await store.open()
        opened.append(store)
        return store

    try:
        yield Backend(await sqlite_open(THRESHOLD), sqlite_open, sqlite_query)
    finally:
        for store in opened:
            await store.close()


def text_output(text: str) -> struct_pb2.Struct:
    return struct_pb2.Struct(fields={"text": struct_pb2.Value(string_value=text)})


def succeeded(sequence: int, step_id: str, output: struct_pb2.Struct) -> execution_pb2.ExecutionEvent:
    event = E.ExecutionEvent(sequence=sequence)
    event.time.FromDatetime(T0 + timedelta(seconds=sequence))
    event.step_succeeded.step_id, event.step_succeeded.attempt = step_id, 1
    event.step_succeeded.output.Pack(output)
    return event


def item_succeeded(sequence: int, index: int, output: struct_pb2.Struct) -> execution_pb2.ExecutionEvent:
    event = E.ExecutionEvent(sequence=sequence)
    event.time.FromDatetime(T0 + timedelta(seconds=sequence))
    event.step_item_succeeded.step_id, event.step_item_succeeded.item = "map", index
    event.step_item_succeeded.attempt = 1
    event.step_item_succeeded.output.Pack(output)
    return event


def digest(output: struct_pb2.Struct) -> str:
    return hashlib.sha256(output.SerializeToString()).hexdigest()


def completed(sequence: int) -> execution_pb2.ExecutionEvent:
    event = E.ExecutionEvent(sequence=sequence)
    event.time.FromDatetime(T0 + timedelta(seconds=sequence))
    event.execution_completed.SetInParent()
    return event


async def payloads(query: Query) -> dict[str, tuple[int, int]]:
    """sha256 -> (size_bytes, refs) of every stored payload."""
    return {str(row[0]): (int(str(row[1])), int(str(row[2]))) for row in await query(_PAYLOADS)}


_PAYLOADS = "SELECT sha256, size_bytes, refs FROM payloads"


async def events_bytes(query: Query) -> int:
    (row,) = await query("SELECT COALESCE(SUM(length(payload)), 0) FROM events")
    return int(str(row[0]))


SHARED = text_output("s" * 40_000)


def distinct(index: int) -> struct_pb2.Struct:
    return text_output(f"{index:06d}" * 7_000)


# ---- writing once ------------------------------------------------------------------------------


async def test_large_outputs_are_stored_once_and_the_events_stay_small(backend: Backend) -> None:
    store = backend.store
    await create(store, "x1")
    events = [item_succeeded(2 + i, i, SHARED) for i in range(20)]
    events += [item_succeeded(22 + i, 20 + i, distinct(i)) for i in range(20)]
    events.append(succeeded(42, "small", text_output("small")))
    await store.append("x1", events[:10], E.EXECUTION_STATE_RUNNING)
    await store.append("x1", events[10:], E.EXECUTION_STATE_RUNNING)

    assert (await store.read_events("x1"))[1:] == events
    assert (await store.read_events("x1", after_sequence=30, limit=3)) == events[29:32]
    stored = await payloads(backend.query)
    assert stored[digest(SHARED)] == (SHARED.ByteSize(), 20)
    assert {stored[digest(distinct(i))] for i in range(20)} == {(distinct(0).ByteSize(), 1)}
    assert len(stored) == 21
    # 41 events, 40 of them with a 40 KB output: each row holds a reference of about 200 bytes.
    assert await events_bytes(backend.query) < 41 * 300
    assert await backend.query("SELECT count(*) FROM events WHERE payload_sha256 IS NOT NULL") == [(40,)]


async def test_an_output_of_exactly_the_threshold_stays_in_its_event_and_one_byte_more_does_not(
    backend: Backend,
) -> None:
    store = await backend.reopen(1000)
    framing = text_output("a" * 900).ByteSize() - 900
    at, above = text_output("a" * (1000 - framing)), text_output("b" * (1001 - framing))
    assert (at.ByteSize(), above.ByteSize()) == (1000, 1001)
    await create(store, "x1")
    await store.append("x1", [succeeded(2, "at", at), succeeded(3, "above", above)], E.EXECUTION_STATE_RUNNING)

    assert list(await payloads(backend.query)) == [digest(above)]
    assert [e.step_succeeded.output for e in (await store.read_events("x1"))[1:]] == [
        succeeded(2, "at", at).step_succeeded.output,
        succeeded(3, "above", above).step_succeeded.output,
    ]


async def test_a_threshold_of_zero_keeps_every_output_in_its_event(backend: Backend) -> None:
    store = await backend.reopen(0)
    await create(store, "x1")
    events = [succeeded(2, "a", SHARED), succeeded(3, "b", SHARED)]
    await store.append("x1", events, E.EXECUTION_STATE_RUNNING)

    assert (await store.read_events("x1"))[1:] == events
    assert await payloads(backend.query) == {}
    assert await events_bytes(backend.query) > 2 * 40_000


async def test_outputs_kept_inline_before_the_threshold_was_set_read_back_beside_referenced_ones(
    backend: Backend,
) -> None:
    inline = await backend.reopen(0)
    await create(inline, "x1")
    await inline.append("x1", [succeeded(2, "a", SHARED)], E.EXECUTION_STATE_RUNNING)

    await backend.store.append("x1", [succeeded(3, "b", SHARED)], E.EXECUTION_STATE_RUNNING)

    assert (await backend.store.read_events("x1"))[1:] == [succeeded(2, "a", SHARED), succeeded(3, "b", SHARED)]
    assert await payloads(backend.query) == {digest(SHARED): (SHARED.ByteSize(), 1)}


async def test_concurrent_writes_of_one_output_count_every_reference(backend: Backend) -> None:
    store = backend.store
    for i in range(12):
        await create(store, f"x{i}")
    # Concurrent appends land in one batch: the same digest many times in one transaction.
    await asyncio.gather(
        *(store.append(f"x{i}", [succeeded(2, "a", SHARED)], E.EXECUTION_STATE_RUNNING) for i in range(12))
    )

    assert await payloads(backend.query) == {digest(SHARED): (SHARED.ByteSize(), 12)}
    for i in range(12):
        assert (await store.read_events(f"x{i}"))[1] == succeeded(2, "a", SHARED)


async def test_the_events_handed_to_commit_listeners_carry_the_output_itself(backend: Backend) -> None:
    seen: list[execution_pb2.ExecutionEvent] = []
    backend.store.add_commit_listener(lambda _, events: seen.extend(events))
    await create(backend.store, "x1")
    await backend.store.append("x1", [succeeded(2, "a", SHARED)], E.EXECUTION_STATE_RUNNING)

    assert seen[-1] == succeeded(2, "a", SHARED)


def started_with_request(sequence: int, request: struct_pb2.Struct, *, item: int | None = None) -> E.ExecutionEvent:
    """A debug-mode started event (a step's, or an item's) recording its request."""
    event = E.ExecutionEvent(sequence=sequence)
    event.time.FromDatetime(T0 + timedelta(seconds=sequence))
    body = event.step_started if item is None else event.step_item_started
    body.step_id, body.attempt = "a", 1
    if item is not None:
        event.step_item_started.item = item
    body.request.CopyFrom(request)
    return event


async def test_a_large_debug_mode_request_is_stored_once_and_read_back(backend: Backend) -> None:
    store = backend.store
    request = struct_pb2.Struct()
    request.update({"user_id": "u1", "resume": "r" * 30_000, "skills": ["python", "sql"], "years": 7})
    events = [
        started_with_request(2, request),
        started_with_request(3, request, item=0),
        started_with_request(4, text_output("small request")),
    ]
    await create(store, "x1")
    await store.append("x1", events, E.EXECUTION_STATE_RUNNING)

    read = (await store.read_events("x1"))[1:]

    assert read == events
    assert not any(e.step_started.HasField("request_reference") for e in read)
    assert not any(e.step_item_started.HasField("request_reference") for e in read)
    digest_of_request = hashlib.sha256(request.SerializeToString(deterministic=True)).hexdigest()
    assert await payloads(backend.query) == {digest_of_request: (request.ByteSize(), 2)}
    assert await events_bytes(backend.query) < 2_000
    await backend.query("DELETE FROM payloads")
    with pytest.raises(CorruptHistoryError, match=f"payload {digest_of_request} is missing"):
        await store.read_events("x1")


# ---- deleting ----------------------------------------------------------------------------------


async def finished(
    store: ExecutionStore, execution_id: str, user_id: str, outputs: Sequence[struct_pb2.Struct]
) -> None:
    await create(store, execution_id, user_id=user_id)
    events = [succeeded(2 + i, f"s{i}", output) for i, output in enumerate(outputs)]
    events.append(completed(2 + len(outputs)))
    await store.append(execution_id, events, E.EXECUTION_STATE_COMPLETED)


async def test_a_payload_shared_by_two_executions_survives_deleting_one_and_goes_with_the_second(
    backend: Backend,
) -> None:
    store = backend.store
    await finished(store, "x1", "u1", [SHARED, distinct(1), SHARED])
    await finished(store, "x2", "u2", [SHARED, distinct(2)])
    assert await payloads(backend.query) == {
        digest(SHARED): (SHARED.ByteSize(), 3),
        digest(distinct(1)): (distinct(1).ByteSize(), 1),
        digest(distinct(2)): (distinct(2).ByteSize(), 1),
    }

    deletion = await store.delete_user_data("u1")

    assert deletion.execution_ids == ["x1"]
    assert await payloads(backend.query) == {
        digest(SHARED): (SHARED.ByteSize(), 1),
        digest(distinct(2)): (distinct(2).ByteSize(), 1),
    }
    assert [e.step_succeeded.output for e in (await store.read_events("x2"))[1:3]] == [
        succeeded(2, "s0", SHARED).step_succeeded.output,
        succeeded(3, "s1", distinct(2)).step_succeeded.output,
    ]

    # The retention sweep's deletion takes the last of them.
    expired = await store.delete_finished_before(T0 + timedelta(days=1), 10)

    assert expired.execution_ids == ["x2"]
    assert await payloads(backend.query) == {}
    assert await backend.query("SELECT count(*) FROM events") == [(0,)]


async def test_a_payload_deleted_and_written_again_is_stored_again(backend: Backend) -> None:
    store = backend.store
    await finished(store, "x1", "u1", [SHARED])
    await store.delete_user_data("u1")
    assert await payloads(backend.query) == {}

    await finished(store, "x2", "u2", [SHARED])

    assert await payloads(backend.query) == {digest(SHARED): (SHARED.ByteSize(), 1)}
    assert (await store.read_events("x2"))[1] == succeeded(2, "s0", SHARED)


# ---- what a broken store reads as ---------------------------------------------------------------


async def test_a_missing_payload_is_a_corrupt_history_naming_its_digest(backend: Backend) -> None:
    store = backend.store
    await create(store, "x1")
    await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    await store.append("x1", [succeeded(3, "a", SHARED)], E.EXECUTION_STATE_RUNNING)
    await backend.query("DELETE FROM payloads")

    with pytest.raises(CorruptHistoryError) as raised:
        await store.read_events("x1")

    assert (raised.value.execution_id, raised.value.sequence) == ("x1", 3)
    assert digest(SHARED) in raised.value.message and "missing" in raised.value.message
    assert [e.sequence for e in await store.read_events("x1", limit=2)] == [1, 2]


async def test_a_payload_of_another_size_or_a_reference_without_its_digest_is_a_corrupt_history(
    backend: Backend,
) -> None:
    store = backend.store
    await create(store, "x1")
    await store.append("x1", [succeeded(2, "a", SHARED)], E.EXECUTION_STATE_RUNNING)
    await create(store, "x2")
    await store.append("x2", [succeeded(2, "a", distinct(1))], E.EXECUTION_STATE_RUNNING)
    await backend.query(f"UPDATE payloads SET data = substr(data, 1, 100) WHERE sha256 = '{digest(SHARED)}'")
    await backend.query(f"UPDATE events SET payload_sha256 = NULL WHERE payload_sha256 = '{digest(distinct(1))}'")

    with pytest.raises(CorruptHistoryError, match=f"payload {digest(SHARED)} has 100 bytes"):
        await store.read_events("x1")
    with pytest.raises(CorruptHistoryError, match="payload reference its row does not name"):
        await store.read_events("x2")


# ---- replicas (PostgreSQL) ---------------------------------------------------------------------


async def test_another_replica_hears_a_commit_with_the_output_itself() -> None:
    async with fresh_database() as url:
        a, b = PostgresExecutionStore(url), PostgresExecutionStore(url)
        await a.open()
        await b.open()
        try:
            heard: list[execution_pb2.ExecutionEvent] = []
            arrived = asyncio.Event()

            def listener(execution_id: str, events: Sequence[execution_pb2.ExecutionEvent]) -> None:
                heard.extend(events)
                if any(event.sequence == 2 for event in events):
                    arrived.set()

            b.add_commit_listener(listener)
            await create(a, "x1")
            await a.append("x1", [succeeded(2, "a", SHARED)], E.EXECUTION_STATE_RUNNING)
            await asyncio.wait_for(arrived.wait(), WAIT_S)

            assert heard[-1] == succeeded(2, "a", SHARED)
            assert b.fanout_stats.remote_events == 2
        finally:
            await a.close()
            await b.close()


# ---- the setting ---------------------------------------------------------------------------------


@pytest.mark.parametrize("threshold", [-1, 2**31, True, 1.5])
def test_a_threshold_out_of_range_is_refused_naming_it(threshold: object, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="payload_threshold"):
        SqliteExecutionStore(str(tmp_path / "s.db"), payload_threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="payload_threshold"):
        PostgresExecutionStore("postgresql://h/db", payload_threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="payload_threshold"):
        open_store(f"sqlite:///{tmp_path}/s.db", payload_threshold=threshold)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="payload_threshold: expected 0 \\(off\\) or bytes"):
        ServerConfig(payload_threshold=threshold)  # type: ignore[arg-type]


def test_the_default_threshold_is_16_kib() -> None:
    assert ServerConfig().payload_threshold == 16 * 1024


@pytest.mark.parametrize("value", ["-1", "2000000000", "lots"])
def test_serve_with_a_bad_payload_threshold_exits_two_naming_it(value: str, capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(["serve", "--payload-threshold", value, "--store", "sqlite:///unused.db"])
    except SystemExit as exited:  # argparse's own refusal of a value that is not a number
        code = int(str(exited.code))
    assert code == 2
    assert "payload-threshold" in capsys.readouterr().err.replace("_", "-")
