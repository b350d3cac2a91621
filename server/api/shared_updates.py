"""What the watches of one event share: its rendered status and, for the full view, its bytes.

The fold is deterministic, so every watch's state after an event is the same, and so is the
status rendered from it. With many watches on one execution (a dashboard, the web view, a CLI
per user), rendering and serializing per stream was most of a watch's cost; here each event's
status is rendered once and, when the update is the full view's with nothing per stream in it,
serialized once: the streams write the same bytes.

Bounded: at most `entries` events are kept, and at most `max_bytes` of serialized updates, the
least recently used dropped first; statuses of executions whose history is over `max_history`
bytes, terminal statuses (they carry every result) and updates over 1/64 of `max_bytes` are not
kept at all.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from baton.v1 import execution_pb2, orchestrator_pb2

from server.engine.state import ExecutionState
from server.engine.status import render

ENTRIES = 4096
MAX_BYTES = 32 * 1024 * 1024
MAX_HISTORY = 256 * 1024


@dataclass(frozen=True, slots=True)
class SerializedUpdate:
    """An ExecutionUpdate already serialized: what a stream writes as it is."""

    sequence: int
    data: bytes


class SharedUpdates:
    """The statuses and update bytes of recent events, shared among their watches."""

    def __init__(self, entries: int = ENTRIES, max_bytes: int = MAX_BYTES, max_history: int = MAX_HISTORY) -> None:
        self.entries = entries
        self.max_bytes = max_bytes
        self.max_history = max_history
        self._statuses: OrderedDict[tuple[str, int], execution_pb2.ExecutionStatus] = OrderedDict()
        self._updates: OrderedDict[tuple[str, int], SerializedUpdate] = OrderedDict()
        self._bytes = 0

    def status(self, state: ExecutionState) -> execution_pb2.ExecutionStatus:
        """The status after the state's last event (not to be changed: it is shared).

        Results (every step's output) ride on the terminal update only, which is not kept:
        resending them with every event would make a watch quadratic in the outputs' size.
        """
        if state.terminal or state.storage_bytes > self.max_history:
            return render(state, with_results=state.terminal)
        key = (state.execution_id, state.last_sequence)
        status = self._statuses.get(key)
        if status is None:
            status = render(state, with_results=False)
            self._statuses[key] = status
            if len(self._statuses) > self.entries:
                self._statuses.popitem(last=False)
        return status

    def update(self, event: execution_pb2.ExecutionEvent, state: ExecutionState) -> SerializedUpdate:
        """The full view's update for `event` (the state's last), serialized once for every watch."""
        key = (state.execution_id, state.last_sequence)
        shared = self._updates.get(key)
        if shared is not None:
            return shared
        update = orchestrator_pb2.ExecutionUpdate(sequence=event.sequence, event=event)
        update.status.CopyFrom(self.status(state))
        shared = SerializedUpdate(event.sequence, update.SerializeToString())
        if len(shared.data) > self.max_bytes // 64:
            return shared  # large (a terminal update with big results): not kept
        self._updates[key] = shared
        self._bytes += len(shared.data)
        while len(self._updates) > self.entries or self._bytes > self.max_bytes:
            _, dropped = self._updates.popitem(last=False)
            self._bytes -= len(dropped.data)
        return shared

    def forget(self, execution_ids: list[str]) -> None:
        """Drops what is kept of deleted executions."""
        gone = set(execution_ids)
        for key in [key for key in self._statuses if key[0] in gone]:
            del self._statuses[key]
        for key in [key for key in self._updates if key[0] in gone]:
            self._bytes -= len(self._updates.pop(key).data)
