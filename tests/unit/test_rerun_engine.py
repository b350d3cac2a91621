"""Rerun (redrive) in the engine: the fold of execution_rerun, what is reset, keys, scope, refusals.

A conformance table of server/engine/rerun.py's rules over a fake clock, a scripted caller (or
the ledger fleet) and the memory store.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P

from server.engine import ExecutionStateError, FoldError, UnknownStepError, apply, decide, fold, render
from server.engine.inbox import Rerun
from server.engine.rerun import downstream, steps_to_reset
from server.engine.state import Phase
from server.store.base import ExecutionNotFoundError
from tests.unit.engine_support import Harness, plan, started_event, step, submit_step
from tests.unit.fakes import START, invalid, reply
from tests.unit.fleet import Fault
from tests.unit.test_replicas import Replicas


def _abc() -> P.OrchestrationPlan:
    """A -> B -> C, sequential, no retries."""
    return plan(step("A"), step("B", "A", agent="ui_ux", operation="Notify"), step("C", "B"))


async def _failed_at_b(h: Harness) -> str:
    h.caller.script("ui_ux", "Notify", invalid("B is broken"))
    ex = await h.submit(_abc())
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    return ex


def _keys(h: Harness, operation: str) -> list[str]:
    return [c.call.idempotency_key for c in h.caller.calls if c.call.operation == operation]


# ---- continuing from the failure ------------------------------------------------------------


async def test_a_rerun_continues_from_the_failed_step_keeping_the_completed_ones() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    failed_at = h.state(ex).last_sequence
    await h.engine.rerun(ex, "the agent is fixed")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert state.run == 2
    calls = [c.call.idempotency_key for c in h.caller.calls]
    # A once (run 1), B twice (failed, then run 2), C once (run 2): A is not called again.
    assert calls == [f"{ex}/A", f"{ex}/B", f"{ex}/run-2/B", f"{ex}/run-2/C"]
    rerun = h.store.events[ex][failed_at]  # the event right after the failure
    assert rerun.sequence == failed_at + 1
    assert rerun.WhichOneof("kind") == "execution_rerun"
    assert list(rerun.execution_rerun.reset_steps) == ["B", "C"]
    assert rerun.execution_rerun.run == 2
    assert rerun.execution_rerun.reason == "the agent is fixed"
    assert [e.sequence for e in h.store.events[ex]] == list(range(1, len(h.store.events[ex]) + 1))
    status = render(state)
    assert status.run == 2 and status.failure_reason == "" and status.end_cause == E.END_CAUSE_UNSPECIFIED
    assert [t.attempts for t in status.performance_metrics.step_timings] == [1, 1, 1]


async def test_a_completed_rerun_reports_the_first_runs_errors_as_recovered_not_critical() -> None:
    h = Harness(latency=5.0)
    ex = await h.submit(_abc(), execution_timeout=8.0)  # B times the execution out
    failed = render(await h.run(ex)).error_summary
    assert failed.critical_errors == 1
    h.caller.latency = 1.0
    await h.engine.rerun(ex, "faster now")
    summary = render(await h.run(ex)).error_summary
    assert summary.critical_errors == 0
    assert [(d.error_type, d.recovery_action) for d in summary.error_details if not d.step_id] == [("TIMEOUT", "rerun")]


async def test_a_step_skipped_by_its_fallback_runs_again_and_no_longer_degrades_the_execution() -> None:
    h = Harness()
    h.caller.script("ui_ux", "Notify", invalid("skip me"))
    h.caller.script("analytics", "GetInsights", invalid("fail the run"))
    p = plan(
        step("A"),
        step("N", "A", agent="ui_ux", operation="Notify", fallback=P.FALLBACK_ACTION_SKIP),
        step("G", "N", operation="GetInsights"),
    )
    ex = await h.submit(p)
    first = render(await h.run(ex))
    assert first.status == E.EXECUTION_STATE_FAILED and first.degraded
    await h.engine.rerun(ex, "again")
    second = render(await h.run(ex))
    assert second.status == E.EXECUTION_STATE_COMPLETED
    assert not second.degraded and list(second.degraded_reasons) == []
    assert _keys(h, "Notify") == [f"{ex}/N", f"{ex}/run-2/N"]


async def test_a_rerun_from_a_named_step_runs_it_and_everything_downstream_again() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    await h.engine.rerun(ex, "again from A", from_step="A")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert h.store.events[ex][-1].WhichOneof("kind") == "execution_completed"
    reruns = [e.execution_rerun for e in h.store.events[ex] if e.WhichOneof("kind") == "execution_rerun"]
    assert [(r.from_step, list(r.reset_steps)) for r in reruns] == [("A", ["A", "B", "C"])]
    assert _keys(h, "RecordEvents") == [f"{ex}/A", f"{ex}/run-2/A", f"{ex}/run-2/C"]


async def test_a_rerun_that_fails_again_can_be_rerun_once_more_with_a_third_run_key() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    h.caller.script("ui_ux", "Notify", invalid("still broken"))
    await h.engine.rerun(ex, "try")
    assert (await h.run(ex)).status == E.EXECUTION_STATE_FAILED
    await h.engine.rerun(ex, "try again")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED and state.run == 3
    assert _keys(h, "Notify") == [f"{ex}/B", f"{ex}/run-2/B", f"{ex}/run-3/B"]


async def test_the_execution_timeout_starts_again_for_the_rerun() -> None:
    h = Harness(latency=5.0)
    ex = await h.submit(_abc(), execution_timeout=8.0)
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED and state.end_cause == E.END_CAUSE_TIMEOUT
    h.clock.advance(100.0)
    await h.engine.rerun(ex, "slower agents are fine now")
    rerun = h.store.events[ex][state.last_sequence].execution_rerun
    assert rerun.deadline.ToDatetime() == (h.clock.now() + timedelta(seconds=8.0)).replace(tzinfo=None)
    h.caller.latency = 1.0
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED


async def test_a_cancelled_execution_can_be_rerun() -> None:
    h = Harness(latency=5.0)
    ex = await h.submit(_abc())
    await h.settle()
    await h.engine.cancel(ex, "stop")
    assert (await h.run(ex)).status == E.EXECUTION_STATE_CANCELLED
    await h.engine.rerun(ex, "go on")
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED


# ---- compensation scope and keys ------------------------------------------------------------


async def test_a_step_whose_effect_was_undone_runs_again_under_a_new_key_and_is_not_undone_twice() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    ex = await h.submit(plan(submit_step(), step("notify", "submit", agent="ui_ux", operation="Notify")))
    assert (await h.run(ex)).status == E.EXECUTION_STATE_FAILED
    assert fleet.live() == []  # withdrawn by run 1's compensation
    await h.engine.rerun(ex, "fixed")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    # A new key, so the ledger applies again (the old key would answer with the withdrawn ones).
    assert [key for op, key in fleet.effects if op == "SubmitApplication"] == [f"{ex}/submit", f"{ex}/run-2/submit"]
    assert len(fleet.live()) == 2
    assert [c.idempotency_key for c in fleet.calls if c.operation == "WithdrawApplication"] == [
        f"{ex}/submit/compensate"
    ]


async def test_a_rerun_that_fails_compensates_only_what_it_completed_itself() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False), Fault("INVALID_ARGUMENT", retryable=False))
    kept = submit_step("kept", job_ids="j1")
    kept.compensation.operation = "UndoKept"  # its undo fails: settled FAILED in run 1, effect remains
    fleet.fail("UndoKept", Fault("INVALID_ARGUMENT", retryable=False))
    redone = submit_step("redone", "kept", job_ids="j2")
    ex = await h.submit(plan(kept, redone, step("notify", "redone", agent="ui_ux", operation="Notify")))
    first = await h.run(ex)
    assert first.status == E.EXECUTION_STATE_FAILED
    assert first.steps["kept"].compensation.state == E.COMPENSATION_STATE_FAILED  # type: ignore[union-attr]
    await h.engine.rerun(ex, "again")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    withdraws = [c.idempotency_key for c in fleet.calls if c.operation == "WithdrawApplication"]
    assert withdraws == [f"{ex}/redone/compensate", f"{ex}/run-2/redone/compensate"]
    assert [c.operation for c in fleet.calls].count("UndoKept") == 1  # run 1's, not run again
    ended = h.store.events[ex][-1].execution_failed
    assert list(ended.compensation_summary) == ["redone: undone by automation.WithdrawApplication"]


# ---- refusals ---------------------------------------------------------------------------------


@pytest.mark.parametrize("ending", ["completed", "running"])
async def test_only_a_failed_or_cancelled_execution_can_be_rerun(ending: str) -> None:
    h = Harness(latency=5.0)
    ex = await h.submit(_abc())
    if ending == "completed":
        await h.run(ex)
    else:
        await h.settle()
    with pytest.raises(ExecutionStateError, match=f"is {ending}; only a failed or cancelled"):
        await h.engine.rerun(ex, "no")
    assert not any(e.WhichOneof("kind") == "execution_rerun" for e in h.store.events[ex])


async def test_a_rerun_from_a_step_the_plan_lacks_is_refused_naming_it() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    with pytest.raises(UnknownStepError, match=r"from_step: .*'Z'"):
        await h.engine.rerun(ex, "no", from_step="Z")
    with pytest.raises(ExecutionNotFoundError):
        await h.engine.rerun("nope", "no", from_step="A")
    with pytest.raises(ExecutionNotFoundError):
        await h.engine.rerun("nope", "no")


async def test_a_rerun_retried_with_its_request_id_is_recorded_once() -> None:
    h = Harness(latency=1.0)
    ex = await _failed_at_b(h)
    await h.engine.rerun(ex, "once", request_id="r-1")
    await h.engine.rerun(ex, "once", request_id="r-1")  # running now: answered, not refused
    await h.run(ex)
    await h.engine.rerun(ex, "once", request_id="r-1")  # completed now: still the same answer
    assert h.kinds(ex).count("execution_rerun") == 1
    with pytest.raises(ExecutionStateError, match="is completed"):
        await h.engine.rerun(ex, "another", request_id="r-2")


async def test_a_quarantined_execution_is_not_rerun() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    await h.store.quarantine(ex, "corrupt")
    with pytest.raises(ExecutionStateError, match="quarantined"):
        await h.engine.rerun(ex, "no")


async def test_the_terminal_listeners_hear_each_run_end_once() -> None:
    h = Harness()
    ended: list[tuple[str, int]] = []
    h.engine.add_terminal_listener(lambda state: ended.append((state.state_name, state.run)))
    ex = await _failed_at_b(h)
    h.caller.script("ui_ux", "Notify", invalid("still broken"))
    await h.engine.rerun(ex, "go", request_id="r-1")
    await h.run(ex)
    # Retried after its run failed again: a runner starts on the ended execution, records nothing
    # and must not announce the end a second time.
    await h.engine.rerun(ex, "go", request_id="r-1")
    await h.settle()
    assert h.kinds(ex).count("execution_rerun") == 1
    assert ended == [("failed", 1), ("failed", 2)]


async def test_a_rerun_survives_a_restart_and_re_issues_its_call_under_the_same_key() -> None:
    h = Harness(latency=5.0)
    h.caller.script("ui_ux", "Notify", invalid("broken"))
    ex = await h.submit(_abc())
    assert (await h.run(ex)).status == E.EXECUTION_STATE_FAILED
    await h.engine.rerun(ex, "go")
    await h.settle()
    assert h.state(ex).steps["B"].phase == Phase.IN_FLIGHT
    await h.restart()
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert _keys(h, "Notify") == [f"{ex}/B", f"{ex}/run-2/B", f"{ex}/run-2/B"]  # re-issued, same key
    assert h.kinds(ex).count("step_started") == 4  # A, B (run 1); B, C (run 2): the re-issue is no event


def test_decide_refuses_a_rerun_from_a_step_the_plan_lacks_and_records_nothing() -> None:
    state = fold("ex", _failed_history())
    decision = decide(state, START + timedelta(seconds=50), [Rerun("r", from_step="Z")], rng=lambda: 0.5)
    assert decision.events == [] and decision.refused == {0: "execution ex has no step 'Z' to rerun from"}
    assert state.status == E.EXECUTION_STATE_FAILED


# ---- the fold ---------------------------------------------------------------------------------


def _failed_history() -> list[E.ExecutionEvent]:
    """A -> B where A completed and B failed: the execution FAILED."""
    events = [started_event()]

    def add(kind: str, body: object) -> None:
        event = E.ExecutionEvent(sequence=len(events) + 1)
        event.time.FromDatetime(START + timedelta(seconds=len(events)))
        getattr(event, kind).CopyFrom(body)
        events.append(event)

    add("step_started", E.StepStarted(step_id="A", attempt=1))
    add("step_succeeded", E.StepSucceeded(step_id="A", attempt=1))
    add("step_started", E.StepStarted(step_id="B", attempt=1))
    add("step_attempt_failed", E.StepAttemptFailed(step_id="B", attempt=1, error_type="INVALID_ARGUMENT"))
    add("step_failed", E.StepFailed(step_id="B", error_type="INVALID_ARGUMENT"))
    add("execution_failed", E.ExecutionFailed(reason="B failed", step_id="B", cause=E.END_CAUSE_STEP_FAILED))
    return events


def _rerun_event(sequence: int, run: int = 2, reset: tuple[str, ...] = ("B",)) -> E.ExecutionEvent:
    event = E.ExecutionEvent(sequence=sequence)
    event.time.FromDatetime(START + timedelta(seconds=100))
    event.execution_rerun.run = run
    event.execution_rerun.reset_steps.extend(reset)
    event.execution_rerun.deadline.FromDatetime(START + timedelta(seconds=700))
    return event


def test_the_fold_takes_a_failed_execution_back_to_running_with_the_reset_steps_pending() -> None:
    events = _failed_history()
    state = fold("ex", events)
    apply(state, _rerun_event(len(events) + 1))
    assert state.status == E.EXECUTION_STATE_RUNNING and not state.terminal
    assert state.run == 2
    assert state.deadline == START + timedelta(seconds=700)
    assert state.failure_reason == "" and state.end_cause == E.END_CAUSE_UNSPECIFIED and state.end_time is None
    assert state.steps["A"].phase == Phase.COMPLETED and state.steps["A"].attempts == 1
    b = state.steps["B"]
    assert (b.phase, b.attempts, b.output, b.start_time) == (Phase.PENDING, 0, None, None)
    started = E.ExecutionEvent(sequence=state.last_sequence + 1)
    started.step_started.step_id, started.step_started.attempt = "B", 1  # a fresh attempt count
    apply(state, started)
    assert state.steps["B"].phase == Phase.IN_FLIGHT


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("completed", "execution_rerun while the execution is completed"),
        ("run out of turn", "starts run 3, not 2"),
        ("unknown step", "resets unknown step 'Z'"),
    ],
)
def test_the_fold_refuses_a_rerun_that_does_not_fit(change: str, message: str) -> None:
    events = _failed_history()
    if change == "completed":
        events[-1].ClearField("execution_failed")
        events[-1].execution_completed.SetInParent()
        events[4].ClearField("step_attempt_failed")
        events[4].step_succeeded.step_id, events[4].step_succeeded.attempt = "B", 1
        del events[5]
        events[-1].sequence = 6
    state = fold("ex", events)
    rerun = _rerun_event(
        len(events) + 1, run=3 if change == "run out of turn" else 2, reset=("Z",) if change == "unknown step" else ()
    )
    with pytest.raises(FoldError, match=message):
        apply(state, rerun)
    assert state.last_sequence == len(events)  # nothing changed


def test_a_rerun_of_a_running_execution_does_not_fold() -> None:
    state = fold("ex", _failed_history()[:3])
    with pytest.raises(FoldError, match="while the execution is running"):
        apply(state, _rerun_event(4))


# ---- what is reset ----------------------------------------------------------------------------


def test_steps_skipped_by_a_false_condition_stay_skipped_unless_downstream_of_from_step() -> None:
    p = plan(step("A"), step("B", "A"), step("C", "B"), step("D", "A"))
    events = [started_event(p)]

    def add(kind: str, body: object) -> None:
        event = E.ExecutionEvent(sequence=len(events) + 1)
        getattr(event, kind).CopyFrom(body)
        events.append(event)

    add("step_started", E.StepStarted(step_id="A", attempt=1))
    add("step_succeeded", E.StepSucceeded(step_id="A", attempt=1))
    add("step_skipped", E.StepSkipped(step_id="D", cause=E.SKIP_CAUSE_CONDITION_FALSE))
    add("step_started", E.StepStarted(step_id="B", attempt=1))
    add("step_attempt_failed", E.StepAttemptFailed(step_id="B", attempt=1, error_type="INVALID_ARGUMENT"))
    add("step_failed", E.StepFailed(step_id="B", error_type="INVALID_ARGUMENT"))
    add("execution_failed", E.ExecutionFailed(reason="B failed", step_id="B"))
    state = fold("ex", events)
    assert steps_to_reset(state) == ["B", "C"]
    assert steps_to_reset(state, "A") == ["A", "B", "D", "C"]  # plan.order: topological
    assert downstream(state.plan, {"B"}) == {"B", "C"}


async def test_the_rerun_event_carries_the_actor_for_the_audit_trail() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    actor = E.Actor(subject="alice", roles=["user"])
    await h.engine.rerun(ex, "mine", actor=actor)
    rerun = next(e for e in h.store.events[ex] if e.WhichOneof("kind") == "execution_rerun")
    assert rerun.actor.subject == "alice"
    after = h.store.events[ex][rerun.sequence :]
    assert after and not any(e.HasField("actor") for e in after)


async def test_a_step_output_of_the_failed_run_is_gone_once_its_step_is_reset() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({"n": 1}), reply({"n": 2}))
    h.caller.script("ui_ux", "Notify", invalid("broken"))
    ex = await h.submit(_abc())
    await h.run(ex)
    await h.engine.rerun(ex, "from A", from_step="A")
    state = await h.run(ex)
    assert state.steps["A"].output_json() == {"n": 2}


# ---- replicas ---------------------------------------------------------------------------------


async def test_a_rerun_on_another_replica_takes_the_ended_execution_over_and_runs_it() -> None:
    replicas = Replicas(latency=1.0)
    await replicas.start()
    try:
        replicas.fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
        ex = await replicas.submit(replicas.a, _abc())
        await replicas.advance(10)
        assert replicas.state(ex) == E.EXECUTION_STATE_FAILED
        assert replicas.owner(ex) == "a"  # a ran it; its lease has not lapsed
        rerun = asyncio.create_task(replicas.b.rerun(ex, "on b"))
        await replicas.advance(3)  # a hands it over at its next look; b claims it by name
        await rerun
        assert replicas.owner(ex) == "b"
        await replicas.advance(10)
        assert replicas.state(ex) == E.EXECUTION_STATE_COMPLETED
        keys = [
            c.idempotency_key
            for c in replicas.fleet.calls
            if c.operation != "RecordEvents" or "/run-2/" in c.idempotency_key
        ]
        assert keys == [f"{ex}/B", f"{ex}/run-2/B", f"{ex}/run-2/C"]
        assert [c.idempotency_key for c in replicas.fleet.calls].count(f"{ex}/A") == 1
    finally:
        await replicas.close()


async def test_a_refused_rerun_does_not_take_a_running_execution_from_its_replica() -> None:
    replicas = Replicas(latency=5.0)
    await replicas.start()
    try:
        ex = await replicas.submit(replicas.a, _abc())
        await replicas.settle()
        with pytest.raises(ExecutionStateError, match="is running"):
            await replicas.b.rerun(ex, "no")
        await replicas.advance(3)
        assert replicas.owner(ex) == "a" and replicas.a.active == 1 and replicas.b.active == 0
    finally:
        await replicas.close()


async def test_a_rerun_on_a_replica_of_an_execution_nobody_holds_spawns_its_runner() -> None:
    replicas = Replicas(latency=1.0, lease=2.0)
    await replicas.start()
    try:
        replicas.fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
        ex = await replicas.submit(replicas.a, _abc())
        await replicas.advance(10)  # failed, and a's lease lapsed since
        assert replicas.state(ex) == E.EXECUTION_STATE_FAILED
        await replicas.a.rerun(ex, "again")
        assert replicas.a.active == 1
        await replicas.advance(10)
        assert replicas.state(ex) == E.EXECUTION_STATE_COMPLETED
    finally:
        await replicas.close()


async def test_a_rerun_of_an_execution_deleted_meanwhile_is_not_found_and_leaves_nothing_running() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    append = h.store.append

    async def deleted(execution_id: str, events: object, state: int) -> None:
        raise ExecutionNotFoundError(execution_id)  # retention took it between the read and the write

    h.store.append = deleted  # type: ignore[method-assign]
    with pytest.raises(ExecutionNotFoundError):
        await h.engine.rerun(ex, "too late")
    h.store.append = append  # type: ignore[method-assign]
    h.clock.advance(120.0)
    await h.settle()
    assert h.engine.active == 0 and h.kinds(ex).count("execution_rerun") == 0
    assert not h.store.records[ex].quarantine_error  # no runner restarted to find it unreadable


async def test_an_ended_executions_results_are_kept_once_rendered_and_rendered_again_after_a_rerun() -> None:
    h = Harness()
    ex = await _failed_at_b(h)
    history = list(h.store.events[ex])
    state = fold(ex, history)
    first = render(state)
    assert set(first.results.intermediate_results) == {"A"} and not first.results.primary_outputs
    assert state.results_cache is not None and state.results_cache[0] == state.last_sequence
    assert render(state).results == first.results  # from what was kept
    await h.engine.rerun(ex, "the agent is fixed")
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    for event in h.store.events[ex][len(history) :]:
        apply(state, event)
    again = render(state)
    # The rerun's events change the results: C's output is there, not the kept failed run's.
    assert set(again.results.primary_outputs) == {"C"}
    assert set(again.results.intermediate_results) == {"A", "B"}
