"""JSON logs (``--log-format json``): every line parses, and a line written during an execution's
work carries its execution id, and its trace id when it is traced (a real server on loopback)."""

from __future__ import annotations

import io
import json
import logging
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agents_clients import BreakerConfig
from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.telemetry.logs import make_handler
from tests.conftest import free_port, output_of, serve_orchestrator, spawn, wait_for_line
from tests.integration.support import execute_plan, w_plan, watch_all

E = execution_pb2


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the root logger writes as JSON lines, during the test."""
    stream = io.StringIO()
    handler = make_handler("json", stream)
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        yield stream
    finally:
        root.removeHandler(handler)


def parsed(stream: io.StringIO) -> list[dict[str, Any]]:
    """Every line, parsed (each must be one JSON object)."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert all(isinstance(line, dict) for line in lines)
    return lines


async def _trip_the_breaker(running: RunningServer) -> str:
    """Runs an execution whose first call fails and opens analytics' breaker; returns its id."""
    assert running.fleet is not None
    async with grpc.aio.insecure_channel(running.fleet.address) as channel:
        faults = faults_pb2.FaultConfig(agent="analytics", error_rate=1.0, error_code="UNAVAILABLE")
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
        updates = await watch_all(stub, execution.execution_id)
        assert updates[-1].status.status == E.EXECUTION_STATE_FAILED
        return str(execution.execution_id)


def _config(tmp_path: Path) -> ServerConfig:
    return ServerConfig(
        listen="127.0.0.1:0",
        store_url=f"sqlite:///{tmp_path}/baton.db",
        agents="embedded",
        agent_faults=True,
        breaker=BreakerConfig(fail_max=1, reset_timeout=30),
    )


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(_config(tmp_path))
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


async def test_a_line_written_during_an_executions_call_carries_its_execution_id(
    orchestrator: RunningServer, json_lines: io.StringIO
) -> None:
    execution_id = await _trip_the_breaker(orchestrator)
    lines = parsed(json_lines)
    opened = [line for line in lines if "closed -> open" in line["message"]]
    assert len(opened) == 1
    line = opened[0]
    assert line["logger"] == "agents_clients.breakers"
    assert line["level"] == "WARNING"
    assert line["execution_id"] == execution_id
    assert line["time"].endswith("+00:00")
    # Tracing is off: no trace id is made up.
    assert "trace_id" not in line and "span_id" not in line


async def test_a_traced_executions_lines_carry_its_trace_id_and_the_attempts_span(
    tmp_path: Path, json_lines: io.StringIO
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    running = await start_server(_config(tmp_path), tracer_provider=provider)
    try:
        execution_id = await _trip_the_breaker(running)
        async with grpc.aio.insecure_channel(running.address) as channel:
            status = await orchestrator_pb2_grpc.OrchestratorStub(channel).GetExecution(
                orchestrator_pb2.GetExecutionRequest(execution_id=execution_id)
            )
    finally:
        await running.stop(0.5)
        provider.shutdown()
    assert len(status.trace_id) == 32
    (line,) = [line for line in parsed(json_lines) if "closed -> open" in line["message"]]
    assert line["execution_id"] == execution_id
    assert line["trace_id"] == status.trace_id
    # Written inside the attempt's span (the breaker guards the call the span covers).
    attempt_spans = {
        format(span.context.span_id, "016x")
        for span in exporter.get_finished_spans()
        if span.attributes is not None and span.attributes.get("baton.execution_id") == execution_id
    }
    assert line["span_id"] in attempt_spans


def test_a_line_outside_any_execution_has_no_execution_id_and_an_exception_is_kept(json_lines: io.StringIO) -> None:
    try:
        raise ValueError('bad "input"\nover two lines')
    except ValueError:
        logging.getLogger("baton.test").exception("it failed: %s", "why")
    (line,) = parsed(json_lines)
    assert line["message"] == "it failed: why"
    assert line["level"] == "ERROR"
    assert "execution_id" not in line
    assert 'ValueError: bad "input"\nover two lines' in line["exception"]


# ---- the command line ------------------------------------------------------------------------------


def test_baton_serve_writes_json_lines_and_serves_metrics_as_a_process(tmp_path: Path, processes: list[Any]) -> None:
    port = free_port()
    proc, _ = serve_orchestrator(
        processes, tmp_path / "baton.db", "embedded", "--log-format", "json", "--metrics", f"127.0.0.1:{port}"
    )
    wait_for_line(proc, "baton metrics on")
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        body = response.read().decode()
    assert 'baton_executions_started_total{workflow_type="application_automation"} 0.0' in body
    logs = [json.loads(line) for line in output_of(proc).splitlines() if line.startswith("{")]
    assert any(line["logger"] == "server.app" and "baton serving on" in line["message"] for line in logs)
    assert any(line["message"] == f"metrics on http://127.0.0.1:{port}/metrics" for line in logs)
    # Every line on stderr is JSON; stdout has only the two "baton … on" lines.
    plain = [line for line in output_of(proc).splitlines() if not line.startswith("{")]
    assert all(line.startswith("baton ") for line in plain), plain


def test_baton_agents_serve_writes_json_lines(processes: list[Any]) -> None:
    port = free_port()
    proc = spawn("-m", "server.cli", "agents", "serve", "--listen", f"127.0.0.1:{port}", "--log-format", "json")
    processes.append(proc)
    line = wait_for_line(proc, "reference agents serving on")
    parsed_line = json.loads(line)
    assert parsed_line["logger"] == "agents._fleet"
    assert parsed_line["level"] == "INFO"


@pytest.mark.parametrize(
    "argv",
    [
        ["serve", "--log-format", "yaml"],
        ["serve", "--metrics", "nope"],
        ["demo", "--hold", "5"],
        ["demo", "--metrics", "127.0.0.1:0", "--hold", "-1"],
        ["demo", "--metrics", "localhost"],
    ],
)
def test_bad_metrics_and_log_options_are_usage_errors(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    from server.cli import main

    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own refusal of a choice
        code = int(exit_.code or 0)
    assert code == 2
    err = capsys.readouterr().err
    assert ("--log-format" in err) or ("metrics" in err) or ("--hold" in err)
