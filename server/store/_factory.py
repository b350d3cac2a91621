"""open_store: a store from a URL (``sqlite:///path.db``; ``postgresql://`` later)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

from server.store.base import ExecutionStore
from server.store.sqlite import SqliteExecutionStore

_SQLITE_OPTIONS = frozenset({"synchronous", "writer"})


def open_store(url: str) -> ExecutionStore:
    """Makes the store a URL names; the caller then runs ``await store.open()``.

    ``sqlite:///relative/path.db`` is relative to the working directory and
    ``sqlite:////abs/path.db`` absolute; the file's parent directories are created. Query
    options: ``synchronous=NORMAL|FULL|EXTRA`` (SQLite's level, NORMAL by default) and
    ``writer=auto|loop|thread`` (where batches commit; see SqliteExecutionStore).

    Raises:
        NotImplementedError: a ``postgresql://`` URL (that store is not built yet).
        ValueError: any other scheme, or a malformed SQLite URL.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":
        return _open_sqlite(url)
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        raise NotImplementedError("PostgreSQL store is not built yet")
    # Only the scheme is named: the rest of a database URL may hold a password.
    raise ValueError(f"unsupported store URL scheme {scheme!r}; use sqlite:///path.db")


def _open_sqlite(url: str) -> SqliteExecutionStore:
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
    store = SqliteExecutionStore(path, synchronous=synchronous, writer=writer)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return store
