"""The ReplicaStore contract (leases over executions), run against PostgreSQL and the in-memory store.

Two replicas are two store objects on one database (for the memory store, one object shared).
Lease times are the wall clock's: the PostgreSQL store fences appends with its own clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from baton.v1 import execution_pb2

import server.store
from server.engine.ports import Lease, LeaseLostError, ReplicaStore
from server.store import PostgresExecutionStore
from server.store._pg_leases import CLAIM, unfinished_where
from tests.integration.pg_support import fresh_database
from tests.integration.store_support import T0, create, step_events
from tests.unit.memory_store import MemoryStore

E = execution_pb2


@dataclass
class Replicas:
    """Two stores on one database, as two replicas see it."""

    a: ReplicaStore
    b: ReplicaStore
    name: str


@pytest.fixture(params=["postgres", "memory"])
async def replicas(request: pytest.FixtureRequest) -> AsyncIterator[Replicas]:
    if request.param == "memory":
        memory = MemoryStore()
        yield Replicas(memory, memory, "memory")
        return
    async with fresh_database() as url:
        a, b = PostgresExecutionStore(url), PostgresExecutionStore(url)
        await a.open()
        await b.open()
        try:
            yield Replicas(a, b, "postgres")
        finally:
            await a.close()
            await b.close()


def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def lease(owner: str, seconds: float = 60) -> Lease:
    return Lease(owner, now() + timedelta(seconds=seconds))


def lapsed(owner: str) -> Lease:
    """A lease that ran out a minute ago (a dead replica's)."""
    return Lease(owner, now() - timedelta(seconds=60))


async def make(store: ReplicaStore, *names: str) -> None:
    for offset, name in enumerate(names):
        await create(store, name, created_at=T0 + timedelta(seconds=offset))


async def owners(store: ReplicaStore, *names: str) -> list[str]:
    records = [await store.get_execution(name) for name in names]
    return [record.owner if record is not None else "?" for record in records]


async def test_claim_takes_free_due_unfinished_work_oldest_first(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "new", "later", "due", "waits", "done", "held", "abandoned")
    await a.park("later", now() + timedelta(hours=1))
    await a.park("due", now() - timedelta(seconds=1))
    await a.park("waits", None)
    await a.append("done", step_events(2, 1), E.EXECUTION_STATE_COMPLETED)
    assert await b.claim(lease("b"), now(), 1, ["held"]) == ["held"]
    assert await b.claim(lapsed("b"), now(), 1, ["abandoned"]) == ["abandoned"]

    taken = await a.claim(lease("a"), now(), 100)

    assert taken == ["new", "due", "abandoned"]
    assert await owners(a, "new", "later", "due", "waits", "done", "held", "abandoned") == [
        "a",
        "",
        "a",
        "",
        "",
        "b",
        "a",
    ]


async def test_claim_takes_at_most_limit_and_again_returns_what_it_holds(replicas: Replicas) -> None:
    a = replicas.a
    await make(a, "x1", "x2", "x3")

    assert await a.claim(lease("a"), now(), 2) == ["x1", "x2"]
    assert await a.claim(lease("a"), now(), 10) == ["x1", "x2", "x3"]
    assert await replicas.b.claim(lease("b"), now(), 10) == []


async def test_a_named_claim_takes_those_executions_due_or_not_but_never_another_replicas(
    replicas: Replicas,
) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "parked", "held", "done", "mine", "other")
    await a.park("parked", now() + timedelta(hours=1))
    await b.claim(lease("b"), now(), 1, ["held"])
    await a.append("done", step_events(2, 1), E.EXECUTION_STATE_FAILED)
    await a.claim(lease("a"), now(), 1, ["mine"])

    taken = await a.claim(lease("a"), now(), 10, ["parked", "held", "done", "mine", "missing"])

    assert taken == ["parked", "mine"]
    assert await owners(a, "other") == [""]


async def test_a_named_claim_for_a_rerun_takes_ended_executions_too_but_not_quarantined_or_held_ones(
    replicas: Replicas,
) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "failed", "cancelled", "quarantined", "held", "running")
    await a.append("failed", step_events(2, 1), E.EXECUTION_STATE_FAILED)
    await a.append("cancelled", step_events(2, 1), E.EXECUTION_STATE_CANCELLED)
    await a.append("held", step_events(2, 1), E.EXECUTION_STATE_FAILED)
    await b.claim(lease("b"), now(), 1, ["held"], ended=True)
    await a.quarantine("quarantined", "unreadable")
    names = ["failed", "cancelled", "quarantined", "held", "running"]

    assert await a.claim(lease("a"), now(), 10, names) == ["running"]  # a command's claim: unfinished only
    await a.release("a", ["running"])
    taken = await a.claim(lease("a"), now(), 10, names, ended=True)

    assert taken == ["failed", "cancelled", "running"]
    assert await owners(a, "held", "quarantined") == ["b", ""]


async def test_replicas_claiming_at_once_never_take_the_same_execution(replicas: Replicas) -> None:
    names = [f"x{n:02}" for n in range(40)]
    await make(replicas.a, *names)
    stores = [replicas.a, replicas.b] * 4

    rounds = await asyncio.gather(*(store.claim(lease(f"r{n}"), now(), 7) for n, store in enumerate(stores)))

    taken = [name for batch in rounds for name in batch]
    assert len(taken) == len(set(taken))
    for n, batch in enumerate(rounds):
        assert await owners(replicas.a, *batch) == [f"r{n}"] * len(batch)
    assert len(taken) == sum(1 for owner in await owners(replicas.a, *names) if owner)


async def test_renew_extends_and_returns_only_the_leases_still_held(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "kept", "lost", "never")
    await a.claim(lease("a"), now(), 1, ["kept"])
    await a.claim(lapsed("a"), now(), 1, ["lost"])
    await b.claim(lease("b"), now(), 1, ["lost"])
    renewal = lease("a", seconds=120)

    held = await a.renew(renewal, ["kept", "lost", "never", "missing"])

    assert held == {"kept"}
    kept, lost = await a.get_execution("kept"), await a.get_execution("lost")
    assert kept is not None and kept.lease_expires_at == renewal.until
    assert lost is not None and lost.owner == "b"


async def test_release_frees_only_the_owners_executions(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "x1", "x2", "theirs")
    await a.claim(lease("a"), now(), 2)
    await b.claim(lease("b"), now(), 1, ["theirs"])

    await a.release("a", ["x1", "x2", "theirs"])

    assert await owners(a, "x1", "x2", "theirs") == ["", "", "b"]
    record = await a.get_execution("x1")
    assert record is not None and record.lease_expires_at is None
    assert await b.claim(lease("b"), now(), 10) == ["x1", "x2", "theirs"]


async def test_a_fenced_append_after_another_replica_took_the_lapsed_lease_is_refused_and_writes_nothing(
    replicas: Replicas,
) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "x1")
    await a.claim(lapsed("a"), now(), 1)
    assert await b.claim(lease("b"), now(), 1) == ["x1"]

    with pytest.raises(LeaseLostError) as refused:
        await a.append_fenced(lease("a"), "x1", step_events(2, 2), E.EXECUTION_STATE_RUNNING)

    assert refused.value.owner == "b"
    assert [event.sequence for event in await b.read_events("x1")] == [1]
    record = await b.get_execution("x1")
    assert record is not None and record.last_sequence == 1 and record.state == E.EXECUTION_STATE_QUEUED
    await b.append_fenced(lease("b"), "x1", step_events(2, 2), E.EXECUTION_STATE_RUNNING)
    assert [event.sequence for event in await a.read_events("x1")] == [1, 2, 3]


async def test_a_refused_fenced_append_fails_alone_and_its_batch_commits(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "mine", "theirs")
    await a.claim(lease("a"), now(), 1, ["mine"])
    await b.claim(lease("b"), now(), 1, ["theirs"])

    results = await asyncio.gather(
        a.append_fenced(lease("a"), "mine", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        a.append_fenced(lease("a"), "theirs", step_events(2, 1), E.EXECUTION_STATE_RUNNING),
        return_exceptions=True,
    )

    assert results[0] is None
    assert isinstance(results[1], LeaseLostError)
    assert [event.sequence for event in await a.read_events("mine")] == [1, 2]
    assert [event.sequence for event in await a.read_events("theirs")] == [1]


async def test_parking_and_quarantining_release_the_lease(replicas: Replicas) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "parked", "quarantined")
    await a.claim(lease("a"), now(), 2)

    await a.park("parked", now() + timedelta(hours=1))
    await a.quarantine("quarantined", "event 2 cannot be decoded")

    assert await owners(a, "parked", "quarantined") == ["", ""]
    record = await a.get_execution("parked")
    assert record is not None and record.lease_expires_at is None
    assert await b.claim(lease("b"), now(), 10) == []
    assert await b.claim(lease("b"), now(), 10, ["parked"]) == ["parked"]
    with pytest.raises(LeaseLostError):
        await a.append_fenced(lease("a"), "parked", step_events(2, 1), E.EXECUTION_STATE_RUNNING)


async def test_postgres_refuses_a_fenced_append_whose_lease_lapsed_even_if_nobody_took_it() -> None:
    async with fresh_database() as url:
        store = PostgresExecutionStore(url)
        await store.open()
        try:
            await make(store, "x1")
            await store.claim(lapsed("a"), now(), 1)

            with pytest.raises(LeaseLostError):
                await store.append_fenced(lease("a"), "x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)

            assert await store.renew(lease("a"), ["x1"]) == {"x1"}
            await store.append_fenced(lease("a"), "x1", step_events(2, 1), E.EXECUTION_STATE_RUNNING)
            assert [event.sequence for event in await store.read_events("x1")] == [1, 2]
        finally:
            await store.close()


def test_the_claim_index_predicate_is_the_claim_querys_so_the_planner_can_use_it() -> None:
    migration = Path(server.store.__file__).parent / "migrations" / "postgres" / "0002_claim_index.sql"
    statement = next(line for line in migration.read_text().splitlines() if line.startswith("CREATE INDEX"))

    assert statement.endswith(f"WHERE {unfinished_where()};")
    assert f"WHERE ({unfinished_where()})" in CLAIM


async def test_postgres_claims_through_the_claim_index() -> None:
    async with fresh_database() as url:
        store = PostgresExecutionStore(url)
        await store.open()
        try:
            await make(store, "x1")
            conn = await asyncpg.connect(url)
            try:
                # On a table this small a sequential scan wins; forbid it to see what the plan can use.
                await conn.execute("SET enable_seqscan = off")
                plan = await conn.fetch("EXPLAIN " + CLAIM, "a", now(), now(), 10)
            finally:
                await conn.close()
        finally:
            await store.close()

    assert "executions_claim_idx" in "\n".join(row[0] for row in plan)


async def test_an_execution_another_replica_wants_is_listed_to_its_holder_until_it_is_claimed(
    replicas: Replicas,
) -> None:
    a, b = replicas.a, replicas.b
    await make(a, "held", "free", "mine")
    assert await a.claim(lease("a"), now(), 1, ["held"]) == ["held"]
    assert await b.claim(lease("b"), now(), 1, ["mine"]) == ["mine"]

    await b.want("held", "b")  # a command for "held" reached b
    await b.want("free", "b")  # nobody holds it: nothing to ask
    await b.want("mine", "b")  # b holds it already: nothing to ask
    assert await a.wanted("a") == ["held"]
    assert await b.wanted("b") == []
    assert await b.claim(lease("b"), now(), 1, ["held"]) == []  # still a's until a lets go

    await a.release("a", ["held"])  # a hands it over
    assert await a.claim(lease("a"), now(), 100) == ["free"]  # a's look for due work leaves it to b
    assert await b.claim(lease("b"), now(), 1, ["held"]) == ["held"]
    assert await a.wanted("a") == []
    assert await b.wanted("b") == []  # the claim cleared the ask
