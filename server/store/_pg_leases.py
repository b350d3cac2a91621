"""The lease statements of the PostgreSQL store: claim, renew, release (one statement each).

Rules (the ReplicaStore port, server/engine/ports.py, and the memory store of the unit tests):
an execution is free when it has no owner, is already the claimer's, or its lease lapsed at the
claimer's `now`; it is due when it is not parked, or parked with wake_at <= now, and does not
wait for admission (server/engine/admission.py). A claim locks its candidates ``FOR UPDATE SKIP
LOCKED``: rows another replica is claiming or committing are passed over, not waited for, so two
replicas claiming at once take disjoint sets and a claim never queues behind a busy execution.
Renew and release lock their rows in execution_no order, the order the group commit's lookup
locks them, so a renewal and a commit never deadlock.

Clock: every lease time here is a replica's (the engine passes `now` and `lease.until`), never
the database server's ``now()``; the fence in the group commit uses this process's clock too.
One clock rules every comparison, so a skew between the database host and the replicas changes
nothing; replicas' clocks must agree to well within a lease (NTP does).
"""

from __future__ import annotations

from server.store._states import unfinished_ranges
from server.store.base import TERMINAL_STATES


def unfinished_where(terminal: frozenset[int] = TERMINAL_STATES) -> str:
    """The non-terminal states as one index range per gap between terminal states (OR-ed)."""
    return " OR ".join(r if " AND " not in r else f"({r})" for r in unfinished_ranges(terminal))


# $1 owner, $2 lease until, $3 now. lease_expires_at <= now is lapsed (as the memory store).
_FREE = "(owner = '' OR owner = $1 OR lease_expires_at IS NULL OR lease_expires_at <= $3)"


def _claim(extra: str, states: str = unfinished_where()) -> str:
    return f"""
WITH taken AS (
    UPDATE executions AS x SET owner = $1, lease_expires_at = $2, wanted_by = ''
    WHERE x.execution_no IN (
        SELECT execution_no FROM executions
        WHERE ({states}) AND {_FREE} AND {extra}
        ORDER BY created_at, execution_id
        LIMIT $4
        FOR UPDATE SKIP LOCKED
    )
    RETURNING x.execution_id, x.created_at
)
SELECT execution_id FROM taken ORDER BY created_at, execution_id
"""


#: Free, due executions no other replica asked for: $1 owner, $2 until, $3 now, $4 limit.
CLAIM = _claim("(NOT parked OR wake_at <= $3) AND (wanted_by = '' OR wanted_by = $1) AND NOT waiting")

#: Free executions among $5 (text[]), due or not: $1 owner, $2 until, $3 now, $4 limit.
CLAIM_NAMED = _claim("execution_id = ANY($5::text[])")

#: Free executions among $5 (text[]) in any state but quarantined, ended ones too (a rerun takes
#: an ended execution back): $1 owner, $2 until, $3 now, $4 limit.
CLAIM_NAMED_ANY = _claim("execution_id = ANY($5::text[])", "quarantine_error = ''")

#: $1 owner, $2 until, $3 ids: extends the leases $1 still holds; returns their ids.
RENEW = """
UPDATE executions AS x SET lease_expires_at = $2
WHERE x.execution_no IN (
    SELECT execution_no FROM executions WHERE execution_id = ANY($3::text[]) AND owner = $1
    ORDER BY execution_no FOR UPDATE
)
RETURNING x.execution_id
"""

#: $1 owner, $2 ids: frees the executions $1 holds among them.
RELEASE = """
UPDATE executions AS x SET owner = '', lease_expires_at = NULL
WHERE x.execution_no IN (
    SELECT execution_no FROM executions WHERE execution_id = ANY($2::text[]) AND owner = $1
    ORDER BY execution_no FOR UPDATE
)
RETURNING x.execution_id
"""


#: $1 id, $2 the replica that wants it: marks an execution another replica holds as wanted.
WANT = """
UPDATE executions SET wanted_by = $2
WHERE execution_id = $1 AND owner <> '' AND owner <> $2 AND wanted_by <> $2
"""

#: $1 owner: the executions $1 holds that another replica wants.
WANTED = "SELECT execution_id FROM executions WHERE owner = $1 AND wanted_by <> '' ORDER BY execution_no"
