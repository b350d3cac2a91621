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


# ---- issue 11.7: quality requirements, notices, recommendations ----------------------------------


def _succeeded(step_id: str, score: float, attempt: int = 1) -> E.StepSucceeded:
    done = E.StepSucceeded(step_id=step_id, attempt=attempt)
    done.quality.score = score
    return done


def test_a_response_below_quality_requirements_is_a_low_quality_error_and_a_degraded_run() -> None:
    a = step("A")
    a.inputs.quality_requirements = 60
    h = History(plan(a, step("B", "A")))
    h.add("step_started", started("A")).add("step_succeeded", _succeeded("A", 42.5))
    status = render(h.state)
    (detail,) = status.error_summary.error_details
    assert (detail.step_id, detail.error_type, detail.impact) == ("A", "LOW_QUALITY", E.IMPACT_MEDIUM)
    assert detail.error_message == "quality 42.5 is below the step's quality_requirements 60"
    assert detail.recovery_action == "continue_degraded"
    assert status.error_summary.recovered_errors == 0
    assert status.degraded and "step A: quality 42.5" in status.degraded_reasons[0]
    assert any("scored 42.5, below its bar of 60" in line for line in status.results.recommendations)


def test_a_response_at_the_bar_or_without_one_is_no_error() -> None:
    a = step("A")
    a.inputs.quality_requirements = 60
    h = History(plan(a, step("B", "A")))
    h.add("step_started", started("A")).add("step_succeeded", _succeeded("A", 60.0))
    h.add("step_started", started("B")).add("step_succeeded", _succeeded("B", 1.0))
    status = render(h.state)
    assert status.error_summary.total_errors == 0 and not status.degraded
    assert list(status.results.recommendations) == []


def test_the_failure_of_a_step_with_notification_required_says_the_user_was_told() -> None:
    a = step("A", retries=0)
    a.error_handling.notification_required = True
    h = History(plan(a, step("B", "A", retries=0)))
    h.add("step_started", started("A")).add("step_attempt_failed", _attempt_failed(1, retry=False))
    h.add("step_failed", E.StepFailed(step_id="A", error_type="INTERNAL", fallback_action=P.FALLBACK_ACTION_SKIP))
    h.add("step_skipped", E.StepSkipped(step_id="A", cause=E.SKIP_CAUSE_FALLBACK))
    status = render(h.state)
    (detail,) = status.error_summary.error_details
    assert detail.user_notified and detail.recovery_action == "skip"
    assert "Step A was skipped after INTERNAL" in status.results.recommendations[0]


def test_recovered_retries_are_advised_per_agent_and_a_failed_run_points_at_rerun() -> None:
    h = History(plan(step("A", retries=1), step("B", "A", retries=0)))
    h.add("step_started", started("A")).add("step_attempt_failed", _attempt_failed(1, retry=True))
    h.add("step_started", started("A", 2)).add("step_succeeded", _succeeded("A", 90.0, attempt=2))
    h.add("step_started", started("B"))
    failed = E.StepAttemptFailed(step_id="B", attempt=1, error_type="UNAVAILABLE", error_message="down")
    h.add("step_attempt_failed", failed)
    h.add("step_failed", E.StepFailed(step_id="B", error_type="UNAVAILABLE", fallback_action=P.FALLBACK_ACTION_FAIL))
    h.add("execution_failed", E.ExecutionFailed(reason="step B failed", step_id="B"))
    advice = list(render(h.state).results.recommendations)
    assert advice[0].startswith("Agent analytics needed 1 retry in this run (INTERNAL)")
    assert advice[-1].startswith("Step B ended the run; once its cause is fixed, RerunExecution (baton rerun ex)")
    assert not any(detail.user_notified for detail in render(h.state).error_summary.error_details)
