"""The engine: durable, event-sourced scheduling of plans over injected ports (no grpc here)."""

from server.engine.decide import Decision, Launch, decide
from server.engine.engine import Engine, EngineConfig, ReplicaConfig, Submission
from server.engine.fold import apply, fold
from server.engine.inbox import ExecutionStateError, SignalCommand, UnknownStepError
from server.engine.model import Plan, RetryPolicy, Step
from server.engine.ports import AgentCall, AgentCaller, AgentCallError, AgentReply, Clock
from server.engine.state import ExecutionState, FoldError, Phase, StepRun
from server.engine.status import render

__all__ = [
    # Ports the composition root plugs adapters into.
    "AgentCall",
    "AgentCallError",
    "AgentCaller",
    "AgentReply",
    "Clock",
    # Running and controlling executions.
    "Engine",
    "EngineConfig",
    "ReplicaConfig",
    "ExecutionStateError",
    "SignalCommand",
    "Submission",
    "UnknownStepError",
    # Deciding, folding and rendering.
    "Decision",
    "ExecutionState",
    "FoldError",
    "Launch",
    "Phase",
    "StepRun",
    "apply",
    "decide",
    "fold",
    "render",
    # The plan model.
    "Plan",
    "RetryPolicy",
    "Step",
]
