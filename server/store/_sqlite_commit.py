"""The write connection and one batch's transaction, shared by both writers.

A batch runs in ONE transaction: conflicts are checked before anything is inserted (see
``_sqlite_batch``), and a batch that still hits a constraint is replayed write by write
under SAVEPOINTs, so one bad write fails alone.
"""

from __future__ import annotations

import concurrent.futures
import logging
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from server.store._migrations import apply_sqlite_migrations, load_migrations
from server.store._sqlite_batch import Outcome, WriteOp, apply_batch

logger = logging.getLogger(__name__)

# Errors that belong to one write's data rather than to the database: replaying the batch one
# write at a time pins them on the write that caused them.
_OP_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    OverflowError,
)

# UPDATE ... FROM arrived in 3.33; batches update many executions in one statement with it.
_MIN_SQLITE = (3, 33, 0)

#: Receives each batch's outcomes on the event loop, in commit order.
Deliver = Callable[[list[Outcome]], None]
#: Receives the seconds each committed batch took, BEGIN to COMMIT (on the writer's thread).
CommitObserver = Callable[[float], None]


@dataclass(frozen=True)
class WriterConfig:
    """How the writer opens its connection."""

    path: str
    """The database file."""
    synchronous: str = "NORMAL"
    """SQLite's synchronous level."""
    busy_timeout_ms: int = 5_000
    """How long a write may wait for a lock held by another process before it fails."""
    cache_kib: int = 16_384
    """Page cache per connection."""


@dataclass
class WriterStats:
    """Counters of the writer (updated by it alone; read them for tests and benchmarks)."""

    commits: int = 0
    """Transactions committed."""
    writes: int = 0
    """create_execution and append calls committed or refused."""
    events: int = 0
    """Events committed."""
    largest_batch: int = 0
    """The most writes one transaction has carried."""
    replays: int = 0
    """Batches replayed write by write after a constraint error."""
    busy_retries: int = 0
    """Times a batch waited for another process's lock (loop writer only)."""


class WriterBusyError(sqlite3.OperationalError):
    """Another connection holds the write lock; nothing of the batch was written."""


class Writer(Protocol):
    """What the store needs of a writer (ThreadWriter or LoopWriter)."""

    stats: WriterStats
    observe_commit: CommitObserver | None
    """Given each committed batch's duration in seconds; None (the default): nothing is timed."""
    ready: concurrent.futures.Future[None]
    """Set once the database is open and migrated, or with the error that stopped it."""
    stopped: concurrent.futures.Future[None]
    """Set once everything submitted before stop() is committed and the connections closed."""

    def start(self) -> None:
        """Opens the database off the event loop; ``ready`` tells when."""
        ...

    def submit(self, op: WriteOp) -> None:
        """Queues a write (on the event loop's thread)."""
        ...

    def stop(self) -> None:
        """Commits what is queued, then closes; ``stopped`` tells when."""
        ...


def connect_writer(config: WriterConfig, *, check_same_thread: bool = True) -> sqlite3.Connection:
    """Opens the write connection in WAL mode and applies pending migrations.

    Raises:
        sqlite3.Error: the file cannot be opened, put in WAL mode or migrated.
        RuntimeError: the SQLite library is older than 3.33 or lacks JSON functions.
    """
    if sqlite3.sqlite_version_info < _MIN_SQLITE:
        raise RuntimeError(
            f"the SQLite store needs SQLite {'.'.join(map(str, _MIN_SQLITE))} or newer"
            f" (UPDATE ... FROM); Python is linked with {sqlite3.sqlite_version}"
        )
    conn = sqlite3.connect(
        config.path, isolation_level=None, check_same_thread=check_same_thread, cached_statements=128
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
        try:
            conn.execute("SELECT json_array(1)").fetchone()
        except sqlite3.OperationalError as error:
            raise RuntimeError("the SQLite store needs SQLite's JSON functions (JSON1)") from error
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise sqlite3.OperationalError(f"{config.path}: could not switch to WAL (got {mode})")
        conn.execute(f"PRAGMA synchronous = {config.synchronous}")
        conn.execute(f"PRAGMA cache_size = {-int(config.cache_kib)}")
        conn.execute("PRAGMA temp_store = MEMORY")
        # After a checkpoint, truncate the WAL back to this size rather than keep a large file.
        conn.execute("PRAGMA journal_size_limit = 67108864")
        apply_sqlite_migrations(conn, load_migrations("sqlite"))
    except BaseException:
        conn.close()
        raise
    return conn


def commit_batch(
    conn: sqlite3.Connection, batch: list[WriteOp], stats: WriterStats, observe: CommitObserver | None = None
) -> list[Outcome]:
    """Runs a batch in one transaction and commits; returns one outcome per write, in order.

    Database-wide failures (disk full, I/O error) fail every write of the batch. `observe`, when
    given, gets the seconds a committed batch took (metrics); without it nothing is timed.

    Raises:
        WriterBusyError: the write lock was busy beyond the connection's busy timeout
            (nothing was done; the batch may be retried as it is).
    """
    began = time.perf_counter() if observe is not None else 0.0
    try:
        _begin(conn)
    except WriterBusyError:
        raise
    except sqlite3.Error as error:
        logger.error("store batch of %d writes failed to begin: %s", len(batch), error)
        return [Outcome(op.future, error=error) for op in batch]
    try:
        outcomes = apply_batch(conn, batch)
        conn.execute("COMMIT")
    except (sqlite3.Error, OverflowError) as error:
        _rollback(conn)
        if not isinstance(error, _OP_ERRORS):
            logger.error("store batch of %d writes failed: %s", len(batch), error)
            return [Outcome(op.future, error=error) for op in batch]
        stats.replays += 1
        replayed = _replay(conn, batch)
        if replayed is None:
            return [Outcome(op.future, error=error) for op in batch]
        outcomes = replayed
    stats.commits += 1
    stats.writes += len(batch)
    stats.events += sum(len(outcome.committed[1]) for outcome in outcomes if outcome.committed is not None)
    stats.largest_batch = max(stats.largest_batch, len(batch))
    if observe is not None:
        observe(time.perf_counter() - began)
    return outcomes


def _replay(conn: sqlite3.Connection, batch: list[WriteOp]) -> list[Outcome] | None:
    """Runs a batch write by write under savepoints; None if the transaction itself failed."""
    outcomes: list[Outcome] = []
    try:
        _begin(conn)
    except WriterBusyError:
        raise
    except sqlite3.Error:
        logger.exception("store batch of %d writes failed to begin", len(batch))
        return None
    try:
        for op in batch:
            conn.execute("SAVEPOINT op")
            try:
                outcomes.extend(apply_batch(conn, [op]))
            except _OP_ERRORS as error:
                conn.execute("ROLLBACK TO op")
                outcomes.append(Outcome(op.future, error=error))
            conn.execute("RELEASE op")
        conn.execute("COMMIT")
    except sqlite3.Error:
        logger.exception("store batch of %d writes failed", len(batch))
        _rollback(conn)
        return None
    return outcomes


def _begin(conn: sqlite3.Connection) -> None:
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as error:
        if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY:
            raise WriterBusyError(str(error)) from error
        raise


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
