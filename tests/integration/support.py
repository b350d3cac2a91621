"""Helpers for integration tests: plans, watching to the end."""

from __future__ import annotations

from typing import Any

from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

TERMINAL = {
    execution_pb2.EXECUTION_STATE_COMPLETED,
    execution_pb2.EXECUTION_STATE_FAILED,
    execution_pb2.EXECUTION_STATE_CANCELLED,
}


def step(
    step_id: str,
    *deps: str,
    agent: str = "analytics",
    operation: str = "RecordEvents",
    config: dict[str, Any] | None = None,
    **timing: float,
) -> plan_pb2.WorkflowStep:
    s = plan_pb2.WorkflowStep(step_id=step_id, step_name=step_id, agent=agent, operation=operation, dependencies=deps)
    s.inputs.configuration.update(config or {"user_id": "${user.user_id}"})
    if "timeout" in timing:
        s.timing.timeout.FromNanoseconds(int(timing["timeout"] * 1e9))
    return s


def w_plan() -> plan_pb2.OrchestrationPlan:
    """BENCH.md's workload: A -> (B, C, D) -> E, each an Analytics.RecordEvents call."""
    return plan_pb2.OrchestrationPlan(
        workflow_type="w",
        workflow_steps=[step("A"), step("B", "A"), step("C", "A"), step("D", "A"), step("E", "B", "C", "D")],
    )


def execute_plan(
    plan: plan_pb2.OrchestrationPlan, user_id: str = "u1", **kw: Any
) -> orchestrator_pb2.ExecuteWorkflowRequest:
    request = orchestrator_pb2.ExecuteWorkflowRequest(plan=plan, **kw)
    request.user_context.user_id = user_id
    return request


async def watch_all(
    stub: orchestrator_pb2_grpc.OrchestratorStub, execution_id: str, after: int = 0, deadline: float = 30.0
) -> list[orchestrator_pb2.ExecutionUpdate]:
    """Collects every update of a watch until the stream ends."""
    request = orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id, after_sequence=after)
    return [u async for u in stub.WatchExecution(request, timeout=deadline)]
