"""Every RPC's method handler, wrapped once at registration: bad bytes and unread streams have answers.

Rules:

- Malformed request bytes are not this module's: `agents_clients.handlers.MalformedRequests`,
  installed on the server, answers them INVALID_ARGUMENT before any behaviour here runs.
- **A server stream writes one message at a time, and only to a client that takes it.** The
  stream's generator is drawn only once the previous message was taken by the transport (its
  write completed: within the client's HTTP/2 window). A write still pending after
  ``watch_stall`` seconds ends the stream RESOURCE_EXHAUSTED; the message names the limit and
  the ``after_sequence`` to resume from. The pending update is still delivered before that
  status if the client reads later, so the sequence named is that update's.
- **What a client has not taken is counted, and bounded.** Each message's bytes are counted
  against its user (see server.api.quotas) from the write until it completes, which may be
  after the stream ended (gRPC keeps the queued message until the client reads it or goes), and
  a write that would pass the user's or the server's bound ends the stream first. With the
  user's number of open streams also bounded, what a caller can pin is bounded in bytes.

Why at registration and not an interceptor: the handlers are wrapped once, not per call, and
whatever interceptors other parts install stay independent of this.

Why the initial metadata is sent before the first message: grpc.aio marks it sent only when
the first write completes, so aborting while that write is pending would send it a second time
and the status would be lost (the call would hang until the connection closes).
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import Any

import grpc

from server.api.errors import RequestError
from server.api.quotas import WatchLedger, resource_exhausted, watcher
from server.api.shared_updates import SerializedUpdate
from server.config import LimitsConfig

logger = logging.getLogger(__name__)


class HandlerGuard:
    """Wraps method handlers as the module docstring says; one per server."""

    def __init__(self, limits: LimitsConfig | None = None) -> None:
        """Wraps handlers under `limits` (the watch quotas; the defaults when None)."""
        self.quotas = limits or LimitsConfig()
        self.ledger = WatchLedger(self.quotas)

    def server(self, server: grpc.aio.Server) -> _GuardedServer:
        """A stand-in for `server` to pass to the generated ``add_XServicer_to_server`` functions."""
        return _GuardedServer(server, self)

    def wrap(self, method: str, handler: Any) -> Any:
        """Returns the method handler with its server stream's behaviour wrapped."""
        if handler is None or handler.request_streaming or not handler.response_streaming:
            return handler  # only server streams have writes to bound
        return handler._replace(
            response_serializer=_passing_bytes(handler.response_serializer),
            unary_stream=self._stream(method, handler.unary_stream),
        )

    def _stream(self, method: str, behaviour: Callable[..., AsyncGenerator[Any, None]]) -> Callable[..., Any]:
        # An async generator that yields nothing and writes itself: interceptors (OpenTelemetry's)
        # iterate a server stream's behaviour, so it must be one, and the writes must be its own.
        async def stream(request: Any, context: grpc.aio.ServicerContext) -> AsyncGenerator[Any, None]:
            user = watcher(context.peer())
            try:
                self.ledger.open(user)
            except RequestError as error:
                await context.abort(error.code, error.message)
            try:
                ending = await self._write_all(user, request, behaviour(request, context), context)
                if ending is not None:
                    # gRPC sends this status after the pending update, so the abort returns only
                    # once the client took it or went away: the slot stays counted until then.
                    await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, ending)
            finally:
                self.ledger.close(user)
            return
            yield  # pragma: no cover (makes this an async generator)

        return stream

    async def _write_all(
        self, user: str, request: Any, items: AsyncGenerator[Any, None], context: grpc.aio.ServicerContext
    ) -> str | None:
        """Writes every item as the module docstring says; returns why the stream must end, if it must."""
        quotas = self.quotas
        sent = int(getattr(request, "after_sequence", 0) or 0)
        started = False
        try:
            async for item in items:
                if not started:
                    await context.send_initial_metadata(())
                    started = True
                # Serialized here, so that a pending write holds these bytes, not the message too;
                # an update shared among watches comes serialized already.
                data = item.data if isinstance(item, SerializedUpdate) else item.SerializeToString()
                size = len(data)
                broken = self.ledger.reserve(user, size)
                if broken is not None:
                    bound = getattr(quotas, broken) // (1024 * 1024)
                    why = f"more than {bound} MiB of watch updates are sent and not yet read"
                    return _ending(broken, why, sent)
                write = asyncio.ensure_future(context.write(data))
                # Whatever ends the stream meanwhile, the bytes stay counted until the write settles.
                write.add_done_callback(functools.partial(self._written, user, size))
                done, _ = await asyncio.wait({write}, timeout=quotas.watch_stall or None)
                if not done:
                    why = f"the stream was not read for {quotas.watch_stall:g}s with {size} bytes waiting"
                    return _ending("watch_stall", why, getattr(item, "sequence", sent))
                write.result()
                sent = getattr(item, "sequence", sent)
            return None
        finally:
            # Before any abort: the generator's history and state go now, not when the client reads.
            await items.aclose()

    def _written(self, user: str, size: int, write: asyncio.Future[None]) -> None:
        self.ledger.release(user, size)
        if not write.cancelled():
            write.exception()  # retrieved: a write that failed because the client left is no news


def _ending(limit: str, why: str, resume: int) -> str:
    """The RESOURCE_EXHAUSTED message ending a stream: the limit, and the after_sequence to resume from."""
    return resource_exhausted(limit, f"{why}; resume with after_sequence={resume}").message


def _passing_bytes(serialize: Callable[[Any], bytes] | None) -> Callable[[Any], bytes]:
    def passing(message: Any) -> bytes:
        if isinstance(message, bytes) or serialize is None:
            return message  # type: ignore[no-any-return]
        return serialize(message)

    return passing


class _GuardedServer:
    """Takes the generated registration calls and hands the server wrapped handlers."""

    def __init__(self, server: grpc.aio.Server, guard: HandlerGuard) -> None:
        self._server = server
        self._guard = guard

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        wrapped = {name: self._guard.wrap(f"/{service}/{name}", h) for name, h in handlers.items()}
        self._server.add_registered_method_handlers(service, wrapped)

    def add_generic_rpc_handlers(self, generic_handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(tuple(_GuardedGeneric(g, self._guard) for g in generic_handlers))


class _GuardedGeneric(grpc.GenericRpcHandler):  # type: ignore[misc]
    def __init__(self, inner: Any, guard: HandlerGuard) -> None:
        self._inner = inner
        self._guard = guard
        self._cache: dict[str, Any] = {}

    def service(self, handler_call_details: Any) -> Any:
        method = handler_call_details.method
        wrapped = self._cache.get(method)
        if wrapped is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None  # not this service's: nothing cached, whatever names callers make up
            wrapped = self._cache[method] = self._guard.wrap(method, handler)
        return wrapped
