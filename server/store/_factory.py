"""open_store: a store from a URL (``sqlite:///path.db`` or ``postgresql://user@host/db``)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from server.store._payloads import DEFAULT_PAYLOAD_THRESHOLD
from server.store.base import ExecutionStore
from server.store.postgres import PostgresExecutionStore
from server.store.sqlite import SqliteExecutionStore

_SQLITE_OPTIONS = frozenset({"synchronous", "writer"})


def open_store(url: str, *, payload_threshold: int = DEFAULT_PAYLOAD_THRESHOLD) -> ExecutionStore:
    """Makes the store a URL names; the caller then runs ``await store.open()``.

    ``sqlite:///relative/path.db`` is relative to the working directory and
    ``sqlite:////abs/path.db`` absolute; the file's parent directories are created. Query
    options: ``synchronous=NORMAL|FULL|EXTRA`` (SQLite's level, NORMAL by default) and
    ``writer=auto|loop|thread`` (where batches commit; see SqliteExecutionStore).

    ``postgresql://user[:password]@host[:port]/database`` (also ``postgres://`` and
    ``postgresql+asyncpg://``) is a database several orchestrator processes may share; any
    libpq query option asyncpg understands (``sslmode``, ``connect_timeout`` ...) is passed on.

    Either store keeps outputs larger than ``payload_threshold`` bytes once, apart from their
    events (server/store/_payloads.py); 0 keeps them all inside.

    Raises:
        ValueError: any other scheme, or a malformed URL (the message never quotes a
            PostgreSQL URL, which may hold a password).
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(url, payload_threshold)
    if scheme in ("postgresql", "postgres", "postgresql+asyncpg"):
        return _open_postgres(url, payload_threshold)
    # Only the scheme is named: the rest of a database URL may hold a password.
    raise ValueError(f"unsupported store URL scheme {scheme!r}; use sqlite:///path.db or postgresql://host/db")


def _open_postgres(url: str, payload_threshold: int) -> PostgresExecutionStore:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ValueError("a PostgreSQL store URL has a port that is not a number") from None
    if port is not None and not 0 < port < 65536:
        raise ValueError(f"a PostgreSQL store URL has port {port}, outside 1-65535")
    if not parts.hostname and "host=" not in parts.query:
        raise ValueError("a PostgreSQL store URL names a host: postgresql://user@host[:port]/database")
    if not unquote(parts.path.lstrip("/")):
        raise ValueError("a PostgreSQL store URL names a database: postgresql://user@host[:port]/database")
    # asyncpg reads postgresql:// and postgres:// (libpq's forms), not SQLAlchemy's driver suffix.
    dsn = "postgresql://" + url.split("://", 1)[1]
    return PostgresExecutionStore(dsn, payload_threshold=payload_threshold)


def _open_sqlite(url: str, payload_threshold: int) -> SqliteExecutionStore:
    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/"):
        raise ValueError(f"a SQLite store URL is sqlite:///relative/path.db or sqlite:////abs/path.db, not {url!r}")
    path = unquote(parts.path[1:])
    if not path or path == ":memory:":
        raise ValueError(f"{url!r} names no database file (the SQLite store needs one)")
    options = parse_qs(parts.query, keep_blank_values=True, strict_parsing=False)
    unknown = set(options) - _SQLITE_OPTIONS
    if unknown:
        raise ValueError(f"unknown SQLite store option(s) {sorted(unknown)} in {url!r}")
    synchronous = options.get("synchronous", ["NORMAL"])[-1]
    writer = options.get("writer", ["auto"])[-1]
    store = SqliteExecutionStore(path, synchronous=synchronous, writer=writer, payload_threshold=payload_threshold)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return store
