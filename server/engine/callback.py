"""The terminal callback as the engine records it: scheduled in the same commit as the end.

Rules:
1. An execution with a callback_url that reaches its end records `callback_scheduled` in the
   decision that ends it, right after the terminal event: one append, one commit. The store keeps
   an outbox row for it from that commit on (server/store/), so no crash can lose the callback
   between the end and its POST; delivery (server/callbacks/) works from the outbox.
2. The callback's outcome is `callback_delivered` or `callback_failed`, appended after the end by
   the delivery side; those three kinds are the only ones that may follow a terminal event, and
   they change nothing of the execution but its CallbackReport (see fold.py).
3. The Baton-Delivery-Id is derived from the execution id (and, from a rerun on, its run: each
   run's end is a callback of its own), so every attempt, on any replica and after any restart,
   carries the same one and a receiver can deduplicate.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from baton.v1 import execution_pb2

DEFAULT_CALLBACK_DEADLINE = 24 * 3600.0
"""Seconds after the end during which a callback is retried (`--callback-deadline`). Default 24 h."""

_DELIVERY_NAMESPACE = uuid.UUID("5d0c4f0e-3b1a-4b8e-9a57-6c2a1f0b7d21")

CALLBACK_KINDS = frozenset({"callback_scheduled", "callback_delivered", "callback_failed"})
"""The event kinds of the terminal callback (rule 2)."""


def delivery_id_of(execution_id: str, run: int = 1) -> str:
    """The Baton-Delivery-Id of the terminal callback of an execution's run (stable across retries
    and restarts; the first run's is the execution's, each rerun's its own)."""
    end = f"{execution_id}/terminal" if run == 1 else f"{execution_id}/run-{run}/terminal"
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, end))


def scheduled_callback(
    execution_id: str, callback_url: str, now: datetime, deadline_seconds: float, run: int = 1
) -> execution_pb2.CallbackScheduled:
    """The callback_scheduled body of an execution's run ending at `now` (rule 1)."""
    scheduled = execution_pb2.CallbackScheduled(
        delivery_id=delivery_id_of(execution_id, run), callback_url=callback_url
    )
    scheduled.deadline.FromDatetime(now + timedelta(seconds=deadline_seconds))
    return scheduled
