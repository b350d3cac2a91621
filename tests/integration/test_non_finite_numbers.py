"""NaN and infinities in a request's Struct: INVALID_ARGUMENT naming the field, never INTERNAL.

Found by the fuzzer (tests/fuzz): a Struct number that is NaN or ±Infinity has no JSON spelling,
so json_format.MessageToDict raised ValueError in the planner, the seed API and SignalExecution,
answered INTERNAL; in user_context.data it was accepted and stored.
"""

from __future__ import annotations

import math

import grpc
import pytest
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc, seed_api_pb2, seed_api_pb2_grpc

from server.app import RunningServer
from tests.integration.support import execute_plan, w_plan

NON_FINITE = [math.nan, math.inf, -math.inf]


async def _refused(call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    return raised.value.details() or ""


@pytest.mark.parametrize("number", NON_FINITE, ids=str)
async def test_a_non_finite_number_anywhere_in_a_request_struct_is_invalid_argument_naming_it(
    orchestrator: RunningServer, number: float
) -> None:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        seed = seed_api_pb2_grpc.SeedApiStub(channel)

        plan = w_plan()
        plan.workflow_steps[0].inputs.configuration.update({"x": {"y": [number]}})
        in_plan = await _refused(stub.ExecuteWorkflow(execute_plan(plan)))
        assert in_plan.startswith("plan.workflow_steps[0].inputs.configuration.x.y[0]: a JSON number must be finite")

        journey = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_search")
        journey.user_context.user_id = "u1"
        journey.user_context.data.update({"years": number})
        assert (await _refused(stub.ExecuteWorkflow(journey))).startswith("user_context.data.years: a JSON number")
        planned = orchestrator_pb2.PlanWorkflowRequest(workflow_type="job_search", user_context=journey.user_context)
        assert (await _refused(stub.PlanWorkflow(planned))).startswith("user_context.data.years: a JSON number")

        seeded = seed_api_pb2.SeedExecuteRequest(workflow_type="job_search")
        seeded.user_context.update({"user_id": "u1", "score": number})
        assert (await _refused(seed.Execute(seeded))).startswith("user_context.score: a JSON number must be finite")

        running = await stub.ExecuteWorkflow(execute_plan(w_plan()))
        signal = orchestrator_pb2.SignalExecutionRequest(execution_id=running.execution_id, signal=3)
        signal.payload.update({"n": number})
        assert (await _refused(stub.SignalExecution(signal))).startswith("payload.n: a JSON number must be finite")

        listed = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest())
        assert [e.execution_id for e in listed.executions] == [running.execution_id]


async def test_finite_extremes_in_a_struct_are_accepted(orchestrator: RunningServer) -> None:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        journey = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_search")
        journey.user_context.user_id = "u1"
        journey.user_context.data.update({"big": 1.7976931348623157e308, "tiny": -5e-324})
        execution = await stub.ExecuteWorkflow(journey)
        assert execution.created
