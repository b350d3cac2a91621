"""Fakes for the engine's unit tests only: a clock that skips time, a scripted caller, a memory store."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from google.protobuf import struct_pb2

from server.engine.ports import AgentCall, AgentCallError, AgentReply
from tests.unit.memory_store import MemoryStore

START = datetime(2026, 1, 1, tzinfo=UTC)


class FakeClock:
    """A clock that only moves when told to; sleepers wake in time order."""

    def __init__(self, now: datetime = START) -> None:
        self._now = now
        self._sleepers: list[tuple[datetime, int, asyncio.Future[None]]] = []
        self._ids = itertools.count()

    def now(self) -> datetime:
        return self._now

    async def sleep_until(self, when: datetime) -> None:
        if when <= self._now:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (when, next(self._ids), future))
        await future

    def call_at(self, when: datetime, callback: Callable[[], object]) -> asyncio.Handle | asyncio.Future[None]:
        """Calls `callback` from the loop once time reaches `when` (soon if it has)."""
        loop = asyncio.get_running_loop()
        if when <= self._now:
            return loop.call_soon(callback)
        future: asyncio.Future[None] = loop.create_future()
        heapq.heappush(self._sleepers, (when, next(self._ids), future))
        future.add_done_callback(lambda done: None if done.cancelled() else callback())
        return future

    def next_wake(self) -> datetime | None:
        """The earliest time a live sleeper waits for."""
        while self._sleepers and self._sleepers[0][2].done():
            heapq.heappop(self._sleepers)
        return self._sleepers[0][0] if self._sleepers else None

    def advance_to(self, when: datetime) -> None:
        """Moves time to `when`, waking every sleeper due by then."""
        self._now = max(self._now, when)
        while self._sleepers and self._sleepers[0][0] <= self._now:
            _, _, future = heapq.heappop(self._sleepers)
            if not future.done():
                future.set_result(None)

    def advance(self, seconds: float) -> None:
        self.advance_to(self._now + timedelta(seconds=seconds))


@dataclass
class RecordedCall:
    call: AgentCall
    at: datetime


Outcome = AgentReply | AgentCallError | Callable[[AgentCall], AgentReply | AgentCallError]


@dataclass
class FakeCaller:
    """Answers calls from per-(agent, operation) scripts; records every call with its time.

    A script is a list of outcomes consumed in order; when it runs out, `default` answers.
    `latency` (seconds, on the fake clock) delays every answer.
    """

    clock: FakeClock
    scripts: dict[tuple[str, str], list[Outcome]] = field(default_factory=dict)
    latency: float = 0.0
    calls: list[RecordedCall] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0

    def script(self, agent: str, operation: str, *outcomes: Outcome) -> None:
        self.scripts.setdefault((agent, operation), []).extend(outcomes)

    async def call(self, call: AgentCall) -> AgentReply:
        self.calls.append(RecordedCall(call, self.clock.now()))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await self.clock.sleep_until(self.clock.now() + timedelta(seconds=self.latency))
            script = self.scripts.get((call.agent, call.operation))
            outcome: Outcome = script.pop(0) if script else reply({"echo": call.operation})
            if callable(outcome):
                outcome = outcome(call)
            if isinstance(outcome, AgentCallError):
                raise outcome
            return outcome
        finally:
            self.in_flight -= 1

    def calls_to(self, agent: str, operation: str | None = None) -> list[RecordedCall]:
        return [c for c in self.calls if c.call.agent == agent and operation in (None, c.call.operation)]


def reply(fields: dict[str, object], score: float = 90.0, **metrics: float) -> AgentReply:
    """An AgentReply whose output is a Struct of `fields`."""
    output = struct_pb2.Struct()
    output.update(fields)
    return AgentReply(output=output, quality_score=score, quality_metrics=dict(metrics))


def unavailable(message: str = "agent down") -> AgentCallError:
    return AgentCallError("UNAVAILABLE", message, retryable=True)


def invalid(message: str = "bad request") -> AgentCallError:
    return AgentCallError("INVALID_ARGUMENT", message, retryable=False)


__all__ = ["FakeCaller", "FakeClock", "MemoryStore", "RecordedCall", "invalid", "reply", "unavailable"]
