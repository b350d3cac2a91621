"""The workflow registry's statements for both stores (rules: server/store/base.py, WorkflowStore)."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

from server.store._pg_rows import utc
from server.store._sqlite_rows import from_micros, to_micros
from server.store.base import WorkflowRow

COLUMNS = (
    "workflow_type, version, definition, digest, builtin, registered_at, registered_by, deprecated_at,"
    " deprecation_reason"
)

# A built-in over a built-in takes its definition (the release owns it); any other conflict keeps the row.
_UPSERT = (
    f"INSERT INTO workflow_definitions ({COLUMNS}) VALUES ({{}})"
    " ON CONFLICT (workflow_type, version) DO UPDATE SET definition = excluded.definition, digest = excluded.digest"
    " WHERE workflow_definitions.builtin AND excluded.builtin AND workflow_definitions.digest <> excluded.digest"
)
_DEPRECATE = (
    "UPDATE workflow_definitions SET deprecated_at = {}, deprecation_reason = {}"
    " WHERE workflow_type = {} AND version = {} AND deprecated_at IS NULL"
)
_SELECT_ONE = f"SELECT {COLUMNS} FROM workflow_definitions WHERE workflow_type = {{}} AND version = {{}}"

SQLITE_UPSERT = _UPSERT.format(", ".join("?" * 9))
SQLITE_DEPRECATE = _DEPRECATE.format("?", "?", "?", "?")
SQLITE_SELECT_ONE = _SELECT_ONE.format("?", "?")
PG_UPSERT = _UPSERT.format(", ".join(f"${i}" for i in range(1, 10)))
PG_DEPRECATE = _DEPRECATE.format("$1", "$2", "$3", "$4")
PG_SELECT_ONE = _SELECT_ONE.format("$1", "$2")


def from_row(row: Any, *, micros: bool) -> WorkflowRow:
    """A stored row (SQLite's, with times in microseconds, or PostgreSQL's) as a WorkflowRow."""
    registered, deprecated = row[5], row[7]
    if micros:
        registered = from_micros(registered)
        deprecated = None if deprecated is None else from_micros(deprecated)
    return WorkflowRow(
        workflow_type=row[0],
        version=row[1],
        definition=row[2],
        digest=row[3],
        builtin=bool(row[4]),
        registered_at=registered,
        registered_by=row[6],
        deprecated_at=deprecated,
        deprecation_reason=row[8],
    )


def sqlite_args(row: WorkflowRow) -> tuple[object, ...]:
    """The SQLite arguments of SQLITE_UPSERT."""
    deprecated = None if row.deprecated_at is None else to_micros(row.deprecated_at)
    return (
        row.workflow_type,
        row.version,
        row.definition,
        row.digest,
        int(row.builtin),
        to_micros(row.registered_at),
        row.registered_by,
        deprecated,
        row.deprecation_reason,
    )


def pg_args(row: WorkflowRow) -> tuple[object, ...]:
    """The PostgreSQL arguments of PG_UPSERT."""
    deprecated = None if row.deprecated_at is None else utc(row.deprecated_at)
    return (
        row.workflow_type,
        row.version,
        row.definition,
        row.digest,
        row.builtin,
        utc(row.registered_at),
        row.registered_by,
        deprecated,
        row.deprecation_reason,
    )


def sqlite_insert(row: WorkflowRow) -> Callable[[sqlite3.Connection], WorkflowRow]:
    """The insert of a row on SQLite's writer, returning the stored row."""

    def run(conn: sqlite3.Connection) -> WorkflowRow:
        conn.execute(SQLITE_UPSERT, sqlite_args(row))
        stored = conn.execute(SQLITE_SELECT_ONE, (row.workflow_type, row.version)).fetchone()
        return from_row(stored, micros=True)

    return run


def sqlite_deprecate(
    workflow_type: str, version: str, when: int, reason: str
) -> Callable[[sqlite3.Connection], WorkflowRow | None]:
    """The deprecation of a version on SQLite's writer, returning the stored row (None: no such row)."""

    def run(conn: sqlite3.Connection) -> WorkflowRow | None:
        conn.execute(SQLITE_DEPRECATE, (when, reason, workflow_type, version))
        stored = conn.execute(SQLITE_SELECT_ONE, (workflow_type, version)).fetchone()
        return None if stored is None else from_row(stored, micros=True)

    return run


def sqlite_list(conn: sqlite3.Connection, workflow_type: str) -> list[WorkflowRow]:
    """Every row (of one type, or all), on a reader."""
    if workflow_type:
        rows = conn.execute(f"SELECT {COLUMNS} FROM workflow_definitions WHERE workflow_type = ?", (workflow_type,))
    else:
        rows = conn.execute(f"SELECT {COLUMNS} FROM workflow_definitions")
    return [from_row(row, micros=True) for row in rows.fetchall()]
