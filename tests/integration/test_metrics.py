"""Prometheus metrics: a real server on loopback, its endpoint scraped over real HTTP, the series
checked after real executions (completing, failing, retried through the fleet's fault injection)."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import io
import re
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiohttp
import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console

from agents_clients import BreakerConfig
from server.app import RunningServer, start_server
from server.cli._demo import run_demo
from server.config import ServerConfig
from server.telemetry.metrics import PATH
from tests.integration.pg_support import fresh_database
from tests.integration.support import execute_plan, step, w_plan

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _config(tmp_path: Path, **overrides: object) -> ServerConfig:
    settings: dict[str, object] = {
        "listen": "127.0.0.1:0",
        "store_url": f"sqlite:///{tmp_path}/baton.db",
        "agents": "embedded",
        "agent_faults": True,
        "metrics": "127.0.0.1:0",
    }
    settings.update(overrides)
    return ServerConfig(**settings)  # type: ignore[arg-type]


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await start_server(_config(tmp_path))
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def stub(orchestrator: RunningServer) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        yield orchestrator_pb2_grpc.OrchestratorStub(channel)


async def scrape_text(running: RunningServer, accept: str = "") -> tuple[int, dict[str, str], bytes]:
    """GETs the server's metrics endpoint: the status, headers and raw body."""
    assert running.metrics is not None
    headers = {"Accept": accept} if accept else {}
    async with (
        aiohttp.ClientSession() as session,
        session.get(running.metrics.url, headers=headers, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        return response.status, dict(response.headers), await response.read()


async def scrape(running: RunningServer) -> Samples:
    """Every sample of the endpoint, parsed by prometheus_client's own parser."""
    assert running.metrics is not None
    async with (
        aiohttp.ClientSession() as session,
        session.get(running.metrics.url, timeout=aiohttp.ClientTimeout(total=10)) as response,
    ):
        assert response.status == 200
        text = await response.text()
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def value(samples: Samples, name: str, **labels: str) -> float:
    """A sample's value; 0 when absent (a labelled series appears on its first use)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def names(samples: Samples) -> set[str]:
    return {name for name, _ in samples}


def label_values(samples: Samples, label: str) -> set[str]:
    return {v for _, labels in samples for k, v in labels if k == label}


async def until(running: RunningServer, seen: Callable[[Samples], bool], within: float = 10.0) -> Samples:
    """Scrapes until `seen` holds; returns that scrape."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        samples = await scrape(running)
        if seen(samples):
            return samples
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the metrics never showed what was awaited")
        await asyncio.sleep(0.05)


async def set_faults(running: RunningServer, **config: object) -> None:
    assert running.fleet is not None
    async with grpc.aio.insecure_channel(running.fleet.address) as channel:
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults_pb2.FaultConfig(**config))  # type: ignore[arg-type]


async def run_to_end(stub: Stub, plan: plan_pb2.OrchestrationPlan) -> tuple[str, int]:
    """Submits the plan and watches it to its end: (execution id, final state)."""
    execution = await stub.ExecuteWorkflow(execute_plan(plan))
    request = orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id)
    updates = [u async for u in stub.WatchExecution(request, timeout=30)]
    return execution.execution_id, updates[-1].status.status


def retried_plan(workflow_type: str = "w") -> plan_pb2.OrchestrationPlan:
    """One analytics step, retried up to 3 times after 10 ms."""
    plan = plan_pb2.OrchestrationPlan(workflow_type=workflow_type, workflow_steps=[step("A")])
    policy = plan.execution_strategy.retry_policy
    policy.max_retries = 3
    policy.initial_backoff.FromMilliseconds(10)
    return plan


# ---- executions, attempts, retries --------------------------------------------------------------


async def test_completed_failed_and_retried_executions_move_their_series(
    orchestrator: RunningServer, stub: Stub
) -> None:
    before = await scrape(orchestrator)
    assert value(before, "baton_executions_started_total", workflow_type="document_analysis") == 0
    assert value(before, "baton_executions_started_total", workflow_type="custom") == 0

    # One completes. A plan's own type is a type the planner defines: it is its label.
    _, state = await run_to_end(
        stub, plan_pb2.OrchestrationPlan(workflow_type="document_analysis", workflow_steps=[step("A")])
    )
    assert state == E.EXECUTION_STATE_COMPLETED
    # One fails: analytics answers INTERNAL to every call and the step has no retry.
    await set_faults(orchestrator, agent="analytics", error_rate=1.0, error_code="INTERNAL")
    _, state = await run_to_end(stub, w_plan())
    assert state == E.EXECUTION_STATE_FAILED
    # One completes on its second attempt: the first answers UNAVAILABLE.
    await set_faults(orchestrator, agent="analytics", fail_next=1, error_code="UNAVAILABLE")
    _, state = await run_to_end(stub, retried_plan())
    assert state == E.EXECUTION_STATE_COMPLETED

    samples = await scrape(orchestrator)
    assert value(samples, "baton_executions_started_total", workflow_type="document_analysis") == 1
    assert value(samples, "baton_executions_completed_total", workflow_type="document_analysis") == 1
    # "w" is no defined type: both plans of it count as custom.
    assert value(samples, "baton_executions_started_total", workflow_type="custom") == 2
    assert value(samples, "baton_executions_completed_total", workflow_type="custom") == 1
    assert value(samples, "baton_executions_failed_total", workflow_type="custom") == 1
    assert value(samples, "baton_executions_cancelled_total", workflow_type="custom") == 0
    for workflow_type, outcome, count in (
        ("document_analysis", "completed", 1),
        ("custom", "failed", 1),
        ("custom", "completed", 1),
    ):
        labels = {"workflow_type": workflow_type, "outcome": outcome}
        assert value(samples, "baton_execution_duration_seconds_count", **labels) == count
        assert value(samples, "baton_execution_duration_seconds_sum", **labels) > 0
        assert value(samples, "baton_execution_duration_seconds_bucket", le="+Inf", **labels) == count

    attempt = {"agent": "analytics", "operation": "RecordEvents"}
    # 1 of the first run, 1 of the failing one (A fails: nothing after it starts), 2 of the retried.
    assert value(samples, "baton_step_attempt_duration_seconds_count", outcome="OK", **attempt) == 2
    assert value(samples, "baton_step_attempt_duration_seconds_count", outcome="INTERNAL", **attempt) == 1
    assert value(samples, "baton_step_attempt_duration_seconds_count", outcome="UNAVAILABLE", **attempt) == 1
    assert value(samples, "baton_step_attempt_duration_seconds_sum", outcome="OK", **attempt) > 0
    assert value(samples, "baton_step_retries_total", **attempt) == 1

    # Every write was committed in some batch, and each batch was timed.
    commits = value(samples, "baton_store_commit_duration_seconds_count")
    assert commits >= 3
    assert commits == orchestrator.store.stats.commits  # type: ignore[attr-defined]
    assert value(samples, "baton_store_commit_duration_seconds_sum") > 0
    assert value(samples, "baton_store_executions", state="completed") == 2
    assert value(samples, "baton_store_executions", state="failed") == 1
    assert value(samples, "baton_queue_depth") == 0
    assert value(samples, "baton_store_up") == 1
    assert value(samples, "baton_executions_in_flight") == 0


async def test_a_cancelled_execution_is_counted_as_cancelled(orchestrator: RunningServer, stub: Stub) -> None:
    await set_faults(orchestrator, agent="analytics", latency={"seconds": 5})
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    await stub.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id=execution.execution_id))
    samples = await until(
        orchestrator, lambda s: value(s, "baton_executions_cancelled_total", workflow_type="custom") == 1
    )
    assert value(samples, "baton_execution_duration_seconds_count", workflow_type="custom", outcome="cancelled") == 1
    # The attempt in flight was cut short when the execution ended.
    cancelled = {"agent": "analytics", "operation": "RecordEvents", "outcome": "CANCELLED"}
    await until(orchestrator, lambda s: value(s, "baton_step_attempt_duration_seconds_count", **cancelled) == 1)


async def test_a_resubmission_with_the_same_request_id_is_not_counted_again(
    orchestrator: RunningServer, stub: Stub
) -> None:
    request = execute_plan(w_plan(), request_id="same")
    first = await stub.ExecuteWorkflow(request)
    again = await stub.ExecuteWorkflow(request)
    assert first.execution_id == again.execution_id and not again.created
    samples = await scrape(orchestrator)
    assert value(samples, "baton_executions_started_total", workflow_type="custom") == 1


# ---- breakers, watchers, in flight ---------------------------------------------------------------


async def test_a_breaker_that_opens_and_closes_again_shows_in_its_gauge_and_transitions(tmp_path: Path) -> None:
    # Small, so two calls trip the breaker and it lets a trial through soon.
    orchestrator = await start_server(_config(tmp_path, breaker=BreakerConfig(fail_max=2, reset_timeout=0.5)))
    try:
        async with grpc.aio.insecure_channel(orchestrator.address) as channel:
            await _breaker_opens_and_closes(orchestrator, orchestrator_pb2_grpc.OrchestratorStub(channel))
    finally:
        await orchestrator.stop(0.5)


async def _breaker_opens_and_closes(orchestrator: RunningServer, stub: Stub) -> None:
    samples = await scrape(orchestrator)
    # Every agent's breaker shows from the start, closed.
    assert label_values({k: v for k, v in samples.items() if k[0] == "baton_circuit_breaker_state"}, "agent") == {
        "document_intelligence",
        "job_discovery",
        "matching_intelligence",
        "automation",
        "ui_ux",
        "analytics",
        "security",
    }
    assert value(samples, "baton_circuit_breaker_state", agent="analytics") == 0

    await set_faults(orchestrator, agent="analytics", error_rate=1.0, error_code="UNAVAILABLE")
    failing = retried_plan()
    # Refused attempts fail as they come instead of waiting for a probe: the breaker opens once.
    failing.execution_strategy.retry_policy.max_circuit_waits = 0
    _, state = await run_to_end(stub, failing)
    assert state == E.EXECUTION_STATE_FAILED
    samples = await scrape(orchestrator)
    assert value(samples, "baton_circuit_breaker_state", agent="analytics") == 2
    assert value(samples, "baton_circuit_breaker_transitions_total", agent="analytics", state="open") == 1
    assert value(samples, "baton_circuit_breaker_state", agent="automation") == 0
    refused = {"agent": "analytics", "operation": "RecordEvents", "outcome": "CIRCUIT_OPEN"}
    assert value(samples, "baton_step_attempt_duration_seconds_count", **refused) >= 1

    # The agent recovers; after the reset timeout a trial call closes the breaker.
    await set_faults(orchestrator, agent="analytics")
    await asyncio.sleep(0.6)
    _, state = await run_to_end(stub, retried_plan())
    assert state == E.EXECUTION_STATE_COMPLETED
    samples = await scrape(orchestrator)
    assert value(samples, "baton_circuit_breaker_state", agent="analytics") == 0
    assert value(samples, "baton_circuit_breaker_transitions_total", agent="analytics", state="half-open") == 1
    assert value(samples, "baton_circuit_breaker_transitions_total", agent="analytics", state="closed") == 1


async def test_the_watchers_gauge_counts_an_open_watch_and_drops_when_it_ends(
    orchestrator: RunningServer, stub: Stub
) -> None:
    await set_faults(orchestrator, agent="analytics", latency={"seconds": 3})
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    assert value(await scrape(orchestrator), "baton_watchers_open") == 0
    call = stub.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id), timeout=30)
    await call.read()  # the stream is open and has sent its first update
    samples = await until(orchestrator, lambda s: value(s, "baton_watchers_open") == 1)
    # The execution's runner is alive here while its first call waits.
    assert value(samples, "baton_executions_in_flight") == 1
    second = stub.WatchExecution(
        orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id), timeout=30
    )
    await second.read()
    await until(orchestrator, lambda s: value(s, "baton_watchers_open") == 2)
    call.cancel()
    second.cancel()
    await until(orchestrator, lambda s: value(s, "baton_watchers_open") == 0)


# ---- labels cannot be grown by callers -------------------------------------------------------------


async def test_a_callers_own_workflow_types_all_count_as_custom(orchestrator: RunningServer, stub: Stub) -> None:
    for index in range(5):
        plan = w_plan()
        plan.workflow_type = f"made-up-{index}"
        await stub.ExecuteWorkflow(execute_plan(plan))
    samples = await until(
        orchestrator, lambda s: value(s, "baton_executions_completed_total", workflow_type="custom") == 5
    )
    assert value(samples, "baton_executions_started_total", workflow_type="custom") == 5
    assert not any("made-up" in v for v in label_values(samples, "workflow_type"))


# ---- the endpoint ----------------------------------------------------------------------------------


async def test_the_endpoint_speaks_openmetrics_and_gzip_when_asked_and_serves_nothing_else(
    orchestrator: RunningServer,
) -> None:
    status, headers, body = await scrape_text(orchestrator)
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert b"# TYPE baton_executions_started_total counter" in body
    # Process metrics of this server's own registry.
    assert b"process_resident_memory_bytes" in body

    status, headers, body = await scrape_text(orchestrator, accept="application/openmetrics-text; version=1.0.0")
    assert status == 200
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith(b"# EOF")

    assert orchestrator.metrics is not None
    async with aiohttp.ClientSession(auto_decompress=False) as session:
        async with session.get(orchestrator.metrics.url, headers={"Accept-Encoding": "gzip"}) as response:
            assert response.headers.get("Content-Encoding") == "gzip"
            assert gzip.decompress(await response.read()).startswith(b"# HELP")
        other = orchestrator.metrics.url.removesuffix(PATH) + "/"
        async with session.get(other) as response:
            assert response.status == 404
        async with session.post(orchestrator.metrics.url) as response:
            assert response.status == 405


async def test_two_servers_in_one_process_count_apart(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = await start_server(_config(tmp_path / "a"))
    b = await start_server(_config(tmp_path / "b"))
    try:
        async with grpc.aio.insecure_channel(a.address) as channel:
            _, state = await run_to_end(orchestrator_pb2_grpc.OrchestratorStub(channel), w_plan())
        assert state == E.EXECUTION_STATE_COMPLETED
        assert value(await scrape(a), "baton_executions_completed_total", workflow_type="custom") == 1
        assert value(await scrape(b), "baton_executions_completed_total", workflow_type="custom") == 0
    finally:
        await a.stop(0.5)
        await b.stop(0.5)


async def test_metrics_are_off_by_default_and_the_store_times_nothing(tmp_path: Path) -> None:
    running = await start_server(_config(tmp_path, metrics=""))
    try:
        assert running.metrics is None
        assert running.store._writer.observe_commit is None  # type: ignore[attr-defined]
    finally:
        await running.stop(0.5)


async def test_a_taken_metrics_port_fails_the_start_naming_the_address(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"127.0.0.1.*{port}"):
            await start_server(_config(tmp_path, metrics=f"127.0.0.1:{port}"))
    # What had started was stopped again: the same store opens at once in a new server.
    running = await start_server(_config(tmp_path))
    await running.stop(0.5)


@pytest.mark.parametrize("address", ["9090", "host:", ":9090", "127.0.0.1:99999"])
def test_a_malformed_metrics_address_is_refused_naming_the_setting(tmp_path: Path, address: str) -> None:
    with pytest.raises(ValueError, match="metrics: expected HOST:PORT"):
        _config(tmp_path, metrics=address)


async def test_postgresql_commits_are_timed_too() -> None:
    async with fresh_database() as url:
        running = await start_server(ServerConfig(listen="127.0.0.1:0", store_url=url, metrics="127.0.0.1:0"))
        try:
            async with grpc.aio.insecure_channel(running.address) as channel:
                _, state = await run_to_end(orchestrator_pb2_grpc.OrchestratorStub(channel), w_plan())
            assert state == E.EXECUTION_STATE_COMPLETED
            samples = await scrape(running)
            assert value(samples, "baton_store_commit_duration_seconds_count") == running.store.stats.commits  # type: ignore[attr-defined]
            assert value(samples, "baton_store_commit_duration_seconds_count") >= 3
            assert value(samples, "baton_store_commit_duration_seconds_sum") > 0
            assert value(samples, "baton_store_executions", state="completed") == 1
        finally:
            await running.stop(0.5)


async def test_the_demo_prints_its_metrics_address_and_serves_them_while_it_holds(tmp_path: Path) -> None:
    out = io.StringIO()
    demo = asyncio.create_task(run_demo(Console(file=out, width=200), str(tmp_path), metrics="127.0.0.1:0", hold=30))
    try:
        deadline = asyncio.get_running_loop().time() + 30
        while "more (curl it" not in out.getvalue():
            assert not demo.done(), out.getvalue()
            assert asyncio.get_running_loop().time() < deadline, out.getvalue()
            await asyncio.sleep(0.05)
        (url,) = re.findall(r"^metrics +(http://\S+)$", out.getvalue(), re.MULTILINE)
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            body = await response.text()
        assert 'baton_executions_completed_total{workflow_type="application_automation"} 1.0' in body
    finally:
        demo.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await demo
