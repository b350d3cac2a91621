"""PostgreSQL schema migrations: the bundled ``migrations/postgres/NNNN_*.sql`` applied once each, in order.

Rules:
1. Every pending migration is applied in ONE transaction, with its record in
   ``schema_migrations``: PostgreSQL's DDL is transactional, so a database is either at the old
   schema or the new one, never half-way.
2. That transaction first takes a transaction-level advisory lock, and only then reads what is
   applied: two processes opening one database at once queue on the lock, and the second finds
   everything applied by the first. The lock is released by COMMIT or ROLLBACK, so a process
   that dies mid-migration holds nothing.
3. A database already at the newest schema costs one short transaction.
"""

from __future__ import annotations

import logging

import asyncpg

from server.store._migrations import Migration, load_migrations

logger = logging.getLogger(__name__)

#: The advisory lock key that serializes migrations of one database ("baton-mg" as a bigint).
MIGRATION_LOCK_KEY = int.from_bytes(b"baton-mg", "big")


async def apply_postgres_migrations(conn: asyncpg.Connection, migrations: list[Migration] | None = None) -> list[int]:
    """Applies the migrations not yet recorded in ``schema_migrations``, in one transaction.

    Args:
        conn: a connection not inside a transaction.
        migrations: the migrations to apply; the bundled PostgreSQL ones by default.

    Returns:
        The versions applied by this call (empty when the schema was current).

    Raises:
        asyncpg.PostgresError: a migration failed; nothing of this call was applied.
    """
    wanted = load_migrations("postgres") if migrations is None else migrations
    applied: list[Migration] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER NOT NULL PRIMARY KEY,"
            " name TEXT NOT NULL,"
            " applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for migration in wanted:
            if migration.version in done:
                continue
            # No arguments: asyncpg sends the script as a simple query, several statements at once.
            await conn.execute(migration.sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", migration.version, migration.name
            )
            applied.append(migration)
    for migration in applied:
        logger.info("applied schema migration %s", migration.name)
    return [migration.version for migration in applied]
