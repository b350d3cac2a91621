"""Builders for store tests: new executions, events, and raw rows written behind a store's back."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

from baton.v1 import execution_pb2
from google.protobuf import struct_pb2

from server.store.base import ExecutionStore, NewExecution

E = execution_pb2
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def new_execution(
    execution_id: str,
    *,
    user_id: str = "user-1",
    request_id: str = "",
    workflow_type: str = "job_search",
    created_at: datetime = T0,
) -> NewExecution:
    return NewExecution(
        execution_id=execution_id,
        user_id=user_id,
        workflow_type=workflow_type,
        plan_id=f"plan-{execution_id}",
        request_id=request_id,
        priority=2,
        created_at=created_at,
    )


def started(at: datetime = T0) -> execution_pb2.ExecutionEvent:
    event = E.ExecutionEvent(sequence=1)
    event.time.FromDatetime(at)
    event.execution_started.request_id = "r"
    return event


def step_events(first: int, count: int, at: datetime = T0) -> list[execution_pb2.ExecutionEvent]:
    events = []
    for sequence in range(first, first + count):
        event = E.ExecutionEvent(sequence=sequence)
        event.time.FromDatetime(at + timedelta(seconds=sequence))
        event.step_started.step_id = f"step-{sequence}"
        event.step_started.attempt = 1
        events.append(event)
    return events


async def create(store: ExecutionStore, execution_id: str, **kwargs: object) -> None:
    created_at = kwargs.get("created_at", T0)
    assert isinstance(created_at, datetime)
    await store.create_execution(new_execution(execution_id, **kwargs), started(created_at))  # type: ignore[arg-type]


def nested_struct(levels: int) -> struct_pb2.Struct:
    """A Struct `levels` JSON levels deep: {"a": {"a": ... {"leaf": "x"}}}."""
    top = struct_pb2.Struct()
    current = top
    for _ in range(levels - 1):
        current = current.fields["a"].struct_value
    current.fields["leaf"].string_value = "x"
    return top


def inject_sqlite_event(path: str, execution_id: str, payload: bytes, kind: str = "poison") -> int:
    """Writes raw bytes as the execution's next event straight into a SQLite store's file.

    Returns:
        The sequence the payload was stored under.
    """
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        no, last = conn.execute(
            "SELECT execution_no, last_sequence FROM executions WHERE execution_id = ?", (execution_id,)
        ).fetchone()
        conn.execute(
            "INSERT INTO events (execution_no, sequence, kind, recorded_at, payload) VALUES (?, ?, ?, 0, ?)",
            (no, last + 1, kind, payload),
        )
        conn.execute("UPDATE executions SET last_sequence = ? WHERE execution_no = ?", (last + 1, no))
        conn.execute("COMMIT")
    finally:
        conn.close()
    return int(last) + 1
