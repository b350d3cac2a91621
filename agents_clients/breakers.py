"""Per-agent circuit breakers (pybreaker) around any AgentCaller, with a fleet-wide retry budget.

pybreaker has no asyncio support of its own; `calling()` is a synchronous context manager that
can wrap an await without holding a lock across it (TOOLCHAIN.md §3). pybreaker holds each
breaker's state (closed, open, half-open, when it opened) and tells the listeners (logs,
metrics); this module decides when it opens and who may call.

Rules (the conformance table is tests/unit/test_breakers.py):
1. **Rate, not luck.** A closed breaker opens when, over its last `window` calls (once it has
   seen `minimum_calls`), the share of failures reaches `failure_rate` or the share of slow calls
   (slower than `slow_call_seconds`, failed or not) reaches `slow_call_rate` (resilience4j's
   count-based sliding window). It also opens on `fail_max` consecutive failures, the fast road
   for an agent that is plainly dead. A 30 %-flaky agent therefore keeps its breaker closed (its
   retries do the work) while a dead one opens it within `fail_max` calls.
2. **One probe.** After `reset_timeout` an open breaker lets exactly one call through (the
   probe, under a lock per agent); every other call meanwhile fails fast. The probe's success
   closes the breaker, its failure, or its slowness, opens it again for another `reset_timeout`.
   A slow probe's reply is still returned to its caller: it is the breaker that learns from it.
3. **Say when.** An open breaker's refusal is ``AgentCallError("CIRCUIT_OPEN", retryable=True,
   retry_after=S)``: S seconds until it admits a probe (or `probe_wait` while a probe is in
   flight), so that the engine can park the retry durably until then instead of spending attempts.
4. **Retries within budget.** A retry (`AgentCall.retry`) that finds the breaker closed is sent
   only within the agent's retry budget (agents_clients.retry_budget); otherwise it is refused
   unsent with ``RETRY_BUDGET_EXHAUSTED``.
5. **The agent's health, never one caller's input.** The request is built and checked before the
   breaker is entered (when the inner caller can `prepare` one): a payload that does not make a
   request fails its step without a call and without touching the breaker (pybreaker would count
   an excluded error as a success, which could close a half-open breaker). An agent's answer
   about the request itself (the business errors, RESOURCE_EXHAUSTED) and cancellation are
   excluded: they neither trip the breaker nor count in its window.
6. The window starts afresh at every change of state (resilience4j does the same), so a breaker
   that closes after a good probe is not opened again by the failures that opened it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import pybreaker

from agents_clients.retry_budget import RetryBudget, RetryBudgetConfig
from server.engine.ports import AgentCall, AgentCaller, AgentCallError, AgentReply

logger = logging.getLogger(__name__)

CIRCUIT_OPEN = "CIRCUIT_OPEN"
"""The error type of a call an open breaker refused, unsent."""
RETRY_BUDGET_EXHAUSTED = "RETRY_BUDGET_EXHAUSTED"
"""The error type of a retry the agent's retry budget refused, unsent."""


@dataclass(frozen=True)
class BreakerConfig:
    """Circuit breaker settings, shared by every agent's breaker (each counts its own calls)."""

    failure_rate: float = 0.5
    """Share of failed calls in the window that opens the breaker, above 0 to 1. Default 0.5."""
    window: int = 100
    """Calls the rates are measured over (the latest ones), 1 to 10,000. Default 100."""
    minimum_calls: int = 40
    """Calls the window must hold before a rate can open the breaker, 1 to `window`. Default 40
    (with 100 and 0.5, a 30 %-flaky agent opens it in about 0.3 % of 2,000-call runs, a 50 %-
    flaky one almost surely)."""
    fail_max: int = 10
    """Consecutive failures that open the breaker whatever the window says; 0: none. Default 10
    (a 30 %-flaky agent fails ten times in a row once in 170,000 calls)."""
    slow_call_seconds: float = 10.0
    """A call that takes longer than this is slow, whether it succeeds or not; 0: none is.
    Default 10 s."""
    slow_call_rate: float = 1.0
    """Share of slow calls in the window that opens the breaker, above 0 to 1. Default 1 (every
    call in a full-enough window slow)."""
    reset_timeout: float = 30.0
    """Seconds an open breaker waits before it lets one probe through, above 0 to 3600. Default 30."""
    probe_wait: float = 1.0
    """Seconds a call refused while the probe is in flight is told to wait, above 0 to 60. Default 1."""

    def __post_init__(self) -> None:
        for name, value, low, high, low_open in (
            ("failure_rate", self.failure_rate, 0.0, 1.0, True),
            ("slow_call_rate", self.slow_call_rate, 0.0, 1.0, True),
            ("window", self.window, 1, 10_000, False),
            ("minimum_calls", self.minimum_calls, 1, self.window, False),
            ("fail_max", self.fail_max, 0, 10_000, False),
            ("slow_call_seconds", self.slow_call_seconds, 0.0, 3600.0, False),
            ("reset_timeout", self.reset_timeout, 0.0, 3600.0, True),
            ("probe_wait", self.probe_wait, 0.0, 60.0, True),
        ):
            if not math.isfinite(value) or value > high or value < low or (low_open and value <= low):
                above = "above " if low_open else ""
                raise ValueError(f"breaker.{name}: expected a value from {above}{low:g} to {high:g}, got {value}")


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


class Window:
    """The outcomes of an agent's latest calls while its breaker is closed (rule 1)."""

    def __init__(self, size: int) -> None:
        self._calls: deque[tuple[bool, bool]] = deque(maxlen=size)
        self.failures = 0
        self.slow = 0

    def __len__(self) -> int:
        return len(self._calls)

    def record(self, failed: bool, slow: bool) -> None:
        """Adds a call's outcome, forgetting the oldest once full."""
        calls = self._calls
        if calls.maxlen is not None and len(calls) == calls.maxlen:
            old_failed, old_slow = calls[0]
            self.failures -= old_failed
            self.slow -= old_slow
        calls.append((failed, slow))
        self.failures += failed
        self.slow += slow

    def clear(self) -> None:
        self._calls.clear()
        self.failures = self.slow = 0

    def verdict(self, config: BreakerConfig) -> str | None:
        """Why the breaker must open, or None."""
        n = len(self._calls)
        if n < config.minimum_calls:
            return None
        if self.failures / n >= config.failure_rate:
            return f"{self.failures} of the last {n} calls failed"
        if config.slow_call_seconds and self.slow / n >= config.slow_call_rate:
            return f"{self.slow} of the last {n} calls took longer than {config.slow_call_seconds:g} s"
        return None


class _WindowReset(pybreaker.CircuitBreakerListener):
    def __init__(self, window: Window) -> None:
        self.window = window

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object) -> None:
        if getattr(old_state, "name", old_state) != getattr(new_state, "name", new_state):
            self.window.clear()


class _SlowProbe(Exception):
    """A probe that answered, too slowly: fails it in pybreaker's eyes, its reply kept for its caller."""

    def __init__(self, reply: AgentReply) -> None:
        super().__init__("the probe call was slow")
        self.reply = reply


class _ClosedCall:
    """What ``breaker.calling()`` does for a closed breaker (pybreaker's `CircuitBreakerState.call`
    and `generator_call`), as one slotted object held while the call is in flight rather than a
    context manager, a generator and two more generators."""

    __slots__ = ("_breaker", "_state")

    def __init__(self, breaker: pybreaker.CircuitBreaker) -> None:
        self._breaker = breaker

    def __enter__(self) -> None:
        breaker = self._breaker
        with breaker._lock:
            state = self._state = breaker.state
            state.before_call(_no_operation)
            for listener in breaker.listeners:
                listener.before_call(breaker, _no_operation)

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, trace: object) -> None:
        if error is None:
            self._state._handle_success()
        else:
            # May raise CircuitBreakerError (the failure that opens it), chained to `error`.
            self._state._handle_error(error, reraise=False)


def _no_operation() -> None:
    """The guarded operation as pybreaker's listeners are told of it (the call runs in the block)."""


class BreakingCaller:
    """An AgentCaller that guards another with one circuit breaker and one retry budget per agent.

    An open breaker answers ``AgentCallError("CIRCUIT_OPEN", retryable=True, retry_after=S)``
    without calling; a retry past the budget, ``AgentCallError("RETRY_BUDGET_EXHAUSTED",
    retryable=True)`` (see the module docstring).
    """

    def __init__(
        self,
        inner: AgentCaller,
        config: BreakerConfig | None = None,
        agents: Iterable[str] = (),
        *,
        budget: RetryBudgetConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wraps `inner`.

        Args:
            inner: the caller that sends (usually a GrpcAgentCaller).
            config: the breakers' settings; the defaults when None.
            agents: agents whose breakers are made now (the others on first use).
            budget: the retry budget's settings; the defaults when None.
            clock: monotonic seconds, for slow calls and the budget's window (injected in tests).
        """
        self.inner = inner
        # Decided once: a runtime_checkable isinstance walks the protocol on every call.
        self._preparing: PreparingCaller | None = inner if isinstance(inner, PreparingCaller) else None
        self.config = config or BreakerConfig()
        self.budget = RetryBudget(budget, clock)
        self._clock = clock
        self._breakers: dict[str, pybreaker.CircuitBreaker] = {}
        self._windows: dict[str, Window] = {}
        self._trial_locks: dict[str, asyncio.Lock] = {}
        for agent in agents:
            self.breaker(agent)

    def breaker(self, agent: str) -> pybreaker.CircuitBreaker:
        """Returns the agent's breaker, creating it on first use."""
        breaker = self._breakers.get(agent)
        if breaker is None:
            window = Window(self.config.window)
            breaker = pybreaker.CircuitBreaker(
                # pybreaker opens at fail_max consecutive failures; "none" is a count never reached.
                fail_max=self.config.fail_max or sys.maxsize,
                reset_timeout=self.config.reset_timeout,
                name=agent,
                exclude=[_is_callers_error, lambda exc: isinstance(exc, asyncio.CancelledError)],
                listeners=[_StateLogger(), _WindowReset(window)],
            )
            self._breakers[agent] = breaker
            self._windows[agent] = window
            self._trial_locks[agent] = asyncio.Lock()
        return breaker

    def window(self, agent: str) -> Window:
        """The agent's window of recent outcomes (rule 1)."""
        self.breaker(agent)
        return self._windows[agent]

    def states(self) -> dict[str, str]:
        """Returns each known agent's breaker state: closed, open or half-open."""
        return {agent: str(b.current_state) for agent, b in self._breakers.items()}

    def retry_after(self, agent: str) -> float:
        """Seconds until the agent's open breaker admits a probe; 0 when it would now."""
        breaker = self.breaker(agent)
        opened_at = breaker._state_storage.opened_at
        if breaker.current_state != pybreaker.STATE_OPEN or opened_at is None:
            return 0.0
        elapsed = (datetime.now(UTC) - opened_at).total_seconds()
        return max(0.0, self.config.reset_timeout - elapsed)

    def _refused(self, agent: str, wait: float) -> AgentCallError:
        return AgentCallError(
            CIRCUIT_OPEN,
            f"circuit breaker of agent {agent} is open; a probe in {wait:.3g} s",
            retryable=True,
            retry_after=wait,
        )

    async def call(self, call: AgentCall) -> AgentReply:
        """Calls through the agent's breaker (or straight through when the call opts out)."""
        if not call.use_breaker:
            return await self.inner.call(call)
        preparing = self._preparing
        # A refusal here never reaches the breaker.
        prepared = preparing.prepare(call) if preparing is not None else None
        agent = call.agent
        breaker = self.breaker(agent)
        if breaker.current_state == pybreaker.STATE_CLOSED:
            if not self.budget.allows(agent, call.retry):
                raise AgentCallError(
                    RETRY_BUDGET_EXHAUSTED,
                    f"retry budget of agent {agent} spent: retries are held to"
                    f" {self.budget.config.ratio:g} per call over {self.budget.config.window:g} s",
                    retryable=True,
                )
            return await self._guarded(breaker, call, prepared, probe=False)
        wait = self.retry_after(agent)
        if wait > 0:
            raise self._refused(agent, wait)
        # Time for a probe: one, under the lock; the others fail fast while it runs.
        lock = self._trial_locks[agent]
        if lock.locked():
            raise self._refused(agent, self.config.probe_wait)
        async with lock:
            return await self._guarded(breaker, call, prepared, probe=True)

    async def _guarded(
        self,
        breaker: pybreaker.CircuitBreaker,
        call: AgentCall,
        prepared: object | None,
        *,
        probe: bool,
    ) -> AgentReply:
        """Sends the call (`prepared` when the inner caller prepared it) within the breaker."""
        slow_after = self.config.slow_call_seconds
        started = self._clock()
        slow = False
        try:
            # A probe goes through pybreaker's own `calling()` (its open and half-open states call
            # on through `before_call`); a closed breaker's call through `_ClosedCall`, the same
            # steps without its three generators (~0.9 kB per call in flight, bench/README.md).
            with breaker.calling() if probe else _ClosedCall(breaker):
                try:
                    # Awaited here, not through a closure: one coroutine frame less per call in flight.
                    if prepared is not None and self._preparing is not None:
                        reply = await self._preparing.send(prepared)
                    else:
                        reply = await self.inner.call(call)
                finally:
                    slow = bool(slow_after) and self._clock() - started > slow_after
                if slow and probe:
                    raise _SlowProbe(reply)
        except pybreaker.CircuitBreakerError as exc:
            cause = exc.__cause__ or exc.__context__
            if isinstance(cause, _SlowProbe):
                return cause.reply
            if isinstance(cause, AgentCallError):
                # The call that tripped the breaker failed on its own terms; report those.
                raise cause from None
            raise self._refused(call.agent, self.retry_after(call.agent)) from None
        except AgentCallError as exc:
            if not probe and not _is_callers_error(exc):
                self._count(breaker, call.agent, failed=True, slow=slow)
            raise
        if not probe:
            self._count(breaker, call.agent, failed=False, slow=slow)
        return reply

    def _count(self, breaker: pybreaker.CircuitBreaker, agent: str, *, failed: bool, slow: bool) -> None:
        """Adds a closed breaker's call to its window, and opens it when the window says so."""
        if breaker.current_state != pybreaker.STATE_CLOSED:
            return  # a call that ended after the breaker opened: the window started afresh
        window = self._windows[agent]
        window.record(failed, slow)
        reason = window.verdict(self.config)
        if reason is not None:
            logger.warning("circuit breaker of agent %s opens: %s", agent, reason)
            breaker.open()
