"""The simulation's scenarios: every built-in workflow, and explicit plans for each engine mechanism."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

from baton.v1 import execution_pb2 as E
from baton.v1 import journey_pb2, plan_pb2

from server.engine import ExecutionState, SignalCommand
from server.engine.inbox import Cancel, Command, Pause, Rerun, Resume
from server.engine.state import Phase
from server.planner import Planner
from tests.simulation.harness import USER, Driver, Scenario
from tests.unit.engine_support import approval_step, plan, step, submit_step
from tests.unit.fleet import Fault

P = plan_pb2
NOW = datetime(2026, 1, 1, tzinfo=UTC)


def _user(level: int = journey_pb2.AUTOMATION_LEVEL_FULLY_AUTOMATIC) -> journey_pb2.UserJourney:
    user = journey_pb2.UserJourney(user_id=USER)
    user.journey_context.user_preferences.automation_level = level  # type: ignore[assignment]
    user.data.update({"resume_text": "Backend engineer, Python and gRPC, 7 years.", "keywords": ["backend"]})
    return user


def _manual() -> journey_pb2.UserJourney:
    return _user(journey_pb2.AUTOMATION_LEVEL_MANUAL)


def _built_in(workflow: str, user: Callable[[], journey_pb2.UserJourney] = _user) -> Callable[[], P.OrchestrationPlan]:
    def make() -> P.OrchestrationPlan:
        return Planner().plan(workflow, user(), plan_id=f"plan-{workflow}", now=NOW, health={})

    return make


def _waiting(state: ExecutionState) -> str | None:
    if state.status != E.EXECUTION_STATE_RUNNING:
        return None
    for sid in state.plan.order:
        if state.steps[sid].phase == Phase.WAITING:
            return sid
    return None


def approve(payload: dict[str, object] | None = None) -> Driver:
    def drive(state: ExecutionState) -> Command | None:
        sid = _waiting(state)
        if sid is None:
            return None
        wait = state.steps[sid].wait
        narrowed = payload
        if narrowed is None and wait is not None and isinstance(wait.data.get("job_ids"), list):
            narrowed = {"job_ids": wait.data["job_ids"][:1]}
        return SignalCommand(E.SIGNAL_APPROVE, step_id=sid, payload=dict(narrowed or {}))

    return drive


def reject(state: ExecutionState) -> Command | None:
    sid = _waiting(state)
    return SignalCommand(E.SIGNAL_REJECT, step_id=sid, reason="no") if sid is not None else None


def cancel_after(step_id: str) -> Driver:
    def drive(state: ExecutionState) -> Command | None:
        if state.unwinding is None and state.steps[step_id].phase == Phase.COMPLETED:
            return Cancel("changed my mind")
        return None

    return drive


def pause_then_resume(after: str) -> Driver:
    """Pauses once `after` completes, and resumes a paused execution."""
    paused_once: list[bool] = []

    def drive(state: ExecutionState) -> Command | None:
        if state.status == E.EXECUTION_STATE_PAUSED:
            paused_once.append(True)
            return Resume("go on")
        if not paused_once and state.steps[after].phase == Phase.COMPLETED and state.unwinding is None:
            return Pause("hold on")
        return None

    return drive


def rerun_once(from_step: str = "", before: Driver | None = None) -> Driver:
    """Reruns the execution once (with one request_id, so a retry after a crash reruns it once)
    when its first run ended failed or cancelled; `before` drives the first run."""

    def drive(state: ExecutionState) -> Command | None:
        if state.terminal:
            ended = state.status in (E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED)
            return Rerun("again", from_step=from_step, request_id="sim-rerun") if ended and state.run == 1 else None
        return before(state) if before is not None and state.run == 1 else None

    return drive


def _gate(p: P.OrchestrationPlan, action: int, checkpoint: str = "A") -> P.OrchestrationPlan:
    gate = p.quality_gates.add(gate_id="g", checkpoint=checkpoint, action_on_failure=action)  # type: ignore[arg-type]
    gate.criteria.add(metric="accuracy", operator=P.COMPARISON_OPERATOR_GTE, value=99.0, weight=1.0)
    return p


def _notify(*deps: str) -> P.WorkflowStep:
    return step("notify", *deps, agent="ui_ux", operation="Notify", retries=1)


def _map_submit(skip: bool = False) -> P.WorkflowStep:
    """A map step: one SubmitApplication per job of a literal list, withdrawn per item."""
    submit = submit_step("submit", job_ids=["${item}"])  # type: ignore[arg-type]
    submit.for_each = '${`["j1", "j2", "j3"]`}'
    submit.max_concurrency = 2
    if skip:
        submit.item_failure = P.ITEM_FAILURE_SKIP_ITEM
    submit.compensation.configuration.update({"application_ids": "${item_output.applications[*].application_id}"})
    return submit


def _submit_then_b() -> P.OrchestrationPlan:
    return plan(submit_step("A"), step("B", "A"))


MANUAL_APPLICATION = _built_in("application_automation", _manual)

SCENARIOS: list[Scenario] = [
    # Every built-in workflow, as planned for a fully automatic user.
    Scenario("document_analysis", _built_in("document_analysis")),
    Scenario("job_discovery", _built_in("job_discovery")),
    Scenario("application_automation", _built_in("application_automation")),
    Scenario("optimization", _built_in("optimization")),
    # Applying for a manual user: approve (narrowed to one job), reject, nobody answers.
    Scenario(
        "application_manual_approve", _built_in("application_automation", _manual), driver=approve(), user=_manual
    ),
    Scenario("application_manual_reject", _built_in("application_automation", _manual), driver=reject, user=_manual),
    Scenario("application_manual_timeout", _built_in("application_automation", _manual), user=_manual),
    # The built-in application run unwinds: its notification fails after submitting; or it is cancelled.
    Scenario(
        "application_notify_fails",
        _built_in("application_automation"),
        faults={"Notify": [Fault("INTERNAL", retryable=False)]},
    ),
    Scenario("application_cancelled", _built_in("application_automation"), driver=cancel_after("submit_applications")),
    # Retries, a fallback to the alternative call, a fallback skip.
    Scenario(
        "retries_and_fallbacks",
        lambda: plan(
            step("A", retries=2),
            step(
                "S",
                "A",
                agent="job_discovery",
                operation="SearchJobs",
                retries=1,
                fallback=P.FALLBACK_ACTION_ALTERNATIVE,
                alternative=("job_discovery", "GetJobDetails"),
            ),
            step("N", "A", agent="ui_ux", operation="Notify", retries=0, fallback=P.FALLBACK_ACTION_SKIP),
            initial_backoff=1.0,
        ),
        faults={
            "RecordEvents": [Fault("UNAVAILABLE"), Fault("UNAVAILABLE")],
            "SearchJobs": [Fault("UNAVAILABLE"), Fault("UNAVAILABLE")],
            "Notify": [Fault("INVALID_ARGUMENT", retryable=False)],
        },
    ),
    # Quality gates, all four actions (escalate both ways).
    Scenario("gate_stop", lambda: _gate(plan(submit_step("A"), step("B", "A")), P.GATE_ACTION_STOP)),
    Scenario("gate_continue_degraded", lambda: _gate(plan(step("A"), step("B", "A")), P.GATE_ACTION_CONTINUE_DEGRADED)),
    Scenario("gate_retry", lambda: _gate(plan(submit_step("A"), step("B", "A")), P.GATE_ACTION_RETRY)),
    Scenario(
        "gate_escalate_approve",
        lambda: _gate(plan(submit_step("A"), step("B", "A")), P.GATE_ACTION_ESCALATE),
        driver=approve({}),
    ),
    Scenario(
        "gate_escalate_reject",
        lambda: _gate(plan(submit_step("A"), step("B", "A")), P.GATE_ACTION_ESCALATE),
        driver=reject,
    ),
    # Compensation: two compensable steps undone in reverse order; a compensation that fails twice first.
    Scenario(
        "compensation_in_reverse",
        lambda: plan(
            submit_step("first", job_ids="j1"), submit_step("second", "first", job_ids="j2"), _notify("second")
        ),
        faults={"Notify": [Fault("INVALID_ARGUMENT", retryable=False)]},
    ),
    Scenario(
        "compensation_retried",
        lambda: plan(submit_step(), _notify("submit")),
        faults={"Notify": [Fault("INVALID_ARGUMENT", retryable=False)], "WithdrawApplication": [Fault()] * 2},
    ),
    # A reply lost after the effect: retried under the same key; or the step fails in doubt and is probed.
    Scenario(
        "lost_reply_retried",
        lambda: plan(submit_step(retries=2), _notify("submit")),
        faults={"SubmitApplication": [Fault("DEADLINE_EXCEEDED", after_effect=True)]},
    ),
    Scenario(
        "lost_reply_probed",
        lambda: plan(submit_step(retries=1), _notify("submit")),
        faults={"SubmitApplication": [Fault("DEADLINE_EXCEEDED", after_effect=True)] * 2},
    ),
    # Map steps: items withdrawn one by one when the run fails; a lost reply of an item, retried
    # under its key; an item skipped while the others go on.
    Scenario(
        "map_items_compensated",
        lambda: plan(_map_submit(), _notify("submit")),
        faults={"Notify": [Fault("INVALID_ARGUMENT", retryable=False)]},
    ),
    Scenario(
        "map_item_lost_reply",
        lambda: plan(_map_submit(skip=True), _notify("submit")),
        faults={
            "SubmitApplication": [Fault("DEADLINE_EXCEEDED", after_effect=True)],
            "Notify": [Fault("INVALID_ARGUMENT", retryable=False)],
        },
    ),
    Scenario(
        "map_item_skipped",
        lambda: plan(_map_submit(skip=True), step("B", "submit")),
        faults={"SubmitApplication": [Fault("INVALID_ARGUMENT", retryable=False)]},
    ),
    # Approvals in an explicit plan: approve, reject, and each timeout action.
    Scenario(
        "approval_then_submit",
        lambda: plan(
            step("A"),
            approval_step("ok", "A", data={"job_ids": ["j1", "j2"]}),
            submit_step("submit", "ok", job_ids="${steps.ok.job_ids}"),
        ),
        driver=approve(),
    ),
    Scenario(
        "reject_after_submit",
        lambda: plan(submit_step("first", job_ids="j1"), approval_step("ok", "first", data={"job_ids": ["j2"]})),
        driver=reject,
    ),
    *[
        Scenario(
            f"approval_timeout_{name}",
            lambda action=action: plan(  # type: ignore[misc]
                submit_step("first", job_ids="j1"),
                approval_step("ok", "first", data={"job_ids": ["j2"]}, timeout=60.0, on_timeout=action),
                step("B", "ok"),
            ),
        )
        for name, action in (
            ("fail", P.APPROVAL_TIMEOUT_ACTION_FAIL),
            ("skip", P.APPROVAL_TIMEOUT_ACTION_SKIP),
            ("approve", P.APPROVAL_TIMEOUT_ACTION_APPROVE),
        )
    ],
    # Pause and resume; cancel.
    Scenario(
        "pause_resume",
        lambda: plan(submit_step("A"), step("B", "A"), step("C", "A"), step("D", "B", "C")),
        driver=pause_then_resume("A"),
    ),
    Scenario(
        "cancel_after_submit",
        lambda: plan(submit_step("A"), step("B", "A"), step("C", "B")),
        driver=cancel_after("A"),
    ),
    # Rerun: a run that failed after submitting (its applications withdrawn) is rerun and completes;
    # a cancelled one is rerun from a named step.
    Scenario(
        "rerun_after_failure",
        lambda: plan(submit_step("A"), step("B", "A"), _notify("B")),
        faults={"Notify": [Fault("INVALID_ARGUMENT", retryable=False)]},
        driver=rerun_once(),
    ),
    Scenario(
        "rerun_from_step_after_cancel",
        lambda: plan(step("A"), submit_step("S", "A"), step("B", "S"), step("C", "B")),
        driver=rerun_once("A", before=cancel_after("S")),
    ),
]
