"""The recorded durations' table (duration_sketches) on both stores: load all, merge a flush.

The store does not read the sketches: a flush hands it, per (agent, operation), the bytes
recorded since the last flush and a `merge` function (server/estimates) that combines them with
the stored bytes; the store runs it inside one transaction with the row locked, so concurrent
flushes (replicas) add up.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import asyncpg

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch (as every time column of the stores)."""
    return (moment - _EPOCH) // timedelta(microseconds=1)


__all__ = ["SketchMerge", "SketchRow", "load_pg", "load_sqlite", "merge_pg", "merge_sqlite"]


@dataclass(frozen=True)
class SketchRow:
    """One operation's stored sketch."""

    agent: str
    operation: str
    samples: int
    sketch: bytes


#: (stored bytes or None, recorded bytes) → (merged bytes, merged sample count).
SketchMerge = Callable[[bytes | None, bytes], tuple[bytes, int]]

_SELECT_ALL = "SELECT agent, operation, samples, sketch FROM duration_sketches ORDER BY agent, operation"


def load_sqlite(conn: sqlite3.Connection) -> list[SketchRow]:
    """Every stored sketch (a reader's connection)."""
    return [SketchRow(a, o, int(n), bytes(b)) for a, o, n, b in conn.execute(_SELECT_ALL)]


def merge_sqlite(
    deltas: Sequence[SketchRow], merge: SketchMerge, now: datetime
) -> Callable[[sqlite3.Connection], list[SketchRow]]:
    """A writer op merging `deltas` into the stored rows; returns the merged rows."""

    def run(conn: sqlite3.Connection) -> list[SketchRow]:
        merged: list[SketchRow] = []
        for delta in deltas:
            row = conn.execute(
                "SELECT sketch FROM duration_sketches WHERE agent = ? AND operation = ?", (delta.agent, delta.operation)
            ).fetchone()
            sketch, samples = merge(bytes(row[0]) if row is not None else None, delta.sketch)
            conn.execute(
                "INSERT INTO duration_sketches (agent, operation, samples, sketch, updated_at) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (agent, operation) DO UPDATE SET samples = excluded.samples,"
                " sketch = excluded.sketch, updated_at = excluded.updated_at",
                (delta.agent, delta.operation, samples, sketch, to_micros(now)),
            )
            merged.append(SketchRow(delta.agent, delta.operation, samples, sketch))
        return merged

    return run


async def load_pg(pool: asyncpg.Pool) -> list[SketchRow]:
    """Every stored sketch."""
    rows = await pool.fetch(_SELECT_ALL)
    return [SketchRow(r["agent"], r["operation"], int(r["samples"]), bytes(r["sketch"])) for r in rows]


async def merge_pg(
    pool: asyncpg.Pool, deltas: Sequence[SketchRow], merge: SketchMerge, now: datetime
) -> list[SketchRow]:
    """Merges `deltas` into the stored rows in one transaction, each row locked while merged."""
    merged: list[SketchRow] = []
    async with pool.acquire() as conn, conn.transaction():
        # A fixed order, so two replicas' flushes lock rows in the same order (no deadlock).
        for delta in sorted(deltas, key=lambda d: (d.agent, d.operation)):
            # The row must exist to be locked: a first flush of an operation inserts it empty.
            await conn.execute(
                "INSERT INTO duration_sketches (agent, operation, samples, sketch, updated_at)"
                " VALUES ($1, $2, 0, ''::bytea, $3) ON CONFLICT (agent, operation) DO NOTHING",
                delta.agent,
                delta.operation,
                to_micros(now),
            )
            stored = await conn.fetchval(
                "SELECT sketch FROM duration_sketches WHERE agent = $1 AND operation = $2 FOR UPDATE",
                delta.agent,
                delta.operation,
            )
            sketch, samples = merge(bytes(stored) if stored else None, delta.sketch)
            await conn.execute(
                "UPDATE duration_sketches SET samples = $3, sketch = $4, updated_at = $5"
                " WHERE agent = $1 AND operation = $2",
                delta.agent,
                delta.operation,
                samples,
                sketch,
                to_micros(now),
            )
            merged.append(SketchRow(delta.agent, delta.operation, samples, sketch))
    return merged
