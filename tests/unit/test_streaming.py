"""The watch stream's fan-out (server/streaming.py): every sequence once, in order, whatever the commits repeat."""

from __future__ import annotations

from collections.abc import AsyncIterator

from baton.v1 import execution_pb2 as E

from server.engine import ExecutionState
from server.store.base import NewExecution
from server.streaming import ExecutionHub
from tests.unit.engine_support import plan, step
from tests.unit.fakes import START
from tests.unit.memory_store import MemoryStore
from tests.unit.test_fold import History, started, succeeded

EXECUTION = "ex"


class CountingStore(MemoryStore):
    """A memory store that counts the reads of histories (a watcher's only cost to the store)."""

    def __init__(self) -> None:
        super().__init__()
        self.reads = 0

    async def read_events(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[E.ExecutionEvent]:
        self.reads += 1
        return await super().read_events(execution_id, after_sequence, limit)


def _history() -> list[E.ExecutionEvent]:
    """started, A started, A succeeded, completed: sequences 1 to 4."""
    h = History(plan(step("A")))
    h.add("step_started", started("A")).add("step_succeeded", succeeded("A"))
    h.add("execution_completed", E.ExecutionCompleted())
    return h.events


async def _store_with(events: list[E.ExecutionEvent]) -> CountingStore:
    store = CountingStore()
    new = NewExecution(
        execution_id=EXECUTION,
        user_id="u1",
        workflow_type="test",
        plan_id="plan-1",
        request_id="",
        priority=0,
        created_at=START,
    )
    await store.create_execution(new, events[0])
    for event in events[1:]:
        await store.append(EXECUTION, [event], E.EXECUTION_STATE_RUNNING)
    return store


async def _rest(watch: AsyncIterator[tuple[E.ExecutionEvent, ExecutionState]]) -> list[int]:
    return [event.sequence async for event, _ in watch]


async def test_events_delivered_twice_are_yielded_once_in_order_without_another_store_read() -> None:
    events = _history()
    store = await _store_with(events[:2])
    hub = ExecutionHub(store)
    watch = hub.watch(EXECUTION)
    seen = [(await anext(watch))[0].sequence, (await anext(watch))[0].sequence]
    assert seen == [1, 2]
    assert store.reads == 1

    # Event 2 was committed while the history was read: it comes again through the commit listener.
    hub.on_commit(EXECUTION, [events[1]])
    await store.append(EXECUTION, [events[2]], E.EXECUTION_STATE_RUNNING)
    hub.on_commit(EXECUTION, [events[2]])  # pushed twice
    await store.append(EXECUTION, [events[3]], E.EXECUTION_STATE_COMPLETED)

    assert [*seen, *await _rest(watch)] == [1, 2, 3, 4]
    # Duplicates are dropped where they arrive; only a real gap sends the watcher back to the store.
    assert store.reads == 1
    assert hub.watchers == 0


async def test_an_event_that_arrives_before_the_one_it_follows_is_yielded_after_it() -> None:
    events = _history()
    store = await _store_with(events[:2])
    hub = ExecutionHub(store)
    watch = hub.watch(EXECUTION)
    assert [(await anext(watch))[0].sequence, (await anext(watch))[0].sequence] == [1, 2]

    # Stored in order (unannounced), then announced out of order: 3 is missing when 4 arrives, so the
    # watcher reads it from the store, and the late 3 and the repeated 4 are dropped.
    for event in events[2:]:
        store.inject_raw_event(EXECUTION, event.SerializeToString())
    hub.on_commit(EXECUTION, [events[3], events[2], events[3]])

    assert await _rest(watch) == [3, 4]


async def test_a_watch_after_a_sequence_yields_only_the_later_events_once_each() -> None:
    events = _history()
    store = await _store_with(events)
    hub = ExecutionHub(store)
    hub.on_commit(EXECUTION, events[2:])  # nobody watches yet: dropped

    statuses = [(event.sequence, state.status) async for event, state in hub.watch(EXECUTION, after_sequence=2)]

    assert statuses == [(3, E.EXECUTION_STATE_RUNNING), (4, E.EXECUTION_STATE_COMPLETED)]


async def test_a_watcher_whose_buffer_passes_its_bytes_drops_it_and_catches_up_from_the_store() -> None:
    events = _history()
    store = await _store_with(events[:2])
    hub = ExecutionHub(store, buffer_bytes=events[2].ByteSize() + 1)
    watch = hub.watch(EXECUTION)
    assert [(await anext(watch))[0].sequence, (await anext(watch))[0].sequence] == [1, 2]
    reads = store.reads

    # Two events in few updates but more bytes than the buffer holds: neither stays in memory.
    for event in events[2:]:
        await store.append(EXECUTION, [event], E.EXECUTION_STATE_RUNNING)
    hub.on_commit(EXECUTION, [events[2]])
    hub.on_commit(EXECUTION, [events[3]])
    (subscription,) = hub._subscriptions[EXECUTION]
    assert subscription.overflowed and not subscription.buffer and subscription.buffered_bytes == 0

    assert await _rest(watch) == [3, 4]
    assert store.reads == reads + 1


async def test_a_long_history_is_read_in_pages_and_each_event_yielded_once() -> None:
    h = History(plan(*(step(f"S{n}") for n in range(75))))
    for n in range(75):
        h.add("step_started", started(f"S{n}")).add("step_succeeded", succeeded(f"S{n}"))
    store = await _store_with(h.events[:150])
    hub = ExecutionHub(store, heartbeat=0.05)
    watch = hub.watch(EXECUTION)
    seen = [(await anext(watch))[0].sequence for _ in range(150)]

    assert seen == list(range(1, 151))
    assert store.reads == 3  # 64 + 64 + 22 events, never the whole history at once
    await watch.aclose()
    assert hub.watchers == 0
