"""GetExecution reads only the tail of a history it has folded before (server/api/folded.py),
over real gRPC and SQLite, and answers exactly what a fold of the whole history gives."""

from __future__ import annotations

from typing import Any

import pytest
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from server.app import RunningServer
from server.engine import fold, render
from tests.integration.support import execute_plan, w_plan, watch_all

O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub


@pytest.fixture
def reads(orchestrator: RunningServer, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int]]:
    """Every read_events of the store, as (execution_id, after_sequence)."""
    seen: list[tuple[str, int]] = []
    store = orchestrator.store
    real = store.read_events

    async def spy(execution_id: str, after_sequence: int = 0, limit: int | None = None) -> Any:
        seen.append((execution_id, after_sequence))
        return await real(execution_id, after_sequence=after_sequence, limit=limit)

    monkeypatch.setattr(store, "read_events", spy)
    return seen


async def test_a_second_read_folds_only_the_tail_and_answers_as_a_whole_fold(
    orchestrator: RunningServer, stub: Stub, reads: list[tuple[str, int]]
) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()), timeout=10)
    execution_id = execution.execution_id
    first = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    await watch_all(stub, execution_id)
    reads.clear()
    second = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    third = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    # Each call after the first reads from where the kept state ends: no history read again.
    assert reads == [(execution_id, first.last_sequence), (execution_id, second.last_sequence)]
    assert second.last_sequence > first.last_sequence and third == second
    whole = fold(execution_id, await orchestrator.store.read_events(execution_id))
    assert second == render(whole)


async def test_deleted_executions_are_forgotten(orchestrator: RunningServer, stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="forget-me"), timeout=10)
    await watch_all(stub, execution.execution_id)
    await stub.GetExecution(O.GetExecutionRequest(execution_id=execution.execution_id))
    servicer = orchestrator.servicer
    assert servicer is not None
    kept = servicer.folded.kept
    await stub.DeleteUserData(O.DeleteUserDataRequest(user_id="forget-me"))
    assert servicer.folded.kept == kept - 1
