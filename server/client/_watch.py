"""Following an execution: an async iterator of its updates that resumes by sequence through broken streams.

Rules:

- **Resume after the last sequence seen.** A stream that breaks (UNAVAILABLE: the server is
  draining, restarting, or was killed) is opened again with ``after_sequence`` = the last
  sequence delivered, after a backoff; the server sends what follows, so nothing is missed.
- **Each update once, in order.** An update whose sequence is not above the last one delivered
  is dropped (the raw iterator, which decodes only a stream's last message, relies on the
  server for this, and resumes after that message's sequence: a heartbeat's is the latest the
  server has sent).
  Heartbeats carry no event: they are delivered only when asked for, and their sequence (the
  latest the stream sent, 0 before any) never moves the resume point back.
- **The end is the server's.** The iterator stops when a stream ends cleanly after a terminal
  update (a rerun's history goes on past an earlier run's end, so the terminal update of an
  earlier run does not stop it). A stream that ends cleanly otherwise (nothing after
  after_sequence, or a drain) is checked against GetExecution: terminal and nothing unseen is
  the end; else the watch resumes.
- **Bounded.** More than ``Reconnect.attempts`` consecutive failures (a stream refused or ended
  without delivering anything) raise WatchError, naming the last sequence delivered. Any other
  error status is raised at once as the client's typed error.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2

from server.client._errors import WatchError, from_rpc_error

E = execution_pb2

TERMINAL = frozenset({E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED})
"""Execution states after which nothing more happens (until a rerun)."""

_T = TypeVar("_T", orchestrator_pb2.ExecutionUpdate, bytes)


@dataclass(frozen=True)
class Reconnect:
    """How a watch resumes a broken stream."""

    attempts: int = 20
    """Consecutive failures (streams refused, or ended early without an update) before WatchError; default 20."""
    initial_backoff: float = 0.1
    """Seconds before the first retry, doubling with each consecutive failure; default 0.1."""
    max_backoff: float = 2.0
    """The longest wait between two attempts, in seconds; default 2 (20 attempts span about 35 s)."""

    def delay(self, failures: int) -> float:
        """The wait before the next attempt after `failures` consecutive failures, with jitter (50-100%)."""
        return float(min(self.initial_backoff * 2 ** min(failures, 30), self.max_backoff)) * random.uniform(0.5, 1.0)


OpenStream = Callable[[orchestrator_pb2.WatchExecutionRequest], Any]
"""Opens one WatchExecution stream (a grpc.aio.UnaryStreamCall of updates or of raw bytes)."""
GetStatus = Callable[[orchestrator_pb2.GetExecutionRequest], Awaitable[execution_pb2.ExecutionStatus]]
"""One GetExecution call (the raw stub's, so that its errors are grpc's)."""


class Watch(Generic[_T]):
    """An execution's updates as an async iterator, resumed by sequence across broken streams and
    server restarts (see the module's rules). ``async for update in client.watch(id): ...``

    Attributes:
        execution_id: the execution.
        last_sequence: the last sequence delivered (where a new watch would resume).
        final: the terminal status once the iterator has stopped; None before.
        reconnects: how many times a stream was opened again.
    """

    def __init__(
        self,
        *,
        open_stream: OpenStream,
        get_status: GetStatus,
        execution_id: str,
        after_sequence: int,
        view: orchestrator_pb2.WatchView,
        heartbeats: bool,
        reconnect: Reconnect,
        on_reconnect: Callable[[str], None] | None,
        raw: bool,
    ) -> None:
        self.execution_id = execution_id
        self.last_sequence = after_sequence
        self.final: execution_pb2.ExecutionStatus | None = None
        self.reconnects = 0
        self._open = open_stream
        self._get_status = get_status
        self._view = view
        self._heartbeats = heartbeats
        self._reconnect = reconnect
        self._on_reconnect = on_reconnect
        self._raw = raw

    def __aiter__(self) -> AsyncGenerator[_T, None]:
        return self._updates()

    def _take_raw(self, last: bytes) -> execution_pb2.ExecutionStatus | None:
        """Decodes the last raw update of a stream (only it): moves the resume point; its status if terminal."""
        update = orchestrator_pb2.ExecutionUpdate.FromString(last)
        self.last_sequence = max(self.last_sequence, update.sequence)
        if update.heartbeat or update.status.status not in TERMINAL:
            return None
        return update.status

    async def _updates(self) -> AsyncGenerator[Any, None]:
        failures = 0
        while True:
            request = orchestrator_pb2.WatchExecutionRequest(
                execution_id=self.execution_id, after_sequence=self.last_sequence, view=self._view
            )
            ended: execution_pb2.ExecutionStatus | None = None
            last_raw: bytes | None = None
            call = self._open(request)
            try:
                if self._raw:
                    # The benchmark's hot loop: nothing but hand each message over.
                    async for item in call:
                        last_raw = item
                        yield item
                else:
                    async for update in call:
                        failures = 0
                        if update.heartbeat:
                            if self._heartbeats:
                                yield update
                            continue  # the stream is alive; nothing was recorded
                        if update.sequence <= self.last_sequence:
                            continue  # delivered already
                        self.last_sequence = update.sequence
                        # Not the end yet, only perhaps: the server ends the stream after the last one.
                        terminal = update.HasField("status") and update.status.status in TERMINAL
                        ended = update.status if terminal else None
                        yield update
                if self._raw and last_raw is not None:
                    failures = 0
                    ended = self._take_raw(last_raw)
                if ended is not None:
                    self.final = ended
                    return
                # A clean end without a terminal update: nothing left after last_sequence, or a
                # draining server. The status says which.
                status = await self._get_status(orchestrator_pb2.GetExecutionRequest(execution_id=self.execution_id))
                if status.status in TERMINAL and status.last_sequence <= self.last_sequence:
                    self.final = status
                    return
                reason = "stream ended early"
                failures += 1
                cause: BaseException | None = None
            except grpc.aio.AioRpcError as exc:
                if self._raw and last_raw is not None:
                    failures = 0
                    self._take_raw(last_raw)
                if exc.code() != grpc.StatusCode.UNAVAILABLE:
                    raise from_rpc_error(exc) from exc
                reason = f"stream broken ({exc.code().name})"
                failures += 1
                cause = from_rpc_error(exc)
            finally:
                call.cancel()
            if failures > self._reconnect.attempts:
                raise WatchError(
                    f"the watch of {self.execution_id} could not be resumed after {failures - 1} attempts "
                    f"({reason}); the last sequence delivered is {self.last_sequence}",
                    execution_id=self.execution_id,
                    last_sequence=self.last_sequence,
                ) from cause
            if self._on_reconnect is not None:
                self._on_reconnect(f"{reason}; resuming after #{self.last_sequence}")
            self.reconnects += 1
            await asyncio.sleep(self._reconnect.delay(failures))
