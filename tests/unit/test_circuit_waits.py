"""A step that meets an open circuit breaker waits, durably, for the breaker's probe time instead
of spending its attempts; jitter is on unless a plan turns it off (issue 11.3)."""

from __future__ import annotations

import itertools

from baton.v1 import execution_pb2, plan_pb2

from server.engine.model import DEFAULT_JITTER, DEFAULT_MAX_CIRCUIT_WAITS, RetryPolicy
from server.engine.ports import AgentCallError
from tests.unit.engine_support import Harness, plan, step
from tests.unit.fakes import reply, unavailable

E = execution_pb2
P = plan_pb2


def circuit_open(retry_after: float | None = 30.0) -> AgentCallError:
    return AgentCallError("CIRCUIT_OPEN", "breaker open", retryable=True, retry_after=retry_after)


def _gaps(h: Harness) -> list[float]:
    calls = h.caller.calls
    return [(b.at - a.at).total_seconds() for a, b in itertools.pairwise(calls)]


def _failed_attempts(h: Harness, ex: str) -> list[E.StepAttemptFailed]:
    return [e.step_attempt_failed for e in h.store.events[ex] if e.WhichOneof("kind") == "step_attempt_failed"]


async def test_a_step_that_meets_an_open_breaker_waits_for_its_probe_time_without_spending_an_attempt() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", circuit_open(30.0), circuit_open(12.0), reply({}))
    ex = await h.submit(plan(step("A", retries=0)))  # not one retry to spend
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    first, second = _gaps(h)
    assert 30.0 <= first <= 30.0 * (1 + DEFAULT_JITTER)  # after the probe time, spread by the jitter
    assert 12.0 <= second <= 12.0 * (1 + DEFAULT_JITTER)
    assert [f.circuit_wait for f in _failed_attempts(h, ex)] == [True, True]
    assert [c.call.retry for c in h.caller.calls] == [False, False, False]  # never a retry: nothing was sent


async def test_a_retry_that_meets_an_open_breaker_keeps_its_remaining_attempts() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", unavailable(), circuit_open(5.0), circuit_open(5.0), reply({}))
    ex = await h.submit(plan(step("A", retries=1)))
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    assert [c.call.retry for c in h.caller.calls] == [False, True, True, True]
    assert [f.circuit_wait for f in _failed_attempts(h, ex)] == [False, True, True]


async def test_circuit_waits_are_bounded_by_max_circuit_waits_and_then_spend_attempts() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", *[circuit_open(5.0)] * 10)
    ex = await h.submit(plan(step("A", retries=1), max_circuit_waits=2))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert [f.circuit_wait for f in _failed_attempts(h, ex)] == [True, True, False, False]
    assert state.errors[-1].error_type == "CIRCUIT_OPEN"


async def test_max_circuit_waits_zero_makes_an_open_breaker_an_ordinary_failed_attempt() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", circuit_open(30.0))
    ex = await h.submit(plan(step("A", retries=0), max_circuit_waits=0))
    assert (await h.run(ex)).status == E.EXECUTION_STATE_FAILED
    assert len(h.caller.calls) == 1


async def test_an_optional_step_of_a_degraded_plan_is_skipped_at_once_on_an_open_breaker() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", circuit_open(30.0))
    p = plan(step("A", retries=3, optional=True), step("B", "A", agent="ui_ux", operation="Notify"))
    p.execution_strategy.fallback_strategy.degraded_mode = True
    ex = await h.submit(p)
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert state.steps["A"].skip_cause == E.SKIP_CAUSE_DEGRADED
    assert len(h.caller.calls_to("analytics")) == 1
    assert h.caller.calls[1].at == h.caller.calls[0].at  # no wait at all


async def test_a_probe_time_past_the_execution_deadline_is_not_waited_for() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", circuit_open(30.0))
    ex = await h.submit(plan(step("A", retries=0)), execution_timeout=20)
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.errors[-1].error_type == "CIRCUIT_OPEN"  # it failed on the breaker, not on time
    assert not _failed_attempts(h, ex)[0].circuit_wait


async def test_a_circuit_wait_is_durable_across_a_restart() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", circuit_open(60.0), reply({}))
    ex = await h.submit(plan(step("A", retries=0), jitter=0.0))
    await h.settle()
    await h.engine.close()
    h.clock.advance(45)
    await h.restart()
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    assert _gaps(h) == [60.0]


async def test_a_refusal_without_a_probe_time_waits_the_first_backoff() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", circuit_open(None), reply({}))
    ex = await h.submit(plan(step("A", retries=0), initial_backoff=2.0, jitter=0.0))
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    assert _gaps(h) == [2.0]


async def test_a_retry_budget_refusal_spends_the_attempt() -> None:
    h = Harness()
    budget = AgentCallError("RETRY_BUDGET_EXHAUSTED", "spent", retryable=True)
    h.caller.script("analytics", "RecordEvents", unavailable(), budget)
    ex = await h.submit(plan(step("A", retries=1)))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.errors[-1].error_type == "RETRY_BUDGET_EXHAUSTED"
    assert not any(f.circuit_wait for f in _failed_attempts(h, ex))


def test_jitter_is_on_when_the_plan_leaves_it_unset_and_off_when_set_to_zero() -> None:
    assert RetryPolicy.from_proto(P.RetryPolicy()).jitter == DEFAULT_JITTER == 0.2
    assert RetryPolicy.from_proto(P.RetryPolicy(jitter=0.0)).jitter == 0.0
    assert RetryPolicy.from_proto(P.RetryPolicy(jitter=0.5)).jitter == 0.5
    assert RetryPolicy.from_proto(P.RetryPolicy()).max_circuit_waits == DEFAULT_MAX_CIRCUIT_WAITS == 2
    assert RetryPolicy.from_proto(P.RetryPolicy(max_circuit_waits=0)).max_circuit_waits == 0


async def test_with_the_default_jitter_the_retries_of_many_executions_spread_out() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", *[lambda call: reply({}) if call.retry else unavailable()] * 20)
    executions = [await h.submit(plan(step("A", retries=1), initial_backoff=1.0)) for _ in range(10)]
    for ex in executions:
        await h.run(ex)
    retries = sorted({c.at for c in h.caller.calls if c.call.retry})
    assert len(retries) == 10  # no two retries in the same instant
    assert all(0.8 <= (t - h.caller.calls[0].at).total_seconds() <= 1.2 for t in retries)
