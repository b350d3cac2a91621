"""kill -9 of `baton serve` in the middle of a rerun: after a restart on the same store the rerun
goes on and completes, its effects applied once (the Automation agent's ledger lives on disk)."""

from __future__ import annotations

import subprocess
from pathlib import Path

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

from tests.e2e.test_waiting_survives_kill import Orchestrator
from tests.integration.support import execute_plan, step, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(90)

USER = "u-rerun-kill"


def _plan() -> plan_pb2.OrchestrationPlan:
    """Apply to one job (withdrawn if the run fails), then notify."""
    submit = step(
        "submit",
        agent="automation",
        operation="SubmitApplication",
        config={"user_id": "${user.user_id}", "job_ids": ["job-0001"]},
    )
    submit.compensation.agent, submit.compensation.operation = "automation", "WithdrawApplication"
    submit.compensation.configuration.update(
        {"user_id": "${user.user_id}", "application_ids": "${steps.submit.applications[*].application_id}"}
    )
    notify = step("notify", "submit", agent="ui_ux", operation="Notify", config={"user_id": "${user.user_id}"})
    return plan_pb2.OrchestrationPlan(workflow_type="rerun_kill", workflow_steps=[submit, notify])


async def _notify_faults(fleet: str, config: faults_pb2.FaultConfig) -> None:
    config.agent, config.operations[:] = "ui_ux", ["Notify"]
    async with grpc.aio.insecure_channel(fleet) as channel:
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config, timeout=10)


async def test_a_rerun_killed_midway_completes_after_a_restart_with_its_application_made_once(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server = Orchestrator(processes, tmp_path / "baton.db")
    server.start()
    await _notify_faults(server.fleet, faults_pb2.FaultConfig(error_rate=1.0, error_code="INTERNAL"))
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        execution = await stub.ExecuteWorkflow(execute_plan(_plan(), user_id=USER), timeout=10)
        execution_id = execution.execution_id
        assert (await watch_all(stub, execution_id))[-1].status.status == E.EXECUTION_STATE_FAILED
        slow = faults_pb2.FaultConfig()
        slow.latency.FromSeconds(30)  # the rerun's notification hangs until the kill
        await _notify_faults(server.fleet, slow)
        await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id, reason="retry"), timeout=10)
        async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=execution_id), timeout=30):
            started = update.event.step_started
            if started.step_id == "notify" and "/run-2/" in started.idempotency_key:
                break  # run 2 applied again and is notifying

    server.kill_9()
    server.start()  # a new embedded fleet: no faults

    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        updates = await watch_all(stub, execution_id, deadline=30.0)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED, updates[-1].status.failure_reason
    assert updates[-1].status.run == 2
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    kinds = [u.event.WhichOneof("kind") for u in updates]
    assert kinds.count("execution_rerun") == 1
    submits = [u.event.step_started.idempotency_key for u in updates if u.event.step_started.step_id == "submit"]
    assert submits == [f"{execution_id}/submit", f"{execution_id}/run-2/submit"]
    async with grpc.aio.insecure_channel(server.fleet) as channel:
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id=USER), timeout=10
        )
    states = sorted((a.idempotency_key, automation_pb2.ApplicationState.Name(a.state)) for a in listed.applications)
    assert states == [
        (f"{execution_id}/run-2/submit", "APPLICATION_STATE_SUBMITTED"),
        (f"{execution_id}/submit", "APPLICATION_STATE_WITHDRAWN"),
    ]
