"""The audit trail's rows, the same for every store: which events are entries, and what they say."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from baton.v1 import execution_pb2

from server.store._keys import storable_text
from server.store._page_tokens import encode_audit_token
from server.store.base import AuditPage, AuditRecord, Deletion

#: Event kinds whose body carries the reason the client gave.
_REASONED = frozenset(
    {
        "execution_cancelled",
        "execution_unwinding",
        "execution_paused",
        "execution_resumed",
        "execution_rerun",
        "signal_received",
    }
)

#: (subject, action, reason, serialized Actor) of one entry.
AuditFields = tuple[str, str, str, bytes]


def audit_fields(event: execution_pb2.ExecutionEvent) -> AuditFields | None:
    """What the audit index keeps of an event a client caused; None for the orchestrator's own.

    Computed when the event is handed to the store (as its payload is serialized then), so a
    caller's later change to the event changes nothing stored.
    """
    if not event.HasField("actor"):
        return None
    kind = event.WhichOneof("kind") or ""
    reason = getattr(event, kind).reason if kind in _REASONED else ""
    # The index's text columns cannot hold NUL on PostgreSQL (the event keeps the text as sent).
    return storable_text(event.actor.subject), kind, storable_text(reason), event.actor.SerializeToString()


def deletion_reason(deletion: Deletion) -> str:
    """The reason of a USER_DATA_DELETED entry: what went."""
    return f"deleted {len(deletion.execution_ids)} executions and {deletion.events} events"


def audit_page(rows: Sequence[Any], size: int, time_of: Callable[[Any], datetime]) -> AuditPage:
    """A page from audit rows read one past `size`, in the column order both stores select.

    Columns: audit_no, execution_id, user_id, sequence, recorded_at (as the store keeps it:
    `time_of` makes it a datetime), action, reason, actor.
    """
    records = [
        AuditRecord(
            execution_id=row[1],
            user_id=row[2],
            sequence=row[3],
            recorded_at=time_of(row[4]),
            action=row[5],
            reason=row[6],
            actor=bytes(row[7]),
            audit_no=row[0],
        )
        for row in rows[:size]
    ]
    token = encode_audit_token(rows[size - 1][0]) if len(rows) > size else ""
    return AuditPage(records=records, next_page_token=token)
