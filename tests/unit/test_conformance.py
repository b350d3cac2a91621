"""The engine's conformance table: one row per promise of DESIGN.md and issue 11, each run end to end.

A row is a plan, what each agent answers (in order, per agent and operation), and what must come
of it: the execution's end state, the steps called in order, and event kinds that must appear in
that order. Each row runs on the engine with the fake clock, fake caller and memory store, and
again with the process dying while its first call is in flight (the same outcome; that call is
made again with the same idempotency key, nothing else twice). Rows are data: a new semantic is
a new row (tests/unit/test_admission_engine.py holds admission's, which need several executions).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import pytest
from baton.v1 import execution_pb2, plan_pb2

from server.engine.ports import AgentCallError
from tests.unit.engine_support import Harness, plan, step, submit_step
from tests.unit.fakes import Outcome, invalid, reply, unavailable

E = execution_pb2
P = plan_pb2


def circuit_open(retry_after: float = 30.0) -> AgentCallError:
    return AgentCallError("CIRCUIT_OPEN", "breaker open", retryable=True, retry_after=retry_after)


@dataclass(frozen=True)
class Row:
    semantic: str
    """The promise, in words (the test id)."""
    plan: Callable[[], plan_pb2.OrchestrationPlan]
    script: dict[tuple[str, str], list[Outcome]]
    status: int
    """The execution's end state."""
    calls: list[str]
    """`step_id` of every agent call, in order: `A[2]` for item 2 of map step A, `A!` for a
    compensation, `A~` for a notice to the user, `A@2` for a call of run 2 (a rerun)."""
    kinds: list[str] = field(default_factory=list)
    """Event kinds that must appear in this order (others may come between)."""
    degraded: bool = False
    user: dict[str, object] = field(default_factory=dict)
    """The submission's user_context.data."""
    then: Callable[[Harness, str], Awaitable[None]] | None = None
    """Done once the execution first ends (a rerun, say); the row's outcome is after it."""


def _optional_b() -> plan_pb2.OrchestrationPlan:
    p = plan(step("A"), step("B", "A", agent="matching_intelligence", operation="ScoreJobs", optional=True, retries=0))
    p.execution_strategy.fallback_strategy.degraded_mode = True
    return p


def _fallback_skip() -> plan_pb2.OrchestrationPlan:
    return plan(step("A", retries=0, fallback=P.FALLBACK_ACTION_SKIP), step("B", "A"))


def _alternative() -> plan_pb2.OrchestrationPlan:
    return plan(step("A", retries=0, fallback=P.FALLBACK_ACTION_ALTERNATIVE, alternative=("ui_ux", "RenderDashboard")))


def _saga() -> plan_pb2.OrchestrationPlan:
    return plan(submit_step("submit"), step("B", "submit", retries=0))


def _quality_bar(*, enforce: bool = False, fallback: int = 0) -> Callable[[], plan_pb2.OrchestrationPlan]:
    def build() -> plan_pb2.OrchestrationPlan:
        a = step("A", retries=3, fallback=fallback)
        a.inputs.quality_requirements = 50
        a.inputs.fail_below_quality = enforce
        return plan(a, step("B", "A"))

    return build


def _notified(
    fallback: int = 0, alternative: tuple[str, str] | None = None
) -> Callable[[], plan_pb2.OrchestrationPlan]:
    def build() -> plan_pb2.OrchestrationPlan:
        a = step("A", retries=0, fallback=fallback, alternative=alternative)
        a.error_handling.notification_required = True
        return plan(a, step("B", "A"))

    return build


def _map(*, skip: bool) -> Callable[[], plan_pb2.OrchestrationPlan]:
    def build() -> plan_pb2.OrchestrationPlan:
        a = step("A", agent="automation", operation="SubmitApplication", retries=0)
        a.inputs.configuration.update({"user_id": "${user.user_id}", "job_ids": ["${item}"]})
        a.for_each, a.max_concurrency = "${user.data.jobs}", 1
        if skip:
            a.item_failure = P.ITEM_FAILURE_SKIP_ITEM
        return plan(a, step("B", "A"))

    return build


async def _rerun(h: Harness, execution_id: str) -> None:
    await h.engine.rerun(execution_id, "the agent is back")


ANALYTICS = ("analytics", "RecordEvents")
SUBMIT = ("automation", "SubmitApplication")
JOBS = {"jobs": ["j0", "j1", "j2"]}
ROWS = [
    Row(
        "a retryable failure is retried and the step succeeds",
        lambda: plan(step("A", retries=2)),
        {ANALYTICS: [unavailable(), reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "A"],
        ["step_started", "step_attempt_failed", "step_started", "step_succeeded", "execution_completed"],
    ),
    Row(
        "retries end after retry_count and the execution fails",
        lambda: plan(step("A", retries=2)),
        {ANALYTICS: [unavailable()] * 3},
        E.EXECUTION_STATE_FAILED,
        ["A", "A", "A"],
        ["step_attempt_failed", "step_attempt_failed", "step_failed", "execution_failed"],
    ),
    Row(
        "a non-retryable failure is not retried",
        lambda: plan(step("A", retries=5)),
        {ANALYTICS: [invalid()]},
        E.EXECUTION_STATE_FAILED,
        ["A"],
        ["step_failed", "execution_failed"],
    ),
    Row(
        "an open breaker is waited out without spending an attempt",
        lambda: plan(step("A", retries=0)),
        {ANALYTICS: [circuit_open(), reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "A"],
        ["step_attempt_failed", "step_succeeded"],
    ),
    Row(
        "breaker waits are bounded by max_circuit_waits, then attempts are spent",
        lambda: plan(step("A", retries=0), max_circuit_waits=1),
        {ANALYTICS: [circuit_open(), circuit_open()]},
        E.EXECUTION_STATE_FAILED,
        ["A", "A"],
        ["step_attempt_failed", "step_failed"],
    ),
    Row(
        "in degraded mode an optional step whose agent is unavailable is skipped, the execution degraded",
        _optional_b,
        {("matching_intelligence", "ScoreJobs"): [unavailable()]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "B"],
        ["step_succeeded", "step_skipped", "execution_completed"],
        degraded=True,
    ),
    Row(
        "fallback SKIP skips the failed step and its dependants run",
        _fallback_skip,
        {ANALYTICS: [invalid(), reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "B"],
        ["step_skipped", "step_succeeded", "execution_completed"],
        degraded=True,
    ),
    Row(
        "fallback ALTERNATIVE calls the alternative agent",
        _alternative,
        {ANALYTICS: [invalid()], ("ui_ux", "RenderDashboard"): [reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "A"],
        ["step_failed", "step_started", "step_succeeded", "execution_completed"],
    ),
    Row(
        "a failure after a compensable step unwinds it (saga) and the execution fails",
        _saga,
        {ANALYTICS: [invalid()], ("automation", "SubmitApplication"): [reply({"applications": []})]},
        E.EXECUTION_STATE_FAILED,
        ["submit", "B", "submit!"],
        ["step_succeeded", "step_failed", "execution_unwinding", "compensation_started", "execution_failed"],
    ),
    Row(
        "a response below quality_requirements is kept, recorded LOW_QUALITY, and the run degraded",
        _quality_bar(),
        {ANALYTICS: [reply({}, score=30.0), reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "B"],
        ["step_succeeded", "step_succeeded", "execution_completed"],
        degraded=True,
    ),
    Row(
        "with fail_below_quality a response below the bar fails the step unretried, and its fallback applies",
        _quality_bar(enforce=True, fallback=P.FALLBACK_ACTION_SKIP),
        {ANALYTICS: [reply({}, score=30.0), reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "B"],
        ["step_attempt_failed", "step_failed", "step_skipped", "step_succeeded", "execution_completed"],
        degraded=True,
    ),
    Row(
        "notification_required tells the user through ui_ux when the step fails",
        _notified(),
        {ANALYTICS: [invalid()]},
        E.EXECUTION_STATE_FAILED,
        ["A", "A~"],
        ["step_failed", "execution_failed"],
    ),
    Row(
        "notification_required tells the user once per call path (own call, then alternative)",
        _notified(P.FALLBACK_ACTION_ALTERNATIVE, ("ui_ux", "RenderDashboard")),
        {ANALYTICS: [invalid()], ("ui_ux", "RenderDashboard"): [invalid()]},
        E.EXECUTION_STATE_FAILED,
        ["A", "A~", "A", "A~"],
        ["step_failed", "step_failed", "execution_failed"],
    ),
    Row(
        "a map step calls once per item, in order under a cap of 1, and its dependants see the join",
        _map(skip=False),
        {SUBMIT: [reply({"n": 0}), reply({"n": 1}), reply({"n": 2})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A[0]", "A[1]", "A[2]", "B"],
        ["step_map_started", "step_item_succeeded", "step_item_succeeded", "step_item_succeeded", "step_succeeded"],
        user=JOBS,
    ),
    Row(
        "a map step with skip_item skips a failed item and goes on, the run degraded",
        _map(skip=True),
        {SUBMIT: [reply({}), invalid(), reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A[0]", "A[1]", "A[2]", "B"],
        ["step_item_succeeded", "step_item_failed", "step_item_succeeded", "step_succeeded", "execution_completed"],
        degraded=True,
        user=JOBS,
    ),
    Row(
        "a map step that fails an item (fail_step) starts no other item and fails",
        _map(skip=False),
        {SUBMIT: [reply({}), invalid()]},
        E.EXECUTION_STATE_FAILED,
        ["A[0]", "A[1]"],
        ["step_item_succeeded", "step_item_failed", "step_failed", "execution_failed"],
        user=JOBS,
    ),
    Row(
        "a rerun continues a failed run from its failed step, completed steps not called again",
        lambda: plan(step("A"), step("B", "A", retries=0)),
        {ANALYTICS: [reply({}), invalid(), reply({})]},
        E.EXECUTION_STATE_COMPLETED,
        ["A", "B", "B@2"],
        ["execution_failed", "execution_rerun", "step_succeeded", "execution_completed"],
        then=_rerun,
    ),
]


def _call_names(h: Harness) -> list[str]:
    names = []
    for recorded in h.caller.calls:
        parts = recorded.call.idempotency_key.split("/")[1:]
        run = ""
        if parts[0].startswith("run-"):
            run, parts = "@" + parts[0].removeprefix("run-"), parts[1:]
        name = parts[0] + (f"[{parts[1]}]" if len(parts) > 1 and parts[1].isdigit() else "")
        mark = {"WithdrawApplication": "!", "Notify": "~"}.get(recorded.call.operation, "")
        names.append(name + mark + run)
    return names


def _in_order(kinds: list[str], wanted: list[str]) -> bool:
    remaining = iter(kinds)
    return all(kind in remaining for kind in wanted)


def _harness(row: Row, latency: float = 0.0) -> Harness:
    h = Harness(latency=latency)
    for (agent, operation), outcomes in row.script.items():
        h.caller.script(agent, operation, *outcomes)
    return h


@pytest.mark.parametrize("row", ROWS, ids=[row.semantic for row in ROWS])
async def test_conformance(row: Row) -> None:
    h = _harness(row)
    execution_id = await h.submit(row.plan(), user=row.user)
    state = await h.run(execution_id)
    if row.then is not None:
        await row.then(h, execution_id)
        state = await h.run(execution_id)
    assert state.status == row.status
    assert _call_names(h) == row.calls
    assert _in_order(h.kinds(execution_id), row.kinds), h.kinds(execution_id)
    assert bool(state.degraded_reasons) == row.degraded, state.degraded_reasons


@pytest.mark.parametrize("row", ROWS, ids=[row.semantic for row in ROWS])
async def test_conformance_across_a_restart(row: Row) -> None:
    h = _harness(row, latency=1.0)
    execution_id = await h.submit(row.plan(), user=row.user)
    await h.settle()  # the first call is in flight, unanswered, when the process dies
    assert h.caller.in_flight == 1
    await h.restart()
    state = await h.run(execution_id)
    if row.then is not None:
        await row.then(h, execution_id)
        state = await h.run(execution_id)
    assert state.status == row.status
    assert _in_order(h.kinds(execution_id), row.kinds), h.kinds(execution_id)
    # The call in flight at the restart is made again with the same idempotency key; after it,
    # the calls are the row's.
    names = _call_names(h)
    assert names[0] == names[1] == row.calls[0]
    assert names[1:] == row.calls
    assert h.caller.calls[0].call.idempotency_key == h.caller.calls[1].call.idempotency_key
