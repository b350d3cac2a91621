"""One table mapping domain errors to gRPC status codes, applied around every RPC."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import grpc

from server.planner import PlanningError
from server.store.base import ExecutionNotFoundError, InvalidPageTokenError

logger = logging.getLogger(__name__)


class RequestError(Exception):
    """A request the API rejects itself, with the status code and a message naming the field."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def invalid(field: str, message: str) -> RequestError:
    """An INVALID_ARGUMENT naming the field."""
    return RequestError(grpc.StatusCode.INVALID_ARGUMENT, f"{field}: {message}")


_TABLE: tuple[tuple[type[Exception], grpc.StatusCode], ...] = (
    (PlanningError, grpc.StatusCode.INVALID_ARGUMENT),
    (InvalidPageTokenError, grpc.StatusCode.INVALID_ARGUMENT),
    (ExecutionNotFoundError, grpc.StatusCode.NOT_FOUND),
)


def status_of(exc: Exception) -> tuple[grpc.StatusCode, str] | None:
    """The status code and message for a domain error; None when it is not one."""
    if isinstance(exc, RequestError):
        return exc.code, exc.message
    if isinstance(exc, ExecutionNotFoundError):
        return grpc.StatusCode.NOT_FOUND, f"execution_id: no execution {exc.args[0]!r}"
    for kind, code in _TABLE:
        if isinstance(exc, kind):
            return code, str(exc)
    return None


@asynccontextmanager
async def mapped_errors(context: grpc.aio.ServicerContext, rpc: str) -> AsyncIterator[None]:
    """Turns domain errors raised inside into the table's status; logs anything else."""
    try:
        yield
    except Exception as exc:
        if isinstance(exc, grpc.aio.AbortError):
            raise
        status = status_of(exc)
        if status is None:
            logger.exception("%s failed", rpc)
            await context.abort(grpc.StatusCode.INTERNAL, f"{rpc} failed: {type(exc).__name__}")
        else:
            await context.abort(*status)
