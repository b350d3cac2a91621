"""The audit trail in the SQLite store: its entries and listing, and deleting executions.

Entries are written by the batch (``_sqlite_batch``) in the transaction of the events they
index. Deletions (a user's executions for DeleteUserData, old finished ones for retention) run
in the writer's transaction like any write (one deletion is one write of a batch), so a
deletion and the appends around it are serialized by the one write connection. Each looks its
executions up through an index (the owner's, or the state index's ranges of the terminal states
below the cutoff), then deletes their events, audit entries and summary rows by key.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass

from baton.v1 import execution_pb2

from server.store._audit import audit_fields, audit_page, deletion_reason
from server.store._sqlite_rows import event_micros, from_micros
from server.store.base import (
    DEFAULT_AUDIT_PAGE_SIZE,
    TERMINAL_STATES,
    USER_DATA_DELETED,
    AuditPage,
    AuditQuery,
    Deletion,
    UnfinishedExecutionsError,
)

#: An audit entry as the caller's side prepares it: (sequence, recorded_at, subject, action,
#: reason, actor). The batch adds the execution (see _sqlite_batch._INSERT_AUDIT).
AuditRow = tuple[int, int, str, str, str, bytes]


def audit_rows(events: Sequence[execution_pb2.ExecutionEvent]) -> list[AuditRow]:
    """The audit entries of the events a client caused, as the batch inserts them."""
    rows: list[AuditRow] = []
    for event in events:
        fields = audit_fields(event)
        if fields is not None:
            rows.append((event.sequence, event_micros(event), *fields))
    return rows


def list_audit(conn: sqlite3.Connection, query: AuditQuery, after: int | None) -> AuditPage:
    """Reads a page of the audit trail (on a read connection), newest first, through one index."""
    clauses: list[str] = []
    params: list[object] = []
    for column in ("execution_id", "user_id", "subject"):
        value = getattr(query, column)
        if value:
            clauses.append(f"{column} = ?")
            params.append(value)
    if after is not None:
        clauses.append("audit_no < ?")
        params.append(after)
    size = query.page_size or DEFAULT_AUDIT_PAGE_SIZE
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(size + 1)
    rows = conn.execute(
        "SELECT audit_no, execution_id, user_id, sequence, recorded_at, action, reason, actor"
        f" FROM audit_events {where} ORDER BY audit_no DESC LIMIT ?",
        params,
    ).fetchall()
    return audit_page(rows, size, from_micros)


@dataclass(slots=True)
class DeleteUserOp:
    """A queued delete_user_data."""

    user_id: str
    note: tuple[int, str, bytes] | None
    """(recorded_at microseconds, subject, serialized Actor) of the deletion's audit entry."""
    future: asyncio.Future[Deletion]


@dataclass(slots=True)
class ExpireOp:
    """A queued delete_finished_before (one batch of a retention sweep)."""

    cutoff: int
    """Microseconds since the epoch: executions last updated before it go."""
    limit: int
    future: asyncio.Future[Deletion]


DeleteOp = DeleteUserOp | ExpireOp

_USER_EXECUTIONS = (
    "SELECT execution_no, execution_id, state FROM executions WHERE user_id = ? ORDER BY created_at, execution_id"
)
# Terminal rows created before the cutoff, one range of the state index per terminal state (an
# execution last updated before the cutoff was created before it too); updated_at is checked
# on those rows alone.
_EXPIRED = (
    " UNION ALL ".join(
        f"SELECT execution_no, execution_id FROM executions WHERE state = {state} AND created_at < ?1"
        " AND updated_at < ?1"
        for state in sorted(TERMINAL_STATES)
    )
    + " LIMIT ?2"
)
_INSERT_NOTE = (
    "INSERT INTO audit_events (execution_id, user_id, sequence, recorded_at, subject, action, reason, actor)"
    " VALUES ('', ?, 0, ?, ?, ?, ?, ?)"
)


_RELEASED = (
    "SELECT payload_sha256, count(*) FROM events WHERE execution_no IN (SELECT value FROM json_each(?))"
    " AND payload_sha256 IS NOT NULL GROUP BY payload_sha256"
)


def apply_delete(conn: sqlite3.Connection, op: DeleteOp) -> Deletion:
    """Applies one deletion inside the open transaction.

    Raises:
        UnfinishedExecutionsError: (DeleteUserOp) the user has unfinished executions; nothing
            was written.
    """
    if isinstance(op, ExpireOp):
        return _delete(conn, conn.execute(_EXPIRED, (op.cutoff, op.limit)).fetchall())
    rows = conn.execute(_USER_EXECUTIONS, (op.user_id,)).fetchall()
    unfinished = [(execution_id, state) for _, execution_id, state in rows if state not in TERMINAL_STATES]
    if unfinished:
        raise UnfinishedExecutionsError(op.user_id, unfinished)
    deletion = _delete(conn, [(no, execution_id) for no, execution_id, _ in rows])
    if op.note is not None:
        recorded_at, subject, actor = op.note
        conn.execute(
            _INSERT_NOTE, (op.user_id, recorded_at, subject, USER_DATA_DELETED, deletion_reason(deletion), actor)
        )
    return deletion


def _delete(conn: sqlite3.Connection, rows: list[tuple[int, str]]) -> Deletion:
    if not rows:
        return Deletion()
    numbers = json.dumps([no for no, _ in rows])
    ids = [execution_id for _, execution_id in rows]
    # Their outputs stored apart lose these references (server/store/_payloads.py rule 3).
    released = conn.execute(_RELEASED, (numbers,)).fetchall()
    events = conn.execute("DELETE FROM events WHERE execution_no IN (SELECT value FROM json_each(?))", (numbers,))
    count = events.rowcount
    if released:
        conn.executemany("UPDATE payloads SET refs = refs - ? WHERE sha256 = ?", [(n, d) for d, n in released])
        conn.execute(
            "DELETE FROM payloads WHERE sha256 IN (SELECT value FROM json_each(?)) AND refs <= 0",
            (json.dumps([digest for digest, _ in released]),),
        )
    conn.execute("DELETE FROM audit_events WHERE execution_id IN (SELECT value FROM json_each(?))", (json.dumps(ids),))
    # Callbacks still owed for them go too: nothing is sent about deleted data.
    conn.execute(
        "DELETE FROM callback_outbox WHERE execution_id IN (SELECT value FROM json_each(?))", (json.dumps(ids),)
    )
    conn.execute("DELETE FROM executions WHERE execution_no IN (SELECT value FROM json_each(?))", (numbers,))
    return Deletion(execution_ids=ids, events=count)
