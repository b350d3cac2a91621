"""kill -9 of `baton serve` while an execution is paused or waits for approval: after a restart on
the same store it still is, and it finishes once resumed or approved."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

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

from tests.conftest import free_port, serve_orchestrator, wait_for_line
from tests.integration.support import execute_plan, w_plan, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(60)

WATCH_DEADLINE = 30.0


class Orchestrator:
    """`baton serve` with its embedded fleet, as a process that a test kills and starts again."""

    def __init__(self, processes: list[subprocess.Popen[str]], store: Path) -> None:
        self.processes = processes
        self.store = store
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.target = ""
        self.fleet = ""

    def start(self) -> None:
        """Starts the server on the same port and store as before (the fleet's ledger lives beside the store)."""
        self.proc, self.target = serve_orchestrator(self.processes, self.store, "embedded", "--faults", port=self.port)
        # "reference agents serving on HOST:PORT (ledger …)": the embedded fleet picks a new port each start.
        line = wait_for_line(self.proc, "reference agents serving on")
        self.fleet = line.split("reference agents serving on ", 1)[1].split()[0]

    def kill_9(self) -> None:
        """Kills the server as a crash would: nothing gets to run on the way out."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)


async def _until(
    stub: Stub, execution_id: str, seen: Callable[[orchestrator_pb2.ExecutionUpdate], bool]
) -> orchestrator_pb2.ExecutionUpdate:
    """Watches until an update satisfies `seen`, and returns it."""
    request = O.WatchExecutionRequest(execution_id=execution_id)
    async for update in stub.WatchExecution(request, timeout=WATCH_DEADLINE):
        if seen(update):
            return update
    raise AssertionError("the execution ended before the awaited update")


async def _status(target: str, execution_id: str) -> execution_pb2.ExecutionStatus:
    async with grpc.aio.insecure_channel(target) as channel:
        return await Stub(channel).GetExecution(O.GetExecutionRequest(execution_id=execution_id), timeout=10)


def _kinds(updates: list[orchestrator_pb2.ExecutionUpdate]) -> list[str]:
    return [u.event.WhichOneof("kind") or "" for u in updates]


async def test_a_paused_execution_survives_kill_9_and_restart_and_completes_once_resumed(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server = Orchestrator(processes, tmp_path / "baton.db")
    server.start()
    async with grpc.aio.insecure_channel(server.fleet) as channel:
        # Slow enough that the pause lands while the first step is in flight.
        slow = faults_pb2.FaultConfig(agent="analytics")
        slow.latency.FromMilliseconds(300)
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(slow, timeout=10)

    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u-paused"), timeout=10)
        execution_id = execution.execution_id
        await _until(stub, execution_id, lambda u: u.event.HasField("step_started"))
        paused = await stub.PauseExecution(O.PauseExecutionRequest(execution_id=execution_id, reason="lunch"))
        assert paused.status == E.EXECUTION_STATE_PAUSED
        # The call in flight finishes and is recorded; then nothing runs.
        await _until(
            stub,
            execution_id,
            lambda u: u.status.status == E.EXECUTION_STATE_PAUSED and not u.status.progress.running_steps,
        )
    before = await _status(server.target, execution_id)

    server.kill_9()
    server.start()

    after = await _status(server.target, execution_id)
    assert after.status == E.EXECUTION_STATE_PAUSED
    assert after.last_sequence == before.last_sequence, "the restart recorded something for a paused execution"
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        resumed = await stub.ResumeExecution(O.ResumeExecutionRequest(execution_id=execution_id), timeout=10)
        assert resumed.status == E.EXECUTION_STATE_RUNNING
        updates = await watch_all(stub, execution_id, deadline=WATCH_DEADLINE)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert {t.step_id: t.status for t in final.performance_metrics.step_timings} == dict.fromkeys(
        "ABCDE", E.STEP_STATE_COMPLETED
    )
    kinds = _kinds(updates)
    between = kinds[kinds.index("execution_paused") : kinds.index("execution_resumed")]
    assert "step_started" not in between, f"a step started while paused: {kinds}"
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))


async def test_an_execution_waiting_for_approval_survives_kill_9_and_applies_to_the_one_job_approved(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    user = "u-approves-after-a-crash"
    server = Orchestrator(processes, tmp_path / "baton.db")
    server.start()
    request = O.ExecuteWorkflowRequest(workflow_type="application_automation")
    request.user_context.user_id = user
    request.user_context.journey_context.user_preferences.automation_level = journey_pb2.AUTOMATION_LEVEL_MANUAL
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        execution = await stub.ExecuteWorkflow(request, timeout=10)
        execution_id = execution.execution_id
        waiting = await _until(stub, execution_id, lambda u: u.event.HasField("step_waiting"))
    shown = waiting.status.waiting
    assert [(w.step_id, w.kind) for w in shown] == [("approve_applications", E.WAIT_KIND_APPROVAL)]
    job_ids = json_format.MessageToDict(shown[0].data)["job_ids"]
    assert len(job_ids) >= 2, f"the approval should offer several jobs to narrow: {job_ids}"
    before = await _status(server.target, execution_id)

    server.kill_9()
    server.start()

    # Nothing was lost: the same wait, the same jobs, no event recorded by the restart.
    after = await _status(server.target, execution_id)
    assert after.status == E.EXECUTION_STATE_RUNNING
    assert after.last_sequence == before.last_sequence
    assert list(after.waiting) == list(before.waiting)
    assert json_format.MessageToDict(after.waiting[0].data)["job_ids"] == job_ids

    chosen = job_ids[1]
    approve = O.SignalExecutionRequest(execution_id=execution_id, signal=E.SIGNAL_APPROVE, reason="only this one")
    approve.payload.update({"job_ids": [chosen]})
    async with grpc.aio.insecure_channel(server.target) as channel:
        stub = Stub(channel)
        signalled = await stub.SignalExecution(approve, timeout=10)
        assert not signalled.waiting
        updates = await watch_all(stub, execution_id, deadline=WATCH_DEADLINE)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    signals = [u.event.signal_received for u in updates if u.event.HasField("signal_received")]
    assert [(s.step_id, s.signal) for s in signals] == [("approve_applications", E.SIGNAL_APPROVE)]

    async with grpc.aio.insecure_channel(server.fleet) as channel:
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id=user), timeout=10
        )
    assert [(a.job_id, a.state) for a in listed.applications] == [(chosen, automation_pb2.APPLICATION_STATE_SUBMITTED)]
