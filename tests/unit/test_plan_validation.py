"""Unit tests of validate_plan: every rule, and the field each breach names."""

from __future__ import annotations

from typing import Any

import pytest
from baton.v1 import plan_pb2
from google.protobuf import json_format

from server.planner import PlanInvalidError, PlanningError, validate_plan


def _step(step_id: str, *dependencies: str, **overrides: Any) -> dict[str, Any]:
    step: dict[str, Any] = {
        "step_id": step_id,
        "agent": "analytics",
        "operation": "RecordEvents",
        "dependencies": list(dependencies),
        "inputs": {"configuration": {"user_id": "${user.user_id}"}},
        "timing": {"timeout": "5s"},
    }
    step.update(overrides)
    return step


def _approval(step_id: str, *dependencies: str, **approval: Any) -> dict[str, Any]:
    return {
        "step_id": step_id,
        "kind": "STEP_KIND_APPROVAL",
        "dependencies": list(dependencies),
        "approval": {"prompt": "Go on?", **approval},
    }


def _submit(step_id: str, *dependencies: str, **overrides: Any) -> dict[str, Any]:
    inputs = overrides.pop("inputs", {"configuration": {"user_id": "${user.user_id}", "job_ids": ["job-1"]}})
    return _step(step_id, *dependencies, agent="automation", operation="SubmitApplication", inputs=inputs, **overrides)


def _withdraw(**overrides: Any) -> dict[str, Any]:
    compensation: dict[str, Any] = {
        "agent": "automation",
        "operation": "WithdrawApplication",
        "configuration": {
            "user_id": "${user.user_id}",
            "application_ids": "${steps.submit.applications[*].application_id}",
            "reason": "undone",
        },
    }
    compensation.update(overrides)
    return compensation


def _plan(*steps: dict[str, Any], **fields: Any) -> plan_pb2.OrchestrationPlan:
    body: dict[str, Any] = {"workflow_steps": list(steps) or [_step("a")]}
    body.update(fields)
    return json_format.ParseDict(body, plan_pb2.OrchestrationPlan())


def _rejected(plan: plan_pb2.OrchestrationPlan) -> PlanInvalidError:
    with pytest.raises(PlanInvalidError) as caught:
        validate_plan(plan)
    return caught.value


def test_a_minimal_plan_is_valid() -> None:
    validate_plan(_plan())


def test_the_error_message_starts_with_the_field_it_names() -> None:
    error = _rejected(_plan(_step("a", "nope")))
    assert error.field == "workflow_steps[0].dependencies[0]"
    assert str(error) == 'workflow_steps[0].dependencies[0]: step "a" depends on unknown step "nope"'
    assert isinstance(error, PlanningError)


# ---- size and ids -------------------------------------------------------------------------


def test_a_plan_without_steps_is_rejected() -> None:
    error = _rejected(plan_pb2.OrchestrationPlan())
    assert error.field == "workflow_steps"
    assert "at least 1 step" in str(error)


def test_a_plan_with_more_than_200_steps_is_rejected() -> None:
    error = _rejected(_plan(*[_step(f"s{i}") for i in range(201)]))
    assert error.field == "workflow_steps"
    assert "at most 200" in str(error)


def test_a_plan_with_exactly_200_steps_is_accepted() -> None:
    validate_plan(_plan(*[_step(f"s{i}") for i in range(200)]))


def test_an_empty_step_id_is_rejected() -> None:
    assert _rejected(_plan(_step(""))).field == "workflow_steps[0].step_id"


@pytest.mark.parametrize("step_id", ["has space", "dot.ted", "x" * 65, "ünï"])
def test_a_step_id_outside_letters_digits_underscore_and_dash_is_rejected(step_id: str) -> None:
    error = _rejected(_plan(_step(step_id)))
    assert error.field == "workflow_steps[0].step_id"


def test_a_duplicate_step_id_is_rejected_naming_the_first_one() -> None:
    error = _rejected(_plan(_step("a"), _step("b"), _step("a")))
    assert error.field == "workflow_steps[2].step_id"
    assert "workflow_steps[0]" in error.message


# ---- agents, operations and configuration -------------------------------------------------


def test_an_unknown_agent_is_rejected_listing_the_known_agents() -> None:
    error = _rejected(_plan(_step("a", agent="astrology")))
    assert error.field == "workflow_steps[0].agent"
    assert '"astrology"' in error.message
    assert "document_intelligence" in error.message and "security" in error.message


def test_a_missing_agent_is_rejected() -> None:
    assert _rejected(_plan(_step("a", agent=""))).field == "workflow_steps[0].agent"


def test_an_unknown_operation_is_rejected_listing_the_agents_operations() -> None:
    error = _rejected(_plan(_step("a", operation="Horoscope")))
    assert error.field == "workflow_steps[0].operation"
    assert "RecordEvents" in error.message and "GetInsights" in error.message


def test_an_operation_of_another_agent_is_rejected() -> None:
    error = _rejected(_plan(_step("a", operation="SearchJobs")))
    assert error.field == "workflow_steps[0].operation"


def test_a_configuration_key_that_is_not_a_request_field_is_rejected_listing_the_fields() -> None:
    step = _step("a", inputs={"configuration": {"user_id": "u", "colour": "blue"}})
    error = _rejected(_plan(step))
    assert error.field == "workflow_steps[0].inputs.configuration.colour"
    assert "baton.v1.RecordEventsRequest" in error.message
    assert "user_id" in error.message and "events" in error.message


def test_a_camel_case_configuration_key_is_rejected_because_keys_are_proto_field_names() -> None:
    step = _step("a", agent="job_discovery", operation="SearchJobs", inputs={"configuration": {"remoteOnly": True}})
    assert _rejected(_plan(step)).field == "workflow_steps[0].inputs.configuration.remoteOnly"


def test_a_literal_configuration_value_of_the_wrong_type_is_rejected() -> None:
    step = _step("a", agent="job_discovery", operation="SearchJobs", inputs={"configuration": {"limit": "many"}})
    error = _rejected(_plan(step))
    assert error.field == "workflow_steps[0].inputs.configuration.limit"
    assert "does not parse" in error.message


def test_a_nested_literal_that_does_not_parse_is_rejected() -> None:
    config = {"events": [{"name": "x", "time": "yesterday"}]}
    error = _rejected(_plan(_step("a", inputs={"configuration": config})))
    assert error.field == "workflow_steps[0].inputs.configuration.events"


def test_literals_and_expressions_mix_in_one_configuration() -> None:
    config = {
        "user_id": "${user.user_id}",
        "events": [{"name": "done", "properties": {"n": "${user.data.n}", "fixed": 3}}],
    }
    validate_plan(_plan(_step("a", inputs={"configuration": config})))


def test_an_expression_may_stand_for_a_field_of_any_type() -> None:
    config = {"limit": "${user.data.limit}", "remote_only": "${user.data.remote}", "skills": "${user.data.s}"}
    validate_plan(_plan(_step("a", agent="job_discovery", operation="SearchJobs", inputs={"configuration": config})))


def test_an_expression_that_does_not_compile_is_rejected_naming_its_field() -> None:
    error = _rejected(_plan(_step("a", inputs={"configuration": {"user_id": "${user.[}"}})))
    assert error.field == "workflow_steps[0].inputs.configuration.user_id"
    assert "does not compile" in error.message


def test_a_nested_expression_that_does_not_compile_is_rejected_naming_its_path() -> None:
    config = {"events": [{"name": "x", "properties": {"bad": "${a ||}"}}]}
    error = _rejected(_plan(_step("a", inputs={"configuration": config})))
    assert error.field == "workflow_steps[0].inputs.configuration.events[0].properties.bad"


def test_an_empty_expression_is_rejected() -> None:
    error = _rejected(_plan(_step("a", inputs={"configuration": {"user_id": "${}"}})))
    assert error.field == "workflow_steps[0].inputs.configuration.user_id"


def test_a_string_that_only_contains_an_expression_is_a_literal() -> None:
    config = {"user_id": "id ${not an expression"}
    validate_plan(_plan(_step("a", inputs={"configuration": config})))


def test_an_expression_reading_an_unknown_step_is_rejected() -> None:
    step = _step("a", inputs={"configuration": {"user_id": "${steps.ghost.user_id}"}})
    error = _rejected(_plan(step))
    assert error.field == "workflow_steps[0].inputs.configuration.user_id"
    assert 'no step "ghost"' in error.message


def test_an_expression_reading_a_step_it_does_not_wait_for_is_rejected() -> None:
    reader = _step("b", inputs={"configuration": {"user_id": "${steps.a.user_id}"}})
    error = _rejected(_plan(_step("a"), reader))
    assert error.field == "workflow_steps[1].inputs.configuration.user_id"
    assert 'does not depend on "a"' in error.message


def test_an_expression_reading_its_own_step_is_rejected() -> None:
    step = _step("a", inputs={"configuration": {"user_id": "${steps.a.x}"}})
    assert "its own output" in _rejected(_plan(step)).message


def test_an_expression_may_read_a_transitive_dependency() -> None:
    reader = _step("c", "b", inputs={"configuration": {"user_id": "${steps.a.user_id}"}})
    validate_plan(_plan(_step("a"), _step("b", "a"), reader))


def test_steps_inside_a_projection_are_not_read_from_the_context_root() -> None:
    config = {"user_id": "${user.data.items[].steps.ghost}"}
    validate_plan(_plan(_step("a", inputs={"configuration": config})))


def test_quality_requirements_above_100_are_rejected() -> None:
    step = _step("a", inputs={"configuration": {}, "quality_requirements": 101})
    assert _rejected(_plan(step)).field == "workflow_steps[0].inputs.quality_requirements"


# ---- dependencies and cycles --------------------------------------------------------------


def test_a_dependency_on_an_unknown_step_is_rejected() -> None:
    error = _rejected(_plan(_step("x"), _step("y"), _step("z", "x", "nope")))
    assert error.field == "workflow_steps[2].dependencies[1]"
    assert 'unknown step "nope"' in error.message


def test_a_step_depending_on_itself_is_rejected() -> None:
    error = _rejected(_plan(_step("a", "a")))
    assert error.field == "workflow_steps[0].dependencies[0]"
    assert "depends on itself" in error.message


def test_a_dependency_listed_twice_is_rejected() -> None:
    error = _rejected(_plan(_step("a"), _step("b", "a", "a")))
    assert error.field == "workflow_steps[1].dependencies[1]"


def test_a_cycle_is_rejected_naming_the_steps_in_it() -> None:
    error = _rejected(_plan(_step("a", "b"), _step("b", "a")))
    assert error.field == "workflow_steps[0].dependencies"
    assert "cycle: a -> b -> a" in error.message


def test_a_longer_cycle_behind_a_valid_prefix_is_named_exactly() -> None:
    plan = _plan(_step("start"), _step("x", "start", "z"), _step("y", "x"), _step("z", "y"))
    error = _rejected(plan)
    assert "cycle: x -> z -> y -> x" in error.message
    assert error.field == "workflow_steps[1].dependencies"


def test_a_diamond_is_not_a_cycle() -> None:
    validate_plan(_plan(_step("a"), _step("b", "a"), _step("c", "a"), _step("d", "b", "c")))


# ---- timing -------------------------------------------------------------------------------


@pytest.mark.parametrize("timeout", ["0.001s", "5s", "3600s"])
def test_a_step_timeout_from_1ms_to_1h_is_accepted(timeout: str) -> None:
    validate_plan(_plan(_step("a", timing={"timeout": timeout})))


@pytest.mark.parametrize("timeout", ["0s", "0.000999s", "3600.001s", "7200s", "-5s"])
def test_a_step_timeout_out_of_range_is_rejected(timeout: str) -> None:
    error = _rejected(_plan(_step("a", timing={"timeout": timeout})))
    assert error.field == "workflow_steps[0].timing.timeout"


def test_a_negative_estimated_duration_is_rejected() -> None:
    error = _rejected(_plan(_step("a", timing={"timeout": "5s", "estimated_duration": "-1s"})))
    assert error.field == "workflow_steps[0].timing.estimated_duration"
    assert "negative" in error.message


def test_a_negative_plan_estimate_is_rejected() -> None:
    assert _rejected(_plan(estimated_duration="-2s")).field == "estimated_duration"


def test_a_scheduled_delay_above_24_hours_is_rejected() -> None:
    timing = {"timeout": "5s", "scheduling": "SCHEDULING_SCHEDULED", "delay": "86401s"}
    assert _rejected(_plan(_step("a", timing=timing))).field == "workflow_steps[0].timing.delay"


def test_a_scheduled_delay_of_24_hours_is_accepted() -> None:
    validate_plan(_plan(_step("a", timing={"scheduling": "SCHEDULING_SCHEDULED", "delay": "86400s"})))


def test_a_delay_without_scheduled_scheduling_is_rejected() -> None:
    assert _rejected(_plan(_step("a", timing={"delay": "5s"}))).field == "workflow_steps[0].timing.delay"


def test_a_conditional_step_needs_a_condition() -> None:
    error = _rejected(_plan(_step("a", timing={"scheduling": "SCHEDULING_CONDITIONAL"})))
    assert error.field == "workflow_steps[0].timing.condition"


def test_a_condition_that_does_not_compile_is_rejected() -> None:
    timing = {"scheduling": "SCHEDULING_CONDITIONAL", "condition": "user.data.go =="}
    error = _rejected(_plan(_step("a", timing=timing)))
    assert error.field == "workflow_steps[0].timing.condition"
    assert "does not compile" in error.message


def test_a_condition_reading_a_step_it_waits_for_is_accepted() -> None:
    timing = {"scheduling": "SCHEDULING_CONDITIONAL", "condition": "steps.a.recorded > `0`"}
    validate_plan(_plan(_step("a"), _step("b", "a", timing=timing)))


def test_a_condition_reading_a_step_it_does_not_wait_for_is_rejected() -> None:
    timing = {"scheduling": "SCHEDULING_CONDITIONAL", "condition": "steps.a.recorded > `0`"}
    assert _rejected(_plan(_step("a"), _step("b", timing=timing))).field == "workflow_steps[1].timing.condition"


def test_a_condition_without_conditional_scheduling_is_rejected() -> None:
    error = _rejected(_plan(_step("a", timing={"condition": "user.data.go"})))
    assert error.field == "workflow_steps[0].timing.condition"


def test_an_unknown_scheduling_value_is_rejected() -> None:
    plan = _plan()
    plan.workflow_steps[0].timing.scheduling = 42  # type: ignore[assignment]
    assert _rejected(plan).field == "workflow_steps[0].timing.scheduling"


# ---- error handling -----------------------------------------------------------------------


@pytest.mark.parametrize("count", [-1, 11])
def test_a_retry_count_out_of_range_is_rejected(count: int) -> None:
    error = _rejected(_plan(_step("a", error_handling={"retry_count": count})))
    assert error.field == "workflow_steps[0].error_handling.retry_count"


@pytest.mark.parametrize("count", [0, 10])
def test_a_retry_count_from_0_to_10_is_accepted(count: int) -> None:
    validate_plan(_plan(_step("a", error_handling={"retry_count": count})))


def test_an_alternative_fallback_needs_an_alternative_call() -> None:
    step = _step("a", error_handling={"fallback_action": "FALLBACK_ACTION_ALTERNATIVE"})
    assert _rejected(_plan(step)).field == "workflow_steps[0].error_handling.alternative"


def test_an_alternative_with_an_unknown_operation_is_rejected() -> None:
    handling = {
        "fallback_action": "FALLBACK_ACTION_ALTERNATIVE",
        "alternative": {"agent": "ui_ux", "operation": "Shout"},
    }
    error = _rejected(_plan(_step("a", error_handling=handling)))
    assert error.field == "workflow_steps[0].error_handling.alternative.operation"
    assert "Notify" in error.message


def test_an_alternative_without_configuration_must_accept_the_steps_own_request() -> None:
    handling = {
        "fallback_action": "FALLBACK_ACTION_ALTERNATIVE",
        "alternative": {"agent": "ui_ux", "operation": "Notify"},
    }
    step = _step("a", inputs={"configuration": {"user_id": "u", "events": []}}, error_handling=handling)
    assert _rejected(_plan(step)).field == "workflow_steps[0].inputs.configuration.events"


def test_an_alternative_configuration_is_checked_against_the_alternatives_request() -> None:
    handling = {
        "fallback_action": "FALLBACK_ACTION_ALTERNATIVE",
        "alternative": {"agent": "ui_ux", "operation": "Notify", "configuration": {"events": []}},
    }
    error = _rejected(_plan(_step("a", error_handling=handling)))
    assert error.field == "workflow_steps[0].error_handling.alternative.configuration.events"


def test_a_valid_alternative_is_accepted() -> None:
    handling = {
        "fallback_action": "FALLBACK_ACTION_ALTERNATIVE",
        "alternative": {"agent": "ui_ux", "operation": "Notify", "configuration": {"user_id": "${user.user_id}"}},
    }
    validate_plan(_plan(_step("a", error_handling=handling)))


# ---- step kinds and approvals -------------------------------------------------------------


def test_an_unknown_step_kind_is_rejected_listing_the_kinds() -> None:
    plan = _plan()
    plan.workflow_steps[0].kind = 7  # type: ignore[assignment]
    error = _rejected(plan)
    assert error.field == "workflow_steps[0].kind"
    assert "STEP_KIND_APPROVAL" in error.message


def test_an_explicit_call_kind_is_a_call_step() -> None:
    validate_plan(_plan(_step("a", kind="STEP_KIND_CALL")))


def test_an_approval_step_between_calls_is_valid() -> None:
    data = {"job_ids": "${steps.a.events[*].name}", "note": "literal", "nested": {"n": "${user.data.n}"}}
    validate_plan(
        _plan(
            _step("a"),
            _approval("ok", "a", timeout="600s", on_timeout="APPROVAL_TIMEOUT_ACTION_SKIP", data=data),
            _step("b", "ok"),
        )
    )


def test_an_approval_step_with_nothing_but_its_id_is_valid() -> None:
    validate_plan(_plan({"step_id": "ok", "kind": "STEP_KIND_APPROVAL"}))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"agent": "analytics"}, "agent"),
        ({"operation": "RecordEvents"}, "operation"),
        ({"inputs": {"configuration": {"user_id": "u"}}}, "inputs.configuration"),
        ({"compensation": {"agent": "analytics", "operation": "RecordEvents"}}, "compensation"),
        ({"error_handling": {"fallback_action": "FALLBACK_ACTION_ALTERNATIVE"}}, "error_handling.alternative"),
        ({"error_handling": {"alternative": {"agent": "ui_ux", "operation": "Notify"}}}, "error_handling.alternative"),
    ],
)
def test_an_approval_step_that_describes_a_call_is_rejected(fields: dict[str, Any], field: str) -> None:
    error = _rejected(_plan({**_approval("ok"), **fields}))
    assert error.field == f"workflow_steps[0].{field}"


@pytest.mark.parametrize("timeout", ["1s", "3600s", "86400s"])
def test_an_approval_timeout_from_1s_to_24h_is_accepted(timeout: str) -> None:
    validate_plan(_plan(_approval("ok", timeout=timeout)))


@pytest.mark.parametrize("timeout", ["0.999s", "0s", "86401s", "-1s"])
def test_an_approval_timeout_out_of_range_is_rejected(timeout: str) -> None:
    error = _rejected(_plan(_approval("ok", timeout=timeout)))
    assert error.field == "workflow_steps[0].approval.timeout"


def test_an_unknown_approval_timeout_action_is_rejected() -> None:
    plan = _plan(_approval("ok"))
    plan.workflow_steps[0].approval.on_timeout = 9  # type: ignore[assignment]
    error = _rejected(plan)
    assert error.field == "workflow_steps[0].approval.on_timeout"
    assert "APPROVAL_TIMEOUT_ACTION_APPROVE" in error.message


def test_an_approval_prompt_of_2000_characters_is_accepted_and_longer_rejected() -> None:
    validate_plan(_plan(_approval("ok", prompt="x" * 2000)))
    error = _rejected(_plan(_approval("ok", prompt="x" * 2001)))
    assert error.field == "workflow_steps[0].approval.prompt"
    assert "2001" in error.message


def test_approval_data_whose_expression_does_not_compile_is_rejected_naming_its_path() -> None:
    error = _rejected(_plan(_approval("ok", data={"shown": {"jobs": "${user.[}"}})))
    assert error.field == "workflow_steps[0].approval.data.shown.jobs"
    assert "does not compile" in error.message


def test_approval_data_reading_a_step_it_does_not_wait_for_is_rejected() -> None:
    error = _rejected(_plan(_step("a"), _approval("ok", data={"x": "${steps.a.recorded}"})))
    assert error.field == "workflow_steps[1].approval.data.x"
    assert 'does not depend on "a"' in error.message


def test_a_call_step_with_approval_settings_is_rejected() -> None:
    error = _rejected(_plan(_step("a", approval={"prompt": "sure?"})))
    assert error.field == "workflow_steps[0].approval"
    assert "STEP_KIND_APPROVAL" in error.message


def test_steps_after_an_approval_may_read_its_output() -> None:
    plan = _plan(
        _step("a"),
        _approval("ok", "a", data={"job_ids": ["job-1", "job-2"]}),
        _submit("submit", "ok", inputs={"configuration": {"user_id": "u", "job_ids": "${steps.ok.job_ids}"}}),
    )
    validate_plan(plan)


def test_a_step_reading_an_approval_it_does_not_wait_for_is_rejected() -> None:
    plan = _plan(
        _approval("ok"),
        _submit("submit", inputs={"configuration": {"user_id": "u", "job_ids": "${steps.ok.job_ids}"}}),
    )
    assert _rejected(plan).field == "workflow_steps[1].inputs.configuration.job_ids"


# ---- compensation -------------------------------------------------------------------------


def test_a_compensation_reading_its_own_steps_output_is_valid() -> None:
    validate_plan(_plan(_submit("submit", compensation=_withdraw(timeout="5s", retry_count=10))))


@pytest.mark.parametrize(
    ("overrides", "field", "words"),
    [
        ({"agent": "astrology"}, "compensation.agent", 'unknown agent "astrology"'),
        ({"agent": ""}, "compensation.agent", "is required"),
        ({"operation": "Unsubmit"}, "compensation.operation", 'no operation "Unsubmit"'),
        ({"operation": "SearchJobs"}, "compensation.operation", 'no operation "SearchJobs"'),
        ({"configuration": {"user_id": "u", "why": "x"}}, "compensation.configuration.why", "is not a field"),
        ({"configuration": {"reason": 3}}, "compensation.configuration.reason", "does not parse"),
        ({"configuration": {"user_id": "${steps.[}"}}, "compensation.configuration.user_id", "does not compile"),
        ({"timeout": "0s"}, "compensation.timeout", "between 1ms and 1h"),
        ({"timeout": "3601s"}, "compensation.timeout", "between 1ms and 1h"),
        ({"retry_count": 11}, "compensation.retry_count", "between 0 and 10"),
        ({"retry_count": -1}, "compensation.retry_count", "between 0 and 10"),
    ],
)
def test_a_bad_compensation_is_rejected_naming_its_field(overrides: dict[str, Any], field: str, words: str) -> None:
    error = _rejected(_plan(_submit("submit", compensation=_withdraw(**overrides))))
    assert error.field == f"workflow_steps[0].{field}"
    assert words in error.message


def test_a_compensation_with_zero_retries_is_accepted() -> None:
    validate_plan(_plan(_submit("submit", compensation=_withdraw(retry_count=0))))


def test_a_compensation_reading_a_step_that_does_not_precede_it_is_rejected() -> None:
    config = {"user_id": "u", "application_ids": "${steps.later.events[*].name}"}
    plan = _plan(_submit("submit", compensation=_withdraw(configuration=config)), _step("later", "submit"))
    error = _rejected(plan)
    assert error.field == "workflow_steps[0].compensation.configuration.application_ids"
    assert 'does not depend on "later"' in error.message


def test_a_compensation_reading_an_unknown_step_is_rejected() -> None:
    config = {"user_id": "u", "application_ids": "${steps.ghost.ids}"}
    error = _rejected(_plan(_submit("submit", compensation=_withdraw(configuration=config))))
    assert error.field == "workflow_steps[0].compensation.configuration.application_ids"
    assert 'no step "ghost"' in error.message


# ---- JSON depth ---------------------------------------------------------------------------


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"n": value}
    return value


def _events(properties: Any) -> dict[str, Any]:
    """A RecordEvents request whose one event's properties (a Struct) are `properties`: 3 levels above them."""
    return {"user_id": "u", "events": [{"name": "x", "properties": properties}]}


@pytest.mark.parametrize(
    ("make", "above", "field"),
    [
        (lambda v: _step("a", inputs={"configuration": _events(v)}), 3, "inputs.configuration.events[0].properties"),
        (lambda v: _approval("a", data={"shown": v}), 1, "approval.data.shown"),
        (
            lambda v: _step(
                "a", compensation={"agent": "analytics", "operation": "RecordEvents", "configuration": _events(v)}
            ),
            3,
            "compensation.configuration.events[0].properties",
        ),
        (lambda v: _step("a", outputs={"success_criteria": {"c": v}}), 1, "outputs.success_criteria.c"),
    ],
)
def test_json_nested_deeper_than_16_levels_is_rejected_naming_where(make: Any, above: int, field: str) -> None:
    validate_plan(_plan(make(_nested(16 - above))))
    error = _rejected(_plan(make(_nested(17 - above))))
    assert error.field == f"workflow_steps[0].{field}" + ".n" * (16 - above)
    assert "deeper than 16 levels" in error.message


# ---- strategy and plan level --------------------------------------------------------------


@pytest.mark.parametrize(
    ("policy", "field"),
    [
        ({"max_retries": 11}, "max_retries"),
        ({"max_retries": -1}, "max_retries"),
        ({"initial_backoff": "3601s"}, "initial_backoff"),
        ({"initial_backoff": "-1s"}, "initial_backoff"),
        ({"max_backoff": "7200s"}, "max_backoff"),
        ({"backoff_multiplier": 0.5}, "backoff_multiplier"),
        ({"backoff_multiplier": 11}, "backoff_multiplier"),
        ({"jitter": 1.5}, "jitter"),
        ({"jitter": -0.1}, "jitter"),
        ({"max_circuit_waits": 21}, "max_circuit_waits"),
        ({"max_circuit_waits": -1}, "max_circuit_waits"),
        ({"custom_backoffs": ["1s"] * 11}, "custom_backoffs"),
        ({"custom_backoffs": ["1s", "3601s"]}, "custom_backoffs[1]"),
        ({"backoff_strategy": "BACKOFF_STRATEGY_CUSTOM"}, "custom_backoffs"),
    ],
)
def test_a_retry_policy_out_of_bounds_is_rejected(policy: dict[str, Any], field: str) -> None:
    plan = _plan(execution_strategy={"retry_policy": policy})
    assert _rejected(plan).field == f"execution_strategy.retry_policy.{field}"


def test_a_retry_policy_at_its_bounds_is_accepted() -> None:
    policy = {
        "max_retries": 10,
        "backoff_strategy": "BACKOFF_STRATEGY_CUSTOM",
        "initial_backoff": "3600s",
        "max_backoff": "3600s",
        "backoff_multiplier": 10,
        "jitter": 1,
        "custom_backoffs": ["1s"] * 10,
        "max_circuit_waits": 20,
    }
    validate_plan(_plan(execution_strategy={"retry_policy": policy}))


def test_max_concurrency_above_64_is_rejected() -> None:
    plan = _plan(execution_strategy={"max_concurrency": 65})
    assert _rejected(plan).field == "execution_strategy.max_concurrency"


def test_an_unknown_execution_mode_is_rejected() -> None:
    plan = _plan()
    plan.execution_strategy.execution_mode = 9  # type: ignore[assignment]
    error = _rejected(plan)
    assert error.field == "execution_strategy.execution_mode"
    assert "EXECUTION_MODE_HYBRID" in error.message


@pytest.mark.parametrize("timeout", ["86401s", "0s", "-1s"])
def test_a_plan_timeout_out_of_range_is_rejected(timeout: str) -> None:
    assert _rejected(_plan(timeout=timeout)).field == "timeout"


def test_a_plan_timeout_of_24_hours_is_accepted() -> None:
    validate_plan(_plan(timeout="86400s"))


def test_a_complexity_score_above_100_is_rejected() -> None:
    assert _rejected(_plan(complexity_score=101)).field == "complexity_score"


# ---- quality gates ------------------------------------------------------------------------


def _gate(**overrides: Any) -> dict[str, Any]:
    gate: dict[str, Any] = {
        "gate_id": "g",
        "checkpoint": "a",
        "criteria": [{"metric": "score", "operator": "COMPARISON_OPERATOR_GTE", "value": 50, "weight": 100}],
        "action_on_failure": "GATE_ACTION_STOP",
    }
    gate.update(overrides)
    return gate


def test_a_valid_gate_is_accepted() -> None:
    validate_plan(_plan(quality_gates=[_gate()]))


def test_a_duplicate_gate_id_is_rejected() -> None:
    error = _rejected(_plan(quality_gates=[_gate(), _gate()]))
    assert error.field == "quality_gates[1].gate_id"


def test_a_gate_on_an_unknown_step_is_rejected() -> None:
    error = _rejected(_plan(quality_gates=[_gate(checkpoint="zzz")]))
    assert error.field == "quality_gates[0].checkpoint"
    assert '"zzz"' in error.message


def test_a_gate_without_criteria_is_rejected() -> None:
    assert _rejected(_plan(quality_gates=[_gate(criteria=[])])).field == "quality_gates[0].criteria"


def test_a_criterion_without_an_operator_is_rejected() -> None:
    gate = _gate(criteria=[{"metric": "score", "value": 50, "weight": 100}])
    assert _rejected(_plan(quality_gates=[gate])).field == "quality_gates[0].criteria[0].operator"


def test_a_criterion_weight_above_100_is_rejected() -> None:
    gate = _gate(criteria=[{"metric": "score", "operator": "COMPARISON_OPERATOR_GT", "value": 1, "weight": 101}])
    assert _rejected(_plan(quality_gates=[gate])).field == "quality_gates[0].criteria[0].weight"


def test_criteria_whose_weights_are_all_zero_are_rejected() -> None:
    gate = _gate(criteria=[{"metric": "score", "operator": "COMPARISON_OPERATOR_GT", "value": 1, "weight": 0}])
    assert _rejected(_plan(quality_gates=[gate])).field == "quality_gates[0].criteria"


def test_a_pass_score_above_100_is_rejected() -> None:
    assert _rejected(_plan(quality_gates=[_gate(pass_score=150)])).field == "quality_gates[0].pass_score"


def test_an_escalating_gate_is_accepted() -> None:
    validate_plan(_plan(quality_gates=[_gate(action_on_failure="GATE_ACTION_ESCALATE")]))


def test_an_unknown_gate_action_is_rejected() -> None:
    plan = _plan(quality_gates=[_gate()])
    plan.quality_gates[0].action_on_failure = 9  # type: ignore[assignment]
    error = _rejected(plan)
    assert error.field == "quality_gates[0].action_on_failure"
    assert "GATE_ACTION_ESCALATE" in error.message


def test_a_gate_on_an_approval_step_is_rejected() -> None:
    plan = _plan(_approval("a"), quality_gates=[_gate()])
    error = _rejected(plan)
    assert error.field == "quality_gates[0].checkpoint"
    assert "approval step" in error.message


def test_an_expression_calling_an_unknown_function_is_rejected() -> None:
    error = _rejected(_plan(_step("a", inputs={"configuration": {"user_id": "${shout(user.user_id)}"}})))
    assert error.field == "workflow_steps[0].inputs.configuration.user_id"
    assert "unknown function shout()" in error.message
