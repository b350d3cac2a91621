"""Large outputs stored once, end to end (issue 12.4): a map step over real gRPC, on SQLite and PostgreSQL.

Each item searches jobs (SearchJobs, limit 100: 20-40 KB per output, above the default 16 KiB
threshold); items with the same keyword get the same output. The answers (GetExecution,
GetStepOutput, a watch from the start) must be those of a server that keeps every output in its
event (--payload-threshold 0), while the store keeps each distinct output once.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg
import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

from server.app import start_server
from server.config import ServerConfig
from tests.integration.pg_support import fresh_database
from tests.integration.support import execute_plan, step, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub
WORDS = ["python", "python", "data", "python", "data", "engineer"]


def search_map() -> plan_pb2.OrchestrationPlan:
    search = step("search", agent="job_discovery", operation="SearchJobs")
    search.inputs.configuration.update({"user_id": "${user.user_id}", "limit": 100, "keywords": ["${item}"]})
    search.for_each = "${user.data.words}"
    return plan_pb2.OrchestrationPlan(workflow_type="search_map", workflow_steps=[search])


@asynccontextmanager
async def serving(store_url: str, threshold: int) -> AsyncIterator[Stub]:
    running = await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=store_url, agents="embedded", payload_threshold=threshold)
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            yield orchestrator_pb2_grpc.OrchestratorStub(channel)
    finally:
        await running.stop(grace=0.5)


async def run(stub: Stub) -> tuple[O.GetStepOutputResponse, execution_pb2.ExecutionStatus, list[str]]:
    """Runs the map; returns its output, its final status and the kinds of its watched events."""
    request = execute_plan(search_map())
    request.user_context.data.update({"words": WORDS})
    execution = await stub.ExecuteWorkflow(request)
    updates = await watch_all(stub, execution.execution_id, deadline=60)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
    output = await stub.GetStepOutput(O.GetStepOutputRequest(execution_id=execution.execution_id, step_id="search"))
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution.execution_id))
    replayed = await watch_all(stub, execution.execution_id)
    assert [u.event for u in replayed] == [u.event for u in updates]
    return output, status, [u.event.WhichOneof("kind") for u in replayed]


@pytest.fixture(params=["sqlite", "postgres"])
async def store_urls(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[tuple[str, str]]:
    """(the store with the default threshold, a store keeping outputs inline)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/stored-once.db", f"sqlite:///{tmp_path}/inline.db"
        return
    async with fresh_database() as once, fresh_database() as inline:
        yield once, inline


async def query(url: str, sql: str) -> list[tuple[object, ...]]:
    if url.startswith("sqlite:"):
        import sqlite3

        conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        try:
            return [tuple(row) for row in conn.execute(sql).fetchall()]
        finally:
            conn.close()
    connection = await asyncpg.connect(url)
    try:
        return [tuple(row) for row in await connection.fetch(sql)]
    finally:
        await connection.close()


@pytest.mark.timeout(180)
async def test_a_map_of_large_outputs_answers_as_if_inline_and_stores_each_distinct_output_once(
    store_urls: tuple[str, str],
) -> None:
    once_url, inline_url = store_urls
    async with serving(inline_url, 0) as stub:
        expected, expected_status, expected_kinds = await run(stub)
    async with serving(once_url, 16 * 1024) as stub:
        output, status, kinds = await run(stub)
        again, _, _ = await run(stub)

    items = output.output.fields["value"].list_value.values
    assert len(items) == len(WORDS)
    assert all(len(item.struct_value.fields["jobs"].list_value.values) > 40 for item in items)
    assert items[0] == items[1] == items[3] and items[2] == items[4] and items[0] != items[2]
    assert output.output == expected.output == again.output
    assert status.results.primary_outputs == expected_status.results.primary_outputs
    assert status.status == E.EXECUTION_STATE_COMPLETED
    assert kinds == expected_kinds
    # Three distinct outputs, each above the threshold, stored once for both executions' six items.
    stored = await query(once_url, "SELECT size_bytes, refs FROM payloads ORDER BY refs")
    assert [int(str(refs)) for _, refs in stored] == [2, 4, 6]
    assert all(16 * 1024 < int(str(size)) < 64 * 1024 for size, _ in stored)
    assert await query(inline_url, "SELECT count(*) FROM payloads") == [(0,)]
    (once_bytes,) = await query(once_url, "SELECT SUM(length(payload)) FROM events")
    (inline_bytes,) = await query(inline_url, "SELECT SUM(length(payload)) FROM events")
    # The inline store holds every output in its events; the other about 300 bytes per item.
    assert int(str(inline_bytes[0])) > len(WORDS) * 16 * 1024
    assert int(str(once_bytes[0])) < 2 * len(WORDS) * 1024 + 4 * 1024
