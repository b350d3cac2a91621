"""The only door from the orchestrator to the agents: catalog, gRPC caller, routing, circuit breakers, tracing."""

from agents_clients.boards import BOARD_SUSPENDED, BoardGuard, BoardLimitsConfig
from agents_clients.breakers import BreakerConfig, BreakingCaller
from agents_clients.capacity import (
    AGENT_CAPACITY,
    CapacityCaller,
    CapacityConfig,
    CapacityWait,
    CapacityWaits,
    RateLimit,
    check_scope,
)
from agents_clients.catalog import AGENT_SERVICES, AGENTS, Operation, operation, operations
from agents_clients.grpc_caller import ATTEMPT, IDEMPOTENCY_KEY, GrpcAgentCaller
from agents_clients.retry_budget import RetryBudget, RetryBudgetConfig
from agents_clients.routing import EndpointSnapshot, RoutingConfig
from agents_clients.tracing import TracingCaller

__all__ = [
    # What agents there are and what they can do.
    "AGENTS",
    "AGENT_SERVICES",
    # Resilience.
    "BreakerConfig",
    "BreakingCaller",
    "RetryBudget",
    "RetryBudgetConfig",
    # Routing across an agent's endpoints (replicas), and hedged reads.
    "EndpointSnapshot",
    "RoutingConfig",
    # Bulkheads, rate limits and the job boards' limits.
    "AGENT_CAPACITY",
    "BOARD_SUSPENDED",
    "BoardGuard",
    "BoardLimitsConfig",
    "CapacityCaller",
    "CapacityConfig",
    "CapacityWait",
    "CapacityWaits",
    "RateLimit",
    "check_scope",
    # Calling them.
    "GrpcAgentCaller",
    "ATTEMPT",
    "IDEMPOTENCY_KEY",
    "Operation",
    "operation",
    "operations",
    # Tracing: a span per call of a traced execution.
    "TracingCaller",
]
