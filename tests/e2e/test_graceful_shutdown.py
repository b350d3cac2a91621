"""SIGTERM drains the orchestrator: health turns NOT_SERVING, then the process exits cleanly."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.conftest import output_of, serve_orchestrator


async def test_sigterm_turns_health_not_serving_and_exits_zero(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    proc, address = serve_orchestrator(processes, tmp_path / "baton.db", "embedded", "--grace", "2")
    async with grpc.aio.insecure_channel(address) as channel:
        watch = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service="baton.v1.Orchestrator"), timeout=20
        )
        seen = [(await watch.read()).status]
        proc.send_signal(signal.SIGTERM)
        try:
            while (reply := await watch.read()) is not grpc.aio.EOF:
                seen.append(reply.status)
        except grpc.aio.AioRpcError:
            pass  # the server went away after announcing NOT_SERVING
    assert seen[0] == health_pb2.HealthCheckResponse.SERVING
    assert health_pb2.HealthCheckResponse.NOT_SERVING in seen[1:]
    assert await asyncio.to_thread(proc.wait, 15) == 0, output_of(proc)
