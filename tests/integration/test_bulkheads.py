"""Bulkheads, rate limits and job-board limits over real gRPC, with the reference fleet's fault
injection (issue 11.2): a bulkhead of one serialises calls and the waiting step says so, a token
bucket bounds the call rate, a suspended board's applications are not sent and the planner avoids
it, a limited board is paced, bad settings are refused, and the demo shows it all."""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    common_pb2,
    execution_pb2,
    faults_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
)

from agents._jobs import JobCatalog
from agents_clients import BoardLimitsConfig, CapacityConfig, RateLimit
from server.app import RunningServer, start_server
from server.cli._client import follow
from server.cli._demo import demo_request
from server.client import BatonClient
from server.config import ServerConfig
from tests.integration.support import execute_plan, step, watch_all
from tests.integration.test_metrics import scrape, until, value

E = execution_pb2
ROOT = Path(__file__).resolve().parents[2]
Stub = orchestrator_pb2_grpc.OrchestratorStub
LIMITED, SUSPENDED = common_pb2.ACCOUNT_HEALTH_LIMITED, common_pb2.ACCOUNT_HEALTH_SUSPENDED


async def _server(tmp_path: Path, capacity: CapacityConfig, metrics: str = "") -> RunningServer:
    return await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            agent_faults=True,
            capacity=capacity,
            metrics=metrics,
        )
    )


@pytest.fixture
async def stop_after() -> AsyncIterator[list[RunningServer]]:
    servers: list[RunningServer] = []
    try:
        yield servers
    finally:
        for running in servers:
            await running.stop(grace=0.5)


def _parallel(*step_ids: str, timeout: float = 10.0) -> plan_pb2.OrchestrationPlan:
    plan = plan_pb2.OrchestrationPlan(workflow_type="fan", workflow_steps=[step(s, timeout=timeout) for s in step_ids])
    plan.execution_strategy.execution_mode = plan_pb2.EXECUTION_MODE_PARALLEL
    return plan


async def _most_in_flight(running: RunningServer, agent: str, done: asyncio.Event) -> int:
    """Polls the agent's operations in flight until `done`; returns the most seen at once."""
    assert running.fleet is not None
    most = 0
    while not done.is_set():
        most = max(most, running.fleet.in_flight(agent))
        await asyncio.sleep(0.005)
    return most


async def test_a_bulkhead_of_one_serialises_calls_to_a_slow_agent_and_the_waiting_step_says_so(
    tmp_path: Path, stop_after: list[RunningServer]
) -> None:
    running = await _server(tmp_path, CapacityConfig(bulkheads={"analytics": 1}))
    stop_after.append(running)
    assert running.fleet is not None
    slow = faults_pb2.FaultConfig(agent="analytics")
    slow.latency.FromMilliseconds(300)
    running.fleet.set_faults(slow)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        execution = await stub.ExecuteWorkflow(execute_plan(_parallel("A", "B", "C")))
        done = asyncio.Event()
        overlap = asyncio.create_task(_most_in_flight(running, "analytics", done))
        watch = asyncio.create_task(watch_all(stub, execution.execution_id))
        waiting: list[execution_pb2.WaitingStep] = []
        for _ in range(100):
            status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id))
            waiting = [w for w in status.waiting if w.kind == E.WAIT_KIND_CAPACITY]
            if waiting:
                break
            await asyncio.sleep(0.02)
        health = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest())
        updates = await watch
        done.set()
        most = await overlap
    assert most == 1  # never two calls at the agent at once
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert final.performance_metrics.total_duration.ToMilliseconds() >= 850  # 3 x 300 ms, one after another
    # GetExecution showed a step waiting, with the limit it waits for, the step still running.
    assert waiting, "no status showed a step waiting for agent capacity"
    assert waiting[0].prompt == "waiting for agent capacity: analytics.RecordEvents, bulkhead analytics"
    assert dict(waiting[0].data) == {
        "agent": "analytics",
        "operation": "RecordEvents",
        "limit": "bulkhead analytics",
        "call": "step",
    }
    assert waiting[0].timeout_at.ToDatetime() > waiting[0].since.ToDatetime()
    assert status.status == E.EXECUTION_STATE_RUNNING
    bulkhead = health.capacity["analytics"]
    assert (bulkhead.in_flight, bulkhead.max_in_flight) == (1, 1) and bulkhead.waiting_for_slot >= 1
    # The watch showed the waits on its updates; none is left at the end.
    assert any(w.kind == E.WAIT_KIND_CAPACITY for u in updates for w in u.status.waiting), updates
    assert not [w for w in final.waiting if w.kind == E.WAIT_KIND_CAPACITY]
    assert running.capacity.counts.held == 2


async def test_a_watch_is_told_at_once_when_its_step_starts_and_stops_waiting_for_capacity(
    tmp_path: Path, stop_after: list[RunningServer]
) -> None:
    running = await _server(tmp_path, CapacityConfig(bulkheads={"analytics": 1}))
    stop_after.append(running)
    assert running.fleet is not None
    slow = faults_pb2.FaultConfig(agent="analytics")
    slow.latency.FromMilliseconds(500)
    running.fleet.set_faults(slow)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        holder = await stub.ExecuteWorkflow(execute_plan(_parallel("A"), user_id="holder"))
        for _ in range(200):
            if running.fleet.in_flight("analytics"):
                break
            await asyncio.sleep(0.005)
        waiter = await stub.ExecuteWorkflow(execute_plan(_parallel("B"), user_id="waiter"))
        restated: list[execution_pb2.ExecutionStatus] = []
        # The CLI's watch (baton watch, the demo) hands a heartbeat's status to its view.
        async with BatonClient(running.address) as client:
            following = asyncio.create_task(
                follow(client, waiter.execution_id, on_update=lambda u: None, on_note=print, on_status=restated.append)
            )
            updates = await watch_all(stub, waiter.execution_id)
            await following
        await watch_all(stub, holder.execution_id)
    # The waiter's history has no event for its wait: heartbeats carrying the status say it began
    # (unless the step_started update already showed it) and, surely, that it ended.
    statuses = [(u.heartbeat, [w.kind for w in u.status.waiting]) for u in updates if u.HasField("status")]
    assert (True, []) in statuses or (False, []) in statuses
    shown = [i for i, (_, kinds) in enumerate(statuses) if E.WAIT_KIND_CAPACITY in kinds]
    assert shown, statuses
    ended = statuses[shown[-1] + 1]
    assert ended == (True, []), statuses  # the wait ended without an event: told by a heartbeat
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
    assert restated and not restated[-1].waiting, restated


async def test_the_metrics_show_the_calls_in_flight_and_waiting_under_each_limit(
    tmp_path: Path, stop_after: list[RunningServer]
) -> None:
    capacity = CapacityConfig(bulkheads={"analytics": 1}, rate_limits={"ui_ux": RateLimit(1.0, 1)})
    running = await _server(tmp_path, capacity, metrics="127.0.0.1:0")
    stop_after.append(running)
    assert running.fleet is not None
    slow = faults_pb2.FaultConfig(agent="analytics")
    slow.latency.FromMilliseconds(800)
    running.fleet.set_faults(slow)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        execution = await stub.ExecuteWorkflow(execute_plan(_parallel("A", "B")))
        samples = await until(running, lambda s: value(s, "baton_capacity_waiting", scope="analytics") == 1)
        await watch_all(stub, execution.execution_id)
    assert value(samples, "baton_capacity_in_flight", scope="analytics") == 1
    assert ("baton_capacity_waiting", frozenset({("scope", "ui_ux")})) in samples  # a rate limit, idle


async def test_cancelling_an_execution_whose_step_waits_for_capacity_sends_nothing_more(
    tmp_path: Path, stop_after: list[RunningServer]
) -> None:
    running = await _server(tmp_path, CapacityConfig(bulkheads={"analytics": 1}))
    stop_after.append(running)
    assert running.fleet is not None
    slow = faults_pb2.FaultConfig(agent="analytics")
    slow.latency.FromMilliseconds(1500)
    running.fleet.set_faults(slow)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        holder = await stub.ExecuteWorkflow(execute_plan(_parallel("A"), user_id="holder"))
        waiter = await stub.ExecuteWorkflow(execute_plan(_parallel("B"), user_id="waiter"))
        for _ in range(200):
            if running.capacity.waits.of(waiter.execution_id):
                break
            await asyncio.sleep(0.005)
        assert running.capacity.waits.of(waiter.execution_id), "the waiter's call never waited"
        await stub.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id=waiter.execution_id))
        updates = await watch_all(stub, waiter.execution_id, deadline=1.0)  # long before the holder's call ends
        assert running.fleet.in_flight("analytics") == 1  # the holder's call alone reached the agent
        await watch_all(stub, holder.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_CANCELLED, final.failure_reason
    # Its call gave up unsent (recorded, or cut short as the execution ended), and left the queue.
    failed = [u.event.step_attempt_failed for u in updates if u.event.WhichOneof("kind") == "step_attempt_failed"]
    assert all(f.error_type == "AGENT_CAPACITY" and not f.HasField("retry_at") for f in failed), failed
    assert not running.capacity.waits.of(waiter.execution_id)
    assert running.capacity.bulkheads["analytics"].waiting == 0


async def test_a_token_bucket_bounds_the_call_rate(tmp_path: Path, stop_after: list[RunningServer]) -> None:
    running = await _server(tmp_path, CapacityConfig(rate_limits={"analytics.RecordEvents": RateLimit(4.0, 1)}))
    stop_after.append(running)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        execution = await stub.ExecuteWorkflow(execute_plan(_parallel("A", "B", "C", "D")))
        updates = await watch_all(stub, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    ends = sorted(t.end_time.ToNanoseconds() / 1e9 for t in final.performance_metrics.step_timings)
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    # 4 a second, burst 1: sent 0.25 s apart (the ends move a little with each call's own time).
    assert all(gap >= 0.15 for gap in gaps) and ends[-1] - ends[0] >= 0.6, gaps
    assert running.capacity.counts.held_by == {"rate limit analytics.RecordEvents": 3}


async def test_a_waiter_past_the_bound_fails_its_attempt_retryably_with_agent_capacity(
    tmp_path: Path, stop_after: list[RunningServer]
) -> None:
    running = await _server(tmp_path, CapacityConfig(bulkheads={"analytics": 1}, max_waiting=0), "127.0.0.1:0")
    stop_after.append(running)
    assert running.fleet is not None
    slow = faults_pb2.FaultConfig(agent="analytics")
    slow.latency.FromMilliseconds(200)
    running.fleet.set_faults(slow)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        plan = _parallel("A", "B")
        for s in plan.workflow_steps:
            s.error_handling.retry_count = 5
        plan.execution_strategy.retry_policy.initial_backoff.FromMilliseconds(150)
        plan.execution_strategy.retry_policy.max_backoff.FromMilliseconds(300)
        execution = await stub.ExecuteWorkflow(execute_plan(plan))
        updates = await watch_all(stub, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason  # retried, then sent
    failed = [u.event.step_attempt_failed for u in updates if u.event.WhichOneof("kind") == "step_attempt_failed"]
    assert failed and all(f.error_type == "AGENT_CAPACITY" and f.HasField("retry_at") for f in failed)
    assert "not sent" in failed[0].error_message
    refused = {"agent": "analytics", "operation": "RecordEvents", "outcome": "AGENT_CAPACITY"}
    assert value(await scrape(running), "baton_step_attempt_duration_seconds_count", **refused) == len(failed)


# ---- job boards -------------------------------------------------------------------------------


def _jobs_on(board: str, count: int) -> list[str]:
    catalog = JobCatalog.load()
    ids = sorted(job_id for job_id in catalog._by_id if catalog.get(job_id).source == board)  # type: ignore[union-attr]
    return ids[:count]


def _search_then_submit(sources: list[str], *submits: list[str]) -> plan_pb2.OrchestrationPlan:
    """A search of `sources` (every posting: the orchestrator learns their boards), then one
    SubmitApplication step per job list, in parallel."""
    search = step(
        "search",
        agent="job_discovery",
        operation="SearchJobs",
        config={"user_id": "${user.user_id}", "sources": sources, "limit": 100},
    )
    steps = [search]
    for index, job_ids in enumerate(submits):
        submit = step(
            f"submit{index}",
            "search",
            agent="automation",
            operation="SubmitApplication",
            config={"user_id": "${user.user_id}", "job_ids": job_ids},
            timeout=10.0,
        )
        submit.error_handling.retry_count = 0
        steps.append(submit)
    plan = plan_pb2.OrchestrationPlan(workflow_type="boards", workflow_steps=steps)
    plan.execution_strategy.execution_mode = plan_pb2.EXECUTION_MODE_PARALLEL
    return plan


async def _applications(running: RunningServer, user_id: str) -> list[automation_pb2.Application]:
    assert running.fleet is not None
    async with grpc.aio.insecure_channel(running.fleet.address) as channel:
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(  # type: ignore[no-untyped-call]
            automation_pb2.ListApplicationsRequest(user_id=user_id)
        )
    return list(listed.applications)


async def test_a_suspended_boards_applications_are_not_sent_and_the_planner_avoids_it(
    tmp_path: Path, stop_after: list[RunningServer]
) -> None:
    running = await _server(tmp_path, CapacityConfig())
    stop_after.append(running)
    assert running.fleet is not None
    running.fleet.set_faults(faults_pb2.FaultConfig(board_health={"linkedin": SUSPENDED}))
    await running.monitor.refresh()
    linkedin, indeed = _jobs_on("linkedin", 2), _jobs_on("indeed", 1)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        # Run time: the linkedin jobs are taken out of a mixed submission; one of linkedin alone is refused.
        plan = _search_then_submit(["linkedin", "indeed"], [*linkedin, *indeed], linkedin)
        plan.workflow_steps[2].error_handling.fallback_action = plan_pb2.FALLBACK_ACTION_SKIP
        execution = await stub.ExecuteWorkflow(execute_plan(plan, user_id="u-suspended"))
        updates = await watch_all(stub, execution.execution_id)
        # Plan time: the application journey's search leaves linkedin out.
        journey = await stub.PlanWorkflow(
            orchestrator_pb2.PlanWorkflowRequest(
                workflow_type="application_automation", user_context=demo_request().user_context
            )
        )
    failed = {
        u.event.step_failed.step_id: u.event.step_failed.error_type
        for u in updates
        if u.event.WhichOneof("kind") == "step_failed"
    }
    assert failed == {"submit1": "BOARD_SUSPENDED"}
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED, updates[-1].status.failure_reason
    started = [u.event.step_started.step_id for u in updates if u.event.WhichOneof("kind") == "step_started"]
    assert started.count("submit1") == 1  # refused unsent, not retried
    applied = await _applications(running, "u-suspended")
    assert [(a.job_id, a.source) for a in applied] == [(indeed[0], "indeed")]
    assert running.capacity.boards.dropped == 2 and running.capacity.boards.refused == 1
    search = next(s for s in journey.workflow_steps if s.step_id == "search_jobs")
    sources = list(search.inputs.configuration["sources"])
    assert "linkedin" not in sources and "indeed" in sources
    assert any(
        "avoiding job boards linkedin (suspended)" in note
        for note in journey.execution_strategy.fallback_strategy.fallback_paths
    )


async def test_a_limited_boards_calls_are_paced_by_its_quota(tmp_path: Path, stop_after: list[RunningServer]) -> None:
    # One quota window a second, the whole even pace: a quota of 2 left paces calls 0.5 s apart.
    boards = BoardLimitsConfig(quota_window=1.0, limited_share=1.0, min_rate=0.01)
    running = await _server(tmp_path, CapacityConfig(boards=boards))
    stop_after.append(running)
    assert running.fleet is not None
    running.fleet.set_faults(faults_pb2.FaultConfig(board_health={"linkedin": LIMITED}, board_quota={"linkedin": 3}))
    await running.monitor.refresh()  # job_discovery reports 3 left; the search spends one
    jobs = _jobs_on("linkedin", 3)
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        plan = _search_then_submit(["indeed"], [jobs[0]], [jobs[1]], [jobs[2]])
        plan.workflow_steps[0].inputs.configuration["sources"] = ["linkedin", "indeed"]
        execution = await stub.ExecuteWorkflow(execute_plan(plan, user_id="u-limited"))
        updates = await watch_all(stub, execution.execution_id)
        health = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest())
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    ends = sorted(
        t.end_time.ToNanoseconds() / 1e9 for t in final.performance_metrics.step_timings if t.step_id != "search"
    )
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    assert all(gap >= 0.2 for gap in gaps) and ends[-1] - ends[0] >= 0.55, gaps  # 3 a second: 0.33 s apart
    # The search of linkedin took the bucket's one token; each submission then waited for one.
    assert running.capacity.counts.held_by == {"board linkedin (limited)": 3}
    assert len(await _applications(running, "u-limited")) == 3
    board = health.capacity["board:linkedin"]
    assert board.board_health == "limited" and board.board_quota in (2, 3)  # the search spent one
    assert board.rate == pytest.approx(board.board_quota)


async def test_a_board_whose_quota_is_spent_is_rate_limited(tmp_path: Path, stop_after: list[RunningServer]) -> None:
    boards = BoardLimitsConfig(min_rate=0.01)  # one call per 100 s once spent
    running = await _server(tmp_path, CapacityConfig(boards=boards))
    stop_after.append(running)
    assert running.fleet is not None
    running.fleet.set_faults(faults_pb2.FaultConfig(board_quota={"indeed": 0}))
    await running.monitor.refresh()
    searches = [
        step(
            name,
            agent="job_discovery",
            operation="SearchJobs",
            config={"user_id": "${user.user_id}", "sources": ["indeed"]},
            timeout=5.0,
        )
        for name in ("first", "second")
    ]
    for search in searches:
        search.error_handling.fallback_action = plan_pb2.FALLBACK_ACTION_SKIP
    plan = plan_pb2.OrchestrationPlan(workflow_type="spent", workflow_steps=searches)
    plan.execution_strategy.execution_mode = plan_pb2.EXECUTION_MODE_PARALLEL
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)  # type: ignore[no-untyped-call]
        execution = await stub.ExecuteWorkflow(execute_plan(plan))
        updates = await watch_all(stub, execution.execution_id)
        health = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest())
    errors = sorted(u.event.step_failed.error_type for u in updates if u.event.WhichOneof("kind") == "step_failed")
    # One search spends the bucket's token and meets the agent's own refusal; the other is not sent.
    assert errors == ["AGENT_CAPACITY", "RESOURCE_EXHAUSTED"], errors
    board = health.capacity["board:indeed"]
    assert (board.board_health, board.board_quota, board.rate) == ("active", 0, pytest.approx(0.01))


# ---- settings and the demo --------------------------------------------------------------------


def _cli(*args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--bulkhead", "nobody=1"), "error: --bulkhead nobody: unknown agent 'nobody'"),
        (("--rate-limit", "automation=fast"), "error: --rate-limit automation: expected RATE/s[:BURST]"),
        (("--bulkhead", "automation=0"), "error: bulkheads.automation: expected calls in flight from 1"),
    ],
)
def test_serve_refuses_a_bad_limit_at_start_naming_it(args: tuple[str, ...], message: str, tmp_path: Path) -> None:
    result = _cli("serve", "--listen", "127.0.0.1:0", "--store", f"sqlite:///{tmp_path}/b.db", *args)
    assert result.returncode == 2, result.stdout + result.stderr
    assert result.stderr.startswith(message), result.stderr


def test_serve_refuses_a_bad_limit_in_the_agents_yaml(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text("agents:\n  default: 127.0.0.1:1\nresilience:\n  rate_limits: {automation.Fly: 5/s}\n")
    result = _cli("serve", "--listen", "127.0.0.1:0", "--store", f"sqlite:///{tmp_path}/b.db", "--agents", str(path))
    assert result.returncode == 2, result.stdout + result.stderr
    assert "resilience.rate_limits.automation.Fly: agent 'automation' has no operation 'Fly'" in result.stderr


def test_the_demo_with_errors_and_a_limited_board_shows_the_quota_and_breaker_behaviour() -> None:
    result = _cli("demo", "--latency", "0", "--error-rate", "0.3", "--board-health", "linkedin=limited")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    out = result.stdout
    assert "job boards    linkedin limited" in out
    assert "limits        every agent 2 a second (burst 1)" in out
    summary = out[out.index("How failures were handled") :]
    assert "linkedin limited, 5000 requests left: left out of the job search by the plan" in summary
    assert "its automation calls held to 1 per 7.2 s" in summary
    assert "refused by an open breaker" in summary and "attempts retried" in summary
    held = next(line for line in summary.splitlines() if line.startswith("capacity "))
    assert int(held.split()[1]) >= 1, summary  # a quick retry waited for its token
    applications = out[out.index("Applications (") : out.index("How failures were handled")]
    assert " linkedin " not in applications  # nothing applied through the limited account
    assert "Traceback" not in result.stderr


def test_the_demo_refuses_an_unknown_board_or_state() -> None:
    result = _cli("demo", "--board-health", "myspace=limited")
    assert result.returncode == 2 and "--board-health: expected BOARD=VALUE with BOARD one of" in result.stderr
    result = _cli("demo", "--board-health", "linkedin=sleepy")
    assert result.returncode == 2 and "--board-health linkedin: expected active, limited or suspended" in result.stderr
