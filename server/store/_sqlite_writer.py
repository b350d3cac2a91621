"""Group commit for SQLite: one writer thread runs every queued write in one transaction.

Rules:
1. Only the writer thread touches the write connection, so SQLite never sees two writers from
   this process and no write waits on a lock held by this process.
2. The thread drains everything queued, applies it in ONE transaction and commits; writes that
   arrive meanwhile form the next batch, so the batch grows with the load and one commit (one
   WAL append, one fsync with ``synchronous=FULL``) serves many writers.
3. A write's own failure (a sequence conflict, an unknown execution, a constraint violation)
   fails only that write: conflicts are checked before anything is inserted, and a batch that
   still hits a constraint is replayed write by write under SAVEPOINTs.
4. Nothing is acknowledged before COMMIT returns. Results and commit notifications go to the
   event loop with one ``call_soon_threadsafe`` per batch, in commit order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

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


@dataclass
class WriterStats:
    """Counters of the writer thread (written by it alone; read them for tests and benchmarks)."""

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


#: Receives each batch's outcomes on the event loop, in commit order.
Deliver = Callable[[list[Outcome]], None]


@dataclass(frozen=True)
class WriterConfig:
    """How the writer opens its connection."""

    path: str
    """The database file."""
    synchronous: str = "NORMAL"
    """SQLite's synchronous level."""
    busy_timeout_ms: int = 5_000
    """How long to wait for a lock held by another process."""
    cache_kib: int = 16_384
    """Page cache per connection."""
    pragmas: tuple[str, ...] = field(default=())
    """Extra ``PRAGMA`` statements run after the defaults (for experiments and tests)."""


class _Stop:
    """The queue's end marker."""


class SqliteWriter:
    """The writer thread and its queue; see the module's rules."""

    def __init__(self, config: WriterConfig, loop: asyncio.AbstractEventLoop, deliver: Deliver) -> None:
        self._config = config
        self._loop = loop
        self._deliver = deliver
        self._queue: queue.SimpleQueue[WriteOp | _Stop] = queue.SimpleQueue()
        self.stats = WriterStats()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set once the connection is open and migrated (or with the error that stopped it)."""
        self.stopped: concurrent.futures.Future[None] = concurrent.futures.Future()
        """Set once the thread has committed everything queued before stop() and closed."""
        self._lock = threading.Lock()
        self._dead = False
        self._thread = threading.Thread(target=self._run, name="baton-store-writer", daemon=True)

    def start(self) -> None:
        """Starts the thread, which opens the database and applies migrations."""
        self._thread.start()

    def submit(self, op: WriteOp) -> None:
        """Queues a write (any thread).

        Raises:
            RuntimeError: the thread has stopped.
        """
        with self._lock:
            if self._dead:
                raise RuntimeError("the store's writer has stopped")
            self._queue.put(op)

    def stop(self) -> None:
        """Asks the thread to finish the writes queued so far, then close."""
        self._queue.put(_Stop())

    def _connect(self) -> sqlite3.Connection:
        config = self._config
        conn = sqlite3.connect(config.path, isolation_level=None, cached_statements=128)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(config.busy_timeout_ms)}")
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"{config.path}: could not switch to WAL (got {mode})")
            conn.execute(f"PRAGMA synchronous = {config.synchronous}")
            conn.execute(f"PRAGMA cache_size = {-int(config.cache_kib)}")
            conn.execute("PRAGMA temp_store = MEMORY")
            # After a checkpoint, truncate the WAL back to this size rather than keep a large file.
            conn.execute("PRAGMA journal_size_limit = 67108864")
            for pragma in config.pragmas:
                conn.execute(pragma)
            apply_sqlite_migrations(conn, load_migrations("sqlite"))
        except BaseException:
            conn.close()
            raise
        return conn

    def _run(self) -> None:
        try:
            conn = self._connect()
        except BaseException as error:
            with self._lock:
                self._dead = True
            self.ready.set_exception(error)
            self.stopped.set_result(None)
            return
        self.ready.set_result(None)
        batch: list[WriteOp] = []
        try:
            stopping = False
            while not stopping:
                item = self._queue.get()
                while True:
                    if isinstance(item, _Stop):
                        stopping = True
                        break
                    batch.append(item)
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if batch:
                    outcomes = self._commit(conn, batch)
                    batch = []
                    self._post(outcomes)
        except BaseException as error:
            # A bug, not a database error (those become outcomes): fail what is held rather
            # than leave its callers waiting, and refuse further writes.
            logger.exception("store writer thread stopped")
            self._post([Outcome(op.future, error=error) for op in batch])
        finally:
            with self._lock:
                self._dead = True
            self._fail_queued(RuntimeError("the store is closed"))
            conn.close()
            self.stopped.set_result(None)

    def _fail_queued(self, error: BaseException) -> None:
        left: list[Outcome] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if not isinstance(item, _Stop):
                left.append(Outcome(item.future, error=error))
        if left:
            self._post(left)

    def _post(self, outcomes: list[Outcome]) -> None:
        try:
            self._loop.call_soon_threadsafe(self._deliver, outcomes)
        except RuntimeError:
            # The loop is closed: nobody is left to await these futures.
            logger.warning("event loop closed; %d store results dropped", len(outcomes))

    def _commit(self, conn: sqlite3.Connection, batch: list[WriteOp]) -> list[Outcome]:
        """Runs a batch in one transaction; returns one outcome per write, in order."""
        stats = self.stats
        try:
            conn.execute("BEGIN IMMEDIATE")
            outcomes = apply_batch(conn, batch)
            conn.execute("COMMIT")
        except (sqlite3.Error, OverflowError) as error:
            _rollback(conn)
            if not isinstance(error, _OP_ERRORS):
                logger.error("store batch of %d writes failed: %s", len(batch), error)
                return [Outcome(op.future, error=error) for op in batch]
            stats.replays += 1
            replayed = self._replay(conn, batch)
            if replayed is None:
                return [Outcome(op.future, error=error) for op in batch]
            outcomes = replayed
        stats.commits += 1
        stats.writes += len(batch)
        stats.events += sum(len(outcome.committed[1]) for outcome in outcomes if outcome.committed is not None)
        stats.largest_batch = max(stats.largest_batch, len(batch))
        return outcomes

    def _replay(self, conn: sqlite3.Connection, batch: list[WriteOp]) -> list[Outcome] | None:
        """Runs a batch write by write under savepoints; None if the transaction itself failed."""
        outcomes: list[Outcome] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
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


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        conn.execute("ROLLBACK")
