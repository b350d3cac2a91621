"""Bulkheads and rate limits per agent and per operation, and the job boards' limits, around any AgentCaller.

Rules (the conformance table is tests/unit/test_capacity.py):
1. **Scopes.** A limit is set for an agent (``job_discovery``) or for one of its operations
   (``automation.SubmitApplication``); a call is held by every limit whose scope it is in: its
   operation's bulkhead, then its agent's, then its operation's rate limit, its agent's, and the
   limits of the job boards it is for (agents_clients.boards). Slots are taken in that fixed
   order, so two calls can never hold what the other waits for.
2. **Waiting counts against the attempt.** A call waits for its slots and tokens within its own
   timeout; what is left of it is the gRPC deadline it is sent with. A call that would wait past
   it, or that finds `max_waiting` callers waiting already, fails unsent and retryably with
   ``AGENT_CAPACITY`` (the engine retries it with the step's backoff). A cancelled call leaves
   every queue it was in and gives back what it held.
3. **Visible while waiting.** A call made for an execution's step (`AgentCall.origin`) that has
   to wait is listed in `CapacityWaits` until it is sent or gives up, and the listeners are told
   at both ends; the orchestrator shows it in the step's status as "waiting for agent capacity"
   (server/api/capacity.py). This is memory, not history: no event is recorded per wait, the
   wait is seen by clients of the replica making the call, and it ends with the call.
4. **Not wanted any more.** When an execution begins to unwind or ends (`abandon`), its step calls
   that are waiting give up unsent with ``AGENT_CAPACITY`` (not retryable): a cancelled journey
   sends nothing more. Calls that start waiting afterwards (compensations, the probes of a step
   in doubt) wait as usual.
5. The limiter sits outside the circuit breaker: a wait is never counted as a slow call, and a
   refusal for capacity never touches the breaker or the retry budget.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from agents_clients.boards import BOARD_SUSPENDED, BoardGuard, BoardLimitsConfig, BoardRefusal
from agents_clients.catalog import UnknownAgentError, UnknownOperationError, operation, operations
from agents_clients.limiters import Bulkhead, CapacityFull, CapacityTimeout, TokenBucket
from server.engine.ports import AgentCall, AgentCaller, AgentCallError, AgentReply, CallOrigin

logger = logging.getLogger(__name__)

AGENT_CAPACITY = "AGENT_CAPACITY"
"""The error type of a call that got no slot or token of its limits in time, refused unsent."""
WAITING_FOR_CAPACITY = "waiting for agent capacity"
"""How a waiting call is described to people (the start of its WaitingStep prompt)."""

_RATE = re.compile(r"^\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*/\s*(s|m|h)\s*(?::\s*([0-9]+)\s*)?$")
_PER = {"s": 1.0, "m": 60.0, "h": 3600.0}


@dataclass(frozen=True)
class RateLimit:
    """A token bucket's settings."""

    rate: float
    """Calls per second, above 0 to 100,000."""
    burst: int
    """Calls that may start at once after a quiet spell, 1 to 100,000."""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.rate) and 0 < self.rate <= 100_000):
            raise ValueError(f"expected a rate above 0 and at most 100000/s, got {self.rate:g}/s")
        if not 1 <= self.burst <= 100_000:
            raise ValueError(f"expected a burst from 1 to 100000, got {self.burst}")

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """Reads ``RATE/s[:BURST]`` (or ``/m``, ``/h``); the burst defaults to the rate a second, at least 1.

        Raises:
            ValueError: not such a rate, or out of range.
        """
        match = _RATE.match(text)
        if match is None:
            raise ValueError(f"expected RATE/s[:BURST] (or /m, /h), such as 5/s:10, got {text[:64]!r}")
        rate = float(match.group(1)) / _PER[match.group(2)]
        burst = int(match.group(3)) if match.group(3) is not None else max(1, math.ceil(rate))
        return cls(rate, burst)

    def describe(self) -> str:
        """``5/s burst 10``."""
        rate = f"{self.rate:g}/s" if self.rate >= 1 else f"1 per {1 / self.rate:.3g} s"
        return f"{rate} burst {self.burst}"


def check_scope(scope: str) -> str:
    """Checks ``AGENT`` or ``AGENT.OPERATION`` names a known agent (and operation) and returns it.

    Raises:
        ValueError: an unknown agent or operation (the message lists the known ones).
    """
    agent, _, op = scope.partition(".")
    try:
        if op:
            operation(agent, op)
        else:
            operations(agent)
    except (UnknownAgentError, UnknownOperationError) as error:
        raise ValueError(str(error)) from None
    return scope


@dataclass(frozen=True)
class CapacityConfig:
    """The bulkheads and rate limits of the agents, and how the job boards are limited."""

    bulkheads: Mapping[str, int] = field(default_factory=dict)
    """Scope (``agent`` or ``agent.Operation``) → calls in flight at once, 1 to 100,000. None by default."""
    rate_limits: Mapping[str, RateLimit] = field(default_factory=dict)
    """Scope → its token bucket. None by default."""
    max_waiting: int = 100
    """Calls that may wait at once for each limit, 0 to 100,000; one more fails with
    AGENT_CAPACITY at once. Default 100."""
    boards: BoardLimitsConfig = field(default_factory=BoardLimitsConfig)
    """How the boards' reported quotas and account health limit the calls for them."""

    def __post_init__(self) -> None:
        for scope, limit in self.bulkheads.items():
            check_scope(scope)
            if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 100_000:
                raise ValueError(f"bulkheads.{scope}: expected calls in flight from 1 to 100000, got {limit!r}")
        for scope in self.rate_limits:
            check_scope(scope)
        if not 0 <= self.max_waiting <= 100_000:
            raise ValueError(f"capacity.max_waiting: expected 0 to 100000, got {self.max_waiting}")


@dataclass
class CapacityWait:
    """A call of an execution's step waiting for agent capacity (rule 3)."""

    origin: CallOrigin
    """The execution, step and attempt the call is for."""
    agent: str
    operation: str
    limit: str
    """What it waits for: ``bulkhead job_discovery`` (of a scope), ``rate limit …``, ``board linkedin``."""
    since: datetime
    """When it started waiting (UTC)."""
    deadline: datetime
    """When its attempt's timeout passes (UTC)."""

    @property
    def prompt(self) -> str:
        """``waiting for agent capacity: job_discovery.SearchJobs, bulkhead job_discovery``."""
        return f"{WAITING_FOR_CAPACITY}: {self.agent}.{self.operation}, {self.limit}"


class CapacityWaits:
    """The calls waiting for capacity now, by execution (rule 3); bounded by the limits' waiters."""

    def __init__(self) -> None:
        self._by_execution: dict[str, dict[int, CapacityWait]] = {}
        self._listeners: list[Callable[[str], None]] = []

    def add_listener(self, listener: Callable[[str], None]) -> None:
        """Registers a function told the execution_id whenever its waits change."""
        self._listeners.append(listener)

    def of(self, execution_id: str) -> list[CapacityWait]:
        """The waits of an execution's calls now."""
        return list(self._by_execution.get(execution_id, {}).values())

    def __len__(self) -> int:
        return sum(len(waits) for waits in self._by_execution.values())

    def items_of(self, execution_id: str) -> list[tuple[int, CapacityWait]]:
        """The waits of an execution's calls now, with their keys."""
        return list(self._by_execution.get(execution_id, {}).items())

    def get(self, execution_id: str, key: int) -> CapacityWait | None:
        """One listed wait."""
        return self._by_execution.get(execution_id, {}).get(key)

    def put(self, key: int, wait: CapacityWait) -> None:
        self._by_execution.setdefault(wait.origin.execution_id, {})[key] = wait
        self._tell(wait.origin.execution_id)

    def drop(self, key: int, execution_id: str) -> None:
        waits = self._by_execution.get(execution_id)
        if waits is None or waits.pop(key, None) is None:
            return
        if not waits:
            del self._by_execution[execution_id]
        self._tell(execution_id)

    def _tell(self, execution_id: str) -> None:
        for listener in self._listeners:
            try:
                listener(execution_id)
            except Exception:
                logger.exception("capacity wait listener failed for execution %s", execution_id)


@dataclass
class CapacityCounts:
    """What the limits did since start, for the demo's summary and the health page."""

    held: int = 0
    """Calls that waited for a slot or a token before being sent."""
    held_seconds: float = 0.0
    """Seconds they waited, in all."""
    refused: int = 0
    """Calls refused unsent with AGENT_CAPACITY."""
    held_by: dict[str, int] = field(default_factory=dict)
    """Limit (``bulkhead automation``, ``rate limit job_discovery``, ``board linkedin``) → calls it held."""


class _Unwanted(Exception):
    """The waiting call's execution no longer wants it (rule 4)."""


class _Limit:
    """One limit a call passes: a named bulkhead or bucket."""

    __slots__ = ("bucket", "bulkhead", "name")

    def __init__(self, name: str, bulkhead: Bulkhead | None = None, bucket: TokenBucket | None = None) -> None:
        self.name = name
        self.bulkhead = bulkhead
        self.bucket = bucket

    def try_acquire(self) -> bool:
        limiter = self.bulkhead or self.bucket
        return limiter is not None and limiter.try_acquire()

    async def acquire(self, within: float) -> None:
        limiter = self.bulkhead or self.bucket
        if limiter is not None:
            await limiter.acquire(within)


class CapacityCaller:
    """An AgentCaller that holds calls to their bulkheads and rate limits (module rules)."""

    def __init__(
        self,
        inner: AgentCaller,
        config: CapacityConfig | None = None,
        *,
        waits: CapacityWaits | None = None,
        boards: BoardGuard | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """Wraps `inner` (usually the BreakingCaller).

        Args:
            inner: the caller that sends.
            config: the limits; none when None.
            waits: where waiting calls are listed (rule 3); a private one when None.
            boards: the job boards' guard; one from `config.boards` when None.
            clock: monotonic seconds (injected in tests).
            wall: the current time, for the waits' `since` and `deadline`.
        """
        self.inner = inner
        self.config = config or CapacityConfig()
        self.waits = waits or CapacityWaits()
        self.boards = boards or BoardGuard(self.config.boards, max_waiting=self.config.max_waiting, clock=clock)
        self.counts = CapacityCounts()
        self._clock = clock
        self._wall = wall
        cap = self.config.max_waiting
        self.bulkheads = {scope: Bulkhead(n, cap) for scope, n in self.config.bulkheads.items()}
        self.buckets = {
            scope: TokenBucket(r.rate, r.burst, cap, clock=clock) for scope, r in self.config.rate_limits.items()
        }
        self._next_key = 0
        self._unwanted: dict[int, asyncio.Event] = {}
        """Key of a waiting step call → set when its execution no longer wants it (rule 4)."""

    def limits(self, call: AgentCall, boards: Iterable[str] = ()) -> list[_Limit]:
        """The limits a call passes, in the order they are taken (rule 1)."""
        scopes = (f"{call.agent}.{call.operation}", call.agent)
        found = [_Limit(f"bulkhead {s}", bulkhead=self.bulkheads[s]) for s in scopes if s in self.bulkheads]
        found += [_Limit(f"rate limit {s}", bucket=self.buckets[s]) for s in scopes if s in self.buckets]
        for board in boards:
            bucket = self.boards.bucket(board)
            if bucket is not None:
                state = self.boards.boards[board]
                found.append(_Limit(f"board {board} ({state.word})", bucket=bucket))
        return found

    async def call(self, call: AgentCall) -> AgentReply:
        """Sends the call once its limits let it (module rules)."""
        try:
            checked = self.boards.check(call.agent, call.payload)
        except BoardRefusal as refusal:
            raise AgentCallError(BOARD_SUSPENDED, str(refusal), retryable=False) from None
        if checked.dropped:
            logger.warning(
                "%s.%s: not applying to %s: the board's account is suspended",
                call.agent,
                call.operation,
                ", ".join(f"{job} ({board})" for job, board in checked.dropped),
            )
            call = replace(call, payload=checked.payload)
        limits = self.limits(call, checked.paced)
        if not limits:
            return self._learned(call, await self.inner.call(call))
        held: list[Bulkhead] = []
        started = self._clock()
        key = 0
        waited_for = False
        try:
            for limit in limits:
                if limit.try_acquire():
                    if limit.bulkhead is not None:
                        held.append(limit.bulkhead)
                    continue
                left = call.timeout - (self._clock() - started)
                waited_for = True
                key = self._show_wait(key, call, limit, left)
                try:
                    await self._acquire(limit, left, self._unwanted.get(key))
                except _Unwanted:
                    self.counts.refused += 1
                    raise AgentCallError(
                        AGENT_CAPACITY,
                        f"{WAITING_FOR_CAPACITY} of {call.agent}.{call.operation} ({limit.name}): the execution"
                        " is ending; not sent",
                        retryable=False,
                    ) from None
                except (CapacityFull, CapacityTimeout) as error:
                    self.counts.refused += 1
                    raise AgentCallError(
                        AGENT_CAPACITY,
                        f"{WAITING_FOR_CAPACITY} of {call.agent}.{call.operation} ({limit.name}): {error}; not sent",
                        retryable=True,
                        retry_after=error.wait if isinstance(error, CapacityTimeout) and error.wait else None,
                    ) from None
                if limit.bulkhead is not None:
                    held.append(limit.bulkhead)
                self.counts.held_by[limit.name] = self.counts.held_by.get(limit.name, 0) + 1
            waited = self._clock() - started
            if waited_for:
                self.counts.held += 1
                self.counts.held_seconds += waited
            self._drop_wait(key, call)
            key = 0
            left = call.timeout - waited
            if left <= 0:
                self.counts.refused += 1
                raise AgentCallError(
                    AGENT_CAPACITY,
                    f"{WAITING_FOR_CAPACITY} of {call.agent}.{call.operation}: the attempt's"
                    f" {call.timeout:g} s passed while waiting; not sent",
                    retryable=True,
                )
            return self._learned(call, await self.inner.call(replace(call, timeout=left) if waited_for else call))
        finally:
            self._drop_wait(key, call)
            for bulkhead in reversed(held):
                bulkhead.release()

    @staticmethod
    async def _acquire(limit: _Limit, within: float, unwanted: asyncio.Event | None) -> None:
        """Waits for the limit, or until the call is no longer wanted (raises _Unwanted)."""
        if unwanted is None:
            await limit.acquire(within)
            return
        acquiring = asyncio.ensure_future(limit.acquire(within))
        stopping = asyncio.ensure_future(unwanted.wait())
        try:
            await asyncio.wait((acquiring, stopping), return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            if not acquiring.done():
                acquiring.cancel()  # the limiter gives back whatever it granted meanwhile
                await asyncio.gather(acquiring, return_exceptions=True)
        if acquiring.cancelled():
            raise _Unwanted
        acquiring.result()  # a slot or token: go on (even if unwanted at the same instant)

    def abandon(self, execution_id: str) -> None:
        """The execution unwinds or ended: its waiting step calls give up unsent (rule 4)."""
        for key, wait in self.waits.items_of(execution_id):
            unwanted = self._unwanted.get(key)
            if unwanted is not None and wait.origin.kind == "step":
                unwanted.set()

    def _learned(self, call: AgentCall, reply: AgentReply) -> AgentReply:
        """The reply, once the boards learned its jobs' sources. (Not a coroutine around the inner
        call: one frame less per call in flight.)"""
        jobs = getattr(reply.output, "jobs", None) if call.agent == "job_discovery" else None
        if jobs is not None:
            self.boards.learn({"job_id": j.job_id, "source": j.source} for j in jobs)
        return reply

    def _show_wait(self, key: int, call: AgentCall, limit: _Limit, left: float) -> int:
        """Lists the call as waiting for `limit` (rule 3); returns its key in CapacityWaits (0: not listed)."""
        origin = call.origin
        if origin is None:
            return 0
        now = self._wall()
        earlier = self.waits.get(origin.execution_id, key) if key else None
        if not key:
            self._next_key += 1
            key = self._next_key
            self._unwanted[key] = asyncio.Event()
        self.waits.put(
            key,
            CapacityWait(
                origin=origin,
                agent=call.agent,
                operation=call.operation,
                limit=limit.name,
                since=earlier.since if earlier is not None else now,
                deadline=now + timedelta(seconds=max(left, 0.0)),
            ),
        )
        return key

    def _drop_wait(self, key: int, call: AgentCall) -> None:
        if key and call.origin is not None:
            self._unwanted.pop(key, None)
            self.waits.drop(key, call.origin.execution_id)

    def occupancy(self) -> dict[str, tuple[int, int]]:
        """Each limit scope (and paced board, ``board:NAME``) → (calls in flight, calls waiting)."""
        found: dict[str, tuple[int, int]] = {}
        for scope, bulkhead in self.bulkheads.items():
            found[scope] = (bulkhead.in_use, bulkhead.waiting)
        for scope, bucket in self.buckets.items():
            in_use, waiting = found.get(scope, (0, 0))
            found[scope] = (in_use, waiting + bucket.waiting)
        for board, state in self.boards.boards.items():
            if state.bucket is not None:
                found[f"board:{board}"] = (0, state.bucket.waiting)
        return found
