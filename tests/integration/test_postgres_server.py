"""The real server on PostgreSQL: the W plan and an application journey run to COMPLETED."""

from __future__ import annotations

from collections.abc import AsyncIterator

import grpc
import pytest
from baton.v1 import automation_pb2, automation_pb2_grpc, execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.store import PostgresExecutionStore
from tests.integration.pg_support import fresh_database
from tests.integration.support import execute_plan, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


@pytest.fixture
async def orchestrator() -> AsyncIterator[RunningServer]:
    async with fresh_database() as url:
        running = await start_server(ServerConfig(listen="127.0.0.1:0", store_url=url, agents="embedded"))
        try:
            yield running
        finally:
            await running.stop(grace=0.5)


@pytest.fixture
async def stub(orchestrator: RunningServer) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        yield orchestrator_pb2_grpc.OrchestratorStub(channel)


async def test_the_w_plan_runs_to_completion_on_postgres_and_is_watched_without_gaps(
    stub: Stub, orchestrator: RunningServer
) -> None:
    assert isinstance(orchestrator.store, PostgresExecutionStore)
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), request_id="w-on-pg"))
    updates = await watch_all(stub, execution.execution_id)

    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert [t.step_id for t in final.performance_metrics.step_timings] == ["A", "B", "C", "D", "E"]
    status = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id))
    assert status == final
    again = await stub.ExecuteWorkflow(execute_plan(w_plan(), request_id="w-on-pg"))
    assert again.execution_id == execution.execution_id and not again.created
    assert orchestrator.store.stats.commits > 0


async def test_an_application_journey_runs_to_completion_on_postgres(stub: Stub, orchestrator: RunningServer) -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="application_automation")
    request.user_context.user_id = "pg-user"
    execution = await stub.ExecuteWorkflow(request)
    updates = await watch_all(stub, execution.execution_id, deadline=60)

    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert orchestrator.fleet is not None
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:  # type: ignore[attr-defined]
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id="pg-user")
        )
    job_ids = [a.job_id for a in listed.applications]
    assert job_ids and len(job_ids) == len(set(job_ids))
    listing = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest(user_id="pg-user"))
    assert [e.execution_id for e in listing.executions] == [execution.execution_id]
