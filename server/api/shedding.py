"""Load shedding: a burst the server cannot take is answered RESOURCE_EXHAUSTED with a retry hint.

Rules:

- **Unary calls in flight are bounded** (`LimitsConfig.max_calls_in_flight`): a call that arrives
  while that many are being handled is answered RESOURCE_EXHAUSTED at once, with a
  ``google.rpc.RetryInfo`` (`LimitsConfig.calls_retry_after`) in the status details, before any
  other work (authentication, decoding checks, the store). Refusing is cheap, so the server
  drains a burst at the speed it can refuse, not at the speed it can serve.
- **gRPC's own backlog never cancels a call.** gRPC core queues calls the application has not
  yet picked up, and past ``grpc.server.max_pending_requests`` (1,000) it cancels them at random,
  all of them past the hard limit (3,000): the client sees a bare CANCELLED. `PENDING_OPTIONS`
  raise both to `PENDING_CALLS`, far past what shedding lets build up. It also cancels a call
  held there for 30 s; `PENDING_OPTIONS` make that `UNREQUESTED_SECONDS`, past any sensible
  deadline. (The application picks calls up one per event loop turn or so: during a burst that
  keeps the loop busy, calls do wait there.)
- Server streams (watches) are not counted: they are long by design and bounded per user and in
  bytes (server.api.watch limits).

Install `LoadShedder` as the first interceptor after tracing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import grpc

from agents_clients.handlers import RewrappingInterceptor
from server.api.errors import retry_details

logger = logging.getLogger(__name__)

PENDING_CALLS = 10_000
"""Calls gRPC core may hold before the application picks them up (its default is 1,000, then
random early drop up to 3,000)."""

UNREQUESTED_SECONDS = 300
"""Seconds gRPC core may hold a call the application has not picked up before it cancels it (its
default, 30 s, cancelled a fifth of a 5,000-call burst on a busy machine with a bare CANCELLED
although each call's deadline was 60 s; now the caller's deadline decides)."""

PENDING_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.server.max_pending_requests", PENDING_CALLS),
    ("grpc.server.max_pending_requests_hard_limit", PENDING_CALLS),
    ("grpc.server_max_unrequested_time_in_server", UNREQUESTED_SECONDS),
)
"""Server options that stop gRPC core from cancelling calls of a burst (see the module docstring)."""

LOG_EVERY = 10.0
"""Seconds between two log lines about shed calls."""


class LoadShedder(RewrappingInterceptor):
    """Bounds the unary calls in flight; the ones past the bound are refused with a retry hint."""

    def __init__(self, max_in_flight: int, retry_after: float, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.max_in_flight = max_in_flight
        self.retry_after = retry_after
        self.in_flight = 0
        self.shed = 0
        """Calls refused since start."""
        self._clock = clock
        self._next_log = 0.0
        self._shed_since_log = 0
        self._message = (
            f"the server is handling {max_in_flight} calls at once; retry after {retry_after:g}s "
            "(see the RetryInfo in the status details)"
        )
        self._details = retry_details(grpc.StatusCode.RESOURCE_EXHAUSTED, self._message, retry_after)

    def rewrap(self, method: str, handler: Any) -> grpc.RpcMethodHandler:
        if handler.unary_unary is None:
            return handler  # streams are bounded elsewhere
        behaviour = handler.unary_unary

        async def bounded(request: object, context: grpc.aio.ServicerContext) -> object:
            if self.in_flight >= self.max_in_flight:
                self._refused()
                await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, self._message, trailing_metadata=self._details)
            self.in_flight += 1
            try:
                return await behaviour(request, context)
            finally:
                self.in_flight -= 1

        return grpc.unary_unary_rpc_method_handler(
            bounded,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )

    def _refused(self) -> None:
        self.shed += 1
        self._shed_since_log += 1
        now = self._clock()
        if now >= self._next_log:
            logger.warning(
                "%d call(s) refused RESOURCE_EXHAUSTED since the last report: %d calls were in flight",
                self._shed_since_log,
                self.in_flight,
            )
            self._next_log = now + LOG_EVERY
            self._shed_since_log = 0


__all__ = ["PENDING_OPTIONS", "LoadShedder"]
