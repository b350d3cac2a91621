"""The CLI's displays without a server: event lines, waiting steps and their commands, the demo's report."""

from __future__ import annotations

import io
from typing import Any

import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, plan_pb2
from rich.console import Console

from server.cli import DEFAULT_TARGET, build_parser, main
from server.cli._control import parse_payload, result_line
from server.cli._format import describe_event
from server.cli._render import render_status
from server.cli._results import run_report
from server.cli._view import ExecutionView, steps_table, summary_line
from server.cli._waiting import continue_commands, render_waiting

E = execution_pb2
ID = "6a3297c1"

JOBS = [
    {"job_id": "job-0068", "title": "Lead Backend Engineer", "company": "Fabrikam Health", "score": 100.0},
    {"job_id": "job-0107", "title": "Lead Backend Engineer", "company": "Margie's Travel", "score": 99.5},
]


def _text(renderable: Any) -> str:
    console = Console(file=io.StringIO(), width=160, color_system=None)
    console.print(renderable)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert isinstance(out, str)
    return out


def _approval(step_id: str = "approve_applications", **data: Any) -> execution_pb2.WaitingStep:
    step = E.WaitingStep(step_id=step_id, kind=E.WAIT_KIND_APPROVAL, prompt="Apply to these jobs?")
    step.data.update(data or {"job_ids": [j["job_id"] for j in JOBS], "matches": JOBS})
    step.since.FromSeconds(1_000)
    return step


def _event(**kind: Any) -> execution_pb2.ExecutionEvent:
    return E.ExecutionEvent(sequence=1, **kind)


# ---- event lines ------------------------------------------------------------------------------


def test_every_event_kind_has_a_line_of_its_own() -> None:
    for field in E.ExecutionEvent.DESCRIPTOR.oneofs_by_name["kind"].fields:
        event = E.ExecutionEvent(sequence=1)
        getattr(event, field.name).SetInParent()
        line = describe_event(event)
        assert line != field.name, f"{field.name} has no description"


@pytest.mark.parametrize(
    ("event", "expected"),
    [
        (
            _event(
                execution_unwinding=E.ExecutionUnwinding(
                    outcome=E.EXECUTION_STATE_FAILED, cause=E.END_CAUSE_STEP_FAILED, reason="step x failed"
                )
            ),
            "execution unwinding before it ends failed (step failed): step x failed",
        ),
        (_event(execution_paused=E.ExecutionPaused(reason="lunch")), "execution paused: lunch"),
        (_event(execution_resumed=E.ExecutionResumed(reason="back")), "execution resumed: back"),
        (
            _event(signal_received=E.SignalReceived(step_id="approve", signal=E.SIGNAL_APPROVE)),
            "approve got approve",
        ),
        (
            _event(step_waiting=E.StepWaiting(step_id="approve", kind=E.WAIT_KIND_APPROVAL, prompt="Apply?")),
            "approve waiting for approval: Apply?",
        ),
        (
            _event(step_waiting=E.StepWaiting(step_id="score", kind=E.WAIT_KIND_ESCALATION, gate_id="match_quality")),
            "score waiting for a decision on gate match_quality",
        ),
        (
            _event(
                compensation_started=E.CompensationStarted(
                    step_id="submit", attempt=1, agent="automation", operation="WithdrawApplication"
                )
            ),
            "submit compensation started: automation.WithdrawApplication (attempt 1)",
        ),
        (
            _event(
                compensation_attempt_failed=E.CompensationAttemptFailed(
                    step_id="submit", attempt=2, error_type="UNAVAILABLE", error_message="down"
                )
            ),
            "submit compensation attempt 2 failed: UNAVAILABLE: down, no retry left",
        ),
        (
            _event(compensation_succeeded=E.CompensationSucceeded(step_id="submit", attempt=1)),
            "submit compensated (attempt 1): its effect is undone",
        ),
        (
            _event(
                compensation_settled=E.CompensationSettled(
                    step_id="submit", state=E.COMPENSATION_STATE_FAILED, reason="retries exhausted"
                )
            ),
            "submit compensation FAILED, its effect may remain: retries exhausted",
        ),
        (
            _event(
                compensation_settled=E.CompensationSettled(
                    step_id="submit", state=E.COMPENSATION_STATE_NOT_NEEDED, reason="never applied"
                )
            ),
            "submit compensation not needed: never applied",
        ),
    ],
)
def test_an_event_line_says_what_happened(event: execution_pb2.ExecutionEvent, expected: str) -> None:
    assert describe_event(event).startswith(expected)


def test_a_signal_line_shows_its_payload() -> None:
    event = _event(signal_received=E.SignalReceived(step_id="approve", signal=E.SIGNAL_APPROVE, reason="ok"))
    event.signal_received.payload.update({"job_ids": ["job-0068"]})
    assert describe_event(event) == 'approve got approve with {"job_ids":["job-0068"]}: ok'


# ---- waiting steps and their commands ---------------------------------------------------------


def _commands(waiting: list[execution_pb2.WaitingStep], target: str = DEFAULT_TARGET) -> list[str]:
    return [command for command, _ in continue_commands(ID, waiting, target)]


def test_one_waiting_step_is_continued_without_naming_the_step_or_the_default_target() -> None:
    commands = _commands([_approval()])
    assert commands[:2] == [f"baton approve {ID}", f"baton reject {ID}"]


def test_several_waiting_steps_are_each_named_with_step() -> None:
    commands = _commands([_approval("a"), _approval("b")])
    assert f"baton approve {ID} --step a" in commands
    assert f"baton reject {ID} --step b" in commands


def test_a_step_waiting_for_agent_capacity_is_shown_with_its_limit_and_no_command() -> None:
    capacity = E.WaitingStep(
        step_id="search_jobs",
        kind=E.WAIT_KIND_CAPACITY,
        prompt="waiting for agent capacity: job_discovery.SearchJobs, bulkhead job_discovery",
    )
    capacity.data.update({"agent": "job_discovery", "limit": "bulkhead job_discovery"})
    assert _commands([capacity]) == []
    assert _commands([_approval(), capacity])[:2] == [f"baton approve {ID}", f"baton reject {ID}"]  # no --step
    text = _text(render_waiting(ID, [capacity]))
    assert "waiting for agent capacity: step search_jobs" in text
    assert "bulkhead job_discovery" in text and "to continue" not in text
    assert "agent:" not in text  # the prompt says it; the data is for programs


def test_the_commands_name_a_target_that_is_not_the_default() -> None:
    commands = _commands([_approval()], "127.0.0.1:4242")
    assert commands[0] == f"baton approve {ID} --target 127.0.0.1:4242"


def test_an_approval_of_several_jobs_shows_how_to_approve_only_some() -> None:
    commands = _commands([_approval()])
    assert f"""baton approve {ID} --payload '{{"job_ids":["job-0068"]}}'""" in commands


def test_a_waiting_approval_shows_its_prompt_and_each_job() -> None:
    out = _text(render_waiting(ID, [_approval()]))
    assert "waiting for approval: step approve_applications" in out
    assert "Apply to these jobs?" in out
    for job in JOBS:
        assert job["job_id"] in out
        assert job["title"] in out
        assert job["company"] in out
    assert "100.0" in out
    assert "99.5" in out
    assert f"baton approve {ID}" in out


def test_an_escalated_gate_asks_for_a_decision_on_the_gate() -> None:
    step = E.WaitingStep(step_id="score_matches", kind=E.WAIT_KIND_ESCALATION, gate_id="match_quality")
    out = _text(render_waiting(ID, [step]))
    assert "waiting for a decision on gate match_quality" in out
    assert "--payload" not in out


def _update(sequence: int, status: execution_pb2.ExecutionStatus) -> orchestrator_pb2.ExecutionUpdate:
    return orchestrator_pb2.ExecutionUpdate(sequence=sequence, event=E.ExecutionEvent(sequence=sequence), status=status)


def test_the_piped_view_shows_a_wait_for_capacity_a_heartbeat_carries_without_an_event_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    console = Console(highlight=False, width=160)
    capacity = E.WaitingStep(step_id="B", kind=E.WAIT_KIND_CAPACITY, prompt="waiting for agent capacity: x")
    waiting = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING, waiting=[capacity])
    with ExecutionView(console, ID, live=False) as view:
        view.restate(waiting)
        view.restate(waiting)
    out = capsys.readouterr().out
    assert out.count("waiting for agent capacity: step B") == 1 and "#" not in out
    assert view.status is waiting


def test_the_piped_view_shows_a_waiting_step_once_and_a_new_one_again(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console(highlight=False, width=160)
    waiting = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING, waiting=[_approval()])
    with ExecutionView(console, ID, live=False) as view:
        view.update(_update(1, waiting))
        view.update(_update(2, waiting))
        assert capsys.readouterr().out.count("to continue") == 1
        view.update(_update(3, E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING)))
        view.update(
            _update(4, E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING, waiting=[_approval("b")]))
        )
    out = capsys.readouterr().out
    assert out.count("to continue") == 1
    assert "waiting for approval: step b" in out


def test_the_piped_view_tells_how_to_resume_a_paused_execution(capsys: pytest.CaptureFixture[str]) -> None:
    console = Console(highlight=False, width=160)
    with ExecutionView(console, ID, live=False, target="127.0.0.1:4242") as view:
        view.update(_update(7, E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_PAUSED)))
    out = capsys.readouterr().out
    assert "#7 " in out
    assert f"baton resume {ID} --target 127.0.0.1:4242" in out


def test_the_status_shows_waiting_steps_and_compensations() -> None:
    status = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING, waiting=[_approval()])
    status.compensations.add(
        step_id="submit_applications",
        state=E.COMPENSATION_STATE_FAILED,
        agent="automation",
        operation="WithdrawApplication",
        attempts=6,
        error_message="board down",
    )
    console = Console(file=io.StringIO(), width=160, color_system=None)
    render_status(console, status)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert "waiting for approval: step approve_applications" in out
    assert f"baton approve {ID}" in out
    assert "automation.WithdrawApplication" in out
    assert "FAILED (its effect may remain)" in out
    assert "board down" in out


@pytest.mark.parametrize(
    ("report", "line"),
    [
        (E.CallbackReport(state=E.CALLBACK_STATE_PENDING, delivery_id="d1"), "callback       pending (delivery d1)"),
        (
            E.CallbackReport(state=E.CALLBACK_STATE_DELIVERED, delivery_id="d1", attempts=3, detail="HTTP 204"),
            "callback       delivered, 3 attempts: HTTP 204 (delivery d1)",
        ),
        (
            E.CallbackReport(state=E.CALLBACK_STATE_FAILED, delivery_id="d1", attempts=1, detail="HTTP 410 'gone'"),
            "callback       failed, 1 attempts: HTTP 410 'gone' (delivery d1)",
        ),
    ],
)
def test_the_status_of_an_ended_execution_says_where_its_callback_stands(report: Any, line: str) -> None:
    status = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_COMPLETED, callback=report)
    console = Console(file=io.StringIO(), width=160, color_system=None)
    render_status(console, status)
    out = console.file.getvalue()  # type: ignore[attr-defined]
    assert line in out
    render_status(console := Console(file=io.StringIO(), width=160, color_system=None), E.ExecutionStatus())
    assert "callback" not in console.file.getvalue()  # type: ignore[attr-defined]


# ---- the demo's report ------------------------------------------------------------------------


def _failed_attempt(step_id: str, attempt: int, error: str, *, retry: bool) -> execution_pb2.ExecutionEvent:
    failed = E.StepAttemptFailed(step_id=step_id, attempt=attempt, error_type=error, error_message="x")
    if retry:
        failed.retry_at.FromSeconds(5)
    return _event(step_attempt_failed=failed)


def test_the_report_counts_retries_breaker_trips_fallbacks_and_compensations() -> None:
    events = [
        _event(step_started=E.StepStarted(step_id="search", attempt=1, agent="job_discovery")),
        _failed_attempt("search", 1, "UNAVAILABLE", retry=True),
        _event(step_started=E.StepStarted(step_id="search", attempt=2, agent="job_discovery")),
        _failed_attempt("search", 2, "CIRCUIT_OPEN", retry=True),
        _event(step_started=E.StepStarted(step_id="notify", attempt=1, agent="ui_ux")),
        _failed_attempt("notify", 1, "UNAVAILABLE", retry=False),
        _event(
            step_failed=E.StepFailed(
                step_id="notify", error_type="UNAVAILABLE", fallback_action=plan_pb2.FALLBACK_ACTION_SKIP
            )
        ),
        _event(step_skipped=E.StepSkipped(step_id="notify", cause=E.SKIP_CAUSE_FALLBACK, reason="fallback")),
        _event(step_skipped=E.StepSkipped(step_id="cond", cause=E.SKIP_CAUSE_CONDITION_FALSE, reason="false")),
    ]
    status = E.ExecutionStatus(
        execution_id=ID, status=E.EXECUTION_STATE_FAILED, end_cause=E.END_CAUSE_STEP_FAILED, failure_reason="boom"
    )
    status.compensations.add(
        step_id="submit", state=E.COMPENSATION_STATE_SUCCEEDED, agent="automation", operation="WithdrawApplication"
    )
    report = run_report(status, events)
    assert report.retry_count == 2
    assert report.retries == ["search: 2 retries after 1 UNAVAILABLE, 1 CIRCUIT_OPEN"]
    assert report.breaker_count == 1
    assert report.breaker_trips == ["job_discovery: refused search attempt 2"]
    assert report.fallbacks == ["notify skipped after failing (UNAVAILABLE)"]
    assert report.compensations == ["submit by automation.WithdrawApplication: undone"]
    assert report.outcome == "failed (step failed): boom"
    assert not report.quiet


def test_a_step_skipped_in_degraded_mode_after_failing_is_one_fallback() -> None:
    events = [
        _event(step_started=E.StepStarted(step_id="record", attempt=1, agent="analytics")),
        _failed_attempt("record", 1, "UNAVAILABLE", retry=False),
        _event(
            step_failed=E.StepFailed(
                step_id="record", error_type="UNAVAILABLE", fallback_action=plan_pb2.FALLBACK_ACTION_SKIP
            )
        ),
        _event(
            step_skipped=E.StepSkipped(
                step_id="record", cause=E.SKIP_CAUSE_DEGRADED, reason="agent analytics unavailable (UNAVAILABLE)"
            )
        ),
    ]
    report = run_report(E.ExecutionStatus(status=E.EXECUTION_STATE_COMPLETED), events)
    assert report.fallback_count == 1
    assert report.fallbacks == ["record skipped in degraded mode: agent analytics unavailable (UNAVAILABLE)"]


def test_the_report_names_the_items_of_a_map_step_that_were_retried_skipped_and_undone() -> None:
    item_retry = E.StepItemAttemptFailed(step_id="submit", item=1, attempt=1, error_type="UNAVAILABLE")
    item_retry.retry_at.FromSeconds(5)
    undo_retry = E.CompensationAttemptFailed(step_id="submit", item=0, attempt=1, error_type="CIRCUIT_OPEN")
    undo_retry.retry_at.FromSeconds(9)
    events = [
        _event(step_item_started=E.StepItemStarted(step_id="submit", item=1, attempt=1, agent="automation")),
        _event(step_item_attempt_failed=item_retry),
        _event(
            step_item_failed=E.StepItemFailed(
                step_id="submit", item=2, error_type="INVALID_ARGUMENT", item_failure=plan_pb2.ITEM_FAILURE_SKIP_ITEM
            )
        ),
        _event(compensation_started=E.CompensationStarted(step_id="submit", item=0, attempt=1, agent="automation")),
        _event(compensation_attempt_failed=undo_retry),
    ]
    status = E.ExecutionStatus(status=E.EXECUTION_STATE_FAILED)
    status.compensations.add(
        step_id="submit",
        item=0,
        state=E.COMPENSATION_STATE_SUCCEEDED,
        agent="automation",
        operation="WithdrawApplication",
    )
    report = run_report(status, events)
    assert report.retries == [
        "submit item 1: 1 retry after 1 UNAVAILABLE",
        "submit item 0 (compensation): 1 retry after 1 CIRCUIT_OPEN",
    ]
    assert report.breaker_trips == ["automation: refused submit item 0 (compensation) attempt 1"]
    assert report.fallbacks == ["submit item 2 skipped after failing (INVALID_ARGUMENT)"]
    assert report.items_fell_back
    assert report.compensations == ["submit item 0 by automation.WithdrawApplication: undone"]


def test_a_map_steps_row_shows_its_items_done_of_total() -> None:
    status = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING)
    status.performance_metrics.step_timings.add(
        step_id="submit", status=E.STEP_STATE_RUNNING, items_total=3, items_done=2, items_skipped=1
    )
    assert "(2/3 items, 1 skipped)" in _text(steps_table(status, None))


def test_the_piped_view_shows_a_running_map_steps_items(capsys: pytest.CaptureFixture[str]) -> None:
    view = ExecutionView(Console(file=io.StringIO()), ID, live=False)
    update = orchestrator_pb2.ExecutionUpdate(sequence=9)
    update.event.step_item_succeeded.step_id = "submit"
    update.status.status = E.EXECUTION_STATE_RUNNING
    update.status.progress.total_steps = 1
    update.status.performance_metrics.step_timings.add(
        step_id="submit", status=E.STEP_STATE_RUNNING, items_total=3, items_done=1
    )
    view.update(update)
    assert "[0/1 steps, running, submit 1/3 items]" in capsys.readouterr().out


def test_a_run_without_failures_has_a_quiet_report() -> None:
    report = run_report(E.ExecutionStatus(status=E.EXECUTION_STATE_COMPLETED), [])
    assert report.quiet
    assert report.outcome == "completed"


# ---- the control commands' parsing ------------------------------------------------------------


def test_a_payload_must_be_a_json_object() -> None:
    assert dict(parse_payload('{"job_ids": ["job-1"]}'))["job_ids"][0] == "job-1"
    assert len(parse_payload(None)) == 0


@pytest.mark.parametrize(("text", "message"), [("{oops", "not JSON"), ("[1, 2]", "expected a JSON object")])
def test_a_bad_payload_is_bad_usage_before_any_call(
    text: str, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    # The target is unreachable: a usage error must come before any call.
    assert main(["approve", ID, "--payload", text, "--target", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --payload: ")
    assert message in err


def test_signal_accepts_only_approve_reject_or_input() -> None:
    parser = build_parser()
    assert parser.parse_args(["signal", ID, "input", "--payload", "{}"]).signal == "input"
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args(["signal", ID, "maybe"])
    assert exit_.value.code == 2


def test_a_result_line_names_the_state_and_what_still_waits() -> None:
    status = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING, waiting=[_approval()])
    assert result_line("input given", status) == (
        f"input given: execution {ID} running (waiting for approval: approve_applications)"
    )
    done = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_CANCELLED, failure_reason="rejected")
    assert result_line("rejected", done) == f"rejected: execution {ID} cancelled (rejected)"


@pytest.mark.parametrize(("errors", "counted"), [(0, "0 errors"), (1, "1 error"), (4, "4 errors")])
def test_the_outcome_line_counts_errors_in_the_right_number(errors: int, counted: str) -> None:
    status = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_CANCELLED)
    status.error_summary.total_errors = errors
    assert summary_line(status).endswith(f"steps, {counted}")


def test_the_outcome_line_and_the_status_name_the_run_of_a_rerun_execution_only() -> None:
    first = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_COMPLETED, run=1)
    assert "(run" not in summary_line(first)
    rerun = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_COMPLETED, run=3)
    assert summary_line(rerun).startswith(f"execution {ID} completed in 0.000s (run 3): ")
    console = Console(file=io.StringIO(), width=160, color_system=None)
    render_status(console, rerun)
    assert "3 (rerun 2 times)" in console.file.getvalue()  # type: ignore[attr-defined]


def test_a_result_line_does_not_repeat_the_state_the_reason_starts_with() -> None:
    rejected = E.ExecutionStatus(
        execution_id=ID,
        status=E.EXECUTION_STATE_CANCELLED,
        failure_reason="cancelled: approval approve_applications rejected: not now",
    )
    assert result_line("rejected", rejected) == (
        f"rejected: execution {ID} cancelled (approval approve_applications rejected: not now)"
    )
    cancelled = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_CANCELLED, failure_reason="cancelled")
    assert result_line("cancelled", cancelled) == f"cancelled: execution {ID} cancelled"


def test_the_live_view_shows_the_waiting_step_the_commands_and_the_compensations() -> None:
    status = E.ExecutionStatus(execution_id=ID, status=E.EXECUTION_STATE_RUNNING, waiting=[_approval()])
    status.performance_metrics.step_timings.add(
        step_id="submit", status=E.STEP_STATE_COMPLETED, compensation=E.COMPENSATION_STATE_RUNNING
    )
    status.compensations.add(step_id="submit", state=E.COMPENSATION_STATE_RUNNING, agent="automation")
    view = ExecutionView(Console(file=io.StringIO()), ID, live=False, target="127.0.0.1:4242")
    view.status = status
    out = _text(view)
    assert "waiting for approval: step approve_applications" in out
    assert f"baton reject {ID} --target 127.0.0.1:4242" in out
    assert "compensation" in out
    assert "running" in out
