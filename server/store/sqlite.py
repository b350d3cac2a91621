"""The embedded execution store: SQLite in WAL mode with group commit.

Durability: every ``append`` and ``create_execution`` returns after its transaction commits.
With ``synchronous=NORMAL`` (the default) in WAL mode a commit is in the operating system's
hands before it is acknowledged, so it survives a ``kill -9`` of the process; it can be lost
only if the machine itself loses power or crashes before the next checkpoint. ``FULL`` fsyncs
the WAL on every commit and survives that too, at the cost of one fsync per batch.

Writes are committed in batches by one writer (group commit): the LoopWriter commits each
turn's writes on the event loop and checkpoints on a thread (the default with NORMAL), the
ThreadWriter commits on its own thread (the default with FULL, whose fsyncs must not stall
the loop). Reads run on a small pool of read-only connections beside the writer, since WAL
readers never wait for it. The store is bound to the event loop that opens it.

Outputs larger than ``payload_threshold`` are kept once in the ``payloads`` table, apart from
their events, in the same transactions, and every read resolves them (server/store/_payloads.py).

Past the house's ~500 lines because it is the one class implementing the whole store contract;
its SQL lives in the _sqlite_* modules, and what stays here is each method's thin wrapper.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import TypeVar

from baton.v1 import execution_pb2

from server.engine.admission import AdmissionLimits
from server.store import _durations as durations
from server.store import _sqlite_outbox as outbox
from server.store import _workflow_rows as workflow_rows
from server.store._durations import SketchMerge, SketchRow
from server.store._keys import check_new_keys, storable, storable_text
from server.store._outbox import append_outcome, outcome_delivery_id, scheduled_rows
from server.store._page_tokens import decode_audit_token, decode_page_token, encode_page_token
from server.store._payloads import DEFAULT_PAYLOAD_THRESHOLD, check_threshold, resolve_events, split
from server.store._sqlite_admission import COUNT_WAITING, POSITION, AdmitOp
from server.store._sqlite_audit import DeleteUserOp, ExpireOp, audit_rows, list_audit
from server.store._sqlite_batch import AppendOp, CreateOp, EventRow, ExecutionRow, Outcome, ParkOp, QuarantineOp
from server.store._sqlite_commit import CommitObserver, Writer, WriterConfig, WriterStats
from server.store._sqlite_loop_writer import LoopWriter
from server.store._sqlite_outbox import OutboxOp
from server.store._sqlite_rows import (
    RECORD_COLUMNS,
    event_micros,
    from_micros,
    record_from_row,
    to_micros,
)
from server.store._sqlite_thread_writer import ThreadWriter
from server.store._states import unfinished_ranges
from server.store.base import (
    TERMINAL_STATES,
    AuditPage,
    AuditQuery,
    CommitListener,
    Deletion,
    DeletionNote,
    ExecutionPage,
    ExecutionQuery,
    ExecutionRecord,
    NewExecution,
    PendingCallback,
    UnfinishedExecution,
    WorkflowRow,
)

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

#: synchronous levels that keep the ExecutionStore promise (a commit survives kill -9 in WAL).
SYNCHRONOUS_LEVELS = frozenset({"NORMAL", "FULL", "EXTRA"})

#: Writer choices: "loop" commits on the event loop, "thread" on a dedicated thread, "auto"
#: picks "loop" for NORMAL and "thread" for FULL and EXTRA (which fsync every commit).
WRITER_MODES = frozenset({"auto", "loop", "thread"})

_MAX_PAGE_SIZE = 1000
_DEFAULT_PAGE_SIZE = 50


def _unfinished_query(terminal: frozenset[int]) -> str:
    """Selects non-terminal executions, oldest first, as one index range per gap between terminal states.

    ``state NOT IN (...)`` or an OR of ranges lets the planner scan the whole table; a UNION ALL
    of ranges always searches the state index, so recovery reads only unfinished rows.
    """
    ranges = unfinished_ranges(terminal)
    columns = "execution_id, created_at, parked, wake_at, waiting"
    parts = " UNION ALL ".join(f"SELECT {columns} FROM executions WHERE {where}" for where in ranges)
    return f"SELECT execution_id, parked, wake_at, waiting FROM ({parts}) ORDER BY created_at, execution_id"


_UNFINISHED_QUERY = _unfinished_query(TERMINAL_STATES)


class SqliteExecutionStore:
    """An ExecutionStore on one SQLite file.

    Call ``await open()`` before anything else and ``await close()`` at the end; both must run
    on the event loop that uses the store. Cancelling an ``append`` or ``create_execution``
    after it is queued does not withdraw it: it may still commit (as with any database), and a
    later read or recovery will see it.
    """

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "NORMAL",
        writer: str = "auto",
        readers: int = 2,
        payload_threshold: int = DEFAULT_PAYLOAD_THRESHOLD,
    ) -> None:
        """Configures the store; nothing is opened until ``open()``.

        Args:
            path: the database file (created if missing, with its parent directory expected
                to exist).
            synchronous: SQLite's ``synchronous`` pragma: ``NORMAL`` (survives a process kill),
                ``FULL`` or ``EXTRA`` (also survive power loss; one fsync per commit).
            writer: ``auto``, ``loop`` or ``thread`` (see WRITER_MODES).
            readers: read connections, each with its own thread.
            payload_threshold: outputs larger than this many bytes are stored once and
                referenced (server/store/_payloads.py); 0 keeps every output in its event.

        Raises:
            ValueError: an unknown synchronous level or writer, a reader count below 1, or a
                payload_threshold out of range.
        """
        self._payload_threshold = check_threshold(payload_threshold)
        level = synchronous.upper()
        if level not in SYNCHRONOUS_LEVELS:
            raise ValueError(f"synchronous must be one of {sorted(SYNCHRONOUS_LEVELS)}, not {synchronous!r}")
        if writer not in WRITER_MODES:
            raise ValueError(f"writer must be one of {sorted(WRITER_MODES)}, not {writer!r}")
        if writer == "auto":
            writer = "loop" if level == "NORMAL" else "thread"
        self._writer_mode = writer
        if readers < 1:
            raise ValueError(f"readers must be at least 1, not {readers}")
        if path == ":memory:" or not path:
            raise ValueError("the SQLite store needs a file path (readers and the writer share it)")
        self._path = path
        self._config = WriterConfig(path=path, synchronous=level)
        self._reader_count = readers
        self._listeners: list[CommitListener] = []
        self._commit_observer: CommitObserver | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._writer: Writer | None = None
        self._readers: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()
        self._read_pool: ThreadPoolExecutor | None = None
        self._closed = False

    @property
    def path(self) -> str:
        """The database file."""
        return self._path

    @property
    def writer_mode(self) -> str:
        """``loop`` or ``thread``: where batches are committed."""
        return self._writer_mode

    @property
    def stats(self) -> WriterStats:
        """Counters of the writer: commits, writes, events, largest batch."""
        if self._writer is None:
            return WriterStats()
        return self._writer.stats

    async def open(self) -> None:
        """Opens the database, applies pending migrations and starts the writer and readers.

        Raises:
            RuntimeError: the store was opened before.
            sqlite3.Error: the file cannot be opened or migrated.
        """
        if self._loop is not None:
            raise RuntimeError("the store is already open (or was closed); make a new one")
        loop = asyncio.get_running_loop()
        self._loop = loop
        writer_type = LoopWriter if self._writer_mode == "loop" else ThreadWriter
        writer: Writer = writer_type(self._config, loop, self._deliver)
        writer.observe_commit = self._commit_observer
        writer.start()
        await asyncio.wrap_future(writer.ready)
        self._writer = writer
        self._read_pool = ThreadPoolExecutor(self._reader_count, thread_name_prefix="baton-store-read")
        try:
            for _ in range(self._reader_count):
                self._readers.put(await loop.run_in_executor(self._read_pool, self._connect_reader))
        except BaseException:
            await self.close()
            raise

    def _connect_reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False, cached_statements=128)
        conn.execute(f"PRAGMA busy_timeout = {self._config.busy_timeout_ms}")
        conn.execute(f"PRAGMA cache_size = {-self._config.cache_kib}")
        conn.execute("PRAGMA query_only = ON")
        return conn

    async def close(self) -> None:
        """Commits every write queued so far, then closes the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        writer = self._writer
        if writer is not None:
            writer.stop()
            await asyncio.wrap_future(writer.stopped)
        if self._read_pool is not None:
            pool, self._read_pool = self._read_pool, None
            # Waits for reads in flight, off the loop since shutdown blocks.
            await asyncio.get_running_loop().run_in_executor(None, pool.shutdown)
        while True:
            try:
                conn = self._readers.get_nowait()
            except queue.Empty:
                break
            conn.close()

    def observe_commits(self, observer: CommitObserver | None) -> None:
        """Has `observer` given the seconds each committed batch takes (None: nothing is timed).

        With the thread writer it is called on the writer's thread: it must be thread-safe (a
        prometheus_client histogram is) and must not block.
        """
        self._commit_observer = observer
        if self._writer is not None:
            self._writer.observe_commit = observer

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Registers a function called on the event loop after every commit of events.

        It gets (execution_id, events) for each create and append of the batch, in commit
        order, before the writers' awaits return. It must not block; an exception it raises
        is logged and does not reach the writer or the other listeners.
        """
        self._listeners.append(listener)

    def _deliver(self, outcomes: list[Outcome]) -> None:
        """Runs on the event loop: notifies listeners, then resolves the batch's futures."""
        for outcome in outcomes:
            if outcome.committed is None:
                continue
            execution_id, events = outcome.committed
            for listener in self._listeners:
                try:
                    listener(execution_id, events)
                except Exception:
                    logger.exception("commit listener failed for execution %s", execution_id)
        for outcome in outcomes:
            future = outcome.future
            if future.done():
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.result)

    def _live_writer(self) -> tuple[Writer, asyncio.AbstractEventLoop]:
        if self._writer is None or self._loop is None or self._closed:
            raise RuntimeError("the store is not open")
        return self._writer, self._loop

    async def create_execution(
        self, new: NewExecution, first_event: execution_pb2.ExecutionEvent
    ) -> tuple[ExecutionRecord, bool]:
        """Records a new execution (state QUEUED) and its first event, sequence 1, atomically.

        Returns:
            The execution's record and whether this call created it; with a request_id some
            execution of the same user already has, that execution's record and False.

        Raises:
            ValueError: the first event's sequence is not 1, or created_at is naive.
            InvalidKeyError: a key contains NUL (a ValueError).
            sqlite3.IntegrityError: the execution_id is taken by another request.
        """
        writer, loop = self._live_writer()
        if first_event.sequence != 1:
            raise ValueError(f"the first event's sequence must be 1, not {first_event.sequence}")
        check_new_keys(new)
        created_at = to_micros(new.created_at)
        state = execution_pb2.EXECUTION_STATE_QUEUED
        record = new.queued_record(from_micros(created_at))
        row: ExecutionRow = (
            new.execution_id,
            new.user_id,
            new.workflow_type,
            new.plan_id,
            new.request_id,
            new.priority,
            state,
            created_at,
            created_at,
            1,
        )
        future: asyncio.Future[tuple[ExecutionRecord, bool]] = loop.create_future()
        writer.submit(
            CreateOp(
                record,
                row,
                _event_row(first_event, self._payload_threshold),
                first_event,
                future,
                audit_rows([first_event]),
                new.admission,
            )
        )
        return await future

    async def admit(self, limits: AdmissionLimits, now: datetime) -> list[str]:
        """Admits waiting executions into the free slots, on the writer (the admission lock).

        Returns:
            The ids admitted, in admission order.
        """
        writer, loop = self._live_writer()
        future: asyncio.Future[list[str]] = loop.create_future()
        writer.submit(AdmitOp(limits, to_micros(now), future))
        return await future

    async def queue_position(self, execution_id: str, aging_seconds: float, now: datetime) -> int:
        """The execution's place in the admission queue (1: next); 0 when it does not wait."""
        if not storable(execution_id):
            return 0
        aging = AdmissionLimits(aging_seconds=aging_seconds).aging_micros
        return await self._read(_scalar, POSITION, (execution_id, to_micros(now), aging))

    async def count_waiting(self) -> int:
        """The unfinished executions waiting for admission."""
        return await self._read(_scalar, COUNT_WAITING, ())

    async def append(self, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int) -> None:
        """Appends contiguous events and sets the state, returning once they are committed.

        The events are serialized when this is called; changing them afterwards changes nothing
        stored. updated_at becomes the latest event time (it never moves backwards).

        Raises:
            SequenceConflictError: the first event's sequence is not last_sequence + 1.
            ExecutionNotFoundError: no such execution.
            ValueError: no events, or their sequences are not contiguous.
        """
        await self._append(execution_id, events, state)

    async def _append(
        self,
        execution_id: str,
        events: Sequence[execution_pb2.ExecutionEvent],
        state: int,
        finishing: tuple[str, str] | None = None,
    ) -> None:
        writer, loop = self._live_writer()
        if not events:
            raise ValueError(f"append to {execution_id} carries no events")
        first = events[0].sequence
        rows: list[EventRow] = []
        updated_at = 0
        for offset, event in enumerate(events):
            if event.sequence != first + offset:
                raise ValueError(
                    f"append to {execution_id}: event {offset} has sequence {event.sequence}, expected {first + offset}"
                )
            row = _event_row(event, self._payload_threshold)
            updated_at = max(updated_at, row[2])
            rows.append(row)
        future: asyncio.Future[None] = loop.create_future()
        last = first + len(events) - 1
        op = AppendOp(execution_id, first, last, state, updated_at, rows, events, future, audit_rows(events))
        op.scheduled = scheduled_rows(events)
        op.finishing = finishing
        writer.submit(op)
        await future

    # ---- the callback outbox (CallbackOutbox): claims on the writer ------------------------------

    async def claim_callbacks(self, owner: str, now: datetime, until: datetime, limit: int) -> list[PendingCallback]:
        """Claims up to `limit` due rows nobody holds, earliest due first, for `owner` until `until`."""
        if limit <= 0:
            return []
        at = to_micros(now)
        # A look on a reader first: an idle server's once-a-second look costs the writer nothing.
        if not await self._read(outbox.any_due, at):
            return []
        return await self._outbox(outbox.claim(owner, at, to_micros(until), limit))

    async def reschedule_callback(
        self, owner: str, delivery_id: str, attempts: int, next_attempt_at: datetime, until: datetime, error: str
    ) -> bool:
        """Records a failed attempt on a row `owner` holds; False when it no longer does."""
        run = outbox.reschedule(
            owner, delivery_id, attempts, to_micros(next_attempt_at), to_micros(until), storable_text(error)
        )
        return await self._outbox(run)

    async def renew_callbacks(self, owner: str, delivery_ids: Sequence[str], until: datetime) -> set[str]:
        """Extends `owner`'s claims among `delivery_ids` to `until`; returns those still held."""
        if not delivery_ids:
            return set()
        return await self._outbox(outbox.renew(owner, list(delivery_ids), to_micros(until)))

    async def release_callbacks(self, owner: str | None, delivery_ids: Sequence[str] = ()) -> int:
        """Frees claims: `owner`'s among `delivery_ids` (all when empty), or every claim (owner None)."""
        return await self._outbox(outbox.release(owner, list(delivery_ids)))

    async def finish_callback(self, owner: str, callback: PendingCallback, event: execution_pb2.ExecutionEvent) -> None:
        """Appends the callback's outcome and deletes its row, only while `owner` holds it.

        Raises:
            CallbackClaimLostError: the row is gone or another process holds it.
            ExecutionNotFoundError: the execution is gone.
        """
        finishing = (outcome_delivery_id(event), owner)

        async def append(state: int) -> None:
            await self._append(callback.execution_id, [event], state, finishing)

        await append_outcome(self.get_execution, append, callback, event)

    async def pending_callbacks(self, execution_id: str = "") -> list[PendingCallback]:
        """The outbox rows (of one execution, or all), earliest due first."""
        return await self._read(outbox.pending, execution_id)

    # ---- the workflow registry (WorkflowStore): rare writes, on the writer like the outbox's --------

    async def insert_workflow(self, row: WorkflowRow) -> WorkflowRow:
        """Stores a registered version unless its key is taken; returns the stored row."""
        return await self._outbox(workflow_rows.sqlite_insert(row))

    async def list_workflows(self, workflow_type: str = "") -> list[WorkflowRow]:
        """Every registered version (of one type, or all)."""
        return await self._read(workflow_rows.sqlite_list, workflow_type)

    async def deprecate_workflow(
        self, workflow_type: str, version: str, when: datetime, reason: str
    ) -> WorkflowRow | None:
        """Deprecates a version (once); returns its row, or None when there is none."""
        run = workflow_rows.sqlite_deprecate(workflow_type, version, to_micros(when), storable_text(reason))
        return await self._outbox(run)

    async def _outbox(self, run: Callable[[sqlite3.Connection], _T]) -> _T:
        writer, loop = self._live_writer()
        future: asyncio.Future[_T] = loop.create_future()
        writer.submit(OutboxOp(run, future))
        return await future

    # ---- recorded durations (server/estimates): a flush every few seconds, on the writer ------

    async def load_duration_sketches(self) -> list[SketchRow]:
        """Every stored duration sketch."""
        return await self._read(durations.load_sqlite)

    async def merge_duration_sketches(
        self, deltas: Sequence[SketchRow], merge: SketchMerge, now: datetime
    ) -> list[SketchRow]:
        """Merges recorded sketches into the stored ones (one transaction); returns the results."""
        if not deltas:
            return []
        return await self._outbox(durations.merge_sqlite(list(deltas), merge, now))

    async def park(self, execution_id: str, wake_at: datetime | None) -> None:
        """Marks the execution parked until wake_at (None: until a command); an append un-parks it.

        Raises:
            ExecutionNotFoundError: no such execution.
            ValueError: wake_at is naive.
        """
        writer, loop = self._live_writer()
        micros = None if wake_at is None else to_micros(wake_at)
        future: asyncio.Future[None] = loop.create_future()
        writer.submit(ParkOp(execution_id, micros, future))
        await future

    async def quarantine(self, execution_id: str, error: str) -> None:
        """Marks the execution FAILED with the reason its history is unreadable.

        Raises:
            ExecutionNotFoundError: no such execution.
        """
        writer, loop = self._live_writer()
        future: asyncio.Future[None] = loop.create_future()
        writer.submit(QuarantineOp(execution_id, storable_text(error), future))
        await future

    async def delete_user_data(self, user_id: str, note: DeletionNote | None = None) -> Deletion:
        """Deletes the user's executions, their events and audit entries, in one transaction.

        Raises:
            UnfinishedExecutionsError: an execution of the user is not terminal; nothing is deleted.
            ValueError: the note's time is naive.
        """
        writer, loop = self._live_writer()
        row = None if note is None else (to_micros(note.recorded_at), note.subject, note.actor)
        future: asyncio.Future[Deletion] = loop.create_future()
        writer.submit(DeleteUserOp(user_id, row, future))
        return await future

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> Deletion:
        """Deletes up to `limit` terminal executions last updated before `cutoff` (retention).

        Raises:
            ValueError: cutoff is naive, or limit is below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        writer, loop = self._live_writer()
        future: asyncio.Future[Deletion] = loop.create_future()
        writer.submit(ExpireOp(to_micros(cutoff), limit, future))
        return await future

    async def read_events(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[execution_pb2.ExecutionEvent]:
        """Returns the execution's events with sequence > after_sequence, in order.

        An unknown execution has no events (an empty list).

        Raises:
            CorruptHistoryError: a stored event cannot be decoded, is not the event its row
                says (another sequence), or names a payload that is missing.
        """
        if (limit is not None and limit <= 0) or not storable(execution_id):
            return []
        return await self._read(_read_events, execution_id, after_sequence, limit)

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Returns the execution's summary row, or None."""
        if not storable(execution_id):
            return None
        return await self._read(_get_execution, execution_id)

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        """Returns a page of executions, newest first (ties broken by execution_id).

        A page_size of 0 means 50; above 1000 it is 1000.

        Raises:
            InvalidPageTokenError: the token is malformed.
            ValueError: a negative page_size.
        """
        if query.page_size < 0:
            raise ValueError(f"page_size must not be negative, not {query.page_size}")
        if not storable(query.user_id, query.workflow_type):
            return ExecutionPage()
        after = decode_page_token(query.page_token) if query.page_token else None
        return await self._read(_list_executions, query, after)

    async def list_audit(self, query: AuditQuery) -> AuditPage:
        """Returns a page of the audit trail, newest first. A page_size of 0 means 100.

        Raises:
            InvalidPageTokenError: the token is malformed.
            ValueError: a page_size outside 0-1000.
        """
        if not 0 <= query.page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be from 0 to {_MAX_PAGE_SIZE}, not {query.page_size}")
        after = decode_audit_token(query.page_token) if query.page_token else None
        return await self._read(list_audit, query, after)

    async def unfinished_executions(self) -> list[UnfinishedExecution]:
        """Returns the executions not in a terminal state, oldest first, with their parked marks."""
        return await self._read(_unfinished_executions)

    async def count_by_state(self) -> dict[int, int]:
        """Returns the number of executions in each ExecutionState (states with none omitted)."""
        return await self._read(_count_by_state)

    async def _read(self, read: Callable[..., _T], *args: object) -> _T:
        if self._read_pool is None or self._loop is None or self._closed:
            raise RuntimeError("the store is not open")
        return await self._loop.run_in_executor(self._read_pool, self._with_reader, read, args)

    def _with_reader(self, read: Callable[..., _T], args: tuple[object, ...]) -> _T:
        # The pool has exactly as many threads as connections, so a connection is always free.
        conn = self._readers.get()
        try:
            return read(conn, *args)
        finally:
            self._readers.put(conn)


def _event_row(event: execution_pb2.ExecutionEvent, threshold: int) -> EventRow:
    payload, blob = split(event, threshold)
    return (event.sequence, event.WhichOneof("kind") or "", event_micros(event), payload, blob)


def _read_events(
    conn: sqlite3.Connection, execution_id: str, after_sequence: int, limit: int | None
) -> list[execution_pb2.ExecutionEvent]:
    rows = conn.execute(
        "SELECT e.sequence, e.payload, e.payload_sha256, p.data FROM events AS e"
        " LEFT JOIN payloads AS p ON p.sha256 = e.payload_sha256"
        " WHERE e.execution_no = (SELECT execution_no FROM executions WHERE execution_id = ?) AND e.sequence > ?"
        " ORDER BY e.sequence LIMIT ?",
        (execution_id, after_sequence, -1 if limit is None else limit),
    ).fetchall()
    return resolve_events(execution_id, rows)


def _get_execution(conn: sqlite3.Connection, execution_id: str) -> ExecutionRecord | None:
    row = conn.execute(f"SELECT {RECORD_COLUMNS} FROM executions WHERE execution_id = ?", (execution_id,)).fetchone()
    return None if row is None else record_from_row(row)


def _list_executions(conn: sqlite3.Connection, query: ExecutionQuery, after: tuple[int, str] | None) -> ExecutionPage:
    clauses: list[str] = []
    params: list[object] = []
    if query.user_id:
        clauses.append("user_id = ?")
        params.append(query.user_id)
    if query.states:
        clauses.append("state IN ({})".format(", ".join("?" * len(query.states))))
        params.extend(query.states)
    if query.workflow_type:
        clauses.append("workflow_type = ?")
        params.append(query.workflow_type)
    if after is not None:
        clauses.append("(created_at, execution_id) < (?, ?)")
        params.extend(after)
    size = min(query.page_size or _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    # One row more than the page tells whether another page follows.
    params.append(size + 1)
    rows = conn.execute(
        f"SELECT {RECORD_COLUMNS} FROM executions {where} ORDER BY created_at DESC, execution_id DESC LIMIT ?",
        params,
    ).fetchall()
    records = [record_from_row(row) for row in rows[:size]]
    token = ""
    if len(rows) > size:
        last = rows[size - 1]
        token = encode_page_token(last[7], last[0])
    return ExecutionPage(records=records, next_page_token=token)


def _unfinished_executions(conn: sqlite3.Connection) -> list[UnfinishedExecution]:
    rows = conn.execute(_UNFINISHED_QUERY).fetchall()
    return [
        UnfinishedExecution(
            execution_id=execution_id,
            parked=bool(parked),
            wake_at=None if not parked or wake_at is None else from_micros(wake_at),
            waiting=bool(waiting),
        )
        for execution_id, parked, wake_at, waiting in rows
    ]


def _scalar(conn: sqlite3.Connection, query: str, params: tuple[object, ...]) -> int:
    row = conn.execute(query, params).fetchone()
    return 0 if row is None or row[0] is None else int(row[0])


def _count_by_state(conn: sqlite3.Connection) -> dict[int, int]:
    return dict(conn.execute("SELECT state, COUNT(*) FROM executions GROUP BY state").fetchall())
