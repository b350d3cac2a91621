"""The gRPC agent caller over real gRPC on loopback: the metadata an agent receives with each call."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import grpc
import pytest
from baton.v1 import analytics_pb2, analytics_pb2_grpc

from agents_clients import ATTEMPT, IDEMPOTENCY_KEY, GrpcAgentCaller
from server.engine.ports import AgentCall


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
