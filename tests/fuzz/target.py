"""The fuzz target: a real orchestrator (embedded reference fleet, SQLite) on its own thread and loop.

The server runs on a thread with its own asyncio event loop, so the fuzzer calls it with plain
synchronous gRPC stubs from the main thread and can still count the tasks of the server's loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import tempfile
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from server.app import RunningServer, start_server
from server.config import ServerConfig

__all__ = ["ServerThread", "rss_kib"]

T = TypeVar("T")


def rss_kib() -> dict[str, int]:
    """This process's resident set size now (``rss``) and its peak (``peak``), in KiB."""
    values: dict[str, int] = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values["rss" if key == "VmRSS" else "peak"] = int(rest.split()[0])
    return values


class ServerThread:
    """A started server on a thread of its own; `stop()` it (also on failure)."""

    def __init__(self, directory: str | None = None) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="baton-fuzz-") if directory is None else None
        self.directory = directory or (self._tmp.name if self._tmp else "")
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._stop: asyncio.Event | None = None
        self.running: RunningServer | None = None
        self._thread = threading.Thread(target=self._run, name="baton-fuzz-server", daemon=True)

    # ---- life cycle ------------------------------------------------------------------------

    def start(self, timeout: float = 60.0) -> ServerThread:
        """Starts the server and returns when it serves.

        Raises:
            RuntimeError: it did not start within `timeout` seconds, or failed to.
        """
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"the server did not start within {timeout}s")
        if self._error is not None:
            raise RuntimeError(f"the server failed to start: {self._error!r}") from self._error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.loop.run_until_complete(self._main())
        finally:
            self.loop.close()

    async def _main(self) -> None:
        self._stop = asyncio.Event()
        try:
            self.running = await start_server(
                ServerConfig(
                    listen="127.0.0.1:0",
                    store_url=f"sqlite:///{self.directory}/baton.db",
                    agents="embedded",
                    auth="none",
                )
            )
        except BaseException as error:
            self._error = error
            self._ready.set()
            raise
        self._ready.set()
        try:
            await self._stop.wait()
        finally:
            await self.running.stop(grace=1.0)

    def stop(self, timeout: float = 60.0) -> None:
        """Stops the server (grace 1 s) and joins its thread."""
        if self._thread.is_alive() and self._stop is not None and not self.loop.is_closed():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout)
        if self._tmp is not None:
            self._tmp.cleanup()

    # ---- looking inside ----------------------------------------------------------------------

    @property
    def alive(self) -> bool:
        """Whether the server's thread and loop still run."""
        return self._thread.is_alive() and self.loop.is_running()

    @property
    def address(self) -> str:
        """The orchestrator's HOST:PORT."""
        assert self.running is not None
        return self.running.address

    @property
    def agents_address(self) -> str:
        """The embedded fleet's HOST:PORT."""
        assert self.running is not None and self.running.fleet is not None
        return self.running.fleet.address

    def call(self, make: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
        """Runs a coroutine on the server's loop and returns its result."""

        async def run() -> T:
            return await make()

        future: concurrent.futures.Future[T] = asyncio.run_coroutine_threadsafe(run(), self.loop)
        return future.result(timeout)

    def task_count(self) -> int:
        """Tasks of the server's loop, not counting the one that counts."""

        async def count() -> int:
            return len(asyncio.all_tasks()) - 1

        return self.call(count)

    def task_names(self) -> list[str]:
        """A short description of every task of the server's loop (for a report on a leak)."""

        async def names() -> list[str]:
            current = asyncio.current_task()
            return sorted(_describe(t) for t in asyncio.all_tasks() if t is not current)

        return self.call(names)


def _describe(task: asyncio.Task[Any]) -> str:
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", repr(coro))
    return f"{task.get_name()} {name}"
