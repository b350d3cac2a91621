"""One batch of writes applied inside an open SQLite transaction, in a handful of statements.

Why a handful: every statement is a round trip from Python into SQLite, and on the
ThreadWriter each also hands the GIL over and must win it back from a busy event loop (up to
``sys.getswitchinterval()``, 5 ms by default). So a batch is one lookup statement, then
multi-row INSERTs and one UPDATE ... FROM VALUES (SQLite 3.33+) per 128 rows, however many
writes it carries; never a statement per event.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from baton.v1 import execution_pb2

from server.engine.admission import AdmissionLimits, QueueFullError, Tally
from server.store._outbox import ScheduledRow
from server.store._payloads import Blob, distinct_blobs
from server.store._sqlite_admission import AdmitOp, apply_admit, counts
from server.store._sqlite_audit import AuditRow, DeleteOp, apply_delete
from server.store._sqlite_outbox import OutboxOp, schedule, take_finished
from server.store._sqlite_rows import RECORD_COLUMNS, RecordRow, record_from_row
from server.store.base import (
    CallbackClaimLostError,
    ExecutionNotFoundError,
    ExecutionRecord,
    SequenceConflictError,
    UnfinishedExecutionsError,
)

#: An event as the caller's side prepares it: (sequence, kind, recorded_at, payload, blob), the
#: blob being its output stored apart (server/store/_payloads.py), if any. The writer puts the
#: execution's execution_no in front and writes the blob's digest in the row.
EventRow = tuple[int, str, int, bytes, Blob | None]

#: An executions row without its execution_no, in _EXECUTION_COLUMNS order after it.
ExecutionRow = tuple[str, str, str, str, str, int, int, int, int, int]


@dataclass(slots=True)
class CreateOp:
    """A queued create_execution."""

    record: ExecutionRecord
    """The record to insert (state QUEUED, last_sequence 1)."""
    row: ExecutionRow
    """The executions row (the writer assigns its execution_no)."""
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

    @property
    def execution_id(self) -> str:
        """The new execution's id."""
        return self.record.execution_id


@dataclass(slots=True)
class AppendOp:
    """A queued append."""

    execution_id: str
    first_sequence: int
    last_sequence: int
    state: int
    updated_at: int
    """The latest event time in microseconds (0 when the events carry none)."""
    rows: list[EventRow]
    events: Sequence[execution_pb2.ExecutionEvent]
    """The events, for commit listeners."""
    future: asyncio.Future[None]
    """Resolved on the event loop after the commit."""
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
    wake_at: int | None
    """Microseconds since the epoch; None to wait for a command."""
    future: asyncio.Future[None]


@dataclass(slots=True)
class QuarantineOp:
    """A queued quarantine."""

    execution_id: str
    error: str
    future: asyncio.Future[None]


RowOp = CreateOp | AppendOp | ParkOp | QuarantineOp
"""A write of an execution's rows."""

WriteOp = RowOp | DeleteOp | AdmitOp | OutboxOp


@dataclass(slots=True)
class Outcome:
    """What one write came to: a result or an error, and the events it committed."""

    future: asyncio.Future[Any]
    result: object = None
    error: BaseException | None = None
    committed: tuple[str, Sequence[execution_pb2.ExecutionEvent]] | None = None
    """(execution_id, events) for commit listeners; None when nothing was written."""


# Rows per multi-row statement. Row counts are padded up to a power of two (padding rows are
# all NULL and filtered out), so at most eight shapes of each statement are ever prepared.
_CHUNK = 128

_EXECUTION_COLUMNS = (
    "execution_no, execution_id, user_id, workflow_type, plan_id, request_id,"
    " priority, state, created_at, updated_at, last_sequence, waiting"
)
_EVENT_COLUMNS = "execution_no, sequence, kind, recorded_at, payload, payload_sha256"

# Everything a batch must know before writing, in one row: the next execution_no, the
# [execution_id, execution_no, last_sequence] of the appended executions, and the records
# already holding the created executions' (user_id, request_id). The repeated
# "request_id <> ''" lets SQLite use the partial unique index.
_LOOKUP = f"""
SELECT
    (SELECT COALESCE(MAX(execution_no), 0) + 1 FROM executions),
    (SELECT json_group_array(json_array(execution_id, execution_no, last_sequence))
        FROM executions WHERE execution_id IN (SELECT value FROM json_each(?1))),
    (SELECT json_group_array(json_array({", ".join(f"x.{c.strip()}" for c in RECORD_COLUMNS.split(","))}))
        FROM json_each(?2) AS k JOIN executions AS x
        ON x.user_id = json_extract(k.value, '$[0]') AND x.request_id = json_extract(k.value, '$[1]')
        AND x.request_id <> '')
"""


def _insert_sql(table: str, columns: str, width: int, rows: int) -> str:
    values = ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)
    selected = ", ".join(f"column{i}" for i in range(1, width + 1))
    return f"INSERT INTO {table} ({columns}) SELECT {selected} FROM (VALUES {values}) WHERE column1 IS NOT NULL"


def _update_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?)"] * rows)
    # updated_at never moves backwards, and an event without a time leaves it alone. An append
    # un-parks (the row's page is rewritten anyway, so this costs nothing measurable), and a
    # quarantined execution stays FAILED.
    return (
        "UPDATE executions SET"
        " state = CASE WHEN executions.quarantine_error = '' THEN v.column2 ELSE executions.state END,"
        " last_sequence = v.column3, updated_at = MAX(executions.updated_at, v.column4),"
        " parked = 0, wake_at = NULL"
        f" FROM (VALUES {values}) AS v WHERE executions.execution_no = v.column1"
    )


def _park_sql(rows: int) -> str:
    values = ", ".join(["(?, ?)"] * rows)
    return (
        "UPDATE executions SET parked = 1, wake_at = v.column2"
        f" FROM (VALUES {values}) AS v WHERE executions.execution_no = v.column1"
    )


def _quarantine_sql(rows: int) -> str:
    values = ", ".join(["(?, ?)"] * rows)
    return (
        f"UPDATE executions SET state = {execution_pb2.EXECUTION_STATE_FAILED}, quarantine_error = v.column2,"
        " parked = 0, wake_at = NULL"
        f" FROM (VALUES {values}) AS v WHERE executions.execution_no = v.column1"
    )


# Audit entries take their execution's id and owner from its row (inserted earlier in the same
# transaction for a new execution); the ordinal keeps them in the order they were recorded.
_AUDIT_COLUMNS = "execution_id, user_id, sequence, recorded_at, subject, action, reason, actor"


def _audit_sql(rows: int) -> str:
    values = ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
    return (
        f"INSERT INTO audit_events ({_AUDIT_COLUMNS})"
        " SELECT x.execution_id, x.user_id, v.column3, v.column4, v.column5, v.column6, v.column7, v.column8"
        f" FROM (VALUES {values}) AS v JOIN executions AS x ON x.execution_no = v.column2"
        " WHERE v.column1 IS NOT NULL ORDER BY v.column1"
    )


_SIZES = tuple(2**power for power in range(_CHUNK.bit_length()) if 2**power <= _CHUNK)
# Statement texts by padded row count; built once, so the connection's cache holds each shape.
_INSERT_EXECUTIONS = {size: _insert_sql("executions", _EXECUTION_COLUMNS, 12, size) for size in _SIZES}
_INSERT_EVENTS = {size: _insert_sql("events", _EVENT_COLUMNS, 6, size) for size in _SIZES}
# Outputs stored apart (server/store/_payloads.py rule 3): one row per digest, counting its events.
_UPSERT_PAYLOAD = (
    "INSERT INTO payloads (sha256, data, size_bytes, refs) VALUES (?, ?, ?, ?)"
    " ON CONFLICT (sha256) DO UPDATE SET refs = payloads.refs + excluded.refs"
)
_UPDATE_EXECUTIONS = {size: _update_sql(size) for size in _SIZES}
_PARK_EXECUTIONS = {size: _park_sql(size) for size in _SIZES}
_QUARANTINE_EXECUTIONS = {size: _quarantine_sql(size) for size in _SIZES}
_INSERT_AUDIT = {size: _audit_sql(size) for size in _SIZES}


def _padded(rows: int) -> int:
    size = 1
    while size < rows:
        size *= 2
    return size


def _execute_rows(
    conn: sqlite3.Connection, statements: dict[int, str], width: int, rows: Sequence[tuple[object, ...]]
) -> None:
    """Runs the statement for each chunk's padded row count over rows, _CHUNK rows at a time."""
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        size = _padded(len(chunk))
        params: list[object] = [value for row in chunk for value in row]
        params.extend([None] * (width * (size - len(chunk))))
        conn.execute(statements[size], params)


def _event(no: int, row: EventRow) -> tuple[object, ...]:
    """The events row of an EventRow: the blob is written apart and named by its digest."""
    sequence, kind, recorded_at, payload, blob = row
    return (no, sequence, kind, recorded_at, payload, None if blob is None else blob.sha256)


def apply_batch(conn: sqlite3.Connection, batch: Sequence[WriteOp]) -> list[Outcome]:
    """Applies writes, in order, inside the open transaction; returns one outcome per write.

    A deletion, an admission or a change of callback claims (all rare) splits the batch: the
    writes before it are applied, then it, then the writes after it, so each sees the rows as the
    ones before it left them.
    """
    writes = [op for op in batch if not isinstance(op, DeleteOp | AdmitOp | OutboxOp)]
    if len(writes) == len(batch):
        return _apply_writes(conn, writes)
    outcomes: list[Outcome] = []
    run: list[RowOp] = []
    for op in [*batch, None]:
        if op is not None and not isinstance(op, DeleteOp | AdmitOp | OutboxOp):
            run.append(op)
            continue
        if run:
            outcomes.extend(_apply_writes(conn, run))
            run = []
        if isinstance(op, AdmitOp):
            outcomes.append(Outcome(op.future, result=apply_admit(conn, op)))
        elif isinstance(op, OutboxOp):
            outcomes.append(Outcome(op.future, result=op.run(conn)))
        elif op is not None:
            try:
                outcomes.append(Outcome(op.future, result=apply_delete(conn, op)))
            except UnfinishedExecutionsError as refused:
                outcomes.append(Outcome(op.future, error=refused))
    return outcomes


def _apply_writes(conn: sqlite3.Connection, batch: Sequence[RowOp]) -> list[Outcome]:
    """Applies writes other than deletions, in order, inside the open transaction.

    Sequence conflicts and unknown executions become outcomes; a constraint violation (say, a
    reused execution_id) raises, and the caller replays the batch write by write.

    The summary rows are updated at the end, appends first, then parks, then quarantines; a
    park that an append of the same batch follows is dropped, so the order of the writes is
    kept (an append un-parks; a quarantine holds whatever follows it).
    """
    append_ids = sorted({op.execution_id for op in batch if not isinstance(op, CreateOp)})
    request_keys = [
        [op.record.user_id, op.record.request_id] for op in batch if isinstance(op, CreateOp) and op.record.request_id
    ]
    next_no, known_json, requested_json = conn.execute(
        _LOOKUP, (json.dumps(append_ids), json.dumps(request_keys))
    ).fetchone()
    # execution_id -> [execution_no, last_sequence], kept current as the batch is applied.
    known: dict[str, list[int]] = {entry[0]: entry[1:] for entry in json.loads(known_json)}
    by_request: dict[tuple[str, str], ExecutionRecord] = {}
    for row in json.loads(requested_json):
        record = record_from_row(cast(RecordRow, tuple(row)))
        by_request[(record.user_id, record.request_id)] = record

    new_rows: list[tuple[object, ...]] = []
    event_rows: list[tuple[object, ...]] = []
    blobs: list[Blob | None] = []
    audit_rows: list[tuple[object, ...]] = []
    updates: dict[int, tuple[int, int, int]] = {}
    parks: dict[int, int | None] = {}
    quarantines: dict[int, str] = {}
    outcomes: list[Outcome] = []
    # Admission (server/engine/admission.py rule 2) counts once per batch: the writer holds the
    # write lock, so the counts change only by this batch's own creates, tallied below.
    admitting = any(isinstance(op, CreateOp) and op.admission is not None and op.admission.bounded for op in batch)
    tally = Tally(*counts(conn)) if admitting else Tally()
    for op in batch:
        if isinstance(op, CreateOp):
            record = op.record
            key = (record.user_id, record.request_id)
            existing = by_request.get(key) if record.request_id else None
            if existing is not None:
                outcomes.append(Outcome(op.future, result=(existing, False)))
                continue
            try:
                record = tally.place(op.admission, record)
            except QueueFullError as full:
                outcomes.append(Outcome(op.future, error=full))
                continue
            if record.request_id:
                by_request[key] = record
            # The writer holds the write lock, so nobody else can take these numbers.
            no, next_no = next_no, next_no + 1
            new_rows.append((no, *op.row, 1 if record.waiting else 0))
            event_rows.append(_event(no, op.event_row))
            blobs.append(op.event_row[4])
            base = len(audit_rows)
            audit_rows.extend((base + i, no, *row) for i, row in enumerate(op.audit))
            known[record.execution_id] = [no, 1]
            outcomes.append(Outcome(op.future, result=(record, True), committed=(record.execution_id, (op.event,))))
            continue
        entry = known.get(op.execution_id)
        if entry is None:
            outcomes.append(Outcome(op.future, error=ExecutionNotFoundError(op.execution_id)))
            continue
        no, last = entry
        if isinstance(op, ParkOp):
            parks[no] = op.wake_at
            outcomes.append(Outcome(op.future))
            continue
        if isinstance(op, QuarantineOp):
            quarantines[no] = op.error
            outcomes.append(Outcome(op.future))
            continue
        if op.first_sequence != last + 1:
            conflict = SequenceConflictError(
                f"execution {op.execution_id}: append starts at sequence {op.first_sequence},"
                f" but its last sequence is {last}"
            )
            outcomes.append(Outcome(op.future, error=conflict))
            continue
        if op.finishing is not None and not take_finished(conn, *op.finishing):
            outcomes.append(Outcome(op.future, error=CallbackClaimLostError(op.finishing[0])))
            continue
        for scheduled in op.scheduled:
            schedule(conn, no, scheduled)
        entry[1] = op.last_sequence
        parks.pop(no, None)
        event_rows.extend(_event(no, row) for row in op.rows)
        blobs.extend(row[4] for row in op.rows)
        base = len(audit_rows)
        audit_rows.extend((base + i, no, *row) for i, row in enumerate(op.audit))
        earlier = updates.get(no)
        updated_at = op.updated_at if earlier is None else max(op.updated_at, earlier[2])
        updates[no] = (op.state, op.last_sequence, updated_at)
        outcomes.append(Outcome(op.future, committed=(op.execution_id, op.events)))

    if new_rows:
        _execute_rows(conn, _INSERT_EXECUTIONS, 12, new_rows)
    if event_rows:
        _execute_rows(conn, _INSERT_EVENTS, 6, event_rows)
    stored = distinct_blobs(blobs)
    if stored:
        # Rare (large outputs), and each row is large anyway: a statement per distinct payload.
        conn.executemany(_UPSERT_PAYLOAD, [(digest, data, len(data), refs) for digest, data, refs in stored])
    if audit_rows:
        _execute_rows(conn, _INSERT_AUDIT, 8, audit_rows)
    if updates:
        update_rows = [(no, state, last, updated_at) for no, (state, last, updated_at) in updates.items()]
        _execute_rows(conn, _UPDATE_EXECUTIONS, 4, update_rows)
    if parks:
        _execute_rows(conn, _PARK_EXECUTIONS, 2, list(parks.items()))
    if quarantines:
        _execute_rows(conn, _QUARANTINE_EXECUTIONS, 2, list(quarantines.items()))
    return outcomes
