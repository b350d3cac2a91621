"""Traces as an operator sees them: `baton serve`, `baton agents serve` and `baton run` as processes,
their spans on the console or sent to an OTLP collector, one trace per execution across a kill -9."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tests.conftest import ROOT, free_port, output_of, serve_orchestrator, spawn, wait_for_line
from tests.integration.support import watch_all

pytestmark = pytest.mark.timeout(120)

E = execution_pb2
STOP_TIMEOUT = 20.0
"""Seconds a SIGTERMed process gets to flush its spans and exit."""


def _console_spans(proc: subprocess.Popen[str]) -> list[dict[str, Any]]:
    """The spans a process printed with the console exporter (one JSON object per line)."""
    return [json.loads(line) for line in output_of(proc).splitlines() if line.startswith('{"name"')]


def _stop(proc: subprocess.Popen[str]) -> None:
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=STOP_TIMEOUT) == 0, output_of(proc)[-2000:]


async def test_the_console_shows_one_trace_per_execution_across_a_kill_9_and_the_agents_spans_beneath(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    agents_port = free_port()
    agents = spawn(
        "-m",
        "server.cli",
        "agents",
        "serve",
        "--listen",
        f"127.0.0.1:{agents_port}",
        "--trace-exporter",
        "console",
        "--faults",
    )
    processes.append(agents)
    wait_for_line(agents, "agents serving on")
    agents_address = f"127.0.0.1:{agents_port}"
    slow = faults_pb2.FaultConfig(agent="analytics")
    slow.latency.FromSeconds(60)
    async with grpc.aio.insecure_channel(agents_address) as channel:
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(slow)

    port = free_port()
    store = tmp_path / "baton.db"
    console = ("--trace-exporter", "console")
    first, target = serve_orchestrator(processes, store, agents_address, *console, port=port)
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="document_analysis")
    request.user_context.user_id = "trace-user"
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(request)
        eid = execution.execution_id
        async for update in stub.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=eid)):
            started = update.event.step_started
            if update.event.WhichOneof("kind") == "step_started" and started.agent == "analytics":
                break
    # The analytics attempt is in flight at the agent; the orchestrator dies without ending its span.
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    (submitted,) = [s for s in _console_spans(first) if s["name"] == "/baton.v1.Orchestrator/ExecuteWorkflow"]
    before = [s for s in _console_spans(first) if s["attributes"].get("baton.execution_id") == eid]
    assert before and "analytics" not in {s["attributes"]["baton.agent"] for s in before}

    async with grpc.aio.insecure_channel(agents_address) as channel:
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults_pb2.FaultConfig(agent="analytics"))
    second, _ = serve_orchestrator(processes, store, agents_address, *console, port=port)
    async with grpc.aio.insecure_channel(target) as channel:
        final = (await watch_all(orchestrator_pb2_grpc.OrchestratorStub(channel), eid, deadline=60))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    status = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "server.cli", "status", eid, "--target", target],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert status.returncode == 0, status.stderr
    assert [line.split() for line in status.stdout.splitlines() if line.startswith("trace")] == [
        ["trace", final.trace_id]
    ]
    _stop(second)
    _stop(agents)

    # The resumed attempt, made by a process that never saw the submission, is in its trace.
    trace_id = "0x" + final.trace_id
    assert submitted["context"]["trace_id"] == trace_id
    after = [s for s in _console_spans(second) if s["attributes"].get("baton.execution_id") == eid]
    (resumed,) = [s for s in after if s["attributes"]["baton.agent"] == "analytics"]
    assert resumed["context"]["trace_id"] == trace_id
    assert resumed["parent_id"] == submitted["context"]["span_id"]
    assert resumed["attributes"]["baton.outcome"] == "OK"
    assert resumed["resource"]["attributes"]["service.name"] == "baton-orchestrator"
    # Every attempt's call reached the agents as the attempt's child, in the same trace.
    attempts = {s["context"]["span_id"] for s in before + after}
    calls = [s for s in _console_spans(agents) if s["parent_id"] in attempts]
    assert len(calls) == len(attempts)
    assert {s["context"]["trace_id"] for s in calls} == {trace_id}
    assert {s["resource"]["attributes"]["service.name"] for s in calls} == {"baton-agents"}


class _Collector(trace_service_pb2_grpc.TraceServiceServicer):
    """An OTLP trace receiver: keeps every span it is sent, with its service.name."""

    def __init__(self) -> None:
        self.spans: list[tuple[str, Any]] = []

    def Export(
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope in resource_spans.scope_spans:
                self.spans.extend((attributes.get("service.name", ""), span) for span in scope.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


@pytest.fixture
def collector() -> Iterator[tuple[_Collector, str]]:
    received = _Collector()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(received, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield received, f"http://127.0.0.1:{port}"
    finally:
        server.stop(0)


def test_baton_run_serve_and_agents_send_one_trace_to_an_otlp_collector(
    tmp_path: Path, processes: list[subprocess.Popen[str]], collector: tuple[_Collector, str]
) -> None:
    received, endpoint = collector
    otlp = ("--trace-exporter", "otlp", "--otlp-endpoint", endpoint)
    agents_port = free_port()
    agents = spawn("-m", "server.cli", "agents", "serve", "--listen", f"127.0.0.1:{agents_port}", *otlp)
    processes.append(agents)
    wait_for_line(agents, "agents serving on")
    orchestrator, target = serve_orchestrator(processes, tmp_path / "baton.db", f"127.0.0.1:{agents_port}", *otlp)

    command = ("run", "document_analysis", "--user", "otlp-user", "--target", target, *otlp)
    run = subprocess.run(
        [sys.executable, "-m", "server.cli", *command],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    _stop(orchestrator)  # a stop flushes the batched spans
    _stop(agents)

    by_service: dict[str, list[Any]] = {}
    for service, span in received.spans:
        by_service.setdefault(service, []).append(span)
    assert [s.name for s in by_service["baton-cli"] if not s.parent_span_id] == ["baton run document_analysis"]
    root = next(s for s in by_service["baton-cli"] if not s.parent_span_id)
    trace_spans = [(service, s) for service, s in received.spans if s.trace_id == root.trace_id]
    services = {service for service, _ in trace_spans}
    assert services == {"baton-cli", "baton-orchestrator", "baton-agents"}
    ids = {s.span_id: s for _, s in trace_spans}
    attempts = [s for s in by_service["baton-orchestrator"] if s.name.startswith("step ")]
    assert attempts and all(s.trace_id == root.trace_id for s in attempts)
    # Each attempt: a child of ExecuteWorkflow's server span, itself the child of the CLI's call.
    for attempt in attempts:
        server_span = ids[attempt.parent_span_id]
        assert server_span.name == "/baton.v1.Orchestrator/ExecuteWorkflow"
        client_span = ids[server_span.parent_span_id]
        assert client_span.name == "/baton.v1.Orchestrator/ExecuteWorkflow"
        assert client_span.parent_span_id == root.span_id
    agent_calls = [s for s in by_service["baton-agents"] if s.trace_id == root.trace_id]
    assert sorted(ids[s.parent_span_id].name for s in agent_calls) == sorted(s.name for s in attempts)
