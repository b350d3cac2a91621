"""Approvals, escalations, signals, pause and resume; waiting executions are parked, not sleeping tasks."""

from __future__ import annotations

from datetime import timedelta

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P

from server.engine import ExecutionStateError, SignalCommand, render
from server.store.base import ExecutionNotFoundError
from tests.unit.engine_support import Harness, approval_step, plan, step, submit_step, w_plan
from tests.unit.fakes import START, reply

JOBS = {"job_ids": ["j1", "j2", "j3"], "note": "the best three"}


def _approval_plan(**kw: object) -> P.OrchestrationPlan:
    return plan(
        step("screen"),
        approval_step("ok", "screen", data=JOBS, **kw),  # type: ignore[arg-type]
        submit_step("submit", "ok", job_ids="${steps.ok.job_ids}"),
    )


async def test_an_approval_step_waits_parked_with_no_task_and_approving_a_narrowed_list_applies_only_that() -> None:
    h = Harness()
    fleet = h.use_fleet()
    ex = await h.submit(_approval_plan(), execution_timeout=7200)
    await h.settle()
    status = render(h.state(ex))
    assert [(w.step_id, w.kind) for w in status.waiting] == [("ok", E.WAIT_KIND_APPROVAL)]
    assert dict(status.waiting[0].data)["job_ids"] == ["j1", "j2", "j3"]
    assert status.waiting[0].timeout_at.ToDatetime().replace(tzinfo=START.tzinfo) == START + timedelta(hours=1)
    assert h.engine.active == 0 and h.engine.parked == 1  # stored state, not a sleeping task
    assert h.store.parked(ex) == (True, START + timedelta(hours=1))
    await h.engine.signal(ex, SignalCommand(E.SIGNAL_APPROVE, payload={"job_ids": ["j2"]}, reason="just one"))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert [a.job_id for a in fleet.live()] == ["j2"]
    assert state.steps["ok"].output_json() == {"job_ids": ["j2"], "note": "the best three"}


async def test_rejecting_an_approval_cancels_the_execution_and_nothing_is_submitted() -> None:
    h = Harness()
    fleet = h.use_fleet()
    ex = await h.submit(_approval_plan())
    await h.settle()
    await h.engine.signal(ex, SignalCommand(E.SIGNAL_REJECT, reason="not now"))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_CANCELLED
    assert state.end_cause == E.END_CAUSE_REJECTED
    assert "approval ok rejected: not now" in state.failure_reason
    assert fleet.applications == {}


async def test_rejecting_after_an_earlier_step_submitted_withdraws_what_it_submitted() -> None:
    h = Harness()
    fleet = h.use_fleet()
    ex = await h.submit(plan(submit_step("first", job_ids="j1"), approval_step("ok", "first", data=JOBS)))
    await h.settle()
    assert len(fleet.live()) == 1
    await h.engine.signal(ex, SignalCommand(E.SIGNAL_REJECT))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_CANCELLED
    assert fleet.live() == []


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"job_ids": ["j9"]}, "payload.job_ids: 'j9' was not among those shown"),
        ({"job_ids": []}, "payload.job_ids: must be a non-empty list"),
        ({"note": "x"}, "payload.note: only lists can be narrowed"),
        ({"other": [1]}, "payload.other: the step shows no 'other'"),
    ],
)
async def test_an_approve_payload_may_only_narrow_what_the_step_shows(payload: dict[str, object], message: str) -> None:
    h = Harness()
    h.use_fleet()
    ex = await h.submit(_approval_plan())
    await h.settle()
    with pytest.raises(ExecutionStateError, match=message):
        await h.engine.signal(ex, SignalCommand(E.SIGNAL_APPROVE, payload=payload))
    assert h.state(ex).steps["ok"].phase.value == "waiting"


async def test_input_merges_into_the_waiting_steps_data_without_deciding() -> None:
    h = Harness()
    h.use_fleet()
    ex = await h.submit(_approval_plan())
    await h.settle()
    await h.engine.signal(ex, SignalCommand(E.SIGNAL_INPUT, payload={"cover_note": "hello"}))
    await h.settle()
    status = render(h.state(ex))
    assert dict(status.waiting[0].data)["cover_note"] == "hello"
    assert h.engine.parked == 1


async def test_signals_that_do_not_fit_the_state_are_refused_naming_it() -> None:
    h = Harness()
    ex = await h.submit(w_plan())
    with pytest.raises(ExecutionStateError, match="no step of execution ex-1 waits for a signal"):
        await h.engine.signal(ex, SignalCommand(E.SIGNAL_APPROVE))
    await h.run(ex)
    with pytest.raises(ExecutionStateError, match="execution ex-1 is completed"):
        await h.engine.signal(ex, SignalCommand(E.SIGNAL_APPROVE))
    with pytest.raises(ExecutionStateError, match="execution ex-1 is completed"):
        await h.engine.pause(ex, "r")
    with pytest.raises(ExecutionNotFoundError):
        await h.engine.pause("nope", "r")
    await h.engine.cancel(ex, "late")  # cancelling a finished execution does nothing
    assert h.status(ex) == E.EXECUTION_STATE_COMPLETED


@pytest.mark.parametrize(
    ("action", "status", "b_ran"),
    [
        (P.APPROVAL_TIMEOUT_ACTION_FAIL, E.EXECUTION_STATE_FAILED, False),
        (P.APPROVAL_TIMEOUT_ACTION_SKIP, E.EXECUTION_STATE_COMPLETED, True),
        (P.APPROVAL_TIMEOUT_ACTION_APPROVE, E.EXECUTION_STATE_COMPLETED, True),
    ],
)
async def test_an_unanswered_approval_acts_at_its_timeout(action: int, status: int, b_ran: bool) -> None:
    h = Harness()
    ex = await h.submit(
        plan(approval_step("ok", data=JOBS, timeout=60.0, on_timeout=action), step("B", "ok")),
        execution_timeout=3600,
    )
    state = await h.run(ex)
    assert state.status == status
    assert state.current_time.ToDatetime().replace(tzinfo=START.tzinfo) == START + timedelta(seconds=60)
    assert bool(h.caller.calls) == b_ran
    if action == P.APPROVAL_TIMEOUT_ACTION_FAIL:
        assert state.end_cause == E.END_CAUSE_APPROVAL_TIMEOUT


async def test_a_waiting_approval_survives_a_restart_and_finishes_after_approve() -> None:
    h = Harness()
    fleet = h.use_fleet()
    ex = await h.submit(_approval_plan())
    await h.settle()
    await h.restart()
    await h.settle()
    assert h.engine.active == 0 and h.engine.parked == 1
    await h.engine.signal(ex, SignalCommand(E.SIGNAL_APPROVE))
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    assert sorted(a.job_id for a in fleet.live()) == ["j1", "j2", "j3"]


async def test_pause_lets_calls_in_flight_finish_starts_nothing_new_and_resume_continues() -> None:
    h = Harness(latency=1.0)
    ex = await h.submit(w_plan(), execution_timeout=100)
    await h.settle()
    with pytest.raises(ExecutionStateError, match="execution ex-1 is running, not paused"):
        await h.engine.resume(ex, "too soon")
    await h.engine.pause(ex, "hold on")
    assert h.status(ex) == E.EXECUTION_STATE_PAUSED
    with pytest.raises(ExecutionStateError, match="is paused"):
        await h.engine.pause(ex, "again")
    h.clock.advance(1.0)  # A's call answers while paused: recorded, nothing new starts
    await h.settle()
    assert h.kinds(ex)[-2:] == ["execution_paused", "step_succeeded"]
    assert h.engine.active == 0 and h.engine.parked == 1
    assert h.clock.next_wake() is None  # a paused execution waits for nothing but a command
    h.clock.advance(500)  # well past the original deadline: paused time (501 s in all) does not count
    await h.engine.resume(ex, "go")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert [c.call.idempotency_key.split("/")[1] for c in h.caller.calls[:4]] == ["A", "B", "C", "D"]
    assert state.deadline == START + timedelta(seconds=100 + 501)
    with pytest.raises(ExecutionStateError, match="execution ex-1 is completed"):
        await h.engine.resume(ex, "again")


async def test_a_paused_execution_survives_a_restart_and_finishes_after_resume() -> None:
    h = Harness()
    ex = await h.submit(plan(step("A"), step("B", "A"), step("C", "B")))
    await h.engine.pause(ex, "hold on")
    await h.settle()
    await h.restart()
    await h.settle()
    assert h.status(ex) == E.EXECUTION_STATE_PAUSED and h.engine.active == 0
    await h.engine.resume(ex, "go")
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED


async def test_a_cancel_of_a_paused_execution_ends_it() -> None:
    h = Harness()
    ex = await h.submit(w_plan())
    await h.engine.pause(ex, "hold on")
    await h.engine.cancel(ex, "no")
    assert h.status(ex) == E.EXECUTION_STATE_CANCELLED


def _escalating_plan() -> P.OrchestrationPlan:
    p = plan(step("A"), step("B", "A"))
    gate = p.quality_gates.add(gate_id="g", checkpoint="A", action_on_failure=P.GATE_ACTION_ESCALATE)
    gate.criteria.add(metric="accuracy", operator=P.COMPARISON_OPERATOR_GTE, value=80.0, weight=1.0)
    return p


async def test_an_escalated_gate_waits_for_a_person_told_through_ui_ux_and_approve_goes_on() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({}, accuracy=40.0))
    ex = await h.submit(_escalating_plan())
    await h.settle()
    status = render(h.state(ex))
    assert [(w.step_id, w.kind, w.gate_id) for w in status.waiting] == [("A", E.WAIT_KIND_ESCALATION, "g")]
    notices = h.caller.calls_to("ui_ux", "Notify")
    assert [c.call.idempotency_key for c in notices] == [f"{ex}/A/escalate/g"]
    assert h.engine.parked == 1
    await h.engine.signal(ex, SignalCommand(E.SIGNAL_APPROVE, step_id="A"))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert len(h.caller.calls_to("analytics")) == 2


async def test_rejecting_an_escalated_gate_fails_the_execution() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({}, accuracy=40.0))
    ex = await h.submit(_escalating_plan())
    await h.settle()
    await h.engine.signal(ex, SignalCommand(E.SIGNAL_REJECT, reason="bad resume"))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.end_cause == E.END_CAUSE_QUALITY_GATE
    assert "escalated and rejected: bad resume" in state.failure_reason
