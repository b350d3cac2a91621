"""`decide` driven directly: a pure function from (state, now, inbox) to events and launches."""

from __future__ import annotations

from datetime import timedelta

from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P

from server.engine import AgentCallError, ExecutionState, decide, fold
from server.engine.inbox import Cancel, Outcome, Pause, Resume
from tests.unit.engine_support import plan, started_event, step, submit_step
from tests.unit.fakes import START, reply


def _state(p: P.OrchestrationPlan) -> ExecutionState:
    return fold("ex", [started_event(p)])


def _rng() -> float:
    return 0.5


def _kinds(events: list[E.ExecutionEvent]) -> list[str]:
    return [e.WhichOneof("kind") or "" for e in events]


def test_the_first_decision_starts_the_ready_steps_with_one_key_per_step() -> None:
    state = _state(plan(step("A"), step("B"), step("C", "A", "B")))
    decision = decide(state, START, rng=_rng)
    assert _kinds(decision.events) == ["step_started", "step_started"]
    assert [(launch.call.idempotency_key, launch.call.attempt) for launch in decision.launches] == [
        ("ex/A", 1),
        ("ex/B", 1),
    ]
    assert [e.sequence for e in decision.events] == [2, 3]
    assert state.last_sequence == 3  # the events are applied as they are decided
    assert decision.wake_at == START + timedelta(seconds=600)  # the deadline, nothing sooner


def test_the_same_inputs_give_the_same_decision() -> None:
    p = plan(step("A", retries=2), step("B", "A"), jitter=0.5)
    outcome = Outcome("A", 1, AgentCallError("UNAVAILABLE", "down", retryable=True))
    runs = []
    for _ in range(2):
        state = _state(p)
        decide(state, START, rng=_rng)
        runs.append(decide(state, START + timedelta(seconds=1), [outcome], rng=_rng))
    assert runs[0].events == runs[1].events
    assert runs[0].wake_at == runs[1].wake_at


def test_a_retryable_failure_records_when_the_retry_is_due_and_wakes_then() -> None:
    state = _state(plan(step("A", retries=1), initial_backoff=2.0))
    decide(state, START, rng=_rng)
    failure = Outcome("A", 1, AgentCallError("UNAVAILABLE", "down", retryable=True))
    decision = decide(state, START, [failure], rng=_rng)
    assert _kinds(decision.events) == ["step_attempt_failed"]
    assert decision.launches == []
    assert decision.wake_at == START + timedelta(seconds=2)
    retry = decide(state, START + timedelta(seconds=2), rng=_rng)
    assert [(launch.call.idempotency_key, launch.call.attempt) for launch in retry.launches] == [("ex/A", 2)]


def test_an_outcome_of_an_older_attempt_is_ignored() -> None:
    state = _state(plan(step("A", retries=1), initial_backoff=1.0))
    decide(state, START, rng=_rng)
    decide(state, START, [Outcome("A", 1, AgentCallError("UNAVAILABLE", "x", retryable=True))], rng=_rng)
    decide(state, START + timedelta(seconds=1), rng=_rng)  # attempt 2 starts
    late = decide(state, START + timedelta(seconds=1), [Outcome("A", 1, reply({}))], rng=_rng)
    assert late.events == []


def test_relaunch_issues_an_attempt_in_flight_again_with_its_key_and_records_nothing() -> None:
    state = _state(plan(step("A")))
    decide(state, START, rng=_rng)
    decision = decide(state, START + timedelta(seconds=5), relaunch=True, rng=_rng)
    assert decision.events == []
    assert [(launch.call.idempotency_key, launch.call.attempt) for launch in decision.launches] == [("ex/A", 1)]


def test_a_cancel_with_a_completed_compensable_step_unwinds_and_launches_its_compensation() -> None:
    state = _state(plan(submit_step(), step("B", "submit")))
    decide(state, START, rng=_rng)
    done = Outcome("submit", 1, reply({"applications": [{"application_id": "app-1"}]}))
    decide(state, START, [done], rng=_rng)
    decision = decide(state, START, [Cancel("stop")], rng=_rng)
    assert _kinds(decision.events) == ["execution_unwinding", "compensation_started"]
    (launch,) = decision.launches
    assert launch.compensation and not launch.call.use_breaker
    assert launch.call.idempotency_key == "ex/submit/compensate"
    assert launch.call.payload == {"user_id": "u1", "application_ids": ["app-1"]}
    assert state.status == E.EXECUTION_STATE_COMPENSATING
    finished = decide(state, START, [Outcome("submit", 1, reply({}), compensation=True)], rng=_rng)
    assert _kinds(finished.events) == ["compensation_succeeded", "execution_cancelled"]
    assert state.end_cause == E.END_CAUSE_CANCELLED


def test_a_cancel_with_nothing_to_undo_ends_at_once() -> None:
    state = _state(plan(step("A")))
    decision = decide(state, START, [Cancel("stop")], rng=_rng)
    assert _kinds(decision.events) == ["execution_cancelled"]


def test_commands_the_state_forbids_are_refused_naming_it_and_record_nothing() -> None:
    state = _state(plan(step("A")))
    decision = decide(state, START, [Resume("r"), Pause("p"), Pause("again")], rng=_rng)
    assert decision.refused == {0: "execution ex is queued, not paused", 2: "execution ex is paused"}
    assert _kinds(decision.events) == ["execution_paused"]
    assert decision.launches == [] and decision.wake_at is None


def test_the_deadline_unwinds_a_running_execution() -> None:
    state = _state(plan(step("A")))
    decide(state, START, rng=_rng)
    decision = decide(state, START + timedelta(seconds=600), rng=_rng)
    assert _kinds(decision.events) == ["execution_failed"]
    assert state.end_cause == E.END_CAUSE_TIMEOUT
