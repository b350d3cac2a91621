"""Watches nobody reads pin bounded memory; watches per user are bounded; the client resumes by sequence."""

from __future__ import annotations

import asyncio
import subprocess
import time
from pathlib import Path

import grpc
import pytest
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

from server.app import RunningServer, start_server
from server.config import LimitsConfig, ServerConfig
from tests.conftest import serve_orchestrator
from tests.integration.auth_support import ALICE, BOB, bearer, make_keys, start_secured
from tests.integration.support import execute_plan, step, watch_all

_MIB = 1024 * 1024
_STRING = 200 * 1024
#: A client that grants the server no more than HTTP/2's initial 64 KiB window and reads nothing:
#: what the server cannot send, it holds. Each channel gets its own connection.
STUCK = (("grpc.http2.bdp_probe", 0), ("grpc.use_local_subchannel_pool", 1))


def big_request(user: str) -> orchestrator_pb2.ExecuteWorkflowRequest:
    """One RecordEvents step whose execution_started event takes about 1.6 MB (data and plan literals)."""
    request = orchestrator_pb2.ExecuteWorkflowRequest()
    request.user_context.user_id = user
    request.user_context.data.update({f"blob{i}": "d" * _STRING for i in range(4)})
    plan = plan_pb2.OrchestrationPlan(workflow_type="memory")
    big = plan.workflow_steps.add(step_id="A", step_name="A", agent="analytics", operation="RecordEvents")
    properties = {f"p{i}": "p" * _STRING for i in range(4)}
    big.inputs.configuration.update(
        {"user_id": "${user.user_id}", "events": [{"name": "big", "properties": properties}]}
    )
    request.plan.CopyFrom(plan)
    return request


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def watch_request(execution_id: str, after: int = 0) -> orchestrator_pb2.WatchExecutionRequest:
    return orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id, after_sequence=after)


@pytest.mark.timeout(180)
async def test_streams_nobody_reads_are_ended_resource_exhausted_and_pin_bounded_memory(
    processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    proc, target = serve_orchestrator(
        processes,
        tmp_path / "baton.db",
        "embedded",
        "--watch-stall",
        "2",
        "--watch-pending-bytes-per-user",
        str(4 * _MIB),
        "--log-level",
        "warning",
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(big_request("memory-user"))
        everything = await watch_all(stub, execution.execution_id)
    first_size = everything[0].ByteSize()
    assert first_size > 1_500_000
    await asyncio.sleep(0.5)
    before = rss_mib(proc.pid)

    streams = 24
    channels = [grpc.aio.insecure_channel(target, options=STUCK) for _ in range(streams)]
    try:
        calls = [
            orchestrator_pb2_grpc.OrchestratorStub(ch).WatchExecution(watch_request(execution.execution_id), timeout=60)
            for ch in channels
        ]
        peak = before
        started = time.monotonic()
        while time.monotonic() - started < 5:  # well past the 2 s stall bound
            await asyncio.sleep(0.25)
            peak = max(peak, rss_mib(proc.pid))
        # Unbounded, each stream held about 7 MiB here (its history, fold, update and their
        # encodings): 24 streams, 170 MiB. Bounded: 4 MiB of pending updates, two streams' worth.
        assert peak - before < 60, (before, peak)

        pinned = 0
        for call in calls:
            got = []
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                async for update in call:
                    got.append(update.sequence)
            error = raised.value
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, error.details()
            details = error.details() or ""
            if got:
                # The update that waited is delivered, then the status naming where to resume.
                pinned += 1
                assert got == [1]
                assert details.startswith("watch_stall: the stream was not read for 2s"), details
                assert details.endswith("resume with after_sequence=1"), details
            else:
                assert details.startswith("watch_pending_bytes_per_user: more than 4 MiB"), details
                assert details.endswith("resume with after_sequence=0"), details
        assert 1 <= pinned <= 3

        # Resuming where the message says gives exactly the rest.
        async with grpc.aio.insecure_channel(target) as channel:
            rest = await watch_all(orchestrator_pb2_grpc.OrchestratorStub(channel), execution.execution_id, after=1)
        assert [u.sequence for u in rest] == [u.sequence for u in everything[1:]]
    finally:
        for ch in channels:
            await ch.close()


async def test_a_user_past_the_open_watches_limit_is_refused_naming_it(tmp_path: Path) -> None:
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            agent_faults=True,
            limits=LimitsConfig(watches_per_user=2),
        )
    )
    try:
        assert running.fleet is not None
        running.fleet.set_faults(_latency(2000))  # the execution stays running while it is watched
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            execution = await stub.ExecuteWorkflow(execute_plan(plan_pb2.OrchestrationPlan(workflow_steps=[step("A")])))
            open_ones = [stub.WatchExecution(watch_request(execution.execution_id), timeout=30) for _ in range(2)]
            for call in open_ones:
                await call.read()  # the first update: the stream is open and counted
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.WatchExecution(watch_request(execution.execution_id), timeout=10).read()
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (raised.value.details() or "").startswith("watches_per_user: 2 watches are open for this user")
            open_ones[0].cancel()
            await asyncio.sleep(0.2)
            again = stub.WatchExecution(watch_request(execution.execution_id), timeout=30)
            assert (await again.read()).sequence == 1
            again.cancel()
            open_ones[1].cancel()
    finally:
        await running.stop(grace=0.5)


def _latency(ms: int) -> object:
    from baton.v1 import faults_pb2

    config = faults_pb2.FaultConfig()
    config.latency.FromMilliseconds(ms)
    return config


async def test_quotas_count_nothing_once_every_watch_has_ended(orchestrator: RunningServer) -> None:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(execute_plan(plan_pb2.OrchestrationPlan(workflow_steps=[step("A")])))
        for _ in range(3):
            await watch_all(stub, execution.execution_id)
    await asyncio.sleep(0.1)
    ledger = orchestrator.guard.ledger
    assert ledger.pending_total == 0
    assert not ledger._open and not ledger._pending


async def test_with_authentication_the_quotas_are_each_subjects_own(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    running = await start_secured(
        tmp_path,
        keys,
        agent_faults=True,  # type: ignore[arg-type]
        limits=LimitsConfig(watches_per_user=1, submissions_per_minute=2),  # type: ignore[arg-type]
    )
    try:
        assert running.fleet is not None
        running.fleet.set_faults(_latency(2000))
        alice, bob = bearer(keys.token(ALICE)), bearer(keys.token(BOB))
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            plan = plan_pb2.OrchestrationPlan(workflow_steps=[step("A")])
            mine = await stub.ExecuteWorkflow(execute_plan(plan, user_id=""), metadata=alice)
            theirs = await stub.ExecuteWorkflow(execute_plan(plan, user_id=""), metadata=bob)
            watching = stub.WatchExecution(watch_request(mine.execution_id), metadata=alice, timeout=30)
            await watching.read()
            # Alice is at her one watch; Bob, from the same address, is not held back by it.
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.WatchExecution(watch_request(mine.execution_id), metadata=alice, timeout=10).read()
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            bobs = stub.WatchExecution(watch_request(theirs.execution_id), metadata=bob, timeout=30)
            assert (await bobs.read()).sequence == 1
            # Alice's second submission spends her quota (2 a minute); Bob still has his.
            await stub.ExecuteWorkflow(execute_plan(plan, user_id=""), metadata=alice)
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.ExecuteWorkflow(execute_plan(plan, user_id=""), metadata=alice)
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await stub.ExecuteWorkflow(execute_plan(plan, user_id=""), metadata=bob)
            watching.cancel()
            bobs.cancel()
    finally:
        await running.stop(grace=0.5)
