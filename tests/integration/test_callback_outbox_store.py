"""The callback outbox (CallbackOutbox) of both stores: SQLite (both writers) and PostgreSQL.

The in-memory store of the engine's unit tests has no outbox (the engine never reads it), so it
is not among the backends here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import pytest
from baton.v1 import execution_pb2

from server.engine.callback import delivery_id_of
from server.store import ExecutionStore, PostgresExecutionStore, SqliteExecutionStore
from server.store.base import CallbackClaimLostError, PendingCallback
from tests.integration.pg_support import fresh_database
from tests.integration.store_support import T0, create

E = execution_pb2
DEADLINE = T0 + timedelta(hours=24)
Reopen = Callable[[], ExecutionStore]


@pytest.fixture(params=["sqlite-loop", "sqlite-thread", "postgres"])
async def reopen(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Reopen]:
    """Makes (unopened) stores on one database: a second one is the store after a restart."""
    if request.param == "postgres":
        async with fresh_database() as url:
            yield lambda: PostgresExecutionStore(url)
        return
    path = str(tmp_path / "store.db")
    yield lambda: SqliteExecutionStore(path, writer=request.param.removeprefix("sqlite-"))


@pytest.fixture
async def store(reopen: Reopen) -> AsyncIterator[ExecutionStore]:
    opened = reopen()
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


def end_with_callback(first: int, url: str = "https://hooks.example/baton") -> list[execution_pb2.ExecutionEvent]:
    """An execution's terminal event and its callback_scheduled, as the engine appends them."""
    end = E.ExecutionEvent(sequence=first, execution_completed=E.ExecutionCompleted())
    end.time.FromDatetime(T0)
    scheduled = E.ExecutionEvent(sequence=first + 1)
    scheduled.time.FromDatetime(T0)
    scheduled.callback_scheduled.delivery_id = delivery_id_of("e1")
    scheduled.callback_scheduled.callback_url = url
    scheduled.callback_scheduled.deadline.FromDatetime(DEADLINE)
    return [end, scheduled]


def delivered(attempts: int = 1) -> execution_pb2.ExecutionEvent:
    event = E.ExecutionEvent()
    event.time.FromDatetime(T0 + timedelta(seconds=5))
    event.callback_delivered.delivery_id = delivery_id_of("e1")
    event.callback_delivered.attempts = attempts
    event.callback_delivered.detail = "HTTP 204"
    return event


async def ended(store: ExecutionStore, execution_id: str = "e1", user_id: str = "user-1") -> None:
    await create(store, execution_id, user_id=user_id)
    await store.append(execution_id, end_with_callback(2), E.EXECUTION_STATE_COMPLETED)


async def test_the_append_that_ends_an_execution_records_its_callback_in_the_same_commit(store: ExecutionStore) -> None:
    await create(store, "e1")
    assert await store.pending_callbacks() == []
    await store.append("e1", end_with_callback(2), E.EXECUTION_STATE_COMPLETED)
    [row] = await store.pending_callbacks("e1")
    assert row == PendingCallback(
        delivery_id=delivery_id_of("e1"),
        execution_id="e1",
        user_id="user-1",
        url="https://hooks.example/baton",
        scheduled_sequence=3,
        deadline=DEADLINE,
        attempts=0,
        next_attempt_at=T0,
    )


async def test_a_refused_append_records_no_callback(store: ExecutionStore) -> None:
    await create(store, "e1")
    with pytest.raises(Exception, match="sequence"):
        await store.append("e1", end_with_callback(5), E.EXECUTION_STATE_COMPLETED)
    assert await store.pending_callbacks() == []


async def test_the_outbox_survives_a_restart_of_the_store(reopen: Reopen) -> None:
    first = reopen()
    await first.open()
    await ended(first)
    await first.close()
    second = reopen()
    await second.open()
    try:
        [row] = await second.pending_callbacks()
        assert (row.execution_id, row.scheduled_sequence, row.deadline) == ("e1", 3, DEADLINE)
    finally:
        await second.close()


async def test_a_claimed_callback_is_nobody_elses_until_its_claim_lapses_or_is_freed(store: ExecutionStore) -> None:
    await ended(store)
    now, until = T0 + timedelta(seconds=1), T0 + timedelta(seconds=60)
    [mine] = await store.claim_callbacks("replica-a", now, until, 10)
    assert mine.execution_id == "e1"
    assert await store.claim_callbacks("replica-b", now, until, 10) == []
    assert await store.claim_callbacks("replica-b", until - timedelta(seconds=1), until, 10) == []
    # A lapsed claim (a dead replica's) is taken over.
    [taken] = await store.claim_callbacks("replica-b", until, until + timedelta(seconds=60), 10)
    assert taken.delivery_id == mine.delivery_id
    assert await store.release_callbacks("replica-a") == 0
    assert await store.release_callbacks("replica-b", [taken.delivery_id]) == 1
    [again] = await store.claim_callbacks("replica-a", now, until, 10)
    assert again.delivery_id == mine.delivery_id


async def test_concurrent_claims_take_a_row_once(store: ExecutionStore) -> None:
    await ended(store)
    now, until = T0 + timedelta(seconds=1), T0 + timedelta(seconds=60)
    results = await asyncio.gather(*(store.claim_callbacks(f"r{i}", now, until, 10) for i in range(8)))
    assert sorted(len(claimed) for claimed in results) == [0] * 7 + [1]


async def test_a_failed_attempt_moves_the_next_one_on_and_counts_it(store: ExecutionStore) -> None:
    await ended(store)
    now = T0 + timedelta(seconds=1)
    [row] = await store.claim_callbacks("a", now, now + timedelta(seconds=60), 10)
    retry_at = now + timedelta(seconds=2)
    assert await store.reschedule_callback("a", row.delivery_id, 1, retry_at, retry_at + timedelta(seconds=60), "down")
    assert not await store.reschedule_callback("b", row.delivery_id, 9, now, now, "not mine")
    [kept] = await store.pending_callbacks()
    assert (kept.attempts, kept.next_attempt_at, kept.last_error) == (1, retry_at, "down")
    # Freed (a restart), it is due again only at its next attempt's time.
    await store.release_callbacks(None)
    assert await store.claim_callbacks("b", retry_at - timedelta(seconds=1), retry_at, 10) == []
    [due] = await store.claim_callbacks("b", retry_at, retry_at + timedelta(seconds=60), 10)
    assert due.attempts == 1


async def test_renewing_extends_only_the_holders_claims(store: ExecutionStore) -> None:
    await ended(store)
    now = T0 + timedelta(seconds=1)
    [row] = await store.claim_callbacks("a", now, now + timedelta(seconds=10), 10)
    assert await store.renew_callbacks("b", [row.delivery_id], now + timedelta(seconds=100)) == set()
    held = await store.renew_callbacks("a", [row.delivery_id], now + timedelta(seconds=100))
    assert held == {row.delivery_id}
    assert await store.claim_callbacks("b", now + timedelta(seconds=50), now + timedelta(seconds=60), 10) == []


async def test_the_outcome_is_appended_with_the_rows_deletion_only_by_its_holder(store: ExecutionStore) -> None:
    await ended(store)
    now = T0 + timedelta(seconds=1)
    [row] = await store.claim_callbacks("a", now, now + timedelta(seconds=60), 10)
    with pytest.raises(CallbackClaimLostError):
        await store.finish_callback("b", row, delivered())
    assert [e.sequence for e in await store.read_events("e1")] == [1, 2, 3]
    await store.finish_callback("a", row, delivered())
    events = await store.read_events("e1")
    assert [e.WhichOneof("kind") for e in events][-2:] == ["callback_scheduled", "callback_delivered"]
    assert events[-1].sequence == 4
    record = await store.get_execution("e1")
    assert record is not None and (record.state, record.last_sequence) == (E.EXECUTION_STATE_COMPLETED, 4)
    assert await store.pending_callbacks() == []
    # A second outcome (a replica whose claim had lapsed) records nothing.
    with pytest.raises(CallbackClaimLostError):
        await store.finish_callback("a", row, delivered())
    assert len(await store.read_events("e1")) == 4


async def test_deleting_a_users_data_deletes_their_pending_callbacks(store: ExecutionStore) -> None:
    await ended(store, "e1", user_id="alice")
    await create(store, "e2", user_id="bob")
    other = end_with_callback(2)
    other[1].callback_scheduled.delivery_id = delivery_id_of("e2")
    await store.append("e2", other, E.EXECUTION_STATE_COMPLETED)
    await store.delete_user_data("alice")
    assert [row.execution_id for row in await store.pending_callbacks()] == ["e2"]


async def test_retention_deletes_the_callbacks_of_the_executions_it_deletes(store: ExecutionStore) -> None:
    await ended(store)
    deletion = await store.delete_finished_before(T0 + timedelta(days=1), 10)
    assert deletion.execution_ids == ["e1"]
    assert await store.pending_callbacks() == []
