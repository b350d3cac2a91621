"""What the seed's plan fields promise, over real gRPC with the embedded reference fleet (issue 11.7):
`quality_requirements` (recorded, or failing the step with `fail_below_quality`),
`notification_required` (the user told through ui_ux), the error summary and recommendations."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from baton.v1 import common_pb2, execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2, ui_ux_pb2_grpc

from server.app import RunningServer
from tests.integration.support import execute_plan, step, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


@pytest.fixture
async def fleet_channel(orchestrator: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    assert orchestrator.fleet is not None
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:
        yield channel


def _untitled_notice(**inputs: object) -> plan_pb2.OrchestrationPlan:
    """One ui_ux Notify without a title or text: the agent scores it 75 (completeness 50)."""
    tell = step("tell", agent="ui_ux", operation="Notify")
    for name, value in inputs.items():
        setattr(tell.inputs, name, value)
    return plan_pb2.OrchestrationPlan(workflow_type="promises", workflow_steps=[tell])


async def _run(stub: Stub, plan: plan_pb2.OrchestrationPlan) -> E.ExecutionStatus:
    execution = await stub.ExecuteWorkflow(execute_plan(plan), timeout=10)
    await watch_all(stub, execution.execution_id)
    return await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id))


async def _notifications_sent(channel: grpc.aio.Channel) -> float:
    status = await ui_ux_pb2_grpc.UiUxStub(channel).GetStatus(common_pb2.GetStatusRequest(), timeout=5)
    sent: float = dict(status.metrics).get("notifications_sent", 0.0)
    return sent


async def test_a_response_below_the_quality_bar_is_kept_and_reported(stub: Stub) -> None:
    status = await _run(stub, _untitled_notice(quality_requirements=90))
    assert status.status == E.EXECUTION_STATE_COMPLETED
    assert status.degraded
    (detail,) = status.error_summary.error_details
    assert (detail.error_type, detail.impact, detail.recovery_action) == (
        "LOW_QUALITY",
        E.IMPACT_MEDIUM,
        "continue_degraded",
    )
    assert detail.error_message == "quality 75.0 is below the step's quality_requirements 90"
    assert any("scored 75.0, below its bar of 90" in line for line in status.results.recommendations)


async def test_with_fail_below_quality_the_step_fails_unretried(stub: Stub) -> None:
    status = await _run(stub, _untitled_notice(quality_requirements=90, fail_below_quality=True))
    assert status.status == E.EXECUTION_STATE_FAILED
    assert status.error_summary.critical_errors == 1
    assert [d.error_type for d in status.error_summary.error_details] == ["LOW_QUALITY"]
    (timing,) = status.performance_metrics.step_timings
    assert timing.attempts == 1
    assert "RerunExecution" in status.results.recommendations[-1]


async def test_a_failed_step_with_notification_required_tells_the_user_through_ui_ux(
    stub: Stub, fleet_channel: grpc.aio.Channel
) -> None:
    before = await _notifications_sent(fleet_channel)
    failing = step("A", config={"user_id": ""})  # the agent refuses it: INVALID_ARGUMENT, not retried
    failing.error_handling.notification_required = True
    status = await _run(stub, plan_pb2.OrchestrationPlan(workflow_type="promises", workflow_steps=[failing]))
    assert status.status == E.EXECUTION_STATE_FAILED
    (detail,) = status.error_summary.error_details
    assert detail.user_notified and detail.error_type == "INVALID_ARGUMENT"
    for _ in range(100):  # the notice is sent once the failure is durable, by nothing waited for
        if await _notifications_sent(fleet_channel) == before + 1:
            break
        await asyncio.sleep(0.05)
    assert await _notifications_sent(fleet_channel) == before + 1


async def test_without_notification_required_nobody_is_told(stub: Stub, fleet_channel: grpc.aio.Channel) -> None:
    before = await _notifications_sent(fleet_channel)
    status = await _run(
        stub, plan_pb2.OrchestrationPlan(workflow_type="promises", workflow_steps=[step("A", config={"user_id": ""})])
    )
    assert status.status == E.EXECUTION_STATE_FAILED
    assert not status.error_summary.error_details[0].user_notified
    await asyncio.sleep(0.3)
    assert await _notifications_sent(fleet_channel) == before
