"""No accepted execution becomes unreadable: statuses and updates stay under the message limit.

The issue's case: a valid 200-step plan of SearchJobs(limit 100), whose outputs (about 55 KB
each) made an 11 MB status. Every client here is a default-configured one (4 MiB receive).
"""

from __future__ import annotations

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

from server.api.sizing import GRPC_DEFAULT_RECEIVE_BYTES
from server.planner import validate_plan
from tests.integration.support import execute_plan, step, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub
STEPS = 200


def search_plan() -> plan_pb2.OrchestrationPlan:
    return plan_pb2.OrchestrationPlan(
        workflow_type="wide_search",
        workflow_steps=[
            step(
                f"search_{i:03d}", agent="job_discovery", operation="SearchJobs", config={"user_id": "u1", "limit": 100}
            )
            for i in range(STEPS)
        ],
    )


def test_the_200_step_search_plan_is_valid() -> None:
    plan = search_plan()
    plan.user_id = "u1"

    validate_plan(plan)


@pytest.mark.timeout(300)
async def test_a_200_step_plan_of_large_outputs_completes_and_every_answer_fits_a_default_client(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(search_plan()))

    updates = await watch_all(stub, execution.execution_id, deadline=240)

    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    terminal = updates[-1]
    assert terminal.event.WhichOneof("kind") == "execution_completed"
    assert terminal.status.status == E.EXECUTION_STATE_COMPLETED
    assert terminal.ByteSize() <= GRPC_DEFAULT_RECEIVE_BYTES
    status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id))
    assert status.status == E.EXECUTION_STATE_COMPLETED
    assert status.ByteSize() <= GRPC_DEFAULT_RECEIVE_BYTES
    omitted = dict(status.results.omitted_outputs)
    kept = set(status.results.primary_outputs.fields)
    assert omitted and kept.isdisjoint(omitted)
    assert kept | set(omitted) == {f"search_{i:03d}" for i in range(STEPS)}
    assert all(size > 40_000 for size in omitted.values())

    step_id = sorted(omitted)[0]
    output = await stub.GetStepOutput(
        orchestrator_pb2.GetStepOutputRequest(execution_id=execution.execution_id, step_id=step_id)
    )
    assert (output.execution_id, output.step_id) == (execution.execution_id, step_id)
    assert len(output.output.fields["jobs"].list_value.values) == 100
    assert output.output.fields["jobs"].list_value.values[0].struct_value.fields["job_id"].string_value
    # The same output as the status would have carried (JSON with proto field names).
    assert kept
    shown = status.results.primary_outputs.fields[sorted(kept)[0]].struct_value
    assert set(shown.fields) == set(output.output.fields)

    tail = await watch_all(stub, execution.execution_id, after=len(updates) - 1)
    assert [u.sequence for u in tail] == [terminal.sequence]


async def test_get_step_output_names_what_is_missing(stub: Stub) -> None:
    plan = w_plan()
    skipped = step("skipped", "A")
    skipped.timing.scheduling = plan_pb2.SCHEDULING_CONDITIONAL
    skipped.timing.condition = "steps.A.recorded > `1000000`"
    plan.workflow_steps.append(skipped)
    execution = await stub.ExecuteWorkflow(execute_plan(plan))
    await watch_all(stub, execution.execution_id)

    def request(
        execution_id: str = execution.execution_id, step_id: str = "A"
    ) -> orchestrator_pb2.GetStepOutputRequest:
        return orchestrator_pb2.GetStepOutputRequest(execution_id=execution_id, step_id=step_id)

    output = await stub.GetStepOutput(request())
    assert output.output.fields

    cases = [
        (request(execution_id=""), grpc.StatusCode.INVALID_ARGUMENT, "execution_id: required"),
        (request(step_id=""), grpc.StatusCode.INVALID_ARGUMENT, "step_id: required"),
        (request(execution_id="nope"), grpc.StatusCode.NOT_FOUND, "execution_id: no execution 'nope'"),
        (request(step_id="Z"), grpc.StatusCode.NOT_FOUND, "has no step 'Z'"),
        (request(step_id="skipped"), grpc.StatusCode.NOT_FOUND, "step 'skipped'"),
    ]
    for message, code, text in cases:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.GetStepOutput(message)
        assert raised.value.code() == code
        assert text in (raised.value.details() or "")
    with pytest.raises(grpc.aio.AioRpcError) as no_output:
        await stub.GetStepOutput(request(step_id="skipped"))
    assert "has no output (it is STEP_STATE_SKIPPED)" in (no_output.value.details() or "")
