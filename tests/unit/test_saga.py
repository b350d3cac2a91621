"""Effects once and failures that unwind: idempotency keys per step, compensation in reverse order."""

from __future__ import annotations

from collections import Counter

from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P

from server.engine import render
from tests.unit.engine_support import Harness, plan, step, submit_step
from tests.unit.fleet import Fault


def _notify(*deps: str, **kw: object) -> P.WorkflowStep:
    return step("notify", *deps, agent="ui_ux", operation="Notify", **kw)  # type: ignore[arg-type]


async def test_a_run_whose_notify_step_fails_after_submitting_ends_failed_with_its_applications_withdrawn() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    ex = await h.submit(plan(submit_step(), _notify("submit")))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.end_cause == E.END_CAUSE_STEP_FAILED
    assert len(fleet.applications) == 2 and fleet.live() == []
    withdraws = [c for c in fleet.calls if c.operation == "WithdrawApplication"]
    assert [c.idempotency_key for c in withdraws] == [f"{ex}/submit/compensate"]
    assert sorted(withdraws[0].payload["application_ids"]) == sorted(fleet.applications)
    assert not withdraws[0].use_breaker
    kinds = h.kinds(ex)
    assert kinds[-4:] == ["execution_unwinding", "compensation_started", "compensation_succeeded", "execution_failed"]
    ended = h.store.events[ex][-1].execution_failed
    assert list(ended.compensation_summary) == ["submit: undone by automation.WithdrawApplication"]
    status = render(state)
    assert [(c.step_id, c.state) for c in status.compensations] == [("submit", E.COMPENSATION_STATE_SUCCEEDED)]
    assert any(d.error_type == "COMPENSATION" for d in status.error_summary.error_details)


async def test_completed_steps_are_compensated_in_reverse_order_of_completion() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    first = submit_step("first", job_ids="j1")
    second = submit_step("second", "first", job_ids="j2")
    ex = await h.submit(plan(first, second, _notify("second")))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    withdrawn = [c.idempotency_key for c in fleet.calls if c.operation == "WithdrawApplication"]
    assert withdrawn == [f"{ex}/second/compensate", f"{ex}/first/compensate"]
    assert fleet.live() == []


async def test_a_compensation_that_keeps_failing_is_retried_with_backoff_then_named_in_the_failure() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    fleet.fail("WithdrawApplication", *[Fault("UNAVAILABLE")] * 6)
    ex = await h.submit(plan(submit_step(), _notify("submit"), initial_backoff=1.0, max_backoff=8.0))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    withdraws = [c for c in fleet.calls if c.operation == "WithdrawApplication"]
    assert [c.attempt for c in withdraws] == [1, 2, 3, 4, 5, 6]
    assert {c.idempotency_key for c in withdraws} == {f"{ex}/submit/compensate"}
    assert len(fleet.live()) == 2
    summary = list(h.store.events[ex][-1].execution_failed.compensation_summary)
    assert summary[0].startswith("submit: NOT undone: compensation automation.WithdrawApplication failed after 6")
    status = render(state)
    assert status.compensations[0].state == E.COMPENSATION_STATE_FAILED
    assert status.error_summary.critical_errors >= 2  # the step's failure and the failed compensation


async def test_a_cancel_while_a_submission_is_in_flight_waits_for_its_outcome_then_withdraws_it() -> None:
    h = Harness(latency=5.0)
    fleet = h.use_fleet()
    ex = await h.submit(plan(submit_step(), _notify("submit")))
    await h.settle()
    assert h.kinds(ex)[-1] == "step_started"
    await h.engine.cancel(ex, "changed my mind")
    assert h.status(ex) == E.EXECUTION_STATE_COMPENSATING
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_CANCELLED
    assert state.end_cause == E.END_CAUSE_CANCELLED
    assert len(fleet.applications) == 2 and fleet.live() == []
    assert [c.operation for c in fleet.calls] == ["SubmitApplication", "WithdrawApplication"]


async def test_a_retry_after_a_reply_lost_past_the_deadline_applies_the_submission_once() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("DEADLINE_EXCEEDED", after_effect=True))
    ex = await h.submit(plan(submit_step(retries=2), _notify("submit")))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    submits = [c for c in fleet.calls if c.operation == "SubmitApplication"]
    assert [(c.idempotency_key, c.attempt) for c in submits] == [(f"{ex}/submit", 1), (f"{ex}/submit", 2)]
    assert Counter(a.job_id for a in fleet.applications.values()) == {"j1": 1, "j2": 1}
    assert fleet.effects.count(("SubmitApplication", f"{ex}/submit")) == 1


async def test_a_step_in_doubt_when_the_run_fails_is_probed_under_its_key_then_compensated() -> None:
    h = Harness()
    fleet = h.use_fleet()
    # Both attempts apply and lose their reply: the step fails, but the applications exist.
    fleet.fail("SubmitApplication", *[Fault("DEADLINE_EXCEEDED", after_effect=True)] * 2)
    ex = await h.submit(plan(submit_step(retries=1), _notify("submit")))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    submits = [c for c in fleet.calls if c.operation == "SubmitApplication"]
    assert [c.attempt for c in submits] == [1, 2, 3]  # the third is the probe
    assert {c.idempotency_key for c in submits} == {f"{ex}/submit"}
    assert fleet.effects.count(("SubmitApplication", f"{ex}/submit")) == 1
    assert fleet.live() == [] and len(fleet.applications) == 2
    assert render(state).compensations[0].state == E.COMPENSATION_STATE_SUCCEEDED
    assert [c.use_breaker for c in submits] == [True, True, False]  # a probe does not wait out a breaker


async def test_a_step_refused_by_its_agent_needs_no_compensation() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("FAILED_PRECONDITION", retryable=False))
    ex = await h.submit(plan(submit_step(), _notify("submit")))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert "execution_unwinding" not in h.kinds(ex)
    assert not [c for c in fleet.calls if c.operation == "WithdrawApplication"]


async def test_a_gate_retry_on_the_submit_step_reuses_its_key_so_each_job_is_applied_to_once() -> None:
    h = Harness()
    fleet = h.use_fleet()
    p = plan(submit_step(), _notify("submit"))
    gate = p.quality_gates.add(gate_id="g", checkpoint="submit", action_on_failure=P.GATE_ACTION_RETRY)
    gate.criteria.add(metric="accuracy", operator=P.COMPARISON_OPERATOR_GTE, value=99.0, weight=1.0)
    ex = await h.submit(p)
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED  # the re-run got the same answer; the gate stopped it
    submits = [c for c in fleet.calls if c.operation == "SubmitApplication"]
    assert [(c.idempotency_key, c.attempt) for c in submits] == [(f"{ex}/submit", 1), (f"{ex}/submit", 2)]
    assert Counter(a.job_id for a in fleet.applications.values()) == {"j1": 1, "j2": 1}
    assert fleet.live() == []


async def test_the_alternative_call_has_its_own_key() -> None:
    h = Harness()
    h.caller.script("job_discovery", "SearchJobs", *[_unavailable()] * 2)
    s = step(
        "S",
        agent="job_discovery",
        operation="SearchJobs",
        retries=1,
        fallback=P.FALLBACK_ACTION_ALTERNATIVE,
        alternative=("job_discovery", "GetJobDetails"),
    )
    ex = await h.submit(plan(s))
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    assert [c.call.idempotency_key for c in h.caller.calls] == [f"{ex}/S", f"{ex}/S", f"{ex}/S/alt"]


def _unavailable() -> object:
    from tests.unit.fakes import unavailable

    return unavailable()
