"""The callback outbox on PostgreSQL: its statements (server/store/base.py, CallbackOutbox).

Rules:
1. Claims are single statements on the pool, outside the group commit, like leases: a claim
   takes due rows with ``FOR UPDATE SKIP LOCKED``, so replicas claiming at once take disjoint
   rows, and a row stays with its claimer until claimed_until (the claimer's clock).
2. Rows are inserted and deleted by appends (`SCHEDULE`, `TAKE`, run by the batch in the
   append's transaction): a row exists exactly while its callback is owed; the outcome's append
   deletes the row only while its claimer still holds it (one outcome in the history).
"""

from __future__ import annotations

from typing import Any

from server.store.base import PendingCallback

COLUMNS = "delivery_id, execution_id, user_id, url, scheduled_sequence, deadline, attempts, next_attempt_at, last_error"

# A new callback_scheduled for a delivery already owed (an execution that ended again) replaces it.
SCHEDULE = """
INSERT INTO callback_outbox (delivery_id, execution_id, user_id, url, scheduled_sequence, deadline, next_attempt_at)
SELECT $1, x.execution_id, x.user_id, $2, $3, $4, $5 FROM executions AS x WHERE x.execution_no = $6
ON CONFLICT (delivery_id) DO UPDATE SET url = EXCLUDED.url, scheduled_sequence = EXCLUDED.scheduled_sequence,
    deadline = EXCLUDED.deadline, next_attempt_at = EXCLUDED.next_attempt_at, attempts = 0, claimed_by = '',
    claimed_until = NULL, last_error = ''
"""

TAKE = "DELETE FROM callback_outbox WHERE delivery_id = $1 AND claimed_by = $2 RETURNING 1"

CLAIM = f"""
UPDATE callback_outbox AS o SET claimed_by = $1, claimed_until = $3
FROM (
    SELECT delivery_id FROM callback_outbox
    WHERE next_attempt_at <= $2 AND (claimed_until IS NULL OR claimed_until <= $2)
    ORDER BY next_attempt_at LIMIT $4 FOR UPDATE SKIP LOCKED
) AS due
WHERE o.delivery_id = due.delivery_id
RETURNING {", ".join(f"o.{column.strip()}" for column in COLUMNS.split(","))}
"""

RESCHEDULE = """
UPDATE callback_outbox SET attempts = $3, next_attempt_at = $4, claimed_until = $5, last_error = $6
WHERE delivery_id = $2 AND claimed_by = $1
RETURNING 1
"""

RENEW = """
UPDATE callback_outbox SET claimed_until = GREATEST(claimed_until, $3)
WHERE claimed_by = $1 AND delivery_id = ANY($2::text[])
RETURNING delivery_id
"""


def release(owner: str | None, delivery_ids: list[str]) -> tuple[str, list[Any]]:
    """The statement and arguments that free claims (owner None: every claim; no ids: all of owner's)."""
    clauses: list[str] = ["claimed_by <> ''"]
    args: list[Any] = []
    if owner is not None:
        args.append(owner)
        clauses = [f"claimed_by = ${len(args)}"]
    if delivery_ids:
        args.append(delivery_ids)
        clauses.append(f"delivery_id = ANY(${len(args)}::text[])")
    where = " AND ".join(clauses)
    return f"UPDATE callback_outbox SET claimed_by = '', claimed_until = NULL WHERE {where} RETURNING 1", args


def pending_from_row(row: Any) -> PendingCallback:
    """A row of COLUMNS as a PendingCallback."""
    return PendingCallback(
        delivery_id=row[0],
        execution_id=row[1],
        user_id=row[2],
        url=row[3],
        scheduled_sequence=row[4],
        deadline=row[5],
        attempts=row[6],
        next_attempt_at=row[7],
        last_error=row[8],
    )
