"""The status's error summary: what it counts as recovered (execution.proto's ErrorSummary contract)."""

from __future__ import annotations

from datetime import timedelta

from baton.v1 import execution_pb2 as E
from baton.v1 import plan_pb2 as P

from server.engine import render
from tests.unit.engine_support import plan, step
from tests.unit.fakes import START
from tests.unit.test_fold import History, started


def _attempt_failed(attempt: int, *, retry: bool) -> E.StepAttemptFailed:
    failed = E.StepAttemptFailed(step_id="A", attempt=attempt, error_type="INTERNAL", error_message="boom")
    if retry:
        failed.retry_at.FromDatetime(START + timedelta(seconds=attempt))
    return failed


def test_a_failed_attempt_whose_retry_succeeds_is_recovered() -> None:
    h = History(plan(step("A", retries=1)))
    h.add("step_started", started("A")).add("step_attempt_failed", _attempt_failed(1, retry=True))
    h.add("step_started", started("A", 2))
    h.add("step_succeeded", E.StepSucceeded(step_id="A", attempt=2))
    summary = render(h.state).error_summary
    assert (summary.total_errors, summary.recovered_errors, summary.critical_errors) == (1, 1, 0)


def test_failed_attempts_of_a_step_that_finally_failed_are_not_counted_as_recovered() -> None:
    # ErrorSummary.recovered_errors: "Errors followed by a successful retry or fallback". Here every
    # retry failed and the step failed the execution: nothing was recovered.
    h = History(plan(step("A", retries=1)))
    h.add("step_started", started("A")).add("step_attempt_failed", _attempt_failed(1, retry=True))
    h.add("step_started", started("A", 2)).add("step_attempt_failed", _attempt_failed(2, retry=False))
    h.add("step_failed", E.StepFailed(step_id="A", error_type="INTERNAL", fallback_action=P.FALLBACK_ACTION_FAIL))
    summary = render(h.state).error_summary
    assert (summary.total_errors, summary.critical_errors) == (2, 1)
    assert summary.recovered_errors == 0
