"""PauseExecution, ResumeExecution and SignalExecution over real gRPC: validation, state errors, approvals."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from google.protobuf import json_format

from server.app import RunningServer
from tests.integration.support import execute_plan, step, w_plan, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(60)


async def _error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    """The error a call ends with (it must end with one)."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def _completed(stub: Stub) -> str:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
    return str(execution.execution_id)


async def _slow_agents(orchestrator: RunningServer, latency_ms: int) -> None:
    assert orchestrator.fleet is not None
    config = faults_pb2.FaultConfig(agent="analytics")
    config.latency.FromMilliseconds(latency_ms)
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:  # type: ignore[attr-defined]
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)


async def _until(
    stub: Stub, execution_id: str, seen: Callable[[orchestrator_pb2.ExecutionUpdate], bool]
) -> orchestrator_pb2.ExecutionUpdate:
    """Watches until an update satisfies `seen`, and returns it."""
    async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=execution_id), timeout=30):
        if seen(update):
            return update
    raise AssertionError("the execution ended before the awaited update")


# ---- validation: refused before the engine sees the request -----------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda stub: stub.CancelExecution(O.CancelExecutionRequest()),
        lambda stub: stub.PauseExecution(O.PauseExecutionRequest()),
        lambda stub: stub.ResumeExecution(O.ResumeExecutionRequest()),
        lambda stub: stub.SignalExecution(O.SignalExecutionRequest(signal=E.SIGNAL_APPROVE)),
    ],
    ids=["cancel", "pause", "resume", "signal"],
)
async def test_a_control_without_an_execution_id_is_invalid_and_names_the_field(
    stub: Stub, call: Callable[[Stub], Awaitable[object]]
) -> None:
    error = await _error(call(stub))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("execution_id: ")


@pytest.mark.parametrize(
    "call",
    [
        lambda stub, reason: stub.CancelExecution(O.CancelExecutionRequest(execution_id="x", reason=reason)),
        lambda stub, reason: stub.PauseExecution(O.PauseExecutionRequest(execution_id="x", reason=reason)),
        lambda stub, reason: stub.ResumeExecution(O.ResumeExecutionRequest(execution_id="x", reason=reason)),
        lambda stub, reason: stub.SignalExecution(
            O.SignalExecutionRequest(execution_id="x", signal=E.SIGNAL_APPROVE, reason=reason)
        ),
    ],
    ids=["cancel", "pause", "resume", "signal"],
)
async def test_a_reason_past_1024_characters_is_invalid_and_names_the_field(
    stub: Stub, call: Callable[[Stub, str], Awaitable[object]]
) -> None:
    error = await _error(call(stub, "r" * 1025))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("reason: ")
    assert "1025" in error.details()


@pytest.mark.parametrize("signal", [E.SIGNAL_UNSPECIFIED, 9], ids=["unspecified", "unknown-number"])
async def test_a_signal_that_is_not_approve_reject_or_input_is_invalid(stub: Stub, signal: int) -> None:
    request = O.SignalExecutionRequest(execution_id="x", signal=signal)  # type: ignore[arg-type]
    error = await _error(stub.SignalExecution(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("signal: ")
    assert (str(signal) if signal else "SIGNAL_UNSPECIFIED") in error.details()


async def test_a_step_id_longer_than_any_plan_step_is_invalid(stub: Stub) -> None:
    request = O.SignalExecutionRequest(execution_id="x", signal=E.SIGNAL_APPROVE, step_id="s" * 65)
    error = await _error(stub.SignalExecution(request))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("step_id: ")


# ---- the engine's answers (these need the engine's pause, resume and signal) -----------------


@pytest.mark.parametrize(
    "call",
    [
        lambda stub: stub.CancelExecution(O.CancelExecutionRequest(execution_id="no-such")),
        lambda stub: stub.PauseExecution(O.PauseExecutionRequest(execution_id="no-such")),
        lambda stub: stub.ResumeExecution(O.ResumeExecutionRequest(execution_id="no-such")),
        lambda stub: stub.SignalExecution(O.SignalExecutionRequest(execution_id="no-such", signal=E.SIGNAL_APPROVE)),
    ],
    ids=["cancel", "pause", "resume", "signal"],
)
async def test_a_control_of_an_unknown_execution_is_not_found(
    stub: Stub, call: Callable[[Stub], Awaitable[object]]
) -> None:
    error = await _error(call(stub))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert "no-such" in error.details()


async def test_pausing_a_completed_execution_is_a_failed_precondition_naming_the_state(stub: Stub) -> None:
    execution_id = await _completed(stub)
    error = await _error(stub.PauseExecution(O.PauseExecutionRequest(execution_id=execution_id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "completed" in error.details()


async def test_resuming_an_execution_that_is_not_paused_is_a_failed_precondition(stub: Stub) -> None:
    execution_id = await _completed(stub)
    error = await _error(stub.ResumeExecution(O.ResumeExecutionRequest(execution_id=execution_id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "completed" in error.details()


async def test_approving_when_no_step_waits_is_a_failed_precondition(stub: Stub, orchestrator: RunningServer) -> None:
    await _slow_agents(orchestrator, 2000)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    await _until(stub, execution.execution_id, lambda u: u.event.HasField("step_started"))
    request = O.SignalExecutionRequest(execution_id=execution.execution_id, signal=E.SIGNAL_APPROVE)
    error = await _error(stub.SignalExecution(request))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    await stub.CancelExecution(O.CancelExecutionRequest(execution_id=execution.execution_id))


async def test_a_paused_execution_starts_no_step_until_it_is_resumed(stub: Stub, orchestrator: RunningServer) -> None:
    await _slow_agents(orchestrator, 300)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    await _until(stub, execution.execution_id, lambda u: u.event.HasField("step_started"))
    paused = await stub.PauseExecution(O.PauseExecutionRequest(execution_id=execution.execution_id, reason="lunch"))
    assert paused.status == E.EXECUTION_STATE_PAUSED
    # The call in flight (A) finishes and is recorded; nothing after it starts.
    settled = await _until(stub, execution.execution_id, lambda u: u.event.HasField("step_succeeded"))
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution.execution_id))
    assert status.status == E.EXECUTION_STATE_PAUSED
    assert status.last_sequence == settled.sequence
    assert not status.progress.running_steps
    resumed = await stub.ResumeExecution(O.ResumeExecutionRequest(execution_id=execution.execution_id))
    assert resumed.status == E.EXECUTION_STATE_RUNNING
    updates = await watch_all(stub, execution.execution_id)
    kinds = [u.event.WhichOneof("kind") for u in updates]
    assert kinds.index("execution_paused") < kinds.index("execution_resumed")
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED


def _approval_plan() -> plan_pb2.OrchestrationPlan:
    """A → approve (three job ids) → B, which records the approved ids."""
    approve = plan_pb2.WorkflowStep(
        step_id="approve", step_name="approve", kind=plan_pb2.STEP_KIND_APPROVAL, dependencies=["A"]
    )
    approve.approval.prompt = "Apply to these jobs?"
    approve.approval.data.update({"job_ids": ["job-1", "job-2", "job-3"]})
    record = step(
        "B",
        "approve",
        config={
            "user_id": "${user.user_id}",
            "events": [{"name": "approved", "properties": {"job_ids": "${steps.approve.job_ids}"}}],
        },
    )
    return plan_pb2.OrchestrationPlan(workflow_type="approval", workflow_steps=[step("A"), approve, record])


async def test_an_approval_narrowed_by_its_payload_lets_the_execution_finish(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(_approval_plan()))
    waiting = await _until(stub, execution.execution_id, lambda u: u.event.HasField("step_waiting"))
    assert [w.step_id for w in waiting.status.waiting] == ["approve"]
    assert json_format.MessageToDict(waiting.status.waiting[0].data)["job_ids"] == ["job-1", "job-2", "job-3"]
    request = O.SignalExecutionRequest(execution_id=execution.execution_id, signal=E.SIGNAL_APPROVE, reason="ok")
    request.payload.update({"job_ids": ["job-2"]})
    status = await stub.SignalExecution(request)
    assert not status.waiting
    updates = await watch_all(stub, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    outputs = json_format.MessageToDict(final.results.intermediate_results)
    assert outputs["approve"]["job_ids"] == ["job-2"]


async def test_a_rejected_approval_ends_the_execution_cancelled_as_rejected(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(_approval_plan()))
    await _until(stub, execution.execution_id, lambda u: u.event.HasField("step_waiting"))
    request = O.SignalExecutionRequest(execution_id=execution.execution_id, signal=E.SIGNAL_REJECT, reason="no")
    await stub.SignalExecution(request)
    final = (await watch_all(stub, execution.execution_id))[-1].status
    assert final.status == E.EXECUTION_STATE_CANCELLED
    assert final.end_cause == E.END_CAUSE_REJECTED
    assert {t.step_id: t.status for t in final.performance_metrics.step_timings}["B"] == E.STEP_STATE_SKIPPED
