"""Following an execution with the CLI's display, through the client API (server.client)."""

from __future__ import annotations

from collections.abc import Callable

from baton.v1 import execution_pb2, orchestrator_pb2, plan_pb2
from rich.console import Console

from server.cli._common import DEFAULT_TARGET, EXIT_FAILED, EXIT_OK
from server.cli._view import ExecutionView, summary_line
from server.client import BatonClient


async def follow(
    client: BatonClient,
    execution_id: str,
    *,
    after_sequence: int = 0,
    on_update: Callable[[orchestrator_pb2.ExecutionUpdate], None],
    on_note: Callable[[str], None],
    on_status: Callable[[execution_pb2.ExecutionStatus], None] | None = None,
) -> execution_pb2.ExecutionStatus:
    """Watches an execution to its end (client.watch: resumed after the last sequence seen).

    Args:
        client: the orchestrator's client.
        execution_id: the execution to watch.
        after_sequence: the last sequence already seen (0 for the whole history).
        on_update: called with every update, in sequence order, each once.
        on_note: called with a line about reconnects.
        on_status: called with the status a heartbeat carries (a wait for agent capacity began
            or ended, with no event).

    Returns:
        The terminal status.

    Raises:
        server.client.RpcError: the server refused the watch.
        server.client.WatchError: the server stayed unreachable, or kept ending the stream early.
    """
    watch = client.watch(execution_id, after_sequence=after_sequence, heartbeats=True, on_reconnect=on_note)
    async for update in watch:
        if not update.heartbeat:
            on_update(update)
        elif update.HasField("status") and on_status is not None:
            on_status(update.status)
    assert watch.final is not None  # the watch stops only at the end, or raises
    return watch.final


async def watch_with_view(
    client: BatonClient,
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
        client: the orchestrator's client.
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
            client,
            execution_id,
            after_sequence=after_sequence,
            on_update=show,
            on_note=view.note,
            on_status=view.restate,
        )
        view.finish(status)
    return status


def outcome(console: Console, status: execution_pb2.ExecutionStatus) -> int:
    """Prints an execution's one-line outcome and returns the exit status: 0 only if it completed."""
    console.print(summary_line(status), markup=False)
    return EXIT_OK if status.status == execution_pb2.EXECUTION_STATE_COMPLETED else EXIT_FAILED
