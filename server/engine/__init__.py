"""The engine: durable, event-sourced scheduling of plans over injected ports (no grpc here)."""

from server.engine.fold import ExecutionState, FoldError, StepRun, apply, fold
from server.engine.inbox import ExecutionStateError, SignalCommand
from server.engine.model import Plan, RetryPolicy, Step
from server.engine.ports import AgentCall, AgentCaller, AgentCallError, AgentReply, Clock
from server.engine.runner import Engine, EngineConfig, Submission
from server.engine.status import render

__all__ = [
    # Ports the composition root plugs adapters into.
    "AgentCall",
    "AgentCallError",
    "AgentCaller",
    "AgentReply",
    "Clock",
    # Running executions.
    "Engine",
    "EngineConfig",
    # The fold and its rendering.
    "ExecutionState",
    "ExecutionStateError",
    "FoldError",
    # The plan model.
    "Plan",
    "RetryPolicy",
    "SignalCommand",
    "Step",
    "StepRun",
    "Submission",
    "apply",
    "fold",
    "render",
]
