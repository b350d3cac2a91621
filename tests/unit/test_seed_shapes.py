"""The seed's words in and the seed's shapes out: SeedApi's translation, without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from baton.v1 import common_pb2, execution_pb2, journey_pb2, orchestrator_pb2, plan_pb2, seed_api_pb2
from google.protobuf import json_format, struct_pb2

from server.api.errors import RequestError
from server.api.seed import seed_health, seed_status
from server.api.seed_words import enum_word, execute_request, parse_duration, user_journey

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def _struct(value: dict[str, object]) -> struct_pb2.Struct:
    result = struct_pb2.Struct()
    result.update(value)
    return result


def _request(**fields: object) -> seed_api_pb2.SeedExecuteRequest:
    return json_format.ParseDict(fields, seed_api_pb2.SeedExecuteRequest())


def _invalid(call: object) -> str:
    with pytest.raises(RequestError) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code.name == "INVALID_ARGUMENT"
    return caught.value.message


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("5m", 300.0), ("90s", 90.0), ("1h30m", 5400.0), ("2.5s", 2.5), ("250ms", 0.25), ("300s", 300.0)],
)
def test_durations_read_the_go_notation(text: str, seconds: float) -> None:
    assert parse_duration(text, "timeout") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["5", "5 minutes", "m5", "5m trailing", "-5m", "PT5M", "1e3s"])
def test_a_duration_in_any_other_notation_is_invalid_naming_the_field(text: str) -> None:
    assert _invalid(lambda: parse_duration(text, "execution_options.timeout")).startswith("execution_options.timeout:")


def test_a_duration_past_what_protobuf_represents_is_invalid() -> None:
    assert "longer than any duration" in _invalid(lambda: parse_duration("99999999999h", "timeout"))


def test_execute_takes_the_seeds_words_for_priority_quality_and_timeout() -> None:
    rich = execute_request(
        _request(
            workflow_type="job_search",
            user_context={"user_id": "u1"},
            execution_options={"priority": "high", "quality_level": "Balanced", "timeout": "5m"},
            callback_url="http://example.test/done",
            request_id="r1",
        )
    )
    assert rich.execution_options.priority == plan_pb2.PRIORITY_HIGH
    assert rich.execution_options.quality_level == journey_pb2.QUALITY_LEVEL_BALANCED
    assert rich.execution_options.timeout.ToSeconds() == 300
    assert (rich.workflow_type, rich.callback_url, rich.request_id) == ("job_search", "http://example.test/done", "r1")


def test_execute_leaves_unset_options_unset() -> None:
    rich = execute_request(_request(workflow_type="job_search", user_context={"user_id": "u1"}))
    assert rich.execution_options.priority == plan_pb2.PRIORITY_UNSPECIFIED
    assert rich.execution_options.quality_level == journey_pb2.QUALITY_LEVEL_UNSPECIFIED
    assert not rich.execution_options.HasField("timeout")


@pytest.mark.parametrize(
    ("options", "field", "listed"),
    [
        ({"priority": "urgent"}, "execution_options.priority", "low, medium, high, critical"),
        ({"quality_level": "best"}, "execution_options.quality_level", "fast, balanced, thorough"),
        ({"priority": "unspecified"}, "execution_options.priority", "low, medium, high, critical"),
    ],
)
def test_an_unknown_word_is_invalid_naming_the_field_and_the_words_it_takes(
    options: dict[str, str], field: str, listed: str
) -> None:
    message = _invalid(
        lambda: execute_request(
            _request(workflow_type="job_search", user_context={"user_id": "u"}, execution_options=options)
        )
    )
    assert message.startswith(f"{field}: expected one of {listed}")


def test_execute_without_a_workflow_type_is_invalid_naming_it() -> None:
    assert _invalid(lambda: execute_request(_request(user_context={"user_id": "u"}))).startswith("workflow_type:")


def test_free_form_user_context_keys_are_kept_in_the_journeys_data() -> None:
    journey = user_journey(
        _struct(
            {
                "user_id": "u1",
                "keywords": ["python", "go"],
                "location": "Berlin",
                "data": {"resume_text": "…", "location": "Paris"},
            }
        )
    )
    assert journey.user_id == "u1"
    assert json_format.MessageToDict(journey.data) == {
        "resume_text": "…",
        "keywords": ["python", "go"],
        "location": "Berlin",  # the free-form key wins over data's
    }


def test_journey_fields_take_the_seeds_lowercase_enum_words_at_any_depth() -> None:
    journey = user_journey(
        _struct(
            {
                "user_journey": {
                    "user_id": "u1",
                    "journey_type": "job_search",
                    "journey_context": {
                        "urgency_level": "HIGH",
                        "user_preferences": {"automation_level": "fully_automatic"},
                    },
                    "current_data_state": {"profile_completeness": 80, "document_status": "DOCUMENT_STATUS_ANALYZED"},
                }
            }
        )
    )
    assert journey.journey_type == journey_pb2.JOURNEY_TYPE_JOB_SEARCH
    assert journey.journey_context.urgency_level == journey_pb2.URGENCY_LEVEL_HIGH
    assert journey.journey_context.user_preferences.automation_level == journey_pb2.AUTOMATION_LEVEL_FULLY_AUTOMATIC
    assert journey.current_data_state.document_status == journey_pb2.DOCUMENT_STATUS_ANALYZED
    assert journey.current_data_state.profile_completeness == 80


@pytest.mark.parametrize(
    ("context", "field"),
    [
        ({"user_id": "u", "journey_context": {"user_preferences": {"automation_level": "lazy"}}},
         "user_context.journey_context.user_preferences.automation_level"),
        ({"user_id": "u", "journey_context": "web"}, "user_context.journey_context"),
        ({"user_id": "u", "current_data_state": None}, "user_context.current_data_state"),
        ({"user_id": "u", "data": ["not", "an", "object"]}, "user_context.data"),
        ({"user_id": 7}, "user_context"),
    ],
)  # fmt: skip
def test_a_wrong_journey_field_is_invalid_naming_it(context: dict[str, object], field: str) -> None:
    message = _invalid(lambda: user_journey(_struct(context)))
    assert message.startswith(f"{field}:")
    if field == "user_context":
        assert "user_id" in message


def test_a_user_context_past_the_request_bounds_is_refused_before_it_is_walked() -> None:
    deep: dict[str, object] = {"leaf": 1}
    for _ in range(20):
        deep = {"next": deep}
    assert "nested deeper" in _invalid(lambda: user_journey(_struct({"user_id": "u", "blob": deep})))


def _status(state: int, **fields: object) -> execution_pb2.ExecutionStatus:
    status = execution_pb2.ExecutionStatus(execution_id="e1", status=state, last_sequence=7)  # type: ignore[arg-type]
    json_format.ParseDict(fields, status)
    return status


def test_a_running_status_has_the_seeds_shape() -> None:
    status = _status(
        execution_pb2.EXECUTION_STATE_RUNNING,
        progress={"completion_percentage": 42.857, "running_steps": ["search_jobs"], "estimated_time_remaining": "90s"},
        performance_metrics={
            "current_time": "2026-01-02T03:04:00Z",
            "step_timings": [{"step_id": "search_jobs", "step_name": "Search job boards"}],
        },
        quality_metrics={"overall_quality_score": 91.5},
    )
    seed = seed_status(status, NOW)
    assert json_format.MessageToDict(
        seed, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    ) == {
        "execution_id": "e1",
        "status": "running",
        "progress": 42,
        "current_step": "Search job boards",
        "estimated_completion": "2026-01-02T03:05:30Z",  # the last event's time + 90 s
        "quality_score": 91.5,
        "sequence": "7",
        "failure_reason": "",
        "heartbeat": False,
    }


def test_an_estimate_already_overdue_is_now_not_the_past() -> None:
    status = _status(
        execution_pb2.EXECUTION_STATE_RUNNING,
        progress={"estimated_time_remaining": "1s"},
        performance_metrics={"current_time": "2026-01-02T02:00:00Z"},
    )
    assert seed_status(status, NOW).estimated_completion.ToDatetime(UTC) == NOW


def test_a_step_waiting_for_a_signal_is_the_current_step_when_none_runs() -> None:
    status = _status(
        execution_pb2.EXECUTION_STATE_RUNNING,
        waiting=[{"step_id": "approve_applications"}],
        performance_metrics={
            "step_timings": [{"step_id": "approve_applications", "step_name": "Approve applications"}]
        },
    )
    assert seed_status(status, NOW).current_step == "Approve applications"


def test_an_ended_execution_completes_when_it_ended_with_no_current_step() -> None:
    status = _status(
        execution_pb2.EXECUTION_STATE_COMPLETED,
        progress={"completion_percentage": 100.0},
        performance_metrics={"end_time": "2026-01-02T03:00:00Z"},
    )
    seed = seed_status(status, NOW)
    assert (seed.status, seed.progress, seed.current_step) == ("completed", 100, "")
    assert seed.estimated_completion.ToDatetime(UTC) == NOW - timedelta(minutes=4, seconds=5)


def test_every_execution_state_has_its_seed_word() -> None:
    words = {
        enum_word(execution_pb2.ExecutionState.DESCRIPTOR, v.number)
        for v in execution_pb2.ExecutionState.DESCRIPTOR.values
    }
    assert words == {"unknown", "queued", "running", "paused", "completed", "failed", "cancelled", "compensating"}


def test_health_has_the_seeds_words_numbers_and_milliseconds() -> None:
    health = orchestrator_pb2.SystemHealth(overall_health=orchestrator_pb2.OVERALL_HEALTH_HEALTHY, active_workflows=3)
    agent = health.agent_statuses["job_discovery"]
    agent.status = common_pb2.AGENT_HEALTH_DEGRADED
    agent.response_time.FromMilliseconds(12)
    agent.queue_depth = 5
    agent.api_rate_limits["linkedin"] = 4999
    agent.metrics.update({"search_performance": 97})
    health.agent_statuses["automation"].account_health["indeed"] = common_pb2.ACCOUNT_HEALTH_LIMITED
    seed = json_format.MessageToDict(
        seed_health(health), preserving_proto_field_name=True, always_print_fields_with_no_presence=True
    )
    assert seed["overall_health"] == "healthy"
    assert (seed["active_workflows"], seed["queue_depth"]) == (3, 0)  # numbers, zeros included
    assert seed["agent_statuses"]["job_discovery"] == {
        "status": "degraded",
        "load": 0.0,
        "response_time": 12.0,
        "error_rate": 0.0,
        "queue_depth": 5,
        "metrics": {"search_performance": 97.0, "api_rate_limits": {"linkedin": 4999.0}},
    }
    assert seed["agent_statuses"]["automation"]["status"] == "unknown"
    assert seed["agent_statuses"]["automation"]["metrics"] == {"account_health": {"indeed": "limited"}}
