"""kill -9 of `baton serve --store postgresql://…` mid-run: after a restart the execution completes, applying once."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import grpc
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)

from tests.conftest import free_port, serve_orchestrator, spawn, wait_for_line
from tests.integration.pg_support import fresh_database
from tests.integration.support import watch_all


async def test_an_execution_on_postgres_survives_kill_9_mid_run_with_the_same_idempotency_keys(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    agents_port, orchestrator_port = free_port(), free_port()
    agents = spawn(
        "-m", "agents", "--listen", f"127.0.0.1:{agents_port}", "--ledger", str(tmp_path / "ledger.db"), "--faults"
    )
    processes.append(agents)
    wait_for_line(agents, "serving")
    agents_address = f"127.0.0.1:{agents_port}"
    async with grpc.aio.insecure_channel(agents_address) as channel:
        slow_submit = faults_pb2.FaultConfig(agent="automation", operations=["SubmitApplication"])
        slow_submit.latency.FromMilliseconds(1500)
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(slow_submit)

    async with fresh_database() as url:
        first, target = serve_orchestrator(processes, url, agents_address, port=orchestrator_port)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
            request.user_context.user_id = "pg-crash-user"
            execution = await stub.ExecuteWorkflow(request)
            watch = stub.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id))
            keys_before: dict[str, str] = {}
            submit_keys: set[str] = set()
            async for update in watch:
                event = update.event
                if event.WhichOneof("kind") == "step_started":
                    keys_before[event.step_started.step_id] = event.step_started.idempotency_key
                if event.WhichOneof("kind") == "step_item_started":
                    submit_keys.add(event.step_item_started.idempotency_key)
                    if len(submit_keys) == 3:  # one submission per chosen job (a map step)
                        break
            assert submit_keys, "the submission step never started"
        # The submissions are in flight at the agent: the orchestrator dies without recording their outcome.
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)

        serve_orchestrator(processes, url, agents_address, port=orchestrator_port)
        async with grpc.aio.insecure_channel(target) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            updates = await watch_all(stub, execution.execution_id, deadline=60)
        for proc in processes[1:]:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=20)

    final = updates[-1].status
    assert final.status == execution_pb2.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    starts = [u.event.step_started for u in updates if u.event.WhichOneof("kind") == "step_started"]
    keys_after: dict[str, set[str]] = {}
    for start in starts:
        keys_after.setdefault(start.step_id, set()).add(start.idempotency_key)
    # Every step started before the kill kept its key; the submission was reissued, not restarted.
    assert all(keys_after[step] == {key} for step, key in keys_before.items()), (keys_before, keys_after)
    items = [u.event.step_item_started for u in updates if u.event.WhichOneof("kind") == "step_item_started"]
    assert sorted(s.idempotency_key for s in items) == sorted(submit_keys)
    async with grpc.aio.insecure_channel(agents_address) as channel:
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id="pg-crash-user")
        )
    job_ids = [a.job_id for a in listed.applications]
    assert job_ids, "no application was made"
    assert len(job_ids) == len(set(job_ids)), f"duplicate applications: {job_ids}"
    assert {a.idempotency_key for a in listed.applications} == submit_keys
