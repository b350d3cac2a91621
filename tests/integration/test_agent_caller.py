"""The gRPC agent caller over real gRPC on loopback: the metadata an agent receives with each call."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from baton.v1 import analytics_pb2, analytics_pb2_grpc, faults_pb2

from agents import Fleet, FleetConfig, start_fleet
from agents_clients import ATTEMPT, IDEMPOTENCY_KEY, BreakerConfig, BreakingCaller, GrpcAgentCaller
from server.engine.ports import AgentCall, AgentCallError


class RecordingAnalytics(analytics_pb2_grpc.AnalyticsServicer):
    """An Analytics agent that only remembers the metadata of each RecordEvents call."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, str]] = []

    async def RecordEvents(
        self, request: analytics_pb2.RecordEventsRequest, context: grpc.aio.ServicerContext
    ) -> analytics_pb2.RecordEventsResponse:
        self.metadata.append({k: str(v) for k, v in context.invocation_metadata() or ()})
        return analytics_pb2.RecordEventsResponse(recorded=len(request.events))


@pytest.fixture
async def agent() -> AsyncIterator[tuple[RecordingAnalytics, str]]:
    servicer = RecordingAnalytics()
    server = grpc.aio.server()
    analytics_pb2_grpc.add_AnalyticsServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield servicer, f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=0)


def _call(attempt: int | None = None) -> AgentCall:
    base = AgentCall(
        agent="analytics",
        operation="RecordEvents",
        payload={"user_id": "u1", "events": [{"name": "x"}]},
        timeout=5.0,
        idempotency_key="exec-1/record",
        metadata=(("traceparent", "00-abc-def-01"),),
    )
    if attempt is None:
        return base
    return dataclasses.replace(base, attempt=attempt)


async def test_every_attempt_sends_the_same_key_and_its_own_attempt_number(
    agent: tuple[RecordingAnalytics, str],
) -> None:
    servicer, address = agent
    caller = GrpcAgentCaller({"analytics": [address]})
    try:
        for attempt in (1, 2, 3):
            reply = await caller.call(_call(attempt))
            assert reply.output.recorded == 1  # type: ignore[attr-defined]
    finally:
        await caller.close()
    assert [m[IDEMPOTENCY_KEY] for m in servicer.metadata] == ["exec-1/record"] * 3
    assert [m[ATTEMPT] for m in servicer.metadata] == ["1", "2", "3"]
    assert all(m["traceparent"] == "00-abc-def-01" for m in servicer.metadata)


async def test_a_call_that_names_no_attempt_is_sent_as_the_first(agent: tuple[RecordingAnalytics, str]) -> None:
    servicer, address = agent
    caller = GrpcAgentCaller({"analytics": [address]})
    try:
        await caller.call(_call())
    finally:
        await caller.close()
    assert servicer.metadata[0][ATTEMPT] == "1"
    assert (IDEMPOTENCY_KEY, ATTEMPT) == ("baton-idempotency-key", "baton-attempt")


# ---- the breaker counts the agent's unavailability, not a caller's bad input --------------------


def _record(payload: dict[str, object]) -> AgentCall:
    return AgentCall(agent="analytics", operation="RecordEvents", payload=payload, timeout=5.0, idempotency_key="k")


def _search(limit: object) -> AgentCall:
    return AgentCall(
        agent="job_discovery",
        operation="SearchJobs",
        payload={"user_id": "u1", "limit": limit},
        timeout=5.0,
        idempotency_key="k",
    )


@pytest.fixture
async def small_fleet() -> AsyncIterator[Fleet]:
    """The reference fleet accepting at most 64 KiB, behind an orchestrator-side limit of 4 MiB."""
    fleet = await start_fleet(FleetConfig(max_message_bytes=64 * 1024, faults=True))
    try:
        yield fleet
    finally:
        await fleet.stop(grace=0)


async def test_an_agents_refusal_of_an_oversized_request_neither_counts_nor_is_retried(small_fleet: Fleet) -> None:
    caller = BreakingCaller(GrpcAgentCaller.single(small_fleet.address), BreakerConfig(fail_max=2))
    big = {"user_id": "u1", "events": [{"name": "x" * (100 * 1024)}]}
    for _ in range(3):
        with pytest.raises(AgentCallError) as raised:
            await caller.call(_record(big))
        assert raised.value.error_type == "RESOURCE_EXHAUSTED" and not raised.value.retryable
        assert "larger than max" in raised.value.message
    assert caller.states()["analytics"] == "closed"
    reply = await caller.call(_record({"user_id": "u1", "events": [{"name": "x"}]}))
    assert reply.output.recorded == 1  # type: ignore[attr-defined]


async def test_a_request_past_the_message_limit_fails_unsent_without_touching_the_breaker(
    agent: tuple[RecordingAnalytics, str],
) -> None:
    servicer, address = agent
    caller = BreakingCaller(
        GrpcAgentCaller({"analytics": [address]}, max_message_bytes=64 * 1024), BreakerConfig(fail_max=1)
    )
    with pytest.raises(AgentCallError) as raised:
        await caller.call(_record({"user_id": "u1", "events": [{"name": "x" * (100 * 1024)}]}))
    assert raised.value.error_type == "RESOURCE_EXHAUSTED" and not raised.value.retryable
    assert raised.value.message.endswith("more than the 65536 an agent accepts (max_message_bytes); not sent")
    assert servicer.metadata == []  # nothing reached the agent
    assert "analytics" not in caller.states()  # nor its breaker


async def test_an_int32_out_of_range_fails_unsent_and_cannot_close_an_open_breaker(small_fleet: Fleet) -> None:
    inner = GrpcAgentCaller.single(small_fleet.address)
    caller = BreakingCaller(inner, BreakerConfig(fail_max=1, reset_timeout=30))
    small_fleet.set_faults(faults_pb2.FaultConfig(agent="job_discovery", error_rate=1.0))
    with pytest.raises(AgentCallError) as raised:
        await caller.call(_search(5))
    assert raised.value.error_type == "UNAVAILABLE"
    assert caller.states()["job_discovery"] == "open"
    caller.breaker("job_discovery")._state_storage.opened_at = datetime.now(UTC) - timedelta(seconds=31)
    served = (await inner.status("job_discovery")).requests_served

    for limit in (2**40, -(2**40)):
        with pytest.raises(AgentCallError) as raised:
            await caller.call(_search(limit))
        assert raised.value.error_type == "INVALID_ARGUMENT" and not raised.value.retryable
        assert raised.value.message.startswith("request of job_discovery.SearchJobs: ValueError")
    # Nothing was sent, and the breaker, due a trial, is still open: only the agent can close it.
    assert (await inner.status("job_discovery")).requests_served == served
    assert caller.breaker("job_discovery").current_state == "open"
    small_fleet.set_faults(faults_pb2.FaultConfig(agent="job_discovery"))
    await caller.call(_search(5))
    assert caller.states()["job_discovery"] == "closed"
