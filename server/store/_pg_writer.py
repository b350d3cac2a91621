"""The PostgreSQL store's writer: group commit on one connection, on the event loop.

Rules:
1. Writes queued during one turn of the event loop are committed together, as ONE transaction
   on the writer's one connection (``apply_batch``: a locking lookup, one write statement,
   COMMIT). While a transaction is in flight, new writes queue up and go in the next, so under
   load one commit serves many writers and the round trips per write fall.
2. A write is acknowledged (its future resolved, its listeners called) only after COMMIT
   returns. ``synchronous_commit`` is left on (PostgreSQL's default), so COMMIT returns once
   the WAL is flushed: an acknowledged write survives a crash of the database server, too.
3. A batch that hits a constraint only the server can see (another process created the same
   request a moment ago) is replayed write by write under savepoints, so one bad write fails
   alone.
4. A lost connection is reopened. A batch whose connection was lost before COMMIT was sent
   (nothing of it can have committed) is run once more on a new connection, so a database
   restart or a connection cut by a proxy costs a reconnection, not failed writes. One lost
   during COMMIT fails whole: whether it committed is unknown to the caller (recovery reads
   what did).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from server.store._pg_batch import Outcome, WriteOp, apply_batch

logger = logging.getLogger(__name__)

#: Receives each batch's outcomes on the event loop, in commit order.
Deliver = Callable[[list[Outcome]], None]
#: Receives the seconds each committed batch took, from taking the connection to COMMIT.
CommitObserver = Callable[[float], None]

# Writes per transaction: bounds one statement's arrays after a burst; the rest go next.
_MAX_BATCH = 1_000

# Errors that belong to one write's data rather than to the connection: replaying the batch
# one write at a time pins them on the write that caused them.
_OP_ERRORS = (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError, OverflowError)
# Errors of the database or the connection: they fail a batch whole.
_DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError)
# Errors that say the server ended the session (a restart, pg_terminate_backend, a failover).
_SESSION_ENDED = (OSError, asyncpg.PostgresConnectionError, asyncpg.AdminShutdownError, asyncpg.CannotConnectNowError)


class _NotCommittedError(Exception):
    """The connection was lost before COMMIT was sent: nothing of the batch was committed."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


async def connect_writer(dsn: str, *, connect_timeout: float, application_name: str = "baton") -> asyncpg.Connection:
    """Opens a writer connection, with ``synchronous_commit`` on whatever the database's default.

    Raises:
        OSError, asyncpg.PostgresError: the database cannot be reached.
    """
    conn = await asyncpg.connect(dsn, timeout=connect_timeout, server_settings={"application_name": application_name})
    try:
        if await conn.fetchval("SHOW synchronous_commit") == "off":
            # The store's promise (an acknowledged write survives a crash) needs the WAL flushed
            # before COMMIT returns; a database (or role) configured with "off" would break it.
            logger.warning("synchronous_commit is off for this database; the store's writer turns it on")
            await conn.execute("SET synchronous_commit = on")
    except BaseException:
        conn.terminate()
        raise
    return conn


@dataclass
class PostgresWriterStats:
    """Counters of the writer (updated by it alone; read them for tests and benchmarks)."""

    commits: int = 0
    """Transactions committed."""
    writes: int = 0
    """create_execution, append, park and quarantine calls committed or refused."""
    events: int = 0
    """Events committed."""
    largest_batch: int = 0
    """The most writes one transaction has carried."""
    replays: int = 0
    """Batches replayed write by write after a constraint error."""
    reconnects: int = 0
    """Times the writer opened a new connection after losing one."""


class PostgresWriter:
    """Commits writes in batches on one connection; see the module's rules."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[asyncpg.Connection]],
        conn: asyncpg.Connection,
        deliver: Deliver,
        instance: str,
    ) -> None:
        """Takes an open connection; `connect` makes a new one after it is lost."""
        self._connect = connect
        self._conn: asyncpg.Connection | None = conn
        self._deliver = deliver
        self._instance = instance
        self._loop = asyncio.get_running_loop()
        self.stats = PostgresWriterStats()
        self.observe_commit: CommitObserver | None = None
        """Given each committed batch's duration in seconds; None (the default): nothing is timed."""
        self._pending: list[WriteOp] = []
        self._scheduled = False
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def submit(self, op: WriteOp) -> None:
        """Queues a write for the next transaction (event loop only).

        Raises:
            RuntimeError: the writer has stopped.
        """
        if self._stopping:
            raise RuntimeError("the store's writer has stopped")
        self._pending.append(op)
        if self._task is None and not self._scheduled:
            # call_soon runs after everything already ready in this turn, so the whole turn's
            # writes are queued when the batch is taken.
            self._scheduled = True
            self._loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if self._task is None and self._pending:
            self._task = self._loop.create_task(self._drain(), name="baton-store-writer")

    async def _drain(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending[:_MAX_BATCH], self._pending[_MAX_BATCH:]
                try:
                    outcomes = await self._commit(batch)
                except Exception as error:
                    # A bug, not a database error (those become outcomes): fail the batch
                    # rather than leave its callers waiting.
                    logger.exception("store batch of %d writes failed", len(batch))
                    outcomes = [Outcome(op.future, error=error) for op in batch]
                self._deliver(outcomes)
        finally:
            self._task = None

    async def stop(self) -> None:
        """Commits the writes queued so far, then closes the connection."""
        self._stopping = True
        if self._scheduled or self._pending:
            self._start()
        if self._task is not None:
            await asyncio.shield(self._task)
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close(timeout=5)

    async def _connection(self) -> asyncpg.Connection:
        conn = self._conn
        if conn is not None and not conn.is_closed():
            return conn
        self._conn = None
        conn = await self._connect()
        self._conn = conn
        self.stats.reconnects += 1
        return conn

    async def _commit(self, batch: list[WriteOp]) -> list[Outcome]:
        """Runs a batch in one transaction; returns one outcome per write, in order."""
        observe = self.observe_commit
        began = time.perf_counter() if observe is not None else 0.0
        for attempt in (1, 2):
            try:
                conn = await self._connection()
            except _DB_ERRORS as error:
                logger.error("store batch of %d writes failed: cannot connect: %s", len(batch), error)
                return [Outcome(op.future, error=error) for op in batch]
            try:
                outcomes = await self._transaction(conn, batch)
            except _NotCommittedError as lost:
                conn.terminate()
                if attempt == 1:
                    logger.warning("the store's writer lost its connection (%s); retrying the batch", lost.cause)
                    continue
                return self._failed(conn, batch, lost.cause)
            except _DB_ERRORS as error:
                return self._failed(conn, batch, error)
            break
        self.stats.commits += 1
        self.stats.writes += len(batch)
        self.stats.events += sum(len(o.committed.events) for o in outcomes if o.committed is not None)
        self.stats.largest_batch = max(self.stats.largest_batch, len(batch))
        if observe is not None:
            observe(time.perf_counter() - began)
        return outcomes

    async def _transaction(self, conn: asyncpg.Connection, batch: list[WriteOp]) -> list[Outcome]:
        """One transaction for the batch (or its replay after a constraint error).

        Raises:
            _NotCommittedError: the session ended before COMMIT was sent.
        """
        transaction = conn.transaction()
        try:
            await transaction.start()
            outcomes = await apply_batch(conn, batch, self._instance)
        except _OP_ERRORS:
            await transaction.rollback()
            self.stats.replays += 1
            return await self._replay(conn, batch)
        except BaseException as error:
            if isinstance(error, _SESSION_ENDED) or conn.is_closed():
                raise _NotCommittedError(error) from error
            with contextlib.suppress(*_DB_ERRORS):
                await transaction.rollback()
            raise
        await transaction.commit()
        return outcomes

    def _failed(self, conn: asyncpg.Connection, batch: list[WriteOp], error: BaseException) -> list[Outcome]:
        logger.error("store batch of %d writes failed: %s", len(batch), error)
        # Whatever went wrong, a new session starts clean (no transaction left open on it).
        conn.terminate()
        return [Outcome(op.future, error=error) for op in batch]

    async def _replay(self, conn: asyncpg.Connection, batch: list[WriteOp]) -> list[Outcome]:
        """Runs a batch write by write under savepoints, in one transaction."""
        outcomes: list[Outcome] = []
        async with conn.transaction():
            for op in batch:
                try:
                    async with conn.transaction():  # a SAVEPOINT
                        outcomes.extend(await apply_batch(conn, [op], self._instance))
                except _OP_ERRORS as error:
                    outcomes.append(Outcome(op.future, error=error))
        return outcomes
