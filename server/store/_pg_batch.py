"""One batch of writes applied inside an open PostgreSQL transaction, in two statements.

Why two: every statement is a round trip to the server. A batch is one lookup that locks the
rows it will change (``FOR UPDATE``, in execution_no order, so two replicas' batches never
deadlock) and takes execution numbers for the new executions; then the writes are decided in
Python, row by row, as the SQLite store decides them; then ONE statement inserts the new
executions and the events, updates the changed rows to their final values and queues the
``baton_events`` notifications, whatever the batch carries. Parameters are arrays
(``unnest``), so the statement has one shape and is prepared once per connection.

Fencing (replicas): a fenced append is checked against the row the lookup locked, so the check
and the write are one transaction and no claim can slip between them (a claim skips locked rows).
The row must be held by the append's owner with a lease that has not lapsed at the batch's
time; otherwise that write alone fails with LeaseLostError and none of its events is written,
and the rest of the batch commits. Parking and quarantining free the row's lease in the same
UPDATE. Lease times are the replicas' clocks (the engine passes them; the batch's time is this
process's clock), never the database server's, so one clock rules every lease comparison.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
from baton.v1 import execution_pb2

from server.engine.admission import AdmissionLimits, QueueFullError, Tally
from server.engine.ports import Lease, LeaseLostError
from server.store._outbox import ScheduledRow
from server.store._payloads import Blob, distinct_blobs
from server.store._pg_admission import ADMISSION_LOCK_KEY, COUNTS, LOCK
from server.store._pg_audit import INSERT_AUDIT, AuditRow
from server.store._pg_outbox import SCHEDULE, TAKE
from server.store._pg_rows import NOTIFY_CHANNEL, RECORD_COLUMNS, notify_payload, record_from_row
from server.store.base import CallbackClaimLostError, ExecutionNotFoundError, ExecutionRecord, SequenceConflictError

#: An event as the caller's side prepares it: (sequence, recorded_at, kind, payload, blob), the
#: blob being its output stored apart (server/store/_payloads.py), if any.
EventRow = tuple[int, datetime | None, str, bytes, Blob | None]


class ExecutionIdTakenError(ValueError):
    """create_execution with an execution_id another execution already has."""


@dataclass(slots=True)
class CreateOp:
    """A queued create_execution."""

    record: ExecutionRecord
    """The record to insert (state QUEUED, last_sequence 1)."""
    event_row: EventRow
    """The first event's row."""
    event: execution_pb2.ExecutionEvent
    """The first event, for commit listeners."""
    future: asyncio.Future[tuple[ExecutionRecord, bool]]
    """Resolved on the event loop after the commit."""
    audit: list[AuditRow] = field(default_factory=list)
    """The audit entry of the first event, if a client caused it."""
    admission: AdmissionLimits | None = None
    """The limits it is admitted under (None: admitted as recorded)."""


@dataclass(slots=True)
class AppendOp:
    """A queued append."""

    execution_id: str
    first_sequence: int
    last_sequence: int
    state: int
    updated_at: datetime | None
    """The latest event time (None when the events carry none)."""
    rows: list[EventRow]
    events: Sequence[execution_pb2.ExecutionEvent]
    """The events, for commit listeners."""
    future: asyncio.Future[None]
    lease: Lease | None = None
    """For a fenced append: the lease that must hold the execution (None: not fenced)."""
    audit: list[AuditRow] = field(default_factory=list)
    """The audit entries of the events a client caused."""
    scheduled: list[ScheduledRow] = field(default_factory=list)
    """The callback outbox rows its callback_scheduled events insert."""
    finishing: tuple[str, str] | None = None
    """(delivery_id, owner) of the callback outcome it appends: committed only while `owner`
    holds the outbox row, which it deletes."""


@dataclass(slots=True)
class ParkOp:
    """A queued park."""

    execution_id: str
    wake_at: datetime | None
    """None to wait for a command."""
    future: asyncio.Future[None]


@dataclass(slots=True)
class QuarantineOp:
    """A queued quarantine."""

    execution_id: str
    error: str
    future: asyncio.Future[None]


WriteOp = CreateOp | AppendOp | ParkOp | QuarantineOp


@dataclass(slots=True)
class Committed:
    """Events one write committed, for commit listeners."""

    execution_no: int
    execution_id: str
    events: Sequence[execution_pb2.ExecutionEvent]


@dataclass(slots=True)
class Outcome:
    """What one write came to: a result or an error, and the events it committed."""

    future: asyncio.Future[Any]
    result: object = None
    error: BaseException | None = None
    committed: Committed | None = None
    """None when nothing was written."""


@dataclass(slots=True)
class _Row:
    """An executions row as the batch leaves it."""

    no: int
    state: int
    updated_at: datetime
    last_sequence: int
    parked: bool
    wake_at: datetime | None
    quarantine_error: str
    owner: str = ""
    lease_expires_at: datetime | None = None
    record: ExecutionRecord | None = None
    """Set for an execution this batch creates (it is inserted rather than updated)."""
    changed: bool = False
    released: bool = False
    """Parked or quarantined by this batch: its lease is freed."""
    notify_from: int = 0
    """The first sequence this batch adds (0 for none): the batch's appends to one execution
    are contiguous, so one notification (notify_from, last_sequence) covers them all."""


_STATE_FAILED = execution_pb2.EXECUTION_STATE_FAILED

# The rows this batch changes, locked; numbers for its new executions; the records already
# holding its creates' (user_id, request_id). The repeated "request_id <> ''" lets PostgreSQL
# use the partial unique index.
_LOOKUP = f"""
SELECT
    ARRAY(SELECT nextval(pg_get_serial_sequence('executions', 'execution_no')) FROM generate_series(1, $1::int)),
    ARRAY(
        SELECT ROW(l.execution_no, l.execution_id, l.state, l.updated_at, l.last_sequence, l.parked, l.wake_at,
                   l.quarantine_error, l.owner, l.lease_expires_at)
        FROM (
            SELECT x.* FROM unnest($2::text[]) AS k(execution_id)
            JOIN executions AS x ON x.execution_id = k.execution_id
            ORDER BY x.execution_no FOR UPDATE OF x
        ) AS l
    ),
    ARRAY(
        SELECT ROW({", ".join(f"x.{c.strip()}" for c in RECORD_COLUMNS.split(","))})
        FROM unnest($3::text[], $4::text[]) AS k(user_id, request_id)
        JOIN executions AS x ON x.user_id = k.user_id AND x.request_id = k.request_id AND x.request_id <> ''
    )
"""

_WRITE = f"""
WITH
new_executions AS (
    INSERT INTO executions (execution_no, execution_id, user_id, workflow_type, plan_id, request_id, priority,
                            state, created_at, updated_at, last_sequence, parked, wake_at, quarantine_error,
                            waiting)
    SELECT * FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[],
                         $8::int[], $9::timestamptz[], $10::timestamptz[], $11::bigint[], $12::bool[],
                         $13::timestamptz[], $14::text[], $29::bool[])
),
new_events AS (
    INSERT INTO events (execution_no, sequence, recorded_at, kind, payload, payload_sha256)
    SELECT * FROM unnest($15::bigint[], $16::bigint[], $17::timestamptz[], $18::text[], $19::bytea[], $30::text[])
),
changed AS (
    UPDATE executions AS x SET state = v.state, updated_at = v.updated_at, last_sequence = v.last_sequence,
        parked = v.parked, wake_at = v.wake_at, quarantine_error = v.quarantine_error,
        owner = CASE WHEN v.released THEN '' ELSE x.owner END,
        lease_expires_at = CASE WHEN v.released THEN NULL ELSE x.lease_expires_at END
    FROM unnest($20::bigint[], $21::int[], $22::timestamptz[], $23::bigint[], $24::bool[], $25::timestamptz[],
                $26::text[], $27::bool[])
        AS v(execution_no, state, updated_at, last_sequence, parked, wake_at, quarantine_error, released)
    WHERE x.execution_no = v.execution_no
)
SELECT count(pg_notify('{NOTIFY_CHANNEL}', payload)) FROM unnest($28::text[]) AS payload
"""

# Outputs stored apart (server/store/_payloads.py rules 2 and 3): one row per digest counting its
# events, upserted in digest order so that two batches lock shared rows in one order. The update
# locks an existing row until the commit: a deletion cannot drop it under the events naming it.
_UPSERT_PAYLOADS = """
INSERT INTO payloads (sha256, data, size_bytes, refs)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bigint[], $4::bigint[]) ORDER BY 1
ON CONFLICT (sha256) DO UPDATE SET refs = payloads.refs + EXCLUDED.refs
"""


async def apply_batch(conn: asyncpg.Connection, batch: Sequence[WriteOp], instance: str) -> list[Outcome]:
    """Applies writes, in order, inside the open transaction; returns one outcome per write.

    Sequence conflicts, unknown executions and taken execution ids become outcomes; a
    constraint violation found by the server (another process created the same request a
    moment ago) raises, and the caller replays the batch write by write.

    Args:
        conn: the connection, inside a transaction.
        batch: the writes.
        instance: this store's instance id, put in the notifications so it can skip its own.
    """
    creates = [op for op in batch if isinstance(op, CreateOp)]
    admitting = any(op.admission is not None and op.admission.bounded for op in creates)
    tally = Tally()
    if admitting:
        # Before any row lock (see _pg_admission): the counts hold until this batch commits.
        await conn.execute(LOCK, ADMISSION_LOCK_KEY)
        counted = await conn.fetchrow(COUNTS)
        if counted is not None:
            tally = Tally(counted[0], counted[1])
    keyed = [op.record for op in creates if op.record.request_id]
    touched = sorted({op.record.execution_id if isinstance(op, CreateOp) else op.execution_id for op in batch})
    found = await conn.fetchrow(
        _LOOKUP,
        len(creates),
        touched,
        [record.user_id for record in keyed],
        [record.request_id for record in keyed],
    )
    if found is None:  # a SELECT without FROM always returns one row
        raise RuntimeError("the store's lookup returned no row")
    numbers, locked, requested = found
    # Taken once the rows are locked: a fenced append's lease must outlast this moment.
    fence_time = datetime.now(UTC)
    rows: dict[str, _Row] = {item[1]: _Row(item[0], *item[2:]) for item in locked}
    by_request = {(r.user_id, r.request_id): r for r in (record_from_row(tuple(item)) for item in requested)}
    free_numbers = iter(numbers)

    event_rows: list[tuple[int, int, datetime | None, str, bytes, str | None]] = []
    blobs: list[Blob | None] = []
    audit_rows: list[tuple[int, int, datetime | None, str, str, str, bytes]] = []
    outcomes: list[Outcome] = []
    for op in batch:
        if isinstance(op, CreateOp):
            record = op.record
            key = (record.user_id, record.request_id)
            existing = by_request.get(key) if record.request_id else None
            if existing is not None:
                outcomes.append(Outcome(op.future, result=(existing, False)))
                continue
            if record.execution_id in rows:
                taken = ExecutionIdTakenError(f"execution_id {record.execution_id!r} is taken by another execution")
                outcomes.append(Outcome(op.future, error=taken))
                continue
            try:
                record = tally.place(op.admission, record)
            except QueueFullError as full:
                outcomes.append(Outcome(op.future, error=full))
                continue
            if record.request_id:
                by_request[key] = record
            no = next(free_numbers)
            rows[record.execution_id] = _Row(
                no, record.state, record.updated_at, 1, False, None, "", record=record, notify_from=1
            )
            event_rows.append(_event(no, op.event_row))
            blobs.append(op.event_row[4])
            audit_rows.extend((no, *entry) for entry in op.audit)
            committed = Committed(no, record.execution_id, (op.event,))
            outcomes.append(Outcome(op.future, result=(record, True), committed=committed))
            continue
        row = rows.get(op.execution_id)
        if row is None:
            outcomes.append(Outcome(op.future, error=ExecutionNotFoundError(op.execution_id)))
            continue
        if isinstance(op, ParkOp):
            row.parked, row.wake_at, row.changed = True, op.wake_at, True
            _release(row)
            outcomes.append(Outcome(op.future))
            continue
        if isinstance(op, QuarantineOp):
            row.state, row.quarantine_error, row.changed = _STATE_FAILED, op.error, True
            row.parked, row.wake_at = False, None
            _release(row)
            outcomes.append(Outcome(op.future))
            continue
        if op.lease is not None and not _holds(row, op.lease, fence_time):
            outcomes.append(Outcome(op.future, error=LeaseLostError(op.execution_id, row.owner)))
            continue
        if op.first_sequence != row.last_sequence + 1:
            conflict = SequenceConflictError(
                f"execution {op.execution_id}: append starts at sequence {op.first_sequence},"
                f" but its last sequence is {row.last_sequence}"
            )
            outcomes.append(Outcome(op.future, error=conflict))
            continue
        # Rare (an execution's end, a callback's outcome): statements of their own, in this
        # transaction, so the outbox row and the event commit together (_pg_outbox rule 2).
        if op.finishing is not None and await conn.fetchval(TAKE, *op.finishing) is None:
            outcomes.append(Outcome(op.future, error=CallbackClaimLostError(op.finishing[0])))
            continue
        for scheduled in op.scheduled:
            await conn.execute(
                SCHEDULE,
                scheduled.delivery_id,
                scheduled.url,
                scheduled.sequence,
                scheduled.deadline,
                scheduled.due,
                row.no,
            )
        row.last_sequence = op.last_sequence
        if not row.quarantine_error:
            row.state = op.state
        if op.updated_at is not None and op.updated_at > row.updated_at:
            row.updated_at = op.updated_at
        # An append un-parks (a park earlier in the batch is undone; one later in it stands).
        row.parked, row.wake_at, row.changed = False, None, True
        row.notify_from = row.notify_from or op.first_sequence
        event_rows.extend(_event(row.no, event) for event in op.rows)
        blobs.extend(event[4] for event in op.rows)
        audit_rows.extend((row.no, *entry) for entry in op.audit)
        outcomes.append(Outcome(op.future, committed=Committed(row.no, op.execution_id, op.events)))

    stored = distinct_blobs(blobs)
    if stored:
        # Rare (large outputs): a statement of its own rather than a part of _WRITE.
        await conn.execute(_UPSERT_PAYLOADS, *(list(column) for column in zip(*_payload_rows(stored), strict=True)))
    await conn.fetchval(_WRITE, *_write_arguments(rows, event_rows, instance))
    if audit_rows:
        # Rare (a client's command), so a statement of its own rather than a part of _WRITE.
        await conn.execute(INSERT_AUDIT, *(list(column) for column in zip(*audit_rows, strict=True)))
    return outcomes


def _event(no: int, row: EventRow) -> tuple[int, int, datetime | None, str, bytes, str | None]:
    """The events row of an EventRow: the blob is written apart and named by its digest."""
    sequence, recorded_at, kind, payload, blob = row
    return (no, sequence, recorded_at, kind, payload, None if blob is None else blob.sha256)


def _payload_rows(stored: list[tuple[str, bytes, int]]) -> list[tuple[str, bytes, int, int]]:
    return [(digest, data, len(data), refs) for digest, data, refs in stored]


def _release(row: _Row) -> None:
    """A parked or quarantined execution needs no holder: its lease is freed."""
    row.owner, row.lease_expires_at, row.released = "", None, True


def _holds(row: _Row, lease: Lease, now: datetime) -> bool:
    """Whether `lease`'s owner holds the row with a lease that has not lapsed at `now`."""
    return row.owner == lease.owner and row.lease_expires_at is not None and row.lease_expires_at > now


def _write_arguments(
    rows: dict[str, _Row],
    event_rows: list[tuple[int, int, datetime | None, str, bytes, str | None]],
    instance: str,
) -> list[list[Any]]:
    """The 30 arrays of _WRITE: new executions, events, changed executions, notifications."""
    created = [row for row in rows.values() if row.record is not None]
    changed = [row for row in rows.values() if row.record is None and row.changed]
    arguments: list[list[Any]] = [[row.no for row in created]]
    arguments += [
        [getattr(row.record, name) for row in created]
        for name in ("execution_id", "user_id", "workflow_type", "plan_id", "request_id", "priority")
    ]
    arguments += [
        [row.state for row in created],
        [row.record.created_at for row in created if row.record is not None],
        [row.updated_at for row in created],
        [row.last_sequence for row in created],
        [row.parked for row in created],
        [row.wake_at for row in created],
        [row.quarantine_error for row in created],
    ]
    events = [list(column) for column in zip(*event_rows, strict=True)] if event_rows else [[]] * 6
    arguments += events[:5]
    arguments += [
        [row.no for row in changed],
        [row.state for row in changed],
        [row.updated_at for row in changed],
        [row.last_sequence for row in changed],
        [row.parked for row in changed],
        [row.wake_at for row in changed],
        [row.quarantine_error for row in changed],
        [row.released for row in changed],
    ]
    announced = [row for row in rows.values() if row.notify_from]
    arguments.append([notify_payload(instance, row.no, row.notify_from, row.last_sequence) for row in announced])
    arguments.append([row.record.waiting for row in created if row.record is not None])
    arguments.append(events[5])
    return arguments
