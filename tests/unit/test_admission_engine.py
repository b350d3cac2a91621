"""Admission control in the engine over the memory store (server/engine/admission.py, rules 1-7).

The SQL stores' decisions are held to the same rules by tests/integration/test_admission.py and
the store contract tests; these pin the engine's side: what waits, what starts when a slot frees,
in what order, and what a queued execution answers to commands.
"""

from __future__ import annotations

import pytest
from baton.v1 import execution_pb2, plan_pb2

from server.engine import EngineConfig
from server.engine.admission import AdmissionLimits, QueueFullError
from server.engine.inbox import ExecutionStateError
from tests.unit.engine_support import Harness, plan, step
from tests.unit.fakes import reply

E = execution_pb2
P = plan_pb2


def limited(max_running: int, max_queued: int = 0, aging: float = 60.0) -> Harness:
    limits = AdmissionLimits(max_running=max_running, max_queued=max_queued, aging_seconds=aging)
    h = Harness(latency=1.0, config=EngineConfig(admission=limits))
    h.caller.script("analytics", "RecordEvents", *[reply({})] * 100)
    return h


def prioritised(priority: int) -> plan_pb2.OrchestrationPlan:
    p = plan(step("A"))
    p.execution_strategy.priority = priority  # type: ignore[assignment]
    return p


async def started_order(h: Harness, execution_ids: list[str]) -> list[str]:
    """Runs everything to the end; the executions in the order their first agent call was made."""
    for execution_id in execution_ids:
        await h.run(execution_id)
    by_key = {call.call.idempotency_key.split("/")[0]: index for index, call in enumerate(h.caller.calls)}
    return sorted(execution_ids, key=lambda execution_id: by_key[execution_id])


async def test_without_max_running_nothing_waits() -> None:
    h = limited(0)
    ids = [await h.submit(plan(step("A"))) for _ in range(5)]
    await h.settle()
    assert not any(h.store.records[i].waiting for i in ids)
    assert len(h.caller.calls) == 5


async def test_past_max_running_executions_wait_queued_holding_no_runner_and_start_as_slots_free() -> None:
    h = limited(2)
    ids = [await h.submit(plan(step("A"))) for _ in range(5)]
    await h.settle()
    assert [h.store.records[i].waiting for i in ids] == [False, False, True, True, True]
    assert [h.status(i) for i in ids[2:]] == [E.EXECUTION_STATE_QUEUED] * 3
    assert len(h.caller.calls) == 2
    assert await h.store.count_waiting() == 3
    assert [await h.engine.queue_position(i) for i in ids] == [0, 0, 1, 2, 3]
    for i in ids:
        assert (await h.run(i)).status == E.EXECUTION_STATE_COMPLETED
    assert len(h.caller.calls) == 5


async def test_a_full_queue_refuses_at_once_and_records_nothing() -> None:
    h = limited(1, max_queued=2)
    for _ in range(3):
        await h.submit(plan(step("A")))
    with pytest.raises(QueueFullError) as refused:
        await h.submit(plan(step("A")))
    assert refused.value.retry_after == AdmissionLimits().retry_after_seconds
    assert len(h.store.records) == 3


async def test_waiting_executions_start_by_priority_then_first_come() -> None:
    h = limited(1)
    blocker = await h.submit(prioritised(P.PRIORITY_LOW))
    order = [P.PRIORITY_LOW, P.PRIORITY_HIGH, P.PRIORITY_MEDIUM, P.PRIORITY_CRITICAL, P.PRIORITY_HIGH]
    ids = [await h.submit(prioritised(priority)) for priority in order]
    started = await started_order(h, [blocker, *ids])
    assert started == [blocker, ids[3], ids[1], ids[4], ids[2], ids[0]]


async def test_an_unset_priority_waits_as_medium_not_below_low() -> None:
    h = limited(1)
    blocker = await h.submit(plan(step("A")))
    low = await h.submit(prioritised(P.PRIORITY_LOW))
    unset = await h.submit(plan(step("A")))
    assert await started_order(h, [blocker, low, unset]) == [blocker, unset, low]


async def test_aging_lifts_a_waiting_low_execution_above_later_high_ones() -> None:
    h = limited(1, aging=10.0)
    blocker = await h.submit(plan(step("A")))
    low = await h.submit(prioritised(P.PRIORITY_LOW))
    h.clock.advance(25.0)  # low has waited two aging periods: it competes as HIGH
    high = await h.submit(prioritised(P.PRIORITY_HIGH))
    assert await h.engine.queue_position(low) == 1
    assert await started_order(h, [blocker, low, high]) == [blocker, low, high]


async def test_a_queued_execution_can_be_cancelled_and_nothing_of_it_runs() -> None:
    h = limited(1)
    running = await h.submit(plan(step("A")))
    queued = await h.submit(plan(step("A")))
    await h.engine.cancel(queued, "not needed")
    assert h.status(queued) == E.EXECUTION_STATE_CANCELLED
    await h.run(running)
    await h.settle()
    assert [c.call.idempotency_key.split("/")[0] for c in h.caller.calls] == [running]
    assert await h.store.count_waiting() == 0


async def test_pause_of_a_queued_execution_fails_naming_its_queue_position() -> None:
    h = limited(1)
    await h.submit(plan(step("A")))
    queued = await h.submit(plan(step("A")))
    with pytest.raises(ExecutionStateError, match="queue"):
        await h.engine.pause(queued, "later")


async def test_queued_executions_survive_a_restart_and_start_in_order() -> None:
    h = limited(1)
    ids = [await h.submit(prioritised(p)) for p in (P.PRIORITY_LOW, P.PRIORITY_LOW, P.PRIORITY_CRITICAL)]
    await h.restart()
    assert await started_order(h, ids) == [ids[0], ids[2], ids[1]]
