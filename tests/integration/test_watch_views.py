"""WatchExecution's views over real gRPC: how much each update carries (WatchExecutionRequest.view)."""

from __future__ import annotations

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from tests.integration.support import execute_plan, w_plan

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub


async def _ended(stub: Stub) -> str:
    execution = await stub.ExecuteWorkflow(execute_plan(w_plan()), timeout=10)
    async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=execution.execution_id), timeout=30):
        if update.status.status == E.EXECUTION_STATE_COMPLETED:
            break
    return str(execution.execution_id)


async def _watch(stub: Stub, execution_id: str, view: int, after: int = 0) -> list[O.ExecutionUpdate]:
    request = O.WatchExecutionRequest(execution_id=execution_id, view=view, after_sequence=after)  # type: ignore[arg-type]
    return [u async for u in stub.WatchExecution(request, timeout=30)]


async def test_the_full_view_carries_a_status_with_every_update_as_before(stub: Stub) -> None:
    execution_id = await _ended(stub)
    default = await _watch(stub, execution_id, O.WATCH_VIEW_UNSPECIFIED)
    full = await _watch(stub, execution_id, O.WATCH_VIEW_FULL)
    assert default == full
    assert all(u.HasField("status") for u in full)
    assert [u.sequence for u in full] == list(range(1, len(full) + 1))


async def test_the_events_view_carries_every_event_and_a_status_only_when_the_state_changes(stub: Stub) -> None:
    execution_id = await _ended(stub)
    full = await _watch(stub, execution_id, O.WATCH_VIEW_FULL)
    events = await _watch(stub, execution_id, O.WATCH_VIEW_EVENTS)
    assert [u.event for u in events] == [u.event for u in full]
    with_status = [u for u in events if u.HasField("status")]
    assert [u.status.status for u in with_status] == [
        E.EXECUTION_STATE_QUEUED,
        E.EXECUTION_STATE_RUNNING,
        E.EXECUTION_STATE_COMPLETED,
    ]
    # Each status sent is the one the full view sends with that event; the last has the results.
    by_sequence = {u.sequence: u.status for u in full}
    assert all(u.status == by_sequence[u.sequence] for u in with_status)
    assert with_status[-1].status.results.primary_outputs


async def test_the_state_changes_view_sends_only_the_updates_that_change_the_state_and_resumes(stub: Stub) -> None:
    execution_id = await _ended(stub)
    events = await _watch(stub, execution_id, O.WATCH_VIEW_EVENTS)
    states = await _watch(stub, execution_id, O.WATCH_VIEW_STATE_CHANGES)
    assert states == [u for u in events if u.HasField("status")]
    # A resumed stream's first update carries the status too (the client's view starts there).
    resumed = await _watch(stub, execution_id, O.WATCH_VIEW_STATE_CHANGES, after=states[1].sequence)
    assert resumed[0].sequence == states[1].sequence + 1
    assert resumed[0].status.status == E.EXECUTION_STATE_RUNNING
    assert resumed[1:] == states[2:]


async def test_an_unknown_view_is_invalid_argument_naming_it(stub: Stub) -> None:
    execution_id = await _ended(stub)
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _watch(stub, execution_id, 99)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "view" in (refused.value.details() or "")


async def test_the_watches_of_one_event_share_one_rendered_and_serialized_update(
    stub: Stub, monkeypatch: pytest.MonkeyPatch
) -> None:
    from server.api import shared_updates

    execution_id = await _ended(stub)
    rendered: list[int] = []
    real = shared_updates.render

    def counting(state: object, **kw: bool) -> object:
        rendered.append(1)
        return real(state, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(shared_updates, "render", counting)
    first = await _watch(stub, execution_id, O.WATCH_VIEW_FULL)
    once = len(rendered)
    second = await _watch(stub, execution_id, O.WATCH_VIEW_FULL)
    assert first == second and first[-1].status.status == E.EXECUTION_STATE_COMPLETED
    # The first watch rendered at most each status once; the second renders none: each of its
    # updates, the terminal one (with the results) included, is the first watch's bytes.
    assert once <= len(first) and len(rendered) == once
