"""One table mapping domain errors to gRPC status codes, applied around every RPC."""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TypeVar

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2

from server.engine import ExecutionStateError, FoldError, UnknownStepError
from server.engine.admission import QueueFullError
from server.planner import PlanningError
from server.quoting import quote
from server.registry import RegistryFullError, WorkflowConflictError, WorkflowNotFoundError, WorkflowRefusedError
from server.store.base import CorruptHistoryError, ExecutionNotFoundError, InvalidKeyError, InvalidPageTokenError
from server.streaming import WatchInterruptedError

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
"""Characters of a status message at most: each names what was wrong and quotes a bounded prefix
of the input (server.quoting), and this cut keeps any that does not from growing with the input."""

_S = TypeVar("_S")
_Req = TypeVar("_Req")
_Resp = TypeVar("_Resp")


class RequestError(Exception):
    """A request the API rejects itself, with the status code and a message naming the field.

    Attributes:
        retry_after: seconds the client should wait before trying again, sent as a
            ``google.rpc.RetryInfo`` in the status details; None for no hint.
    """

    def __init__(self, code: grpc.StatusCode, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after


STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailer gRPC's rich error model reads (grpc_status.rpc_status.from_call): a serialized
``google.rpc.Status`` whose code and message repeat the call's."""


def retry_details(code: grpc.StatusCode, message: str, retry_after: float) -> tuple[tuple[str, bytes], ...]:
    """The trailing metadata carrying a ``google.rpc.RetryInfo`` for a status (what
    ``grpc_status.rpc_status.to_status`` builds, without needing grpcio-status)."""
    delay = duration_pb2.Duration()
    delay.FromNanoseconds(round(retry_after * 1e9))
    detail = status_pb2.Status(code=code.value[0], message=message)
    detail.details.add().Pack(error_details_pb2.RetryInfo(retry_delay=delay))
    return ((STATUS_DETAILS_KEY, detail.SerializeToString()),)


def retry_after_of(exc: Exception) -> float | None:
    """The retry hint a domain error carries, if any."""
    if isinstance(exc, RequestError):
        return exc.retry_after
    if isinstance(exc, QueueFullError):
        return exc.retry_after
    return None


def invalid(field: str, message: str) -> RequestError:
    """An INVALID_ARGUMENT naming the field."""
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")


_TABLE: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (PlanningError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidPageTokenError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidKeyError, grpc.StatusCode.INVALID_ARGUMENT),
    # A rerun's from_step that is not a step of the execution's plan.
    (UnknownStepError, grpc.StatusCode.INVALID_ARGUMENT),
    (ExecutionNotFoundError, grpc.StatusCode.NOT_FOUND),
    (ExecutionStateError, grpc.StatusCode.FAILED_PRECONDITION),
    # The admission queue is full (server/engine/admission.py): retry later, with the hint.
    (QueueFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
    # An execution whose history cannot be read or folded (the RPCs that read histories
    # quarantine it first; this keeps any other road from answering INTERNAL).
    (CorruptHistoryError, grpc.StatusCode.FAILED_PRECONDITION),
    (FoldError, grpc.StatusCode.FAILED_PRECONDITION),
    # A watch the server ends before its execution did: the client resumes with after_sequence.
    (WatchInterruptedError, grpc.StatusCode.UNAVAILABLE),
    # The workflow registry (server/registry.py): an unknown type or version, a version that
    # exists with another definition, a deprecated or unusable one, too many of them.
    (WorkflowNotFoundError, grpc.StatusCode.NOT_FOUND),
    (WorkflowConflictError, grpc.StatusCode.ALREADY_EXISTS),
    (WorkflowRefusedError, grpc.StatusCode.FAILED_PRECONDITION),
    (RegistryFullError, grpc.StatusCode.RESOURCE_EXHAUSTED),
)


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str] | None:
    """The status code and message for a domain error; None when it is not one."""
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    if isinstance(exc, ExecutionNotFoundError):
        return grpc.StatusCode.NOT_FOUND, f"execution_id: no execution {quote(exc.args[0])}"
    for kind, code in _TABLE:
        if isinstance(exc, kind):
            return code, str(exc)
    return None


async def _abort(context: grpc.aio.ServicerContext, rpc: str, exc: Exception) -> None:
    """Aborts the RPC with the table's status for `exc` (INTERNAL, logged, for anything else)."""
    if isinstance(exc, grpc.aio.AbortError):
        raise exc
    status = status_of(exc)
    if status is None:
        logger.exception("%s failed", rpc, exc_info=exc)
        await context.abort(grpc.StatusCode.INTERNAL, f"{rpc} failed: {type(exc).__name__}")
    else:
        code, message = status
        if len(message) > MAX_MESSAGE_CHARS:
            message = message[:MAX_MESSAGE_CHARS] + "…"
        retry_after = retry_after_of(exc)
        if retry_after is None:
            await context.abort(code, message)
        else:
            await context.abort(code, message, trailing_metadata=retry_details(code, message, retry_after))


def unary(
    method: Callable[[_S, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]],
) -> Callable[[_S, _Req, grpc.aio.ServicerContext], Awaitable[_Resp]]:
    """Wraps a unary RPC so that domain errors become the table's status codes."""

    @functools.wraps(method)
    async def wrapper(self: _S, request: _Req, context: grpc.aio.ServicerContext) -> _Resp:
        try:
            return await method(self, request, context)
        except Exception as exc:
            await _abort(context, method.__name__, exc)
            raise  # abort() raises; this only tells the type checker

    return wrapper


def streaming(
    method: Callable[[_S, _Req, grpc.aio.ServicerContext], AsyncIterator[_Resp]],
) -> Callable[[_S, _Req, grpc.aio.ServicerContext], AsyncIterator[_Resp]]:
    """Wraps a server-streaming RPC so that domain errors become the table's status codes."""

    @functools.wraps(method)
    async def wrapper(self: _S, request: _Req, context: grpc.aio.ServicerContext) -> AsyncIterator[_Resp]:
        try:
            async for item in method(self, request, context):
                yield item
        except Exception as exc:
            await _abort(context, method.__name__, exc)
            raise

    return wrapper
