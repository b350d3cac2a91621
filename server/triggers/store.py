"""Where trigger rules and published events are kept: the execution store's database, own tables.

Rules:
1. Two tables (migrations `*_triggers.sql`): `trigger_rules`, one row per rule name holding the
   rule as a serialized TriggerRule, and `trigger_events`, one row per published event_id
   holding what the event starts (its `TriggerStart`s, as JSON). Neither is touched by the
   execution store's own code.
2. An event is claimed by inserting its row; the row is written once and never changed
   (`INSERT … ON CONFLICT DO NOTHING`, then the row as stored is read back): of two publications
   of one event_id, here or on another replica, exactly one claims it and both get the same
   starts. What the starts create is made idempotent by their request ids (the executions
   table's unique (user_id, request_id)), so whichever publication submits a start first
   creates its execution and the other finds it, even after a crash between claim and submit.
3. Writes on SQLite run on the execution store's one writer, inside its transaction (a write op
   there never raises for an expected outcome, which would replay its batch); on PostgreSQL in
   a transaction of the store's pool. Registering a rule locks its table, so the bound on the
   number of rules holds across replicas.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, TypeVar

from baton.v1 import triggers_pb2

from server.store._sqlite_rows import from_micros, to_micros
from server.store.postgres import PostgresExecutionStore
from server.store.sqlite import SqliteExecutionStore

_T = TypeVar("_T")

Registered = Literal["created", "replaced", "unchanged", "exists", "full"]
"""What registering a rule came to: stored new, replaced an older version, the same definition
was already there (kept as is), another definition holds the name (not replaced), or the bound
on the number of rules was reached."""


@dataclass(frozen=True)
class TriggerStart:
    """One execution an event starts: everything needed to submit it again, identically."""

    rule: str
    """The rule that matched."""
    rule_version: int
    """Its version."""
    workflow_type: str
    """The workflow type to plan."""
    request_id: str
    """The execution's idempotency key (rule 2)."""
    user_context: dict[str, Any]
    """The UserJourney as JSON (proto field names), built from the event."""
    execution_options: dict[str, Any]
    """The ExecutionOptions as JSON."""
    execution_context: dict[str, Any] | None
    """The ExecutionContext as JSON; None for none."""


@dataclass(frozen=True)
class PublishedEvent:
    """A claimed event (a `trigger_events` row)."""

    event_id: str
    event_type: str
    subject: str
    published_at: datetime
    """When it was first published (UTC)."""
    occurred_at: datetime | None
    """When it happened, as its source said."""
    starts: tuple[TriggerStart, ...]


class TriggerStore(Protocol):
    """The trigger tables of one execution store."""

    async def put_rule(
        self, rule: triggers_pb2.TriggerRule, *, replace: bool, max_rules: int
    ) -> tuple[Registered, triggers_pb2.TriggerRule | None]:
        """Stores `rule` (its version and registered_at are set here; registered_at must be set
        by the caller to the time of registration). Returns the outcome and the rule as stored
        (for `exists`, the one holding the name; None for `full`)."""
        ...

    async def list_rules(self, event_type: str = "") -> list[triggers_pb2.TriggerRule]:
        """The rules (of one event type, or all), by name."""
        ...

    async def delete_rule(self, name: str) -> triggers_pb2.TriggerRule | None:
        """Deletes a rule; returns it, or None when there was none."""
        ...

    async def get_event(self, event_id: str) -> PublishedEvent | None:
        """The claimed event of that id, if any."""
        ...

    async def claim_event(self, event: PublishedEvent) -> tuple[PublishedEvent, bool]:
        """Claims the event (rule 2): returns the stored event and whether this call stored it."""
        ...

    async def delete_events_of(self, subject: str) -> int:
        """Deletes the events about a user (their data: the starts hold what the payloads gave);
        returns how many. Publishing one of them again starts its workflows again."""
        ...

    async def delete_events_before(self, cutoff: datetime, limit: int) -> int:
        """Deletes at most `limit` events first published before `cutoff` (retention: an event is
        deduplicated as long as finished executions are kept); returns how many."""
        ...


def trigger_store_for(store: object) -> TriggerStore | None:
    """The trigger tables of an execution store; None for a store without them."""
    if isinstance(store, SqliteExecutionStore):
        return SqliteTriggerStore(store)
    if isinstance(store, PostgresExecutionStore):
        return PostgresTriggerStore(store)
    return None


def _starts_json(starts: tuple[TriggerStart, ...]) -> str:
    return json.dumps([start.__dict__ for start in starts], separators=(",", ":"), sort_keys=True)


def _starts_of(text: str) -> tuple[TriggerStart, ...]:
    return tuple(TriggerStart(**item) for item in json.loads(text))


def _decide_put(
    existing: triggers_pb2.TriggerRule | None, rule: triggers_pb2.TriggerRule, *, replace: bool, count: int, limit: int
) -> tuple[Registered, triggers_pb2.TriggerRule | None]:
    """What storing `rule` comes to, given the rule stored under its name (None) and the count."""
    if existing is None:
        if count >= limit:
            return "full", None
        stored = triggers_pb2.TriggerRule()
        stored.CopyFrom(rule)
        stored.version = 1
        return "created", stored
    if _same_definition(existing, rule):
        return "unchanged", existing
    if not replace:
        return "exists", existing
    stored = triggers_pb2.TriggerRule()
    stored.CopyFrom(rule)
    stored.version = existing.version + 1
    return "replaced", stored


def _same_definition(left: triggers_pb2.TriggerRule, right: triggers_pb2.TriggerRule) -> bool:
    a, b = triggers_pb2.TriggerRule(), triggers_pb2.TriggerRule()
    a.CopyFrom(left)
    b.CopyFrom(right)
    for rule in (a, b):
        rule.ClearField("version")
        rule.ClearField("registered_at")
    return a.SerializeToString(deterministic=True) == b.SerializeToString(deterministic=True)


def _rule(payload: bytes) -> triggers_pb2.TriggerRule:
    rule = triggers_pb2.TriggerRule()
    rule.ParseFromString(payload)
    return rule


# ---- SQLite ---------------------------------------------------------------------------------


class SqliteTriggerStore:
    """The trigger tables of a SqliteExecutionStore, written on its writer (rule 3)."""

    def __init__(self, store: SqliteExecutionStore) -> None:
        self._store = store

    async def _write(self, run: Callable[[sqlite3.Connection], _T]) -> _T:
        # The store's generic write op: `run` inside the writer's transaction.
        return await self._store._outbox(run)

    async def put_rule(
        self, rule: triggers_pb2.TriggerRule, *, replace: bool, max_rules: int
    ) -> tuple[Registered, triggers_pb2.TriggerRule | None]:
        def run(conn: sqlite3.Connection) -> tuple[Registered, triggers_pb2.TriggerRule | None]:
            row = conn.execute("SELECT definition FROM trigger_rules WHERE name = ?", (rule.name,)).fetchone()
            count = conn.execute("SELECT COUNT(*) FROM trigger_rules").fetchone()[0]
            outcome, stored = _decide_put(
                None if row is None else _rule(row[0]), rule, replace=replace, count=count, limit=max_rules
            )
            if outcome in ("created", "replaced") and stored is not None:
                conn.execute(
                    "INSERT OR REPLACE INTO trigger_rules (name, event_type, version, definition, registered_at)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (
                        stored.name,
                        stored.event_type,
                        stored.version,
                        stored.SerializeToString(deterministic=True),
                        to_micros(stored.registered_at.ToDatetime(tzinfo=UTC)),
                    ),
                )
            return outcome, stored

        return await self._write(run)

    async def list_rules(self, event_type: str = "") -> list[triggers_pb2.TriggerRule]:
        def read(conn: sqlite3.Connection) -> list[triggers_pb2.TriggerRule]:
            if event_type:
                rows = conn.execute(
                    "SELECT definition FROM trigger_rules WHERE event_type = ? ORDER BY name", (event_type,)
                ).fetchall()
            else:
                rows = conn.execute("SELECT definition FROM trigger_rules ORDER BY name").fetchall()
            return [_rule(row[0]) for row in rows]

        return await self._store._read(read)

    async def delete_rule(self, name: str) -> triggers_pb2.TriggerRule | None:
        def run(conn: sqlite3.Connection) -> triggers_pb2.TriggerRule | None:
            row = conn.execute("DELETE FROM trigger_rules WHERE name = ? RETURNING definition", (name,)).fetchone()
            return None if row is None else _rule(row[0])

        return await self._write(run)

    async def get_event(self, event_id: str) -> PublishedEvent | None:
        return await self._store._read(_sqlite_event, event_id)

    async def delete_events_of(self, subject: str) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute("DELETE FROM trigger_events WHERE subject = ?", (subject,)).rowcount

        return await self._write(run)

    async def delete_events_before(self, cutoff: datetime, limit: int) -> int:
        def run(conn: sqlite3.Connection) -> int:
            return conn.execute(
                "DELETE FROM trigger_events WHERE event_id IN"
                " (SELECT event_id FROM trigger_events WHERE published_at < ? LIMIT ?)",
                (to_micros(cutoff), limit),
            ).rowcount

        return await self._write(run)

    async def claim_event(self, event: PublishedEvent) -> tuple[PublishedEvent, bool]:
        def run(conn: sqlite3.Connection) -> tuple[PublishedEvent, bool]:
            inserted = conn.execute(
                "INSERT INTO trigger_events (event_id, event_type, subject, published_at, occurred_at, starts)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING 1",
                (
                    event.event_id,
                    event.event_type,
                    event.subject,
                    to_micros(event.published_at),
                    None if event.occurred_at is None else to_micros(event.occurred_at),
                    _starts_json(event.starts),
                ),
            ).fetchone()
            if inserted is not None:
                return event, True
            # The conflict means the row is there: this transaction is the writer's, nothing deletes between.
            stored = _sqlite_event(conn, event.event_id)
            return (event, False) if stored is None else (stored, False)

        return await self._write(run)


def _sqlite_event(conn: sqlite3.Connection, event_id: str) -> PublishedEvent | None:
    row = conn.execute(
        "SELECT event_id, event_type, subject, published_at, occurred_at, starts FROM trigger_events"
        " WHERE event_id = ?",
        (event_id,),
    ).fetchone()
    if row is None:
        return None
    return PublishedEvent(
        event_id=row[0],
        event_type=row[1],
        subject=row[2],
        published_at=from_micros(row[3]),
        occurred_at=None if row[4] is None else from_micros(row[4]),
        starts=_starts_of(row[5]),
    )


# ---- PostgreSQL -----------------------------------------------------------------------------


class PostgresTriggerStore:
    """The trigger tables of a PostgresExecutionStore, written through its pool (rule 3)."""

    def __init__(self, store: PostgresExecutionStore) -> None:
        self._store = store

    async def put_rule(
        self, rule: triggers_pb2.TriggerRule, *, replace: bool, max_rules: int
    ) -> tuple[Registered, triggers_pb2.TriggerRule | None]:
        async with self._store._live_pool().acquire() as conn, conn.transaction():
            # Serializes registrations across replicas: the count and the name are decided together.
            await conn.execute("LOCK TABLE trigger_rules IN SHARE ROW EXCLUSIVE MODE")
            row = await conn.fetchrow("SELECT definition FROM trigger_rules WHERE name = $1", rule.name)
            count = await conn.fetchval("SELECT COUNT(*) FROM trigger_rules")
            outcome, stored = _decide_put(
                None if row is None else _rule(row[0]), rule, replace=replace, count=count, limit=max_rules
            )
            if outcome in ("created", "replaced") and stored is not None:
                await conn.execute(
                    "INSERT INTO trigger_rules (name, event_type, version, definition, registered_at)"
                    " VALUES ($1, $2, $3, $4, $5) ON CONFLICT (name) DO UPDATE SET event_type = EXCLUDED.event_type,"
                    " version = EXCLUDED.version, definition = EXCLUDED.definition,"
                    " registered_at = EXCLUDED.registered_at",
                    stored.name,
                    stored.event_type,
                    stored.version,
                    stored.SerializeToString(deterministic=True),
                    stored.registered_at.ToDatetime(tzinfo=UTC),
                )
            return outcome, stored

    async def list_rules(self, event_type: str = "") -> list[triggers_pb2.TriggerRule]:
        pool = self._store._live_pool()
        if event_type:
            rows = await pool.fetch(
                "SELECT definition FROM trigger_rules WHERE event_type = $1 ORDER BY name", event_type
            )
        else:
            rows = await pool.fetch("SELECT definition FROM trigger_rules ORDER BY name")
        return [_rule(row[0]) for row in rows]

    async def delete_rule(self, name: str) -> triggers_pb2.TriggerRule | None:
        row = await self._store._live_pool().fetchrow(
            "DELETE FROM trigger_rules WHERE name = $1 RETURNING definition", name
        )
        return None if row is None else _rule(row[0])

    async def get_event(self, event_id: str) -> PublishedEvent | None:
        row = await self._store._live_pool().fetchrow(_PG_EVENT, event_id)
        return None if row is None else _pg_event(row)

    async def delete_events_of(self, subject: str) -> int:
        result = await self._store._live_pool().execute("DELETE FROM trigger_events WHERE subject = $1", subject)
        return int(result.rsplit(" ", 1)[-1])

    async def delete_events_before(self, cutoff: datetime, limit: int) -> int:
        # SKIP LOCKED: replicas sweeping at once each take other rows.
        result = await self._store._live_pool().execute(
            "DELETE FROM trigger_events WHERE event_id IN (SELECT event_id FROM trigger_events"
            " WHERE published_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)",
            cutoff,
            limit,
        )
        return int(result.rsplit(" ", 1)[-1])

    async def claim_event(self, event: PublishedEvent) -> tuple[PublishedEvent, bool]:
        pool = self._store._live_pool()
        inserted = await pool.fetchval(
            "INSERT INTO trigger_events (event_id, event_type, subject, published_at, occurred_at, starts)"
            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING RETURNING 1",
            event.event_id,
            event.event_type,
            event.subject,
            event.published_at,
            event.occurred_at,
            _starts_json(event.starts),
        )
        if inserted is not None:
            return event, True
        # The row was committed by the claim that won (ON CONFLICT waits for it): read it.
        row = await pool.fetchrow(_PG_EVENT, event.event_id)
        if row is None:  # deleted in between (the subject's data was deleted): claim again
            return await self.claim_event(event)
        return _pg_event(row), False


_PG_EVENT = (
    "SELECT event_id, event_type, subject, published_at, occurred_at, starts FROM trigger_events WHERE event_id = $1"
)


def _pg_event(row: Any) -> PublishedEvent:
    return PublishedEvent(
        event_id=row[0],
        event_type=row[1],
        subject=row[2],
        published_at=row[3],
        occurred_at=row[4],
        starts=_starts_of(row[5]),
    )


__all__ = [
    "PublishedEvent",
    "Registered",
    "TriggerStart",
    "TriggerStore",
    "trigger_store_for",
]
