"""Free text a client sends with NUL (U+0000) in it: stored and answered on either store, never INTERNAL.

Keys with NUL are refused (server.api.limits.check_key); free text (a control's reason) is kept as
sent in the history, and the PostgreSQL audit index, whose text cannot hold NUL, stores it with a
replacement character instead of failing the append it belongs to.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

from server.app import RunningServer, start_server
from server.config import ServerConfig
from tests.integration.pg_support import fresh_database
from tests.integration.support import execute_plan, step, watch_all

E = execution_pb2


@pytest.fixture(params=["sqlite", "postgres"])
async def server(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[RunningServer]:
    async def start(url: str) -> RunningServer:
        return await start_server(
            ServerConfig(listen="127.0.0.1:0", store_url=url, agents="embedded", agent_faults=True)
        )

    if request.param == "sqlite":
        running = await start(f"sqlite:///{tmp_path}/baton.db")
        try:
            yield running
        finally:
            await running.stop(grace=0.5)
        return
    async with fresh_database() as url:
        running = await start(url)
        try:
            yield running
        finally:
            await running.stop(grace=0.5)


async def test_a_control_whose_reason_holds_nul_is_recorded_and_audited(server: RunningServer) -> None:
    from baton.v1 import faults_pb2

    slow = faults_pb2.FaultConfig(agent="analytics")
    slow.latency.FromMilliseconds(3000)
    assert server.fleet is not None
    server.fleet.set_faults(slow)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(execute_plan(plan_pb2.OrchestrationPlan(workflow_steps=[step("A")])))
        reason = "changed\x00my mind"
        paused = await stub.PauseExecution(
            orchestrator_pb2.PauseExecutionRequest(execution_id=execution.execution_id, reason=reason)
        )
        assert paused.status == E.EXECUTION_STATE_PAUSED
        cancelled = await stub.CancelExecution(
            orchestrator_pb2.CancelExecutionRequest(execution_id=execution.execution_id, reason=reason)
        )
        assert cancelled.status == E.EXECUTION_STATE_CANCELLED
        updates = await watch_all(stub, execution.execution_id)
        assert any(u.event.execution_paused.reason == reason for u in updates)  # the history keeps it as sent
        audit = await stub.ListAuditEvents(orchestrator_pb2.ListAuditEventsRequest(execution_id=execution.execution_id))
        assert {entry.reason for entry in audit.entries} >= {"changed\ufffdmy mind"}
