"""Per-agent circuit breakers (pybreaker) around any AgentCaller.

pybreaker has no asyncio support of its own; `calling()` is a synchronous context manager that
can wrap an await without holding a lock across it (TOOLCHAIN.md §3). Business errors (a bad
request) are excluded, so they neither trip the breaker nor count as failures; cancellation is
excluded too. pybreaker lets every caller through once the reset timeout has passed, so a lock
per agent admits one trial call at a time while the breaker is half-open.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from dataclasses import dataclass

import pybreaker

from server.engine.ports import AgentCall, AgentCaller, AgentCallError, AgentReply

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BreakerConfig:
    """Circuit breaker settings, shared by every agent's breaker."""

    fail_max: int = 5
    """Consecutive failures that open the breaker. Default 5."""
    reset_timeout: float = 30.0
    """Seconds an open breaker waits before it lets a trial call through. Default 30."""


def _is_business_error(exc: BaseException) -> bool:
    return isinstance(exc, AgentCallError) and not exc.retryable


class _StateLogger(pybreaker.CircuitBreakerListener):
    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object) -> None:
        old = getattr(old_state, "name", old_state)
        new = getattr(new_state, "name", new_state)
        if old != new:
            logger.warning("circuit breaker of agent %s: %s -> %s", cb.name, old, new)


class BreakingCaller:
    """An AgentCaller that guards another with one circuit breaker per agent.

    An open breaker answers ``AgentCallError("CIRCUIT_OPEN", retryable=True)`` without calling.
    """

    def __init__(self, inner: AgentCaller, config: BreakerConfig | None = None, agents: Iterable[str] = ()) -> None:
        self.inner = inner
        self.config = config or BreakerConfig()
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._trial_locks: dict[str, asyncio.Lock] = {}
        for agent in agents:
            self.breaker(agent)

    def breaker(self, agent: str) -> pybreaker.CircuitBreaker:
        """Returns the agent's breaker, creating it on first use."""
        breaker = self._breakers.get(agent)
        if breaker is None:
            breaker = pybreaker.CircuitBreaker(
                fail_max=self.config.fail_max,
                reset_timeout=self.config.reset_timeout,
                name=agent,
                exclude=[_is_business_error, lambda exc: isinstance(exc, asyncio.CancelledError)],
                listeners=[_StateLogger()],
            )
            self._breakers[agent] = breaker
            self._trial_locks[agent] = asyncio.Lock()
        return breaker

    def states(self) -> dict[str, str]:
        """Returns each known agent's breaker state: closed, open or half-open."""
        return {agent: str(b.current_state) for agent, b in self._breakers.items()}

    async def call(self, call: AgentCall) -> AgentReply:
        """Calls through the agent's breaker (or straight through when the call opts out)."""
        if not call.use_breaker:
            return await self.inner.call(call)
        breaker = self.breaker(call.agent)
        if breaker.current_state == pybreaker.STATE_CLOSED:
            return await self._guarded(breaker, call)
        # Open or half-open: one trial at a time; the others fail fast while it runs.
        lock = self._trial_locks[call.agent]
        if lock.locked():
            raise AgentCallError("CIRCUIT_OPEN", f"circuit breaker of agent {call.agent} is open", retryable=True)
        async with lock:
            return await self._guarded(breaker, call)

    async def _guarded(self, breaker: pybreaker.CircuitBreaker, call: AgentCall) -> AgentReply:
        try:
            with breaker.calling():
                return await self.inner.call(call)
        except pybreaker.CircuitBreakerError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, AgentCallError):
                # The call that tripped the breaker failed on its own terms; report those.
                raise cause from None
            raise AgentCallError(
                "CIRCUIT_OPEN", f"circuit breaker of agent {call.agent} is open", retryable=True
            ) from None
