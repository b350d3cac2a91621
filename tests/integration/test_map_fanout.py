"""Map fan-out over real gRPC (issue 11, item 4): one SubmitApplication per chosen job, a bad
posting skipped while the others go on, a kill -9 mid-map resuming only the unfinished items,
and hostile for_each input answered clearly.

The reference Automation agent is spied on (its SubmitApplication records the idempotency key of
every call it serves) so the tests count the calls the agent really received.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
)

from agents import FleetConfig, start_fleet
from agents._automation import AutomationServicer
from server.app import RunningServer, start_server
from server.config import ServerConfig
from tests.conftest import serve_orchestrator
from tests.integration.support import execute_plan, step, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


@pytest.fixture
def submitted(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The idempotency key of every SubmitApplication the reference agent serves, in order."""
    keys: list[str] = []
    served = AutomationServicer.SubmitApplication

    async def spy(self: AutomationServicer, request: Any, context: grpc.aio.ServicerContext) -> Any:
        metadata = dict(context.invocation_metadata() or ())
        keys.append(str(metadata.get("baton-idempotency-key", "")))
        return await served(self, request, context)

    monkeypatch.setattr(AutomationServicer, "SubmitApplication", spy)
    return keys


@pytest.fixture
async def server(tmp_path: Path, submitted: list[str]) -> AsyncIterator[RunningServer]:
    """An orchestrator with the embedded (spied-on) fleet and fault injection."""
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded", agent_faults=True
        )
    )
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def client(server: RunningServer) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(server.address) as channel:
        yield orchestrator_pb2_grpc.OrchestratorStub(channel)


async def _applications(address: str, user_id: str) -> list[automation_pb2.Application]:
    async with grpc.aio.insecure_channel(address) as channel:
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id=user_id), timeout=10
        )
    return list(listed.applications)


async def _set_faults(address: str, config: faults_pb2.FaultConfig) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config, timeout=10)


def _map_plan(jobs: int | None = None, *, items: str = "${user.data.jobs}", concurrency: int = 0) -> Any:
    """One map step: a SubmitApplication per item of user.data.jobs, withdrawn per item."""
    submit = step("submit", agent="automation", operation="SubmitApplication")
    submit.inputs.configuration.update({"user_id": "${user.user_id}", "job_ids": ["${item}"]})
    submit.for_each = items
    submit.max_concurrency = concurrency
    submit.item_failure = plan_pb2.ITEM_FAILURE_SKIP_ITEM
    return plan_pb2.OrchestrationPlan(workflow_type="map", workflow_steps=[submit])


def _request(plan: plan_pb2.OrchestrationPlan, user_id: str, data: dict[str, Any]) -> Any:
    request = execute_plan(plan, user_id=user_id)
    request.user_context.data.update(data)
    return request


async def test_the_application_workflow_submits_one_application_per_chosen_job(
    client: Stub, server: RunningServer, submitted: list[str]
) -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
    request.user_context.user_id = "map-user"
    execution = await client.ExecuteWorkflow(request)
    updates = await watch_all(client, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    ex = execution.execution_id
    assert sorted(submitted) == [f"{ex}/submit_applications/{i}" for i in range(3)]
    assert server.fleet is not None
    applications = await _applications(server.fleet.address, "map-user")
    assert len(applications) == 3 and len({a.job_id for a in applications}) == 3
    timing = next(t for t in final.performance_metrics.step_timings if t.step_id == "submit_applications")
    assert (timing.items_done, timing.items_total) == (3, 3)
    # Downstream steps read the join as a list: the analytics event names every job applied to.
    recorded = final.results.primary_outputs["record_analytics"]
    assert recorded is not None
    output = final.results.intermediate_results["submit_applications"]
    assert [item["applications"][0]["job_id"] for item in output] == [a.job_id for a in applications]


async def test_one_failing_job_is_skipped_and_the_others_are_submitted(
    client: Stub, server: RunningServer, submitted: list[str]
) -> None:
    assert server.fleet is not None
    fault = faults_pb2.FaultConfig(
        agent="automation", operations=["SubmitApplication"], fail_next=1, error_code="INVALID_ARGUMENT"
    )
    await _set_faults(server.fleet.address, fault)
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
    request.user_context.user_id = "skip-user"
    execution = await client.ExecuteWorkflow(request)
    updates = await watch_all(client, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert len(submitted) == 3  # INVALID_ARGUMENT is not retried
    assert len(await _applications(server.fleet.address, "skip-user")) == 2
    timing = next(t for t in final.performance_metrics.step_timings if t.step_id == "submit_applications")
    assert (timing.items_done, timing.items_total, timing.items_skipped) == (3, 3, 1)
    assert final.degraded and any("skipped" in reason for reason in final.degraded_reasons)
    skipped = [d for d in final.error_summary.error_details if d.HasField("item")]
    assert [(d.error_type, d.recovery_action) for d in skipped] == [("INVALID_ARGUMENT", "skip_item")]
    # The skipped job's place in the output is null; the notification lists the two applications.
    output = list(final.results.intermediate_results["submit_applications"])
    assert output.count(None) == 1 and len(output) == 3


async def test_a_cancel_after_the_submissions_withdraws_each_application(
    client: Stub, server: RunningServer, submitted: list[str]
) -> None:
    assert server.fleet is not None
    # Notify is slow, so the run is cancelled after the applications were submitted.
    slow = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
    slow.latency.FromSeconds(5)
    await _set_faults(server.fleet.address, slow)
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
    request.user_context.user_id = "undo-user"
    execution = await client.ExecuteWorkflow(request)
    watch = client.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id))
    async for update in watch:
        if update.event.WhichOneof("kind") == "step_started" and update.event.step_started.step_id == "notify_user":
            break
    watch.cancel()
    await client.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id=execution.execution_id))
    updates = await watch_all(client, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_CANCELLED
    assert [(c.step_id, c.HasField("item"), c.state) for c in final.compensations] == [
        ("submit_applications", True, E.COMPENSATION_STATE_SUCCEEDED)
    ] * 3
    applications = await _applications(server.fleet.address, "undo-user")
    assert len(applications) == 3
    assert all(a.state == automation_pb2.APPLICATION_STATE_WITHDRAWN for a in applications)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"jobs": "job-0001"}, "gave str, not a list"),
        ({"jobs": {"job": 1}}, "gave dict, not a list"),
        ({}, "gave null, not a list"),
    ],
)
async def test_a_for_each_that_is_not_a_short_list_fails_the_step_clearly(
    client: Stub, submitted: list[str], data: dict[str, Any], words: str
) -> None:
    execution = await client.ExecuteWorkflow(_request(_map_plan(), "hostile-user", data))
    updates = await watch_all(client, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_FAILED
    assert "EXPRESSION_ERROR" in final.failure_reason and words in final.failure_reason
    assert submitted == []
    assert not any(u.event.WhichOneof("kind") == "step_map_started" for u in updates)


async def test_a_list_past_the_map_limit_fails_the_step_before_any_call(client: Stub, submitted: list[str]) -> None:
    # The request's own limit is 10,000 list items; an expression can still make more.
    plan = _map_plan(items="${user.data.jobs[*].[@, @, @][]}")
    execution = await client.ExecuteWorkflow(_request(plan, "hostile-user", {"jobs": [0] * 5000}))
    updates = await watch_all(client, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_FAILED
    assert "gave 15000 items; a map step runs at most 10000" in final.failure_reason
    assert submitted == []
    assert not any(u.event.WhichOneof("kind") == "step_map_started" for u in updates)


async def test_a_list_of_a_million_items_is_refused_at_the_door(client: Stub, submitted: list[str]) -> None:
    request = _request(_map_plan(), "huge-user", {"jobs": [0] * 1_000_000})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.ExecuteWorkflow(request, timeout=30)
    assert caught.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert "jobs" in (caught.value.details() or "") or "larger than max" in (caught.value.details() or "")
    assert submitted == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda s: setattr(s, "for_each", "user.data.jobs"), "workflow_steps[0].for_each"),
        (lambda s: setattr(s, "for_each", "${user.data.jobs[}"), "workflow_steps[0].for_each"),
        (lambda s: setattr(s, "max_concurrency", 1000), "workflow_steps[0].max_concurrency"),
        (lambda s: setattr(s, "item_failure", 9), "workflow_steps[0].item_failure"),
    ],
)
async def test_a_statically_invalid_map_step_is_invalid_argument_naming_the_field(
    client: Stub, change: Any, field: str
) -> None:
    plan = _map_plan()
    change(plan.workflow_steps[0])
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await client.ExecuteWorkflow(_request(plan, "invalid-user", {"jobs": ["a"]}))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (caught.value.details() or "").startswith(f"plan.{field}: ")


# ---- kill -9 mid-map ------------------------------------------------------------------------------


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


@pytest.mark.parametrize("threshold", ["16384", "1"])
async def test_a_restart_mid_map_calls_again_only_the_unfinished_items(
    tmp_path: Path, submitted: list[str], processes: list[Any], threshold: str
) -> None:
    # With --payload-threshold 1 every item's output is stored apart (issue 12.4): what was
    # recorded before the kill -9 is read back, references resolved, by the next process.
    # The agents live in this process (spied on), the orchestrator in a child that is killed.
    fleet = await start_fleet(FleetConfig(faults=True, ledger_path=str(tmp_path / "ledger.db")))
    try:
        slow = faults_pb2.FaultConfig(agent="automation", operations=["SubmitApplication"])
        slow.latency.FromMilliseconds(3000)
        fleet.set_faults(slow)
        store = tmp_path / "baton.db"
        proc, address = serve_orchestrator(processes, store, fleet.address, "--payload-threshold", threshold)
        jobs = ["job-0001", "job-0002", "job-0003", "job-0004"]
        async with grpc.aio.insecure_channel(address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            execution = await stub.ExecuteWorkflow(_request(_map_plan(concurrency=2), "kill-user", {"jobs": jobs}))
            ex = execution.execution_id
            # Wait until items 0 and 1 have answered and items 2 and 3 are in flight, then kill -9.
            seen: Counter[str] = Counter()
            watch = stub.WatchExecution(orchestrator_pb2.WatchExecutionRequest(execution_id=ex), timeout=30)
            async for update in watch:
                seen[update.event.WhichOneof("kind") or ""] += 1
                if seen["step_item_succeeded"] == 2 and seen["step_item_started"] == 4:
                    break
            watch.cancel()
        # Recorded as started, items 2 and 3 may still be on their way to the agent: kill once
        # the agent holds them (their answers take 3 s), so both were sent and neither answered.
        for _ in range(100):
            if len(submitted) == 4:
                break
            await asyncio.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
        assert sorted(submitted) == [f"{ex}/submit/{i}" for i in range(4)]
        _, address = serve_orchestrator(processes, store, fleet.address, "--payload-threshold", threshold)
        async with grpc.aio.insecure_channel(address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            updates = await watch_all(stub, ex)
        final = updates[-1].status
        assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
        calls = Counter(submitted)
        # Items 0 and 1 had answered: never called again. Items 2 and 3 had not: called again, same key.
        assert calls == {f"{ex}/submit/0": 1, f"{ex}/submit/1": 1, f"{ex}/submit/2": 2, f"{ex}/submit/3": 2}
        applications = await _applications(fleet.address, "kill-user")
        assert sorted(a.job_id for a in applications) == jobs  # each job applied to once
        output = final.results.primary_outputs["submit"]
        assert [item["applications"][0]["job_id"] for item in output] == jobs
        with contextlib.closing(sqlite3.connect(store)) as conn:
            (stored,) = conn.execute("SELECT count(*) FROM payloads").fetchone()
        assert stored == (4 if threshold == "1" else 0)
    finally:
        await fleet.stop()
        await asyncio.sleep(0)
