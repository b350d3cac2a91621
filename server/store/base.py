"""The execution store interface: the engine's store port plus what the API and watchers read.

The engine owns the port and its value types (server/engine/ports.py: dependencies point inward);
this module re-exports them and adds listing, counts and commit listeners. One interface, two
implementations (SQLite, PostgreSQL). Events are serialized
``baton.v1.ExecutionEvent`` messages; the store never interprets them beyond what the caller
tells it (the resulting execution state), so the fold stays in the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from baton.v1 import execution_pb2

from server.engine.ports import CorruptHistoryError as CorruptHistoryError
from server.engine.ports import ExecutionNotFoundError as ExecutionNotFoundError
from server.engine.ports import ExecutionRecord as ExecutionRecord
from server.engine.ports import ExecutionStore as EngineStore
from server.engine.ports import InvalidKeyError as InvalidKeyError
from server.engine.ports import NewExecution as NewExecution
from server.engine.ports import SequenceConflictError as SequenceConflictError
from server.engine.ports import UnfinishedExecution as UnfinishedExecution

#: ExecutionState values that end an execution.
TERMINAL_STATES: frozenset[int] = frozenset(
    {
        execution_pb2.EXECUTION_STATE_COMPLETED,
        execution_pb2.EXECUTION_STATE_FAILED,
        execution_pb2.EXECUTION_STATE_CANCELLED,
    }
)


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


class InvalidPageTokenError(ValueError):
    """The page token was not made by this store."""


#: Called after each commit with the execution id and its newly committed events, in order.
CommitListener = Callable[[str, Sequence[execution_pb2.ExecutionEvent]], None]


class ExecutionStore(EngineStore, Protocol):
    """The engine's store port (server/engine/ports.py) plus what the API and the watchers read."""

    async def open(self) -> None:
        """Opens the store and applies pending schema migrations."""
        ...

    async def close(self) -> None:
        """Flushes pending writes and closes the store."""
        ...

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        """Returns a page of executions, newest first.

        Raises:
            InvalidPageTokenError: the token is malformed.
        """
        ...

    async def count_by_state(self) -> dict[int, int]:
        """Returns the number of executions in each ExecutionState."""
        ...

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Registers a function called (on the event loop) after every commit of events."""
        ...
