"""Fakes for the engine's unit tests only: a clock that skips time, a scripted caller, a memory store."""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from baton.v1 import execution_pb2
from google.protobuf import struct_pb2

from server.engine.ports import AgentCall, AgentCallError, AgentReply
from server.store.base import (
    TERMINAL_STATES,
    CommitListener,
    ExecutionPage,
    ExecutionQuery,
    ExecutionRecord,
    NewExecution,
    SequenceConflictError,
    UnfinishedExecution,
)

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


class MemoryStore:
    """An in-memory ExecutionStore with the real one's contract checks (no durability)."""

    def __init__(self) -> None:
        self.records: dict[str, ExecutionRecord] = {}
        self.events: dict[str, list[execution_pb2.ExecutionEvent]] = {}
        self.appends = 0
        self.parked: dict[str, datetime | None] = {}
        self.quarantined: dict[str, str] = {}
        self._listeners: list[CommitListener] = []

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def create_execution(
        self, new: NewExecution, first_event: execution_pb2.ExecutionEvent
    ) -> tuple[ExecutionRecord, bool]:
        for record in self.records.values():
            if new.request_id and (record.user_id, record.request_id) == (new.user_id, new.request_id):
                return record, False
        record = ExecutionRecord(
            execution_id=new.execution_id,
            user_id=new.user_id,
            workflow_type=new.workflow_type,
            plan_id=new.plan_id,
            request_id=new.request_id,
            priority=new.priority,
            state=execution_pb2.EXECUTION_STATE_QUEUED,
            created_at=new.created_at,
            updated_at=new.created_at,
            last_sequence=1,
        )
        self.records[new.execution_id] = record
        self.events[new.execution_id] = [first_event]
        self._notify(new.execution_id, [first_event])
        return record, True

    async def append(self, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int) -> None:
        await asyncio.sleep(0)  # a commit is a suspension point, as in the real stores
        record = self.records[execution_id]
        if events[0].sequence != record.last_sequence + 1:
            raise SequenceConflictError(f"{events[0].sequence} after {record.last_sequence}")
        self.appends += 1
        self.parked.pop(execution_id, None)
        self.events[execution_id].extend(events)
        self.records[execution_id] = ExecutionRecord(
            **{**record.__dict__, "state": state, "last_sequence": events[-1].sequence}
        )
        self._notify(execution_id, list(events))

    async def read_events(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[execution_pb2.ExecutionEvent]:
        events = [e for e in self.events.get(execution_id, []) if e.sequence > after_sequence]
        return events[:limit] if limit else events

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return self.records.get(execution_id)

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        return ExecutionPage(records=list(self.records.values()))

    async def unfinished_executions(self) -> list[UnfinishedExecution]:
        return [
            UnfinishedExecution(r.execution_id, r.execution_id in self.parked, self.parked.get(r.execution_id))
            for r in self.records.values()
            if r.state not in TERMINAL_STATES
        ]

    async def park(self, execution_id: str, wake_at: datetime | None) -> None:
        await asyncio.sleep(0)
        self.parked[execution_id] = wake_at

    async def quarantine(self, execution_id: str, error: str) -> None:
        self.quarantined[execution_id] = error
        self.parked.pop(execution_id, None)
        record = self.records[execution_id]
        self.records[execution_id] = ExecutionRecord(
            **{**record.__dict__, "state": execution_pb2.EXECUTION_STATE_FAILED}
        )

    async def count_by_state(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for r in self.records.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        return counts

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    def _notify(self, execution_id: str, events: list[execution_pb2.ExecutionEvent]) -> None:
        for listener in self._listeners:
            listener(execution_id, events)
