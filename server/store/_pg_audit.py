"""The audit trail in the PostgreSQL store: its entries and listing, and deleting executions.

Entries are written by the batch (``_pg_batch``) in the transaction of the events they index.
Deletions (a user's executions for DeleteUserData, old finished ones for retention) run on a
pool connection in a transaction of their own, beside the writer: a user's rows are locked in
execution_no order, as the writer locks them, so the two never deadlock; retention takes
its rows with ``FOR UPDATE SKIP LOCKED``, so replicas sweeping at once take disjoint sets,
never wait for each other, and a row already deleted is simply not found (idempotent). The
payloads their events named are counted down last, in digest order as writes upsert them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import asyncpg
from baton.v1 import execution_pb2

from server.store._audit import audit_fields, audit_page, deletion_reason
from server.store._pg_rows import event_time
from server.store.base import (
    DEFAULT_AUDIT_PAGE_SIZE,
    TERMINAL_STATES,
    USER_DATA_DELETED,
    AuditPage,
    AuditQuery,
    Deletion,
    DeletionNote,
    UnfinishedExecutionsError,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

#: An audit entry as the caller's side prepares it: (sequence, recorded_at, subject, action,
#: reason, actor). The batch adds the execution.
AuditRow = tuple[int, datetime | None, str, str, str, bytes]

# Entries take their execution's id and owner from its row (inserted by the batch's write
# statement just before, for a new execution); the ordinal keeps the order they were recorded in.
INSERT_AUDIT = """
INSERT INTO audit_events (execution_id, user_id, sequence, recorded_at, subject, action, reason, actor)
SELECT x.execution_id, x.user_id, a.sequence, a.recorded_at, a.subject, a.action, a.reason, a.actor
FROM unnest($1::bigint[], $2::bigint[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::bytea[])
    WITH ORDINALITY AS a(execution_no, sequence, recorded_at, subject, action, reason, actor, ordinal)
JOIN executions AS x ON x.execution_no = a.execution_no
ORDER BY a.ordinal
"""

_USER_EXECUTIONS = (
    "SELECT execution_no, execution_id, state FROM executions WHERE user_id = $1 ORDER BY execution_no FOR UPDATE"
)

_DELETE = """
WITH gone_events AS (DELETE FROM events WHERE execution_no = ANY($1::bigint[]) RETURNING payload_sha256),
gone_audit AS (DELETE FROM audit_events WHERE execution_id = ANY($2::text[])),
gone_callbacks AS (DELETE FROM callback_outbox WHERE execution_id = ANY($2::text[])),
gone AS (DELETE FROM executions WHERE execution_no = ANY($1::bigint[]))
SELECT (SELECT count(*) FROM gone_events),
    ARRAY(SELECT payload_sha256 FROM gone_events WHERE payload_sha256 IS NOT NULL)
"""

# Terminal rows created before the cutoff (an execution last updated before it was created
# before it too: the state index's ranges), updated before it.
_EXPIRE = """
WITH doomed AS (
    SELECT execution_no, execution_id FROM executions
    WHERE state = ANY($3::int[]) AND created_at < $1 AND updated_at < $1
    LIMIT $2 FOR UPDATE SKIP LOCKED
),
gone_events AS (
    DELETE FROM events AS e USING doomed AS d WHERE e.execution_no = d.execution_no RETURNING e.payload_sha256
),
gone_audit AS (DELETE FROM audit_events AS a USING doomed AS d WHERE a.execution_id = d.execution_id),
gone_callbacks AS (DELETE FROM callback_outbox AS c USING doomed AS d WHERE c.execution_id = d.execution_id),
gone AS (DELETE FROM executions AS x USING doomed AS d WHERE x.execution_no = d.execution_no RETURNING x.execution_id)
SELECT ARRAY(SELECT execution_id FROM gone), (SELECT count(*) FROM gone_events),
    ARRAY(SELECT payload_sha256 FROM gone_events WHERE payload_sha256 IS NOT NULL)
"""

# Outputs stored apart lose the deleted events' references (server/store/_payloads.py rule 3):
# their rows are locked in digest order (the order writes upsert them in), counted down, and
# those left at zero deleted, all in the deleting transaction.
_LOCK_PAYLOADS = "SELECT sha256 FROM payloads WHERE sha256 = ANY($1::text[]) ORDER BY sha256 FOR UPDATE"
_COUNT_DOWN = """
UPDATE payloads AS p SET refs = p.refs - r.n
FROM unnest($1::text[], $2::bigint[]) AS r(sha256, n) WHERE p.sha256 = r.sha256
"""
_DROP_PAYLOADS = "DELETE FROM payloads WHERE sha256 = ANY($1::text[]) AND refs <= 0"

_INSERT_NOTE = (
    "INSERT INTO audit_events (execution_id, user_id, sequence, recorded_at, subject, action, reason, actor)"
    " VALUES ('', $1, 0, $2, $3, $4, $5, $6)"
)


def audit_rows(events: Sequence[execution_pb2.ExecutionEvent]) -> list[AuditRow]:
    """The audit entries of the events a client caused, as the batch inserts them."""
    rows: list[AuditRow] = []
    for event in events:
        fields = audit_fields(event)
        if fields is not None:
            rows.append((event.sequence, event_time(event), *fields))
    return rows


async def list_audit(pool: asyncpg.Pool, query: AuditQuery, after: int | None) -> AuditPage:
    """Reads a page of the audit trail, newest first, through one of its indexes."""
    clauses: list[str] = []
    params: list[object] = []
    for column in ("execution_id", "user_id", "subject"):
        value = getattr(query, column)
        if value:
            params.append(value)
            clauses.append(f"{column} = ${len(params)}")
    if after is not None:
        params.append(after)
        clauses.append(f"audit_no < ${len(params)}")
    size = query.page_size or DEFAULT_AUDIT_PAGE_SIZE
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    params.append(size + 1)
    rows = await pool.fetch(
        "SELECT audit_no, execution_id, user_id, sequence, recorded_at, action, reason, actor"
        f" FROM audit_events {where} ORDER BY audit_no DESC LIMIT ${len(params)}",
        *params,
    )
    return audit_page(rows, size, lambda at: at or _EPOCH)


async def delete_user(pool: asyncpg.Pool, user_id: str, note: DeletionNote | None) -> Deletion:
    """Deletes the user's executions, events and audit entries (and writes the note) in one transaction.

    Raises:
        UnfinishedExecutionsError: an execution of the user is not terminal (nothing is deleted).
    """
    async with pool.acquire() as conn, conn.transaction():
        rows = await conn.fetch(_USER_EXECUTIONS, user_id)
        unfinished = [(row[1], row[2]) for row in rows if row[2] not in TERMINAL_STATES]
        if unfinished:
            raise UnfinishedExecutionsError(user_id, unfinished)
        deletion = Deletion()
        if rows:
            ids = [row[1] for row in rows]
            gone = await conn.fetchrow(_DELETE, [row[0] for row in rows], ids)
            if gone is None:  # a SELECT without FROM always returns one row
                raise RuntimeError("the deletion returned no row")
            await _release_payloads(conn, gone[1])
            deletion = Deletion(execution_ids=ids, events=int(gone[0]))
        if note is not None:
            reason = deletion_reason(deletion)
            await conn.execute(
                _INSERT_NOTE, user_id, note.recorded_at, note.subject, USER_DATA_DELETED, reason, note.actor
            )
        return deletion


async def expire(pool: asyncpg.Pool, cutoff: datetime, limit: int) -> Deletion:
    """Deletes up to `limit` terminal executions last updated before `cutoff`, in one statement.

    When their events named payloads stored apart, three more statements in its transaction
    count those down (server/store/_payloads.py rule 3).
    """
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_EXPIRE, cutoff, limit, sorted(TERMINAL_STATES))
        if row is None:  # a SELECT without FROM always returns one row
            return Deletion()
        await _release_payloads(conn, row[2])
    return Deletion(execution_ids=list(row[0]), events=int(row[1]))


async def _release_payloads(
    conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy, digests: Sequence[str]
) -> None:
    """Counts down the payloads the deleted events named (one digest per event) and drops the unnamed."""
    if not digests:
        return
    counts: dict[str, int] = {}
    for digest in digests:
        counts[digest] = counts.get(digest, 0) + 1
    names = sorted(counts)
    await conn.execute(_LOCK_PAYLOADS, names)
    await conn.execute(_COUNT_DOWN, names, [counts[name] for name in names])
    await conn.execute(_DROP_PAYLOADS, names)
