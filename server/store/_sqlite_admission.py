"""Admission control in the SQLite store: the counts, the queue order and admitting, in SQL.

The rules are server/engine/admission.py's. Every decision runs on the store's single writer,
inside its transaction, so a count and the writes that depend on it cannot be interleaved with
another write (the writer is the admission lock of rule 6). Reads of the queue (positions, its
depth) run on the readers: they see the last commit.
"""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import dataclass

from server.engine.admission import PRIORITY_CRITICAL, AdmissionLimits
from server.store._states import unfinished_ranges

_UNFINISHED = " OR ".join(f"({r})" for r in unfinished_ranges())

#: (admitted unfinished, waiting unfinished): the running count reads the unfinished rows through
#: the state index, the queue through the waiting index.
COUNTS = f"""
SELECT
    (SELECT count(*) FROM executions WHERE ({_UNFINISHED}) AND waiting = 0),
    (SELECT count(*) FROM executions WHERE waiting = 1 AND ({_UNFINISHED}))
"""

#: The waiting count alone (GetSystemHealth's queue_depth, the metric).
COUNT_WAITING = f"SELECT count(*) FROM executions WHERE waiting = 1 AND ({_UNFINISHED})"


def _effective(now: str, aging: str) -> str:
    """Rule 5 in SQL over integer microseconds (integer division floors the non-negative wait)."""
    return f"min({PRIORITY_CRITICAL}, priority + max(0, {now} - created_at) / {aging})"


#: ?1 now (µs), ?2 aging (µs), ?3 how many: the waiting executions to admit, in admission order.
_NEXT = f"""
SELECT execution_no, execution_id FROM executions
WHERE waiting = 1 AND ({_UNFINISHED})
ORDER BY {_effective("?1", "?2")} DESC, created_at, execution_no
LIMIT ?3
"""

#: ?1 execution_id, ?2 now (µs), ?3 aging (µs): how many waiting executions go before it, +1.
POSITION = f"""
WITH me AS (
    SELECT execution_no, created_at, {_effective("?2", "?3")} AS class FROM executions
    WHERE execution_id = ?1 AND waiting = 1 AND ({_UNFINISHED})
)
SELECT 1 + (
    SELECT count(*) FROM executions AS x, me
    WHERE x.waiting = 1 AND ({_UNFINISHED.replace("state", "x.state")}) AND x.execution_no <> me.execution_no
    AND (min({PRIORITY_CRITICAL}, x.priority + max(0, ?2 - x.created_at) / ?3) > me.class
         OR (min({PRIORITY_CRITICAL}, x.priority + max(0, ?2 - x.created_at) / ?3) = me.class
             AND (x.created_at, x.execution_no) < (me.created_at, me.execution_no)))
)
FROM me
"""


@dataclass(slots=True)
class AdmitOp:
    """A queued admission of waiting executions into free slots."""

    limits: AdmissionLimits
    now: int
    """The engine's time in microseconds (aging is measured to it)."""
    future: asyncio.Future[list[str]]


def counts(conn: sqlite3.Connection) -> tuple[int, int]:
    """(running, waiting): admitted unfinished executions and waiting unfinished ones."""
    running, waiting = conn.execute(COUNTS).fetchone()
    return int(running), int(waiting)


def apply_admit(conn: sqlite3.Connection, op: AdmitOp) -> list[str]:
    """Admits waiting executions into the free slots, inside the writer's transaction."""
    if not op.limits.bounded:
        free = -1  # no limit: everything waiting goes (the limits were lifted by a restart)
    else:
        running, _ = counts(conn)
        free = op.limits.max_running - running
        if free <= 0:
            return []
    rows = conn.execute(_NEXT, (op.now, op.limits.aging_micros, free)).fetchall()
    if rows:
        numbers = ", ".join(str(int(no)) for no, _ in rows)
        conn.execute(f"UPDATE executions SET waiting = 0 WHERE execution_no IN ({numbers})")
    return [execution_id for _, execution_id in rows]
