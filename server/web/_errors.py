"""gRPC status → HTTP status for the web view's JSON API: one table, one JSON error shape."""

from __future__ import annotations

import json

import grpc
from aiohttp import web

HTTP_STATUS: dict[grpc.StatusCode, int] = {
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.FAILED_PRECONDITION: 409,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}
"""What each gRPC status becomes; anything else (INTERNAL, UNKNOWN, DATA_LOSS) is 502: the
orchestrator, not this view, failed."""


def error_body(code: str, message: str) -> dict[str, dict[str, str]]:
    """The JSON every error answer carries: {"error": {"code": ..., "message": ...}}."""
    return {"error": {"code": code, "message": message}}


def from_rpc_error(error: grpc.aio.AioRpcError) -> web.Response:
    """The HTTP answer of a failed RPC: its status mapped by HTTP_STATUS, its code and details in the body."""
    code = error.code()
    status = HTTP_STATUS.get(code, 502)
    response = web.json_response(error_body(code.name, error.details() or code.name), status=status)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        response.headers["Retry-After"] = "1"
    if code == grpc.StatusCode.UNAUTHENTICATED:
        response.headers["WWW-Authenticate"] = 'Bearer realm="baton"'
    return response


def json_error(status: int, code: str, message: str) -> web.Response:
    """An error answer made here (not by the orchestrator)."""
    return web.Response(text=json.dumps(error_body(code, message)), status=status, content_type="application/json")
