"""Unit tests of the planner: the built-in definitions and every adaptation rule."""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from baton.v1 import common_pb2, journey_pb2, plan_pb2
from google.protobuf import json_format
from google.protobuf.duration_pb2 import Duration

from agents_clients.catalog import operation
from server.planner import (
    DEFINITIONS_DIR,
    DefinitionError,
    PlanInvalidError,
    Planner,
    PlanningError,
    UnknownWorkflowError,
    iter_expressions,
    validate_plan,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
BUILT_IN = ["application_automation", "document_analysis", "job_discovery", "optimization"]


@pytest.fixture(scope="module")
def planner() -> Planner:
    return Planner()


def _user(**fields: Any) -> journey_pb2.UserJourney:
    body: dict[str, Any] = {"user_id": "user-1"}
    body.update(fields)
    return json_format.ParseDict(body, journey_pb2.UserJourney())


def _prefs(**prefs: str) -> journey_pb2.UserJourney:
    return _user(journey_context={"user_preferences": prefs})


def _plan(
    planner: Planner,
    workflow_type: str = "application_automation",
    user: journey_pb2.UserJourney | None = None,
    options: journey_pb2.ExecutionOptions | None = None,
    **kwargs: Any,
) -> plan_pb2.OrchestrationPlan:
    return planner.plan(workflow_type, user or _user(), options, plan_id="plan-1", now=NOW, **kwargs)


def _ids(plan: plan_pb2.OrchestrationPlan) -> list[str]:
    return [s.step_id for s in plan.workflow_steps]


def _step(plan: plan_pb2.OrchestrationPlan, step_id: str) -> plan_pb2.WorkflowStep:
    return next(s for s in plan.workflow_steps if s.step_id == step_id)


def _config(step: plan_pb2.WorkflowStep) -> dict[str, Any]:
    config: dict[str, Any] = json_format.MessageToDict(step.inputs.configuration)
    return config


def _deps(plan: plan_pb2.OrchestrationPlan) -> dict[str, list[str]]:
    return {s.step_id: list(s.dependencies) for s in plan.workflow_steps}


def _status(agent: str, health: int = common_pb2.AGENT_HEALTH_HEALTHY, **fields: Any) -> common_pb2.AgentStatus:
    status = common_pb2.AgentStatus(agent=agent, status=health)  # type: ignore[arg-type]
    for board, state in fields.get("account_health", {}).items():
        status.account_health[board] = state
    for board, remaining in fields.get("api_rate_limits", {}).items():
        status.api_rate_limits[board] = remaining
    return status


def _timeout_option(timeout: str) -> journey_pb2.ExecutionOptions:
    return json_format.ParseDict({"timeout": timeout}, journey_pb2.ExecutionOptions())


def _seconds(duration: Duration) -> float:
    return duration.ToNanoseconds() / 1e9


# ---- the built-in definitions -------------------------------------------------------------


def test_the_four_builtin_workflows_are_listed(planner: Planner) -> None:
    assert planner.workflow_types() == BUILT_IN


@pytest.mark.parametrize("workflow_type", BUILT_IN)
def test_every_builtin_workflow_plans_a_valid_plan(planner: Planner, workflow_type: str) -> None:
    plan = _plan(planner, workflow_type)
    validate_plan(plan)
    assert plan.workflow_type == workflow_type
    assert plan.workflow_version == "1.0.0"
    assert plan.workflow_steps[0].step_id == "analyze_resume"


@pytest.mark.parametrize("workflow_type", BUILT_IN)
def test_every_builtin_step_has_a_bounded_timeout_and_retries(planner: Planner, workflow_type: str) -> None:
    for step in _plan(planner, workflow_type).workflow_steps:
        assert 1 <= _seconds(step.timing.timeout) <= 10, step.step_id
        assert step.error_handling.HasField("retry_count")
        assert 2 <= step.error_handling.retry_count <= 3, step.step_id
        assert step.timing.HasField("estimated_duration")


@pytest.mark.parametrize("workflow_type", BUILT_IN)
def test_every_builtin_configuration_key_is_a_request_field(planner: Planner, workflow_type: str) -> None:
    for step in _plan(planner, workflow_type).workflow_steps:
        fields = operation(step.agent, step.operation).request_class.DESCRIPTOR.fields_by_name
        assert set(_config(step)) <= set(fields), step.step_id
        assert _config(step)["user_id"] == "${user.user_id}"


def test_the_application_workflow_is_analyze_search_score_screen_submit_then_notify_and_record(
    planner: Planner,
) -> None:
    assert _deps(_plan(planner)) == {
        "analyze_resume": [],
        "search_jobs": ["analyze_resume"],
        "score_matches": ["search_jobs"],
        "screen_compliance": ["score_matches"],
        "submit_applications": ["screen_compliance"],
        "notify_user": ["submit_applications"],
        "record_analytics": ["submit_applications"],
    }


def test_the_application_workflow_applies_to_each_of_the_three_best_matches_as_a_map_item(planner: Planner) -> None:
    plan = _plan(planner)
    submit = _step(plan, "submit_applications")
    assert (submit.agent, submit.operation) == ("automation", "SubmitApplication")
    # One SubmitApplication per job: a bad posting is skipped, the others go on.
    assert submit.for_each == "${steps.score_matches.matches[:3].job_id}"
    assert submit.item_failure == plan_pb2.ITEM_FAILURE_SKIP_ITEM
    assert _config(submit)["job_ids"] == ["${item}"]
    assert _config(_step(plan, "screen_compliance"))["job_ids"] == "${steps.score_matches.matches[:3].job_id}"
    # Nothing is submitted unless the screen says the user may go on.
    assert submit.timing.scheduling == plan_pb2.SCHEDULING_CONDITIONAL
    assert "steps.screen_compliance.compliant" in submit.timing.condition


def test_the_application_workflow_fails_rather_than_submit_unscreened(planner: Planner) -> None:
    plan = _plan(planner)
    screen = _step(plan, "screen_compliance")
    assert screen.error_handling.fallback_action == plan_pb2.FALLBACK_ACTION_FAIL
    for optional in ("notify_user", "record_analytics"):
        assert _step(plan, optional).optional
    # Telling the user is part of applying: a failed notification fails (and unwinds) the run.
    assert _step(plan, "notify_user").error_handling.fallback_action == plan_pb2.FALLBACK_ACTION_FAIL
    assert _step(plan, "record_analytics").error_handling.fallback_action == plan_pb2.FALLBACK_ACTION_SKIP
    submit = _step(plan, "submit_applications")
    assert (submit.compensation.agent, submit.compensation.operation) == ("automation", "WithdrawApplication")


def test_the_first_step_reads_the_users_resume_so_a_bare_user_id_runs_on_the_sample(planner: Planner) -> None:
    config = _config(_plan(planner).workflow_steps[0])
    assert config["content"] == "${user.data.resume_text}"


def test_later_steps_read_earlier_outputs_by_expression(planner: Planner) -> None:
    plan = _plan(planner, "job_discovery")
    assert _config(_step(plan, "search_jobs"))["skills"] == "${steps.analyze_resume.skills}"
    assert _config(_step(plan, "score_matches"))["jobs"] == "${steps.search_jobs.jobs}"


# ---- choosing the workflow ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("requested", "canonical"),
    [("job_search", "job_discovery"), ("application", "application_automation"), (" Job_Search ", "job_discovery")],
)
def test_an_alias_plans_its_canonical_workflow(planner: Planner, requested: str, canonical: str) -> None:
    plan = _plan(planner, requested)
    assert plan.workflow_type == canonical
    assert plan == _plan(planner, canonical)


@pytest.mark.parametrize(
    ("journey", "canonical"),
    [
        ("JOURNEY_TYPE_ONBOARDING", "document_analysis"),
        ("JOURNEY_TYPE_JOB_SEARCH", "job_discovery"),
        ("JOURNEY_TYPE_APPLICATION", "application_automation"),
        ("JOURNEY_TYPE_MONITORING", "job_discovery"),
        ("JOURNEY_TYPE_OPTIMIZATION", "optimization"),
    ],
)
def test_the_journey_type_stands_in_for_an_empty_workflow_type(planner: Planner, journey: str, canonical: str) -> None:
    assert _plan(planner, "", _user(journey_type=journey)).workflow_type == canonical


def test_an_explicit_workflow_type_wins_over_the_journey_type(planner: Planner) -> None:
    user = _user(journey_type="JOURNEY_TYPE_ONBOARDING")
    assert _plan(planner, "optimization", user).workflow_type == "optimization"


def test_an_unknown_workflow_type_names_the_field_and_lists_the_valid_types(planner: Planner) -> None:
    with pytest.raises(UnknownWorkflowError) as caught:
        _plan(planner, "astrology")
    error = caught.value
    assert error.field == "workflow_type"
    assert error.workflow_type == "astrology"
    assert str(error).startswith('workflow_type: unknown workflow type "astrology"')
    # The API answers every PlanningError with INVALID_ARGUMENT.
    assert isinstance(error, PlanningError)
    for name in [*BUILT_IN, "job_search", "application"]:
        assert name in str(error)


def test_no_workflow_type_and_no_journey_type_is_rejected_naming_the_field(planner: Planner) -> None:
    with pytest.raises(UnknownWorkflowError) as caught:
        _plan(planner, "")
    assert caught.value.field == "workflow_type"
    assert "journey_type" in str(caught.value)


def test_a_missing_user_id_is_rejected_naming_the_field(planner: Planner) -> None:
    with pytest.raises(PlanInvalidError) as caught:
        _plan(planner, user=journey_pb2.UserJourney())
    assert caught.value.field == "user_context.user_id"


# ---- identity and determinism -------------------------------------------------------------


def test_the_plan_records_its_id_user_workflow_version_and_creation_time(planner: Planner) -> None:
    plan = _plan(planner, "job_search")
    assert plan.plan_id == "plan-1"
    assert plan.user_id == "user-1"
    assert plan.workflow_type == "job_discovery"
    assert plan.workflow_version == "1.0.0"
    assert plan.created_at.ToDatetime(tzinfo=UTC) == NOW


def test_the_same_request_always_gives_the_same_plan(planner: Planner) -> None:
    user = _user(
        journey_context={
            "urgency_level": "URGENCY_LEVEL_HIGH",
            "user_preferences": {
                "automation_level": "AUTOMATION_LEVEL_MANUAL",
                "processing_speed": "PROCESSING_SPEED_FAST",
            },
        },
        data={"resume_text": "Jane Doe, Python", "keywords": ["python"]},
    )
    health = {
        "automation": _status("automation", account_health={"linkedin": common_pb2.ACCOUNT_HEALTH_LIMITED}),
        "job_discovery": _status("job_discovery", api_rate_limits={"indeed": 10, "linkedin": 5, "glassdoor": 3}),
    }

    def estimates(agent: str, op: str) -> tuple[float, float]:
        return (0.25, 0.9)

    first = _plan(planner, "application", user, health=health, estimates=estimates)
    second = _plan(Planner(), "application", user, health=dict(reversed(health.items())), estimates=estimates)
    assert first == second
    assert first.SerializeToString(deterministic=True) == second.SerializeToString(deterministic=True)


# ---- automation level ---------------------------------------------------------------------


_SCREENED = "steps.screen_compliance.compliant == `true` && steps.score_matches.matches[0] != `null`"


def test_manual_automation_asks_for_approval_before_submitting(planner: Planner) -> None:
    plan = _plan(planner, user=_prefs(automation_level="AUTOMATION_LEVEL_MANUAL"))
    assert _deps(plan) == {
        "analyze_resume": [],
        "search_jobs": ["analyze_resume"],
        "score_matches": ["search_jobs"],
        "screen_compliance": ["score_matches"],
        "approve_applications": ["screen_compliance"],
        "submit_applications": ["approve_applications"],
        "notify_user": ["submit_applications"],
        "record_analytics": ["submit_applications"],
    }
    approve = _step(plan, "approve_applications")
    assert approve.kind == plan_pb2.STEP_KIND_APPROVAL
    assert (approve.agent, approve.operation, _config(approve)) == ("", "", {})
    assert "Apply to these jobs?" in approve.approval.prompt
    assert _seconds(approve.approval.timeout) == 3600
    assert approve.approval.on_timeout == plan_pb2.APPROVAL_TIMEOUT_ACTION_FAIL
    # The user is shown the chosen jobs: their ids and the matches themselves.
    data = json_format.MessageToDict(approve.approval.data)
    assert data["job_ids"] == "${steps.score_matches.matches[:3].job_id}"
    assert data["matches"] == (
        "${steps.score_matches.matches[:3].{job_id: job_id, title: title, company: company, score: score}}"
    )
    # Asked only when there is something compliant to submit.
    assert approve.timing.scheduling == plan_pb2.SCHEDULING_CONDITIONAL
    assert approve.timing.condition == _SCREENED


def test_under_manual_automation_the_submission_applies_only_to_the_approved_jobs(planner: Planner) -> None:
    plan = _plan(planner, user=_prefs(automation_level="AUTOMATION_LEVEL_MANUAL"))
    submit = _step(plan, "submit_applications")
    config = _config(submit)
    assert submit.for_each == "${steps.approve_applications.job_ids}"
    assert config["job_ids"] == ["${item}"]
    assert config["document_id"] == "${steps.analyze_resume.document_id}"
    # An approval narrowed to nothing, or skipped, submits nothing.
    assert submit.timing.scheduling == plan_pb2.SCHEDULING_CONDITIONAL
    assert submit.timing.condition == "length(steps.approve_applications.job_ids || `[]`) > `0`"
    assert submit.HasField("compensation")
    assert "approve_applications: asks the user before submit_applications (automation_level manual" in (
        " | ".join(plan.execution_strategy.fallback_strategy.fallback_paths)
    )


def test_a_plan_with_an_approval_waits_for_it_within_the_execution_timeout(planner: Planner) -> None:
    manual = _prefs(automation_level="AUTOMATION_LEVEL_MANUAL")
    assert _seconds(_plan(planner).timeout) == 180
    assert _seconds(_plan(planner, user=manual).timeout) == 180 + 3600
    assert _seconds(_plan(planner, user=manual, options=_timeout_option("60s")).timeout) == 60 + 3600
    # Never past 24 hours.
    assert _seconds(_plan(planner, user=manual, options=_timeout_option("86000s")).timeout) == 86400


def test_the_approval_adds_nothing_to_the_estimated_duration(planner: Planner) -> None:
    def estimates(agent: str, op: str) -> tuple[float, float]:
        return (0.25, 0.9)

    manual = _plan(planner, user=_prefs(automation_level="AUTOMATION_LEVEL_MANUAL"), estimates=estimates)
    assert not _step(manual, "approve_applications").timing.HasField("estimated_duration")
    assert manual.estimated_duration == _plan(planner, estimates=estimates).estimated_duration


def test_semi_automatic_asks_before_the_same_high_stakes_steps(planner: Planner) -> None:
    semi = _plan(planner, user=_prefs(automation_level="AUTOMATION_LEVEL_SEMI_AUTOMATIC"))
    manual = _plan(planner, user=_prefs(automation_level="AUTOMATION_LEVEL_MANUAL"))
    assert list(semi.workflow_steps) == list(manual.workflow_steps)
    assert semi.timeout == manual.timeout
    assert any("automation_level semi_automatic" in p for p in semi.execution_strategy.fallback_strategy.fallback_paths)


@pytest.mark.parametrize("level", ["AUTOMATION_LEVEL_UNSPECIFIED", "AUTOMATION_LEVEL_FULLY_AUTOMATIC"])
def test_fully_automatic_and_unset_levels_submit_without_asking(planner: Planner, level: str) -> None:
    plan = _plan(planner, user=_prefs(automation_level=level))
    assert plan == _plan(planner)
    assert all(s.kind != plan_pb2.STEP_KIND_APPROVAL for s in plan.workflow_steps)
    assert list(_step(plan, "submit_applications").dependencies) == ["screen_compliance"]


def test_an_unknown_automation_level_is_rejected_naming_the_field(planner: Planner) -> None:
    user = _user()
    user.journey_context.user_preferences.automation_level = 9  # type: ignore[assignment]
    with pytest.raises(PlanInvalidError) as caught:
        _plan(planner, user=user)
    assert caught.value.field == "user_context.journey_context.user_preferences.automation_level"


def test_manual_automation_keeps_the_approval_in_fast_mode(planner: Planner) -> None:
    user = _prefs(automation_level="AUTOMATION_LEVEL_MANUAL", processing_speed="PROCESSING_SPEED_FAST")
    plan = _plan(planner, user=user)
    # 6 steps of 20, 6 levels of 10, 5 agents of 7 (an approval calls none), 2 gates of 5.
    assert plan.complexity_score == round(40 * 6 / 20 + 25 * 6 / 10 + 25 * 5 / 7 + 10 * 2 / 5, 1)
    assert _ids(plan) == [
        "analyze_resume",
        "search_jobs",
        "score_matches",
        "screen_compliance",
        "approve_applications",
        "submit_applications",
    ]


def test_the_application_workflow_withdraws_its_submissions_when_it_unwinds(planner: Planner) -> None:
    compensation = _step(_plan(planner), "submit_applications").compensation
    assert (compensation.agent, compensation.operation) == ("automation", "WithdrawApplication")
    assert json_format.MessageToDict(compensation.configuration) == {
        "user_id": "${user.user_id}",
        "application_ids": "${item_output.applications[*].application_id}",
        "reason": "execution did not finish; withdrawn by baton",
    }
    assert compensation.retry_count == 5
    others = [s.step_id for s in _plan(planner).workflow_steps if s.HasField("compensation")]
    assert others == ["submit_applications"]


@pytest.mark.parametrize("workflow_type", ["document_analysis", "job_discovery", "optimization"])
def test_manual_automation_changes_nothing_in_a_workflow_that_submits_nothing(
    planner: Planner, workflow_type: str
) -> None:
    manual = _plan(planner, workflow_type, _prefs(automation_level="AUTOMATION_LEVEL_MANUAL"))
    assert manual == _plan(planner, workflow_type)


# ---- speed and quality --------------------------------------------------------------------


def test_fast_processing_runs_in_parallel_without_optional_steps(planner: Planner) -> None:
    plan = _plan(planner, "document_analysis", _prefs(processing_speed="PROCESSING_SPEED_FAST"))
    assert plan.execution_strategy.execution_mode == plan_pb2.EXECUTION_MODE_PARALLEL
    assert _ids(plan) == ["analyze_resume"]
    assert "screen_resume: dropped (processing speed fast: optional steps are left out)" in list(
        plan.execution_strategy.fallback_strategy.fallback_paths
    )


def test_fast_mode_rewires_dependants_of_dropped_steps_and_loosens_gates(planner: Planner) -> None:
    balanced = _plan(planner, "application_automation")
    fast = _plan(
        planner,
        "application_automation",
        options=journey_pb2.ExecutionOptions(quality_level=journey_pb2.QUALITY_LEVEL_FAST),
    )
    assert fast.execution_strategy.execution_mode == plan_pb2.EXECUTION_MODE_PARALLEL
    assert balanced.execution_strategy.execution_mode == plan_pb2.EXECUTION_MODE_HYBRID
    assert {"notify_user", "record_analytics"}.isdisjoint(_ids(fast))
    for before, after in zip(balanced.quality_gates, fast.quality_gates, strict=True):
        for c_before, c_after in zip(before.criteria, after.criteria, strict=True):
            assert c_after.value == c_before.value - 10


def test_the_requests_quality_level_wins_over_the_users_processing_speed(planner: Planner) -> None:
    user = _prefs(processing_speed="PROCESSING_SPEED_THOROUGH")
    fast = _plan(
        planner, "job_discovery", user, journey_pb2.ExecutionOptions(quality_level=journey_pb2.QUALITY_LEVEL_FAST)
    )
    assert "notify_user" not in _ids(fast)
    balanced = _plan(
        planner,
        "job_discovery",
        _prefs(processing_speed="PROCESSING_SPEED_FAST"),
        journey_pb2.ExecutionOptions(quality_level=journey_pb2.QUALITY_LEVEL_BALANCED),
    )
    assert balanced == _plan(planner, "job_discovery")


def test_thorough_processing_keeps_optional_steps_and_tightens_every_gate(planner: Planner) -> None:
    balanced = _plan(planner, "document_analysis")
    thorough = _plan(planner, "document_analysis", _prefs(processing_speed="PROCESSING_SPEED_THOROUGH"))
    assert _ids(thorough) == _ids(balanced)
    assert [s.step_id for s in thorough.workflow_steps if s.optional] == [
        "screen_resume",
        "optimize_resume",
        "notify_user",
        "record_analytics",
    ]
    gate = thorough.quality_gates[0]
    assert gate.pass_score == 100
    assert [c.value for c in gate.criteria] == [c.value + 10 for c in balanced.quality_gates[0].criteria]


# ---- priority and timeout -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("urgency", "priority"),
    [
        ("URGENCY_LEVEL_LOW", plan_pb2.PRIORITY_LOW),
        ("URGENCY_LEVEL_MEDIUM", plan_pb2.PRIORITY_MEDIUM),
        ("URGENCY_LEVEL_HIGH", plan_pb2.PRIORITY_HIGH),
        ("URGENCY_LEVEL_CRITICAL", plan_pb2.PRIORITY_CRITICAL),
        ("URGENCY_LEVEL_UNSPECIFIED", plan_pb2.PRIORITY_MEDIUM),
    ],
)
def test_the_journeys_urgency_sets_the_priority(planner: Planner, urgency: str, priority: int) -> None:
    user = _user(journey_context={"urgency_level": urgency})
    assert _plan(planner, user=user).execution_strategy.priority == priority


def test_the_requests_priority_wins_over_the_urgency(planner: Planner) -> None:
    user = _user(journey_context={"urgency_level": "URGENCY_LEVEL_CRITICAL"})
    options = journey_pb2.ExecutionOptions(priority=plan_pb2.PRIORITY_LOW)
    assert _plan(planner, user=user, options=options).execution_strategy.priority == plan_pb2.PRIORITY_LOW


def test_the_requests_timeout_becomes_the_plans_timeout(planner: Planner) -> None:
    assert _seconds(_plan(planner).timeout) == 180
    options = json_format.ParseDict({"timeout": "45s"}, journey_pb2.ExecutionOptions())
    assert _seconds(_plan(planner, options=options).timeout) == 45


@pytest.mark.parametrize("timeout", ["90000s", "0s"])
def test_a_request_timeout_out_of_range_is_rejected_naming_the_option(planner: Planner, timeout: str) -> None:
    options = json_format.ParseDict({"timeout": timeout}, journey_pb2.ExecutionOptions())
    with pytest.raises(PlanInvalidError) as caught:
        _plan(planner, options=options)
    assert caught.value.field == "execution_options.timeout"


# ---- documents first ----------------------------------------------------------------------


_NO_DOCUMENTS = """
workflow_type: quick_search
version: "0.1"
description: Searches with the user's keywords and tells the user, without reading documents.
journey_types: [job_search]
execution_strategy: {execution_mode: parallel}
workflow_steps:
  - step_id: search_jobs
    agent: job_discovery
    operation: SearchJobs
    inputs: {configuration: {user_id: "${user.user_id}", keywords: "${user.data.keywords}"}}
    timing: {estimated_duration: 1s, timeout: 5s}
  - step_id: record_start
    agent: analytics
    operation: RecordEvents
    inputs: {configuration: {user_id: "${user.user_id}", events: [{name: search_started}]}}
    timing: {estimated_duration: 0.1s, timeout: 5s}
"""


@pytest.fixture
def custom_dir(tmp_path: Path) -> Path:
    """The built-in definitions with job_discovery replaced by a document-less search."""
    for source in DEFINITIONS_DIR.glob("*.yaml"):
        if source.stem != "job_discovery":
            shutil.copy(source, tmp_path / source.name)
    (tmp_path / "quick_search.yaml").write_text(_NO_DOCUMENTS, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    "state",
    [
        {"profile_completeness": 30, "document_status": "DOCUMENT_STATUS_ANALYZED"},
        {"profile_completeness": 90, "document_status": "DOCUMENT_STATUS_UPLOADED"},
        {"profile_completeness": 90},
    ],
)
def test_an_incomplete_profile_or_unread_documents_put_document_analysis_first(
    custom_dir: Path, state: Mapping[str, Any]
) -> None:
    plan = _plan(Planner(custom_dir), "quick_search", _user(current_data_state=state))
    assert _deps(plan) == {
        "analyze_resume": [],
        "search_jobs": ["analyze_resume"],
        "record_start": ["analyze_resume"],
    }
    assert _step(plan, "analyze_resume").agent == "document_intelligence"
    assert any(
        p.startswith("analyze_resume: added first") for p in plan.execution_strategy.fallback_strategy.fallback_paths
    )


def test_a_complete_profile_with_analysed_documents_is_planned_as_defined(custom_dir: Path) -> None:
    state = {"profile_completeness": 80, "document_status": "DOCUMENT_STATUS_OPTIMIZED"}
    plan = _plan(Planner(custom_dir), "quick_search", _user(current_data_state=state))
    assert _deps(plan) == {"search_jobs": [], "record_start": []}


def test_builtin_workflows_already_start_with_document_analysis(planner: Planner) -> None:
    complete = _user(current_data_state={"profile_completeness": 100, "document_status": "DOCUMENT_STATUS_ANALYZED"})
    for workflow_type in BUILT_IN:
        assert _plan(planner, workflow_type) == _plan(planner, workflow_type, complete)


# ---- live health --------------------------------------------------------------------------


def test_an_offline_agent_drops_its_optional_steps_and_says_why(planner: Planner) -> None:
    health = {"ui_ux": _status("ui_ux", common_pb2.AGENT_HEALTH_OFFLINE)}
    plan = _plan(planner, health=health)
    assert "notify_user" not in _ids(plan)
    assert "record_analytics" in _ids(plan)
    assert "notify_user: dropped (agent ui_ux is offline)" in list(
        plan.execution_strategy.fallback_strategy.fallback_paths
    )


def test_an_offline_agent_keeps_its_required_steps(planner: Planner) -> None:
    health = {"security": _status("security", common_pb2.AGENT_HEALTH_OFFLINE)}
    assert "screen_compliance" in _ids(_plan(planner, health=health))


def test_a_degraded_agent_keeps_its_optional_steps(planner: Planner) -> None:
    health = {"ui_ux": _status("ui_ux", common_pb2.AGENT_HEALTH_DEGRADED)}
    assert _plan(planner, health=health) == _plan(planner)


def test_a_dropped_steps_outputs_are_no_longer_read(planner: Planner) -> None:
    health = {"document_intelligence": _status("document_intelligence", common_pb2.AGENT_HEALTH_OFFLINE)}
    plan = _plan(planner, "document_analysis", health=health)
    # analyze_resume is required; optimize_resume (same agent) is optional and goes.
    assert "optimize_resume" not in _ids(plan)
    notify = _step(plan, "notify_user")
    assert list(notify.dependencies) == ["screen_resume", "analyze_resume"]
    data = _config(notify)["data"]
    assert "suggestions" not in data
    assert data["skills"] == "${steps.analyze_resume.skills}"
    for step in plan.workflow_steps:
        for _, expression in iter_expressions(_config(step)):
            assert "optimize_resume" not in expression


def test_a_limited_or_suspended_job_board_is_left_out_of_the_search(planner: Planner) -> None:
    health = {
        "automation": _status(
            "automation",
            account_health={
                "linkedin": common_pb2.ACCOUNT_HEALTH_SUSPENDED,
                "indeed": common_pb2.ACCOUNT_HEALTH_ACTIVE,
                "direct": common_pb2.ACCOUNT_HEALTH_LIMITED,
                "monster": common_pb2.ACCOUNT_HEALTH_LIMITED,
            },
        ),
        "job_discovery": _status("job_discovery", api_rate_limits={"glassdoor": 100, "indeed": 50, "monster": 0}),
    }
    plan = _plan(planner, health=health)
    # Only boards job_discovery searches may be named; "direct" and "linkedin" are not among them.
    assert _config(_step(plan, "search_jobs"))["sources"] == ["glassdoor", "indeed"]
    assert "search_jobs: avoiding job boards monster (limited); searching glassdoor, indeed" in list(
        plan.execution_strategy.fallback_strategy.fallback_paths
    )


def test_boards_cannot_be_avoided_before_job_discovery_reports_its_boards(planner: Planner) -> None:
    health = {"automation": _status("automation", account_health={"linkedin": common_pb2.ACCOUNT_HEALTH_SUSPENDED})}
    plan = _plan(planner, health=health)
    assert "sources" not in _config(_step(plan, "search_jobs"))
    assert (
        "search_jobs: cannot avoid job boards linkedin (suspended): job_discovery has not reported its boards"
        in list(plan.execution_strategy.fallback_strategy.fallback_paths)
    )


def test_when_every_board_is_limited_the_search_stays_open_and_says_so(planner: Planner) -> None:
    health = {
        "automation": _status("automation", account_health={"linkedin": common_pb2.ACCOUNT_HEALTH_LIMITED}),
        "job_discovery": _status("job_discovery", api_rate_limits={"linkedin": 10}),
    }
    plan = _plan(planner, health=health)
    assert "sources" not in _config(_step(plan, "search_jobs"))
    assert "search_jobs: every job board is limited or suspended: linkedin (limited)" in list(
        plan.execution_strategy.fallback_strategy.fallback_paths
    )


def test_active_job_boards_leave_the_search_open_to_every_board(planner: Planner) -> None:
    health = {"automation": _status("automation", account_health={"linkedin": common_pb2.ACCOUNT_HEALTH_ACTIVE})}
    assert "sources" not in _config(_step(_plan(planner, health=health), "search_jobs"))


_CONDITIONAL = """
workflow_type: gated
version: "1"
description: Notifies only when the optional search found something.
execution_strategy: {execution_mode: parallel}
workflow_steps:
  - step_id: search_jobs
    agent: job_discovery
    operation: SearchJobs
    optional: true
    inputs: {configuration: {user_id: "${user.user_id}"}}
    timing: {estimated_duration: 1s, timeout: 5s}
  - step_id: notify_user
    agent: ui_ux
    operation: Notify
    dependencies: [search_jobs]
    inputs: {configuration: {user_id: "${user.user_id}", title: Found jobs}}
    timing:
      estimated_duration: 0.1s
      timeout: 5s
      scheduling: conditional
      condition: "steps.search_jobs.total_matches > `0`"
  - step_id: record
    agent: analytics
    operation: RecordEvents
    dependencies: [notify_user]
    inputs: {configuration: {user_id: "${user.user_id}"}}
    timing: {estimated_duration: 0.1s, timeout: 5s}
"""


def test_a_step_whose_condition_reads_a_dropped_step_is_dropped_too(tmp_path: Path) -> None:
    (tmp_path / "gated.yaml").write_text(_CONDITIONAL, encoding="utf-8")
    health = {"job_discovery": _status("job_discovery", common_pb2.AGENT_HEALTH_OFFLINE)}
    plan = _plan(Planner(tmp_path), "gated", health=health)
    assert _deps(plan) == {"record": []}
    assert list(plan.execution_strategy.fallback_strategy.fallback_paths) == [
        "search_jobs: dropped (agent job_discovery is offline)",
        "notify_user: dropped (its condition reads search_jobs, which was dropped)",
    ]


def test_a_map_step_whose_list_reads_a_dropped_step_is_dropped_too(tmp_path: Path) -> None:
    mapped = _CONDITIONAL.replace(
        """    timing:
      estimated_duration: 0.1s
      timeout: 5s
      scheduling: conditional
      condition: "steps.search_jobs.total_matches > `0`"
""",
        """    for_each: "${steps.search_jobs.jobs[:2].job_id}"
    timing: {estimated_duration: 0.1s, timeout: 5s}
""",
    )
    (tmp_path / "gated.yaml").write_text(mapped, encoding="utf-8")
    health = {"job_discovery": _status("job_discovery", common_pb2.AGENT_HEALTH_OFFLINE)}
    plan = _plan(Planner(tmp_path), "gated", health=health)
    assert _deps(plan) == {"record": []}
    assert "notify_user: dropped (its for_each reads search_jobs, which was dropped)" in list(
        plan.execution_strategy.fallback_strategy.fallback_paths
    )


def test_approved_for_each_belongs_to_a_map_step(tmp_path: Path) -> None:
    broken = _GUARDED.replace(
        '      approved_inputs: {job_ids: "${steps.approve.job_ids}"}',
        '      approved_for_each: "${steps.approve.job_ids}"',
    )
    directory = _broken(tmp_path, broken, "quick_apply")
    with pytest.raises(DefinitionError, match=r"approved_for_each must be a .* on a step that has for_each"):
        Planner(directory)


# ---- estimates and shape ------------------------------------------------------------------


def test_declared_durations_sum_along_the_critical_path(planner: Planner) -> None:
    plan = _plan(planner)
    # 0.5 analyze + 1 search + 0.5 score + 0.3 screen + 1 submit + 0.2 notify.
    assert _seconds(plan.estimated_duration) == pytest.approx(3.5)
    assert plan.execution_strategy.fallback_strategy.primary_path == (
        "analyze_resume -> search_jobs -> score_matches -> screen_compliance -> submit_applications -> notify_user"
    )


def test_recorded_estimates_replace_declared_durations(planner: Planner) -> None:
    def estimates(agent: str, op: str) -> tuple[float, float] | None:
        return {"SearchJobs": (4.0, 8.0), "ScoreMatches": (60.0, 90.0)}.get(op)

    plan = _plan(planner, estimates=estimates)
    assert _seconds(_step(plan, "search_jobs").timing.estimated_duration) == 4.0
    # An attempt cannot outlast its 5 s timeout.
    assert _seconds(_step(plan, "score_matches").timing.estimated_duration) == 5.0
    assert _seconds(_step(plan, "analyze_resume").timing.estimated_duration) == 0.5
    assert _seconds(plan.estimated_duration) == pytest.approx(0.5 + 4 + 5 + 0.3 + 1 + 0.2)


def test_the_critical_path_follows_the_slowest_branch(planner: Planner) -> None:
    def estimates(agent: str, op: str) -> tuple[float, float] | None:
        return (3.0, 4.0) if op == "RecordEvents" else None

    plan = _plan(planner, estimates=estimates)
    assert plan.execution_strategy.fallback_strategy.primary_path.endswith("submit_applications -> record_analytics")
    assert _seconds(plan.estimated_duration) == pytest.approx(0.5 + 1 + 0.5 + 0.3 + 1 + 3)


def test_complexity_and_resources_follow_the_plans_shape(planner: Planner) -> None:
    full = _plan(planner)
    small = _plan(planner, "document_analysis", _prefs(processing_speed="PROCESSING_SPEED_FAST"))
    assert 0 < small.complexity_score < full.complexity_score <= 100
    assert full.resource_requirements == plan_pb2.ResourceRequirements(
        cpu_intensive=True, memory_intensive=True, network_intensive=True, storage_intensive=True
    )
    assert small.resource_requirements == plan_pb2.ResourceRequirements(cpu_intensive=True)


def test_fallback_paths_list_what_is_skipped_on_failure(planner: Planner) -> None:
    paths = list(_plan(planner).execution_strategy.fallback_strategy.fallback_paths)
    assert paths == ["record_analytics: skipped if it fails"]


# ---- definitions at start-up --------------------------------------------------------------


def _broken(tmp_path: Path, text: str, name: str = "quick_search") -> Path:
    (tmp_path / f"{name}.yaml").write_text(text, encoding="utf-8")
    return tmp_path


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("agent: analytics", "agent: astrology"), 'unknown agent "astrology"'),
        (("operation: SearchJobs", "operation: FindJobs"), 'no operation "FindJobs"'),
        (("keywords: ", "keywordz: "), '"keywordz" is not a field'),
        (("timeout: 5s}\n  - step_id", "timeout: 7200s}\n  - step_id"), "timing.timeout: must be between"),
        (("description:", "colour: blue\ndescription:"), "unknown key 'colour'"),
        (('version: "0.1"', "version: 0.1"), "version must be a non-empty string"),
        (("{execution_mode: parallel}", "{execution_mode: sideways}"), "execution_strategy"),
        (("timing: {estimated_duration: 1s, timeout: 5s}", "timing: {timeout: 5s}"), "estimated_duration is required"),
        (("workflow_type: quick_search", "workflow_type: other"), "must be named other.yaml"),
        (("    agent: analytics\n", "    kind: approval\n"), "workflow_steps[1].kind: approval steps are not written"),
    ],
)
def test_a_bad_definition_fails_at_start_up(tmp_path: Path, mutation: tuple[str, str], expected: str) -> None:
    old, new = mutation
    assert old in _NO_DOCUMENTS
    directory = _broken(tmp_path, _NO_DOCUMENTS.replace(old, new, 1))
    with pytest.raises(DefinitionError) as caught:
        Planner(directory)
    assert expected in str(caught.value)
    assert "quick_search.yaml" in str(caught.value)


def test_two_definitions_claiming_one_journey_type_fail_at_start_up(tmp_path: Path) -> None:
    shutil.copy(DEFINITIONS_DIR / "job_discovery.yaml", tmp_path)
    with pytest.raises(DefinitionError, match="JOURNEY_TYPE_JOB_SEARCH is already mapped"):
        Planner(_broken(tmp_path, _NO_DOCUMENTS))


_GUARDED = """
workflow_type: quick_apply
version: "0.1"
description: Searches, applies to the first result after asking, and records it.
execution_strategy: {execution_mode: sequential}
workflow_steps:
  - step_id: search_jobs
    agent: job_discovery
    operation: SearchJobs
    inputs: {configuration: {user_id: "${user.user_id}"}}
    timing: {estimated_duration: 1s, timeout: 5s}
  - step_id: rank
    agent: matching_intelligence
    operation: ScoreMatches
    dependencies: [search_jobs]
    optional: true
    inputs: {configuration: {user_id: "${user.user_id}", jobs: "${steps.search_jobs.jobs}"}}
    timing: {estimated_duration: 1s, timeout: 5s}
  - step_id: submit
    agent: automation
    operation: SubmitApplication
    dependencies: [rank]
    inputs: {configuration: {user_id: "${user.user_id}", job_ids: "${steps.search_jobs.jobs[:1].job_id}"}}
    timing: {estimated_duration: 1s, timeout: 5s}
    compensation:
      agent: automation
      operation: WithdrawApplication
      configuration:
        user_id: "${user.user_id}"
        application_ids: "${steps.submit.applications[*].application_id}"
        reason: "${steps.rank.skill_gaps[0]}"
    requires_approval: true
    approval:
      step_id: approve
      step_name: Approve
      prompt: Apply?
      data: {job_ids: "${steps.search_jobs.jobs[:1].job_id}", best: "${steps.rank.matches[0]}"}
      timeout: 60s
      on_timeout: skip
      approved_inputs: {job_ids: "${steps.approve.job_ids}"}
  - step_id: record
    agent: analytics
    operation: RecordEvents
    dependencies: [submit]
    inputs: {configuration: {user_id: "${user.user_id}"}}
    timing: {estimated_duration: 0.1s, timeout: 5s}
"""

_APPROVAL_BLOCK = _GUARDED[_GUARDED.index("    approval:\n") : _GUARDED.index("  - step_id: record")]
_APPROVAL_DATA = 'data: {job_ids: "${steps.search_jobs.jobs[:1].job_id}", best: "${steps.rank.matches[0]}"}'
_ANALYSED = {"profile_completeness": 100, "document_status": "DOCUMENT_STATUS_ANALYZED"}


def _guarded_plan(tmp_path: Path, **prefs: str) -> plan_pb2.OrchestrationPlan:
    (tmp_path / "quick_apply.yaml").write_text(_GUARDED, encoding="utf-8")
    user = _user(current_data_state=_ANALYSED, journey_context={"user_preferences": prefs})
    return _plan(Planner(tmp_path), "quick_apply", user)


def test_an_approval_without_approved_condition_lets_the_step_run_only_when_approved(tmp_path: Path) -> None:
    plan = _guarded_plan(tmp_path, automation_level="AUTOMATION_LEVEL_MANUAL")
    assert _ids(plan) == ["search_jobs", "rank", "approve", "submit", "record"]
    submit = _step(plan, "submit")
    assert submit.timing.condition == "steps.approve != `null`"
    assert _config(submit)["job_ids"] == "${steps.approve.job_ids}"
    approve = _step(plan, "approve")
    # The guarded step was not conditional, so neither is its approval.
    assert approve.timing.scheduling == plan_pb2.SCHEDULING_UNSPECIFIED
    assert approve.approval.on_timeout == plan_pb2.APPROVAL_TIMEOUT_ACTION_SKIP
    assert _seconds(plan.timeout) == 600 + 60


def test_an_approval_never_shows_a_dropped_steps_output(tmp_path: Path) -> None:
    plan = _guarded_plan(tmp_path, automation_level="AUTOMATION_LEVEL_MANUAL", processing_speed="PROCESSING_SPEED_FAST")
    assert _ids(plan) == ["search_jobs", "approve", "submit", "record"]
    assert list(_step(plan, "approve").dependencies) == ["search_jobs"]
    assert json_format.MessageToDict(_step(plan, "approve").approval.data) == {
        "job_ids": "${steps.search_jobs.jobs[:1].job_id}"
    }


def test_a_compensation_field_reading_a_dropped_step_is_removed(tmp_path: Path) -> None:
    plan = _guarded_plan(tmp_path, processing_speed="PROCESSING_SPEED_FAST")
    assert "rank" not in _ids(plan)
    assert "reason" not in json_format.MessageToDict(_step(plan, "submit").compensation.configuration)


@pytest.mark.parametrize(
    ("mutation", "expected"),
    [
        (("    requires_approval: true\n", ""), "requires_approval: true and an approval block go together"),
        ((_APPROVAL_BLOCK, ""), "requires_approval: true and an approval block go together"),
        (("      prompt: Apply?\n", ""), "workflow_steps[2].approval.prompt is required"),
        (("      prompt: Apply?\n", "      prompt: Apply?\n      colour: red\n"), "unknown key 'colour'"),
        (("on_timeout: skip", "on_timeout: approve"), "on_timeout approve would let submit run without an answer"),
        (("on_timeout: skip", "on_timeout: shrug"), "on_timeout must be one of fail, skip, approve"),
        (("timeout: 60s", "timeout: forever"), "workflow_steps[2].approval.timeout"),
        (("timeout: 60s", "timeout: 0.5s"), "approval.timeout: must be between 1s and 24h"),
        (("step_id: approve\n", "step_id: record\n"), "approval.step_id 'record' is already a step's id"),
        ((_APPROVAL_DATA, "data: shown"), "workflow_steps[2].approval.data must be a mapping"),
        (
            ("approved_inputs: {job_ids:", "approved_inputs: {jobz:"),
            "workflow_steps[2].approval: with the approval step inserted, "
            'workflow_steps[3].inputs.configuration.jobz: "jobz" is not a field',
        ),
        (
            ('best: "${steps.rank.matches[0]}"', 'best: "${steps.record.recorded}"'),
            "with the approval step inserted, workflow_steps[2].approval.data.best: expression reads steps.record",
        ),
        (
            ("      timeout: 60s\n", "      timeout: 60s\n      approved_condition: 'steps.approve.['\n"),
            "with the approval step inserted, workflow_steps[3].timing.condition",
        ),
    ],
)
def test_a_bad_approval_block_fails_at_start_up(tmp_path: Path, mutation: tuple[str, str], expected: str) -> None:
    old, new = mutation
    assert old in _GUARDED
    directory = _broken(tmp_path, _GUARDED.replace(old, new, 1), "quick_apply")
    with pytest.raises(DefinitionError) as caught:
        Planner(directory)
    assert expected in str(caught.value)
    assert "quick_apply.yaml" in str(caught.value)


def test_an_empty_definitions_directory_fails_at_start_up(tmp_path: Path) -> None:
    with pytest.raises(DefinitionError, match="no workflow definitions"):
        Planner(tmp_path)


def test_definitions_expose_their_version_aliases_and_template(planner: Planner) -> None:
    definition = planner.definition("application")
    assert definition.workflow_type == "application_automation"
    assert definition.aliases == ("application",)
    assert definition.approval_steps == frozenset({"submit_applications"})
    assert [a.step_id for a in definition.approvals] == ["approve_applications"]
    template = definition.template()
    template.workflow_steps[0].step_id = "mutated"
    assert definition.template().workflow_steps[0].step_id == "analyze_resume"
