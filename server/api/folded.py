"""Folded states of recently read executions, advanced by the tail of their history.

GetExecution and GetStepOutput used to read and fold an execution's whole history on every call
(a 5,000-item map step: 10,000 events, ~0.2 s a call). `FoldedStates` keeps the state folded
for a call and, on the next one, reads only the events after it and applies them.

Rules:
1. What a caller gets is the fold of the committed history, as before: the tail is read from the
   store, never taken from the engine's in-memory state (which may hold events not yet durable).
2. One lock per execution: two calls never apply the same tail twice. A state is returned to be
   used before the caller's next await (rendered, read), not kept.
3. Anything that fails while reading or applying drops the entry (a half-advanced state is never
   kept) and is raised to the caller, who quarantines as before.
4. Memory is bounded: at most `max_entries` states and `max_bytes` of their histories' stored size
   (a state larger than a quarter of that is not kept), least recently used out; `forget` drops
   deleted executions.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field

from server.engine import ExecutionState, apply, fold
from server.store.base import ExecutionNotFoundError, ExecutionStore

MAX_ENTRIES = 1024
"""Executions whose folded state is kept."""
MAX_BYTES = 64 * 1024 * 1024
"""Stored history bytes (ExecutionState.storage_bytes) of the kept states, in all."""


@dataclass
class _Entry:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    state: ExecutionState | None = None
    size: int = 0


class FoldedStates:
    """The folded states of recently read executions (see the module docstring)."""

    def __init__(self, store: ExecutionStore, *, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self.store = store
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0

    async def state(self, execution_id: str) -> ExecutionState:
        """The execution's state after its last committed event.

        Raises:
            ExecutionNotFoundError: no such execution (or no events).
            CorruptHistoryError: a stored event cannot be decoded.
            Exception: whatever the fold raises on the stored history.
        """
        entry = self._entries.get(execution_id)
        if entry is None:
            entry = self._entries[execution_id] = _Entry()
        self._entries.move_to_end(execution_id)
        async with entry.lock:
            try:
                state = await self._advanced(execution_id, entry.state)
            except BaseException:
                self._drop(execution_id, entry)
                raise
            if self._entries.get(execution_id) is entry:  # not dropped (forgotten, evicted) meanwhile
                self._bytes += state.storage_bytes - entry.size
                entry.state, entry.size = state, state.storage_bytes
                if entry.size > self.max_bytes // 4:
                    self._drop(execution_id, entry)
                self._evict()
            return state

    async def _advanced(self, execution_id: str, state: ExecutionState | None) -> ExecutionState:
        if state is None:
            events = await self.store.read_events(execution_id)
            if not events:
                raise ExecutionNotFoundError(execution_id)
            return fold(execution_id, events)
        for event in await self.store.read_events(execution_id, after_sequence=state.last_sequence):
            apply(state, event)
        return state

    def forget(self, execution_ids: Iterable[str]) -> None:
        """Drops the states of deleted executions."""
        for execution_id in execution_ids:
            entry = self._entries.get(execution_id)
            if entry is not None:
                self._drop(execution_id, entry)

    def _drop(self, execution_id: str, entry: _Entry) -> None:
        if self._entries.get(execution_id) is entry:
            del self._entries[execution_id]
            self._bytes -= entry.size
        entry.state, entry.size = None, 0

    def _evict(self) -> None:
        while self._entries and (len(self._entries) > self.max_entries or self._bytes > self.max_bytes):
            execution_id, entry = next(iter(self._entries.items()))
            self._drop(execution_id, entry)

    @property
    def kept(self) -> int:
        """How many states are kept (for tests)."""
        return sum(1 for entry in self._entries.values() if entry.state is not None)


__all__ = ["MAX_BYTES", "MAX_ENTRIES", "FoldedStates"]
