"""The fold's transition table: what each execution and step phase allows, and the guards."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P
from google.protobuf import any_pb2, struct_pb2
from google.protobuf.message import Message

from server.engine import ExecutionState, FoldError, Phase, apply, fold
from server.engine.fold import start
from tests.unit.engine_support import plan, started_event, step
from tests.unit.fakes import START


class History:
    """Builds a history event by event, applying each as it goes."""

    def __init__(self, p: P.OrchestrationPlan | None = None) -> None:
        self.events = [started_event(p)]
        self.state: ExecutionState = start(self.events[0], "ex")

    def event(self, kind: str, body: Message) -> E.ExecutionEvent:
        event = E.ExecutionEvent(sequence=self.state.last_sequence + 1)
        event.time.FromDatetime(START)
        getattr(event, kind).CopyFrom(body)
        return event

    def add(self, kind: str, body: Message) -> History:
        event = self.event(kind, body)
        apply(self.state, event)
        self.events.append(event)
        return self

    def refuses(self, kind: str, body: Message, match: str) -> None:
        before = (self.state.last_sequence, {sid: r.phase for sid, r in self.state.steps.items()}, self.state.status)
        with pytest.raises(FoldError, match=match):
            apply(self.state, self.event(kind, body))
        after = (self.state.last_sequence, {sid: r.phase for sid, r in self.state.steps.items()}, self.state.status)
        assert after == before, "a refused event must leave the state as it was"


def _output() -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(struct_pb2.Struct())
    return packed


def started(sid: str, attempt: int = 1) -> E.StepStarted:
    return E.StepStarted(step_id=sid, attempt=attempt, agent="analytics", operation="RecordEvents")


def succeeded(sid: str, attempt: int = 1) -> E.StepSucceeded:
    return E.StepSucceeded(step_id=sid, attempt=attempt, output=_output())


def test_a_step_moves_through_its_phases_in_order() -> None:
    h = History()
    assert h.state.steps["A"].phase == Phase.PENDING
    h.add("step_started", started("A"))
    assert h.state.steps["A"].phase == Phase.IN_FLIGHT
    assert h.state.status == E.EXECUTION_STATE_RUNNING
    failed = E.StepAttemptFailed(step_id="A", attempt=1, error_type="UNAVAILABLE")
    failed.retry_at.FromDatetime(START + timedelta(seconds=1))
    h.add("step_attempt_failed", failed)
    assert h.state.steps["A"].phase == Phase.BACKOFF
    assert h.state.steps["A"].due == START + timedelta(seconds=1)
    h.add("step_started", started("A", 2)).add("step_succeeded", succeeded("A", 2))
    assert h.state.steps["A"].phase == Phase.COMPLETED
    assert h.state.steps["A"].state == E.STEP_STATE_COMPLETED


def test_no_event_is_accepted_after_the_terminal_event() -> None:
    h = History().add("execution_cancelled", E.ExecutionCancelled(reason="r"))
    assert h.state.terminal
    h.refuses("step_started", started("A"), "step_started is not allowed after the terminal event")
    h.refuses("execution_completed", E.ExecutionCompleted(), "after the terminal event")


def test_a_stale_outcome_of_an_older_attempt_is_refused() -> None:
    h = History().add("step_started", started("A"))
    failed = E.StepAttemptFailed(step_id="A", attempt=1, error_type="UNAVAILABLE")
    failed.retry_at.FromDatetime(START)
    h.add("step_attempt_failed", failed).add("step_started", started("A", 2))
    h.refuses("step_succeeded", succeeded("A", 1), "names attempt 1, expected 2")


def test_an_outcome_for_a_step_that_is_not_in_flight_is_refused_naming_its_phase() -> None:
    h = History()
    h.refuses("step_succeeded", succeeded("A"), "step_succeeded is not allowed for step A in phase pending")


def test_an_event_naming_an_unknown_step_is_refused() -> None:
    History().refuses("step_started", started("nope"), "names unknown step 'nope'")


def test_a_resume_is_refused_unless_the_execution_is_paused() -> None:
    h = History()
    h.refuses(
        "execution_resumed", E.ExecutionResumed(), "execution_resumed is not allowed while the execution is queued"
    )


def test_while_paused_no_step_starts_but_outcomes_of_calls_in_flight_are_recorded() -> None:
    h = History().add("step_started", started("A")).add("execution_paused", E.ExecutionPaused(reason="r"))
    assert h.state.status == E.EXECUTION_STATE_PAUSED
    h.refuses("step_started", started("B"), "step_started is not allowed while the execution is paused")
    h.add("step_succeeded", succeeded("A"))
    resumed = E.ExecutionResumed()
    resumed.deadline.FromDatetime(START + timedelta(seconds=900))
    h.add("execution_resumed", resumed)
    assert h.state.status == E.EXECUTION_STATE_RUNNING
    assert h.state.deadline == START + timedelta(seconds=900)


def test_compensation_events_are_refused_unless_the_execution_unwinds() -> None:
    h = History().add("step_started", started("A")).add("step_succeeded", succeeded("A"))
    h.refuses(
        "compensation_started",
        E.CompensationStarted(step_id="A", attempt=1),
        "compensation_started is not allowed while the execution is running",
    )


def test_unwinding_allows_compensation_and_then_the_end_but_no_new_step() -> None:
    h = History().add("step_started", started("A")).add("step_succeeded", succeeded("A"))
    unwinding = E.ExecutionUnwinding(outcome=E.EXECUTION_STATE_FAILED, cause=E.END_CAUSE_STEP_FAILED, reason="r")
    h.add("execution_unwinding", unwinding)
    assert h.state.status == E.EXECUTION_STATE_COMPENSATING
    h.refuses("step_started", started("B"), "while unwinding, not in doubt")
    h.refuses("compensation_succeeded", E.CompensationSucceeded(step_id="A", attempt=1), "no compensation in flight")
    h.add("compensation_started", E.CompensationStarted(step_id="A", attempt=1, agent="automation"))
    h.refuses("compensation_started", E.CompensationStarted(step_id="A", attempt=2), "already")
    h.add("compensation_succeeded", E.CompensationSucceeded(step_id="A", attempt=1))
    h.add("execution_failed", E.ExecutionFailed(reason="r", cause=E.END_CAUSE_STEP_FAILED))
    assert h.state.status == E.EXECUTION_STATE_FAILED
    assert h.state.steps["A"].compensation is not None
    assert h.state.steps["A"].compensation.state == E.COMPENSATION_STATE_SUCCEEDED
    assert h.state.steps["B"].skip_cause == E.SKIP_CAUSE_EXECUTION_ENDED


def test_a_refusal_clears_the_doubt_that_a_timed_out_attempt_left() -> None:
    h = History().add("step_started", started("A"))
    failed = E.StepAttemptFailed(step_id="A", attempt=1, error_type="DEADLINE_EXCEEDED")
    failed.retry_at.FromDatetime(START)
    h.add("step_attempt_failed", failed)
    assert h.state.steps["A"].in_doubt
    h.add("step_started", started("A", 2))
    h.add("step_attempt_failed", E.StepAttemptFailed(step_id="A", attempt=2, error_type="CIRCUIT_OPEN"))
    assert h.state.steps["A"].in_doubt, "a call that was never sent leaves the earlier doubt"
    h2 = History().add("step_started", started("A"))
    h2.add("step_attempt_failed", E.StepAttemptFailed(step_id="A", attempt=1, error_type="INVALID_ARGUMENT"))
    assert not h2.state.steps["A"].in_doubt


def test_an_event_of_an_unknown_kind_is_counted_and_ignored() -> None:
    h = History()
    unknown = E.ExecutionEvent(sequence=2)
    apply(h.state, unknown)
    assert h.state.last_sequence == 2
    assert h.state.status == E.EXECUTION_STATE_QUEUED


def test_a_gap_in_the_sequence_is_refused() -> None:
    h = History()
    with pytest.raises(FoldError, match="event 3 follows 1"):
        apply(h.state, E.ExecutionEvent(sequence=3, step_started=started("A")))


def test_a_history_that_does_not_start_with_execution_started_is_refused() -> None:
    with pytest.raises(FoldError, match="first event is step_started"):
        fold("ex", [E.ExecutionEvent(sequence=1, step_started=started("A"))])


def _approval_plan() -> P.OrchestrationPlan:
    approve = P.WorkflowStep(step_id="ok", kind=P.STEP_KIND_APPROVAL)
    return plan(step("A"), approve, step("B", "ok"))


@pytest.mark.parametrize(
    ("signal", "payload", "check"),
    [
        (E.SIGNAL_APPROVE, {"job_ids": ["j1"]}, lambda s: s.steps["ok"].output_json() == {"job_ids": ["j1"]}),
        (E.SIGNAL_INPUT, {"note": "x"}, lambda s: s.steps["ok"].wait.data == {"job_ids": ["j1", "j2"], "note": "x"}),
        (E.SIGNAL_REJECT, {}, lambda s: s.steps["ok"].wait.rejected),
    ],
)
def test_a_signal_to_a_waiting_approval_completes_it_merges_input_or_marks_it_rejected(
    signal: int, payload: dict[str, object], check: Callable[[ExecutionState], bool]
) -> None:
    h = History(_approval_plan())
    waiting = E.StepWaiting(step_id="ok", kind=E.WAIT_KIND_APPROVAL)
    waiting.data.update({"job_ids": ["j1", "j2"]})
    h.add("step_waiting", waiting)
    assert h.state.steps["ok"].state == E.STEP_STATE_WAITING
    received = E.SignalReceived(step_id="ok", signal=signal)  # type: ignore[arg-type]
    received.payload.update(payload)
    h.add("signal_received", received)
    assert check(h.state)


def test_a_signal_for_a_step_that_does_not_wait_is_refused() -> None:
    History(_approval_plan()).refuses(
        "signal_received", E.SignalReceived(step_id="ok", signal=E.SIGNAL_APPROVE), "in phase pending"
    )
