"""The web view: an aiohttp app serving the pages and a JSON API that calls the orchestrator's public gRPC API.

Rules:
1. Every answer of the JSON API comes from an RPC of the Orchestrator service, over a gRPC channel
   to the orchestrator itself, with the browser's Authorization header forwarded as metadata: the
   web view can do nothing its caller could not do with grpcurl, and authorization (server.auth)
   applies unchanged. A failed RPC's status maps to an HTTP status by one table (_errors.HTTP_STATUS).
2. Every input is checked before it reaches the RPC (_params): a bad one is a 400 naming it, never a 500.
3. Live updates are server-sent events (GET /api/executions/{id}/events), one per ExecutionUpdate,
   each with `id: <sequence>`: a reconnecting EventSource sends it back as Last-Event-ID and the
   watch resumes with after_sequence, so no event is lost or repeated. The stream ends with an
   `end` event when the execution is terminal (so the browser stops reconnecting), or an `error`
   event carrying the RPC's code. At most `max_streams` streams are open per process (429 beyond);
   a stream is cancelled, and its watch with it, as soon as its client goes away.
4. Actions are POSTs with a JSON body (Content-Type application/json, and an Origin, if sent, naming
   the page's own host): a cross-site form cannot send one, so another site cannot make a browser
   cancel an execution on a server without authentication.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlsplit

import grpc
from aiohttp import web
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc
from google.protobuf import json_format
from google.protobuf.message import Message

from server.web import _params
from server.web._errors import from_rpc_error, json_error

logger = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
"""The pages, scripts and stylesheet (package data: shipped in the wheel)."""
RPC_TIMEOUT = 10.0
"""Seconds every unary RPC of the view may take."""
_PAGES = {"executions": "executions.html", "execution": "execution.html", "agents": "agents.html"}
_HEADERS = {
    # Scripts, styles and data only from this origin: no inline script, so an execution's data
    # rendered into the page can never run.
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}
_ACTIONS = ("approve", "reject", "pause", "resume", "cancel")


@dataclass(frozen=True)
class WebOptions:
    """What the web view serves and whom it calls."""

    listen: str
    """HOST:PORT to serve on (port 0: any free port)."""
    target: str
    """The orchestrator's gRPC target (HOST:PORT or unix:PATH), called in plaintext."""
    ssl_context: ssl.SSLContext | None = None
    """Serve HTTPS with this context; None: plain HTTP."""
    max_streams: int = 64
    """The most live-update streams open at once in this process; more get 429."""
    max_message_bytes: int = 4 * 1024 * 1024
    """The largest gRPC message accepted from the orchestrator (its own limit)."""


@dataclass
class WebView:
    """A started web view."""

    address: str
    """HOST:PORT actually bound."""
    scheme: str
    """http or https."""
    _runner: web.AppRunner
    _channel: grpc.aio.Channel
    _handlers: _Handlers = field(repr=False)

    @property
    def url(self) -> str:
        """The view's base URL (no trailing slash)."""
        return f"{self.scheme}://{self.address}"

    @property
    def open_streams(self) -> int:
        """Live-update streams open now."""
        return self._handlers.open_streams

    async def close(self) -> None:
        """Stops serving: open streams are cancelled, then the channel closes."""
        await self._runner.cleanup()
        await self._channel.close()


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def dumps(message: Message) -> str:
    """A message as JSON with proto field names; a non-finite number (JSON has none) becomes a string."""
    data = json_format.MessageToDict(message, preserving_proto_field_name=True)
    try:
        return json.dumps(data, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(data), allow_nan=False, separators=(",", ":"))


def _answer(message: Message) -> web.Response:
    try:
        text = dumps(message)
    except TypeError as error:
        # An Any whose type this process does not know: the orchestrator's answer, not the input, is at fault.
        logger.warning("cannot render %s as JSON: %s", message.DESCRIPTOR.name, error)
        return json_error(502, "INTERNAL", f"the orchestrator's {message.DESCRIPTOR.name} cannot be shown as JSON")
    return web.Response(text=text, content_type="application/json", headers={"Cache-Control": "no-store"})


class _Handlers:
    """The routes' handlers, over one Orchestrator stub."""

    def __init__(self, stub: orchestrator_pb2_grpc.OrchestratorStub, max_streams: int) -> None:
        self.stub = stub
        self.max_streams = max_streams
        self._streams: set[asyncio.Task[Any]] = set()

    @property
    def open_streams(self) -> int:
        """Live-update streams open now."""
        return len(self._streams)

    async def close_streams(self, app: web.Application) -> None:
        """Ends every open stream (on shutdown: a stream never ends by itself while its execution runs);
        their clients reconnect with Last-Event-ID, to another replica if this one is going away."""
        for task in list(self._streams):
            task.cancel()

    async def _call(
        self, method: Callable[..., Awaitable[Message]], request: Message, http: web.Request
    ) -> web.Response:
        metadata = _params.authorization(http)
        try:
            return _answer(await method(request, metadata=metadata, timeout=RPC_TIMEOUT))
        except grpc.aio.AioRpcError as error:
            return from_rpc_error(error)

    async def list_executions(self, request: web.Request) -> web.Response:
        q = _params.list_query(request)
        rpc = orchestrator_pb2.ListExecutionsRequest(
            user_id=q.user, workflow_type=q.workflow, page_size=q.page_size, page_token=q.page_token
        )
        rpc.status.extend(q.states)  # type: ignore[arg-type]
        return await self._call(self.stub.ListExecutions, rpc, request)

    async def get_execution(self, request: web.Request) -> web.Response:
        _params.query(request, {})
        rpc = orchestrator_pb2.GetExecutionRequest(execution_id=_params.execution_id(request))
        return await self._call(self.stub.GetExecution, rpc, request)

    async def health(self, request: web.Request) -> web.Response:
        _params.query(request, {})
        return await self._call(self.stub.GetSystemHealth, orchestrator_pb2.GetSystemHealthRequest(), request)

    async def act(self, request: web.Request) -> web.Response:
        _params.query(request, {})
        execution_id = _params.execution_id(request)
        action = request.match_info["action"]
        if action not in _ACTIONS:
            return json_error(404, "NOT_FOUND", f"no action {action[:32]!r}; expected one of {', '.join(_ACTIONS)}")
        if request.content_type != "application/json":
            return json_error(415, "INVALID_ARGUMENT", "Content-Type: expected application/json")
        origin = request.headers.get("Origin")
        # The host only: behind a proxy that ends TLS the page's scheme is not the request's.
        if origin is not None and urlsplit(origin).netloc != request.host:
            return json_error(403, "PERMISSION_DENIED", "Origin: actions are taken from the view's own pages only")
        body = await _params.action_body(request)
        if body.payload is not None and action != "approve":
            raise _params.BadRequest("payload", "only approve takes a payload")
        if action in ("approve", "reject"):
            signal = execution_pb2.SIGNAL_APPROVE if action == "approve" else execution_pb2.SIGNAL_REJECT
            rpc: Message = orchestrator_pb2.SignalExecutionRequest(
                execution_id=execution_id, step_id=body.step_id, signal=signal, reason=body.reason
            )
            if body.payload is not None:
                try:
                    rpc.payload.update(body.payload)  # type: ignore[attr-defined]
                except (ValueError, TypeError, RecursionError):
                    raise _params.BadRequest("payload", "expected a JSON object of plain values") from None
            return await self._call(self.stub.SignalExecution, rpc, request)
        if body.step_id:
            raise _params.BadRequest("step_id", "only approve and reject take a step")
        if action == "pause":
            pause = orchestrator_pb2.PauseExecutionRequest(execution_id=execution_id, reason=body.reason)
            return await self._call(self.stub.PauseExecution, pause, request)
        if action == "resume":
            resume = orchestrator_pb2.ResumeExecutionRequest(execution_id=execution_id, reason=body.reason)
            return await self._call(self.stub.ResumeExecution, resume, request)
        cancel = orchestrator_pb2.CancelExecutionRequest(execution_id=execution_id, reason=body.reason)
        return await self._call(self.stub.CancelExecution, cancel, request)

    async def events(self, request: web.Request) -> web.StreamResponse:
        """Server-sent events of an execution's updates, from after Last-Event-ID (rule 3)."""
        execution_id = _params.execution_id(request)
        after = _params.resume_after(request)
        metadata = _params.authorization(request)
        if self.open_streams >= self.max_streams:
            refused = json_error(
                429, "RESOURCE_EXHAUSTED", f"{self.open_streams} live streams are open, the most allowed"
            )
            refused.headers["Retry-After"] = "5"
            return refused
        # The execution is looked up first, so that NOT_FOUND and PERMISSION_DENIED are HTTP statuses,
        # not events of a stream already answered 200.
        try:
            await self.stub.GetExecution(
                orchestrator_pb2.GetExecutionRequest(execution_id=execution_id), metadata=metadata, timeout=RPC_TIMEOUT
            )
        except grpc.aio.AioRpcError as error:
            return from_rpc_error(error)
        task = cast("asyncio.Task[Any]", asyncio.current_task())  # a handler always runs in a task
        self._streams.add(task)
        try:
            return await self._stream(request, execution_id, after, metadata)
        finally:
            self._streams.discard(task)

    async def _stream(
        self, request: web.Request, execution_id: str, after: int, metadata: tuple[tuple[str, str], ...]
    ) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        )
        await response.prepare(request)
        await response.write(b"retry: 2000\n\n")
        watch = orchestrator_pb2.WatchExecutionRequest(
            execution_id=execution_id, after_sequence=after, view=orchestrator_pb2.WATCH_VIEW_FULL
        )
        call = self.stub.WatchExecution(watch, metadata=metadata)
        try:
            async for update in call:
                await response.write(_sse(update))
            await response.write(b"event: end\ndata: {}\n\n")
        except grpc.aio.AioRpcError as error:
            data = json.dumps({"code": error.code().name, "message": error.details() or ""})
            await response.write(f"event: error\ndata: {data}\n\n".encode())
        except ConnectionError:
            pass  # the client went away: the watch is cancelled below
        finally:
            call.cancel()
        return response


def _sse(update: orchestrator_pb2.ExecutionUpdate) -> bytes:
    if update.heartbeat:
        if not update.HasField("status"):
            return b": heartbeat\n\n"
        # A status without an event (a capacity wait began or ended): no id, so Last-Event-ID stays
        # the last event's sequence.
        return f"event: status\ndata: {dumps(update.status)}\n\n".encode()
    kind = update.event.WhichOneof("kind")
    if kind is not None:
        body = getattr(update.event, kind)
        if "output" in body.DESCRIPTOR.fields_by_name:
            # Outputs are Any messages (their types may be unknown here) and can be large: the page
            # reads them once, from GetExecution's results.
            body.ClearField("output")
    return f"id: {update.sequence}\nevent: update\ndata: {dumps(update)}\n\n".encode()


def _page(name: str) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
    path = STATIC / _PAGES[name]

    async def page(request: web.Request) -> web.StreamResponse:
        return web.FileResponse(path, headers={"Cache-Control": "no-cache"})

    return page


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPFound("/executions")


@web.middleware
async def _json_errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """The API's errors are JSON, whatever raised them (an unknown path, a wrong method, a bad parameter)."""
    try:
        return await handler(request)
    except web.HTTPException as error:
        if not request.path.startswith("/api/") or error.status < 400 or error.content_type == "application/json":
            raise
        return json_error(error.status, error.reason.upper().replace(" ", "_"), f"{request.method} {request.path[:64]}")


async def _secure_headers(request: web.Request, response: web.StreamResponse) -> None:
    for name, value in _HEADERS.items():
        response.headers.setdefault(name, value)


def make_app(stub: orchestrator_pb2_grpc.OrchestratorStub, max_streams: int = 64) -> tuple[web.Application, _Handlers]:
    """The aiohttp application of the view over `stub` (tests build one over their own channel)."""
    handlers = _Handlers(stub, max_streams)
    app = web.Application(middlewares=[_json_errors], client_max_size=_params.MAX_BODY_BYTES)
    app.on_response_prepare.append(_secure_headers)
    app.on_shutdown.append(handlers.close_streams)
    app.router.add_get("/", _home)
    app.router.add_get("/executions", _page("executions"))
    app.router.add_get("/executions/{execution_id}", _page("execution"))
    app.router.add_get("/agents", _page("agents"))
    app.router.add_static("/static", STATIC, append_version=False)
    app.router.add_get("/api/executions", handlers.list_executions)
    app.router.add_get("/api/executions/{execution_id}", handlers.get_execution)
    app.router.add_get("/api/executions/{execution_id}/events", handlers.events, allow_head=False)
    app.router.add_post("/api/executions/{execution_id}/{action}", handlers.act)
    app.router.add_get("/api/health", handlers.health)
    return app, handlers


async def start_web_view(options: WebOptions) -> WebView:
    """Serves the view on options.listen, calling the orchestrator at options.target.

    Raises:
        OSError: the address cannot be bound (the message names it).
    """
    host, _, port = options.listen.rpartition(":")
    host = host.strip("[]")
    channel = grpc.aio.insecure_channel(
        options.target, options=[("grpc.max_receive_message_length", options.max_message_bytes)]
    )
    stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
    app, handlers = make_app(stub, options.max_streams)
    # handler_cancellation: a stream's handler is cancelled as soon as its client disconnects, so
    # its watch ends then rather than at its next write.
    # shutdown_timeout: what other requests get to finish on close (the streams are ended at once).
    runner = web.AppRunner(app, access_log=None, handle_signals=False, handler_cancellation=True, shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, int(port), ssl_context=options.ssl_context)
        await site.start()
    except BaseException:
        await runner.cleanup()
        await channel.close()
        raise
    bound = runner.addresses[0]
    shown = f"[{host}]" if ":" in host else host
    scheme = "https" if options.ssl_context is not None else "http"
    return WebView(address=f"{shown}:{bound[1]}", scheme=scheme, _runner=runner, _channel=channel, _handlers=handlers)
