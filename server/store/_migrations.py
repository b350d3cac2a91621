"""Versioned schema migrations: numbered ``NNNN_name.sql`` files applied once each, in order."""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from server.store._sqlite_rows import to_micros

logger = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


@dataclass(frozen=True)
class Migration:
    """One migration script."""

    version: int
    """Its number, from the file name's first four digits."""
    name: str
    """The file name."""
    sql: str
    """The script."""


def load_migrations(dialect: str) -> list[Migration]:
    """Returns the migrations bundled for a dialect (``migrations/<dialect>/``), oldest first.

    Raises:
        ValueError: two files share a version number.
    """
    folder = resources.files("server.store") / "migrations" / dialect
    found: dict[int, Migration] = {}
    for entry in folder.iterdir():
        match = _NAME.match(entry.name)
        if match is None:
            continue
        version = int(match.group(1))
        if version in found:
            raise ValueError(f"migrations {found[version].name} and {entry.name} share version {version}")
        found[version] = Migration(version, entry.name, entry.read_text(encoding="utf-8"))
    return [found[version] for version in sorted(found)]


def split_statements(script: str) -> list[str]:
    """Splits a script into complete SQL statements (so each runs inside one transaction)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip())
            pending = ""
    if pending.strip() and not _only_comments(pending):
        raise ValueError(f"migration ends in an incomplete statement: {pending.strip()[:80]!r}")
    return statements


def _only_comments(text: str) -> bool:
    return all(not line.strip() or line.strip().startswith("--") for line in text.splitlines())


def apply_sqlite_migrations(conn: sqlite3.Connection, migrations: list[Migration]) -> list[int]:
    """Applies the migrations not yet recorded in ``schema_migrations``, each in its own transaction.

    The connection must be in autocommit mode (``isolation_level=None``). Each migration takes the
    write lock before checking whether it is applied, so two processes opening one file at once
    apply it once.

    Returns:
        The versions applied by this call.
    """
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version INTEGER NOT NULL PRIMARY KEY, applied_at INTEGER NOT NULL)"
    )
    applied: list[int] = []
    for migration in migrations:
        conn.execute("BEGIN IMMEDIATE")
        try:
            done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (migration.version,)).fetchone()
            if done is None:
                for statement in split_statements(migration.sql):
                    conn.execute(statement)
                # Bookkeeping only: when the schema changed, for an operator reading the table.
                conn.execute(
                    "INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)",
                    (migration.version, to_micros(datetime.now(UTC))),
                )
                applied.append(migration.version)
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise
        if done is None:
            logger.info("applied schema migration %s", migration.name)
    return applied
