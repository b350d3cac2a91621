"""Conversions between SQLite rows and the store's value types (times as UTC microseconds)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from baton.v1 import execution_pb2

from server.store.base import ExecutionRecord

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)

#: The executions columns in ExecutionRecord field order; every SELECT of a record uses it.
RECORD_COLUMNS = (
    "execution_id, user_id, workflow_type, plan_id, request_id, priority, state,"
    " created_at, updated_at, last_sequence, owner, lease_expires_at, quarantine_error, waiting"
)

#: A row of RECORD_COLUMNS.
RecordRow = tuple[str, str, str, str, str, int, int, int, int, int, str, int | None, str, int]


def to_micros(moment: datetime) -> int:
    """Returns a timezone-aware datetime as integer microseconds since the epoch.

    Raises:
        ValueError: the datetime is naive (its zone would be a guess).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} is naive; the store needs timezone-aware times")
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(micros: int) -> datetime:
    """Returns microseconds since the epoch as a UTC datetime."""
    return _EPOCH + timedelta(microseconds=micros)


def event_micros(event: execution_pb2.ExecutionEvent) -> int:
    """Returns the event's own time in microseconds since the epoch (0 when unset)."""
    moment = event.time
    return moment.seconds * 1_000_000 + moment.nanos // 1_000


def record_from_row(row: RecordRow) -> ExecutionRecord:
    """Builds a record from a row of RECORD_COLUMNS."""
    lease_expires_at = row[11]
    return ExecutionRecord(
        execution_id=row[0],
        user_id=row[1],
        workflow_type=row[2],
        plan_id=row[3],
        request_id=row[4],
        priority=row[5],
        state=row[6],
        created_at=from_micros(row[7]),
        updated_at=from_micros(row[8]),
        last_sequence=row[9],
        owner=row[10],
        lease_expires_at=None if lease_expires_at is None else from_micros(lease_expires_at),
        quarantine_error=row[12],
        waiting=bool(row[13]),
    )
