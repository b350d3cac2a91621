"""The execution store interface: an append-only event log per execution plus a summary row.

One interface, two implementations (SQLite now, PostgreSQL next). Events are serialized
``baton.v1.ExecutionEvent`` messages; the store never interprets them beyond what the caller
tells it (the resulting execution state), so the fold stays in the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from baton.v1 import execution_pb2

#: ExecutionState values that end an execution.
TERMINAL_STATES: frozenset[int] = frozenset(
    {
        execution_pb2.EXECUTION_STATE_COMPLETED,
        execution_pb2.EXECUTION_STATE_FAILED,
        execution_pb2.EXECUTION_STATE_CANCELLED,
    }
)


@dataclass(frozen=True)
class NewExecution:
    """What the store records for a new execution, with its first event."""

    execution_id: str
    """The new execution's identifier (the caller makes it)."""
    user_id: str
    """The owner."""
    workflow_type: str
    """The workflow type."""
    plan_id: str
    """The plan's identifier."""
    request_id: str
    """The client's idempotency key; empty for none. Unique per user_id when not empty."""
    priority: int
    """The plan's Priority value."""
    created_at: datetime
    """When the execution was created (UTC)."""


@dataclass(frozen=True)
class ExecutionRecord:
    """The summary row of an execution, kept in step with its events."""

    execution_id: str
    user_id: str
    workflow_type: str
    plan_id: str
    request_id: str
    priority: int
    state: int
    """The ExecutionState after the latest event."""
    created_at: datetime
    updated_at: datetime
    """When the latest event was appended."""
    last_sequence: int
    """The sequence of the latest event."""
    owner: str = ""
    """The orchestrator replica that holds the execution's lease; empty for none."""
    lease_expires_at: datetime | None = None
    """When the owner's lease expires; None for no lease."""
    quarantine_error: str = ""
    """Why the execution was quarantined (its history cannot be read or folded); empty when it
    was not. A quarantined execution is FAILED whatever its events say."""


@dataclass(frozen=True)
class UnfinishedExecution:
    """An execution not in a terminal state, as recovery sees it."""

    execution_id: str
    """The execution."""
    parked: bool
    """Whether nothing needs to run it until wake_at (or, with no wake_at, until a command)."""
    wake_at: datetime | None
    """When a parked execution is due (UTC); None when not parked or parked until a command."""


@dataclass(frozen=True)
class ExecutionQuery:
    """A filter and page of ListExecutions."""

    user_id: str = ""
    """Only this user's executions; empty for all."""
    states: tuple[int, ...] = ()
    """Only these ExecutionState values; empty for all."""
    workflow_type: str = ""
    """Only this workflow type; empty for all."""
    page_size: int = 50
    """Rows per page, 1-1000."""
    page_token: str = ""
    """The previous page's next_page_token; empty for the first page."""


@dataclass(frozen=True)
class ExecutionPage:
    """One page of executions, newest first."""

    records: list[ExecutionRecord] = field(default_factory=list)
    next_page_token: str = ""
    """Empty on the last page."""


class SequenceConflictError(Exception):
    """An append's first sequence is not the execution's last sequence + 1 (a second writer)."""


class ExecutionNotFoundError(LookupError):
    """No execution has that identifier."""


class InvalidPageTokenError(ValueError):
    """The page token was not made by this store."""


class CorruptHistoryError(Exception):
    """A stored event of an execution cannot be decoded (truncated bytes, nesting too deep ...).

    Attributes:
        execution_id: the execution whose history is unreadable.
        sequence: the sequence of the first event that cannot be decoded.
        message: what the decoder said.
    """

    def __init__(self, execution_id: str, sequence: int, message: str) -> None:
        super().__init__(f"execution {execution_id}: event {sequence} cannot be decoded: {message}")
        self.execution_id = execution_id
        self.sequence = sequence
        self.message = message


#: Called after each commit with the execution id and its newly committed events, in order.
CommitListener = Callable[[str, Sequence[execution_pb2.ExecutionEvent]], None]


class ExecutionStore(Protocol):
    """Durable storage of executions and their events.

    Every method is safe to call concurrently from many tasks of one event loop. ``append``
    and ``create_execution`` return only once their rows are committed durably (surviving a
    ``kill -9`` of the process); concurrent calls are committed together (group commit).
    """

    async def open(self) -> None:
        """Opens the store and applies pending schema migrations."""
        ...

    async def close(self) -> None:
        """Flushes pending writes and closes the store."""
        ...

    async def create_execution(
        self, new: NewExecution, first_event: execution_pb2.ExecutionEvent
    ) -> tuple[ExecutionRecord, bool]:
        """Records a new execution and its first event (sequence 1) atomically.

        If `new.request_id` is not empty and an execution of the same user has it already,
        nothing is written and that execution's record is returned with False.

        Returns:
            The execution's record and whether it was created by this call.
        """
        ...

    async def append(self, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int) -> None:
        """Appends events (their sequence fields already set, contiguous) and sets the state.

        The same transaction un-parks the execution. A quarantined execution stays FAILED: the
        events are stored, its state is not changed.

        Raises:
            SequenceConflictError: the first event's sequence is not last_sequence + 1.
            ExecutionNotFoundError: no such execution.
        """
        ...

    async def read_events(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[execution_pb2.ExecutionEvent]:
        """Returns the execution's events with sequence > after_sequence, in order.

        An unknown execution has no events (an empty list).

        Raises:
            CorruptHistoryError: a stored event cannot be decoded (nothing else escapes a
                decoding failure).
        """
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Returns the execution's summary row, or None."""
        ...

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        """Returns a page of executions, newest first.

        Raises:
            InvalidPageTokenError: the token is malformed.
        """
        ...

    async def unfinished_executions(self) -> list[UnfinishedExecution]:
        """Returns the executions not in a terminal state, oldest first, with their parked marks."""
        ...

    async def park(self, execution_id: str, wake_at: datetime | None) -> None:
        """Marks the execution parked until wake_at (None: until a command wakes it). Any later append un-parks it.

        Parking is a hint for recovery and timers, not an event: it changes no state and no
        sequence. Parking a terminal execution does nothing.

        Raises:
            ExecutionNotFoundError: no such execution.
            ValueError: wake_at is naive.
        """
        ...

    async def quarantine(self, execution_id: str, error: str) -> None:
        """Marks the execution FAILED because its history cannot be read or folded, recording why.

        It is then no longer unfinished (recovery skips it) and stays FAILED whatever is
        appended later. Quarantining again replaces the error.

        Raises:
            ExecutionNotFoundError: no such execution.
        """
        ...

    async def count_by_state(self) -> dict[int, int]:
        """Returns the number of executions in each ExecutionState."""
        ...

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Registers a function called (on the event loop) after every commit of events."""
        ...
