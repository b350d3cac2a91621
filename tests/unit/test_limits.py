"""Request bounds: each one refuses just past it, names the field path, and accepts just inside."""

from __future__ import annotations

from collections.abc import Callable

import grpc
import pytest
from baton.v1 import orchestrator_pb2, plan_pb2
from google.protobuf import struct_pb2

from server.api.errors import RequestError
from server.api.limits import (
    MAX_DEPTH,
    MAX_ITEMS,
    MAX_REQUEST_BYTES,
    MAX_STRING_BYTES,
    MAX_STRUCT_BYTES,
    check_plan,
    check_request,
    check_struct,
)
from tests.integration.store_support import nested_struct


def request_with(**data: object) -> orchestrator_pb2.ExecuteWorkflowRequest:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_search")
    request.user_context.user_id = "u1"
    request.user_context.data.update(data)
    return request


def refusal(check: Callable[[], None]) -> str:
    with pytest.raises(RequestError) as raised:
        check()
    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    return raised.value.message


# ---- nesting ---------------------------------------------------------------------------------


def test_user_data_nested_16_levels_is_accepted_and_17_is_refused_naming_the_path() -> None:
    inside = orchestrator_pb2.ExecuteWorkflowRequest()
    inside.user_context.data.CopyFrom(nested_struct(MAX_DEPTH))
    check_request(inside)

    past = orchestrator_pb2.ExecuteWorkflowRequest()
    past.user_context.data.CopyFrom(nested_struct(MAX_DEPTH + 1))
    assert refusal(lambda: check_request(past)) == "user_context.data" + ".a" * 16 + ": nested deeper than 16 levels"


def test_the_issues_33_level_user_data_is_refused() -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest()
    request.user_context.data.CopyFrom(nested_struct(33))

    assert refusal(lambda: check_request(request)).startswith("user_context.data.a.a.a")


def test_a_list_is_a_level_of_nesting() -> None:
    value: object = "deep"
    for _ in range(MAX_DEPTH):
        value = [value]
    request = request_with(a=value)  # 16 lists under the top Struct: 17 levels

    assert (
        refusal(lambda: check_request(request)) == "user_context.data.a" + "[0]" * 15 + ": nested deeper than 16 levels"
    )


def _plan_struct_at(where: str, value: struct_pb2.Struct) -> plan_pb2.OrchestrationPlan:
    plan = plan_pb2.OrchestrationPlan()
    step = plan.workflow_steps.add(step_id="s")
    target = {
        "inputs.configuration": step.inputs.configuration,
        "outputs.success_criteria": step.outputs.success_criteria,
        "error_handling.alternative.configuration": step.error_handling.alternative.configuration,
        "compensation.configuration": step.compensation.configuration,
        "approval.data": step.approval.data,
    }[where]
    target.CopyFrom(value)
    return plan


@pytest.mark.parametrize(
    "where",
    [
        "inputs.configuration",
        "outputs.success_criteria",
        "error_handling.alternative.configuration",
        "compensation.configuration",
        "approval.data",
    ],
)
def test_every_struct_of_an_explicit_plan_is_bounded_in_depth(where: str) -> None:
    check_plan(_plan_struct_at(where, nested_struct(MAX_DEPTH)))
    request = orchestrator_pb2.ExecuteWorkflowRequest()
    request.plan.CopyFrom(_plan_struct_at(where, nested_struct(MAX_DEPTH + 1)))

    message = refusal(lambda: check_request(request))

    assert message.startswith(f"plan.workflow_steps[0].{where}.a.a")
    assert message.endswith("nested deeper than 16 levels")
    # The servicer walks a plan it has not seen with check_plan, under the same name.
    assert refusal(lambda: check_plan(request.plan)) == message
    check_request(request, with_plan=False)


# ---- strings ---------------------------------------------------------------------------------


def test_a_string_of_the_bound_is_accepted_and_one_byte_more_is_refused_wherever_it_is() -> None:
    check_request(request_with(notes="x" * MAX_STRING_BYTES))
    # Multi-byte characters count as their UTF-8 bytes.
    check_request(request_with(notes="é" * (MAX_STRING_BYTES // 2)))

    long = "x" * (MAX_STRING_BYTES + 1)
    assert refusal(lambda: check_request(request_with(notes=long))).startswith("user_context.data.notes: a string")
    assert refusal(lambda: check_request(request_with(notes="é" * (MAX_STRING_BYTES // 2) + "x"))).startswith(
        "user_context.data.notes"
    )
    assert refusal(lambda: check_request(request_with(jobs=[{"title": long}]))).startswith(
        "user_context.data.jobs[0].title:"
    )
    in_field = orchestrator_pb2.ExecuteWorkflowRequest(request_id=long)
    assert refusal(lambda: check_request(in_field)).startswith("request_id:")
    step_name = orchestrator_pb2.ExecuteWorkflowRequest()
    step_name.plan.workflow_steps.add(step_id="s", step_name=long)
    assert refusal(lambda: check_request(step_name)).startswith("plan.workflow_steps[0].step_name:")


def test_a_struct_key_past_the_string_bound_is_refused_and_shown_cut() -> None:
    key = "k" * (MAX_STRING_BYTES + 1)

    message = refusal(lambda: check_request(request_with(**{key: 1})))

    assert message.startswith("user_context.data: a key:")
    assert len(message) < 200


def test_an_odd_key_is_quoted_in_the_path() -> None:
    request = request_with(**{"two words": {"x": [{"y": "z" * (MAX_STRING_BYTES + 1)}]}})

    assert refusal(lambda: check_request(request)).startswith('user_context.data["two words"].x[0].y:')


# ---- items and sizes -------------------------------------------------------------------------


def test_a_list_or_struct_of_the_item_bound_is_accepted_and_one_more_is_refused() -> None:
    check_request(request_with(ids=list(range(MAX_ITEMS))))
    check_request(request_with(by_id={f"k{i}": i for i in range(MAX_ITEMS)}))

    assert refusal(lambda: check_request(request_with(ids=list(range(MAX_ITEMS + 1))))) == (
        f"user_context.data.ids: {MAX_ITEMS + 1} items, more than the {MAX_ITEMS} allowed"
    )
    many = request_with(by_id={f"k{i}": i for i in range(MAX_ITEMS + 1)})
    assert refusal(lambda: check_request(many)).startswith("user_context.data.by_id: 10001 items")


def _data_of_size(size: int) -> struct_pb2.Struct:
    """A Struct of exactly `size` serialized bytes, its strings within the string bound."""
    data = struct_pb2.Struct()
    chunk = MAX_STRING_BYTES - 64
    index = 0
    while data.ByteSize() < size:
        missing = size - data.ByteSize()
        key = f"s{index}"
        data.fields[key].string_value = "x" * min(chunk, missing)
        # Trim what the entry's framing added beyond the target.
        while data.ByteSize() > size:
            data.fields[key].string_value = data.fields[key].string_value[:-1]
        index += 1
    assert data.ByteSize() == size
    return data


def test_user_data_of_the_size_bound_is_accepted_and_one_byte_more_is_refused() -> None:
    inside = orchestrator_pb2.ExecuteWorkflowRequest()
    inside.user_context.data.CopyFrom(_data_of_size(MAX_STRUCT_BYTES))
    check_request(inside)

    past = orchestrator_pb2.ExecuteWorkflowRequest()
    past.user_context.data.CopyFrom(_data_of_size(MAX_STRUCT_BYTES + 1))
    assert refusal(lambda: check_request(past)).startswith(f"user_context.data: {MAX_STRUCT_BYTES + 1} bytes")


def test_a_request_of_the_size_bound_is_accepted_and_one_byte_more_is_refused() -> None:
    def request_of(size: int) -> orchestrator_pb2.ExecuteWorkflowRequest:
        request = orchestrator_pb2.ExecuteWorkflowRequest()
        for index in range(6):
            request.plan.workflow_steps.add(step_id=f"s{index}", step_name="n" * (MAX_STRING_BYTES - 64))
        request.user_context.data.CopyFrom(_data_of_size(size - request.ByteSize() - 2000))
        # The rest in request_id: a tag and a two-byte length, then the characters.
        request.request_id = "r" * (size - request.ByteSize() - 3)
        assert request.ByteSize() == size
        return request

    check_request(request_of(MAX_REQUEST_BYTES))
    assert refusal(lambda: check_request(request_of(MAX_REQUEST_BYTES + 1))).startswith(
        f"request: {MAX_REQUEST_BYTES + 1} bytes"
    )


def test_check_struct_names_the_field_it_is_given() -> None:
    check_struct("payload", nested_struct(MAX_DEPTH))

    assert refusal(lambda: check_struct("payload", nested_struct(MAX_DEPTH + 1))).startswith("payload.a.a")
    big = _data_of_size(MAX_STRUCT_BYTES + 1)
    assert refusal(lambda: check_struct("payload", big)).startswith(f"payload: {MAX_STRUCT_BYTES + 1} bytes")
