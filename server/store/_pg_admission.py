"""Admission control in the PostgreSQL store: the lock, the counts, the queue order, admitting.

The rules are server/engine/admission.py's. Rule 6 (one decision at a time, whichever replica
makes it) is a transaction-level advisory lock: a group commit that creates executions under
limits takes it before it locks any row, and so does an admission, so the lock order is always
advisory lock, then rows, and the two never deadlock. An admission passes over rows another
transaction holds (``SKIP LOCKED``: a cancel being committed), so it never waits on a busy row.
Times are the replicas' clocks (the engine passes `now`), as for leases.
"""

from __future__ import annotations

from server.engine.admission import PRIORITY_CRITICAL
from server.store._pg_leases import unfinished_where

ADMISSION_LOCK_KEY = 0x626174_6F6E_01
"""The advisory lock (one bigint key) every admission decision takes: "baton" and 1."""

LOCK = "SELECT pg_advisory_xact_lock($1::bigint)"

COUNTS = f"""
SELECT
    (SELECT count(*) FROM executions WHERE ({unfinished_where()}) AND NOT waiting),
    (SELECT count(*) FROM executions WHERE waiting AND ({unfinished_where()}))
"""

COUNT_WAITING = f"SELECT count(*) FROM executions WHERE waiting AND ({unfinished_where()})"


def _effective(table: str, now: str, aging: str) -> str:
    """Rule 5 in SQL: the wait in whole microseconds, floored by the aging step."""
    waited = f"GREATEST(0, floor(extract(epoch FROM ({now} - {table}.created_at)) * 1000000))"
    return f"LEAST({PRIORITY_CRITICAL}, {table}.priority + floor({waited} / {aging})::int)"


#: $1 now, $2 aging (µs, bigint), $3 how many (NULL: all): admits in admission order.
ADMIT = f"""
WITH next AS (
    SELECT x.execution_no, x.execution_id, x.created_at, {_effective("x", "$1::timestamptz", "$2::bigint")} AS class
    FROM executions AS x
    WHERE x.waiting AND ({unfinished_where()})
    ORDER BY class DESC, x.created_at, x.execution_no
    LIMIT $3::bigint
    FOR UPDATE OF x SKIP LOCKED
),
admitted AS (
    UPDATE executions AS x SET waiting = false FROM next WHERE x.execution_no = next.execution_no
    RETURNING x.execution_no
)
SELECT next.execution_id FROM next JOIN admitted USING (execution_no)
ORDER BY next.class DESC, next.created_at, next.execution_no
"""

#: $1 execution_id, $2 now, $3 aging (µs): how many waiting executions go before it, + 1.
POSITION = f"""
WITH me AS (
    SELECT m.execution_no, m.created_at, {_effective("m", "$2::timestamptz", "$3::bigint")} AS class
    FROM executions AS m
    WHERE m.execution_id = $1 AND m.waiting AND ({unfinished_where().replace("state", "m.state")})
)
SELECT 1 + (
    SELECT count(*) FROM executions AS x
    WHERE x.waiting AND ({unfinished_where().replace("state", "x.state")}) AND x.execution_no <> me.execution_no
    AND ({_effective("x", "$2::timestamptz", "$3::bigint")} > me.class
         OR ({_effective("x", "$2::timestamptz", "$3::bigint")} = me.class
             AND (x.created_at, x.execution_no) < (me.created_at, me.execution_no)))
)
FROM me
"""
