"""Estimates and cost over real gRPC, on SQLite and PostgreSQL, with the reference fleet slowed.

The fleet's FaultInjection gives each agent a known latency; after 50 runs of job_discovery the
plan preview's ETA comes from history, close to the measured durations, and survives a restart.
"""

from __future__ import annotations

import asyncio
import statistics
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from baton.v1 import (
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
    reports_pb2,
)

from server.app import RunningServer, start_server
from server.config import EstimatesConfig, ServerConfig
from tests.integration.pg_support import fresh_database
from tests.integration.support import TERMINAL, execute_plan, step, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub
Serve = Callable[[], Awaitable[RunningServer]]

RUNS = 50
# Milliseconds each agent of job_discovery takes: job_discovery's search dominates the path.
LATENCY_MS = {
    "document_intelligence": 60,
    "job_discovery": 400,
    "matching_intelligence": 60,
    "ui_ux": 40,
    "analytics": 40,
}
CALL_STEPS = ("analyze_resume", "search_jobs", "score_matches", "notify_user", "record_analytics")


def _config(store_url: str, costs_file: str = "") -> ServerConfig:
    return ServerConfig(
        listen="127.0.0.1:0",
        store_url=store_url,
        agents="embedded",
        agent_faults=True,
        estimates=EstimatesConfig(costs_file=costs_file, min_samples=20, flush_interval=0.2),
    )


@pytest.fixture(params=["sqlite", "postgres"])
async def serve(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Serve]:
    """Starts orchestrators on one store (one after the other: a restart); stops them all after."""
    started: list[RunningServer] = []

    async def run(url: str) -> AsyncIterator[Serve]:
        async def start() -> RunningServer:
            running = await start_server(_config(url))
            started.append(running)
            return running

        try:
            yield start
        finally:
            for running in started:
                await running.stop(grace=0.5)

    if request.param == "sqlite":
        async for start in run(f"sqlite:///{tmp_path}/baton.db"):
            yield start
        return
    async with fresh_database() as url:
        async for start in run(url):
            yield start


async def _set_faults(server: RunningServer, agent: str, **fields: object) -> None:
    assert server.fleet is not None
    latency_ms = fields.pop("latency_ms", 0)
    config = faults_pb2.FaultConfig(agent=agent, **fields)  # type: ignore[arg-type]
    config.latency.FromNanoseconds(int(latency_ms) * 1_000_000)  # type: ignore[call-overload]
    async with grpc.aio.insecure_channel(server.fleet.address) as channel:  # type: ignore[attr-defined]
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config, timeout=5)


def _job_discovery(user_id: str) -> orchestrator_pb2.PlanWorkflowRequest:
    request = orchestrator_pb2.PlanWorkflowRequest(workflow_type="job_discovery")
    request.user_context.user_id = user_id
    return request


def _seconds(duration: object) -> float:
    return duration.ToNanoseconds() / 1e9  # type: ignore[attr-defined, no-any-return]


def _timings(plan: plan_pb2.OrchestrationPlan) -> dict[str, plan_pb2.StepTiming]:
    return {s.step_id: s.timing for s in plan.workflow_steps}


async def _run(stub: Stub, user_id: str) -> execution_pb2.ExecutionStatus:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_discovery")
    request.user_context.user_id = user_id
    execution = await stub.ExecuteWorkflow(request, timeout=10)
    updates = await watch_all(stub, execution.execution_id, deadline=60)
    return updates[-1].status


async def test_after_50_runs_the_preview_eta_comes_from_history_close_to_the_measured_and_survives_a_restart(
    serve: Serve,
) -> None:
    server = await serve()
    for agent, latency in LATENCY_MS.items():
        await _set_faults(server, agent, latency_ms=latency)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = Stub(channel)
        before = await stub.PlanWorkflow(_job_discovery("planner"), timeout=10)
        assert {t.estimate_source for t in _timings(before).values()} == {plan_pb2.ESTIMATE_SOURCE_DECLARED}
        assert _seconds(before.estimated_duration) == pytest.approx(0.5 + 1 + 0.5 + 0.2)  # the YAML's

        # 50 runs, ten at a time: each calls every operation of the plan once.
        statuses: list[execution_pb2.ExecutionStatus] = []
        for batch in range(RUNS // 10):
            statuses += await asyncio.gather(*(_run(stub, f"user-{batch}-{i}") for i in range(10)))
        assert all(s.status == E.EXECUTION_STATE_COMPLETED for s in statuses), [s.failure_reason for s in statuses]
        measured = statistics.median(_seconds(s.performance_metrics.total_duration) for s in statuses)
        assert server.recorder is not None
        await server.recorder.flush()

        after = await stub.PlanWorkflow(_job_discovery("planner"), timeout=10)
        timings = _timings(after)
        for step_id in CALL_STEPS:
            assert timings[step_id].estimate_source == plan_pb2.ESTIMATE_SOURCE_HISTORY, step_id
            assert timings[step_id].estimate_samples >= RUNS, step_id
        # Each step's estimate is its agent's latency (plus the call's own cost), p95 above p50.
        search = timings["search_jobs"]
        assert 0.4 <= _seconds(search.estimated_duration) < 0.4 * 2
        assert _seconds(search.estimated_p95) >= _seconds(search.estimated_duration)
        eta = _seconds(after.estimated_duration)
        # The critical path: analyze, search, score, then the slower of notify and record.
        assert eta >= (60 + 400 + 60 + 40) / 1000
        assert eta == pytest.approx(measured, rel=0.4), (eta, measured)

        # The report: every run, the cost of the calls, the dominant step named.
        report: reports_pb2.WorkflowReport = await stub.GetWorkflowReport(
            reports_pb2.GetWorkflowReportRequest(workflow_type="job_discovery"), timeout=30
        )
        assert (report.executions, report.completed) == (RUNS, RUNS)
        costs = [s.resource_usage.cost_estimate for s in statuses]
        assert costs[0] > 0 and report.total_cost == pytest.approx(sum(costs))
        assert [s.step_id for s in report.critical_path][:3] == ["analyze_resume", "search_jobs", "score_matches"]
        assert any(
            r.startswith("Step search_jobs (job_discovery.SearchJobs) dominates") for r in report.recommendations
        ), (report.critical_path, report.recommendations)
        searches = next(o for o in report.operations if o.operation == "SearchJobs")
        assert searches.calls == RUNS and searches.samples >= RUNS and _seconds(searches.p99) >= 0.4

    await server.stop(grace=0.5)
    restarted = await serve()
    async with grpc.aio.insecure_channel(restarted.address) as channel:
        again = await Stub(channel).PlanWorkflow(_job_discovery("planner"), timeout=10)
    assert _timings(again) == timings
    assert again.estimated_duration == after.estimated_duration


async def test_the_remaining_time_shrinks_as_steps_finish(orchestrator: RunningServer, stub: Stub) -> None:
    await _set_faults(orchestrator, "analytics", latency_ms=150)
    plan = plan_pb2.OrchestrationPlan(workflow_type="eta", workflow_steps=[step("A"), step("B", "A"), step("C", "B")])
    for s in plan.workflow_steps:
        s.timing.estimated_duration.FromMilliseconds(150)
    execution = await stub.ExecuteWorkflow(execute_plan(plan), timeout=10)
    updates = await watch_all(stub, execution.execution_id)
    remaining = [
        _seconds(u.status.progress.estimated_time_remaining)
        for u in updates
        if u.event.WhichOneof("kind") == "step_succeeded"
    ]
    assert len(remaining) == 3
    # After A: B and C remain (0.3 s at most); after B: C; after C: nothing.
    assert remaining[0] > remaining[1] > remaining[2] == 0
    assert remaining[0] <= 0.3 + 1e-9
    started = next(u for u in updates if u.event.WhichOneof("kind") == "step_started")
    progress = started.status.progress
    assert progress.HasField("estimated_completion")
    expected = started.event.time.ToNanoseconds() + progress.estimated_time_remaining.ToNanoseconds()
    assert progress.estimated_completion.ToNanoseconds() == expected
    assert not updates[-1].status.progress.HasField("estimated_completion")  # ended


async def test_the_cost_counts_every_attempt_sent_and_the_report_names_the_costliest_retries(tmp_path: Path) -> None:
    costs = tmp_path / "costs.yaml"
    costs.write_text("default: 1\noperations:\n  analytics.RecordEvents: 2.5\n  ui_ux.Notify: 0.5\n")
    server = await start_server(_config(f"sqlite:///{tmp_path}/baton.db", str(costs)))
    try:
        await _set_faults(server, "analytics", fail_next=2)
        plan = plan_pb2.OrchestrationPlan(
            workflow_type="costly", workflow_steps=[step("A"), step("B", "A", agent="ui_ux", operation="Notify")]
        )
        plan.workflow_steps[0].error_handling.retry_count = 3
        plan.execution_strategy.retry_policy.initial_backoff.FromMilliseconds(10)
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = Stub(channel)
            execution = await stub.ExecuteWorkflow(execute_plan(plan), timeout=10)
            final = (await watch_all(stub, execution.execution_id))[-1].status
            assert final.status in TERMINAL and final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
            # Three calls of A (two failed, one answered) and one of B, at the file's prices.
            assert final.resource_usage.cost_estimate == pytest.approx(3 * 2.5 + 0.5)
            report = await stub.GetWorkflowReport(reports_pb2.GetWorkflowReportRequest(workflow_type="costly"))
            record = next(o for o in report.operations if o.operation == "RecordEvents")
            assert (record.calls, record.retries, record.retry_cost, record.unit_cost) == (3, 2, 5.0, 2.5)
            assert report.recommendations[-1].startswith("Retries of analytics.RecordEvents cost the most: 5")
            for bad in (
                reports_pb2.GetWorkflowReportRequest(),
                reports_pb2.GetWorkflowReportRequest(workflow_type="costly", max_executions=1001),
                reports_pb2.GetWorkflowReportRequest(workflow_type="x\x00"),
            ):
                with pytest.raises(grpc.aio.AioRpcError) as refused:
                    await stub.GetWorkflowReport(bad, timeout=5)
                assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            empty = await stub.GetWorkflowReport(reports_pb2.GetWorkflowReportRequest(workflow_type="nothing-ran"))
            assert (empty.executions, empty.total_cost, list(empty.recommendations)) == (0, 0.0, [])
    finally:
        await server.stop(grace=0.5)
