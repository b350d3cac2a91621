"""The callback outbox on SQLite: its statements, and the writer op that runs them.

Rules (server/store/base.py, CallbackOutbox, for the contract):
1. Claims and their changes are writes, so they run on the store's one writer (an `OutboxOp`),
   which serializes them with every append: no two claims can take one row.
2. Rows are inserted and deleted by appends (`schedule`, `take_finished`, called by the batch in
   the append's transaction): a row exists exactly while its callback is owed.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from server.store._outbox import ScheduledRow
from server.store._sqlite_rows import from_micros, to_micros
from server.store.base import PendingCallback

_COLUMNS = (
    "delivery_id, execution_id, user_id, url, scheduled_sequence, deadline, attempts, next_attempt_at, last_error"
)

# A new callback_scheduled for a delivery already owed (an execution that ended again) replaces it.
_SCHEDULE = (
    "INSERT OR REPLACE INTO callback_outbox (delivery_id, execution_id, user_id, url, scheduled_sequence,"
    " deadline, attempts, next_attempt_at, claimed_by, claimed_until, last_error)"
    " SELECT ?, x.execution_id, x.user_id, ?, ?, ?, 0, ?, '', NULL, '' FROM executions AS x WHERE x.execution_no = ?"
)
_TAKE = "DELETE FROM callback_outbox WHERE delivery_id = ? AND claimed_by = ? RETURNING 1"
_CLAIM = (
    "UPDATE callback_outbox SET claimed_by = ?1, claimed_until = ?3 WHERE delivery_id IN ("
    " SELECT delivery_id FROM callback_outbox WHERE next_attempt_at <= ?2"
    " AND (claimed_until IS NULL OR claimed_until <= ?2) ORDER BY next_attempt_at LIMIT ?4)"
    f" RETURNING {_COLUMNS}"
)
_ANY_DUE = (
    "SELECT 1 FROM callback_outbox WHERE next_attempt_at <= ?1"
    " AND (claimed_until IS NULL OR claimed_until <= ?1) LIMIT 1"
)
_RESCHEDULE = (
    "UPDATE callback_outbox SET attempts = ?, next_attempt_at = ?, claimed_until = ?, last_error = ?"
    " WHERE delivery_id = ? AND claimed_by = ?"
)


@dataclass(slots=True)
class OutboxOp:
    """A queued change of claims: `run` is applied inside the writer's transaction."""

    run: Callable[[sqlite3.Connection], Any]
    future: asyncio.Future[Any]


def schedule(conn: sqlite3.Connection, execution_no: int, row: ScheduledRow) -> None:
    """Inserts the outbox row of a callback_scheduled event appended to the execution (rule 2)."""
    conn.execute(
        _SCHEDULE,
        (row.delivery_id, row.url, row.sequence, to_micros(row.deadline), to_micros(row.due), execution_no),
    )


def take_finished(conn: sqlite3.Connection, delivery_id: str, owner: str) -> bool:
    """Deletes the row of a callback whose outcome is being appended, if `owner` holds it."""
    return conn.execute(_TAKE, (delivery_id, owner)).fetchone() is not None


def claim(owner: str, now: int, until: int, limit: int) -> Callable[[sqlite3.Connection], list[PendingCallback]]:
    """The claim of due rows, as an OutboxOp's `run` (times in microseconds)."""

    def run(conn: sqlite3.Connection) -> list[PendingCallback]:
        rows = conn.execute(_CLAIM, (owner, now, until, limit)).fetchall()
        return sorted((pending_from_row(row) for row in rows), key=lambda p: (p.next_attempt_at, p.delivery_id))

    return run


def any_due(conn: sqlite3.Connection, now: int) -> bool:
    """Whether a row is due and unclaimed at `now` (a read, before a claim's write)."""
    return conn.execute(_ANY_DUE, (now,)).fetchone() is not None


def reschedule(
    owner: str, delivery_id: str, attempts: int, next_attempt_at: int, until: int, error: str
) -> Callable[[sqlite3.Connection], bool]:
    """A failed attempt recorded on a held row, as an OutboxOp's `run`."""

    def run(conn: sqlite3.Connection) -> bool:
        cursor = conn.execute(_RESCHEDULE, (attempts, next_attempt_at, until, error, delivery_id, owner))
        return cursor.rowcount > 0

    return run


def renew(owner: str, delivery_ids: list[str], until: int) -> Callable[[sqlite3.Connection], set[str]]:
    """Claims extended, as an OutboxOp's `run`."""

    def run(conn: sqlite3.Connection) -> set[str]:
        rows = conn.execute(
            "UPDATE callback_outbox SET claimed_until = MAX(COALESCE(claimed_until, 0), ?) WHERE claimed_by = ?"
            " AND delivery_id IN (SELECT value FROM json_each(?)) RETURNING delivery_id",
            (until, owner, json.dumps(delivery_ids)),
        ).fetchall()
        return {row[0] for row in rows}

    return run


def release(owner: str | None, delivery_ids: list[str]) -> Callable[[sqlite3.Connection], int]:
    """Claims freed, as an OutboxOp's `run` (owner None: every claim; no ids: all of owner's)."""

    def run(conn: sqlite3.Connection) -> int:
        where, params = "claimed_by <> ''", []
        if owner is not None:
            where, params = "claimed_by = ?", [owner]
        if delivery_ids:
            where += " AND delivery_id IN (SELECT value FROM json_each(?))"
            params.append(json.dumps(delivery_ids))
        cursor = conn.execute(f"UPDATE callback_outbox SET claimed_by = '', claimed_until = NULL WHERE {where}", params)
        return cursor.rowcount

    return run


def pending(conn: sqlite3.Connection, execution_id: str) -> list[PendingCallback]:
    """The outbox rows (of one execution, or all), earliest due first."""
    where, params = ("WHERE execution_id = ?", (execution_id,)) if execution_id else ("", ())
    rows = conn.execute(
        f"SELECT {_COLUMNS} FROM callback_outbox {where} ORDER BY next_attempt_at, delivery_id", params
    ).fetchall()
    return [pending_from_row(row) for row in rows]


def pending_from_row(row: tuple[Any, ...]) -> PendingCallback:
    """A row of _COLUMNS as a PendingCallback."""
    delivery_id, execution_id, user_id, url, sequence, deadline, attempts, next_at, error = row
    return PendingCallback(
        delivery_id=delivery_id,
        execution_id=execution_id,
        user_id=user_id,
        url=url,
        scheduled_sequence=sequence,
        deadline=from_micros(deadline),
        attempts=attempts,
        next_attempt_at=from_micros(next_at),
        last_error=error,
    )
