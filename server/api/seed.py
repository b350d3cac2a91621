"""The SeedApi servicer: the seed's REST shapes over the Orchestrator servicer, which does the work.

Every RPC translates its request into the Orchestrator's (server.api.seed_words), calls the
OrchestratorServicer's own RPC with the same context (so validation, the error table, quarantine
and message size limits are the same code), and translates the answer into the seed's shape.

Status in the seed's shape (`seed_status`):

- `status` is the execution state's word (`running`); `progress` is the done steps' whole
  percentage; `current_step` the name of the first step in flight, else of the first waiting
  for a signal, else empty; `quality_score` the overall quality score (to two decimals); `sequence` the last
  event it includes.
- A watch's heartbeat (nothing happened for a while) is the latest status again, flagged
  `heartbeat`, so every line of the stream is a whole status.
- `estimated_completion` is, while the execution runs, the time of its latest event plus the
  estimated time remaining then (but never before now: an overdue estimate says "any moment");
  once it has ended, its end time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime

import grpc
from baton.v1 import (
    common_pb2,
    execution_pb2,
    orchestrator_pb2,
    seed_api_pb2,
    seed_api_pb2_grpc,
)

from server.api.errors import streaming, unary
from server.api.seed_words import enum_word, execute_request
from server.api.servicer import OrchestratorServicer
from server.api.shared_updates import SerializedUpdate

_TERMINAL = frozenset(
    {
        execution_pb2.EXECUTION_STATE_COMPLETED,
        execution_pb2.EXECUTION_STATE_FAILED,
        execution_pb2.EXECUTION_STATE_CANCELLED,
    }
)
_INT32_MAX = 2**31 - 1


def _int32(value: int) -> int:
    # The seed's counts are JSON numbers, and int64 prints as a string in proto JSON: int32, clamped.
    return max(0, min(value, _INT32_MAX))


def _state_word(state: int) -> str:
    return enum_word(execution_pb2.ExecutionState.DESCRIPTOR, state)


def current_step(status: execution_pb2.ExecutionStatus) -> str:
    """The name of the first step in flight, else of the first one waiting; empty when none is."""
    names = {t.step_id: t.step_name or t.step_id for t in status.performance_metrics.step_timings}
    for step_id in (*status.progress.running_steps, *(w.step_id for w in status.waiting)):
        return names.get(step_id, step_id)
    return ""


def seed_status(status: execution_pb2.ExecutionStatus, now: datetime) -> seed_api_pb2.SeedStatus:
    """An ExecutionStatus in the seed's shape (see the module docstring)."""
    seed = seed_api_pb2.SeedStatus(
        execution_id=status.execution_id,
        status=_state_word(status.status),
        progress=int(status.progress.completion_percentage),
        current_step=current_step(status),
        quality_score=round(status.quality_metrics.overall_quality_score, 2),
        sequence=status.last_sequence,
        failure_reason=status.failure_reason,
    )
    if status.status in _TERMINAL and status.performance_metrics.HasField("end_time"):
        seed.estimated_completion.CopyFrom(status.performance_metrics.end_time)
    else:
        metrics = status.performance_metrics
        since = metrics.current_time.ToDatetime(UTC) if metrics.HasField("current_time") else now
        estimate = since + status.progress.estimated_time_remaining.ToTimedelta()
        seed.estimated_completion.FromDatetime(max(estimate, now))
    return seed


def _agent(status: common_pb2.AgentStatus) -> seed_api_pb2.SeedAgentStatus:
    seed = seed_api_pb2.SeedAgentStatus(
        status=enum_word(common_pb2.AgentHealth.DESCRIPTOR, status.status),
        load=status.load,
        response_time=status.response_time.ToNanoseconds() / 1e6,
        error_rate=status.error_rate,
        queue_depth=_int32(status.queue_depth),
    )
    seed.metrics.CopyFrom(status.metrics)
    if status.api_rate_limits:
        seed.metrics.update({"api_rate_limits": dict(status.api_rate_limits)})
    if status.account_health:
        words = {board: enum_word(common_pb2.AccountHealth.DESCRIPTOR, h) for board, h in status.account_health.items()}
        seed.metrics.update({"account_health": words})
    return seed


def seed_health(health: orchestrator_pb2.SystemHealth) -> seed_api_pb2.SeedHealth:
    """A SystemHealth in the seed's shape: words for states, numbers for counts, milliseconds for times."""
    seed = seed_api_pb2.SeedHealth(
        overall_health=enum_word(orchestrator_pb2.OverallHealth.DESCRIPTOR, health.overall_health),
        agent_statuses={agent: _agent(status) for agent, status in health.agent_statuses.items()},
        active_workflows=_int32(health.active_workflows),
        queue_depth=_int32(health.queue_depth),
    )
    seed.resource_utilization.CopyFrom(health.resource_utilization)
    seed.checked_at.CopyFrom(health.checked_at)
    return seed


class SeedApiServicer(seed_api_pb2_grpc.SeedApiServicer):
    """Implements baton.v1.SeedApi over an OrchestratorServicer."""

    def __init__(self, orchestrator: OrchestratorServicer, *, now: Callable[[], datetime] | None = None) -> None:
        """Wires the servicer.

        Args:
            orchestrator: the servicer every RPC is delegated to.
            now: the current time, for estimated completions (default the orchestrator's clock).
        """
        self.orchestrator = orchestrator
        self.now = now or orchestrator.clock.now

    @unary
    async def Execute(
        self, request: seed_api_pb2.SeedExecuteRequest, context: grpc.aio.ServicerContext
    ) -> seed_api_pb2.SeedExecution:
        execution = await self.orchestrator.ExecuteWorkflow(execute_request(request), context)
        return seed_api_pb2.SeedExecution(
            execution_id=execution.execution_id,
            plan_id=execution.plan.plan_id,
            workflow_type=execution.plan.workflow_type,
            status=_state_word(execution.status),
            created=execution.created,
            total_steps=len(execution.plan.workflow_steps),
        )

    @unary
    async def GetStatus(
        self, request: seed_api_pb2.SeedStatusRequest, context: grpc.aio.ServicerContext
    ) -> seed_api_pb2.SeedStatus:
        rich = orchestrator_pb2.GetExecutionRequest(execution_id=request.execution_id)
        return seed_status(await self.orchestrator.GetExecution(rich, context), self.now())

    @streaming
    async def WatchStatus(
        self, request: seed_api_pb2.SeedWatchRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[seed_api_pb2.SeedStatus]:
        rich = orchestrator_pb2.WatchExecutionRequest(
            execution_id=request.execution_id, after_sequence=request.after_sequence
        )
        last: seed_api_pb2.SeedStatus | None = None
        async for item in self.orchestrator.WatchExecution(rich, context):
            # The rich watch may hand over an update already serialized for its own streams.
            update = (
                orchestrator_pb2.ExecutionUpdate.FromString(item.data) if isinstance(item, SerializedUpdate) else item
            )
            if update.heartbeat:
                # The rich heartbeat carries no status; a seed client gets the latest one again.
                if last is None:
                    current = orchestrator_pb2.GetExecutionRequest(execution_id=request.execution_id)
                    last = seed_status(await self.orchestrator.GetExecution(current, context), self.now())
                beat = seed_api_pb2.SeedStatus()
                beat.CopyFrom(last)
                beat.heartbeat = True
                yield beat
                continue
            last = seed_status(update.status, self.now())
            yield last

    @unary
    async def GetHealth(
        self, request: seed_api_pb2.SeedHealthRequest, context: grpc.aio.ServicerContext
    ) -> seed_api_pb2.SeedHealth:
        health = await self.orchestrator.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest(), context)
        return seed_health(health)


__all__ = ["SeedApiServicer", "current_step", "seed_health", "seed_status"]
