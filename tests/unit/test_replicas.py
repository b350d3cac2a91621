"""Replicas: two engines share one store; leases decide who runs what, fence appends, and move
an execution to the survivor when its replica dies or drains."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta

import pytest
from baton.v1 import execution_pb2 as E

from server.engine import Engine, EngineConfig, ReplicaConfig, SignalCommand, Submission
from tests.unit.engine_support import approval_step, plan, step, w_plan
from tests.unit.fakes import FakeCaller, FakeClock, MemoryStore
from tests.unit.fleet import LedgerFleet


class Replicas:
    """Two replicas, a and b, over one memory store, a fake clock and one fleet."""

    def __init__(self, latency: float = 0.0, lease: float = 15.0, batch: int = 100) -> None:
        self.batch = batch
        self.clock = FakeClock()
        self.store = MemoryStore()
        self.fleet = LedgerFleet(self.clock, latency=latency)
        self.lease = lease
        self.a = self.engine("a")
        self.b = self.engine("b")
        self._ids = 0

    def engine(self, owner: str) -> Engine:
        replica = ReplicaConfig(owner=owner, lease_seconds=self.lease, claim_interval=1.0, claim_batch=self.batch)
        config = EngineConfig(replica=replica)
        return Engine(self.store, self.fleet, self.clock, config=config, rng=random.Random(7))

    async def start(self) -> None:
        await self.a.recover()
        await self.b.recover()

    async def submit(self, engine: Engine, p: object = None) -> str:
        from baton.v1 import journey_pb2

        self._ids += 1
        execution_id = f"ex-{self._ids}"
        user = journey_pb2.UserJourney(user_id="u1")
        await engine.submit(Submission(execution_id=execution_id, plan=p or w_plan(), user_context=user))  # type: ignore[arg-type]
        return execution_id

    async def settle(self) -> None:
        for _ in range(60):
            await asyncio.sleep(0)

    async def advance(self, seconds: float, step_seconds: float = 0.5) -> None:
        """Moves the clock on in small steps, letting everything due run."""
        end = self.clock.now() + timedelta(seconds=seconds)
        while self.clock.now() < end:
            await self.settle()
            self.clock.advance(step_seconds)
        await self.settle()

    def state(self, execution_id: str) -> int:
        return self.store.records[execution_id].state

    def owner(self, execution_id: str) -> str:
        return self.store.records[execution_id].owner

    async def close(self) -> None:
        await self.a.close()
        await self.b.close()


@pytest.fixture
async def replicas() -> Replicas:
    r = Replicas(latency=2.0)
    await r.start()
    yield r  # type: ignore[misc]
    await r.close()


async def test_the_replica_that_takes_a_submission_runs_it_and_the_other_leaves_it_alone(replicas: Replicas) -> None:
    ex = await replicas.submit(replicas.a)
    await replicas.settle()
    assert replicas.owner(ex) == "a" and replicas.a.active == 1 and replicas.b.active == 0
    await replicas.advance(10)
    assert replicas.state(ex) == E.EXECUTION_STATE_COMPLETED
    assert replicas.b.active == 0
    assert [c.attempt for c in replicas.fleet.calls] == [1, 1, 1, 1, 1]  # each step once


async def test_a_dead_replicas_execution_is_taken_over_after_its_lease_lapses_with_the_same_keys(
    replicas: Replicas,
) -> None:
    ex = await replicas.submit(replicas.a)
    await replicas.settle()
    assert [c.idempotency_key for c in replicas.fleet.calls] == [f"{ex}/A"]
    await replicas.a.close(release=False)  # kill -9: nothing recorded, nothing released
    await replicas.advance(10)
    assert replicas.owner(ex) == "a" and replicas.state(ex) == E.EXECUTION_STATE_RUNNING  # not yet: lease holds
    await replicas.advance(10)  # past the 15 s lease
    assert replicas.owner(ex) == "b"
    await replicas.advance(10)
    assert replicas.state(ex) == E.EXECUTION_STATE_COMPLETED
    keys = [c.idempotency_key for c in replicas.fleet.calls]
    assert keys[:2] == [f"{ex}/A", f"{ex}/A"]  # the in-flight call issued again under its key
    history = replicas.store.events[ex]
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))


async def test_a_draining_replica_releases_its_executions_at_once(replicas: Replicas) -> None:
    ex = await replicas.submit(replicas.a)
    await replicas.settle()
    await replicas.a.close()  # SIGTERM: release
    assert replicas.owner(ex) == ""
    await replicas.advance(1.5)
    assert replicas.owner(ex) == "b"  # the next look, not after a lapsed lease
    await replicas.advance(10)
    assert replicas.state(ex) == E.EXECUTION_STATE_COMPLETED


async def test_a_replica_that_lost_its_lease_cannot_append_and_stops_without_fighting() -> None:
    r = Replicas(latency=8.0)  # three levels of 8 s calls: still running when the 15 s lease lapses
    await r.start()
    ex = await r.submit(r.a)
    await r.settle()
    assert r.a._lease_task is not None
    r.a._lease_task.cancel()  # a stalls: it stops renewing, but its runner is alive
    await r.advance(20)  # b takes it over once a's lease lapses
    assert r.owner(ex) == "b"
    await r.advance(30)
    assert r.state(ex) == E.EXECUTION_STATE_COMPLETED
    assert r.a.active == 0  # a's runner found the lease gone at its next append and stopped
    history = r.store.events[ex]
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    assert [e.WhichOneof("kind") for e in history].count("execution_completed") == 1
    await r.close()


async def test_a_parked_execution_is_free_and_a_command_on_any_replica_runs_it_there(replicas: Replicas) -> None:
    p = plan(step("A"), approval_step("ok", "A", data={"job_ids": ["j1"]}), step("B", "ok"))
    ex = await replicas.submit(replicas.a, p)
    await replicas.advance(3)
    assert replicas.owner(ex) == "" and replicas.a.active == 0  # waiting for a person: nobody holds it
    await replicas.b.signal(ex, SignalCommand(E.SIGNAL_APPROVE))
    assert replicas.owner(ex) == "b"
    await replicas.advance(5)
    assert replicas.state(ex) == E.EXECUTION_STATE_COMPLETED


async def test_work_no_replica_holds_is_shared_between_replicas() -> None:
    r = Replicas(latency=2.0, batch=3)  # each look takes at most three
    c = r.engine("c")
    for _ in range(6):
        await r.submit(c)  # c claims each as it submits it (one at a time)
    await r.settle()
    assert c.active == 6
    await c.close()  # c drains with six executions under way
    await r.start()
    await r.settle()
    owners = [r.owner(f"ex-{n}") for n in range(1, 7)]
    assert sorted(owners) == ["a", "a", "a", "b", "b", "b"]  # no execution taken twice
    assert (r.a.active, r.b.active) == (3, 3)
    await r.advance(15)
    assert all(r.state(f"ex-{n}") == E.EXECUTION_STATE_COMPLETED for n in range(1, 7))
    await r.close()


def test_replicas_need_a_store_with_leases() -> None:
    class NoLeases:
        pass

    config = EngineConfig(replica=ReplicaConfig(owner="a"))
    with pytest.raises(ValueError, match="replicas need a store with leases"):
        Engine(NoLeases(), FakeCaller(FakeClock()), FakeClock(), config=config)  # type: ignore[arg-type]


async def test_a_command_to_a_replica_that_does_not_hold_the_execution_is_handed_over_and_applied_there(
    replicas: Replicas,
) -> None:
    ex = await replicas.submit(replicas.a)
    await replicas.settle()
    assert replicas.owner(ex) == "a" and replicas.a.active == 1  # a is running it, a call in flight

    pause = asyncio.create_task(replicas.b.pause(ex, "from b"))
    await replicas.advance(1.5)  # a's next look sees the ask, stops and releases; b claims it
    await pause
    assert replicas.owner(ex) == "b"
    assert replicas.a.active == 0
    assert replicas.state(ex) == E.EXECUTION_STATE_PAUSED
    kinds = [e.WhichOneof("kind") for e in replicas.store.events[ex]]
    assert kinds[-1] == "execution_paused"
    await replicas.b.resume(ex, "go on")
    await replicas.advance(10)
    assert replicas.state(ex) == E.EXECUTION_STATE_COMPLETED
    history = replicas.store.events[ex]
    assert [e.sequence for e in history] == list(range(1, len(history) + 1))
    # A's call in flight was issued again by b under the same key: each step's effect once.
    assert {c.idempotency_key for c in replicas.fleet.calls} == {f"{ex}/{s}" for s in "ABCDE"}


async def test_a_command_for_an_execution_whose_holder_never_hands_it_over_waits_for_its_lease() -> None:
    r = Replicas(latency=2.0, lease=4.0)
    await r.start()
    ex = await r.submit(r.a)
    await r.settle()
    await r.a.close(release=False)  # a died holding it: nobody answers the ask
    cancel = asyncio.create_task(r.b.cancel(ex, "from b"))
    await r.advance(8)
    await cancel  # taken once a's lease lapsed
    assert r.owner(ex) in ("", "b")
    assert r.state(ex) == E.EXECUTION_STATE_CANCELLED
    await r.close()
