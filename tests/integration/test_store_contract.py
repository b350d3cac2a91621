"""The ExecutionStore contract, run against every store: SQLite (both writers), PostgreSQL and the in-memory one.

A new store joins by adding a Backend to the `backend` fixture. What only one store can show
(SQLite's writers, migrations, durability) lives in that store's own test file.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from baton.v1 import execution_pb2

from server.store import (
    CorruptHistoryError,
    ExecutionNotFoundError,
    ExecutionQuery,
    ExecutionStore,
    InvalidKeyError,
    InvalidPageTokenError,
    PostgresExecutionStore,
    SequenceConflictError,
    SqliteExecutionStore,
    UnfinishedExecution,
)
from tests.integration.pg_support import fresh_database, inject_postgres_event
from tests.integration.store_support import (
    T0,
    create,
    inject_sqlite_event,
    nested_struct,
    new_execution,
    started,
    step_events,
)
from tests.unit.memory_store import MemoryStore

E = execution_pb2


@dataclass
class Backend:
    """A store under test and a way to write a raw event behind its back."""

    store: ExecutionStore
    inject: Callable[[str, bytes], Awaitable[None]]
    """Stores raw bytes as an execution's next event."""


@pytest.fixture(params=["sqlite-loop", "sqlite-thread", "postgres", "memory"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "memory":
        memory = MemoryStore()

        async def inject_memory(execution_id: str, payload: bytes) -> None:
            memory.inject_raw_event(execution_id, payload)

        yield Backend(memory, inject_memory)
        return
    if request.param == "postgres":
        async with fresh_database() as url:
            postgres = PostgresExecutionStore(url)
            await postgres.open()

            async def inject_postgres(execution_id: str, payload: bytes) -> None:
                await inject_postgres_event(url, execution_id, payload)

            try:
                yield Backend(postgres, inject_postgres)
            finally:
                await postgres.close()
        return
    path = str(tmp_path / "store.db")
    sqlite = SqliteExecutionStore(path, writer=request.param.removeprefix("sqlite-"))
    await sqlite.open()

    async def inject_sqlite(execution_id: str, payload: bytes) -> None:
        inject_sqlite_event(path, execution_id, payload)

    try:
        yield Backend(sqlite, inject_sqlite)
    finally:
        await sqlite.close()


@pytest.fixture
def store(backend: Backend) -> ExecutionStore:
    return backend.store


def ids(records: Sequence[object]) -> list[str]:
    return [record.execution_id for record in records]  # type: ignore[attr-defined]


# ---- creating --------------------------------------------------------------------------------


async def test_create_execution_records_the_execution_and_its_first_event(store: ExecutionStore) -> None:
    record, created = await store.create_execution(new_execution("x1", request_id="req-1"), started())

    assert created
    assert record.state == E.EXECUTION_STATE_QUEUED
    assert record.last_sequence == 1
    assert record.created_at == T0
    assert record.created_at.tzinfo is not None
    assert record.quarantine_error == ""
    assert await store.get_execution("x1") == record
    events = await store.read_events("x1")
    assert [event.WhichOneof("kind") for event in events] == ["execution_started"]
    assert events[0] == started()


async def test_a_repeated_request_id_returns_the_existing_execution(store: ExecutionStore) -> None:
    first, created = await store.create_execution(new_execution("x1", request_id="req-1"), started())
    again, created_again = await store.create_execution(new_execution("x2", request_id="req-1"), started())
    other_user, created_for_other = await store.create_execution(
        new_execution("x3", user_id="user-2", request_id="req-1"), started()
    )

    assert created and not created_again and created_for_other
    assert again == first
    assert other_user.execution_id == "x3"
    assert await store.get_execution("x2") is None


async def test_duplicate_creates_in_one_batch_create_one_execution(store: ExecutionStore) -> None:
    results = await asyncio.gather(
        *(store.create_execution(new_execution(f"x{i}", request_id="same"), started()) for i in range(5))
    )

    assert [created for _, created in results] == [True, False, False, False, False]
    assert {record.execution_id for record, _ in results} == {"x0"}
    assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: 1}


async def test_executions_without_request_id_are_never_deduplicated(store: ExecutionStore) -> None:
    await create(store, "x1")
    await create(store, "x2")

    assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: 2}


async def test_a_taken_execution_id_is_refused_and_the_first_execution_is_untouched(store: ExecutionStore) -> None:
    await create(store, "taken")

    results = await asyncio.gather(
        store.create_execution(new_execution("fresh-1"), started()),
        store.create_execution(new_execution("taken", request_id="another"), started()),
        store.append("taken", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        store.create_execution(new_execution("fresh-2"), started()),
        return_exceptions=True,
    )

    assert isinstance(results[1], Exception)
    assert results[2] is None
    assert await store.get_execution("fresh-1") is not None
    assert await store.get_execution("fresh-2") is not None
    taken = await store.get_execution("taken")
    assert taken is not None and taken.request_id == "" and taken.last_sequence == 2


async def test_a_first_event_other_than_sequence_1_or_a_naive_time_is_refused(store: ExecutionStore) -> None:
    with pytest.raises(ValueError, match="sequence"):
        await store.create_execution(new_execution("x1"), step_events(2, 1)[0])
    with pytest.raises(ValueError, match="naive"):
        await store.create_execution(new_execution("x2", created_at=T0.replace(tzinfo=None)), started())

    assert await store.count_by_state() == {}


# ---- appending and reading -------------------------------------------------------------------


async def test_appended_events_read_back_in_order_and_update_the_record(store: ExecutionStore) -> None:
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


async def test_changing_an_event_after_appending_it_changes_nothing_stored(store: ExecutionStore) -> None:
    await create(store, "x1")
    events = step_events(2, 1)
    await store.append("x1", events, E.EXECUTION_STATE_RUNNING)
    events[0].step_started.step_id = "changed"

    assert (await store.read_events("x1"))[1].step_started.step_id == "step-2"


async def test_an_append_that_skips_or_repeats_a_sequence_is_a_conflict(store: ExecutionStore) -> None:
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


async def test_an_append_to_an_unknown_execution_is_not_found(store: ExecutionStore) -> None:
    with pytest.raises(ExecutionNotFoundError) as raised:
        await store.append("nope", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    assert raised.value.args == ("nope",)

    assert await store.get_execution("nope") is None
    assert await store.read_events("nope") == []


async def test_an_append_with_gaps_between_its_own_events_is_refused(store: ExecutionStore) -> None:
    await create(store, "x1")
    events = step_events(2, 1) + step_events(4, 1)

    with pytest.raises(ValueError, match="sequence"):
        await store.append("x1", events, E.EXECUTION_STATE_RUNNING)
    with pytest.raises(ValueError, match="no events"):
        await store.append("x1", [], E.EXECUTION_STATE_RUNNING)


async def test_a_failing_write_fails_alone_among_concurrent_writes(store: ExecutionStore) -> None:
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


async def test_read_events_after_a_sequence_returns_only_the_tail(store: ExecutionStore) -> None:
    await create(store, "x1")
    await store.append("x1", step_events(2, 9), E.EXECUTION_STATE_RUNNING)

    assert [e.sequence for e in await store.read_events("x1", after_sequence=7)] == [8, 9, 10]
    assert [e.sequence for e in await store.read_events("x1", after_sequence=2, limit=2)] == [3, 4]
    assert await store.read_events("x1", after_sequence=10) == []
    assert await store.read_events("x1", limit=0) == []


# ---- corrupt histories -----------------------------------------------------------------------


async def test_an_event_that_cannot_be_decoded_is_a_corrupt_history_naming_it(backend: Backend) -> None:
    store = backend.store
    await create(store, "x1")
    await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    await backend.inject("x1", b"\xff\xff\xff\xff")

    with pytest.raises(CorruptHistoryError) as raised:
        await store.read_events("x1")

    assert (raised.value.execution_id, raised.value.sequence) == ("x1", 3)
    assert "x1" in str(raised.value) and "3" in str(raised.value)
    assert [e.sequence for e in await store.read_events("x1", limit=2)] == [1, 2]


async def test_an_event_nested_past_the_decoder_limit_is_a_corrupt_history(store: ExecutionStore) -> None:
    await create(store, "x1")
    deep = step_events(2, 1)
    deep[0].ClearField("step_started")
    deep[0].execution_started.user_context.data.CopyFrom(nested_struct(40))
    # Writing works (the encoder has no depth limit); it is reading back that fails.
    await store.append("x1", deep, E.EXECUTION_STATE_RUNNING)

    with pytest.raises(CorruptHistoryError) as raised:
        await store.read_events("x1")

    assert raised.value.sequence == 2
    assert "DecodeError" in raised.value.message


async def test_a_stored_event_with_another_sequence_is_a_corrupt_history(backend: Backend) -> None:
    await create(backend.store, "x1")
    await backend.inject("x1", step_events(7, 1)[0].SerializeToString())

    with pytest.raises(CorruptHistoryError, match="sequence 7"):
        await backend.store.read_events("x1")


# ---- listing and counting --------------------------------------------------------------------


async def test_list_executions_filters_by_user_state_and_workflow(store: ExecutionStore) -> None:
    await create(store, "a", user_id="u1", workflow_type="job_search", created_at=T0)
    await create(store, "b", user_id="u1", workflow_type="document_analysis", created_at=T0 + timedelta(seconds=1))
    await create(store, "c", user_id="u2", workflow_type="job_search", created_at=T0 + timedelta(seconds=2))
    await store.append("b", step_events(2, 1), E.EXECUTION_STATE_COMPLETED)

    assert ids((await store.list_executions(ExecutionQuery())).records) == ["c", "b", "a"]
    assert ids((await store.list_executions(ExecutionQuery(user_id="u1"))).records) == ["b", "a"]
    completed = ExecutionQuery(states=(E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED))
    assert ids((await store.list_executions(completed)).records) == ["b"]
    assert ids((await store.list_executions(ExecutionQuery(workflow_type="job_search"))).records) == ["c", "a"]
    both = ExecutionQuery(user_id="u2", workflow_type="job_search", states=(E.EXECUTION_STATE_QUEUED,))
    assert ids((await store.list_executions(both)).records) == ["c"]


async def test_list_executions_pages_newest_first_and_stably_through_ties(store: ExecutionStore) -> None:
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


async def test_the_last_full_page_has_no_next_token(store: ExecutionStore) -> None:
    for i in range(4):
        await create(store, f"x{i}", created_at=T0 + timedelta(seconds=i))

    page = await store.list_executions(ExecutionQuery(page_size=4))

    assert len(page.records) == 4
    assert page.next_page_token == ""


@pytest.mark.parametrize("token", ["not a token", "bm9wZQ", "MjoxOng", "MTp4Ong", "MTo1Og", "!!!"])
async def test_a_malformed_page_token_is_refused(store: ExecutionStore, token: str) -> None:
    with pytest.raises(InvalidPageTokenError):
        await store.list_executions(ExecutionQuery(page_token=token))


def _token(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode("ascii").rstrip("=")


@pytest.mark.parametrize(
    "raw",
    [
        f"1:{2**63}:x1",  # the fuzz run's: an OverflowError, INTERNAL, before
        f"1:{-(2**63) - 1}:x1",
        "1:" + "9" * 30 + ":x1",
        "1:253402300800000000:x1",  # a microsecond after 9999-12-31
        "1:0:x\x00y",  # an id no store can hold
        "1:0:" + "x" * 300,
    ],
)
async def test_a_page_token_no_store_could_have_made_is_refused(store: ExecutionStore, raw: str) -> None:
    await create(store, "x1")
    with pytest.raises(InvalidPageTokenError):
        await store.list_executions(ExecutionQuery(page_token=_token(raw)))


async def test_a_page_token_at_the_edge_of_time_is_accepted(store: ExecutionStore) -> None:
    await create(store, "x1")
    page = await store.list_executions(ExecutionQuery(page_token=_token("1:253402300799999999:zzz")))
    assert ids(page.records) == ["x1"]
    assert (await store.list_executions(ExecutionQuery(page_token=_token("1:0:x1")))).records == []


@pytest.mark.parametrize("key", ["execution_id", "user_id", "workflow_type", "request_id"])
async def test_a_key_with_nul_is_refused_every_time_and_writes_nothing(store: ExecutionStore, key: str) -> None:
    values = {"user_id": "user-1", "workflow_type": "job_search", "request_id": "req"}
    execution_id = "x\x00y" if key == "execution_id" else "x1"
    if key != "execution_id":
        values[key] = "a\x00b"
    for _ in range(2):  # the fuzz run's retried request_id, refused the same way twice
        with pytest.raises(InvalidKeyError) as raised:
            await store.create_execution(new_execution(execution_id, **values), started())
        assert raised.value.field == key

    assert (await store.list_executions(ExecutionQuery())).records == []


async def test_a_lookup_by_a_key_with_nul_finds_nothing(store: ExecutionStore) -> None:
    await create(store, "x1")

    assert await store.get_execution("x1\x00") is None
    assert await store.read_events("x1\x00") == []
    assert (await store.list_executions(ExecutionQuery(user_id="user-1\x00"))).records == []
    assert (await store.list_executions(ExecutionQuery(workflow_type="job_search\x00"))).records == []
    assert ids((await store.list_executions(ExecutionQuery(user_id="user-1"))).records) == ["x1"]


async def test_a_quarantine_reason_with_nul_is_kept_with_a_replacement_character(store: ExecutionStore) -> None:
    await create(store, "x1")

    await store.quarantine("x1", "event 2 says \x00 here")

    record = await store.get_execution("x1")
    assert record is not None and record.quarantine_error == "event 2 says \ufffd here"


async def test_unfinished_executions_are_the_non_terminal_ones_oldest_first(store: ExecutionStore) -> None:
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

    assert await store.unfinished_executions() == [
        UnfinishedExecution("queued", parked=False, wake_at=None),
        UnfinishedExecution("paused", parked=False, wake_at=None),
        UnfinishedExecution("running", parked=False, wake_at=None),
    ]


async def test_count_by_state_counts_every_state(store: ExecutionStore) -> None:
    for i in range(3):
        await create(store, f"q{i}")
    for i in range(2):
        await create(store, f"r{i}")
        await store.append(f"r{i}", step_events(2, 1), E.EXECUTION_STATE_RUNNING)

    assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: 3, E.EXECUTION_STATE_RUNNING: 2}


# ---- commit listeners ------------------------------------------------------------------------


async def test_commit_listeners_see_each_commit_in_order_and_never_a_refused_one(store: ExecutionStore) -> None:
    seen: list[tuple[str, list[int]]] = []
    store.add_commit_listener(lambda execution_id, events: seen.append((execution_id, [e.sequence for e in events])))

    await create(store, "a")
    await asyncio.gather(store.append("a", step_events(2, 2), E.EXECUTION_STATE_RUNNING), create(store, "b"))
    await store.append("a", step_events(4, 1), E.EXECUTION_STATE_RUNNING)
    with pytest.raises(SequenceConflictError):
        await store.append("a", step_events(9, 1), E.EXECUTION_STATE_RUNNING)
    await store.park("a", None)

    assert seen == [("a", [1]), ("a", [2, 3]), ("b", [1]), ("a", [4])]


async def test_a_failing_listener_does_not_break_writes_or_other_listeners(store: ExecutionStore) -> None:
    seen: list[str] = []

    def broken(execution_id: str, events: Sequence[execution_pb2.ExecutionEvent]) -> None:
        raise RuntimeError("listener bug")

    store.add_commit_listener(broken)
    store.add_commit_listener(lambda execution_id, events: seen.append(execution_id))
    await create(store, "a")

    assert seen == ["a"]


# ---- parking ---------------------------------------------------------------------------------


async def test_a_parked_execution_is_listed_as_parked_until_its_wake_time(store: ExecutionStore) -> None:
    wake = T0 + timedelta(minutes=5, microseconds=7)
    await create(store, "timed", created_at=T0)
    await create(store, "command", created_at=T0 + timedelta(seconds=1))
    await create(store, "awake", created_at=T0 + timedelta(seconds=2))

    await store.park("timed", wake)
    await store.park("command", None)

    unfinished = await store.unfinished_executions()
    assert unfinished == [
        UnfinishedExecution("timed", parked=True, wake_at=wake),
        UnfinishedExecution("command", parked=True, wake_at=None),
        UnfinishedExecution("awake", parked=False, wake_at=None),
    ]
    assert unfinished[0].wake_at is not None and unfinished[0].wake_at.tzinfo is not None


async def test_parking_changes_neither_state_nor_sequence_and_parking_again_moves_the_wake_time(
    store: ExecutionStore,
) -> None:
    await create(store, "x1")
    before = await store.get_execution("x1")

    await store.park("x1", T0 + timedelta(minutes=1))
    await store.park("x1", T0 + timedelta(minutes=2))

    assert await store.get_execution("x1") == before
    assert await store.unfinished_executions() == [UnfinishedExecution("x1", True, T0 + timedelta(minutes=2))]


async def test_an_append_unparks_the_execution(store: ExecutionStore) -> None:
    await create(store, "x1")
    await store.park("x1", T0 + timedelta(minutes=1))

    await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)

    assert await store.unfinished_executions() == [UnfinishedExecution("x1", parked=False, wake_at=None)]


async def test_concurrent_parks_and_appends_keep_their_order(store: ExecutionStore) -> None:
    await create(store, "park-then-append")
    await create(store, "append-then-park", created_at=T0 + timedelta(seconds=1))
    wake = T0 + timedelta(hours=1)

    await asyncio.gather(
        store.park("park-then-append", wake),
        store.append("park-then-append", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        store.append("append-then-park", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        store.park("append-then-park", wake),
    )

    assert await store.unfinished_executions() == [
        UnfinishedExecution("park-then-append", parked=False, wake_at=None),
        UnfinishedExecution("append-then-park", parked=True, wake_at=wake),
    ]


async def test_parking_an_unknown_execution_is_not_found_and_a_naive_time_is_refused(store: ExecutionStore) -> None:
    await create(store, "x1")

    with pytest.raises(ExecutionNotFoundError):
        await store.park("nope", None)
    with pytest.raises(ValueError, match="naive"):
        await store.park("x1", datetime(2026, 1, 1, 12, 0))

    assert await store.unfinished_executions() == [UnfinishedExecution("x1", parked=False, wake_at=None)]


# ---- quarantine ------------------------------------------------------------------------------


async def test_a_quarantined_execution_is_failed_with_its_error_and_no_longer_unfinished(
    store: ExecutionStore,
) -> None:
    await create(store, "bad")
    await create(store, "good", created_at=T0 + timedelta(seconds=1))
    await store.append("bad", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    await store.park("bad", None)

    await store.quarantine("bad", "DecodeError: truncated")

    record = await store.get_execution("bad")
    assert record is not None
    assert (record.state, record.quarantine_error, record.last_sequence) == (
        E.EXECUTION_STATE_FAILED,
        "DecodeError: truncated",
        2,
    )
    assert ids(await store.unfinished_executions()) == ["good"]
    assert await store.count_by_state() == {E.EXECUTION_STATE_FAILED: 1, E.EXECUTION_STATE_QUEUED: 1}
    failed = await store.list_executions(ExecutionQuery(states=(E.EXECUTION_STATE_FAILED,)))
    assert [(r.execution_id, r.quarantine_error) for r in failed.records] == [("bad", "DecodeError: truncated")]


async def test_appends_after_a_quarantine_are_stored_but_the_execution_stays_failed(store: ExecutionStore) -> None:
    await create(store, "x1")
    await store.quarantine("x1", "FoldError: unknown step")

    await store.append("x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    await asyncio.gather(
        store.quarantine("x1", "FoldError: again"),
        store.append("x1", step_events(3, 1), E.EXECUTION_STATE_COMPLETED),
    )

    record = await store.get_execution("x1")
    assert record is not None
    assert (record.state, record.last_sequence, record.quarantine_error) == (
        E.EXECUTION_STATE_FAILED,
        3,
        "FoldError: again",
    )
    assert await store.unfinished_executions() == []


async def test_quarantining_an_unknown_execution_is_not_found(store: ExecutionStore) -> None:
    with pytest.raises(ExecutionNotFoundError):
        await store.quarantine("nope", "whatever")
    assert await store.count_by_state() == {}
