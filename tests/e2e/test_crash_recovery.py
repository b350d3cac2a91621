"""kill -9 of the orchestrator mid-run: after a restart the execution completes, applying once."""

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
from google.protobuf import json_format

from tests.conftest import free_port, serve_orchestrator, spawn, wait_for_line
from tests.integration.support import watch_all


async def test_an_execution_survives_kill_9_mid_run_and_completes_with_no_duplicate_application(
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

    first, target = serve_orchestrator(processes, tmp_path / "baton.db", agents_address, port=orchestrator_port)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
        request.user_context.user_id = "crash-user"
        execution = await stub.ExecuteWorkflow(request)
        watch = stub.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id))
        submit_keys: set[str] = set()
        async for update in watch:
            event = update.event
            if (
                event.WhichOneof("kind") == "step_item_started"
                and event.step_item_started.operation == "SubmitApplication"
            ):
                submit_keys.add(event.step_item_started.idempotency_key)
                if len(submit_keys) == 3:  # one submission per chosen job (a map step)
                    break
        assert submit_keys, "the submission step never started"
    # The submissions are in flight at the agent: the orchestrator dies without recording their outcome.
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)

    serve_orchestrator(processes, tmp_path / "baton.db", agents_address, port=orchestrator_port)
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        updates = await watch_all(stub, execution.execution_id, deadline=60)
        final = updates[-1].status
        assert final.status == execution_pb2.EXECUTION_STATE_COMPLETED, final.failure_reason
        starts = [u.event.step_item_started for u in updates if u.event.WhichOneof("kind") == "step_item_started"]
        submit_starts = [s for s in starts if s.operation == "SubmitApplication"]
        assert sorted(s.idempotency_key for s in submit_starts) == sorted(submit_keys)  # reissued, not restarted

    async with grpc.aio.insecure_channel(agents_address) as channel:
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id="crash-user")
        )
    job_ids = [a.job_id for a in listed.applications]
    assert job_ids, "no application was made"
    assert len(job_ids) == len(set(job_ids)), f"duplicate applications: {job_ids}"
    assert {a.idempotency_key for a in listed.applications} == submit_keys
    results = json_format.MessageToDict(final.results, preserving_proto_field_name=True)
    outputs = {**results.get("intermediate_results", {}), **results.get("primary_outputs", {})}
    submit_step = next(t.step_id for t in final.performance_metrics.step_timings if t.operation == "SubmitApplication")
    result_jobs = [a["job_id"] for item in outputs[submit_step] for a in item["applications"]]
    assert sorted(result_jobs) == sorted(job_ids)
