"""The engine's behaviour over a fake clock, a scripted caller and a memory store."""

from __future__ import annotations

import ast
import itertools
import pathlib

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P

from server.engine import RetryPolicy, render
from tests.unit.engine_support import Harness, plan, step, w_plan
from tests.unit.fakes import invalid, reply, unavailable


async def test_steps_run_after_their_dependencies_and_the_execution_completes() -> None:
    h = Harness(latency=0.01)
    ex = await h.submit(w_plan())
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    order = [c.call.idempotency_key.split("/")[1] for c in h.caller.calls]
    assert order[0] == "A" and order[-1] == "E" and sorted(order[1:4]) == ["B", "C", "D"]
    starts = {c.call.idempotency_key.split("/")[1]: c.at for c in h.caller.calls}
    assert starts["B"] == starts["C"] == starts["D"] > starts["A"]
    assert h.caller.max_in_flight == 3


async def test_the_status_folded_from_stored_events_matches_the_live_state() -> None:
    h = Harness(latency=0.01)
    ex = await h.submit(w_plan())
    await h.run(ex)
    status = render(h.state(ex))
    assert status.status == E.EXECUTION_STATE_COMPLETED
    assert status.progress.completion_percentage == 100.0
    assert [t.status for t in status.performance_metrics.step_timings] == [E.STEP_STATE_COMPLETED] * 5
    assert set(status.results.primary_outputs.fields) == {"E"}
    assert set(status.results.intermediate_results.fields) == {"A", "B", "C", "D"}
    assert status.last_sequence == len(h.store.events[ex])
    assert [e.sequence for e in h.store.events[ex]] == list(range(1, len(h.store.events[ex]) + 1))


async def test_sequential_mode_runs_one_step_at_a_time_in_topological_order() -> None:
    h = Harness(latency=0.01)
    ex = await h.submit(
        plan(step("A"), step("B", "A"), step("C", "A"), step("D", "B", "C"), mode=P.EXECUTION_MODE_SEQUENTIAL)
    )
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    assert h.caller.max_in_flight == 1
    assert [c.call.idempotency_key.split("/")[1] for c in h.caller.calls] == ["A", "B", "C", "D"]


async def test_hybrid_mode_runs_at_most_max_concurrency_steps_at_once() -> None:
    h = Harness(latency=0.01)
    steps = [step("root")] + [step(f"s{i}", "root") for i in range(6)]
    ex = await h.submit(plan(*steps, mode=P.EXECUTION_MODE_HYBRID, max_concurrency=2))
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    assert h.caller.max_in_flight == 2
    assert len(h.caller.calls) == 7


async def test_exponential_backoff_doubles_each_wait_and_is_capped() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", *[unavailable()] * 5)
    ex = await h.submit(
        plan(
            step("A", retries=5),
            initial_backoff=1.0,
            max_backoff=5.0,
            backoff_strategy=P.BACKOFF_STRATEGY_EXPONENTIAL,
            jitter=0.0,  # set to 0: unset means 0.2
        )
    )
    assert (await h.run(ex)).status == E.EXECUTION_STATE_COMPLETED
    times = [c.at for c in h.caller.calls]
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(times)]
    assert gaps == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert [c.call.idempotency_key for c in h.caller.calls] == [f"{ex}/A"] * 6
    assert [c.call.attempt for c in h.caller.calls] == [1, 2, 3, 4, 5, 6]


async def test_linear_backoff_grows_by_the_initial_wait() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", *[unavailable()] * 3)
    ex = await h.submit(
        plan(step("A", retries=3), initial_backoff=0.5, backoff_strategy=P.BACKOFF_STRATEGY_LINEAR, jitter=0.0)
    )
    await h.run(ex)
    times = [c.at for c in h.caller.calls]
    assert [(b - a).total_seconds() for a, b in itertools.pairwise(times)] == [0.5, 1.0, 1.5]


def test_jitter_moves_each_wait_within_its_fraction() -> None:
    policy = RetryPolicy(initial_backoff=1.0, multiplier=2.0, max_backoff=100.0, jitter=0.25)
    assert policy.backoff(3, 0.0) == pytest.approx(3.0)
    assert policy.backoff(3, 0.5) == pytest.approx(4.0)
    assert policy.backoff(3, 0.999999) == pytest.approx(5.0, abs=1e-5)


def test_custom_backoff_repeats_its_last_wait() -> None:
    policy = RetryPolicy(strategy=P.BACKOFF_STRATEGY_CUSTOM, custom=(0.1, 0.7))
    assert [policy.backoff(n, 0.5) for n in (1, 2, 3)] == [0.1, 0.7, 0.7]


async def test_exhausted_retries_with_fallback_fail_fail_the_execution() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", *[unavailable("down")] * 3)
    ex = await h.submit(plan(step("A", retries=2), step("B", "A")))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert "step A failed: UNAVAILABLE: down" in state.failure_reason
    assert len(h.caller.calls) == 3
    assert state.steps["B"].state == E.STEP_STATE_SKIPPED
    status = render(state)
    assert status.error_summary.total_errors == 3
    assert status.error_summary.critical_errors == 1


async def test_a_business_error_is_not_retried() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", invalid("user_id is required"))
    ex = await h.submit(plan(step("A", retries=3)))
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert len(h.caller.calls) == 1


async def test_fallback_skip_skips_the_step_and_the_execution_completes_degraded() -> None:
    h = Harness()
    h.caller.script("ui_ux", "Notify", unavailable())
    ex = await h.submit(
        plan(
            step("A"),
            step("N", "A", agent="ui_ux", operation="Notify", retries=0, fallback=P.FALLBACK_ACTION_SKIP),
            step("Z", "N"),
        )
    )
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert state.steps["N"].state == E.STEP_STATE_SKIPPED
    assert state.steps["Z"].state == E.STEP_STATE_COMPLETED
    assert render(state).degraded
    assert "step N skipped" in render(state).degraded_reasons[0]


async def test_fallback_alternative_calls_the_alternative_operation_after_retries() -> None:
    h = Harness()
    h.caller.script("job_discovery", "SearchJobs", unavailable(), unavailable())
    ex = await h.submit(
        plan(
            step(
                "S",
                agent="job_discovery",
                operation="SearchJobs",
                retries=1,
                fallback=P.FALLBACK_ACTION_ALTERNATIVE,
                alternative=("analytics", "GetInsights"),
            )
        )
    )
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert [(c.call.agent, c.call.operation) for c in h.caller.calls] == [
        ("job_discovery", "SearchJobs"),
        ("job_discovery", "SearchJobs"),
        ("analytics", "GetInsights"),
    ]
    assert state.steps["S"].attempts == 3
    assert render(state).performance_metrics.step_timings[0].agent == "analytics"


async def test_an_optional_step_of_an_unavailable_agent_is_skipped_in_degraded_mode() -> None:
    h = Harness()
    h.caller.script("ui_ux", "Notify", unavailable())
    p = plan(step("A"), step("N", "A", agent="ui_ux", operation="Notify", retries=0, optional=True))
    p.execution_strategy.fallback_strategy.degraded_mode = True
    state = await h.run(await h.submit(p))
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert state.steps["N"].skip_cause == E.SKIP_CAUSE_DEGRADED


async def test_each_attempt_gets_the_step_timeout_as_its_deadline() -> None:
    h = Harness()
    ex = await h.submit(plan(step("A", timeout=2.5)))
    await h.run(ex)
    assert h.caller.calls[0].call.timeout == 2.5


async def test_the_execution_fails_when_its_timeout_passes() -> None:
    h = Harness(latency=100.0)
    ex = await h.submit(plan(step("A", timeout=1000.0)), execution_timeout=10.0)
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_FAILED
    assert state.failure_reason == "execution timed out"
    assert state.end_time is not None and state.start_time is not None
    assert state.end_time.ToNanoseconds() - state.start_time.ToNanoseconds() == 10 * 10**9
    assert h.caller.calls[0].call.timeout == 10.0  # capped by the time left


async def test_cancel_ends_the_execution_and_records_the_reason() -> None:
    h = Harness(latency=50.0)
    ex = await h.submit(w_plan())
    await h.settle()
    await h.engine.cancel(ex, "user changed their mind")
    state = h.state(ex)
    assert state.status == E.EXECUTION_STATE_CANCELLED
    assert state.failure_reason == "cancelled: user changed their mind"
    assert h.kinds(ex)[-1] == "execution_cancelled"
    assert h.engine.active == 0


async def test_ending_listeners_hear_once_when_an_execution_begins_to_unwind_and_calls_carry_their_origin() -> None:
    h = Harness(latency=50.0)
    told: list[str] = []
    h.engine.add_ending_listener(told.append)
    ex = await h.submit(w_plan())
    await h.settle()
    assert told == []
    await h.engine.cancel(ex, "user changed their mind")
    assert told == [ex]
    origin = h.caller.calls[0].call.origin
    assert origin is not None and (origin.execution_id, origin.step_id, origin.attempt, origin.kind) == (
        ex,
        "A",
        1,
        "step",
    )


async def test_step_inputs_resolve_expressions_over_earlier_outputs_and_the_user() -> None:
    h = Harness()
    h.caller.script("job_discovery", "SearchJobs", reply({"jobs": [{"job_id": "j1"}, {"job_id": "j2"}]}))
    ex = await h.submit(
        plan(
            step("S", agent="job_discovery", operation="SearchJobs", config={"user_id": "${user.user_id}"}),
            step(
                "M",
                "S",
                agent="automation",
                operation="SubmitApplication",
                config={
                    "user_id": "${user.user_id}",
                    "job_ids": "${steps.S.jobs[:1].job_id}",
                    "cover_note": "${user.data.note}",
                    "document_id": "${user.data.missing}",
                },
            ),
        ),
        user={"note": "hello"},
    )
    await h.run(ex)
    payload = h.caller.calls_to("automation")[0].call.payload
    assert payload == {"user_id": "u1", "job_ids": ["j1"], "cover_note": "hello"}


async def test_a_conditional_step_whose_condition_is_false_is_skipped() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({"recorded": 0}))
    cond = step("C", "A", agent="ui_ux", operation="Notify")
    cond.timing.scheduling = P.SCHEDULING_CONDITIONAL
    cond.timing.condition = "steps.A.recorded > `0`"
    state = await h.run(await h.submit(plan(step("A"), cond)))
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert state.steps["C"].state == E.STEP_STATE_SKIPPED
    assert h.caller.calls_to("ui_ux") == []


async def test_a_scheduled_step_starts_after_its_delay() -> None:
    h = Harness()
    delayed = step("B", "A")
    delayed.timing.scheduling = P.SCHEDULING_SCHEDULED
    delayed.timing.delay.FromSeconds(90)
    ex = await h.submit(plan(step("A"), delayed))
    await h.run(ex)
    a, b = h.caller.calls
    assert (b.at - a.at).total_seconds() == 90
    assert "step_delayed" in h.kinds(ex)


def _gate(action: int, minimum: float) -> P.QualityGate:
    gate = P.QualityGate(gate_id="g", checkpoint="A", action_on_failure=action)  # type: ignore[arg-type]
    gate.criteria.add(metric="accuracy", operator=P.COMPARISON_OPERATOR_GTE, value=minimum, weight=100)
    return gate


async def test_a_failed_quality_gate_with_stop_fails_the_execution() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({}, accuracy=40.0))
    p = plan(step("A"), step("B", "A"))
    p.quality_gates.append(_gate(P.GATE_ACTION_STOP, 80))
    state = await h.run(await h.submit(p))
    assert state.status == E.EXECUTION_STATE_FAILED
    assert "quality gate g failed" in state.failure_reason
    assert state.steps["B"].state == E.STEP_STATE_SKIPPED


async def test_a_failed_quality_gate_with_retry_runs_the_checkpoint_again_once() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({}, accuracy=40.0), reply({}, accuracy=95.0))
    p = plan(step("A"), step("B", "A"))
    p.quality_gates.append(_gate(P.GATE_ACTION_RETRY, 80))
    ex = await h.submit(p)
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    # The re-run is the same step: the agent sees the same key (so an effect would apply once).
    assert [(c.call.idempotency_key, c.call.attempt) for c in h.caller.calls][:2] == [(f"{ex}/A", 1), (f"{ex}/A", 2)]
    gates = [e.gate_evaluated for e in h.store.events[ex] if e.WhichOneof("kind") == "gate_evaluated"]
    assert [(g.passed, g.action) for g in gates] == [(False, P.GATE_ACTION_RETRY), (True, 0)]


async def test_a_failed_quality_gate_with_continue_degraded_goes_on_degraded() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", reply({}, accuracy=40.0))
    p = plan(step("A"), step("B", "A"))
    p.quality_gates.append(_gate(P.GATE_ACTION_CONTINUE_DEGRADED, 80))
    state = await h.run(await h.submit(p))
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert render(state).degraded


async def test_recovery_reissues_an_unfinished_attempt_with_the_same_idempotency_key() -> None:
    h = Harness(latency=5.0)
    ex = await h.submit(plan(step("A"), step("B", "A")))
    await h.settle()
    assert h.kinds(ex) == ["execution_started", "step_started"]
    await h.engine.close()  # the process "dies" with A in flight
    from server.engine import Engine

    h.engine = Engine(h.store, h.caller, h.clock)
    assert await h.engine.recover() == 1
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    calls = [(c.call.idempotency_key, c.call.attempt) for c in h.caller.calls]
    assert calls == [(f"{ex}/A", 1), (f"{ex}/A", 1), (f"{ex}/B", 1)]


async def test_recovery_waits_only_for_what_is_left_of_a_retry_backoff() -> None:
    h = Harness()
    h.caller.script("analytics", "RecordEvents", unavailable())
    ex = await h.submit(plan(step("A", retries=1), initial_backoff=60.0, max_backoff=120.0, jitter=0.0))
    await h.settle()
    await h.engine.close()
    h.clock.advance(45)
    from server.engine import Engine

    h.engine = Engine(h.store, h.caller, h.clock)
    await h.engine.recover()
    await h.run(ex)
    assert (h.caller.calls[1].at - h.caller.calls[0].at).total_seconds() == 60


async def test_an_identical_request_id_returns_the_first_execution() -> None:
    h = Harness()
    from baton.v1 import journey_pb2

    from server.engine import Submission

    sub = Submission(
        execution_id="x1", plan=w_plan(), user_context=journey_pb2.UserJourney(user_id="u1"), request_id="req-1"
    )
    first, created = await h.engine.submit(sub)
    again, created_again = await h.engine.submit(Submission(**{**sub.__dict__, "execution_id": "x2"}))
    assert created and not created_again
    assert again.execution_id == first.execution_id == "x1"


def test_the_engine_imports_no_grpc_no_sql_driver_and_no_wall_clock() -> None:
    forbidden = {
        "grpc",
        "sqlite3",
        "asyncpg",
        "psycopg",
        "time",
        "aiosqlite",
        "server.store",
        "server.api",
        # Tracing happens at the edge (agents_clients, server.api), from what the engine stores.
        "opentelemetry",
        "server.telemetry",
    }
    engine_dir = pathlib.Path(__file__).resolve().parents[2] / "server" / "engine"
    for path in engine_dir.glob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                assert not {name.split(".")[0], ".".join(name.split(".")[:2])} & forbidden, (
                    f"{path.name} imports {name}"
                )
            if isinstance(node, ast.Attribute) and node.attr == "sleep":
                assert not (isinstance(node.value, ast.Name) and node.value.id == "asyncio"), path.name
            if isinstance(node, ast.Attribute) and node.attr in ("now", "utcnow", "today"):
                assert not (isinstance(node.value, ast.Name) and node.value.id in ("datetime", "date")), path.name


async def test_a_runner_that_dies_on_a_failed_write_is_restarted_from_the_store() -> None:
    h = Harness()
    real_append = h.store.append
    failures = [RuntimeError("disk full")]

    async def flaky_append(*args: object, **kwargs: object) -> None:
        if failures and h.store.appends == 2:
            raise failures.pop()
        await real_append(*args, **kwargs)  # type: ignore[arg-type]

    h.store.append = flaky_append  # type: ignore[method-assign]
    ex = await h.submit(w_plan())
    state = await h.run(ex)
    assert state.status == E.EXECUTION_STATE_COMPLETED
    assert not failures  # the write did fail once
    assert [e.sequence for e in h.store.events[ex]] == list(range(1, len(h.store.events[ex]) + 1))
