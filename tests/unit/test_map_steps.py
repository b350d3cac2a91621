"""Map steps (for_each): one durable call per item, a concurrency cap, skip or fail per item, the
join in item order, a restart that calls only the unfinished items, compensation per item."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import journey_pb2
from baton.v1 import plan_pb2 as P

from server.engine import FoldError, fold, render
from server.engine.decide import decide
from server.engine.model import MAX_MAP_ITEMS
from server.engine.ports import AgentCallError
from server.engine.state import ItemPhase
from server.planner import Planner
from server.planner.validation import PlanInvalidError, validate_plan
from tests.unit.engine_support import Harness, approval_step, plan, started_event, step
from tests.unit.fakes import START, reply
from tests.unit.fleet import Fault

ITEMS = "${user.data.jobs}"


def map_step(
    step_id: str = "submit",
    *deps: str,
    items: str = ITEMS,
    max_concurrency: int = 0,
    skip: bool = False,
    compensate: bool = False,
    **kw: Any,
) -> P.WorkflowStep:
    """A SubmitApplication per item of user.data.jobs (one job each), optionally withdrawn per item."""
    s = step(
        step_id,
        *deps,
        agent="automation",
        operation="SubmitApplication",
        config={"user_id": "${user.user_id}", "job_ids": ["${item}"]},
        **kw,
    )
    s.for_each = items
    s.max_concurrency = max_concurrency
    if skip:
        s.item_failure = P.ITEM_FAILURE_SKIP_ITEM
    if compensate:
        s.compensation.agent, s.compensation.operation = "automation", "WithdrawApplication"
        s.compensation.configuration.update(
            {"user_id": "${user.user_id}", "application_ids": "${item_output.applications[*].application_id}"}
        )
    return s


def _notify(*deps: str) -> P.WorkflowStep:
    return step(
        "notify",
        *deps,
        agent="ui_ux",
        operation="Notify",
        config={"user_id": "${user.user_id}", "data": {"jobs": "${steps.submit[].applications[].job_id}"}},
    )


def _jobs(n: int) -> dict[str, Any]:
    return {"jobs": [f"j{i}" for i in range(n)]}


async def test_each_item_is_its_own_call_with_the_key_execution_step_item() -> None:
    h = Harness()
    fleet = h.use_fleet()
    ex = await h.submit(plan(map_step()), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    submits = [c for c in fleet.calls if c.operation == "SubmitApplication"]
    assert sorted((c.idempotency_key, tuple(c.payload["job_ids"])) for c in submits) == [
        (f"{ex}/submit/0", ("j0",)),
        (f"{ex}/submit/1", ("j1",)),
        (f"{ex}/submit/2", ("j2",)),
    ]
    kinds = h.kinds(ex)
    assert kinds.count("step_item_started") == 3 and "step_started" not in kinds
    assert kinds[-2:] == ["step_succeeded", "execution_completed"]


async def test_the_join_lists_the_item_outputs_in_item_order_for_downstream_expressions() -> None:
    h = Harness()
    fleet = h.use_fleet()
    ex = await h.submit(plan(map_step(max_concurrency=1), _notify("submit")), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    output = state.steps["submit"].output_json()
    assert [item["applications"][0]["job_id"] for item in output] == ["j0", "j1", "j2"]
    # The join holds no copy of the items' outputs: the fold builds it from their events.
    join = next(e.step_succeeded for e in h.store.events[ex] if e.step_succeeded.step_id == "submit")
    assert not join.HasField("output") and join.quality.score == 90.0
    # Downstream expressions read the join as a list.
    notify = next(c for c in fleet.calls if c.operation == "Notify")
    assert notify.payload["data"]["jobs"] == ["j0", "j1", "j2"]


async def test_items_finishing_out_of_order_still_join_in_item_order() -> None:
    h = Harness(latency=1.0)

    def answer(call: Any) -> Any:
        return reply({"job": call.payload["job_ids"][0]})

    # The first two items fail once each and finish after the third.
    h.caller.script(
        "automation",
        "SubmitApplication",
        AgentCallError("UNAVAILABLE", "down", retryable=True),
        AgentCallError("UNAVAILABLE", "down", retryable=True),
        *[answer] * 3,
    )
    ex = await h.submit(plan(map_step(retries=1)), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    sequence = [e.step_item_succeeded.item for e in h.store.events[ex] if e.HasField("step_item_succeeded")]
    assert sequence[0] == 2  # the third item finished first
    assert state.steps["submit"].output_json() == [{"job": "j0"}, {"job": "j1"}, {"job": "j2"}]


async def test_at_most_max_concurrency_items_are_in_flight() -> None:
    h = Harness(latency=1.0)
    ex = await h.submit(plan(map_step(max_concurrency=3)), user=_jobs(10))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert h.caller.max_in_flight == 3
    starts = sorted((c.at - h.caller.calls[0].at).total_seconds() for c in h.caller.calls)
    assert starts == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]


async def test_unset_max_concurrency_caps_items_at_eight() -> None:
    h = Harness(latency=1.0)
    ex = await h.submit(plan(map_step()), user=_jobs(20))
    await h.run(ex)
    assert h.caller.max_in_flight == 8


async def test_a_skipped_item_is_null_in_the_output_and_the_others_go_on() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("INVALID_ARGUMENT", retryable=False))
    ex = await h.submit(plan(map_step(max_concurrency=1, skip=True), _notify("submit")), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    output = state.steps["submit"].output_json()
    assert output[0] is None and [o["applications"][0]["job_id"] for o in output[1:]] == ["j1", "j2"]
    status = render(state)
    timing = next(t for t in status.performance_metrics.step_timings if t.step_id == "submit")
    assert (timing.items_total, timing.items_done, timing.items_skipped, timing.items_failed) == (3, 3, 1, 0)
    assert status.degraded and any("item 0 skipped" in r for r in status.degraded_reasons)
    skipped = [d for d in status.error_summary.error_details if d.HasField("item")]
    assert [(d.item, d.recovery_action, d.impact) for d in skipped] == [(0, "skip_item", E.IMPACT_HIGH)]
    assert len(fleet.live()) == 2


async def test_under_fail_step_a_failed_item_stops_new_items_and_fails_the_step() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("INVALID_ARGUMENT", retryable=False))
    ex = await h.submit(plan(map_step(max_concurrency=1), _notify("submit")), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.end_cause == E.END_CAUSE_STEP_FAILED
    assert "item 0" in state.failure_reason
    assert [c.operation for c in fleet.calls] == ["SubmitApplication"]  # items 1 and 2 never started
    timing = next(t for t in render(state).performance_metrics.step_timings if t.step_id == "submit")
    assert (timing.items_done, timing.items_failed) == (1, 1)


async def test_an_item_whose_request_cannot_be_built_fails_the_step_before_another_item_starts() -> None:
    h = Harness()
    submit = map_step(max_concurrency=3)
    submit.inputs.configuration.update({"job_ids": ["${abs(item)}"]})  # abs() of a string: a type error
    ex = await h.submit(plan(submit), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert "EXPRESSION_ERROR" in state.failure_reason and "item 0" in state.failure_reason
    assert h.kinds(ex).count("step_item_started") == 1 and h.caller.calls == []


async def test_a_failing_step_retries_none_of_its_other_items() -> None:
    h = Harness()
    h.caller.script(
        "automation",
        "SubmitApplication",
        AgentCallError("INVALID_ARGUMENT", "bad posting", retryable=False),
        AgentCallError("UNAVAILABLE", "down", retryable=True),
        reply({"ok": True}),
    )
    ex = await h.submit(plan(map_step(max_concurrency=3, retries=3), initial_backoff=0.0, jitter=0.0), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert len(h.caller.calls) == 3  # item 1's retry, due at once, is not made for a step that fails


async def test_a_failing_step_waits_for_its_items_in_flight_before_it_fails() -> None:
    h = Harness(latency=1.0)
    fleet = h.use_fleet()
    fleet.latency = 1.0
    fleet.fail("SubmitApplication", Fault("INVALID_ARGUMENT", retryable=False))
    ex = await h.submit(plan(map_step(max_concurrency=3, compensate=True)), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    kinds = h.kinds(ex)
    assert kinds.count("step_item_succeeded") == 2
    assert kinds.index("step_failed") > max(i for i, k in enumerate(kinds) if k == "step_item_succeeded")
    # The items that did succeed are withdrawn, each on its own.
    assert fleet.live() == []


async def test_the_fail_step_fallback_skip_skips_the_whole_step() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("INVALID_ARGUMENT", retryable=False))
    submit = map_step(max_concurrency=1, fallback=P.FALLBACK_ACTION_SKIP)
    ex = await h.submit(plan(submit, _notify("submit")), user=_jobs(2))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert state.steps["submit"].skip_cause == E.SKIP_CAUSE_FALLBACK
    assert "item 0" in state.degraded_reasons[0]
    assert [c.operation for c in fleet.calls] == ["SubmitApplication", "Notify"]


async def test_items_are_retried_with_the_steps_retry_policy_under_their_own_key() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("UNAVAILABLE"), Fault("UNAVAILABLE"))
    ex = await h.submit(plan(map_step(max_concurrency=1, retries=2), initial_backoff=1.0), user=_jobs(2))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    submits = [(c.idempotency_key, c.attempt) for c in fleet.calls]
    assert submits == [(f"{ex}/submit/0", 1), (f"{ex}/submit/0", 2), (f"{ex}/submit/0", 3), (f"{ex}/submit/1", 1)]
    failed = [e.step_item_attempt_failed for e in h.store.events[ex] if e.HasField("step_item_attempt_failed")]
    gaps = [(f.retry_at.ToDatetime() - h.store.events[ex][0].time.ToDatetime()).total_seconds() for f in failed]
    assert 0.5 < gaps[0] < 1.5  # the plan's backoff, with jitter


async def test_an_item_refused_by_an_open_breaker_is_retried_when_the_breaker_admits_a_probe() -> None:
    h = Harness()
    h.caller.script(
        "automation", "SubmitApplication", AgentCallError("CIRCUIT_OPEN", "open", retryable=True, retry_after=30.0)
    )
    ex = await h.submit(plan(map_step(retries=1), initial_backoff=0.2), user=_jobs(1))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    first, second = h.caller.calls
    assert (second.at - first.at).total_seconds() >= 30.0


async def test_a_restart_mid_map_calls_again_only_the_items_without_an_outcome() -> None:
    h = Harness(latency=5.0)
    fleet = h.use_fleet()
    fleet.latency = 5.0
    ex = await h.submit(plan(map_step(max_concurrency=2)), user=_jobs(4))
    await h.settle()
    h.clock.advance(5.0)  # items 0 and 1 answer; 2 and 3 start
    await h.settle()
    assert h.kinds(ex).count("step_item_succeeded") == 2
    assert h.kinds(ex).count("step_item_started") == 4
    await h.restart()
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    calls = [c.idempotency_key for c in fleet.calls]
    assert calls.count(f"{ex}/submit/0") == 1 and calls.count(f"{ex}/submit/1") == 1
    assert calls.count(f"{ex}/submit/2") == 2 and calls.count(f"{ex}/submit/3") == 2
    # Re-issued under the same key, each effect happened once.
    assert sorted(a.job_id for a in fleet.applications.values()) == ["j0", "j1", "j2", "j3"]


async def test_a_restart_before_a_pending_item_started_starts_it_once() -> None:
    h = Harness(latency=5.0)
    fleet = h.use_fleet()
    fleet.latency = 5.0
    ex = await h.submit(plan(map_step(max_concurrency=1)), user=_jobs(2))
    await h.settle()
    await h.restart()
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert [c.idempotency_key for c in fleet.calls] == [f"{ex}/submit/0", f"{ex}/submit/0", f"{ex}/submit/1"]


async def test_when_the_run_fails_an_item_in_doubt_is_probed_and_a_refused_one_left_alone() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    # Item 0 fails UNAVAILABLE (its effect unknown), item 1 is refused; both are skipped.
    fleet.fail("SubmitApplication", Fault("UNAVAILABLE"), Fault("INVALID_ARGUMENT", retryable=False))
    submit = map_step(max_concurrency=1, skip=True, compensate=True, retries=0)
    ex = await h.submit(plan(submit, _notify("submit")), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    submits = [(c.idempotency_key, c.attempt, c.use_breaker) for c in fleet.calls if c.operation == "SubmitApplication"]
    # The probe: item 0's own call again, under its key, past any breaker.
    assert submits[-1] == (f"{ex}/submit/0", 2, False)
    withdraws = [c.idempotency_key for c in fleet.calls if c.operation == "WithdrawApplication"]
    assert withdraws == [f"{ex}/submit/0/compensate", f"{ex}/submit/2/compensate"]
    assert fleet.live() == []
    summary = list(h.store.events[ex][-1].execution_failed.compensation_summary)
    assert summary == [
        "submit item 0: undone by automation.WithdrawApplication",
        "submit item 2: undone by automation.WithdrawApplication",
    ]


async def test_every_succeeded_item_is_withdrawn_in_reverse_order_of_completion() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    ex = await h.submit(plan(map_step(max_concurrency=1, compensate=True), _notify("submit")), user=_jobs(3))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    withdraws = [c for c in fleet.calls if c.operation == "WithdrawApplication"]
    assert [c.idempotency_key for c in withdraws] == [f"{ex}/submit/{i}/compensate" for i in (2, 1, 0)]
    submitted = {a.job_id: a.application_id for a in fleet.applications.values()}
    assert [c.payload["application_ids"] for c in withdraws] == [[submitted[j]] for j in ("j2", "j1", "j0")]
    assert fleet.live() == []
    status = render(state)
    assert [(c.step_id, c.item, c.state) for c in status.compensations] == [
        ("submit", 2, E.COMPENSATION_STATE_SUCCEEDED),
        ("submit", 1, E.COMPENSATION_STATE_SUCCEEDED),
        ("submit", 0, E.COMPENSATION_STATE_SUCCEEDED),
    ]
    assert status.performance_metrics.step_timings[0].compensation == E.COMPENSATION_STATE_SUCCEEDED


async def test_a_cancel_mid_map_waits_for_items_in_flight_then_withdraws_each() -> None:
    h = Harness(latency=5.0)
    fleet = h.use_fleet()
    fleet.latency = 5.0
    ex = await h.submit(plan(map_step(max_concurrency=2, compensate=True)), user=_jobs(4))
    await h.settle()
    await h.engine.cancel(ex, "changed my mind")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_CANCELLED
    submits = [c.idempotency_key for c in fleet.calls if c.operation == "SubmitApplication"]
    assert submits == [f"{ex}/submit/0", f"{ex}/submit/1"]  # items 2 and 3 never started
    assert len(fleet.applications) == 2 and fleet.live() == []


async def test_an_item_whose_reply_was_lost_is_probed_then_withdrawn_once() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("DEADLINE_EXCEEDED", after_effect=True))
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    submit = map_step(max_concurrency=1, skip=True, compensate=True, retries=0)
    ex = await h.submit(plan(submit, _notify("submit")), user=_jobs(2))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert fleet.effects.count(("SubmitApplication", f"{ex}/submit/0")) == 1  # the probe applied nothing more
    comps = {c.item: c.state for c in render(state).compensations}
    assert comps == {0: E.COMPENSATION_STATE_SUCCEEDED, 1: E.COMPENSATION_STATE_SUCCEEDED}
    assert fleet.live() == []


async def test_an_item_whose_probes_keep_failing_is_reported_not_undone() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", *[Fault("DEADLINE_EXCEEDED", after_effect=True)] * 10)
    fleet.fail("Notify", Fault("INVALID_ARGUMENT", retryable=False))
    submit = map_step(skip=True, compensate=True, retries=0)
    submit.compensation.retry_count = 1
    ex = await h.submit(plan(submit, _notify("submit")), user=_jobs(1))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    status = render(state)
    assert status.compensations[0].state == E.COMPENSATION_STATE_FAILED
    assert "item 0 of step submit" in status.compensations[0].error_message
    assert status.performance_metrics.step_timings[0].compensation == E.COMPENSATION_STATE_FAILED


async def test_an_empty_list_completes_the_step_with_an_empty_output() -> None:
    h = Harness()
    ex = await h.submit(plan(map_step()), user=_jobs(0))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert state.steps["submit"].output_json() == []
    assert h.caller.calls == []


async def test_a_for_each_that_would_build_millions_of_items_is_stopped_clearly() -> None:
    h = Harness()
    eight = "[@, @, @, @, @, @, @, @]"
    ex = await h.submit(plan(map_step(items=f"${{user.data.jobs[*].{eight}[] | [*].{eight}[]}}")), user=_jobs(10_000))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert "EXPRESSION_ERROR" in state.failure_reason and "builds more than 1,000,000 values" in state.failure_reason
    assert h.caller.calls == []


@pytest.mark.parametrize(
    ("user", "message"),
    [
        ({"jobs": "j1"}, "gave str, not a list"),
        ({"jobs": {"a": 1}}, "gave dict, not a list"),
        ({}, "gave null, not a list"),
        ({"jobs": list(range(MAX_MAP_ITEMS + 1))}, f"gave {MAX_MAP_ITEMS + 1} items; a map step runs at most"),
    ],
)
async def test_a_for_each_that_is_not_a_short_list_fails_the_step_with_a_clear_error(
    user: dict[str, Any], message: str
) -> None:
    h = Harness()
    ex = await h.submit(plan(map_step()), user=user)
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert "EXPRESSION_ERROR" in state.failure_reason and message in state.failure_reason
    assert h.caller.calls == [] and "step_map_started" not in h.kinds(ex)


async def test_a_map_step_shows_items_done_of_total_while_it_runs() -> None:
    h = Harness(latency=1.0)
    ex = await h.submit(plan(map_step(max_concurrency=2)), user=_jobs(5))
    await h.settle()
    h.clock.advance(1.0)
    await h.settle()
    status = render(h.state(ex))
    timing = status.performance_metrics.step_timings[0]
    assert (timing.items_done, timing.items_total, timing.status) == (2, 5, E.STEP_STATE_RUNNING)
    assert list(status.progress.running_steps) == ["submit"]
    assert timing.attempts == 4


def test_a_stored_item_count_past_the_limit_is_refused_by_the_fold() -> None:
    events = [started_event(plan(map_step()))]
    event = E.ExecutionEvent(sequence=2)
    event.step_map_started.step_id = "submit"
    event.step_map_started.item_count = 10_000_000
    events.append(event)
    with pytest.raises(FoldError, match="10000000 items"):
        fold("ex", events)


def test_an_item_event_naming_an_item_the_step_does_not_have_is_refused_by_the_fold() -> None:
    events = [started_event(plan(map_step()))]
    started = E.ExecutionEvent(sequence=2)
    started.step_map_started.step_id, started.step_map_started.item_count = "submit", 2
    item = E.ExecutionEvent(sequence=3)
    item.step_item_started.step_id, item.step_item_started.item, item.step_item_started.attempt = "submit", 2, 1
    with pytest.raises(FoldError, match="item 2 of step submit"):
        fold("ex", [*events, started, item])


def test_an_item_outcome_of_a_stale_attempt_is_refused_by_the_fold() -> None:
    events = [started_event(plan(map_step()))]
    started = E.ExecutionEvent(sequence=2)
    started.step_map_started.step_id, started.step_map_started.item_count = "submit", 1
    item = E.ExecutionEvent(sequence=3)
    item.step_item_started.step_id, item.step_item_started.attempt = "submit", 1
    done = E.ExecutionEvent(sequence=4)
    done.step_item_succeeded.step_id, done.step_item_succeeded.attempt = "submit", 2
    with pytest.raises(FoldError, match="names attempt 2, expected 1"):
        fold("ex", [*events, started, item, done])


def _mapping(count: int) -> list[E.ExecutionEvent]:
    """The history of a map step over `count` items that has just started mapping."""
    started = E.ExecutionEvent(sequence=2)
    started.step_map_started.step_id, started.step_map_started.item_count = "submit", count
    return [started_event(plan(map_step())), started]


def test_an_item_event_of_a_step_that_is_not_mapping_is_refused_by_the_fold() -> None:
    item = E.ExecutionEvent(sequence=2)
    item.step_item_started.step_id, item.step_item_started.attempt = "submit", 1
    with pytest.raises(FoldError, match="names item 0 of step submit \\(no items\\)"):
        fold("ex", [started_event(plan(map_step())), item])
    events = _mapping(1)
    done = E.ExecutionEvent(sequence=3)
    done.step_succeeded.step_id = "submit"
    again = E.ExecutionEvent(sequence=4)
    again.step_item_started.step_id, again.step_item_started.attempt = "submit", 1
    with pytest.raises(
        FoldError, match="step_item_started is not allowed for item 0 of step submit in phase completed"
    ):
        fold("ex", [*events, done, again])


def test_an_item_that_ended_starts_again_only_as_a_probe_while_unwinding() -> None:
    events = _mapping(1)
    for sequence, kind, fields in (
        (3, "step_item_started", {"attempt": 1}),
        (4, "step_item_attempt_failed", {"attempt": 1, "error_type": "INVALID_ARGUMENT"}),
        (5, "step_item_started", {"attempt": 2}),
    ):
        event = E.ExecutionEvent(sequence=sequence)
        getattr(event, kind).MergeFrom(getattr(E, _message(kind))(step_id="submit", **fields))
        events.append(event)
    with pytest.raises(FoldError, match="in phase failed, not a probe"):
        fold("ex", events)


def test_no_item_starts_while_unwinding_but_a_probe_of_one_in_doubt() -> None:
    events = _mapping(2)
    unwinding = E.ExecutionEvent(sequence=3)
    unwinding.execution_unwinding.outcome = E.EXECUTION_STATE_CANCELLED
    item = E.ExecutionEvent(sequence=4)
    item.step_item_started.step_id, item.step_item_started.item, item.step_item_started.attempt = "submit", 1, 1
    with pytest.raises(FoldError, match="while unwinding, not in doubt"):
        fold("ex", [*events, unwinding, item])


def _message(kind: str) -> str:
    return "".join(part.title() for part in kind.split("_"))


def test_an_item_count_that_no_longer_matches_the_list_fails_the_item_not_the_runner() -> None:
    # Recorded over 2 items; the list now gives 3 (a history from elsewhere): the relaunched
    # item's call cannot be built, and that is the item's recorded failure.
    events = _mapping(2)
    events[0].execution_started.user_context.data.update(_jobs(3))
    item = E.ExecutionEvent(sequence=3)
    item.step_item_started.step_id, item.step_item_started.attempt = "submit", 1
    events.append(item)
    state = fold("ex", events)
    decision = decide(state, START + timedelta(seconds=1), rng=lambda: 0.5, relaunch=True)
    assert decision.launches == [] or all(launch.item != 0 for launch in decision.launches)
    failed = [e.step_item_attempt_failed for e in decision.events if e.HasField("step_item_attempt_failed")]
    assert failed[0].error_type == "EXPRESSION_ERROR"
    assert "now gives 3 items, not the 2" in failed[0].error_message
    assert state.steps["submit"].items is not None
    assert state.steps["submit"].items[0].phase in (ItemPhase.FAILED, ItemPhase.BACKOFF)


async def test_a_paused_map_starts_no_new_item_and_goes_on_when_resumed() -> None:
    h = Harness(latency=1.0)
    ex = await h.submit(plan(map_step(max_concurrency=1)), user=_jobs(3))
    await h.settle()
    await h.engine.pause(ex, "wait")
    h.clock.advance(1.0)
    await h.settle()
    assert len(h.caller.calls) == 1  # item 0 finished; item 1 did not start
    assert h.kinds(ex).count("step_item_succeeded") == 1
    await h.engine.resume(ex, "go")
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert len(h.caller.calls) == 3


def test_an_approval_step_cannot_be_a_map() -> None:
    approval = approval_step("ok", data={"job_ids": ["j1"]})
    approval.for_each = ITEMS
    error = _invalid(approval)
    assert error.field == "workflow_steps[0].for_each" and "approval step" in str(error)


async def test_the_application_workflow_skips_a_bad_posting_and_tells_the_user_how_many_went_through() -> None:
    h = Harness()
    fleet = h.use_fleet()
    fleet.fail("SubmitApplication", Fault("FAILED_PRECONDITION", retryable=False))
    user = journey_pb2.UserJourney(user_id="u1")
    user.journey_context.user_preferences.automation_level = journey_pb2.AUTOMATION_LEVEL_FULLY_AUTOMATIC
    user.data.update({"resume_text": "Backend engineer, Python and gRPC, 7 years."})
    application = Planner().plan("application_automation", user, plan_id="p", now=START, health={})
    ex = await h.submit(application, user={"resume_text": "Backend engineer, Python and gRPC, 7 years."})
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED, state.failure_reason
    submits = [c.idempotency_key for c in fleet.calls if c.operation == "SubmitApplication"]
    assert sorted(submits) == [f"{ex}/submit_applications/{i}" for i in range(3)]
    assert len(fleet.live()) == 2
    notify = next(c for c in fleet.calls if c.operation == "Notify")
    assert notify.payload["message"] == "We applied to 2 of your 3 best matches."
    assert len(notify.payload["data"]["applications"]) == 2


# ---- validation ---------------------------------------------------------------------------------


def _invalid(*steps: P.WorkflowStep, gates: list[P.QualityGate] | None = None) -> PlanInvalidError:
    p = plan(*steps)
    p.quality_gates.extend(gates or [])
    with pytest.raises(PlanInvalidError) as caught:
        validate_plan(p)
    return caught.value


def test_a_valid_map_step_passes_validation() -> None:
    validate_plan(plan(map_step(max_concurrency=64, skip=True, compensate=True), _notify("submit")))


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (lambda s: setattr(s, "for_each", "user.data.jobs"), "workflow_steps[0].for_each", "${EXPR}"),
        (lambda s: setattr(s, "for_each", "${user.data.jobs[}"), "workflow_steps[0].for_each", "does not compile"),
        (lambda s: setattr(s, "max_concurrency", 65), "workflow_steps[0].max_concurrency", "64"),
        (lambda s: setattr(s, "item_failure", 7), "workflow_steps[0].item_failure", "ItemFailure"),
        (
            lambda s: setattr(s.error_handling, "fallback_action", P.FALLBACK_ACTION_ALTERNATIVE),
            "workflow_steps[0].error_handling.fallback_action",
            "no alternative",
        ),
        (lambda s: setattr(s, "for_each", "${steps.notify.x}"), "workflow_steps[0].for_each", "does not depend"),
    ],
)
def test_an_invalid_map_step_is_refused_naming_the_field(change: Any, field: str, words: str) -> None:
    submit = map_step()
    change(submit)
    error = _invalid(submit, step("notify"))
    assert error.field == field and words in str(error)


def test_map_settings_without_for_each_are_refused() -> None:
    plain = step("A")
    plain.max_concurrency = 4
    assert _invalid(plain).field == "workflow_steps[0].max_concurrency"
    plain = step("A")
    plain.item_failure = P.ITEM_FAILURE_SKIP_ITEM
    assert _invalid(plain).field == "workflow_steps[0].item_failure"


def test_a_gate_that_would_rerun_a_map_step_is_refused() -> None:
    gate = P.QualityGate(gate_id="g", checkpoint="submit", action_on_failure=P.GATE_ACTION_RETRY)
    gate.criteria.add(metric="score", operator=P.COMPARISON_OPERATOR_GTE, value=50, weight=100)
    error = _invalid(map_step(), gates=[gate])
    assert error.field == "quality_gates[0].action_on_failure" and "map step" in str(error)
