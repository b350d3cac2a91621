"""Commit listeners across processes: this store's commits and other stores' commits, in order.

Rules:
1. Every commit of events is announced in its own transaction with ``NOTIFY baton_events``
   (``<instance> <execution_no> <first> <last>``, see _pg_rows). PostgreSQL delivers a
   notification only after its transaction commits, to every connection that LISTENs.
2. Commits of this store are handed to the listeners at once, from the writer. Announcements
   of other stores (another replica on the same database) make this store read the announced
   events and hand them over, so a watcher on any replica sees every commit.
3. Per execution the fan-out remembers the last sequence it has handed over, and hands over
   only the next one: each listener sees an execution's events once, in order, without gaps,
   from the first commit it sees on (as with one process, a listener registered mid-stream
   starts with the next commit). When a commit of this store follows announced events not yet
   read, it is held until they are read (its writer is acknowledged meanwhile; listeners are
   not called before the earlier events).
4. Reads of announced events are batched: all the executions waiting are read in one query.
5. The LISTEN connection is watched (a termination callback, a ping every few seconds) and
   reopened when lost; after reconnecting, the executions followed so far are checked against
   the database, and what was committed meanwhile is read and handed over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

import asyncpg
from baton.v1 import execution_pb2

from server.store._payloads import resolve
from server.store._pg_batch import Committed
from server.store._pg_rows import NOTIFY_CHANNEL, parse_notify_payload
from server.store.base import CommitListener

logger = logging.getLogger(__name__)

Events = Sequence[execution_pb2.ExecutionEvent]

# Executions whose last handed-over sequence is remembered. Forgetting an idle one costs
# nothing: its next commit is then handed over from its own first sequence, as for a new one.
_FOLLOWED = 16_384
# Seconds between pings of an idle LISTEN connection, and how long a ping may take.
_PING_S = 5.0
_PING_TIMEOUT_S = 5.0
# Backoff while the database cannot be reached.
_RETRY_S = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0)

_FETCH = """
SELECT w.no, x.execution_id, e.sequence, e.payload, e.payload_sha256, p.data
FROM unnest($1::bigint[], $2::bigint[], $3::bigint[]) AS w(no, after, upto)
JOIN executions AS x ON x.execution_no = w.no
JOIN events AS e ON e.execution_no = w.no AND e.sequence > w.after AND e.sequence <= w.upto
LEFT JOIN payloads AS p ON p.sha256 = e.payload_sha256
ORDER BY w.no, e.sequence
"""


@dataclass
class FanoutStats:
    """Counters of the cross-process fan-out (for tests and operators)."""

    notifications: int = 0
    """Announcements received from other stores."""
    fetches: int = 0
    """Queries that read announced events."""
    remote_events: int = 0
    """Events of other stores handed to the listeners."""
    reconnects: int = 0
    """Times the LISTEN connection was reopened after it was lost."""


@dataclass(slots=True)
class _Followed:
    execution_id: str
    """'' until a read has told it."""
    delivered: int
    """The last sequence handed to the listeners."""
    target: int
    """The last sequence known to be committed (>= delivered)."""
    held: list[Events] = field(default_factory=list)
    """This store's commits waiting for earlier events to be read."""


class CommitFanout:
    """Hands commits to the listeners, once each, in order per execution (rules 2-4)."""

    def __init__(self, pool: asyncpg.Pool, listeners: list[CommitListener]) -> None:
        self._pool = pool
        self._listeners = listeners
        self._followed: OrderedDict[int, _Followed] = OrderedDict()
        self._task: asyncio.Task[None] | None = None
        self.stats = FanoutStats()

    def local(self, committed: Committed) -> None:
        """Hands over a commit of this store (rule 3: held if earlier events are still unread)."""
        events = committed.events
        first = events[0].sequence
        followed = self._follow(committed.execution_no, committed.execution_id, first - 1)
        if followed.held or first > followed.delivered + 1:
            followed.held.append(events)
            followed.target = max(followed.target, first - 1)
            self._schedule()
            return
        self._hand_over(followed, events)

    def remote(self, execution_no: int, first: int, last: int) -> None:
        """Notes an announced commit of another store; its events are read soon."""
        self.stats.notifications += 1
        followed = self._follow(execution_no, "", first - 1)
        if last > followed.target:
            followed.target = last
            self._schedule()

    def heal(self, last_sequences: dict[int, int]) -> None:
        """Notes the committed last sequences of followed executions (after a reconnection)."""
        for execution_no, last in last_sequences.items():
            followed = self._followed.get(execution_no)
            if followed is not None and last > followed.target:
                followed.target = last
                self._schedule()

    def followed_numbers(self) -> list[int]:
        """The executions whose last handed-over sequence is remembered."""
        return list(self._followed)

    async def close(self) -> None:
        """Stops reading announced events."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _follow(self, execution_no: int, execution_id: str, start: int) -> _Followed:
        followed = self._followed.get(execution_no)
        if followed is None:
            followed = _Followed(execution_id, start, start)
            self._followed[execution_no] = followed
            if len(self._followed) > _FOLLOWED:
                self._forget_idle()
        else:
            self._followed.move_to_end(execution_no)
            if execution_id and not followed.execution_id:
                followed.execution_id = execution_id
        return followed

    def _forget_idle(self) -> None:
        # The least recently used first; never one with events still to hand over.
        excess = len(self._followed) - _FOLLOWED
        for execution_no in list(self._followed)[: excess * 2]:
            if excess <= 0:
                break
            followed = self._followed[execution_no]
            if followed.target <= followed.delivered and not followed.held:
                del self._followed[execution_no]
                excess -= 1

    def _hand_over(self, followed: _Followed, events: Events) -> None:
        if events and events[0].sequence <= followed.delivered:
            events = [event for event in events if event.sequence > followed.delivered]
        if not events:
            return
        followed.delivered = events[-1].sequence
        followed.target = max(followed.target, followed.delivered)
        for listener in self._listeners:
            try:
                listener(followed.execution_id, events)
            except Exception:
                logger.exception("commit listener failed for execution %s", followed.execution_id)

    def _schedule(self) -> None:
        # A running read loop looks for work again after each round.
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._read_loop(), name="baton-store-fanout")

    async def _read_loop(self) -> None:
        failures = 0
        try:
            while True:
                wanted = [(no, f.delivered, f.target) for no, f in self._followed.items() if f.target > f.delivered]
                if not wanted:
                    return
                try:
                    rows = await self._pool.fetch(_FETCH, *(list(column) for column in zip(*wanted, strict=True)))
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                    delay = _RETRY_S[min(failures, len(_RETRY_S) - 1)]
                    failures += 1
                    logger.warning("reading other replicas' commits failed (retry in %.2fs): %s", delay, error)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                self.stats.fetches += 1
                by_execution: dict[int, list[asyncpg.Record]] = {}
                for row in rows:
                    by_execution.setdefault(row[0], []).append(row)
                for execution_no, _, upto in wanted:
                    followed = self._followed.get(execution_no)
                    if followed is not None:
                        self._release(execution_no, followed, by_execution.get(execution_no, []), upto)
        finally:
            if self._task is asyncio.current_task():
                self._task = None

    def _release(self, execution_no: int, followed: _Followed, rows: list[asyncpg.Record], upto: int) -> None:
        """Hands over the events read up to `upto`, then this store's commits held behind them."""
        if rows:
            followed.execution_id = rows[0][1]
        events: list[execution_pb2.ExecutionEvent] = []
        for _, _, sequence, payload, digest, data in rows:
            if sequence <= followed.delivered:
                continue
            if sequence != followed.delivered + len(events) + 1:
                break
            try:
                event = execution_pb2.ExecutionEvent.FromString(payload)
                if digest is not None:
                    resolve(followed.execution_id, sequence, event, digest, data)
            except Exception as error:
                # The listeners see a gap instead; the watchers heal it from the store, which
                # reports the corrupt history to them.
                logger.warning("execution %s: event %d cannot be decoded: %s", followed.execution_id, sequence, error)
                break
            events.append(event)
        self.stats.remote_events += len(events)
        if followed.execution_id:
            self._hand_over(followed, events)
        if followed.delivered < upto:
            logger.warning(
                "execution %s (no %d): events %d-%d announced but not read; skipped",
                followed.execution_id,
                execution_no,
                followed.delivered + 1,
                upto,
            )
            followed.delivered = upto
        while followed.held and followed.held[0][0].sequence <= followed.delivered + 1:
            self._hand_over(followed, followed.held.pop(0))
        if followed.held:
            # More announced commits came in between (two writers of one execution): the next
            # round reads them.
            followed.target = max(followed.target, followed.held[0][0].sequence - 1)


class NotificationListener:
    """The LISTEN connection: announcements of other stores go to the fan-out (rules 1 and 5)."""

    def __init__(
        self, connect: Callable[[], Awaitable[asyncpg.Connection]], fanout: CommitFanout, instance: str
    ) -> None:
        self._connect = connect
        self._fanout = fanout
        self._instance = instance
        self._conn: asyncpg.Connection | None = None
        self._lost = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    @property
    def backend_pid(self) -> int | None:
        """The server process of the LISTEN connection (None while reconnecting)."""
        conn = self._conn
        return None if conn is None or conn.is_closed() else conn.get_server_pid()

    async def start(self) -> None:
        """Connects and LISTENs, then keeps the connection alive until close().

        Raises:
            OSError, asyncpg.PostgresError: the first connection failed.
        """
        await self._listen()
        self._task = asyncio.get_running_loop().create_task(self._supervise(), name="baton-store-listen")

    async def close(self) -> None:
        """Stops listening and closes the connection."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close(timeout=5)

    async def _listen(self, *, reconnecting: bool = False) -> None:
        conn = await self._connect()
        lost = asyncio.Event()
        try:
            conn.add_termination_listener(lambda _: lost.set())
            await conn.add_listener(NOTIFY_CHANNEL, self._on_notification)
            self._conn, self._lost = conn, lost
            if reconnecting:
                self._fanout.stats.reconnects += 1
            # After LISTEN: whatever committed before it shows here, whatever after it is announced.
            followed = self._fanout.followed_numbers()
            if followed:
                rows = await conn.fetch(
                    "SELECT execution_no, last_sequence FROM executions WHERE execution_no = ANY($1::bigint[])",
                    followed,
                )
                self._fanout.heal({row[0]: row[1] for row in rows})
        except BaseException:
            conn.terminate()
            raise

    def _on_notification(self, conn: object, pid: int, channel: str, payload: object) -> None:
        parsed = parse_notify_payload(str(payload))
        if parsed is None:
            logger.debug("ignored a notification on %s: %r", channel, payload)
            return
        instance, execution_no, first, last = parsed
        if instance != self._instance:
            self._fanout.remote(execution_no, first, last)

    async def _supervise(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._lost.wait(), _PING_S)
            except TimeoutError:
                conn = self._conn
                try:
                    if conn is not None:
                        await asyncio.wait_for(conn.fetchval("SELECT 1"), _PING_TIMEOUT_S)
                        continue
                except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                    logger.warning("the store's LISTEN connection does not answer: %s", error)
            logger.warning("the store's LISTEN connection was lost; reconnecting")
            if self._conn is not None:
                self._conn.terminate()
                self._conn = None
            await self._reconnect()

    async def _reconnect(self) -> None:
        attempt = 0
        while True:
            try:
                await self._listen(reconnecting=True)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                delay = _RETRY_S[min(attempt, len(_RETRY_S) - 1)]
                attempt += 1
                logger.warning("reconnecting the store's LISTEN connection failed (retry in %.2fs): %s", delay, error)
                await asyncio.sleep(delay)
                continue
            logger.info("the store's LISTEN connection is back")
            return
