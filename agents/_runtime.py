"""What every reference agent shares: measured load and errors, fault hooks, status, quality, errors."""

from __future__ import annotations

import functools
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeVar

import grpc
from baton.v1 import common_pb2
from google.protobuf.message import Message

if TYPE_CHECKING:
    from agents._faults import FaultState

logger = logging.getLogger(__name__)

#: In-flight operations at which an agent reports a load of 100.
CAPACITY = 64
#: Operations over which response time and error rate are measured.
WINDOW = 256
#: Seconds after which an operation no longer counts towards response time and error rate, so
#: that an agent recovers its health once faults stop, even without traffic.
RECENT_SECONDS = 60.0
#: The error rate, in percent, above which an agent reports itself degraded.
DEGRADED_ERROR_RATE = 5.0

# Codes that say the caller asked for something wrong, not that the agent failed; like the
# orchestrator's breakers, the agent's error rate leaves them out.
_CALLER_ERRORS = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)


class AgentError(Exception):
    """An operation answers with a status code instead of a response."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class InjectedFault(Exception):
    """An operation fails because an injected fault says so; answered with the fault's status code."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid_argument(field: str, problem: str) -> AgentError:
    """Returns the INVALID_ARGUMENT error for a bad request field; the message starts with the field."""
    return AgentError(grpc.StatusCode.INVALID_ARGUMENT, f"{field} {problem}")


def not_found(message: str) -> AgentError:
    """Returns a NOT_FOUND error."""
    return AgentError(grpc.StatusCode.NOT_FOUND, message)


def require_user_id(user_id: str) -> None:
    """Checks the ``user_id`` field every operation requires.

    Raises:
        AgentError: INVALID_ARGUMENT "user_id is required".
    """
    if not user_id.strip():
        raise AgentError(grpc.StatusCode.INVALID_ARGUMENT, "user_id is required")


def quality(score: float | None = None, **metrics: float) -> common_pb2.Quality:
    """Returns a Quality report; the score defaults to the mean of the metrics.

    Args:
        score: The overall score from 0 to 100; None for the mean of `metrics`.
        **metrics: Named metrics from 0 to 100; each is clamped into that range.
    """
    clamped = {name: round(min(100.0, max(0.0, value)), 1) for name, value in metrics.items()}
    if score is None:
        score = sum(clamped.values()) / len(clamped) if clamped else 0.0
    return common_pb2.Quality(metrics=clamped, score=round(min(100.0, max(0.0, score)), 1))


class AgentRuntime:
    """The measured behaviour of one agent: in-flight operations, recent latency and errors, faults.

    Everything here is touched by every operation on the event loop's thread, so it is plain
    attributes and a fixed ring of recent outcomes: no locks, no allocation per operation.
    """

    def __init__(self, name: str, operations: Iterable[str]) -> None:
        self.name = name
        self.operations = frozenset(operations)
        self.in_flight = 0
        self.served = 0
        self.faults: FaultState | None = None
        # The faults to inject, or None when they inject nothing: the one check every call pays.
        self.active_faults: FaultState | None = None
        self._durations = [0.0] * WINDOW
        self._failures = [False] * WINDOW
        # perf_counter readings when each outcome was recorded; -inf marks an empty slot.
        self._finished = [-math.inf] * WINDOW
        self._cursor = 0

    def set_faults(self, faults: FaultState) -> None:
        """Puts a fault configuration in force for this agent's operations."""
        self.faults = faults
        self.active_faults = None if faults.inert else faults

    def finish(self, started: float, failed: bool) -> None:
        """Records one finished operation that started at `started` (a perf_counter reading)."""
        cursor = self._cursor
        now = time.perf_counter()
        self._durations[cursor] = now - started
        self._failures[cursor] = failed
        self._finished[cursor] = now
        self._cursor = (cursor + 1) % WINDOW
        self.served += 1
        self.in_flight -= 1

    def status(self, metrics: dict[str, Any] | None = None) -> common_pb2.AgentStatus:
        """Returns the agent's AgentStatus from what it measured.

        Args:
            metrics: The agent-specific metrics by their seed names.
        """
        recent = self._recent()
        mean_seconds = sum(d for d, _ in recent) / len(recent) if recent else 0.0
        error_rate = 100.0 * sum(f for _, f in recent) / len(recent) if recent else 0.0
        health = (
            common_pb2.AGENT_HEALTH_DEGRADED if error_rate > DEGRADED_ERROR_RATE else common_pb2.AGENT_HEALTH_HEALTHY
        )
        status = common_pb2.AgentStatus(
            agent=self.name,
            status=health,
            load=round(min(100.0, 100.0 * self.in_flight / CAPACITY), 1),
            error_rate=round(error_rate, 2),
            queue_depth=max(0, self.in_flight - CAPACITY),
            requests_served=self.served,
        )
        status.response_time.FromNanoseconds(round(mean_seconds * 1e9))
        if metrics:
            status.metrics.update(metrics)
        return status

    @property
    def error_rate(self) -> float:
        """The recent error rate, in percent."""
        recent = self._recent()
        return 100.0 * sum(f for _, f in recent) / len(recent) if recent else 0.0

    def _recent(self) -> list[tuple[float, bool]]:
        """Returns (duration, failed) of the last WINDOW operations of the last RECENT_SECONDS."""
        since = time.perf_counter() - RECENT_SECONDS
        return [
            (duration, failed)
            for duration, failed, finished in zip(self._durations, self._failures, self._finished, strict=True)
            if finished >= since
        ]


async def abort(context: grpc.aio.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """Ends the call with `code` and `message`; never returns."""
    await context.abort(code, message)
    # context.abort always raises; this line only tells type checkers so.
    raise RuntimeError("grpc.aio context.abort returned")


class Servicer(Protocol):
    """A servicer whose operations are wrapped by :func:`operation`."""

    runtime: AgentRuntime


S = TypeVar("S", bound=Servicer)
Req = TypeVar("Req", bound=Message)
Resp = TypeVar("Resp", bound=Message)

AsyncOperation = Callable[[S, Req, grpc.aio.ServicerContext], Awaitable[Resp]]


def operation(fn: Callable[[S, Req, grpc.aio.ServicerContext], Resp]) -> AsyncOperation[S, Req, Resp]:
    """Turns a synchronous operation into a gRPC handler that injects faults and measures itself.

    Faults come before the operation (crash, latency, failure) except latency_after_effect,
    which delays the answer of an operation that succeeded.

    The operation does its work synchronously (it is small and CPU-bound, so one coroutine per
    call is enough) and reports bad input by raising :class:`AgentError`.
    """
    name = fn.__name__

    @functools.wraps(fn)
    async def handler(self: S, request: Req, context: grpc.aio.ServicerContext) -> Resp:
        runtime = self.runtime
        started = time.perf_counter()
        runtime.in_flight += 1
        failed = True
        try:
            faults = runtime.active_faults
            if faults is not None and faults.operations and name not in faults.operations:
                faults = None
            if faults is not None:
                await faults.inject(runtime.name, name)
            response = fn(self, request, context)
            failed = False
            if faults is not None:
                # The effect is done (and, for the ledger, committed); only the answer waits.
                await faults.after_effect()
            return response
        except AgentError as error:
            failed = error.code not in _CALLER_ERRORS
            await abort(context, error.code, error.message)
        except InjectedFault as fault:
            await abort(context, fault.code, fault.message)
        except Exception:
            logger.exception("%s.%s failed", runtime.name, name)
            await abort(context, grpc.StatusCode.INTERNAL, f"{runtime.name}.{name} failed unexpectedly")
        finally:
            runtime.finish(started, failed)

    return handler
