"""Following an execution over gRPC: submitting it, and watching it to its end through broken streams."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2
from rich.console import Console

from server.cli._common import DEFAULT_TARGET, EXIT_FAILED, EXIT_OK, MAX_RECONNECTS, RPC_TIMEOUT, CommandError
from server.cli._format import TERMINAL
from server.cli._view import ExecutionView, summary_line


async def submit(
    stub: orchestrator_pb2_grpc.OrchestratorStub, request: orchestrator_pb2.ExecuteWorkflowRequest
) -> orchestrator_pb2.Execution:
    """Submits an execution, retrying a few times while the server is unreachable.

    The request carries a request_id, so a retry after a lost answer returns the same execution.
    """
    for attempt in range(3):
        try:
            execution: orchestrator_pb2.Execution = await stub.ExecuteWorkflow(request, timeout=RPC_TIMEOUT)
            return execution
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == 2:
                raise
            await asyncio.sleep(0.3 * (attempt + 1))
    raise AssertionError("unreachable")


async def follow(
    stub: orchestrator_pb2_grpc.OrchestratorStub,
    execution_id: str,
    *,
    after_sequence: int = 0,
    on_update: Callable[[orchestrator_pb2.ExecutionUpdate], None],
    on_note: Callable[[str], None],
    max_reconnects: int = MAX_RECONNECTS,
    on_status: Callable[[execution_pb2.ExecutionStatus], None] | None = None,
) -> execution_pb2.ExecutionStatus:
    """Watches an execution to its end, resuming a broken stream after the last sequence seen.

    Args:
        stub: the orchestrator.
        execution_id: the execution to watch.
        after_sequence: the last sequence already seen (0 for the whole history).
        on_update: called with every update, in sequence order, each once.
        on_note: called with a line about reconnects.
        max_reconnects: consecutive failed attempts before giving up.
        on_status: called with the status a heartbeat carries (a wait for agent capacity began
            or ended, with no event).

    Returns:
        The terminal status.

    Raises:
        grpc.aio.AioRpcError: the server refused the watch, or stayed unreachable.
        CommandError: the stream kept ending before the execution did.
    """
    last = after_sequence
    failures = 0
    while True:
        try:
            call: AsyncIterator[orchestrator_pb2.ExecutionUpdate] = stub.WatchExecution(
                orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id, after_sequence=last)
            )
            ended: execution_pb2.ExecutionStatus | None = None
            async for update in call:
                failures = 0
                if update.heartbeat:
                    if update.HasField("status") and on_status is not None:
                        on_status(update.status)
                    continue  # the stream is alive; nothing was recorded
                last = update.sequence
                on_update(update)
                # Not the end yet: a rerun's history goes on past an earlier run's terminal
                # update; the server ends the stream after the last one.
                ended = update.status if update.status.status in TERMINAL else None
            if ended is not None:
                return ended
            # A clean end without a terminal update: either nothing is left after `last`, or
            # the server is draining. The status says which.
            status: execution_pb2.ExecutionStatus = await stub.GetExecution(
                orchestrator_pb2.GetExecutionRequest(execution_id=execution_id), timeout=RPC_TIMEOUT
            )
            if status.status in TERMINAL and status.last_sequence <= last:
                return status
            # Otherwise events after `last` remain (perhaps the end itself): fetch them, no gap.
            reason = "stream ended early"
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            reason = f"stream broken ({exc.code().name})"
            failures += 1
            if failures > max_reconnects:
                raise
        else:
            failures += 1
            if failures > max_reconnects:
                raise CommandError(f"the watch of {execution_id} kept ending before the execution did")
        on_note(f"{reason}; resuming after #{last}")
        await asyncio.sleep(min(0.1 * 2**failures, 2.0))


async def watch_with_view(
    stub: orchestrator_pb2_grpc.OrchestratorStub,
    console: Console,
    execution_id: str,
    *,
    after_sequence: int = 0,
    plan: plan_pb2.OrchestrationPlan | None = None,
    target: str = DEFAULT_TARGET,
    on_update: Callable[[orchestrator_pb2.ExecutionUpdate], None] | None = None,
) -> execution_pb2.ExecutionStatus:
    """Follows an execution with the live display (or plain lines off a terminal); returns its end.

    Args:
        stub: the orchestrator.
        console: where to show the progress.
        execution_id: the execution.
        after_sequence: the last sequence already seen (0 for the whole history).
        plan: the plan, to show its steps before the first update.
        target: the orchestrator's address, named in the commands that continue a waiting step.
        on_update: also called with every update (the demo gathers the events for its summary).
    """
    with ExecutionView(console, execution_id, live=console.is_terminal, plan=plan, target=target) as view:

        def show(update: orchestrator_pb2.ExecutionUpdate) -> None:
            view.update(update)
            if on_update is not None:
                on_update(update)

        status = await follow(
            stub, execution_id, after_sequence=after_sequence, on_update=show, on_note=view.note, on_status=view.restate
        )
        view.finish(status)
    return status


def outcome(console: Console, status: execution_pb2.ExecutionStatus) -> int:
    """Prints an execution's one-line outcome and returns the exit status: 0 only if it completed."""
    console.print(summary_line(status), markup=False)
    return EXIT_OK if status.status == execution_pb2.EXECUTION_STATE_COMPLETED else EXIT_FAILED
