"""Breakers and retries that cooperate, over real gRPC with the reference fleet's fault injection
(issue 11.3): a flaky agent keeps its breaker closed, a dead one opens it and is spared, a step
that meets an open breaker waits for its probe and completes, retries are held to a budget."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from baton.v1 import execution_pb2, faults_pb2, orchestrator_pb2_grpc, plan_pb2

from agents import Fleet, FleetConfig, start_fleet
from agents_clients import BreakerConfig, BreakingCaller, GrpcAgentCaller, RetryBudgetConfig
from server.app import start_server
from server.config import ServerConfig
from server.engine.ports import AgentCall, AgentCallError
from tests.integration.support import execute_plan, step, watch_all

E = execution_pb2


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    fleet = await start_fleet(FleetConfig(faults=True))
    try:
        yield fleet
    finally:
        await fleet.stop(grace=0)


def _record(key: str = "ex/record", retry: bool = False) -> AgentCall:
    return AgentCall(
        agent="analytics",
        operation="RecordEvents",
        payload={"user_id": "u1", "events": [{"name": "x"}]},
        timeout=5.0,
        idempotency_key=key,
        retry=retry,
    )


async def _outcomes(caller: BreakingCaller, calls: list[AgentCall]) -> Counter[str]:
    seen: Counter[str] = Counter()
    for call in calls:
        try:
            await caller.call(call)
            seen["OK"] += 1
        except AgentCallError as exc:
            seen[exc.error_type] += 1
    return seen


async def test_a_thirty_percent_flaky_agent_keeps_its_breaker_closed(fleet: Fleet) -> None:
    fleet.set_faults(faults_pb2.FaultConfig(agent="analytics", error_rate=0.3, seed=5))
    inner = GrpcAgentCaller.single(fleet.address)
    caller = BreakingCaller(inner)  # the defaults
    try:
        seen = await _outcomes(caller, [_record(f"ex-{i}/record") for i in range(150)])
    finally:
        await inner.close()
    assert seen["CIRCUIT_OPEN"] == 0 and caller.states()["analytics"] == "closed"
    assert 25 <= seen["UNAVAILABLE"] <= 65 and seen["OK"] + seen["UNAVAILABLE"] == 150


async def test_a_dead_agent_opens_its_breaker_within_fail_max_calls_and_is_then_spared(fleet: Fleet) -> None:
    fleet.set_faults(faults_pb2.FaultConfig(agent="analytics", error_rate=1.0))
    inner = GrpcAgentCaller.single(fleet.address)
    caller = BreakingCaller(inner, BreakerConfig(reset_timeout=30))
    refusals: list[float | None] = []
    try:
        seen: Counter[str] = Counter()
        for i in range(60):
            try:
                await caller.call(_record(f"ex-{i}/record"))
            except AgentCallError as exc:
                seen[exc.error_type] += 1
                if exc.error_type == "CIRCUIT_OPEN":
                    refusals.append(exc.retry_after)
    finally:
        await inner.close()
    assert seen == {"UNAVAILABLE": 10, "CIRCUIT_OPEN": 50}  # fail_max 10, then nothing reaches it
    assert all(r is not None and 25 < r <= 30 for r in refusals)


async def test_retries_past_the_agents_budget_are_refused_unsent(fleet: Fleet) -> None:
    fleet.set_faults(faults_pb2.FaultConfig(agent="analytics", error_rate=1.0))
    budget = RetryBudgetConfig(ratio=0.5, min_retries_per_second=0.1, window=10)  # 1 + 0.5 per first call
    inner = GrpcAgentCaller.single(fleet.address)
    caller = BreakingCaller(inner, BreakerConfig(fail_max=0), budget=budget)
    try:
        firsts = await _outcomes(caller, [_record(f"ex-{i}/record") for i in range(4)])
        retries = await _outcomes(caller, [_record(f"ex-{i}/record", retry=True) for i in range(6)])
    finally:
        await inner.close()
    assert firsts == {"UNAVAILABLE": 4}
    assert retries == {"UNAVAILABLE": 3, "RETRY_BUDGET_EXHAUSTED": 3}  # 1 + 0.5 * 4 = 3 retries sent


async def test_a_step_that_meets_an_open_breaker_waits_for_its_probe_and_completes(tmp_path: Path) -> None:
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            agent_faults=True,
            breaker=BreakerConfig(fail_max=1, reset_timeout=1.0),
        )
    )
    try:
        assert running.fleet is not None
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
            plan = plan_pb2.OrchestrationPlan(workflow_type="w", workflow_steps=[step("A")])
            plan.workflow_steps[0].error_handling.retry_count = 0
            running.fleet.set_faults(faults_pb2.FaultConfig(agent="analytics", error_rate=1.0))
            first = await stub.ExecuteWorkflow(execute_plan(plan, user_id="opener"))
            opened = (await watch_all(stub, first.execution_id))[-1].status
            assert opened.status == E.EXECUTION_STATE_FAILED  # no retry: its failure opened the breaker
            running.fleet.set_faults(faults_pb2.FaultConfig(agent="analytics"))  # the agent is back
            second = await stub.ExecuteWorkflow(execute_plan(plan, user_id="waiter"))
            updates = await watch_all(stub, second.execution_id)
    finally:
        await running.stop(grace=0.5)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    failed = [u.event.step_attempt_failed for u in updates if u.event.WhichOneof("kind") == "step_attempt_failed"]
    assert [(f.error_type, f.circuit_wait) for f in failed] == [("CIRCUIT_OPEN", True)]
    waited = failed[0].retry_at.ToDatetime() - updates[0].event.time.ToDatetime()
    assert 0.5 < waited.total_seconds() < 1.5  # the breaker's probe time, not the plan's backoff
