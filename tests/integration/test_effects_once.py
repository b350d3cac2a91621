"""Effects once, over real gRPC: a step re-run or retried applies its effect once (issue 8, item 2).

The orchestrator sends one idempotency key, ``<execution_id>/<step_id>``, for every attempt of a
step, and the Automation agent answers a repeated key with its first answer; so however often the
submit step is run, each job is applied to once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
)

from server.app import RunningServer
from tests.integration.support import TERMINAL, execute_plan, step, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub
JOBS = ["job-0001", "job-0002"]
# Polls of the ledger before giving up on seeing the first attempt's effect (~10 s).
LEDGER_POLLS = 200


@pytest.fixture
async def fleet_channel(orchestrator: RunningServer) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the orchestrator's embedded reference fleet."""
    assert orchestrator.fleet is not None
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:
        yield channel


def _submit_plan(user_id: str) -> plan_pb2.OrchestrationPlan:
    """One step: apply to JOBS, withdrawn as compensation."""
    submit = step(
        "submit",
        agent="automation",
        operation="SubmitApplication",
        config={"user_id": "${user.user_id}", "job_ids": JOBS},
    )
    submit.compensation.agent = "automation"
    submit.compensation.operation = "WithdrawApplication"
    submit.compensation.configuration.update(
        {
            "user_id": "${user.user_id}",
            "application_ids": "${steps.submit.applications[*].application_id}",
            "reason": "test unwinds",
        }
    )
    return plan_pb2.OrchestrationPlan(workflow_type="effects_once", user_id=user_id, workflow_steps=[submit])


async def _applications(channel: grpc.aio.Channel, user_id: str) -> list[automation_pb2.Application]:
    listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
        automation_pb2.ListApplicationsRequest(user_id=user_id)
    )
    return list(listed.applications)


def _calls_of_submit(updates: list[orchestrator_pb2.ExecutionUpdate]) -> int:
    return sum(
        1 for u in updates if u.event.WhichOneof("kind") == "step_started" and u.event.step_started.step_id == "submit"
    )


async def test_a_gate_retry_of_the_submit_step_applies_to_each_job_once(
    stub: Stub, fleet_channel: grpc.aio.Channel
) -> None:
    plan = _submit_plan("gate-user")
    # The submission reports no "relevance", so the gate fails and re-runs the step.
    plan.quality_gates.add(
        gate_id="relevant",
        checkpoint="submit",
        criteria=[
            plan_pb2.QualityCriterion(metric="relevance", operator=plan_pb2.COMPARISON_OPERATOR_GTE, value=50, weight=1)
        ],
        action_on_failure=plan_pb2.GATE_ACTION_RETRY,
    )
    execution = await stub.ExecuteWorkflow(execute_plan(plan, user_id="gate-user"))
    updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status in TERMINAL
    assert _calls_of_submit(updates) >= 2, "the gate did not re-run the step"
    applications = await _applications(fleet_channel, "gate-user")
    # One application per job, whatever its state (the failed gate's compensation may withdraw it).
    assert sorted(a.job_id for a in applications) == JOBS
    assert {a.idempotency_key for a in applications} == {f"{execution.execution_id}/submit"}


async def test_an_attempt_that_applies_then_times_out_is_retried_into_the_original_result(
    stub: Stub, fleet_channel: grpc.aio.Channel
) -> None:
    faults = faults_pb2_grpc.FaultInjectionStub(fleet_channel)
    slow = faults_pb2.FaultConfig(agent="automation", operations=["SubmitApplication"])
    # Far past the step's 1 s timeout: the first attempt applies, then its caller gives up.
    slow.latency_after_effect.FromSeconds(60)
    await faults.SetFaults(slow)

    plan = _submit_plan("timeout-user")
    plan.workflow_steps[0].timing.timeout.FromSeconds(1)
    plan.workflow_steps[0].error_handling.retry_count = 2
    # Room to clear the fault between the first attempt's timeout and the retry.
    policy = plan.execution_strategy.retry_policy
    policy.initial_backoff.FromSeconds(2)
    policy.max_backoff.FromSeconds(2)
    execution = await stub.ExecuteWorkflow(execute_plan(plan, user_id="timeout-user"))
    watch = asyncio.ensure_future(watch_all(stub, execution.execution_id))

    applied: list[automation_pb2.Application] = []
    for _ in range(LEDGER_POLLS):
        applied = await _applications(fleet_channel, "timeout-user")
        if applied:
            break
        await asyncio.sleep(0.05)
    assert applied, "the first attempt never applied"
    await faults.SetFaults(faults_pb2.FaultConfig(agent="automation"))

    updates = await watch
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert _calls_of_submit(updates) >= 2, "the step was not retried"
    failed = [u.event.step_attempt_failed for u in updates if u.event.WhichOneof("kind") == "step_attempt_failed"]
    assert [(f.attempt, f.error_type) for f in failed][:1] == [(1, "DEADLINE_EXCEEDED")]
    applications = await _applications(fleet_channel, "timeout-user")
    assert [a.application_id for a in applications] == [a.application_id for a in applied]
    assert sorted(a.job_id for a in applications) == JOBS
    assert all(a.state == automation_pb2.APPLICATION_STATE_SUBMITTED for a in applications)
    assert {a.idempotency_key for a in applications} == {f"{execution.execution_id}/submit"}
