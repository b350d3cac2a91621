"""Per-agent circuit breakers (pybreaker) around any AgentCaller.

pybreaker has no asyncio support of its own; `calling()` is a synchronous context manager that
can wrap an await without holding a lock across it (TOOLCHAIN.md §3). pybreaker lets every
caller through once the reset timeout has passed, so a lock per agent admits one trial call at
a time while the breaker is half-open.

A breaker counts the agent's unavailability, never one caller's bad input, so that no user can
open a breaker for everyone:

- The request is built and checked before the breaker is entered (when the inner caller can
  `prepare` one): a payload that does not make a request, or makes one past the message limit,
  fails its step without a call and without touching the breaker (pybreaker would count an
  excluded error as a success, which could close a half-open breaker).
- An agent's answer about the request itself is excluded: the business errors (not retryable)
  and RESOURCE_EXHAUSTED (a payload too large, or a quota the agent spends per request), so
  they neither trip the breaker nor count as failures. Cancellation is excluded too.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

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


#: Answers about one request's payload, not the agent's health, even when a retry may help.
CALLER_ERRORS = frozenset({"INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"})


def _is_callers_error(exc: BaseException) -> bool:
    return isinstance(exc, AgentCallError) and (not exc.retryable or exc.error_type in CALLER_ERRORS)


@runtime_checkable
class PreparingCaller(Protocol):
    """An AgentCaller that can build and check a request apart from sending it."""

    def prepare(self, call: AgentCall) -> object:
        """Builds and checks the request; raises AgentCallError without sending anything."""
        ...

    async def send(self, prepared: object) -> AgentReply:
        """Sends what `prepare` returned."""
        ...


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
                exclude=[_is_callers_error, lambda exc: isinstance(exc, asyncio.CancelledError)],
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
        inner = self.inner
        if isinstance(inner, PreparingCaller):
            prepared = inner.prepare(call)  # a refusal here never reaches the breaker

            async def send() -> AgentReply:
                return await inner.send(prepared)
        else:

            async def send() -> AgentReply:
                return await self.inner.call(call)

        breaker = self.breaker(call.agent)
        if breaker.current_state == pybreaker.STATE_CLOSED:
            return await self._guarded(breaker, call, send)
        # Open or half-open: one trial at a time; the others fail fast while it runs.
        lock = self._trial_locks[call.agent]
        if lock.locked():
            raise AgentCallError("CIRCUIT_OPEN", f"circuit breaker of agent {call.agent} is open", retryable=True)
        async with lock:
            return await self._guarded(breaker, call, send)

    async def _guarded(
        self, breaker: pybreaker.CircuitBreaker, call: AgentCall, send: Callable[[], Awaitable[AgentReply]]
    ) -> AgentReply:
        try:
            with breaker.calling():
                return await send()
        except pybreaker.CircuitBreakerError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, AgentCallError):
                # The call that tripped the breaker failed on its own terms; report those.
                raise cause from None
            raise AgentCallError(
                "CIRCUIT_OPEN", f"circuit breaker of agent {call.agent} is open", retryable=True
            ) from None
