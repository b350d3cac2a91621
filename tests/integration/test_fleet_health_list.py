"""grpc.health.v1 List on the agents' fleet: every health name with its status, no traceback.

Found by the fuzzer (tests/fuzz): the fleet served grpcio's aio health servicer, which leaves
List unimplemented, so each call answered UNIMPLEMENTED and logged a NotImplementedError
traceback at ERROR (the orchestrator's port answered it).
"""

from __future__ import annotations

import logging

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agents import SERVICE_NAMES, FleetConfig, start_fleet
from server.app import RunningServer


async def test_the_fleets_health_list_names_every_agent_serving_and_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    fleet = await start_fleet(FleetConfig())
    try:
        async with grpc.aio.insecure_channel(fleet.address) as channel:
            stub = health_pb2_grpc.HealthStub(channel)
            for _ in range(3):
                listed = await stub.List(health_pb2.HealthListRequest(), timeout=10)
                statuses = {name: s.status for name, s in listed.statuses.items()}
                assert statuses == {name: health_pb2.HealthCheckResponse.SERVING for name in ("", *SERVICE_NAMES[:-1])}
    finally:
        await fleet.stop(0.5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


async def test_the_orchestrators_health_list_still_names_itself_serving(orchestrator: RunningServer) -> None:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        listed = await health_pb2_grpc.HealthStub(channel).List(health_pb2.HealthListRequest(), timeout=10)
    assert listed.statuses[""].status == health_pb2.HealthCheckResponse.SERVING
    assert listed.statuses["baton.v1.Orchestrator"].status == health_pb2.HealthCheckResponse.SERVING
