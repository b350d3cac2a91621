"""The client's errors: one exception class per status code a caller handles, each keeping the code and details."""

from __future__ import annotations

from typing import Any

import grpc
from google.rpc import error_details_pb2, status_pb2

_STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailer of gRPC's rich error model: a serialized ``google.rpc.Status`` (server/api/errors.py sends it)."""


class BatonError(Exception):
    """Every error the client raises.

    Attributes:
        code: the gRPC status code, or None for an error of the client itself (a watch that
            could not be resumed).
        details: the server's message (it names the offending field), or the client's.
    """

    code: grpc.StatusCode | None = None

    def __init__(self, details: str, *, code: grpc.StatusCode | None = None) -> None:
        super().__init__(details)
        self.details = details
        if code is not None:
            self.code = code

    def __str__(self) -> str:
        return f"{self.code.name}: {self.details}" if self.code is not None else self.details


class RpcError(BatonError):
    """A call the server answered with an error status (its subclasses name the common codes).

    Attributes:
        retry_after: seconds the server asked the client to wait before trying again (a
            ``google.rpc.RetryInfo`` in the status details, sent with RESOURCE_EXHAUSTED); None
            without such a hint.
    """

    code: grpc.StatusCode

    def __init__(self, details: str, *, code: grpc.StatusCode, retry_after: float | None = None) -> None:
        super().__init__(details, code=code)
        self.retry_after = retry_after


class InvalidArgument(RpcError):
    """INVALID_ARGUMENT: the request is wrong; the details name the field."""


class NotFound(RpcError):
    """NOT_FOUND: no such execution (or not one of yours), step, or output."""


class AlreadyExists(RpcError):
    """ALREADY_EXISTS: something with that name exists already."""


class FailedPrecondition(RpcError):
    """FAILED_PRECONDITION: the execution's state forbids the control (pausing a finished one, say)."""


class PermissionDenied(RpcError):
    """PERMISSION_DENIED: the caller's role does not allow the call."""


class Unauthenticated(RpcError):
    """UNAUTHENTICATED: a bearer token is missing, expired or badly signed."""


class ResourceExhausted(RpcError):
    """RESOURCE_EXHAUSTED: a limit was reached (the admission queue, a size, a rate); see retry_after."""


class Unavailable(RpcError):
    """UNAVAILABLE: the server cannot be reached, or is shutting down (retried where that is safe)."""


class DeadlineExceeded(RpcError):
    """DEADLINE_EXCEEDED: the call took longer than its deadline."""


class WatchError(BatonError):
    """A watch could not be resumed: the server stayed unreachable, or kept ending the stream early.

    Attributes:
        execution_id: the execution watched.
        last_sequence: the last sequence delivered; watch again with after_sequence=last_sequence.
    """

    def __init__(self, details: str, *, execution_id: str, last_sequence: int) -> None:
        super().__init__(details)
        self.execution_id = execution_id
        self.last_sequence = last_sequence


_CLASSES: dict[grpc.StatusCode, type[RpcError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDenied,
    grpc.StatusCode.UNAUTHENTICATED: Unauthenticated,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceeded,
}
"""Status code → the exception raised for it; any other code raises RpcError itself."""


def _retry_after(metadata: Any) -> float | None:
    for key, value in metadata or ():
        if key != _STATUS_DETAILS_KEY or not isinstance(value, bytes):
            continue
        status = status_pb2.Status()
        try:
            status.ParseFromString(value)
        except ValueError:  # DecodeError: a trailer we cannot read is no hint
            return None
        for detail in status.details:
            info = error_details_pb2.RetryInfo()
            if detail.Unpack(info):
                return float(info.retry_delay.ToNanoseconds()) / 1e9
    return None


def from_rpc_error(error: grpc.aio.AioRpcError) -> RpcError:
    """Returns the client's exception for a failed call, keeping its code, details and retry hint."""
    code = error.code()
    cls = _CLASSES.get(code, RpcError)
    return cls(error.details() or "", code=code, retry_after=_retry_after(error.trailing_metadata()))
