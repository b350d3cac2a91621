"""Two `baton serve --replica` processes on one PostgreSQL database: one dies or drains, the other finishes its work.

Real processes throughout: one reference agent fleet with 200 ms of latency per call, two
replicas, 20 application_automation executions (one user each) submitted to replica a and
watched through replica b (the PostgreSQL store announces a's commits to b). The takeover time
is measured from the signal to the first event b records for a's executions, and printed.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import grpc
from baton.v1 import automation_pb2, automation_pb2_grpc, execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from tests.conftest import free_port, serve_orchestrator, spawn, wait_for_line
from tests.integration.pg_support import fresh_database

EXECUTIONS = 20
TERMINAL = {
    execution_pb2.EXECUTION_STATE_COMPLETED,
    execution_pb2.EXECUTION_STATE_FAILED,
    execution_pb2.EXECUTION_STATE_CANCELLED,
}


@dataclass
class Watched:
    """What a watcher on replica b saw of one execution."""

    execution_id: str
    sequences: list[int] = field(default_factory=list)
    event_times: list[float] = field(default_factory=list)
    final: int = 0
    stepping: asyncio.Event = field(default_factory=asyncio.Event)
    """Set once a step has started (seen through b)."""


async def watch(stub: orchestrator_pb2_grpc.OrchestratorStub, watched: Watched) -> None:
    """Follows the execution to its end, reconnecting with after_sequence when the stream breaks."""
    while True:
        after = watched.sequences[-1] if watched.sequences else 0
        request = orchestrator_pb2.WatchExecutionRequest(execution_id=watched.execution_id, after_sequence=after)
        try:
            async for update in stub.WatchExecution(request, timeout=90):
                watched.sequences.append(update.sequence)
                watched.event_times.append(update.event.time.ToDatetime(tzinfo=UTC).timestamp())
                if update.event.WhichOneof("kind") == "step_started":
                    watched.stepping.set()
                watched.final = update.status.status
            return
        except grpc.aio.AioRpcError as error:
            if error.code() != grpc.StatusCode.UNAVAILABLE:
                raise


async def take_over(tmp_path: Path, processes: list[subprocess.Popen[str]], sig: signal.Signals, lease: int) -> float:
    """Runs the scenario; returns the takeover time in seconds after sending `sig` to replica a."""
    agents_address = f"127.0.0.1:{free_port()}"
    agents = spawn(
        "-m", "server.cli", "agents", "serve", "--listen", agents_address, "--latency", "200",
        "--ledger", str(tmp_path / "ledger.db"),
    )  # fmt: skip
    processes.append(agents)
    wait_for_line(agents, "agents serving")
    async with fresh_database() as url:
        replica = ("--replica", "a", "--lease", str(lease))
        a, a_target = serve_orchestrator(processes, url, agents_address, *replica)
        _, b_target = serve_orchestrator(processes, url, agents_address, "--replica", "b", "--lease", str(lease))
        async with grpc.aio.insecure_channel(a_target) as a_channel, grpc.aio.insecure_channel(b_target) as b_channel:
            on_a = orchestrator_pb2_grpc.OrchestratorStub(a_channel)
            on_b = orchestrator_pb2_grpc.OrchestratorStub(b_channel)

            async def submit(n: int) -> str:
                request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
                request.user_context.user_id = f"replica-user-{n}"
                return (await on_a.ExecuteWorkflow(request)).execution_id

            ids = await asyncio.gather(*(submit(n) for n in range(EXECUTIONS)))
            watched = [Watched(execution_id) for execution_id in ids]
            watchers = [asyncio.create_task(watch(on_b, w)) for w in watched]
            await asyncio.wait_for(asyncio.gather(*(w.stepping.wait() for w in watched)), 30)
            signalled = time.time()
            a.send_signal(sig)
            unfinished = sum(1 for w in watched if w.final not in TERMINAL)
            await asyncio.wait_for(asyncio.gather(*watchers), 60)
        a.wait(timeout=20)

    assert unfinished, "every execution ended before replica a was stopped: the test proved nothing"
    for w in watched:
        assert w.final == execution_pb2.EXECUTION_STATE_COMPLETED, (w.execution_id, w.final)
        assert w.sequences == list(range(1, len(w.sequences) + 1)), (w.execution_id, w.sequences)
    async with grpc.aio.insecure_channel(agents_address) as channel:
        ledger = automation_pb2_grpc.AutomationStub(channel)
        for n in range(EXECUTIONS):
            listed = await ledger.ListApplications(automation_pb2.ListApplicationsRequest(user_id=f"replica-user-{n}"))
            job_ids = [application.job_id for application in listed.applications]
            assert job_ids, f"replica-user-{n} made no application"
            assert len(job_ids) == len(set(job_ids)), f"duplicate applications of replica-user-{n}: {job_ids}"
    after = [moment for w in watched for moment in w.event_times if moment > signalled]
    assert after, "replica b recorded nothing after replica a stopped"
    print(f"{unfinished} of {EXECUTIONS} executions were unfinished when replica a got {sig.name}")
    return min(after) - signalled


async def test_after_kill_9_of_a_replica_the_other_takes_its_executions_over_once_the_leases_lapse(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    takeover = await take_over(tmp_path, processes, signal.SIGKILL, lease=3)

    print(f"takeover after kill -9 with --lease 3: {takeover:.2f} s")


async def test_a_draining_replica_releases_its_executions_and_the_other_takes_them_over_at_once(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    lease = 30
    takeover = await take_over(tmp_path, processes, signal.SIGTERM, lease=lease)

    print(f"takeover after SIGTERM with --lease {lease}: {takeover:.2f} s")
    # Released, not lapsed: b goes on within its claim interval, long before a lease would lapse.
    assert takeover < lease / 3, takeover


async def test_a_pause_sent_to_the_replica_that_does_not_run_the_execution_is_handed_over_and_applied(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    agents_address = f"127.0.0.1:{free_port()}"
    agents = spawn("-m", "server.cli", "agents", "serve", "--listen", agents_address, "--latency", "300")
    processes.append(agents)
    wait_for_line(agents, "agents serving")
    async with fresh_database() as url:
        _, a_target = serve_orchestrator(processes, url, agents_address, "--replica", "a", "--lease", "15")
        _, b_target = serve_orchestrator(processes, url, agents_address, "--replica", "b", "--lease", "15")
        async with grpc.aio.insecure_channel(a_target) as a_channel, grpc.aio.insecure_channel(b_target) as b_channel:
            on_a = orchestrator_pb2_grpc.OrchestratorStub(a_channel)
            on_b = orchestrator_pb2_grpc.OrchestratorStub(b_channel)
            request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
            request.user_context.user_id = "handover-user"
            execution_id = (await on_a.ExecuteWorkflow(request, timeout=10)).execution_id
            started = time.monotonic()
            paused = await on_b.PauseExecution(
                orchestrator_pb2.PauseExecutionRequest(execution_id=execution_id, reason="from b"), timeout=30
            )
            handover = time.monotonic() - started
            assert paused.status == execution_pb2.EXECUTION_STATE_PAUSED
            resumed = await on_a.ResumeExecution(
                orchestrator_pb2.ResumeExecutionRequest(execution_id=execution_id, reason="from a"), timeout=30
            )
            assert resumed.status == execution_pb2.EXECUTION_STATE_RUNNING
            final = Watched(execution_id)
            await asyncio.wait_for(watch(on_b, final), 60)
    assert final.final == execution_pb2.EXECUTION_STATE_COMPLETED
    assert final.sequences == list(range(1, len(final.sequences) + 1))
    print(f"a pause sent to the replica that did not hold the execution took {handover:.2f} s")
    assert handover < 15 / 2, handover  # handed over at the holder's next look, not after its lease
