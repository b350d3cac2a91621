"""Group commit for SQLite: one writer thread runs every queued write in one transaction.

Rules:
1. Only the writer thread touches the write connection, so SQLite never sees two writers and
   no write waits on a lock held by this process.
2. The thread drains everything queued, applies it in ONE transaction and commits; writes that
   arrive meanwhile form the next batch, so the batch grows with the load and one commit (one
   WAL append, one fsync with ``synchronous=FULL``) serves many writers.
3. A write's own failure (a sequence conflict, an unknown execution, a constraint violation)
   fails only that write: conflicts are checked in Python before anything is inserted, and a
   batch that still hits a constraint is replayed write by write under SAVEPOINTs.
4. Nothing is acknowledged before COMMIT returns. Results and commit notifications are handed
   to the event loop with one ``call_soon_threadsafe`` per batch, in commit order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from baton.v1 import execution_pb2

from server.store._migrations import apply_sqlite_migrations, load_migrations
from server.store._sqlite_rows import RECORD_COLUMNS, record_from_row
from server.store.base import ExecutionNotFoundError, ExecutionRecord, SequenceConflictError

logger = logging.getLogger(__name__)

#: An event as the caller's side prepares it: (sequence, kind, recorded_at, payload). The
#: writer adds the execution's execution_no in front.
EventRow = tuple[int, str, int, bytes]

#: An executions row without its execution_no, in _INSERT_EXECUTION's order after it.
ExecutionRow = tuple[str, str, str, str, str, int, int, int, int, int]

# Errors that belong to one write's data rather than to the database: replaying the batch one
# write at a time pins them on the write that caused them.
_OP_ERRORS = (
    sqlite3.IntegrityError,
    sqlite3.DataError,
    sqlite3.InterfaceError,
    sqlite3.ProgrammingError,
    OverflowError,
)

# SQLite's default limit on bound parameters was 999 before 3.32; stay under it.
_IN_CHUNK = 500

_INSERT_EXECUTION = (
    "INSERT INTO executions (execution_no, execution_id, user_id, workflow_type, plan_id, request_id,"
    " priority, state, created_at, updated_at, last_sequence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_EVENT = "INSERT INTO events (execution_no, sequence, kind, recorded_at, payload) VALUES (?, ?, ?, ?, ?)"
# updated_at never moves backwards, and an event without a time leaves it alone.
_UPDATE_EXECUTION = (
    "UPDATE executions SET state = ?, last_sequence = ?, updated_at = MAX(updated_at, ?) WHERE execution_no = ?"
)


@dataclass(slots=True)
class CreateOp:
    """A queued create_execution."""

    record: ExecutionRecord
    """The record to insert (state QUEUED, last_sequence 1)."""
    row: ExecutionRow
    """The executions row (the writer assigns its execution_no)."""
    event_row: EventRow
    """The first event's row."""
    event: execution_pb2.ExecutionEvent
    """The first event, for commit listeners."""
    future: asyncio.Future[tuple[ExecutionRecord, bool]]
    """Resolved on the event loop after the commit."""


@dataclass(slots=True)
class AppendOp:
    """A queued append."""

    execution_id: str
    first_sequence: int
    last_sequence: int
    state: int
    updated_at: int
    """The latest event time in microseconds (0 when the events carry none)."""
    rows: list[EventRow]
    events: Sequence[execution_pb2.ExecutionEvent]
    """The events, for commit listeners."""
    future: asyncio.Future[None]
    """Resolved on the event loop after the commit."""


WriteOp = CreateOp | AppendOp


@dataclass(slots=True)
class Outcome:
    """What one write came to: a result or an error, and the events it committed."""

    future: asyncio.Future[Any]
    result: object = None
    error: BaseException | None = None
    committed: tuple[str, Sequence[execution_pb2.ExecutionEvent]] | None = None
    """(execution_id, events) to hand to commit listeners; None when nothing was written."""


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


@dataclass
class WriterConfig:
    """How the writer opens its connection."""

    path: str
    synchronous: str
    busy_timeout_ms: int = 5_000
    cache_kib: int = 16_384
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
        conn = sqlite3.connect(config.path, isolation_level=None, cached_statements=256)
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
            outcomes = _apply(conn, batch)
            conn.execute("COMMIT")
        except (sqlite3.Error, OverflowError) as error:
            _rollback(conn)
            if not isinstance(error, _OP_ERRORS):
                return [Outcome(op.future, error=error) for op in batch]
            stats.replays += 1
            replayed = self._replay(conn, batch)
            if replayed is None:
                return [Outcome(op.future, error=error) for op in batch]
            outcomes = replayed
        stats.commits += 1
        stats.writes += len(batch)
        stats.events += sum(len(o.committed[1]) for o in outcomes if o.committed is not None)
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
                    outcomes.extend(_apply(conn, [op]))
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


def _apply(conn: sqlite3.Connection, batch: Sequence[WriteOp]) -> list[Outcome]:
    """Applies writes inside the open transaction; a constraint error propagates."""
    # execution_id -> [execution_no, last_sequence], kept current as the batch is applied.
    known = _known(conn, {op.execution_id for op in batch if isinstance(op, AppendOp)})
    by_request: dict[tuple[str, str], ExecutionRecord] = {}
    next_no = 0
    new_rows: list[tuple[object, ...]] = []
    event_rows: list[tuple[object, ...]] = []
    updates: dict[int, tuple[int, int, int]] = {}
    outcomes: list[Outcome] = []
    for op in batch:
        if isinstance(op, CreateOp):
            record = op.record
            key = (record.user_id, record.request_id)
            if record.request_id:
                existing = by_request.get(key) or _by_request(conn, key)
                if existing is not None:
                    outcomes.append(Outcome(op.future, result=(existing, False)))
                    continue
                by_request[key] = record
            if not next_no:
                # The writer holds the write lock, so nobody else can take these numbers.
                next_no = conn.execute("SELECT COALESCE(MAX(execution_no), 0) + 1 FROM executions").fetchone()[0]
            no, next_no = next_no, next_no + 1
            new_rows.append((no, *op.row))
            event_rows.append((no, *op.event_row))
            known[record.execution_id] = [no, 1]
            outcomes.append(Outcome(op.future, result=(record, True), committed=(record.execution_id, (op.event,))))
            continue
        entry = known.get(op.execution_id)
        if entry is None:
            outcomes.append(Outcome(op.future, error=ExecutionNotFoundError(op.execution_id)))
            continue
        no, last = entry
        if op.first_sequence != last + 1:
            conflict = SequenceConflictError(
                f"execution {op.execution_id}: append starts at sequence {op.first_sequence},"
                f" but its last sequence is {last}"
            )
            outcomes.append(Outcome(op.future, error=conflict))
            continue
        entry[1] = op.last_sequence
        event_rows.extend((no, *row) for row in op.rows)
        earlier = updates.get(no)
        updated_at = op.updated_at if earlier is None else max(op.updated_at, earlier[2])
        updates[no] = (op.state, op.last_sequence, updated_at)
        outcomes.append(Outcome(op.future, committed=(op.execution_id, op.events)))
    if new_rows:
        conn.executemany(_INSERT_EXECUTION, new_rows)
    if event_rows:
        conn.executemany(_INSERT_EVENT, event_rows)
    if updates:
        conn.executemany(
            _UPDATE_EXECUTION,
            [(state, last, updated_at, no) for no, (state, last, updated_at) in updates.items()],
        )
    return outcomes


def _known(conn: sqlite3.Connection, execution_ids: set[str]) -> dict[str, list[int]]:
    found: dict[str, list[int]] = {}
    ids = list(execution_ids)
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start : start + _IN_CHUNK]
        marks = ",".join("?" * len(chunk))
        rows = conn.execute(
            f"SELECT execution_id, execution_no, last_sequence FROM executions WHERE execution_id IN ({marks})",
            chunk,
        )
        for execution_id, no, last in rows:
            found[execution_id] = [no, last]
    return found


def _by_request(conn: sqlite3.Connection, key: tuple[str, str]) -> ExecutionRecord | None:
    # The repeated "request_id <> ''" lets SQLite use the partial unique index (else: a full scan).
    row = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM executions WHERE user_id = ? AND request_id = ? AND request_id <> ''", key
    ).fetchone()
    return None if row is None else record_from_row(row)
