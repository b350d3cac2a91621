"""The execution store interface: the engine's store port plus what the API and watchers read.

The engine owns the port and its value types (server/engine/ports.py: dependencies point inward);
this module re-exports them and adds listing, counts, commit listeners, deletion and the callback
outbox (`CallbackOutbox`). One interface, two implementations (SQLite, PostgreSQL). Events are
serialized ``baton.v1.ExecutionEvent`` messages; the store reads of them only what the caller
tells it (the resulting execution state), the actor (the audit trail) and the callback's events
(its outbox row, inserted and deleted by the appends that carry them), so the fold stays in the
engine.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
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
from server.store._durations import SketchMerge, SketchRow

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


# ---- the audit trail and deletion ----------------------------------------------------------------

DEFAULT_AUDIT_PAGE_SIZE = 100
"""Audit entries per page when a query says 0."""

USER_DATA_DELETED = "user_data_deleted"
"""The action of the audit entry that records a DeleteUserData (it names no execution)."""


@dataclass(frozen=True)
class AuditQuery:
    """A filter and page of ListAuditEvents; every filter is exact, empty for all."""

    subject: str = ""
    """Only entries this authenticated subject caused."""
    execution_id: str = ""
    """Only entries of this execution."""
    user_id: str = ""
    """Only entries of executions this user owns (and the deletions of this user's data)."""
    page_size: int = 100
    """Entries per page, 1-1000."""
    page_token: str = ""
    """The previous page's next_page_token; empty for the first page."""


@dataclass(frozen=True)
class AuditRecord:
    """One entry of the audit trail: an event a client's request caused, indexed apart from the log."""

    execution_id: str
    """The execution acted on; empty for an entry about no execution (a user's data deleted)."""
    user_id: str
    """The execution's owner (for a deletion: the user whose data went)."""
    sequence: int
    """The event's sequence; 0 for an entry with no event."""
    recorded_at: datetime
    """When it was recorded (UTC)."""
    action: str
    """The event's kind (`execution_cancelled` ...), or USER_DATA_DELETED."""
    reason: str
    """The reason the client gave, if any; for a deletion, what was deleted."""
    actor: bytes
    """The serialized baton.v1.Actor."""
    audit_no: int = 0
    """The entry's number: entries are numbered in the order they are recorded (see
    `audit_page_token`)."""


@dataclass(frozen=True)
class AuditPage:
    """One page of the audit trail, newest first."""

    records: list[AuditRecord] = field(default_factory=list)
    next_page_token: str = ""
    """Empty on the last page."""


@dataclass(frozen=True)
class DeletionNote:
    """Who deletes a user's data: recorded as an audit entry in the deletion's own transaction."""

    recorded_at: datetime
    """When (UTC)."""
    subject: str
    """The authenticated subject who asked ('' with authentication off)."""
    actor: bytes
    """The serialized baton.v1.Actor."""


@dataclass(frozen=True)
class Deletion:
    """What a deletion removed."""

    execution_ids: list[str] = field(default_factory=list)
    """The executions deleted (with their events and audit entries)."""
    events: int = 0
    """The events deleted."""


def _state_name(state: int) -> str:
    try:
        return execution_pb2.ExecutionState.Name(state).removeprefix("EXECUTION_STATE_").lower()
    except ValueError:
        return str(state)


class UnfinishedExecutionsError(Exception):
    """A user's data cannot be deleted while some of their executions are unfinished.

    Attributes:
        user_id: the user.
        unfinished: (execution_id, ExecutionState) of each unfinished execution, oldest first.
    """

    def __init__(self, user_id: str, unfinished: Sequence[tuple[str, int]]) -> None:
        shown = ", ".join(f"{execution_id} ({_state_name(state)})" for execution_id, state in unfinished[:10])
        more = f" and {len(unfinished) - 10} more" if len(unfinished) > 10 else ""
        super().__init__(
            f"user {user_id[:64]!r} has {len(unfinished)} unfinished executions: {shown}{more}; cancel them first"
        )
        self.user_id = user_id
        self.unfinished = list(unfinished)


# ---- the callback outbox -------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingCallback:
    """A row of the callback outbox: a terminal callback still owed (see server/engine/callback.py)."""

    delivery_id: str
    """The Baton-Delivery-Id (the row's key)."""
    execution_id: str
    """The execution whose final status it POSTs."""
    user_id: str
    """The execution's owner (the per-owner cap; DeleteUserData deletes it)."""
    url: str
    """The callback_url."""
    scheduled_sequence: int
    """The sequence of its callback_scheduled event: the body is the status folded up to it."""
    deadline: datetime
    """No attempt after this time (UTC)."""
    attempts: int
    """Attempts made so far."""
    next_attempt_at: datetime
    """When the next attempt is due (UTC)."""
    last_error: str = ""
    """What the last failed attempt came to."""


class CallbackClaimLostError(Exception):
    """A callback's outcome was not recorded: the outbox row is gone or another process claimed it."""

    def __init__(self, delivery_id: str) -> None:
        super().__init__(f"callback {delivery_id}: no longer held by this process")
        self.delivery_id = delivery_id


class CallbackOutbox(Protocol):
    """The outbox of terminal callbacks, beside the executions (both stores implement it).

    Rules: a row is inserted by the append carrying a callback_scheduled event and deleted by the
    append carrying the callback's outcome (`finish_callback`), each in that append's transaction.
    A process delivers only rows it claimed; a claim holds until `until`, and a claim's holder
    can move the row's next attempt on (`reschedule_callback`), extend it (`renew_callbacks`) or
    free it (`release_callbacks`). Claims of due rows skip rows locked by another claimer, so two
    processes never take the same row while its claim holds.
    """

    async def claim_callbacks(self, owner: str, now: datetime, until: datetime, limit: int) -> list[PendingCallback]:
        """Claims up to `limit` due rows (next_attempt_at <= now) that nobody holds at `now`,
        earliest due first, for `owner` until `until`."""
        ...

    async def reschedule_callback(
        self, owner: str, delivery_id: str, attempts: int, next_attempt_at: datetime, until: datetime, error: str
    ) -> bool:
        """Records a failed attempt of a row `owner` holds: attempts made, when the next is due,
        the claim extended to `until`; False when `owner` no longer holds it."""
        ...

    async def renew_callbacks(self, owner: str, delivery_ids: Sequence[str], until: datetime) -> set[str]:
        """Extends `owner`'s claims among `delivery_ids` to `until`; returns those still held."""
        ...

    async def release_callbacks(self, owner: str | None, delivery_ids: Sequence[str] = ()) -> int:
        """Frees `owner`'s claims among `delivery_ids` (all of them when empty); with owner None,
        every claim (a store's single process starting); returns how many were freed."""
        ...

    async def finish_callback(self, owner: str, callback: PendingCallback, event: execution_pb2.ExecutionEvent) -> None:
        """Appends the callback's outcome event (its sequence set here, after the execution's
        last) and deletes the row, in one transaction, only while `owner` holds the row.

        Raises:
            CallbackClaimLostError: the row is gone or held by another process (nothing written).
            ExecutionNotFoundError: the execution is gone (its row went with it).
        """
        ...

    async def pending_callbacks(self, execution_id: str = "") -> list[PendingCallback]:
        """The outbox rows (of one execution, or all), earliest due first: for operators and tests."""
        ...


# ---- the workflow registry --------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowRow:
    """One registered version of a workflow definition, as stored (server/registry.py reads it)."""

    workflow_type: str
    """The type it defines."""
    version: str
    """Its semantic version, MAJOR.MINOR.PATCH; (workflow_type, version) is the row's key."""
    definition: str
    """The definition's text as registered (YAML)."""
    digest: str
    """The SHA-256 of `definition`, hex: equal digests, the same definition."""
    builtin: bool
    """Whether it is one of the server's built-in definitions (registered at start)."""
    registered_at: datetime
    """When it was registered (UTC)."""
    registered_by: str = ""
    """The authenticated subject who registered it; empty with authentication off or for a built-in."""
    deprecated_at: datetime | None = None
    """When it was deprecated (UTC); None while it is not."""
    deprecation_reason: str = ""
    """Why, as the deprecation said."""


class WorkflowStore(Protocol):
    """The workflow registry's table (both stores implement it).

    Rules: a row is never deleted and its definition never changes, except a built-in row's,
    which the release that ships the built-in owns (a new release may change its text); the
    only other change is its deprecation, made once.
    """

    async def insert_workflow(self, row: WorkflowRow) -> WorkflowRow:
        """Stores `row` unless its (workflow_type, version) is stored already; returns the stored row
        (`row`, or the one that was there). A built-in row over a built-in row replaces its
        definition and digest."""
        ...

    async def list_workflows(self, workflow_type: str = "") -> list[WorkflowRow]:
        """Every stored row (of one type, or all), in no particular order."""
        ...

    async def deprecate_workflow(
        self, workflow_type: str, version: str, when: datetime, reason: str
    ) -> WorkflowRow | None:
        """Marks a version deprecated at `when` (a deprecated one keeps its first deprecation);
        returns the row as stored, or None when there is no such row."""
        ...


#: Called after each commit with the execution id and its newly committed events, in order.
CommitListener = Callable[[str, Sequence[execution_pb2.ExecutionEvent]], None]
#: Called with the seconds each committed batch took (metrics); must be thread-safe and not block.
CommitObserver = Callable[[float], None]


class ExecutionStore(EngineStore, CallbackOutbox, WorkflowStore, Protocol):
    """The engine's store port (server/engine/ports.py) plus what the API and the watchers read,
    the callback outbox (`CallbackOutbox`) and the workflow registry's table (`WorkflowStore`)."""

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

    async def list_audit(self, query: AuditQuery) -> AuditPage:
        """Returns a page of the audit trail, newest first (in the order the entries were recorded).

        Every event that carries an actor is an entry, indexed in the transaction that appends
        it, so listing never reads the events themselves.

        Raises:
            InvalidPageTokenError: the token is malformed.
        """
        ...

    async def delete_user_data(self, user_id: str, note: DeletionNote | None = None) -> Deletion:
        """Deletes every execution of the user with its events and audit entries, in one transaction.

        With `note`, an audit entry (USER_DATA_DELETED, naming the user and the counts) is
        written in the same transaction, so the deletion itself stays on record. A user with
        nothing stored deletes nothing (and still gets the note).

        Raises:
            UnfinishedExecutionsError: an execution of the user is not terminal (a quarantined
                one is FAILED, so finished); nothing is deleted.
        """
        ...

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> Deletion:
        """Deletes up to `limit` terminal executions last updated before `cutoff`, with their events
        and audit entries (retention). Idempotent: safe to run on several replicas at once.

        Raises:
            ValueError: cutoff is naive, or limit is below 1.
        """
        ...

    def observe_commits(self, observer: CommitObserver | None) -> None:
        """Has `observer` given each committed batch's duration in seconds (None, the default:
        nothing is timed, at no cost)."""
        ...

    async def load_duration_sketches(self) -> list[SketchRow]:
        """Every stored duration sketch (server/estimates' history, table duration_sketches)."""
        ...

    async def merge_duration_sketches(
        self, deltas: Sequence[SketchRow], merge: SketchMerge, now: datetime
    ) -> list[SketchRow]:
        """Merges recorded sketches into the stored ones with `merge`, in one transaction, each
        row locked while merged (replicas' flushes add up); returns the merged rows."""
        ...
