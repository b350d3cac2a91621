"""What both stores take from events for the callback outbox (server/store/base.py, CallbackOutbox)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from baton.v1 import execution_pb2

from server.store.base import ExecutionNotFoundError, ExecutionRecord, PendingCallback, SequenceConflictError


@dataclass(frozen=True)
class ScheduledRow:
    """An outbox row to insert, from a callback_scheduled event (the append's execution gives
    the execution_id and user_id)."""

    delivery_id: str
    url: str
    sequence: int
    deadline: datetime
    due: datetime
    """The event's time: the first attempt is due at once."""


def scheduled_rows(events: Sequence[execution_pb2.ExecutionEvent]) -> list[ScheduledRow]:
    """The outbox rows the append of `events` inserts (one per callback_scheduled event)."""
    rows: list[ScheduledRow] = []
    for event in events:
        if event.WhichOneof("kind") != "callback_scheduled":
            continue
        scheduled = event.callback_scheduled
        due = event.time.ToDatetime(tzinfo=UTC) if event.HasField("time") else datetime.now(UTC)
        deadline = scheduled.deadline.ToDatetime(tzinfo=UTC) if scheduled.HasField("deadline") else due
        rows.append(ScheduledRow(scheduled.delivery_id, scheduled.callback_url, event.sequence, deadline, due))
    return rows


def outcome_delivery_id(event: execution_pb2.ExecutionEvent) -> str:
    """The delivery an outcome event (callback_delivered or callback_failed) ends.

    Raises:
        ValueError: the event is not a callback outcome.
    """
    kind = event.WhichOneof("kind")
    if kind not in ("callback_delivered", "callback_failed"):
        raise ValueError(f"a callback's outcome event must be callback_delivered or callback_failed, not {kind}")
    delivery_id: str = getattr(event, kind).delivery_id
    return delivery_id


FINISH_TRIES = 8
"""Tries of an outcome's append that meets a concurrent append (another event of the execution
committed between reading its last sequence and the write)."""


async def append_outcome(
    get_execution: Callable[[str], Awaitable[ExecutionRecord | None]],
    append: Callable[[int], Awaitable[None]],
    callback: PendingCallback,
    event: execution_pb2.ExecutionEvent,
) -> None:
    """Appends a callback's outcome event after the execution's last event, again on a conflict.

    Args:
        get_execution: the store's get_execution.
        append: appends `event` (whose sequence is set) with the given state, deleting the row.
        callback: the outbox row.
        event: the outcome event; its sequence is set here.

    Raises:
        ExecutionNotFoundError: the execution is gone.
        SequenceConflictError: every try met a concurrent append.
        CallbackClaimLostError: as CallbackOutbox.finish_callback.
    """
    for _ in range(FINISH_TRIES):
        record = await get_execution(callback.execution_id)
        if record is None:
            raise ExecutionNotFoundError(callback.execution_id)
        event.sequence = record.last_sequence + 1
        try:
            await append(record.state)
        except SequenceConflictError:
            continue
        return
    raise SequenceConflictError(f"execution {callback.execution_id}: the callback's outcome kept meeting other appends")
