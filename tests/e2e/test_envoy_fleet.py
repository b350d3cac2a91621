"""The generated Envoy configs with the real Envoy: validation, orchestrator replicas, agent replicas."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
import yaml
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from agents_clients.catalog import AGENTS
from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.envoy import (
    AgentsProxy,
    Endpoint,
    EnvoyProcess,
    FrontProxy,
    agents_proxy_config,
    descriptor_set_bytes,
    envoy_binary,
    front_proxy_config,
    start_envoy,
)
from tests.conftest import ROOT, free_port, spawn, wait_for_line
from tests.e2e.envoy_support import call

LOOPBACK_ADMIN = Endpoint("127.0.0.1", 0)


def _generate(out: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.envoy", *args, "--out", str(out), "--validate"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_every_generated_config_passes_envoy_validate_without_deprecated_fields(tmp_path: Path) -> None:
    agents_file = tmp_path / "agents.yaml"
    agents_file.write_text(
        yaml.safe_dump({"default": ["127.0.0.1:50061", "127.0.0.1:50062"], "security": "agents:50061"})
    )
    runs = {
        "front-proxy.yaml (STATIC)": _generate(
            tmp_path / "static", "front", "--orchestrator", "127.0.0.1:50051", "--orchestrator", "127.0.0.1:50052"
        ),
        "front-proxy.yaml (STRICT_DNS)": _generate(
            tmp_path / "dns", "front", "--orchestrator", "baton.baton.svc:50051"
        ),
        "agents-proxy.yaml": _generate(tmp_path / "agents", "agents", "--agents", str(agents_file)),
    }
    for name, run in runs.items():
        assert run.returncode == 0 and "OK" in run.stdout, (name, run.stdout, run.stderr)
    for config in tmp_path.glob("*/*.yaml"):
        checked = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True, timeout=60
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "Deprecated" not in checked.stdout + checked.stderr, config


def test_a_bad_address_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    run = _generate(tmp_path, "front", "--orchestrator", "nowhere")
    assert run.returncode == 2
    assert "--orchestrator: expected HOST:PORT, got 'nowhere'" in run.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.fixture
async def two_orchestrators(tmp_path: Path) -> AsyncIterator[list[RunningServer]]:
    servers = []
    try:
        for name in ("a", "b"):
            servers.append(
                await start_server(
                    ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/{name}.db", agents="embedded")
                )
            )
        yield servers
    finally:
        for server in servers:
            await server.stop(grace=0.5)


async def _front_proxy(workdir: Path, *orchestrators: str) -> EnvoyProcess:
    (workdir / "baton.pb").write_bytes(descriptor_set_bytes())
    spec = FrontProxy(
        listen=Endpoint("127.0.0.1", 0),
        orchestrators=tuple(Endpoint.parse(o, "orchestrator") for o in orchestrators),
        descriptor_path=str(workdir / "baton.pb"),
        admin=LOOPBACK_ADMIN,
    )
    return await start_envoy(front_proxy_config(spec), workdir, listener="front")


async def test_two_orchestrators_behind_the_front_proxy_both_receive_traffic(
    two_orchestrators: list[RunningServer], tmp_path: Path
) -> None:
    envoy = await _front_proxy(tmp_path, *(s.address for s in two_orchestrators))
    try:
        body = {"workflow_type": "document_analysis", "user_context": {"user_id": "balanced"}}
        for _ in range(6):
            status, reply = await asyncio.to_thread(
                call, "POST", f"http://{envoy.listen}/api/v1/orchestration/execute", body
            )
            assert status == 200, reply
    finally:
        await envoy.stop()
    held = []
    for server in two_orchestrators:
        async with grpc.aio.insecure_channel(server.address) as channel:
            page = await orchestrator_pb2_grpc.OrchestratorStub(channel).ListExecutions(
                orchestrator_pb2.ListExecutionsRequest(user_id="balanced"), timeout=10
            )
        held.append(len(page.executions))
    assert sum(held) == 6
    assert all(count > 0 for count in held), held  # each replica got some of the executions


async def test_a_killed_agent_replica_is_hidden_from_the_engine_by_the_agents_proxy(tmp_path: Path) -> None:
    # Every agent has two replicas behind Envoy; one dies (kill -9) just before a run. Envoy
    # retries the calls it sends there on the other replica (connect-failure), and its health
    # checks and outlier detection soon stop sending any: the engine sees no error at all.
    replicas = []
    for _ in range(2):
        port = free_port()
        proc = spawn("-m", "server.cli", "agents", "serve", "--listen", f"127.0.0.1:{port}", "--latency", "50")
        replicas.append((proc, f"127.0.0.1:{port}"))
    envoy = None
    server = None
    try:
        for proc, _ in replicas:
            wait_for_line(proc, "agents serving on")
        spec = AgentsProxy(
            listen=Endpoint("127.0.0.1", 0),
            agents={agent: tuple(Endpoint.parse(a, "agent") for _, a in replicas) for agent in AGENTS},
            admin=LOOPBACK_ADMIN,
        )
        envoy = await start_envoy(agents_proxy_config(spec), Path(tempfile.mkdtemp(dir=tmp_path)), listener="agents")
        server = await start_server(
            ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents=str(envoy.listen))
        )
        replicas[0][0].kill()
        replicas[0][0].wait(timeout=10)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            execution = await stub.ExecuteWorkflow(
                orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_search", user_context={"user_id": "u"}),
                timeout=10,
            )
            async for update in stub.WatchExecution(
                orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id), timeout=60
            ):
                status = update.status
        assert status.status == execution_pb2.EXECUTION_STATE_COMPLETED, status
        assert status.error_summary.total_errors == 0, status.error_summary
        assert {t.step_id: t.attempts for t in status.performance_metrics.step_timings} == {
            t.step_id: 1 for t in status.performance_metrics.step_timings
        }
    finally:
        if server is not None:
            await server.stop(grace=0.5)
        if envoy is not None:
            await envoy.stop()
        for proc, _ in replicas:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)
