"""The engine's ports: the small protocols through which it talks to the world.

The engine imports no grpc and no SQL driver and never reads the wall clock itself; the
composition root (server/app.py) plugs in real adapters, unit tests plug in fakes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from google.protobuf.message import Message


class Clock(Protocol):
    """Time as the engine sees it."""

    def now(self) -> datetime:
        """Returns the current time, timezone-aware (UTC)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Returns at `when` (at once if it has passed)."""
        ...


@dataclass(frozen=True)
class AgentCall:
    """One call of an agent operation."""

    agent: str
    """The agent's name."""
    operation: str
    """The RPC's name."""
    payload: dict[str, Any]
    """The request as JSON with proto field names, expressions already resolved."""
    timeout: float
    """The attempt's timeout in seconds, sent as the gRPC deadline."""
    idempotency_key: str
    """Sent as ``baton-idempotency-key``: the same for every attempt of a step's call
    (``execution_id/step_id``; ``…/alt`` for its alternative call, ``…/compensate`` for its
    compensation), so an agent applies the call's effect once."""
    attempt: int = 1
    """The attempt number, from 1; sent apart from the key as ``baton-attempt`` metadata."""
    use_breaker: bool = True
    """Whether the agent's circuit breaker guards the call."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Extra request metadata (for example trace context)."""


@dataclass(frozen=True)
class AgentReply:
    """The successful answer of an agent call."""

    output: Message
    """The response message."""
    quality_score: float = 0.0
    """The response's Quality.score, 0-100."""
    quality_metrics: dict[str, float] = field(default_factory=dict)
    """The response's Quality.metrics."""
    request_bytes: int = 0
    """Serialized size of the request."""
    response_bytes: int = 0
    """Serialized size of the response."""


class AgentCallError(Exception):
    """An agent call failed.

    Attributes:
        error_type: a gRPC status code name (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``,
            ``INVALID_ARGUMENT`` ...) or ``CIRCUIT_OPEN``.
        retryable: whether another attempt may succeed. Business errors (INVALID_ARGUMENT,
            NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED) are not.
        request_bytes: serialized size of the request that was sent (0 if none was).
    """

    def __init__(self, error_type: str, message: str, *, retryable: bool, request_bytes: int = 0) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.request_bytes = request_bytes


class AgentCaller(Protocol):
    """Calls agent operations. Raises AgentCallError on failure, never anything else."""

    async def call(self, call: AgentCall) -> AgentReply:
        """Performs one attempt of `call` within its timeout."""
        ...
