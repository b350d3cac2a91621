"""The chaos test: two replicas on PostgreSQL behind Envoy, 200 journeys watched through Envoy, kill -9 of one.

Real processes and binaries throughout: one reference agent fleet with latency, two `baton serve
--replica` processes on one fresh PostgreSQL database, the bundled Envoy as the front proxy over
both. Every execution is submitted through Envoy (with a request_id, so a submission retried
after the kill is the same execution) and watched through Envoy by a watcher that resumes with
after_sequence whenever its stream breaks. Mid-run one replica is killed with SIGKILL. Then:
every execution completes, every watcher saw every sequence exactly once and in order, no user
has a duplicate application, and the takeover time is measured and printed.
"""

from __future__ import annotations

import asyncio
import signal
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path

import grpc
from baton.v1 import automation_pb2, automation_pb2_grpc, execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from server.envoy import Endpoint, FrontProxy, descriptor_set_bytes, front_proxy_config, start_envoy
from tests.conftest import free_port, serve_orchestrator, spawn, wait_for_line
from tests.integration.pg_support import fresh_database

EXECUTIONS = 200
SUBMITTING = 40
"""Submissions in flight at once."""
LEASE = 3
TERMINAL = {
    execution_pb2.EXECUTION_STATE_COMPLETED,
    execution_pb2.EXECUTION_STATE_FAILED,
    execution_pb2.EXECUTION_STATE_CANCELLED,
}


@dataclass
class Journey:
    """One user's execution as its watcher saw it."""

    user_id: str
    execution_id: str = ""
    sequences: list[int] = field(default_factory=list)
    times: list[float] = field(default_factory=list)
    final: int = 0
    reconnects: int = 0


async def submit(stub: orchestrator_pb2_grpc.OrchestratorStub, journey: Journey) -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation", request_id="chaos")
    request.user_context.user_id = journey.user_id
    for attempt in range(20):
        try:
            journey.execution_id = (await stub.ExecuteWorkflow(request, timeout=10)).execution_id
            return
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                raise
            await asyncio.sleep(0.2 * (attempt + 1))  # the same request_id: the same execution
    raise AssertionError(f"{journey.user_id}: could not submit")


async def watch(stub: orchestrator_pb2_grpc.OrchestratorStub, journey: Journey, on_way: Callable[[], None]) -> None:
    """Follows the execution to its end, resuming after the last sequence seen when a stream breaks.

    Calls `on_way` once, when the journey's third event arrives (a step is under way).
    """
    while True:
        after = journey.sequences[-1] if journey.sequences else 0
        request = orchestrator_pb2.WatchExecutionRequest(execution_id=journey.execution_id, after_sequence=after)
        try:
            async for update in stub.WatchExecution(request, timeout=120):
                if update.heartbeat:
                    continue
                journey.sequences.append(update.sequence)
                if len(journey.sequences) == 3:
                    on_way()
                journey.times.append(update.event.time.ToDatetime(tzinfo=UTC).timestamp())
                journey.final = update.status.status
            if journey.final in TERMINAL:
                return
        except grpc.aio.AioRpcError as error:
            if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL):
                raise  # INTERNAL: Envoy resets a stream whose upstream died mid-response
        journey.reconnects += 1
        await asyncio.sleep(0.2)


async def test_two_replicas_behind_envoy_lose_nothing_when_one_is_killed_mid_run(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    agents_address = f"127.0.0.1:{free_port()}"
    agents = spawn(
        "-m", "server.cli", "agents", "serve", "--listen", agents_address, "--latency", "100",
        "--ledger", str(tmp_path / "ledger.db"),
    )  # fmt: skip
    processes.append(agents)
    wait_for_line(agents, "agents serving")
    async with fresh_database() as url:
        a, a_target = serve_orchestrator(processes, url, agents_address, "--replica", "a", "--lease", str(LEASE))
        _, b_target = serve_orchestrator(processes, url, agents_address, "--replica", "b", "--lease", str(LEASE))
        (tmp_path / "baton.pb").write_bytes(descriptor_set_bytes())
        spec = FrontProxy(
            listen=Endpoint("127.0.0.1", 0),
            orchestrators=(Endpoint.parse(a_target, "a"), Endpoint.parse(b_target, "b")),
            descriptor_path=str(tmp_path / "baton.pb"),
            admin=Endpoint("127.0.0.1", 0),
        )
        envoy = await start_envoy(front_proxy_config(spec), tmp_path, listener="front")
        try:
            journeys = [Journey(f"chaos-user-{n}") for n in range(EXECUTIONS)]
            async with grpc.aio.insecure_channel(str(envoy.listen)) as channel:
                stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
                gate = asyncio.Semaphore(SUBMITTING)
                watchers: list[asyncio.Task[None]] = []
                under_way = 0
                half_under_way = asyncio.Event()

                def on_way() -> None:
                    nonlocal under_way
                    under_way += 1
                    if under_way >= EXECUTIONS // 2:
                        half_under_way.set()

                async def start(journey: Journey) -> None:
                    async with gate:
                        await submit(stub, journey)
                    watchers.append(asyncio.create_task(watch(stub, journey, on_way)))

                starting = [asyncio.create_task(start(j)) for j in journeys]
                # Kill a replica once half the journeys are under way.
                await asyncio.wait_for(half_under_way.wait(), 60)
                killed_at = time.time()
                a.send_signal(signal.SIGKILL)
                await asyncio.wait_for(asyncio.gather(*starting), 120)
                await asyncio.wait_for(asyncio.gather(*watchers), 180)
            assert a.wait(timeout=10) == -signal.SIGKILL
        finally:
            await envoy.stop()

    unfinished = [j for j in journeys if j.times and min(j.times) < killed_at and max(j.times) > killed_at]
    for journey in journeys:
        assert journey.final == execution_pb2.EXECUTION_STATE_COMPLETED, (journey.execution_id, journey.final)
        assert journey.sequences == list(range(1, len(journey.sequences) + 1)), (journey.user_id, journey.sequences)
    async with grpc.aio.insecure_channel(agents_address) as channel:
        ledger = automation_pb2_grpc.AutomationStub(channel)
        for journey in journeys:
            listed = await ledger.ListApplications(automation_pb2.ListApplicationsRequest(user_id=journey.user_id))
            job_ids = [application.job_id for application in listed.applications]
            assert job_ids and len(job_ids) == len(set(job_ids)), (journey.user_id, job_ids)
    # Takeover: for each execution under way at the kill, how long its next event took.
    waits = [min(t for t in j.times if t > killed_at) - killed_at for j in unfinished]
    assert waits, "no execution was under way at the kill: the test proved nothing"
    print(
        f"chaos: {EXECUTIONS} executions, {len(unfinished)} under way at the kill; next event after the kill:"
        f" median {statistics.median(waits):.2f} s, max {max(waits):.2f} s (lease {LEASE} s);"
        f" {sum(j.reconnects for j in journeys)} watch reconnects"
    )
