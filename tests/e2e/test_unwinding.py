"""Compensation over real gRPC: a run that fails or is cancelled after submitting withdraws its
applications (one compensation per submitted job: the submit step is a map step), and its
watchers see every compensation event."""

from __future__ import annotations

import asyncio

import grpc
import pytest
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    journey_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from google.protobuf import json_format

from server.app import RunningServer
from tests.integration.support import TERMINAL

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(60)

WATCH_DEADLINE = 30.0
UNWINDING = ["execution_unwinding", "compensation_started", "compensation_succeeded"]
JOBS = 3
"""The application workflow submits to the three best matches, one map item each."""


def _fleet(orchestrator: RunningServer) -> str:
    assert orchestrator.fleet is not None
    return str(orchestrator.fleet.address)  # type: ignore[attr-defined]


async def _set_faults(orchestrator: RunningServer, config: faults_pb2.FaultConfig) -> None:
    async with grpc.aio.insecure_channel(_fleet(orchestrator)) as channel:
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config, timeout=10)


async def _applications(orchestrator: RunningServer, user: str) -> list[automation_pb2.Application]:
    async with grpc.aio.insecure_channel(_fleet(orchestrator)) as channel:
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id=user), timeout=10
        )
    return list(listed.applications)


def _automatic(user: str) -> orchestrator_pb2.ExecuteWorkflowRequest:
    request = O.ExecuteWorkflowRequest(workflow_type="application_automation")
    request.user_context.user_id = user
    preferences = request.user_context.journey_context.user_preferences
    preferences.automation_level = journey_pb2.AUTOMATION_LEVEL_FULLY_AUTOMATIC
    return request


def _kinds(updates: list[orchestrator_pb2.ExecutionUpdate]) -> list[str]:
    return [u.event.WhichOneof("kind") or "" for u in updates]


def _submitted_job_ids(updates: list[orchestrator_pb2.ExecutionUpdate]) -> list[str]:
    """The job ids the submit step's items' recorded answers say were applied to."""
    job_ids = []
    for update in updates:
        if update.event.HasField("step_item_succeeded"):
            answer = automation_pb2.SubmitApplicationResponse()
            assert update.event.step_item_succeeded.output.Unpack(answer)
            job_ids.extend(a.job_id for a in answer.applications)
    assert job_ids, "submit_applications never succeeded"
    return job_ids


def _assert_unwound(updates: list[orchestrator_pb2.ExecutionUpdate], terminal_kind: str) -> None:
    """The stream is gapless, holds the compensation events in order, and ends with the terminal update."""
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    kinds = _kinds(updates)
    unwinding = [k for k in kinds if k in (*UNWINDING, terminal_kind)]
    assert unwinding == [UNWINDING[0], *UNWINDING[1:] * JOBS, terminal_kind], kinds
    assert kinds[-1] == terminal_kind
    assert [u.status.status in TERMINAL for u in updates].index(True) == len(updates) - 1
    compensating = updates[kinds.index("execution_unwinding")].status
    assert compensating.status == E.EXECUTION_STATE_COMPENSATING
    started = updates[kinds.index("compensation_started")].event.compensation_started
    assert (started.step_id, started.agent, started.operation) == (
        "submit_applications",
        "automation",
        "WithdrawApplication",
    )
    assert started.idempotency_key.endswith(f"/submit_applications/{started.item}/compensate")


def _assert_compensated(final: execution_pb2.ExecutionStatus) -> None:
    assert sorted((c.step_id, c.item, c.state, c.operation) for c in final.compensations) == [
        ("submit_applications", item, E.COMPENSATION_STATE_SUCCEEDED, "WithdrawApplication") for item in range(JOBS)
    ]
    timings = {t.step_id: t for t in final.performance_metrics.step_timings}
    assert timings["submit_applications"].status == E.STEP_STATE_COMPLETED
    assert timings["submit_applications"].compensation == E.COMPENSATION_STATE_SUCCEEDED


async def test_a_run_whose_notification_fails_after_submitting_ends_failed_with_its_applications_withdrawn(
    orchestrator: RunningServer, stub: Stub
) -> None:
    user = "u-notify-fails"
    # Not UNAVAILABLE: an unavailable ui_ux merely skips the optional notification (degraded mode).
    await _set_faults(
        orchestrator,
        faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"], error_rate=1.0, error_code="INTERNAL"),
    )
    execution = await stub.ExecuteWorkflow(_automatic(user), timeout=10)
    # Watched live from the start, so the compensation events are seen as they are committed.
    request = O.WatchExecutionRequest(execution_id=execution.execution_id)
    updates = [u async for u in stub.WatchExecution(request, timeout=WATCH_DEADLINE)]

    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_FAILED
    assert final.end_cause == E.END_CAUSE_STEP_FAILED
    assert "notify_user" in final.failure_reason
    _assert_unwound(updates, "execution_failed")
    _assert_compensated(final)
    failed = updates[-1].event.execution_failed
    assert failed.step_id == "notify_user"
    assert len(failed.compensation_summary) == JOBS
    assert all(line.startswith("submit_applications item ") for line in failed.compensation_summary)

    submitted = _submitted_job_ids(updates)
    applications = await _applications(orchestrator, user)
    assert sorted(a.job_id for a in applications) == sorted(submitted)
    assert submitted, "nothing was submitted, so nothing was withdrawn"
    assert {a.state for a in applications} == {automation_pb2.APPLICATION_STATE_WITHDRAWN}


async def test_a_run_cancelled_after_submitting_ends_cancelled_with_its_applications_withdrawn(
    orchestrator: RunningServer, stub: Stub
) -> None:
    user = "u-cancels"
    # The notification is slow, so the cancel lands while the run is still going after its submission.
    slow = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
    slow.latency.FromSeconds(5)
    await _set_faults(orchestrator, slow)
    execution = await stub.ExecuteWorkflow(_automatic(user), timeout=10)
    request = O.WatchExecutionRequest(execution_id=execution.execution_id)
    updates: list[orchestrator_pb2.ExecutionUpdate] = []
    cancelled: execution_pb2.ExecutionStatus | None = None

    async def watch() -> None:
        nonlocal cancelled
        async for update in stub.WatchExecution(request, timeout=WATCH_DEADLINE):
            updates.append(update)
            succeeded = update.event.step_succeeded
            if update.event.HasField("step_succeeded") and succeeded.step_id == "submit_applications":
                cancelled = await stub.CancelExecution(
                    O.CancelExecutionRequest(execution_id=execution.execution_id, reason="changed my mind"),
                    timeout=10,
                )

    await asyncio.wait_for(watch(), WATCH_DEADLINE)
    assert cancelled is not None, "the submission never succeeded"
    assert cancelled.status in (E.EXECUTION_STATE_COMPENSATING, E.EXECUTION_STATE_CANCELLED)

    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_CANCELLED
    assert final.end_cause == E.END_CAUSE_CANCELLED
    _assert_unwound(updates, "execution_cancelled")
    _assert_compensated(final)
    assert updates[-1].event.execution_cancelled.reason == "changed my mind"

    submitted = _submitted_job_ids(updates)
    applications = await _applications(orchestrator, user)
    assert submitted, "nothing was submitted, so nothing was withdrawn"
    assert sorted(a.job_id for a in applications) == sorted(submitted)
    assert {a.state for a in applications} == {automation_pb2.APPLICATION_STATE_WITHDRAWN}
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution.execution_id), timeout=10)
    assert status.status == E.EXECUTION_STATE_CANCELLED
    assert json_format.MessageToDict(status)["compensations"][0]["state"] == "COMPENSATION_STATE_SUCCEEDED"
