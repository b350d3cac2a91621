"""Deleted executions leave nothing in memory (the engine's tables, watches); the fold ignores actors."""

from __future__ import annotations

import asyncio

import pytest
from baton.v1 import execution_pb2 as E

from server.engine import fold, render
from server.store import ExecutionNotFoundError
from server.streaming import ExecutionHub
from tests.unit.engine_support import Harness, approval_step, plan, started_event, step
from tests.unit.fakes import START


async def test_forgetting_a_parked_execution_drops_it_from_the_engine() -> None:
    h = Harness()
    execution_id = await h.submit(plan(approval_step("ok", data={"job_ids": ["j1"]}), step("B", "ok")))
    await h.settle()
    assert h.engine.parked == 1 and h.engine.active == 0

    h.engine.forget([execution_id, "never-heard-of"])

    assert h.engine.parked == 0
    await h.engine.close()


async def test_forgetting_an_execution_with_a_live_runner_stops_it_recording_nothing() -> None:
    h = Harness(latency=60.0)
    execution_id = await h.submit(plan(step("A")))
    await h.settle()
    runner = h.engine._runners[execution_id]
    recorded = len(h.store.events[execution_id])

    h.engine.forget([execution_id])
    await h.settle()

    assert h.engine.active == 0
    assert runner.task.done()
    h.clock.advance(120)  # its call would have answered by now
    await h.settle()
    assert len(h.store.events[execution_id]) == recorded
    await h.engine.close()


async def test_a_watch_of_a_forgotten_execution_ends_not_found() -> None:
    h = Harness()
    execution_id = await h.submit(plan(approval_step("ok", data={"job_ids": ["j1"]})))
    await h.settle()
    hub = ExecutionHub(h.store, heartbeat=3600)
    seen: list[int] = []

    async def watch() -> None:
        async for event, _ in hub.watch(execution_id):
            assert event is not None
            seen.append(event.sequence)

    task = asyncio.create_task(watch())
    await h.settle()
    assert seen and hub.watchers == 1
    hub.forget([execution_id])

    with pytest.raises(ExecutionNotFoundError):
        await asyncio.wait_for(task, 5)
    assert hub.watchers == 0
    await h.engine.close()


def test_the_fold_ignores_who_caused_an_event() -> None:
    first = started_event(plan(step("A")))
    paused = E.ExecutionEvent(sequence=2)
    paused.time.FromDatetime(START)
    paused.execution_paused.reason = "p"
    plain = fold("ex", [first, paused])
    first.actor.subject, paused.actor.subject = "alice", "bob"
    paused.actor.roles.append("admin")
    acted = fold("ex", [first, paused])

    # Only the bytes stored differ (the actor is part of the event).
    assert acted.storage_bytes > plain.storage_bytes
    acted.storage_bytes = plain.storage_bytes
    assert render(acted) == render(plain)
