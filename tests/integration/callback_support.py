"""Callback receivers on 127.0.0.1 for tests: a scripted HTTP receiver and a server that never answers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from types import TracebackType

from aiohttp import web

from server.callbacks import CallbackDelivery, DeliveryOutcome, delivery_id_of

Answer = int | Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass
class Received:
    """One POST a receiver got."""

    headers: dict[str, str]
    body: bytes
    at: float


class Receiver:
    """An aiohttp server on 127.0.0.1:0 recording every request; answers follow the script.

    Each request takes the next answer (an HTTP status, or a handler); the last one repeats.
    """

    def __init__(self, *answers: Answer, port: int = 0) -> None:
        self.answers: list[Answer] = list(answers) or [200]
        self.received: list[Received] = []
        self._runner: web.AppRunner | None = None
        self.port = port
        """The port to bind (0: any free one), then the one bound."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self.received.append(Received(dict(request.headers), body, time.monotonic()))
        answer = self.answers[min(len(self.received), len(self.answers)) - 1]
        if isinstance(answer, int):
            return web.Response(status=answer, text=f"answer {answer}")
        return await answer(request)


class SilentServer:
    """Accepts connections on 127.0.0.1:0, reads whatever comes, and never answers."""

    def __init__(self) -> None:
        self.connections = 0
        self.connected = asyncio.Event()
        """Set at the first connection."""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def __aenter__(self) -> SilentServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.connected.set()
        self._writers.append(writer)
        while await reader.read(65536):
            pass  # until the client gives up and closes


@dataclass
class Outcomes:
    """Records the outcome listener's calls; await one with `of`."""

    seen: dict[str, tuple[DeliveryOutcome, str, float]] = field(default_factory=dict)
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    def __call__(self, delivery: CallbackDelivery, outcome: DeliveryOutcome, detail: str, attempts: int = 0) -> None:
        self.seen[delivery.execution_id] = (outcome, detail, time.monotonic())
        self._changed.set()

    async def of(self, execution_id: str, within: float = 15.0) -> tuple[DeliveryOutcome, str, float]:
        """The outcome of an execution's callback, once there is one (at most `within` seconds)."""
        async with asyncio.timeout(within):
            while execution_id not in self.seen:
                self._changed.clear()
                await self._changed.wait()
        return self.seen[execution_id]


def delivery(execution_id: str, url: str, owner: str = "u1", body: bytes | None = None) -> CallbackDelivery:
    """A callback as the engine would make it, with a small JSON body."""
    return CallbackDelivery(
        delivery_id=delivery_id_of(execution_id),
        execution_id=execution_id,
        owner=owner,
        url=url,
        body=body if body is not None else b'{"execution_id": "%s"}' % execution_id.encode(),
    )
