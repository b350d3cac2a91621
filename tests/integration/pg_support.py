"""Fresh PostgreSQL databases for tests: one per test, dropped after it, never more than a few.

The server is the local one (``BATON_TEST_POSTGRES``, by default
``postgresql://postgres@127.0.0.1:5432/postgres``, used only to create and drop databases).
Each database is named ``baton_test_<pid>_<random>``; databases left by a run that was killed
(whose pid is gone) are dropped before the next one is made, and a test refuses to make one
when too many exist. Without a reachable server the PostgreSQL tests are skipped, except in CI
(``CI`` set), where they fail.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ADMIN_URL = os.environ.get("BATON_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
PREFIX = "baton_test_"
MAX_DATABASES = 16
"""Test databases that may exist at once on the server (all runs together)."""

_NAME = re.compile(rf"^{PREFIX}(\d+)_[0-9a-f]+$")


def database_url(name: str) -> str:
    """The URL of database `name` on the test server."""
    parts = urlsplit(ADMIN_URL)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


async def _admin() -> asyncpg.Connection:
    try:
        return await asyncpg.connect(ADMIN_URL, timeout=5)
    except (OSError, asyncpg.PostgresError) as error:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no PostgreSQL at {urlsplit(ADMIN_URL).hostname}:{urlsplit(ADMIN_URL).port}: {error}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def _drop_stale(admin: asyncpg.Connection) -> int:
    """Drops test databases whose creating process is gone; returns how many remain."""
    names = [
        row[0] for row in await admin.fetch("SELECT datname FROM pg_database WHERE datname LIKE 'baton\\_test\\_%'")
    ]
    remaining = 0
    for name in names:
        match = _NAME.match(name)
        if match is not None and not _pid_alive(int(match.group(1))):
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        else:
            remaining += 1
    return remaining


@contextlib.asynccontextmanager
async def fresh_database() -> AsyncIterator[str]:
    """Creates an empty database, yields its URL, and drops it (closing its connections) after."""
    admin = await _admin()
    try:
        existing = await _drop_stale(admin)
        if existing >= MAX_DATABASES:
            pytest.fail(f"{existing} test databases exist on the server already (at most {MAX_DATABASES})")
        name = f"{PREFIX}{os.getpid()}_{secrets.token_hex(4)}"
        await admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield database_url(name)
        finally:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


async def inject_postgres_event(url: str, execution_id: str, payload: bytes, kind: str = "poison") -> int:
    """Writes raw bytes as the execution's next event straight into a PostgreSQL store's database.

    Returns:
        The sequence the payload was stored under.
    """
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction():
            row = await conn.fetchrow(
                "SELECT execution_no, last_sequence FROM executions WHERE execution_id = $1 FOR UPDATE", execution_id
            )
            assert row is not None, execution_id
            no, last = row
            await conn.execute(
                "INSERT INTO events (execution_no, sequence, kind, payload) VALUES ($1, $2, $3, $4)",
                no,
                last + 1,
                kind,
                payload,
            )
            await conn.execute("UPDATE executions SET last_sequence = $1 WHERE execution_no = $2", last + 1, no)
    finally:
        await conn.close()
    return int(last) + 1
