"""Agent capacity in what clients read: steps waiting for it in a status, the limits in the health.

Why an overlay and not an event: a call may wait for a slot or a token many times a second across
thousands of executions; recording each wait would multiply the writes of exactly the moments
the system is busiest, and the wait means nothing after a restart (the call is issued again and
waits afresh, or not). So the waits live in memory (agents_clients.CapacityWaits, bounded by the
limits' waiters) and are laid over the folded status when it is read or watched:

1. A wait is shown as a WaitingStep of kind WAIT_KIND_CAPACITY, after the signal waits, only on
   a status whose step is still in flight on the attempt that waits (a compensation's wait, while
   the execution is not terminal), so a watch replaying old events never shows a current wait.
2. A watch is told at once when a wait starts or ends: the hub wakes it (ExecutionHub.nudge) and
   it sends a heartbeat carrying the status (orchestrator.proto, ExecutionUpdate.heartbeat).
3. Only the replica making the call sees its wait; another replica's GetExecution shows the step
   running, as it is.
"""

from __future__ import annotations

from collections.abc import Sequence

from baton.v1 import common_pb2, execution_pb2, orchestrator_pb2

from agents_clients import CapacityCaller, CapacityWait
from server.engine import ExecutionState
from server.engine.state import Phase

E = execution_pb2


def shown(state: ExecutionState, waits: Sequence[CapacityWait]) -> list[CapacityWait]:
    """The waits that belong in a status of `state` (rule 1), in plan order."""
    if state.terminal:
        return []
    order = {step_id: index for index, step_id in enumerate(state.plan.steps)}
    kept = []
    for wait in waits:
        run = state.steps.get(wait.origin.step_id)
        if run is None:
            continue
        if wait.origin.kind == "step" and (run.phase != Phase.IN_FLIGHT or run.attempts != wait.origin.attempt):
            continue
        kept.append(wait)
    return sorted(kept, key=lambda w: order.get(w.origin.step_id, 0))


def add_waits(status: execution_pb2.ExecutionStatus, waits: Sequence[CapacityWait]) -> None:
    """Adds the waits to a status as WAIT_KIND_CAPACITY waiting steps."""
    for wait in waits:
        step = status.waiting.add(step_id=wait.origin.step_id, kind=E.WAIT_KIND_CAPACITY, prompt=wait.prompt)
        step.since.FromDatetime(wait.since)
        step.timeout_at.FromDatetime(wait.deadline)
        step.data.update(
            {"agent": wait.agent, "operation": wait.operation, "limit": wait.limit, "call": wait.origin.kind}
        )


def capacity_health(caller: CapacityCaller) -> dict[str, orchestrator_pb2.CapacityState]:
    """Each limit's state now (SystemHealth.capacity): scopes, then paced or reported boards."""
    states: dict[str, orchestrator_pb2.CapacityState] = {}
    for scope, bulkhead in caller.bulkheads.items():
        state = states.setdefault(scope, orchestrator_pb2.CapacityState())
        state.in_flight, state.max_in_flight, state.waiting_for_slot = (
            bulkhead.in_use,
            bulkhead.limit,
            bulkhead.waiting,
        )
    for scope, bucket in caller.buckets.items():
        state = states.setdefault(scope, orchestrator_pb2.CapacityState())
        state.rate, state.tokens, state.waiting_for_token = bucket.rate, bucket.tokens(), bucket.waiting
    for board, known in caller.boards.boards.items():
        if known.bucket is None and known.health != common_pb2.ACCOUNT_HEALTH_SUSPENDED:
            continue  # not limited: nothing to show
        state = states.setdefault(f"board:{board}", orchestrator_pb2.CapacityState())
        state.board_health = known.word
        state.board_quota = known.remaining if known.remaining is not None else -1
        if known.bucket is not None:
            bucket = known.bucket
            state.rate, state.tokens, state.waiting_for_token = bucket.rate, bucket.tokens(), bucket.waiting
    return states
