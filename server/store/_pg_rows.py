"""Rows of the PostgreSQL store: record columns, event decoding and the notification payload."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import asyncpg
from baton.v1 import execution_pb2

from server.store.base import ExecutionRecord

#: The executions columns in ExecutionRecord field order; every SELECT of a record uses it.
RECORD_COLUMNS = (
    "execution_id, user_id, workflow_type, plan_id, request_id, priority, state,"
    " created_at, updated_at, last_sequence, owner, lease_expires_at, quarantine_error, waiting"
)

#: The channel every commit of events is announced on.
NOTIFY_CHANNEL = "baton_events"


def utc(moment: datetime) -> datetime:
    """Returns a timezone-aware datetime in UTC.

    Raises:
        ValueError: the datetime is naive (its zone would be a guess).
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"datetime {moment.isoformat()} is naive; the store needs timezone-aware times")
    return moment.astimezone(UTC)


def event_time(event: execution_pb2.ExecutionEvent) -> datetime | None:
    """Returns the event's own time in UTC, to the microsecond; None when unset."""
    moment = event.time
    if not moment.seconds and not moment.nanos:
        return None
    return moment.ToDatetime(tzinfo=UTC)


def record_from_row(row: Sequence[Any] | asyncpg.Record) -> ExecutionRecord:
    """Builds a record from a row of RECORD_COLUMNS."""
    return ExecutionRecord(
        execution_id=row[0],
        user_id=row[1],
        workflow_type=row[2],
        plan_id=row[3],
        request_id=row[4],
        priority=row[5],
        state=row[6],
        created_at=row[7],
        updated_at=row[8],
        last_sequence=row[9],
        owner=row[10],
        lease_expires_at=row[11],
        quarantine_error=row[12],
        waiting=row[13],
    )


def notify_payload(instance: str, execution_no: int, first: int, last: int) -> str:
    """The payload announcing a commit: ``<instance> <execution_no> <first sequence> <last sequence>``.

    The execution's number rather than its id: the payload stays short and needs no quoting
    whatever the caller's ids are (PostgreSQL refuses payloads of 8000 bytes or more, which
    would fail the commit itself), and the reader joins to executions anyway.
    """
    return f"{instance} {execution_no} {first} {last}"


def parse_notify_payload(payload: str) -> tuple[str, int, int, int] | None:
    """Returns (instance, execution_no, first, last) of a payload, or None if it is not one."""
    parts = payload.split(" ")
    if len(parts) != 4:
        return None
    try:
        no, first, last = int(parts[1]), int(parts[2]), int(parts[3])
    except ValueError:
        return None
    if first < 1 or last < first:
        return None
    return parts[0], no, first, last
