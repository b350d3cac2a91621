"""Nothing an execution does can kill its runner for good, and nothing stored can stop the engine."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P

from server.engine import EngineConfig, render
from tests.unit.engine_support import Harness, plan, step, w_plan
from tests.unit.fakes import START, MemoryStore, unavailable


def _conditional(condition: str) -> P.WorkflowStep:
    s = step("B", "A")
    s.timing.scheduling = P.SCHEDULING_CONDITIONAL
    s.timing.condition = condition
    return s


@pytest.mark.parametrize(
    "condition",
    [
        "`[1,2]`[::0]",  # JMESPath raises a plain ValueError
        "!" * 488 + "`true`",  # RecursionError
    ],
)
async def test_a_condition_that_raises_fails_its_step_once_without_killing_the_runner(condition: str) -> None:
    h = Harness()
    ex = await h.submit(plan(step("A"), _conditional(condition), step("C", "B")))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.end_cause == E.END_CAUSE_STEP_FAILED
    assert [c.call.idempotency_key for c in h.caller.calls] == [f"{ex}/A"]  # A's call was sent once
    assert h.kinds(ex).count("step_succeeded") == 1
    errors = render(state).error_summary.error_details
    assert any(e.step_id == "B" and e.error_type == "EXPRESSION_ERROR" for e in errors)


async def test_an_input_expression_that_raises_is_the_steps_recorded_failure() -> None:
    h = Harness()
    ex = await h.submit(plan(step("A", config={"user_id": "${`[1,2]`[::0]}"})))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert h.caller.calls == []
    kinds = ["execution_started", "step_started", "step_attempt_failed", "step_failed", "execution_failed"]
    assert h.kinds(ex) == kinds


class FlakyStore(MemoryStore):
    """Fails the next `failures` appends, as a full disk would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    async def append(self, execution_id: str, events: Sequence[E.ExecutionEvent], state: int) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise OSError("disk full")
        await super().append(execution_id, events, state)


async def test_a_runner_that_keeps_dying_is_restarted_then_the_execution_is_failed_with_an_internal_cause() -> None:
    h = Harness(store=FlakyStore(failures=3), config=EngineConfig(restart_delays=(1.0, 2.0)))
    ex = await h.submit(w_plan())
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.end_cause == E.END_CAUSE_INTERNAL_ERROR
    assert h.clock.now() == START + timedelta(seconds=3)  # died at 0, 1 and 3 s; then failed at once
    assert h.engine.active == 0


async def test_a_runner_that_cannot_even_fail_the_execution_has_it_quarantined() -> None:
    h = Harness(store=FlakyStore(failures=100), config=EngineConfig(restart_delays=(1.0,)))
    ex = await h.submit(w_plan())
    for _ in range(10):
        await h.settle()
        wake = h.clock.next_wake()
        if wake is None:
            break
        h.clock.advance_to(wake)
    assert "its runner kept failing" in h.store.records[ex].quarantine_error
    assert h.status(ex) == E.EXECUTION_STATE_FAILED
    assert h.engine.active == 0


async def test_the_deadline_of_a_parked_execution_is_enforced_by_the_engine_timer() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", unavailable())
    ex = await h.submit(plan(step("A", retries=1), initial_backoff=1000.0, max_backoff=1000.0), execution_timeout=60)
    await h.settle()
    assert h.engine.active == 0 and h.engine.parked == 1  # waiting for its retry, holding no task
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.end_cause == E.END_CAUSE_TIMEOUT
    assert h.clock.now() == START + timedelta(seconds=60)
    assert len(h.caller.calls) == 1


async def test_a_poisoned_history_is_quarantined_at_recovery_and_the_others_run() -> None:
    h = Harness(latency=1.0)
    poisoned = await h.submit(w_plan())
    healthy = await h.submit(w_plan())
    await h.settle()
    await h.engine.close()
    bad = E.ExecutionEvent(sequence=len(h.store.events[poisoned]) + 1)
    bad.step_started.step_id = "no-such-step"
    h.store.write_raw(poisoned, bad.SerializeToString())
    await h.restart()
    state = await h.run(healthy)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    await h.settle()
    assert "no-such-step" in h.store.records[poisoned].quarantine_error
    assert h.status(poisoned) == E.EXECUTION_STATE_FAILED


class PauseFailingStore(MemoryStore):
    """Fails the append that records a pause, as PostgreSQL did for text it cannot hold."""

    async def append(self, execution_id: str, events: Sequence[E.ExecutionEvent], state: int) -> None:
        if any(event.HasField("execution_paused") for event in events):
            raise ValueError("invalid byte sequence for encoding UTF8: 0x00")
        await super().append(execution_id, events, state)


async def test_a_command_whose_events_cannot_be_stored_is_answered_with_the_failure_not_left_waiting() -> None:
    h = Harness(store=PauseFailingStore(), latency=10.0)
    ex = await h.submit(w_plan())
    await h.settle()

    with pytest.raises(RuntimeError, match="runner died"):
        await asyncio.wait_for(h.engine.pause(ex, "pause"), timeout=2)
