"""Routing across three real replicas of an agent (issue 14.3), over gRPC on loopback: traffic
moves off the slow replica and the failing one, a failing replica is ejected and re-admitted
after its cool-off (for longer when it fails again), a hedged read cuts the tail while a write is
never hedged, and executions through a server whose agents have three replicas complete, with
the routing shown in GetSystemHealth and the metrics.

Each replica is a reference fleet (`agents.start_fleet`) in this process with fault injection;
what each replica actually served is read from its own GetStatus (requests_served), so the
counters of the caller are checked against the agents'."""

from __future__ import annotations

import argparse
import asyncio
import random
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
import yaml
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    common_pb2,
    execution_pb2,
    faults_pb2,
    matching_intelligence_pb2_grpc,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
    routing_pb2,
)

from agents import Fleet, FleetConfig, start_fleet
from agents_clients import BreakerConfig, BreakingCaller, GrpcAgentCaller, RoutingConfig
from server.app import start_server
from server.cli._resilience import routing_from
from server.config import ServerConfig, agents_resilience
from server.engine.ports import AgentCall, AgentCallError
from tests.integration.support import execute_plan, step, watch_all

pytestmark = pytest.mark.timeout(90)

MATCHING = "matching_intelligence"
AUTOMATION = "automation"


@pytest.fixture
async def replicas(tmp_path: Path) -> AsyncIterator[list[Fleet]]:
    """Three replicas of the fleet (each serving every agent), with fault injection."""
    fleets: list[Fleet] = []
    try:
        for i in range(3):
            fleets.append(await start_fleet(FleetConfig(faults=True, ledger_path=str(tmp_path / f"ledger-{i}.db"))))
        yield fleets
    finally:
        for fleet in fleets:
            await fleet.stop(grace=0)


def _latency(fleet: Fleet, agent: str, seconds: float, **more: Any) -> None:
    config = faults_pb2.FaultConfig(agent=agent, **more)
    config.latency.FromNanoseconds(round(seconds * 1e9))
    fleet.set_faults(config)


def _score(key: str) -> AgentCall:
    return AgentCall(
        agent=MATCHING,
        operation="ScoreMatches",
        payload={"user_id": "u1", "skills": ["python"], "jobs": [{"job_id": "j1", "title": "Engineer"}]},
        timeout=5.0,
        idempotency_key=key,
    )


def _submit(key: str, user: str) -> AgentCall:
    return AgentCall(
        agent=AUTOMATION,
        operation="SubmitApplication",
        payload={"user_id": user, "job_ids": ["job-0001"]},
        timeout=5.0,
        idempotency_key=key,
    )


async def _served(fleets: list[Fleet], agent: str) -> list[int]:
    """What each replica says it served of `agent`'s operations (its own GetStatus)."""
    stubs = {
        MATCHING: matching_intelligence_pb2_grpc.MatchingIntelligenceStub,
        AUTOMATION: automation_pb2_grpc.AutomationStub,
    }
    request = common_pb2.GetStatusRequest()
    served = []
    for fleet in fleets:
        async with grpc.aio.insecure_channel(fleet.address) as channel:
            stub = stubs[agent](channel)  # type: ignore[no-untyped-call]
            status: common_pb2.AgentStatus = await stub.GetStatus(request, timeout=5)
            served.append(status.requests_served)
    return served


def _caller(fleets: list[Fleet], agent: str, seed: int = 1, **routing: Any) -> GrpcAgentCaller:
    return GrpcAgentCaller(
        {agent: [f.address for f in fleets]}, routing=RoutingConfig(**routing), rng=random.Random(seed)
    )


def _requests(caller: GrpcAgentCaller, agent: str) -> list[int]:
    return [e.requests for e in caller.router(agent).endpoints]


@pytest.mark.parametrize("fault", ["slow", "failing"])
async def test_traffic_moves_off_a_slow_or_failing_replica(replicas: list[Fleet], fault: str) -> None:
    if fault == "slow":
        _latency(replicas[1], MATCHING, 0.15)
    else:
        _latency(replicas[1], MATCHING, 0.0, error_rate=0.5, seed=3)  # fails half its calls, at once
    # No ejection here (the share is 0): what moves the traffic is the score alone.
    caller = _caller(replicas, MATCHING, hedging=False, max_ejection_share=0.0)
    failures = 0
    try:
        for batch in range(30):
            outcomes = await asyncio.gather(
                *(caller.call(_score(f"ex-{batch}-{i}/score")) for i in range(3)), return_exceptions=True
            )
            failures += sum(isinstance(o, AgentCallError) for o in outcomes)
        counts = _requests(caller, MATCHING)
        served = await _served(replicas, MATCHING)
    finally:
        await caller.close()
    assert served == counts  # the caller's counters are what the replicas saw
    assert sum(counts) == 90
    # A fair share would be 30; calls in flight on the others (three at a time) raise their
    # score, so that the bad one is still chosen now and then (and, failing, learnt about).
    assert counts[1] <= (12 if fault == "slow" else 20), counts
    assert counts[0] >= 30 and counts[2] >= 30, counts
    errors = [e.errors for e in caller.router(MATCHING).endpoints]
    assert errors == [0, failures, 0] and (failures > 0) == (fault == "failing")
    assert [e.state for e in caller.routes()[MATCHING]] == ["healthy"] * 3


async def test_a_failing_replica_is_ejected_readmitted_after_its_cool_off_and_ejected_longer_on_relapse(
    replicas: list[Fleet],
) -> None:
    bad = replicas[1]
    bad.set_faults(faults_pb2.FaultConfig(agent=MATCHING, error_rate=1.0))
    for good in (replicas[0], replicas[2]):
        _latency(good, MATCHING, 0.05)  # the failing one answers fastest: it attracts the traffic
    # Errors do not raise the score here (error_weight 0), so only ejection keeps it out.
    inner = _caller(replicas, MATCHING, hedging=False, consecutive_failures=3, base_ejection=2.0, error_weight=0)
    caller = BreakingCaller(inner, BreakerConfig())  # the agent's breaker (fail_max 10), above the routing
    router = inner.router(MATCHING)
    endpoint = router.endpoints[1]

    async def calls(n: int, prefix: str) -> int:
        failed = 0
        for i in range(n):
            try:
                await caller.call(_score(f"{prefix}-{i}/score"))
            except AgentCallError as exc:
                assert exc.error_type == "UNAVAILABLE"
                failed += 1
        return failed

    try:
        failed = await calls(14, "a")  # well within the 2 s cool-off
        assert endpoint.state == "ejected" and endpoint.ejections == 1
        assert failed == endpoint.errors == 3  # then no call went there
        assert caller.states()[MATCHING] == "closed"  # the agent as a whole is fine
        first_cool_off = router.snapshot()[1].ejected_for
        assert 1.0 < first_cool_off <= 2.0
        await asyncio.sleep(first_cool_off + 0.05)
        # Back on probation, still failing: its first call fails and ejects it again, for 4 s.
        for i in range(30):
            await calls(1, f"b{i}")
            if endpoint.ejections == 2:
                break
        assert endpoint.ejections == 2 and endpoint.state == "ejected"
        assert 3.5 < router.snapshot()[1].ejected_for <= 4.0
        bad.set_faults(faults_pb2.FaultConfig(agent=MATCHING))  # it recovers
        await asyncio.sleep(router.snapshot()[1].ejected_for + 0.05)
        before = endpoint.requests
        assert await calls(30, "c") == 0
        assert endpoint.requests - before >= 3 and endpoint.state == "healthy"
        served = await _served(replicas, MATCHING)
    finally:
        await inner.close()
    assert served == _requests(inner, MATCHING)


async def _warm_up(caller: GrpcAgentCaller, replicas: list[Fleet], agent: str, make: Any, n: int) -> int:
    """`n` calls with the first replica the fastest, so that the chooser favours it; returns the
    index of the favourite (the lowest score: usually the first, unless its first call, which set
    up the connection, was slower than the others' latency)."""
    for fleet in replicas[1:]:
        _latency(fleet, agent, 0.05)
    for i in range(n):
        await caller.call(make(i))
    for fleet in replicas[1:]:
        _latency(fleet, agent, 0.0)
    router = caller.router(agent)
    scores = [router.score(e) for e in router.endpoints]
    return scores.index(min(scores))


async def _timed(caller: GrpcAgentCaller, call: AgentCall) -> float:
    started = time.perf_counter()
    await caller.call(call)
    return time.perf_counter() - started


async def test_a_hedged_read_cuts_the_tail_and_the_slow_attempt_is_cancelled(replicas: list[Fleet]) -> None:
    # No hedge before 80 answers: the warm-up saves the budget up (8 hedges) for what follows.
    hedged = _caller(replicas, MATCHING, hedge_floor=0.02, hedge_budget=0.1, hedge_burst=10, hedge_min_samples=80)
    plain = _caller(replicas, MATCHING, hedging=False)
    try:
        slow = await _warm_up(hedged, replicas, MATCHING, lambda i: _score(f"w{i}/score"), 80)
        _latency(replicas[slow], MATCHING, 0.6)  # the favourite turns slow
        slow_before = hedged.router(MATCHING).endpoints[slow].requests
        durations = [await _timed(hedged, _score(f"h{i}/score")) for i in range(8)]
        # A cancelled hedge loser ends on the replica too: nothing is left running there.
        await asyncio.sleep(0.1)
        left_running = replicas[slow].in_flight(MATCHING)
        _latency(replicas[slow], MATCHING, 0.0)
        favourite = await _warm_up(plain, replicas, MATCHING, lambda i: _score(f"p{i}/score"), 30)
        _latency(replicas[favourite], MATCHING, 0.6)
        control = [await _timed(plain, _score(f"c{i}/score")) for i in range(8)]
    finally:
        await hedged.close()
        await plain.close()
    hedging = hedged.hedging(MATCHING)
    assert hedged.router(MATCHING).endpoints[slow].requests > slow_before  # the slow one was tried
    assert hedging.sent >= 1 and hedging.won >= 1
    assert max(durations) < 0.3, durations  # never the 0.6 s of the slow replica
    assert max(control) >= 0.6, control  # without hedging, its call waits it out
    assert left_running == 0
    assert hedging.sent <= 0.1 * (80 + 8)  # the budget: at most 10 % extra calls
    assert sum(e.hedges for e in hedged.router(MATCHING).endpoints) == hedging.sent


async def test_a_write_is_never_hedged_each_key_reaches_one_replica_once(replicas: list[Fleet]) -> None:
    caller = _caller(replicas, AUTOMATION, hedge_floor=0.02, hedge_min_samples=5)
    try:
        favourite = await _warm_up(caller, replicas, AUTOMATION, lambda i: _submit(f"w{i}/submit", f"warm-{i}"), 30)
        _latency(replicas[favourite], AUTOMATION, 0.4)
        durations = [await _timed(caller, _submit(f"s{i}/submit", f"user-{i}")) for i in range(8)]
        served = await _served(replicas, AUTOMATION)
        applications = []
        for i in range(8):
            total = 0
            for fleet in replicas:
                async with grpc.aio.insecure_channel(fleet.address) as channel:
                    stub = automation_pb2_grpc.AutomationStub(channel)  # type: ignore[no-untyped-call]
                    listed = await stub.ListApplications(
                        automation_pb2.ListApplicationsRequest(user_id=f"user-{i}"), timeout=5
                    )
                    total += len(listed.applications)
            applications.append(total)
    finally:
        await caller.close()
    assert max(durations) >= 0.4, durations  # the slow replica got a write, which waited it out
    assert sum(served) == 38 == sum(_requests(caller, AUTOMATION))  # one call per key, no second attempt
    assert caller.hedging(AUTOMATION).sent == 0 and caller.hedging(AUTOMATION).refused == 0
    assert applications == [1] * 8


async def test_executions_complete_across_replicas_and_the_routes_are_visible(
    replicas: list[Fleet], tmp_path: Path
) -> None:
    _latency(replicas[1], "analytics", 0.2)
    _latency(replicas[2], "analytics", 0.0, error_rate=1.0)
    spec = tmp_path / "agents.yaml"
    spec.write_text(
        yaml.safe_dump(
            {
                "default": [f.address for f in replicas],
                "resilience": {"routing": {"consecutive_failures": 2, "base_ejection": 30, "error_weight": 0}},
            }
        )
    )
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents=str(spec),
            metrics="127.0.0.1:0",
            # As `baton serve --agents agents.yaml` reads it from the file (error_weight 0: only
            # ejection keeps the failing replica out, so that it is surely ejected).
            routing=routing_from(argparse.Namespace(), agents_resilience(str(spec))),
        )
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
            plan = plan_pb2.OrchestrationPlan(
                workflow_type="w", workflow_steps=[step("A"), step("B", "A"), step("C", "A"), step("D", "B", "C")]
            )
            policy = plan.execution_strategy.retry_policy
            policy.max_retries = 3
            policy.initial_backoff.FromNanoseconds(20_000_000)
            executions = [await stub.ExecuteWorkflow(execute_plan(plan, user_id=f"u{i}")) for i in range(8)]
            finals = [(await watch_all(stub, e.execution_id))[-1].status for e in executions]
            health = await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest(), timeout=10)
        assert running.metrics is not None
        async with aiohttp.ClientSession() as session, session.get(running.metrics.url) as response:
            exposition = await response.text()
    finally:
        await running.stop(grace=0.5)
    assert [f.status for f in finals] == [execution_pb2.EXECUTION_STATE_COMPLETED] * 8
    routes = health.routes["analytics"].endpoints
    assert [r.address for r in routes] == [f.address for f in replicas]
    fast, slow, failing = routes
    assert failing.state == routing_pb2.ENDPOINT_STATE_EJECTED and failing.ejections == 1
    # Two failures in a row eject it (more may have been in flight then: steps run in parallel).
    assert failing.errors >= 2 and failing.ejected_for.seconds > 20
    assert fast.requests > slow.requests and fast.state == routing_pb2.ENDPOINT_STATE_HEALTHY
    assert fast.latency_ewma.ToNanoseconds() < slow.latency_ewma.ToNanoseconds()
    assert sum(r.requests - r.errors for r in routes) >= 8 * 4  # every step's call answered somewhere
    address = replicas[2].address
    assert f'baton_agent_endpoint_ejections_total{{agent="analytics",endpoint="{address}"}} 1.0' in exposition
    assert f'baton_agent_endpoint_state{{agent="analytics",endpoint="{address}"}} 2.0' in exposition
    assert 'baton_agent_hedges_total{agent="matching_intelligence",outcome="sent"}' in exposition


async def test_a_dns_name_routes_over_every_address_and_follows_its_changes(replicas: list[Fleet]) -> None:
    records = {"agents.test": [f.address for f in replicas]}
    asked: list[tuple[str, int]] = []

    async def resolver(name: str, port: int) -> list[str]:
        asked.append((name, port))
        return list(records[name])  # a KeyError is a failed resolution

    caller = GrpcAgentCaller(
        {MATCHING: ["dns:agents.test:50061"]}, routing=RoutingConfig(hedging=False), resolver=resolver
    )
    try:
        assert [e.address for e in caller.router(MATCHING).endpoints] == ["agents.test:50061"]  # not yet resolved
        await caller.refresh_dns()
        assert asked == [("agents.test", 50061)]
        assert [e.address for e in caller.router(MATCHING).endpoints] == [f.address for f in replicas]
        await asyncio.gather(*(caller.call(_score(f"a{i}/score")) for i in range(30)))
        kept = caller.router(MATCHING).endpoints[0]
        requests_before = kept.requests
        # The second replica leaves the name; the first keeps its counters.
        records["agents.test"] = [replicas[0].address, replicas[2].address]
        await caller.refresh_dns()
        assert [e.address for e in caller.router(MATCHING).endpoints] == [replicas[0].address, replicas[2].address]
        assert caller.router(MATCHING).endpoints[0] is kept and kept.requests == requests_before
        before = await _served(replicas, MATCHING)
        await asyncio.gather(*(caller.call(_score(f"b{i}/score")) for i in range(20)))
        after = await _served(replicas, MATCHING)
        assert after[1] == before[1] and sum(after) - sum(before) == 20
        # A failed resolution keeps what was known.
        del records["agents.test"]
        await caller.refresh_dns()
        assert len(caller.router(MATCHING).endpoints) == 2
    finally:
        await caller.close()


async def test_a_due_resolution_runs_in_the_background_of_a_call(replicas: list[Fleet]) -> None:
    now = [0.0]
    asked = 0

    async def resolver(name: str, port: int) -> list[str]:
        nonlocal asked
        asked += 1
        return [replicas[asked % 3].address]

    caller = GrpcAgentCaller(
        {MATCHING: ["dns:agents.test:1"]},
        routing=RoutingConfig(hedging=False, dns_refresh=10),
        resolver=resolver,
        clock=lambda: now[0],
    )
    try:
        await caller.refresh_dns()
        await caller.call(_score("a/score"))
        assert asked == 1  # not due yet
        now[0] = 10.0
        await caller.call(_score("b/score"))  # goes to the address known; the resolution starts
        await asyncio.sleep(0.05)
        assert asked == 2 and [e.address for e in caller.router(MATCHING).endpoints] == [replicas[2].address]
        await caller.call(_score("c/score"))
        assert asked == 2
    finally:
        await caller.close()
