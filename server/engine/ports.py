"""The engine's ports: the small protocols through which it talks to the world.

The engine imports no grpc, no SQL driver and no store, and never reads the wall clock itself;
the composition root (server/app.py) plugs in real adapters, unit tests plug in fakes. The store
port (`ExecutionStore` with its value types) is defined here, and server/store/ implements it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from baton.v1 import execution_pb2
from google.protobuf.message import Message

from server.engine.admission import AdmissionLimits


class Cancellable(Protocol):
    """A timer set with `Clock.call_at`."""

    def cancel(self) -> object:
        """Stops the timer: its callback is not called (nothing if it was already)."""
        ...


class Clock(Protocol):
    """Time as the engine sees it."""

    def now(self) -> datetime:
        """Returns the current time, timezone-aware (UTC)."""
        ...

    async def sleep_until(self, when: datetime) -> None:
        """Returns at `when` (at once if it has passed)."""
        ...

    def call_at(self, when: datetime, callback: Callable[[], object]) -> Cancellable:
        """Calls `callback` from the event loop at `when` (soon if it has passed), with no task
        waiting meanwhile: a held execution's wake-up timer."""
        ...


CallKind = Literal["step", "compensation", "notice"]
"""What a call is for: an attempt of a step's call, of its compensation, or an escalation's notice."""


@dataclass(frozen=True)
class CallTrace:
    """Where a call of a traced execution comes from: what the edge needs to make its span."""

    execution_id: str
    """The execution."""
    step_id: str
    """The step the call is made for."""
    kind: CallKind
    """``step`` (an attempt of the step's call), ``compensation`` (an attempt of its undo) or
    ``notice`` (an escalation's notification)."""
    trace_parent: str
    """The execution's stored W3C ``traceparent``: the span of this call is its child, whichever
    process makes the call, so every attempt of the execution joins one trace across restarts."""


@dataclass(frozen=True, slots=True)
class CallOrigin:
    """Which execution and step a call is made for (set by the runner on every call it makes)."""

    execution_id: str
    """The execution."""
    step_id: str
    """The step."""
    attempt: int
    """The attempt (0 for an escalation's notice)."""
    kind: CallKind
    """``step``, ``compensation`` or ``notice``."""


@dataclass(frozen=True, slots=True)
class AgentCall:
    """One call of an agent operation."""

    agent: str
    """The agent's name."""
    operation: str
    """The RPC's name."""
    payload: dict[str, Any]
    """The request as JSON with proto field names, expressions already resolved."""
    timeout: float
    """The attempt's timeout in seconds, sent as the gRPC deadline."""
    idempotency_key: str
    """Sent as ``baton-idempotency-key``: the same for every attempt of a step's call
    (``execution_id/step_id``; ``…/alt`` for its alternative call, ``…/compensate`` for its
    compensation), so an agent applies the call's effect once."""
    attempt: int = 1
    """The attempt number, from 1; sent apart from the key as ``baton-attempt`` metadata."""
    use_breaker: bool = True
    """Whether the agent's circuit breaker (and retry budget) guards the call."""
    retry: bool = False
    """Whether the call is a retry: a later attempt on the step's path after one that reached the
    agent and failed (the agent's retry budget counts these apart from first calls)."""
    metadata: tuple[tuple[str, str], ...] = ()
    """Extra request metadata (for example trace context)."""
    trace: CallTrace | None = None
    """Set (by the runner) when the call's execution is traced; None otherwise (the edge then
    makes no span)."""
    origin: CallOrigin | None = None
    """Set by the runner: the execution and step the call is for, so that the edge can show a
    step waiting for agent capacity in its status; None for calls made outside an execution."""


@dataclass(frozen=True, slots=True)
class AgentReply:
    """The successful answer of an agent call."""

    output: Message
    """The response message."""
    quality_score: float = 0.0
    """The response's Quality.score, 0-100."""
    quality_metrics: dict[str, float] = field(default_factory=dict)
    """The response's Quality.metrics."""
    request_bytes: int = 0
    """Serialized size of the request."""
    response_bytes: int = 0
    """Serialized size of the response."""


class AgentCallError(Exception):
    """An agent call failed.

    Attributes:
        error_type: a gRPC status code name (``UNAVAILABLE``, ``DEADLINE_EXCEEDED``,
            ``INVALID_ARGUMENT`` ...), ``CIRCUIT_OPEN``, ``RETRY_BUDGET_EXHAUSTED``,
            ``AGENT_CAPACITY`` (no slot or token of the agent's bulkhead or rate limit in time) or
            ``BOARD_SUSPENDED`` (every job of the call is on a suspended job board).
        retryable: whether another attempt may succeed. Business errors (INVALID_ARGUMENT,
            NOT_FOUND, FAILED_PRECONDITION, ALREADY_EXISTS, PERMISSION_DENIED) are not.
        request_bytes: serialized size of the request that was sent (0 if none was).
        retry_after: for CIRCUIT_OPEN, seconds until the agent's breaker admits a probe call
            (None when unknown): when a retry is worth trying. For AGENT_CAPACITY refused by a
            rate limit, seconds until its next token (informative: the retry keeps its backoff).
    """

    def __init__(
        self,
        error_type: str,
        message: str,
        *,
        retryable: bool,
        request_bytes: int = 0,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.retryable = retryable
        self.request_bytes = request_bytes
        self.retry_after = retry_after


class AgentCaller(Protocol):
    """Calls agent operations. Raises AgentCallError on failure, never anything else."""

    async def call(self, call: AgentCall) -> AgentReply:
        """Performs one attempt of `call` within its timeout."""
        ...


# ---- the store port ----------------------------------------------------------------------------


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
    admission: AdmissionLimits | None = None
    """The admission limits to decide it under (server/engine/admission.py, rule 2); None, or
    limits without max_running: admitted as it is recorded."""

    def queued_record(self, created_at: datetime) -> ExecutionRecord:
        """Its summary row as created: QUEUED, at sequence 1, created and updated at `created_at`
        (the store's own rendering of the time, which may be coarser than this value's)."""
        return ExecutionRecord(
            execution_id=self.execution_id,
            user_id=self.user_id,
            workflow_type=self.workflow_type,
            plan_id=self.plan_id,
            request_id=self.request_id,
            priority=self.priority,
            state=execution_pb2.EXECUTION_STATE_QUEUED,
            created_at=created_at,
            updated_at=created_at,
            last_sequence=1,
        )


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
    waiting: bool = False
    """Whether it waits for admission (recorded, not admitted: nothing may run it yet)."""


@dataclass(frozen=True)
class UnfinishedExecution:
    """An execution not in a terminal state, as recovery sees it."""

    execution_id: str
    """The execution."""
    parked: bool
    """Whether nothing needs to run it until wake_at (or, with no wake_at, until a command)."""
    wake_at: datetime | None
    """When a parked execution is due (UTC); None when not parked or parked until a command."""
    waiting: bool = False
    """Whether it waits for admission: recovery leaves it to the admission of queued work."""


class SequenceConflictError(Exception):
    """An append's first sequence is not the execution's last sequence + 1 (a second writer)."""


class ExecutionNotFoundError(LookupError):
    """No execution has that identifier."""


class InvalidKeyError(ValueError):
    """A key a store cannot hold: it contains NUL (U+0000), which PostgreSQL's text cannot store
    and SQLite's JSON functions stop at. No stored execution has such a key, so a lookup by one
    finds nothing; a new execution with one is refused with this error.

    Attributes:
        field: the key's name (``request_id``, ``user_id`` ...).
    """

    def __init__(self, field: str) -> None:
        super().__init__(f"{field}: must not contain NUL (U+0000)")
        self.field = field


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


class ExecutionStore(Protocol):
    """The engine's port to durable storage: an append-only event log per execution, a summary row.

    Every method is safe to call concurrently from many tasks of one event loop. ``append``
    and ``create_execution`` return only once their rows are committed durably (surviving a
    ``kill -9`` of the process); concurrent calls are committed together (group commit). The
    stores (server/store/) implement it; a later replica-aware store adds leases and fenced
    appends behind the same methods.
    """

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

    async def admit(self, limits: AdmissionLimits, now: datetime) -> list[str]:
        """Admits waiting executions into the slots free under `limits.max_running` (rules 3-6 of
        server/engine/admission.py), in one transaction under the admission lock.

        Returns:
            The ids admitted, in admission order (no longer waiting: due work for any runner).
        """
        ...

    async def queue_position(self, execution_id: str, aging_seconds: float, now: datetime) -> int:
        """The execution's place in the admission queue at `now` (1: admitted next); 0 when it
        does not wait (admitted, ended, or unknown)."""
        ...

    async def count_waiting(self) -> int:
        """The unfinished executions waiting for admission (every replica's)."""
        ...


# ---- replicas: leases over executions -----------------------------------------------------------


@dataclass(frozen=True)
class Lease:
    """A replica's hold on the executions it runs, until a time."""

    owner: str
    """The replica (unique per process)."""
    until: datetime
    """When the hold lapses unless renewed (UTC)."""


class LeaseLostError(Exception):
    """A fenced append found the execution's lease held by another replica, or lapsed: the
    runner must stop (the new owner goes on from the stored history); it never fights."""

    def __init__(self, execution_id: str, owner: str) -> None:
        super().__init__(f"execution {execution_id}: lease lost (held by {owner or 'nobody'})")
        self.execution_id = execution_id
        self.owner = owner


class ReplicaStore(ExecutionStore, Protocol):
    """A store that several orchestrator processes share: executions are held by renewable leases.

    Rules: an execution is free when it has no owner or its lease lapsed; `claim` takes free
    executions that are due (not parked, or parked with wake_at <= now) in one statement per
    batch with row locks skipped, not waited for (``FOR UPDATE SKIP LOCKED``), so replicas
    never take the same work; `append_fenced` commits only while the lease is the caller's and
    unexpired; parking and quarantining release the lease. A replica that receives a command for
    an execution another live replica holds asks for it (`want`); the holder hands it over at its
    next look (`wanted`, then stop and `release`), and the asker claims it by name: until then no
    other replica's claim of due work takes an execution someone asked for.
    """

    async def claim(
        self, lease: Lease, now: datetime, limit: int, execution_ids: Sequence[str] = (), *, ended: bool = False
    ) -> list[str]:
        """Takes up to `limit` free, due executions (with `execution_ids`: those, due or not; with
        `ended` too, those that have ended but are not quarantined: a rerun takes one back).

        Returns:
            The ids now held under `lease`, oldest first (ids already held by it included).
        """
        ...

    async def renew(self, lease: Lease, execution_ids: Sequence[str]) -> set[str]:
        """Extends the lease on those of `execution_ids` it still holds; returns them."""
        ...

    async def release(self, owner: str, execution_ids: Sequence[str]) -> None:
        """Frees the executions `owner` holds among `execution_ids` (a draining replica's)."""
        ...

    async def want(self, execution_id: str, owner: str) -> None:
        """Asks the replica that holds the execution to hand it over to `owner` (a command came
        to `owner`); nothing happens when nobody else holds it. The next claim clears the ask."""
        ...

    async def wanted(self, owner: str) -> list[str]:
        """The executions `owner` holds that another replica asked for."""
        ...

    async def append_fenced(
        self, lease: Lease, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int
    ) -> None:
        """`append`, committed only while `lease` holds the execution and has not lapsed.

        Raises:
            LeaseLostError: another replica holds it, or the lease lapsed (nothing is written).
            SequenceConflictError, ExecutionNotFoundError: as `append`.
        """
        ...
