"""Server-side method handlers rewrapped by interceptors, and malformed request bytes refused.

Rules:

- **Malformed request bytes are INVALID_ARGUMENT, on every service of every server** (the
  orchestrator's, its health port, the agents' fleet; grpc.health.v1 and reflection included).
  gRPC deserializes a request before any servicer code runs; a DecodeError there would answer
  UNKNOWN with the exception's class name and log a traceback per request. `MalformedRequests`
  gives each handler a deserializer that never raises: it hands the behaviour a `Malformed`
  marker, and the behaviour answers INVALID_ARGUMENT naming the message type. A client-streaming
  call's messages are checked one by one as the servicer draws them.
- Refusals are logged as one short line at most every `LOG_EVERY` seconds, with how many there
  were, never a traceback each.
- `with_preamble` is the one way to put a step in front of a handler's behaviour (the
  authentication interceptor admits the caller with it), whatever the handler's kind.

Install `MalformedRequests` as the LAST interceptor of a server, so that the ones before it
(authentication) answer first: a caller without a token learns nothing from its bytes.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

logger = logging.getLogger(__name__)

LOG_EVERY = 60.0
"""Seconds between two log lines about malformed requests."""

Preamble = Callable[[Any, grpc.aio.ServicerContext], Awaitable[None]]
"""Runs before a behaviour, with the request (None for a client stream) and the call's context."""


class Malformed:
    """What a guarded deserializer returns for bytes that are not the request message."""

    __slots__ = ("message",)

    def __init__(self, message: str) -> None:
        self.message = message


def guarded_deserializer(deserialize: Callable[[bytes], Any] | None, type_name: str) -> Callable[[bytes], Any]:
    """`deserialize`, returning a `Malformed` instead of raising."""

    def parse(data: bytes) -> Any:
        if deserialize is None:
            return data
        try:
            return deserialize(data)
        except Exception as error:
            # DecodeError (truncated, wrong wire types, invalid UTF-8, nesting past 100 levels) or
            # whatever else the parser raises: never the servicer's problem.
            return Malformed(f"request: the bytes are not a valid {type_name} ({str(error)[:200]})")

    return parse


def with_preamble(
    handler: grpc.RpcMethodHandler,
    preamble: Preamble,
    request_deserializer: Callable[[bytes], Any] | None = None,
    each_request: Preamble | None = None,
) -> grpc.RpcMethodHandler:
    """The handler with `preamble` awaited before its behaviour, whatever the handler's kind.

    Args:
        handler: the handler to wrap.
        preamble: awaited first; it may abort the call.
        request_deserializer: replaces the handler's, when given.
        each_request: for client-streaming handlers, awaited with each request as it is drawn.
    """
    h: Any = handler
    serializers = {
        "request_deserializer": request_deserializer or h.request_deserializer,
        "response_serializer": h.response_serializer,
    }
    if h.unary_unary is not None:
        unary = h.unary_unary

        async def unary_unary(request: object, context: grpc.aio.ServicerContext) -> object:
            await preamble(request, context)
            return await unary(request, context)

        return grpc.unary_unary_rpc_method_handler(unary_unary, **serializers)

    def drawn(requests: AsyncIterator[object], context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
        if each_request is None:
            return requests

        async def checked() -> AsyncIterator[object]:
            async for request in requests:
                await each_request(request, context)
                yield request

        return checked()

    if h.stream_unary is not None:
        client_stream = h.stream_unary

        async def stream_unary(requests: AsyncIterator[object], context: grpc.aio.ServicerContext) -> object:
            await preamble(None, context)
            return await client_stream(drawn(requests, context), context)

        return grpc.stream_unary_rpc_method_handler(stream_unary, **serializers)

    request_streaming = h.unary_stream is None
    streaming = h.stream_stream if request_streaming else h.unary_stream

    async def respond(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[object]:
        await preamble(None if request_streaming else request, context)
        result = streaming(drawn(request, context) if request_streaming else request, context)
        if inspect.isasyncgen(result) or hasattr(result, "__aiter__"):
            async for response in result:
                yield response
        else:
            await result  # a behaviour that writes with context.write()

    if request_streaming:
        return grpc.stream_stream_rpc_method_handler(respond, **serializers)
    return grpc.unary_stream_rpc_method_handler(respond, **serializers)


class _RefusalLog:
    """Logs malformed requests as one line per `LOG_EVERY` seconds, with a count."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._next = 0.0
        self._since = 0

    def record(self, method: str, message: str) -> None:
        self._since += 1
        now = self._clock()
        if now >= self._next:
            logger.warning(
                "%d malformed request(s) refused INVALID_ARGUMENT since the last report; latest to %s: %s",
                self._since,
                method,
                message[:120],
            )
            self._next = now + LOG_EVERY
            self._since = 0


class RewrappingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """An interceptor that rewraps each method's handler once, by `rewrap`, not on every call."""

    def __init__(self) -> None:
        # method → (the handler as found, the handler as wrapped).
        self._cache: dict[str, tuple[Any, grpc.RpcMethodHandler]] = {}

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None  # no such method: nothing cached, whatever names callers make up
        method: str = handler_call_details.method
        cached = self._cache.get(method)
        if cached is not None and cached[0] is handler:
            return cached[1]
        wrapped = self.rewrap(method, handler)
        self._cache[method] = (handler, wrapped)
        return wrapped

    def rewrap(self, method: str, handler: Any) -> grpc.RpcMethodHandler:
        """The handler to serve `method` with instead of `handler` (or `handler` itself)."""
        raise NotImplementedError


class MalformedRequests(RewrappingInterceptor):
    """Answers malformed request bytes INVALID_ARGUMENT on every method (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()
        self._refusals = _RefusalLog()

    def rewrap(self, method: str, handler: Any) -> grpc.RpcMethodHandler:
        deserialize = handler.request_deserializer
        message = getattr(getattr(deserialize, "__self__", None), "DESCRIPTOR", None)
        type_name = message.full_name if message is not None else "request"

        async def refuse(request: Any, context: grpc.aio.ServicerContext) -> None:
            if isinstance(request, Malformed):
                self._refusals.record(method, request.message)
                await context.abort(grpc.StatusCode.INVALID_ARGUMENT, request.message)

        return with_preamble(handler, refuse, guarded_deserializer(deserialize, type_name), each_request=refuse)


__all__ = [
    "LOG_EVERY",
    "Malformed",
    "MalformedRequests",
    "Preamble",
    "RewrappingInterceptor",
    "guarded_deserializer",
    "with_preamble",
]
