"""Request bounds over real gRPC: past a bound INVALID_ARGUMENT naming the field, inside it accepted."""

from __future__ import annotations

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from server.api.limits import MAX_DEPTH, MAX_ITEMS, MAX_STRING_BYTES, MAX_STRUCT_BYTES
from tests.integration.store_support import nested_struct
from tests.integration.support import execute_plan, step, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


def job_search(**data: object) -> orchestrator_pb2.ExecuteWorkflowRequest:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_search")
    request.user_context.user_id = "u1"
    request.user_context.data.update(data)
    return request


def plan_request(request: orchestrator_pb2.ExecuteWorkflowRequest) -> orchestrator_pb2.PlanWorkflowRequest:
    return orchestrator_pb2.PlanWorkflowRequest(workflow_type=request.workflow_type, user_context=request.user_context)


async def refused(call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    return raised.value.details() or ""


async def test_the_issues_33_level_user_data_is_refused_naming_the_field(stub: Stub) -> None:
    request = job_search()
    request.user_context.data.CopyFrom(nested_struct(33))

    executed = await refused(stub.ExecuteWorkflow(request))
    planned = await refused(stub.PlanWorkflow(plan_request(request)))

    assert executed.startswith("user_context.data.a.a.a")
    assert executed.endswith(": nested deeper than 16 levels")
    assert planned == executed
    listed = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest())
    assert list(listed.executions) == []


async def test_user_data_just_inside_every_bound_runs_to_completion(stub: Stub) -> None:
    request = job_search(notes="n" * MAX_STRING_BYTES, ids=list(range(MAX_ITEMS)))
    request.user_context.data.fields["deep"].struct_value.CopyFrom(nested_struct(MAX_DEPTH - 1))
    assert request.user_context.data.ByteSize() <= MAX_STRUCT_BYTES

    plan = await stub.PlanWorkflow(plan_request(request))
    execution = await stub.ExecuteWorkflow(request)

    assert plan.workflow_steps
    assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED


async def test_each_bound_of_user_data_is_refused_one_past_it(stub: Stub) -> None:
    deep = job_search()
    deep.user_context.data.fields["deep"].struct_value.CopyFrom(nested_struct(MAX_DEPTH))
    long_string = job_search(notes="n" * (MAX_STRING_BYTES + 1))
    many = job_search(ids=list(range(MAX_ITEMS + 1)))
    big = job_search(**{f"s{i}": "b" * (MAX_STRING_BYTES - 100) for i in range(5)})

    assert (await refused(stub.ExecuteWorkflow(deep))).startswith("user_context.data.deep.a.a")
    assert (await refused(stub.ExecuteWorkflow(long_string))).startswith("user_context.data.notes: a string")
    assert (await refused(stub.PlanWorkflow(plan_request(many)))).startswith(
        f"user_context.data.ids: {MAX_ITEMS + 1} items"
    )
    assert (await refused(stub.ExecuteWorkflow(big))).startswith("user_context.data: ")


async def test_an_explicit_plan_is_bounded_too_and_still_runs_inside_the_bounds(stub: Stub) -> None:
    plan = w_plan()
    plan.workflow_steps.append(step("F", "E", config={"user_id": "${user.user_id}"}))
    inside = execute_plan(plan)
    inside.plan.workflow_steps[5].step_name = "f" * MAX_STRING_BYTES
    past = execute_plan(plan)
    past.plan.workflow_steps[5].step_name = "f" * (MAX_STRING_BYTES + 1)
    too_big = execute_plan(w_plan())
    for index in range(9):
        too_big.plan.workflow_steps.append(step(f"S{index}"))
        too_big.plan.workflow_steps[-1].step_name = "x" * (MAX_STRING_BYTES - 100)

    execution = await stub.ExecuteWorkflow(inside)
    assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
    assert (await refused(stub.ExecuteWorkflow(past))).startswith("plan.workflow_steps[5].step_name: a string")
    assert (await refused(stub.ExecuteWorkflow(too_big))).startswith("request: ")
