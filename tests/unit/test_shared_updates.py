"""The updates shared among watches: made once per event, and bounded in count and bytes."""

from __future__ import annotations

from baton.v1 import orchestrator_pb2 as O

from server.api import shared_updates
from server.api.shared_updates import SharedUpdates
from server.engine import fold
from tests.unit.engine_support import started_event


def _state(execution_id: str) -> tuple[object, object]:
    event = started_event()
    return event, fold(execution_id, [event])


def test_an_events_update_is_made_once_and_is_the_full_update() -> None:
    shared = SharedUpdates()
    event, state = _state("ex")
    first = shared.update(event, state)  # type: ignore[arg-type]
    assert shared.update(event, state) is first  # type: ignore[arg-type]
    update = O.ExecutionUpdate.FromString(first.data)
    assert update.sequence == first.sequence == 1
    assert update.event == event and update.status.execution_id == "ex"


def test_the_kept_bytes_stay_within_the_bound_least_recently_used_dropped_first() -> None:
    one = len(SharedUpdates().update(*_state("e000")).data)  # type: ignore[arg-type]
    shared = SharedUpdates(entries=1000, max_bytes=one * 64)  # room for 64 (one is just a 64th)
    made = [shared.update(*_state(f"e{i:03}")) for i in range(100)]  # type: ignore[arg-type]
    assert shared._bytes <= shared.max_bytes and len(shared._updates) == 64
    assert shared.update(*_state("e099")) is made[99]  # type: ignore[arg-type]
    assert shared.update(*_state("e000")) is not made[0]  # type: ignore[arg-type]


def test_an_update_over_a_64th_of_the_bound_is_not_kept() -> None:
    event, state = _state("ex")
    shared = SharedUpdates(max_bytes=64 * 10)  # any update is over 10 bytes
    assert shared.update(event, state) is not shared.update(event, state)  # type: ignore[arg-type]
    assert shared._bytes == 0 and not shared._updates


def test_forgetting_an_execution_drops_its_statuses_and_bytes(monkeypatch: object) -> None:
    shared = SharedUpdates()
    for name in ("gone", "kept"):
        event, state = _state(name)
        shared.update(event, state)  # type: ignore[arg-type]
    shared.forget(["gone"])
    assert [key[0] for key in shared._updates] == ["kept"] and [key[0] for key in shared._statuses] == ["kept"]
    assert shared._bytes == len(next(iter(shared._updates.values())).data)
    assert shared_updates.MAX_BYTES >= 1024 * 1024
