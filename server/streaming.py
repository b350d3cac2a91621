"""Per-execution fan-out of committed events to watchers (WatchExecution).

The store calls `ExecutionHub.on_commit` after every commit; the hub only appends to each
subscriber's bounded buffer and wakes it, so a slow watcher never slows the engine or other
watchers. A subscriber whose buffer overflows drops its buffer and catches up from the store,
so no update is ever lost silently: every watcher sees every sequence, in order, once.

What a watcher holds is bounded: its buffer in events and in bytes, and the history it reads
(at the start, or to catch up) in pages of `HISTORY_PAGE` events, each folded and yielded
before the next is read. A watcher whose client does not read stops being drawn (see
server.api.handlers), so it holds one page, its fold and one update.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence

from baton.v1 import execution_pb2

from server.engine import ExecutionState, Plan, apply, fold
from server.store.base import CorruptHistoryError, ExecutionNotFoundError, ExecutionStore

DEFAULT_BUFFER = 1024
"""Events a watcher may lag behind before it falls back to reading the store."""
DEFAULT_BUFFER_BYTES = 8 * 1024 * 1024
"""Serialized bytes of events a watcher may lag behind before it falls back to reading the store."""
HISTORY_PAGE = 64
"""Events read from the store at a time, for a watch's history or its catching up."""
DEFAULT_HEARTBEAT = 15.0
"""Seconds a watch may go without an event before it is sent a heartbeat; well under the idle
timeouts of common proxies (Envoy's stream idle timeout is 5 minutes, many load balancers 60 s)."""


class WatchInterruptedError(Exception):
    """The hub closed (the server is shutting down) before the watched execution ended.

    Attributes:
        execution_id: the execution.
        resume_after: the after_sequence that resumes the watch without a gap or a repeat.
    """

    def __init__(self, execution_id: str, resume_after: int) -> None:
        super().__init__(
            f"the server is shutting down; resume the watch of execution {execution_id} "
            f"with after_sequence={resume_after}"
        )
        self.execution_id = execution_id
        self.resume_after = resume_after


class HistoryUnreadableError(Exception):
    """A watched execution's history cannot be read or folded; the watch cannot go on.

    Attributes:
        execution_id: the execution.
        cause: the CorruptHistoryError of the store, or what the fold raised.
    """

    def __init__(self, execution_id: str, cause: Exception) -> None:
        super().__init__(f"execution {execution_id}: history unreadable: {cause}")
        self.execution_id = execution_id
        self.cause = cause


class _Subscription:
    def __init__(self, limit: int, limit_bytes: int) -> None:
        self.limit = limit
        self.limit_bytes = limit_bytes
        self.buffer: deque[execution_pb2.ExecutionEvent] = deque()
        self.buffered_bytes = 0
        self.overflowed = False
        self.gone = False
        """The execution was deleted: the watch ends NOT_FOUND."""
        self.nudged = False
        """Something not recorded as an event changed (a wait for agent capacity): yield the state."""
        self.wakeup = asyncio.Event()

    def push(self, events: Sequence[execution_pb2.ExecutionEvent], size: int) -> None:
        if not self.overflowed:
            if len(self.buffer) + len(events) > self.limit or self.buffered_bytes + size > self.limit_bytes:
                self.overflowed = True
                self.buffer.clear()
                self.buffered_bytes = 0
            else:
                self.buffer.extend(events)
                self.buffered_bytes += size
        self.wakeup.set()

    def take(self) -> list[execution_pb2.ExecutionEvent]:
        taken = list(self.buffer)
        self.buffer.clear()
        self.buffered_bytes = 0
        return taken


class ExecutionHub:
    """Watchers of executions, fed by the store's commits."""

    def __init__(
        self,
        store: ExecutionStore,
        *,
        buffer: int = DEFAULT_BUFFER,
        buffer_bytes: int = DEFAULT_BUFFER_BYTES,
        plans: Callable[[str], Plan | None] | None = None,
        heartbeat: float = DEFAULT_HEARTBEAT,
    ) -> None:
        """Registers the hub as the store's commit listener.

        Args:
            store: the store whose commits feed the watchers.
            buffer: events a watcher may lag behind before it reads from the store instead.
            buffer_bytes: the same in serialized bytes.
            plans: the parsed plan of a running execution, if known, so watchers need not rebuild it.
            heartbeat: seconds without an event after which a watch yields a heartbeat.
        """
        self.store = store
        self.buffer = buffer
        self.buffer_bytes = buffer_bytes
        self.heartbeat = heartbeat
        self.plans = plans
        self._subscriptions: dict[str, set[_Subscription]] = {}
        self._closed = asyncio.Event()
        store.add_commit_listener(self.on_commit)

    @property
    def watchers(self) -> int:
        """The number of open watches."""
        return sum(len(s) for s in self._subscriptions.values())

    def on_commit(self, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent]) -> None:
        """Hands newly committed events to the execution's watchers (never blocks)."""
        subscriptions = self._subscriptions.get(execution_id)
        if subscriptions:
            size = sum(event.ByteSize() for event in events)
            for subscription in subscriptions:
                subscription.push(events, size)

    def nudge(self, execution_id: str) -> None:
        """Makes the execution's watches yield its state now, without an event (never blocks):
        something they show that is not recorded changed (server.api.capacity, rule 2)."""
        for subscription in self._subscriptions.get(execution_id, ()):
            subscription.nudged = True
            subscription.wakeup.set()

    def forget(self, execution_ids: Sequence[str]) -> None:
        """Ends the watches of deleted executions with ExecutionNotFoundError (never blocks).

        A finished execution's watch has ended already; this reaches the watch of one that was
        quarantined while its history looked unfinished, which would otherwise wait for ever.
        """
        for execution_id in execution_ids:
            for subscription in self._subscriptions.get(execution_id, ()):
                subscription.gone = True
                subscription.wakeup.set()

    def close(self) -> None:
        """Ends every watch (on shutdown) with WatchInterruptedError; watchers resume elsewhere."""
        self._closed.set()
        for subscriptions in self._subscriptions.values():
            for subscription in subscriptions:
                subscription.wakeup.set()

    async def watch(
        self, execution_id: str, after_sequence: int = 0
    ) -> AsyncIterator[tuple[execution_pb2.ExecutionEvent | None, ExecutionState]]:
        """Yields (event, state after it) for every event after `after_sequence`, then live ones.

        While no event comes for `heartbeat` seconds it yields (None, state): a heartbeat; so it
        does at once when nudged (`nudge`) with no event to yield. Ends after the terminal event.

        Raises:
            ExecutionNotFoundError: no such execution.
            HistoryUnreadableError: a stored event cannot be decoded, or an event cannot be folded.
            WatchInterruptedError: the hub closed before the execution ended.
        """
        subscription = _Subscription(self.buffer, self.buffer_bytes)
        # Subscribe before reading the history, so nothing committed in between is missed.
        self._subscriptions.setdefault(execution_id, set()).add(subscription)
        try:
            page = await self._read(execution_id, 0)
            if not page:
                raise ExecutionNotFoundError(execution_id)
            try:
                state = fold(execution_id, page[:1], self.plans(execution_id) if self.plans else None)
            except Exception as error:
                raise HistoryUnreadableError(execution_id, error) from error
            full = len(page) == HISTORY_PAGE
            # Events leave the page as they are yielded, so a stalled watch holds only the rest.
            rest = deque(page)
            del page
            first = rest.popleft()
            if after_sequence < 1:
                yield first, state
            del first
            while True:
                while rest:
                    event = rest.popleft()
                    _advance(state, event)
                    if event.sequence > after_sequence:
                        yield event, state
                if not full:
                    break
                more = await self._read(execution_id, state.last_sequence)
                full = len(more) == HISTORY_PAGE
                rest = deque(more)
                del more
            while not state.terminal and not self._closed.is_set():
                if not subscription.wakeup.is_set():
                    try:
                        # asyncio.timeout, not wait_for: no task per wake-up (one per event per watch).
                        async with asyncio.timeout(self.heartbeat):
                            await subscription.wakeup.wait()
                    except TimeoutError:
                        yield None, state
                        continue
                subscription.wakeup.clear()
                if subscription.gone:
                    raise ExecutionNotFoundError(execution_id)
                if subscription.nudged:
                    subscription.nudged = False
                    if not subscription.buffer and not subscription.overflowed:
                        yield None, state
                        continue
                if subscription.overflowed:
                    subscription.overflowed = False
                    async for event in self._catch_up(state):
                        if event.sequence > after_sequence:
                            yield event, state
                    continue
                for event in subscription.take():
                    if event.sequence <= state.last_sequence:
                        continue  # committed before the history read returned
                    if event.sequence != state.last_sequence + 1:
                        # Cannot happen with an ordered commit stream; heal from the store anyway.
                        async for missing in self._catch_up(state):
                            if missing.sequence > after_sequence:
                                yield missing, state
                        break
                    _advance(state, event)
                    if event.sequence > after_sequence:
                        yield event, state
            if not state.terminal:
                raise WatchInterruptedError(execution_id, max(after_sequence, state.last_sequence))
        finally:
            subscriptions = self._subscriptions.get(execution_id)
            if subscriptions is not None:
                subscriptions.discard(subscription)
                if not subscriptions:
                    del self._subscriptions[execution_id]

    async def _catch_up(self, state: ExecutionState) -> AsyncIterator[execution_pb2.ExecutionEvent]:
        """Applies and yields the stored events after the state's last, a page at a time."""
        while True:
            page = await self._read(state.execution_id, state.last_sequence)
            for event in page:
                _advance(state, event)
                yield event
            if len(page) < HISTORY_PAGE:
                return

    async def _read(self, execution_id: str, after_sequence: int) -> list[execution_pb2.ExecutionEvent]:
        try:
            return await self.store.read_events(execution_id, after_sequence=after_sequence, limit=HISTORY_PAGE)
        except CorruptHistoryError as error:
            raise HistoryUnreadableError(execution_id, error) from error


def _advance(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    """Applies one event; whatever the fold raises means the history cannot be folded."""
    try:
        apply(state, event)
    except Exception as error:
        raise HistoryUnreadableError(state.execution_id, error) from error
