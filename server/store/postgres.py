"""The shared execution store: PostgreSQL through asyncpg, with group commit and cross-process listeners.

Several orchestrator processes may open one database. Durability: every ``append`` and
``create_execution`` returns after its transaction commits with ``synchronous_commit`` on (the
store turns it back on for its writer if the database has it off), so an acknowledged write
survives a crash of the orchestrator and of the database server.

Pieces: one writer connection commits each event-loop turn's writes as one transaction
(``_pg_writer``, ``_pg_batch``); a small pool serves reads; a LISTEN connection receives the
announcements of other processes' commits, whose events are read and handed to this store's
commit listeners (``_pg_fanout``); migrations are applied on open under an advisory lock
(``_pg_migrations``). The store is bound to the event loop that opens it.

Outputs larger than ``payload_threshold`` are kept once in the ``payloads`` table, apart from
their events, in the same transactions, and every read resolves them (server/store/_payloads.py).

Past the house's ~500 lines because it is the one class implementing the whole store contract
(leases and admission included); its SQL lives in the _pg_* modules.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Sequence
from datetime import datetime

import asyncpg
from baton.v1 import execution_pb2

from server.engine.admission import AdmissionLimits
from server.engine.ports import Lease
from server.store import _durations as durations
from server.store import _pg_outbox as outbox
from server.store import _workflow_rows as workflow_rows
from server.store._durations import SketchMerge, SketchRow
from server.store._keys import check_new_keys, storable, storable_text
from server.store._outbox import append_outcome, outcome_delivery_id, scheduled_rows
from server.store._page_tokens import decode_audit_token, decode_page_token, encode_page_token
from server.store._payloads import DEFAULT_PAYLOAD_THRESHOLD, check_threshold, resolve_events, split
from server.store._pg_admission import (
    ADMISSION_LOCK_KEY,
    ADMIT,
    COUNT_WAITING,
)
from server.store._pg_admission import COUNTS as ADMISSION_COUNTS
from server.store._pg_admission import LOCK as ADMISSION_LOCK
from server.store._pg_admission import POSITION as QUEUE_POSITION
from server.store._pg_audit import audit_rows, delete_user, expire, list_audit
from server.store._pg_batch import AppendOp, CreateOp, EventRow, Outcome, ParkOp, QuarantineOp
from server.store._pg_fanout import CommitFanout, FanoutStats, NotificationListener
from server.store._pg_leases import (
    CLAIM,
    CLAIM_NAMED,
    CLAIM_NAMED_ANY,
    RELEASE,
    RENEW,
    WANT,
    WANTED,
    unfinished_where,
)
from server.store._pg_migrations import apply_postgres_migrations
from server.store._pg_rows import RECORD_COLUMNS, event_time, record_from_row, utc
from server.store._pg_writer import CommitObserver, PostgresWriter, PostgresWriterStats, connect_writer
from server.store._sqlite_rows import from_micros, to_micros
from server.store.base import (
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

_MAX_PAGE_SIZE = 1000
_DEFAULT_PAGE_SIZE = 50
# application_name of each connection, so that pg_stat_activity tells the store's roles apart.
_WRITER_NAME = "baton-writer"
_READER_NAME = "baton-reader"
_LISTEN_NAME = "baton-listen"


_UNFINISHED_QUERY = (
    f"SELECT execution_id, parked, wake_at, waiting FROM executions WHERE {unfinished_where()}"
    " ORDER BY created_at, execution_id"
)


class PostgresExecutionStore:
    """An ExecutionStore on a PostgreSQL database, shareable by several processes.

    Call ``await open()`` before anything else and ``await close()`` at the end, on the event
    loop that uses the store. Cancelling an ``append`` or ``create_execution`` after it is
    queued does not withdraw it: it may still commit, and a later read or recovery will see it.
    """

    def __init__(
        self,
        dsn: str,
        *,
        readers: int = 4,
        connect_timeout: float = 10.0,
        payload_threshold: int = DEFAULT_PAYLOAD_THRESHOLD,
    ) -> None:
        """Configures the store; nothing is opened until ``open()``.

        Args:
            dsn: a libpq-style URL, ``postgresql://user[:password]@host[:port]/database``.
            readers: the most connections of the read pool.
            connect_timeout: seconds one connection attempt may take.
            payload_threshold: outputs larger than this many bytes are stored once and
                referenced (server/store/_payloads.py); 0 keeps every output in its event.

        Raises:
            ValueError: a reader count below 1, or a payload_threshold out of range.
        """
        if readers < 1:
            raise ValueError(f"readers must be at least 1, not {readers}")
        self._payload_threshold = check_threshold(payload_threshold)
        self._dsn = dsn
        self._readers = readers
        self._connect_timeout = connect_timeout
        self._instance = secrets.token_hex(8)
        self._listeners: list[CommitListener] = []
        self._commit_observer: CommitObserver | None = None
        self._writer: PostgresWriter | None = None
        self._pool: asyncpg.Pool | None = None
        self._fanout: CommitFanout | None = None
        self._listener: NotificationListener | None = None
        self._opened = False
        self._closed = False

    @property
    def instance_id(self) -> str:
        """This store's id in the commit announcements (other stores skip nothing of it)."""
        return self._instance

    @property
    def stats(self) -> PostgresWriterStats:
        """Counters of the writer: commits, writes, events, largest batch, replays."""
        return PostgresWriterStats() if self._writer is None else self._writer.stats

    @property
    def fanout_stats(self) -> FanoutStats:
        """Counters of the cross-process fan-out: announcements, reads, reconnections."""
        return FanoutStats() if self._fanout is None else self._fanout.stats

    @property
    def listen_backend_pid(self) -> int | None:
        """The server process of the LISTEN connection (None when not connected)."""
        return None if self._listener is None else self._listener.backend_pid

    async def _connect_listen(self) -> asyncpg.Connection:
        return await asyncpg.connect(
            self._dsn, timeout=self._connect_timeout, server_settings={"application_name": _LISTEN_NAME}
        )

    async def _connect_writer(self) -> asyncpg.Connection:
        return await connect_writer(self._dsn, connect_timeout=self._connect_timeout, application_name=_WRITER_NAME)

    async def open(self) -> None:
        """Connects, applies pending migrations, and starts the writer, the readers and LISTEN.

        Raises:
            RuntimeError: the store was opened before.
            OSError, asyncpg.PostgresError: the database cannot be reached or migrated.
        """
        if self._opened:
            raise RuntimeError("the store is already open (or was closed); make a new one")
        self._opened = True
        conn = await self._connect_writer()
        try:
            await apply_postgres_migrations(conn)
            self._pool = await asyncpg.create_pool(
                self._dsn,
                min_size=1,
                max_size=self._readers,
                timeout=self._connect_timeout,
                server_settings={"application_name": _READER_NAME},
            )
            self._fanout = CommitFanout(self._pool, self._listeners)
            self._listener = NotificationListener(self._connect_listen, self._fanout, self._instance)
            await self._listener.start()
        except BaseException:
            conn.terminate()
            await self.close()
            raise
        self._writer = PostgresWriter(self._connect_writer, conn, self._deliver, self._instance)
        self._writer.observe_commit = self._commit_observer

    async def close(self) -> None:
        """Commits every write queued so far, then closes the connections. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._writer is not None:
            await self._writer.stop()
        if self._listener is not None:
            await self._listener.close()
        if self._fanout is not None:
            await self._fanout.close()
        if self._pool is not None:
            await self._pool.close()

    def observe_commits(self, observer: CommitObserver | None) -> None:
        """Has `observer` given the seconds each committed batch takes, on the event loop (None:
        nothing is timed). It must not block."""
        self._commit_observer = observer
        if self._writer is not None:
            self._writer.observe_commit = observer

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Registers a function called on the event loop after every commit of events.

        It gets (execution_id, events) for each create and append, this process's and other
        processes' on the same database, each execution's in order and without gaps from the
        first it gets. It must not block; an exception it raises is logged and does not reach
        the writer or the other listeners.
        """
        self._listeners.append(listener)

    def _deliver(self, outcomes: list[Outcome]) -> None:
        """Runs on the event loop: notifies listeners, then resolves the batch's futures."""
        fanout = self._fanout
        for outcome in outcomes:
            if outcome.committed is not None and fanout is not None:
                fanout.local(outcome.committed)
        for outcome in outcomes:
            future = outcome.future
            if future.done():
                continue
            if outcome.error is not None:
                future.set_exception(outcome.error)
            else:
                future.set_result(outcome.result)

    def _live_writer(self) -> PostgresWriter:
        if self._writer is None or self._closed:
            raise RuntimeError("the store is not open")
        return self._writer

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
            ExecutionIdTakenError: another execution has the execution_id (a ValueError).
        """
        writer = self._live_writer()
        if first_event.sequence != 1:
            raise ValueError(f"the first event's sequence must be 1, not {first_event.sequence}")
        check_new_keys(new)
        created_at = utc(new.created_at)
        record = new.queued_record(created_at)
        future: asyncio.Future[tuple[ExecutionRecord, bool]] = asyncio.get_running_loop().create_future()
        writer.submit(
            CreateOp(
                record,
                _event_row(first_event, self._payload_threshold),
                first_event,
                future,
                audit_rows([first_event]),
                new.admission,
            )
        )
        return await future

    # ---- admission (server/store/_pg_admission.py) ------------------------------------------------

    async def admit(self, limits: AdmissionLimits, now: datetime) -> list[str]:
        """Admits waiting executions into the free slots, under the admission lock, in one transaction.

        Returns:
            The ids admitted, in admission order.
        """
        async with self._live_pool().acquire() as conn, conn.transaction():
            await conn.execute(ADMISSION_LOCK, ADMISSION_LOCK_KEY)
            free: int | None = None
            if limits.bounded:
                counted = await conn.fetchrow(ADMISSION_COUNTS)
                free = limits.max_running - (counted[0] if counted is not None else 0)
                if free <= 0:
                    return []
            rows = await conn.fetch(ADMIT, utc(now), limits.aging_micros, free)
        return [row[0] for row in rows]

    async def queue_position(self, execution_id: str, aging_seconds: float, now: datetime) -> int:
        """The execution's place in the admission queue (1: next); 0 when it does not wait."""
        if not storable(execution_id):
            return 0
        aging = AdmissionLimits(aging_seconds=aging_seconds).aging_micros
        rows = await self._fetch(QUEUE_POSITION, execution_id, utc(now), aging)
        return int(rows[0][0]) if rows else 0

    async def count_waiting(self) -> int:
        """The unfinished executions waiting for admission (every replica's)."""
        rows = await self._fetch(COUNT_WAITING)
        return int(rows[0][0]) if rows else 0

    async def append(self, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int) -> None:
        """Appends contiguous events and sets the state, returning once they are committed.

        The events are serialized when this is called; changing them afterwards changes nothing
        stored. updated_at becomes the latest event time (it never moves backwards).

        Raises:
            SequenceConflictError: the first event's sequence is not last_sequence + 1.
            ExecutionNotFoundError: no such execution.
            ValueError: no events, or their sequences are not contiguous.
        """
        await self._append(None, execution_id, events, state)

    async def append_fenced(
        self, lease: Lease, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int
    ) -> None:
        """`append`, committed only while `lease.owner` holds the execution with an unlapsed lease.

        The check runs in the group commit's transaction on the locked row; a refused write
        fails alone (the rest of its batch commits) and writes none of its events.

        Raises:
            LeaseLostError: another replica holds it, nobody does, or the lease lapsed.
            SequenceConflictError, ExecutionNotFoundError, ValueError: as `append`.
        """
        await self._append(lease, execution_id, events, state)

    async def _append(
        self,
        lease: Lease | None,
        execution_id: str,
        events: Sequence[execution_pb2.ExecutionEvent],
        state: int,
        finishing: tuple[str, str] | None = None,
    ) -> None:
        writer = self._live_writer()
        if not events:
            raise ValueError(f"append to {execution_id} carries no events")
        first = events[0].sequence
        rows: list[EventRow] = []
        updated_at: datetime | None = None
        for offset, event in enumerate(events):
            if event.sequence != first + offset:
                raise ValueError(
                    f"append to {execution_id}: event {offset} has sequence {event.sequence}, expected {first + offset}"
                )
            row = _event_row(event, self._payload_threshold)
            if row[1] is not None and (updated_at is None or row[1] > updated_at):
                updated_at = row[1]
            rows.append(row)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        last = first + len(events) - 1
        audit = audit_rows(events)
        op = AppendOp(execution_id, first, last, state, updated_at, rows, events, future, lease, audit)
        op.scheduled = scheduled_rows(events)
        op.finishing = finishing
        writer.submit(op)
        await future

    # ---- recorded durations (server/estimates): a flush every few seconds per replica ---------

    async def load_duration_sketches(self) -> list[SketchRow]:
        """Every stored duration sketch."""
        return await durations.load_pg(self._live_pool())

    async def merge_duration_sketches(
        self, deltas: Sequence[SketchRow], merge: SketchMerge, now: datetime
    ) -> list[SketchRow]:
        """Merges recorded sketches into the stored ones (one transaction); returns the results."""
        if not deltas:
            return []
        return await durations.merge_pg(self._live_pool(), deltas, merge, now)

    async def park(self, execution_id: str, wake_at: datetime | None) -> None:
        """Marks the execution parked until wake_at (None: until a command) and frees its lease.

        An append un-parks it.

        Raises:
            ExecutionNotFoundError: no such execution.
            ValueError: wake_at is naive.
        """
        writer = self._live_writer()
        wake = None if wake_at is None else utc(wake_at)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer.submit(ParkOp(execution_id, wake, future))
        await future

    async def quarantine(self, execution_id: str, error: str) -> None:
        """Marks the execution FAILED with the reason its history is unreadable, and frees its lease.

        Raises:
            ExecutionNotFoundError: no such execution.
        """
        writer = self._live_writer()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        writer.submit(QuarantineOp(execution_id, storable_text(error), future))
        await future

    def _live_pool(self) -> asyncpg.Pool:
        if self._pool is None or self._writer is None or self._closed:
            raise RuntimeError("the store is not open")
        return self._pool

    async def _fetch(self, query: str, *args: object) -> list[asyncpg.Record]:
        # The pool replaces a connection whose session has ended when it hands it out.
        return await self._live_pool().fetch(query, *args)

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
        rows = await self._fetch(
            "SELECT e.sequence, e.payload, e.payload_sha256, p.data FROM events AS e"
            " LEFT JOIN payloads AS p ON p.sha256 = e.payload_sha256"
            " WHERE e.execution_no = (SELECT execution_no FROM executions WHERE execution_id = $1)"
            " AND e.sequence > $2 ORDER BY e.sequence LIMIT $3",
            execution_id,
            after_sequence,
            limit,
        )
        return resolve_events(execution_id, [(row[0], row[1], row[2], row[3]) for row in rows])

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        """Returns the execution's summary row, or None."""
        if not storable(execution_id):
            return None
        rows = await self._fetch(f"SELECT {RECORD_COLUMNS} FROM executions WHERE execution_id = $1", execution_id)
        return record_from_row(rows[0]) if rows else None

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
        clauses: list[str] = []
        params: list[object] = []

        def param(value: object) -> str:
            params.append(value)
            return f"${len(params)}"

        if query.user_id:
            clauses.append(f"user_id = {param(query.user_id)}")
        if query.states:
            clauses.append(f"state = ANY({param(list(query.states))}::int[])")
        if query.workflow_type:
            clauses.append(f"workflow_type = {param(query.workflow_type)}")
        if query.page_token:
            created_at, execution_id = decode_page_token(query.page_token)
            clauses.append(f"(created_at, execution_id) < ({param(from_micros(created_at))}, {param(execution_id)})")
        size = min(query.page_size or _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE)
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        # One row more than the page tells whether another page follows.
        limit = param(size + 1)
        rows = await self._fetch(
            f"SELECT {RECORD_COLUMNS} FROM executions {where}"
            f" ORDER BY created_at DESC, execution_id DESC LIMIT {limit}",
            *params,
        )
        records = [record_from_row(row) for row in rows[:size]]
        token = ""
        if len(rows) > size:
            last = records[-1]
            token = encode_page_token(to_micros(last.created_at), last.execution_id)
        return ExecutionPage(records=records, next_page_token=token)

    async def list_audit(self, query: AuditQuery) -> AuditPage:
        """Returns a page of the audit trail, newest first. A page_size of 0 means 100.

        Raises:
            InvalidPageTokenError: the token is malformed.
            ValueError: a page_size outside 0-1000.
        """
        if not 0 <= query.page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be from 0 to {_MAX_PAGE_SIZE}, not {query.page_size}")
        after = decode_audit_token(query.page_token) if query.page_token else None
        return await list_audit(self._live_pool(), query, after)

    async def delete_user_data(self, user_id: str, note: DeletionNote | None = None) -> Deletion:
        """Deletes the user's executions, their events and audit entries, in one transaction.

        Raises:
            UnfinishedExecutionsError: an execution of the user is not terminal; nothing is deleted.
            ValueError: the note's time is naive.
        """
        if note is not None:
            utc(note.recorded_at)
        return await delete_user(self._live_pool(), user_id, note)

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> Deletion:
        """Deletes up to `limit` terminal executions last updated before `cutoff` (retention).

        Replicas may sweep at once: each takes rows no other holds, and none waits.

        Raises:
            ValueError: cutoff is naive, or limit is below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        return await expire(self._live_pool(), utc(cutoff), limit)

    async def unfinished_executions(self) -> list[UnfinishedExecution]:
        """Returns the executions not in a terminal state, oldest first, with their parked marks."""
        rows = await self._fetch(_UNFINISHED_QUERY)
        return [
            UnfinishedExecution(execution_id=row[0], parked=row[1], wake_at=row[2] if row[1] else None, waiting=row[3])
            for row in rows
        ]

    # ---- leases (ReplicaStore): single statements on the read pool, outside the group commit ---

    async def claim(
        self, lease: Lease, now: datetime, limit: int, execution_ids: Sequence[str] = (), *, ended: bool = False
    ) -> list[str]:
        """Takes up to `limit` free, due, unfinished executions, oldest first, in one statement.

        Free: no owner, this owner, or a lease lapsed at `now`. Due: not parked, or parked with
        wake_at <= `now`. With `execution_ids`: those of them that are free and unfinished, due or
        not; with `ended` too, ended ones among them (not quarantined ones): a rerun's. Rows
        another transaction has locked (a replica's claim or commit) are skipped, so two replicas
        claiming at once take disjoint sets.

        Returns:
            The ids now held under `lease`, oldest first.
        """
        if limit <= 0:
            return []
        until, at = utc(lease.until), utc(now)
        if execution_ids:
            named = CLAIM_NAMED_ANY if ended else CLAIM_NAMED
            rows = await self._fetch(named, lease.owner, until, at, limit, list(execution_ids))
        else:
            rows = await self._fetch(CLAIM, lease.owner, until, at, limit)
        return [row[0] for row in rows]

    async def renew(self, lease: Lease, execution_ids: Sequence[str]) -> set[str]:
        """Extends `lease` to lease.until on those of `execution_ids` its owner still holds; returns them."""
        if not execution_ids:
            return set()
        rows = await self._fetch(RENEW, lease.owner, utc(lease.until), list(execution_ids))
        return {row[0] for row in rows}

    async def release(self, owner: str, execution_ids: Sequence[str]) -> None:
        """Frees the executions `owner` holds among `execution_ids` (a draining replica's)."""
        if execution_ids:
            await self._fetch(RELEASE, owner, list(execution_ids))

    async def want(self, execution_id: str, owner: str) -> None:
        """Asks the replica that holds the execution to hand it over to `owner`."""
        await self._fetch(WANT, execution_id, owner)

    async def wanted(self, owner: str) -> list[str]:
        """The executions `owner` holds that another replica asked for."""
        return [row[0] for row in await self._fetch(WANTED, owner)]

    # ---- the callback outbox (CallbackOutbox): single statements on the pool, like leases --------

    async def claim_callbacks(self, owner: str, now: datetime, until: datetime, limit: int) -> list[PendingCallback]:
        """Claims up to `limit` due rows nobody holds, earliest due first, for `owner` until `until`;
        rows another replica's claim has locked are skipped."""
        if limit <= 0:
            return []
        rows = await self._fetch(outbox.CLAIM, owner, utc(now), utc(until), limit)
        return sorted((outbox.pending_from_row(row) for row in rows), key=lambda p: (p.next_attempt_at, p.delivery_id))

    async def reschedule_callback(
        self, owner: str, delivery_id: str, attempts: int, next_attempt_at: datetime, until: datetime, error: str
    ) -> bool:
        """Records a failed attempt on a row `owner` holds; False when it no longer does."""
        rows = await self._fetch(
            outbox.RESCHEDULE, owner, delivery_id, attempts, utc(next_attempt_at), utc(until), storable_text(error)
        )
        return bool(rows)

    async def renew_callbacks(self, owner: str, delivery_ids: Sequence[str], until: datetime) -> set[str]:
        """Extends `owner`'s claims among `delivery_ids` to `until`; returns those still held."""
        if not delivery_ids:
            return set()
        return {row[0] for row in await self._fetch(outbox.RENEW, owner, list(delivery_ids), utc(until))}

    async def release_callbacks(self, owner: str | None, delivery_ids: Sequence[str] = ()) -> int:
        """Frees claims: `owner`'s among `delivery_ids` (all when empty), or every claim (owner None)."""
        query, args = outbox.release(owner, list(delivery_ids))
        return len(await self._fetch(query, *args))

    async def finish_callback(self, owner: str, callback: PendingCallback, event: execution_pb2.ExecutionEvent) -> None:
        """Appends the callback's outcome and deletes its row, only while `owner` holds it.

        Raises:
            CallbackClaimLostError: the row is gone or another process holds it.
            ExecutionNotFoundError: the execution is gone.
        """
        finishing = (outcome_delivery_id(event), owner)

        async def append(state: int) -> None:
            await self._append(None, callback.execution_id, [event], state, finishing)

        await append_outcome(self.get_execution, append, callback, event)

    async def pending_callbacks(self, execution_id: str = "") -> list[PendingCallback]:
        """The outbox rows (of one execution, or all), earliest due first."""
        if execution_id:
            query = f"SELECT {outbox.COLUMNS} FROM callback_outbox WHERE execution_id = $1"
            rows = await self._fetch(query + " ORDER BY next_attempt_at, delivery_id", execution_id)
        else:
            rows = await self._fetch(
                f"SELECT {outbox.COLUMNS} FROM callback_outbox ORDER BY next_attempt_at, delivery_id"
            )
        return [outbox.pending_from_row(row) for row in rows]

    # ---- the workflow registry (WorkflowStore): single statements on the pool -----------------------

    async def insert_workflow(self, row: WorkflowRow) -> WorkflowRow:
        """Stores a registered version unless its key is taken; returns the stored row."""
        async with self._live_pool().acquire() as conn, conn.transaction():
            await conn.execute(workflow_rows.PG_UPSERT, *workflow_rows.pg_args(row))
            stored = await conn.fetchrow(workflow_rows.PG_SELECT_ONE, row.workflow_type, row.version)
        return workflow_rows.from_row(stored, micros=False)

    async def list_workflows(self, workflow_type: str = "") -> list[WorkflowRow]:
        """Every registered version (of one type, or all)."""
        columns = workflow_rows.COLUMNS
        if workflow_type:
            query = f"SELECT {columns} FROM workflow_definitions WHERE workflow_type = $1"
            rows = await self._fetch(query, workflow_type)
        else:
            rows = await self._fetch(f"SELECT {columns} FROM workflow_definitions")
        return [workflow_rows.from_row(row, micros=False) for row in rows]

    async def deprecate_workflow(
        self, workflow_type: str, version: str, when: datetime, reason: str
    ) -> WorkflowRow | None:
        """Deprecates a version (once); returns its row, or None when there is none."""
        async with self._live_pool().acquire() as conn, conn.transaction():
            await conn.execute(workflow_rows.PG_DEPRECATE, utc(when), storable_text(reason), workflow_type, version)
            stored = await conn.fetchrow(workflow_rows.PG_SELECT_ONE, workflow_type, version)
        return None if stored is None else workflow_rows.from_row(stored, micros=False)

    async def count_by_state(self) -> dict[int, int]:
        """Returns the number of executions in each ExecutionState (states with none omitted)."""
        rows = await self._fetch("SELECT state, count(*) FROM executions GROUP BY state")
        return {row[0]: row[1] for row in rows}


def _event_row(event: execution_pb2.ExecutionEvent, threshold: int) -> EventRow:
    payload, blob = split(event, threshold)
    return (event.sequence, event_time(event), event.WhichOneof("kind") or "", payload, blob)
