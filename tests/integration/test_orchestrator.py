"""The orchestrator over real gRPC on loopback, with real SQLite and the reference fleet."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

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
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.app import RunningServer
from tests.integration.support import TERMINAL, execute_plan, step, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


async def test_a_submitted_plan_is_watched_from_start_to_completion_without_gaps(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    assert execution.created and execution.execution_id
    updates = await watch_all(stub, execution.execution_id)
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    assert updates[0].event.WhichOneof("kind") == "execution_started"
    assert updates[-1].event.WhichOneof("kind") == "execution_completed"
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    assert final.progress.completion_percentage == 100
    assert [t.step_id for t in final.performance_metrics.step_timings] == ["A", "B", "C", "D", "E"]
    assert all(t.status == E.STEP_STATE_COMPLETED for t in final.performance_metrics.step_timings)
    assert final.resource_usage.total_network_io > 0
    status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id))
    assert status == final


async def test_the_application_journey_of_a_bare_user_id_applies_to_the_best_matches(
    stub: Stub, orchestrator: RunningServer
) -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application")
    request.user_context.user_id = "bare-user"
    execution = await stub.ExecuteWorkflow(request)
    updates = await watch_all(stub, execution.execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert orchestrator.fleet is not None
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:  # type: ignore[attr-defined]
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id="bare-user")
        )
    job_ids = [a.job_id for a in listed.applications]
    assert job_ids and len(job_ids) == len(set(job_ids))


async def test_a_watch_resumed_after_a_sequence_gets_exactly_the_rest(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    full = await watch_all(stub, execution.execution_id)
    tail = await watch_all(stub, execution.execution_id, after=4)
    assert [u.sequence for u in tail] == [u.sequence for u in full[4:]]
    assert [u.event for u in tail] == [u.event for u in full[4:]]
    assert await watch_all(stub, execution.execution_id, after=len(full)) == []


async def test_many_watchers_see_the_same_ordered_updates(stub: Stub, orchestrator: RunningServer) -> None:
    await _set_faults(orchestrator, agent="analytics", latency_ms=30)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    streams = await asyncio.gather(*(watch_all(stub, execution.execution_id) for _ in range(20)))
    sequences = [[u.sequence for u in s] for s in streams]
    assert all(seq == sequences[0] for seq in sequences)
    assert sequences[0] == list(range(1, len(sequences[0]) + 1))


async def test_a_watcher_that_falls_behind_catches_up_from_the_store_without_loss(
    stub: Stub, orchestrator: RunningServer
) -> None:
    orchestrator.hub.buffer = 1  # every burst overflows the live buffer
    await _set_faults(orchestrator, agent="analytics", latency_ms=20)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    request = orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id)
    seen = []
    async for update in stub.WatchExecution(request, timeout=30):
        seen.append(update.sequence)
        await asyncio.sleep(0.05)  # a slow reader
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) >= 12


async def test_the_same_request_id_returns_the_same_execution(stub: Stub) -> None:
    first = await stub.ExecuteWorkflow(execute_plan(w_plan(), request_id="req-42"))
    second = await stub.ExecuteWorkflow(execute_plan(w_plan(), request_id="req-42"))
    assert second.execution_id == first.execution_id
    assert first.created and not second.created
    assert second.plan.plan_id == first.plan.plan_id
    other_user = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="u2", request_id="req-42"))
    assert other_user.execution_id != first.execution_id


async def test_cancel_ends_a_running_execution_and_its_watch(stub: Stub, orchestrator: RunningServer) -> None:
    await _set_faults(orchestrator, agent="analytics", latency_ms=3000)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    watch = asyncio.create_task(watch_all(stub, execution.execution_id))
    await asyncio.sleep(0.3)
    status = await stub.CancelExecution(
        orchestrator_pb2.CancelExecutionRequest(execution_id=execution.execution_id, reason="changed my mind")
    )
    assert status.status == E.EXECUTION_STATE_CANCELLED
    assert "changed my mind" in status.failure_reason
    updates = await asyncio.wait_for(watch, 10)
    assert updates[-1].event.WhichOneof("kind") == "execution_cancelled"
    again = await stub.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id=execution.execution_id))
    assert again.status == E.EXECUTION_STATE_CANCELLED


async def test_list_executions_filters_by_user_and_pages(stub: Stub) -> None:
    ids = [(await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="lister"))).execution_id for _ in range(3)]
    await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="someone-else"))
    page = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest(user_id="lister", page_size=2))
    assert len(page.executions) == 2 and page.next_page_token
    rest = await stub.ListExecutions(
        orchestrator_pb2.ListExecutionsRequest(user_id="lister", page_size=2, page_token=page.next_page_token)
    )
    listed = [e.execution_id for e in [*page.executions, *rest.executions]]
    assert sorted(listed) == sorted(ids)
    assert not rest.next_page_token


async def test_system_health_reports_the_seven_agents(stub: Stub) -> None:
    health = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest())
    assert set(health.agent_statuses) == {
        "document_intelligence",
        "job_discovery",
        "matching_intelligence",
        "automation",
        "ui_ux",
        "analytics",
        "security",
    }
    assert health.overall_health == orchestrator_pb2.OVERALL_HEALTH_HEALTHY


async def test_standard_health_is_serving_and_reflection_lists_the_services(orchestrator: RunningServer) -> None:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        check = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service="baton.v1.Orchestrator")
        )
        assert check.status == health_pb2.HealthCheckResponse.SERVING
        reflect = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = reflect.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
        names = [s.name async for r in responses for s in r.list_services_response.service]
    assert "baton.v1.Orchestrator" in names and "grpc.health.v1.Health" in names


# ---- bad input ----------------------------------------------------------------------------------


async def _expect(call: object, code: grpc.StatusCode, *needles: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    assert err.value.code() == code, err.value.details()
    for needle in needles:
        assert needle in (err.value.details() or ""), err.value.details()


async def test_an_unknown_workflow_type_is_invalid_argument_naming_the_field(stub: Stub) -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="world_domination")
    request.user_context.user_id = "u1"
    await _expect(stub.ExecuteWorkflow(request), grpc.StatusCode.INVALID_ARGUMENT, "workflow_type", "world_domination")


async def test_a_missing_user_id_is_invalid_argument(stub: Stub) -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_discovery")
    await _expect(stub.ExecuteWorkflow(request), grpc.StatusCode.INVALID_ARGUMENT, "user_context.user_id")


async def test_an_unknown_execution_is_not_found(stub: Stub) -> None:
    missing = "no-such-execution"
    await _expect(
        stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=missing)),
        grpc.StatusCode.NOT_FOUND,
        missing,
    )
    await _expect(watch_all(stub, missing), grpc.StatusCode.NOT_FOUND, missing)
    await _expect(
        stub.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id=missing)),
        grpc.StatusCode.NOT_FOUND,
        missing,
    )


def _with(mutate: object) -> plan_pb2.OrchestrationPlan:
    plan = w_plan()
    mutate(plan)  # type: ignore[operator]
    return plan


def _set_timeout(plan: plan_pb2.OrchestrationPlan) -> None:
    plan.workflow_steps[1].timing.timeout.FromSeconds(7200)


def _set_retries(plan: plan_pb2.OrchestrationPlan) -> None:
    plan.workflow_steps[2].error_handling.retry_count = 99


@pytest.mark.parametrize(
    ("plan", "needles"),
    [
        (plan_pb2.OrchestrationPlan(workflow_steps=[step("A", "B"), step("B", "A")]), ["cycle"]),
        (_with(lambda p: setattr(p.workflow_steps[0], "agent", "oracle")), ["workflow_steps[0].agent", "oracle"]),
        (_with(lambda p: setattr(p.workflow_steps[0], "operation", "Divine")), ["workflow_steps[0].operation"]),
        (
            _with(lambda p: p.workflow_steps[4].dependencies.append("ghost")),
            ["workflow_steps[4].dependencies", "ghost"],
        ),
        (_with(_set_timeout), ["workflow_steps[1].timing.timeout"]),
        (_with(_set_retries), ["workflow_steps[2].error_handling.retry_count"]),
        (plan_pb2.OrchestrationPlan(), ["workflow_steps"]),
    ],
    ids=["cycle", "unknown-agent", "unknown-operation", "missing-dependency", "timeout-range", "retry-range", "empty"],
)
async def test_a_malformed_explicit_plan_is_invalid_argument_saying_what_is_wrong(
    stub: Stub, plan: plan_pb2.OrchestrationPlan, needles: list[str]
) -> None:
    await _expect(stub.ExecuteWorkflow(execute_plan(plan)), grpc.StatusCode.INVALID_ARGUMENT, *needles)


async def test_bad_list_and_watch_arguments_are_invalid_argument(stub: Stub) -> None:
    await _expect(
        stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest(page_size=5000)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_size",
    )
    await _expect(
        stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest(page_token="garbage!")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "page_token",
    )
    await _expect(
        stub.ExecuteWorkflow(execute_plan(w_plan(), request_id="x" * 200)),
        grpc.StatusCode.INVALID_ARGUMENT,
        "request_id",
    )
    await _expect(
        stub.ExecuteWorkflow(execute_plan(w_plan(), callback_url="ftp://nope")),
        grpc.StatusCode.INVALID_ARGUMENT,
        "callback_url",
    )


# ---- faults ------------------------------------------------------------------------------------


async def _set_faults(orchestrator: RunningServer, **config: object) -> None:
    assert orchestrator.fleet is not None
    latency_ms = float(config.pop("latency_ms", 0))  # type: ignore[arg-type]
    request = faults_pb2.FaultConfig(**config)  # type: ignore[arg-type]
    request.latency.FromNanoseconds(int(latency_ms * 1e6))
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:  # type: ignore[attr-defined]
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(request)


async def test_a_failing_agent_is_retried_and_the_execution_still_completes(
    stub: Stub, orchestrator: RunningServer
) -> None:
    await _set_faults(orchestrator, agent="analytics", fail_next=2)
    plan = w_plan()
    plan.execution_strategy.retry_policy.max_retries = 3
    plan.execution_strategy.retry_policy.initial_backoff.FromMilliseconds(10)
    execution = await stub.ExecuteWorkflow(execute_plan(plan))
    final = (await watch_all(stub, execution.execution_id))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    assert final.error_summary.total_errors == 2
    assert final.error_summary.recovered_errors == 2


async def test_an_attempt_past_its_deadline_fails_with_deadline_exceeded(
    stub: Stub, orchestrator: RunningServer
) -> None:
    await _set_faults(orchestrator, agent="analytics", latency_ms=2000)
    plan = plan_pb2.OrchestrationPlan(workflow_steps=[step("slow", timeout=0.2)])
    execution = await stub.ExecuteWorkflow(execute_plan(plan))
    final = (await watch_all(stub, execution.execution_id))[-1].status
    assert final.status == E.EXECUTION_STATE_FAILED
    assert final.error_summary.error_details[0].error_type == "DEADLINE_EXCEEDED"
    assert final.status in TERMINAL


async def test_agents_from_a_yaml_file_serve_a_whole_journey(tmp_path: Path) -> None:
    from agents import FleetConfig, start_fleet
    from server.app import start_server
    from server.config import ServerConfig

    fleets = [await start_fleet(FleetConfig()) for _ in range(2)]
    spec = tmp_path / "agents.yaml"
    spec.write_text(f"job_discovery: [{fleets[0].address}, {fleets[1].address}]\ndefault: {fleets[0].address}\n")
    running = await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/b.db", agents=str(spec))
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_search")
            request.user_context.user_id = "yaml-user"
            execution = await stub.ExecuteWorkflow(request)
            final = (await watch_all(stub, execution.execution_id))[-1].status
        assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    finally:
        await running.stop(0.5)
        for fleet in fleets:
            await fleet.stop(0.5)


async def test_an_unread_watch_does_not_hold_back_the_execution_or_other_watchers(
    stub: Stub, orchestrator: RunningServer
) -> None:
    orchestrator.hub.buffer = 2
    await _set_faults(orchestrator, agent="analytics", latency_ms=10)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()))
    request = orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id)
    stalled = stub.WatchExecution(request, timeout=30)
    first = await stalled.read()  # then this watcher reads nothing for a while
    brisk = await watch_all(stub, execution.execution_id)
    assert brisk[-1].status.status == E.EXECUTION_STATE_COMPLETED
    rest = [first.sequence]
    while (update := await stalled.read()) is not grpc.aio.EOF:
        rest.append(update.sequence)
    assert rest == [u.sequence for u in brisk]


async def test_system_health_answers_from_its_last_counts_while_the_store_is_slow(
    orchestrator: RunningServer, stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest(), timeout=5)
    assert first.active_workflows == 0
    store = orchestrator.monitor.store
    real = store.count_by_state

    async def slow() -> dict[int, int]:
        await asyncio.sleep(1.0)  # the store's readers are busy (a burst)
        counts = await real()
        return {**counts, E.EXECUTION_STATE_RUNNING: 7}

    monkeypatch.setattr(store, "count_by_state", slow)
    started = time.monotonic()
    during = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest(), timeout=5)
    # Not a second late: the last counts, while the count goes on behind.
    assert time.monotonic() - started < 0.5 and during.active_workflows == 0
    await asyncio.sleep(1.2)
    after = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest(), timeout=5)
    assert after.active_workflows == 7
