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
    USER_DATA_DELETED,
    AuditPage,
    AuditQuery,
    CorruptHistoryError,
    DeletionNote,
    ExecutionNotFoundError,
    ExecutionQuery,
    ExecutionStore,
    InvalidKeyError,
    InvalidPageTokenError,
    PostgresExecutionStore,
    SequenceConflictError,
    SqliteExecutionStore,
    UnfinishedExecution,
    UnfinishedExecutionsError,
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


# ---- the audit trail ---------------------------------------------------------------------------


def acted(
    event: execution_pb2.ExecutionEvent, subject: str = "alice", peer: str = "ipv4:127.0.0.1:1"
) -> execution_pb2.ExecutionEvent:
    """The event as a client's request records it: with an actor."""
    event.actor.subject = subject
    event.actor.roles.append("user")
    event.actor.peer = peer
    return event


def cancelled(sequence: int, reason: str = "changed my mind", at: datetime = T0) -> execution_pb2.ExecutionEvent:
    event = E.ExecutionEvent(sequence=sequence)
    event.time.FromDatetime(at + timedelta(seconds=sequence))
    event.execution_cancelled.reason = reason
    event.execution_cancelled.cause = E.END_CAUSE_CANCELLED
    return event


def entries(page: AuditPage) -> list[tuple[str, int, str]]:
    return [(record.execution_id, record.sequence, record.action) for record in page.records]


async def test_events_with_an_actor_are_audit_entries_newest_first_and_others_are_not(store: ExecutionStore) -> None:
    await store.create_execution(new_execution("x1"), acted(started()))
    await store.append("x1", step_events(2, 2), E.EXECUTION_STATE_RUNNING)
    await store.append("x1", [acted(cancelled(4), subject="bob")], E.EXECUTION_STATE_CANCELLED)
    await store.create_execution(new_execution("x2", user_id="user-2"), started())

    page = await store.list_audit(AuditQuery())

    assert entries(page) == [("x1", 4, "execution_cancelled"), ("x1", 1, "execution_started")]
    newest = page.records[0]
    assert (newest.user_id, newest.reason, newest.recorded_at) == (
        "user-1",
        "changed my mind",
        T0 + timedelta(seconds=4),
    )
    actor = E.Actor.FromString(newest.actor)
    assert (actor.subject, list(actor.roles), actor.peer) == ("bob", ["user"], "ipv4:127.0.0.1:1")
    assert page.next_page_token == ""


async def test_an_append_with_an_actor_in_a_batch_of_concurrent_writes_indexes_only_its_own(
    store: ExecutionStore,
) -> None:
    for name in ("a", "b", "c"):
        await create(store, name)
    await asyncio.gather(
        store.append("a", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        store.append("b", [acted(cancelled(2), subject="carol")], E.EXECUTION_STATE_CANCELLED),
        store.append("c", step_events(2, 3), E.EXECUTION_STATE_RUNNING),
        store.create_execution(new_execution("d"), acted(started(), subject="dave")),
    )

    page = await store.list_audit(AuditQuery())

    assert sorted(entries(page)) == [("b", 2, "execution_cancelled"), ("d", 1, "execution_started")]


async def test_the_audit_trail_filters_by_subject_execution_and_owner(store: ExecutionStore) -> None:
    await store.create_execution(new_execution("x1"), acted(started(), subject="alice"))
    await store.create_execution(new_execution("x2", user_id="user-2"), acted(started(), subject="bob"))
    await store.append("x2", [acted(cancelled(2), subject="admin")], E.EXECUTION_STATE_CANCELLED)

    by_subject = await store.list_audit(AuditQuery(subject="admin"))
    by_execution = await store.list_audit(AuditQuery(execution_id="x2"))
    by_owner = await store.list_audit(AuditQuery(user_id="user-1"))
    both = await store.list_audit(AuditQuery(user_id="user-2", subject="bob"))
    nobody = await store.list_audit(AuditQuery(subject="nobody"))

    assert entries(by_subject) == [("x2", 2, "execution_cancelled")]
    assert entries(by_execution) == [("x2", 2, "execution_cancelled"), ("x2", 1, "execution_started")]
    assert entries(by_owner) == [("x1", 1, "execution_started")]
    assert entries(both) == [("x2", 1, "execution_started")]
    assert entries(nobody) == []


async def test_the_audit_trail_pages_newest_first_without_gaps_or_repeats(store: ExecutionStore) -> None:
    for i in range(7):
        await store.create_execution(new_execution(f"x{i}"), acted(started()))
    seen: list[str] = []
    token = ""
    pages = 0
    while True:
        page = await store.list_audit(AuditQuery(page_size=3, page_token=token))
        seen += [record.execution_id for record in page.records]
        pages += 1
        token = page.next_page_token
        if not token:
            break

    assert seen == [f"x{i}" for i in reversed(range(7))]
    assert pages == 3
    full = await store.list_audit(AuditQuery(page_size=7))
    assert len(full.records) == 7 and full.next_page_token == ""
    default = await store.list_audit(AuditQuery(page_size=0))
    assert len(default.records) == 7


@pytest.mark.parametrize("token", ["garbage", "YTE6MA", "YTE6LTE", "YTE6OTIyMzM3MjAzNjg1NDc3NTgwOA", "MTox", "YTE6IDE"])
async def test_a_malformed_audit_page_token_is_refused(store: ExecutionStore, token: str) -> None:
    # a1:0, a1:-1, a1:2**63 (past a 64-bit key), an executions token, a1:" 1".
    with pytest.raises(InvalidPageTokenError):
        await store.list_audit(AuditQuery(page_token=token))


async def test_an_executions_page_token_is_not_an_audit_token(store: ExecutionStore) -> None:
    for i in range(3):
        await store.create_execution(new_execution(f"x{i}", created_at=T0 + timedelta(seconds=i)), acted(started()))
    token = (await store.list_executions(ExecutionQuery(page_size=1))).next_page_token

    with pytest.raises(InvalidPageTokenError):
        await store.list_audit(AuditQuery(page_token=token))


# ---- deleting a user's data ----------------------------------------------------------------------


NOTE = DeletionNote(
    recorded_at=T0 + timedelta(hours=1), subject="root", actor=E.Actor(subject="root").SerializeToString()
)


async def test_deleting_a_user_removes_their_executions_events_and_entries_and_keeps_others(
    store: ExecutionStore,
) -> None:
    await store.create_execution(new_execution("a1"), acted(started()))
    await store.append("a1", [*step_events(2, 2), acted(cancelled(4))], E.EXECUTION_STATE_CANCELLED)
    await store.create_execution(new_execution("a2"), started())
    await store.append("a2", step_events(2, 1), E.EXECUTION_STATE_COMPLETED)
    await store.create_execution(new_execution("b1", user_id="user-2"), acted(started(), subject="bob"))

    deletion = await store.delete_user_data("user-1", NOTE)

    assert (sorted(deletion.execution_ids), deletion.events) == (["a1", "a2"], 6)
    for gone in ("a1", "a2"):
        assert await store.get_execution(gone) is None
        assert await store.read_events(gone) == []
    assert ids((await store.list_executions(ExecutionQuery())).records) == ["b1"]
    assert len(await store.read_events("b1")) == 1
    assert entries(await store.list_audit(AuditQuery(execution_id="a1"))) == []
    trail = await store.list_audit(AuditQuery())
    assert entries(trail) == [("", 0, USER_DATA_DELETED), ("b1", 1, "execution_started")]
    note = trail.records[0]
    assert (note.user_id, note.reason, note.recorded_at) == (
        "user-1",
        "deleted 2 executions and 6 events",
        NOTE.recorded_at,
    )
    assert E.Actor.FromString(note.actor).subject == "root"
    assert entries(await store.list_audit(AuditQuery(subject="root"))) == [("", 0, USER_DATA_DELETED)]
    assert entries(await store.list_audit(AuditQuery(user_id="user-1"))) == [("", 0, USER_DATA_DELETED)]
    assert await store.count_by_state() == {E.EXECUTION_STATE_QUEUED: 1}


async def test_deleting_a_user_with_an_unfinished_execution_deletes_nothing_and_names_it(
    store: ExecutionStore,
) -> None:
    await create(store, "done")
    await store.append("done", step_events(2, 1), E.EXECUTION_STATE_COMPLETED)
    await create(store, "running", created_at=T0 + timedelta(seconds=1))
    await store.append("running", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    await create(store, "paused", created_at=T0 + timedelta(seconds=2))
    await store.append("paused", step_events(2, 1), E.EXECUTION_STATE_PAUSED)

    with pytest.raises(UnfinishedExecutionsError) as refused:
        await store.delete_user_data("user-1", NOTE)

    assert refused.value.unfinished == [("running", E.EXECUTION_STATE_RUNNING), ("paused", E.EXECUTION_STATE_PAUSED)]
    assert "running (running)" in str(refused.value) and "paused (paused)" in str(refused.value)
    assert len((await store.list_executions(ExecutionQuery())).records) == 3
    assert len(await store.read_events("done")) == 2
    assert (await store.list_audit(AuditQuery())).records == []


async def test_a_quarantined_execution_counts_as_finished_for_deletion(store: ExecutionStore) -> None:
    await create(store, "bad")
    await store.append("bad", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
    await store.quarantine("bad", "FoldError: unknown step")

    deletion = await store.delete_user_data("user-1")

    assert (deletion.execution_ids, deletion.events) == (["bad"], 2)
    assert await store.get_execution("bad") is None
    assert await store.unfinished_executions() == []


async def test_deleting_a_user_with_nothing_stored_deletes_nothing_and_still_records_the_deletion(
    store: ExecutionStore,
) -> None:
    await create(store, "x1", user_id="someone-else")

    deletion = await store.delete_user_data("nobody", NOTE)
    again = await store.delete_user_data("nobody")

    assert (deletion.execution_ids, deletion.events) == ([], 0)
    assert (again.execution_ids, again.events) == ([], 0)
    assert entries(await store.list_audit(AuditQuery(user_id="nobody"))) == [("", 0, USER_DATA_DELETED)]
    assert await store.get_execution("x1") is not None


async def test_a_deleted_user_can_start_again_and_their_new_execution_is_kept_apart(store: ExecutionStore) -> None:
    await store.create_execution(new_execution("old", request_id="req"), acted(started()))
    await store.append("old", step_events(2, 1), E.EXECUTION_STATE_COMPLETED)
    await store.delete_user_data("user-1")

    record, created = await store.create_execution(new_execution("new", request_id="req"), acted(started()))

    assert created and record.execution_id == "new"
    assert entries(await store.list_audit(AuditQuery(user_id="user-1"))) == [("new", 1, "execution_started")]


# ---- retention ---------------------------------------------------------------------------------------


async def _ended(store: ExecutionStore, execution_id: str, state: int, at: datetime) -> None:
    """An execution created at `at` whose last event (its end, in `state`) is 10 s later."""
    await store.create_execution(new_execution(execution_id, created_at=at), acted(started(at)))
    end = E.ExecutionEvent(sequence=2)
    end.time.FromDatetime(at + timedelta(seconds=10))
    end.execution_completed.SetInParent()
    await store.append(execution_id, [end], state)


async def test_retention_deletes_only_finished_executions_last_updated_before_the_cutoff(
    store: ExecutionStore,
) -> None:
    cutoff = T0 + timedelta(days=30)
    await _ended(store, "old-completed", E.EXECUTION_STATE_COMPLETED, T0)
    await _ended(store, "old-failed", E.EXECUTION_STATE_FAILED, T0 + timedelta(seconds=1))
    await _ended(store, "old-cancelled", E.EXECUTION_STATE_CANCELLED, T0 + timedelta(seconds=2))
    await _ended(store, "old-running", E.EXECUTION_STATE_RUNNING, T0 + timedelta(seconds=3))
    await _ended(store, "old-paused", E.EXECUTION_STATE_PAUSED, T0 + timedelta(seconds=4))
    await _ended(store, "ended-just-after", E.EXECUTION_STATE_COMPLETED, cutoff - timedelta(seconds=5))
    await _ended(store, "new", E.EXECUTION_STATE_COMPLETED, cutoff + timedelta(days=1))
    await create(store, "old-queued", created_at=T0)

    deletion = await store.delete_finished_before(cutoff, 100)
    again = await store.delete_finished_before(cutoff, 100)

    assert sorted(deletion.execution_ids) == ["old-cancelled", "old-completed", "old-failed"]
    assert deletion.events == 6
    assert (again.execution_ids, again.events) == ([], 0)
    kept = sorted(ids((await store.list_executions(ExecutionQuery())).records))
    assert kept == ["ended-just-after", "new", "old-paused", "old-queued", "old-running"]
    assert await store.read_events("old-failed") == []
    assert {r.execution_id for r in (await store.list_audit(AuditQuery())).records} == {
        "ended-just-after",
        "new",
        "old-paused",
        "old-running",
    }


async def test_retention_deletes_at_most_the_limit_per_call(store: ExecutionStore) -> None:
    for i in range(5):
        await _ended(store, f"x{i}", E.EXECUTION_STATE_COMPLETED, T0 + timedelta(seconds=i))

    first = await store.delete_finished_before(T0 + timedelta(days=1), 2)
    second = await store.delete_finished_before(T0 + timedelta(days=1), 2)
    third = await store.delete_finished_before(T0 + timedelta(days=1), 2)

    assert [len(d.execution_ids) for d in (first, second, third)] == [2, 2, 1]
    assert len({*first.execution_ids, *second.execution_ids, *third.execution_ids}) == 5
    assert await store.count_by_state() == {}


async def test_retention_refuses_a_naive_cutoff_and_a_limit_below_one(store: ExecutionStore) -> None:
    with pytest.raises(ValueError):
        await store.delete_finished_before(datetime(2026, 1, 1), 10)
    with pytest.raises(ValueError):
        await store.delete_finished_before(T0, 0)
