"""The terminal callback in the engine: recorded by the decision that ends, folded after the end."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest
from baton.v1 import execution_pb2 as E

from server.engine import FoldError, apply, decide, fold, render
from server.engine.callback import delivery_id_of
from server.engine.inbox import Cancel, Outcome
from tests.unit.engine_support import plan, started_event, step
from tests.unit.fakes import START, reply

URL = "https://hooks.example/baton"


def _rng() -> float:
    return 0.5


def _started(callback_url: str = URL) -> E.ExecutionEvent:
    event = started_event(plan(step("A")))
    event.execution_started.callback_url = callback_url
    return event


def _kinds(events: list[E.ExecutionEvent]) -> list[str]:
    return [e.WhichOneof("kind") or "" for e in events]


def _outcome(sequence: int, kind: str, delivery_id: str, seconds: float = 30) -> E.ExecutionEvent:
    event = E.ExecutionEvent(sequence=sequence)
    event.time.FromDatetime(START + timedelta(seconds=seconds))
    body = E.CallbackDelivered if kind == "callback_delivered" else E.CallbackFailed
    getattr(event, kind).CopyFrom(body(delivery_id=delivery_id, attempts=2, detail="HTTP 204"))
    return event


def test_the_decision_that_ends_records_the_callback_right_after_the_terminal_event() -> None:
    state = fold("ex", [_started()])
    decide(state, START, rng=_rng)
    ended = decide(state, START + timedelta(seconds=1), [Outcome("A", 1, reply({}))], rng=_rng, callback_deadline=60)
    assert _kinds(ended.events)[-2:] == ["execution_completed", "callback_scheduled"]
    scheduled = ended.events[-1].callback_scheduled
    assert (scheduled.delivery_id, scheduled.callback_url) == (delivery_id_of("ex"), URL)
    assert scheduled.deadline.ToDatetime(tzinfo=UTC) == START + timedelta(seconds=61)
    assert state.callback is not None and state.callback.state == E.CALLBACK_STATE_PENDING


def test_a_cancel_records_the_callback_and_a_cancel_after_the_end_records_nothing() -> None:
    state = fold("ex", [_started()])
    cancelled = decide(state, START, [Cancel("stop", None)], rng=_rng)
    assert _kinds(cancelled.events) == ["execution_cancelled", "callback_scheduled"]
    assert decide(state, START, [Cancel("again", None)], rng=_rng).events == []


def test_an_execution_without_a_callback_url_records_no_callback() -> None:
    state = fold("ex", [_started(callback_url="")])
    decision = decide(state, START, [Cancel("stop", None)], rng=_rng)
    assert _kinds(decision.events) == ["execution_cancelled"]
    assert not render(state).HasField("callback")


def test_the_outcome_sets_the_report_and_leaves_the_end_as_it_was() -> None:
    state = fold("ex", [_started()])
    events = decide(state, START + timedelta(seconds=5), [Cancel("stop", None)], rng=_rng).events
    before = render(state)
    apply(state, _outcome(state.last_sequence + 1, "callback_delivered", delivery_id_of("ex")))
    after = render(state)
    assert after.callback.state == E.CALLBACK_STATE_DELIVERED
    assert (after.callback.attempts, after.callback.detail) == (2, "HTTP 204")
    assert after.callback.deadline == before.callback.deadline
    assert after.performance_metrics == before.performance_metrics  # its times are the run's
    assert (after.status, after.last_sequence) == (E.EXECUTION_STATE_CANCELLED, len(events) + 2)


@pytest.mark.parametrize("kind", ["callback_delivered", "callback_failed"])
def test_an_outcome_of_no_pending_callback_is_refused(kind: str) -> None:
    state = fold("ex", [_started()])
    decide(state, START, [Cancel("stop", None)], rng=_rng)
    with pytest.raises(FoldError, match="not pending"):
        apply(state, _outcome(state.last_sequence + 1, kind, "another-delivery"))
    apply(state, _outcome(state.last_sequence + 1, kind, delivery_id_of("ex")))
    with pytest.raises(FoldError, match="not pending"):
        apply(state, _outcome(state.last_sequence + 1, kind, delivery_id_of("ex")))


def test_callback_events_before_the_end_are_refused_and_nothing_else_follows_the_end() -> None:
    state = fold("ex", [_started()])
    early = E.ExecutionEvent(sequence=2, callback_scheduled=E.CallbackScheduled(delivery_id="d"))
    with pytest.raises(FoldError, match="not allowed while the execution"):
        apply(state, early)
    decide(state, START, [Cancel("stop", None)], rng=_rng)
    late = E.ExecutionEvent(sequence=state.last_sequence + 1, execution_paused=E.ExecutionPaused())
    with pytest.raises(FoldError, match="after the terminal event"):
        apply(state, late)
