"""Decoding stored events, the same for every store: what a read returns, or which event is corrupt."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NoReturn

from baton.v1 import execution_pb2

from server.store.base import CorruptHistoryError


def decode_events(execution_id: str, rows: Sequence[tuple[int, bytes]]) -> list[execution_pb2.ExecutionEvent]:
    """Decodes (sequence, payload) rows of one execution, in order.

    Raises:
        CorruptHistoryError: a payload cannot be decoded, or is not the event its row says
            (another sequence).
    """
    parse = execution_pb2.ExecutionEvent.FromString
    try:
        events = [parse(payload) for (_, payload) in rows]
    except Exception:
        # Rare: find the first bad row again, one by one, to name it.
        first_corrupt(execution_id, rows)
    for (sequence, _), event in zip(rows, events, strict=True):
        if event.sequence != sequence:
            raise CorruptHistoryError(execution_id, sequence, f"the stored event says sequence {event.sequence}")
    return events


def first_corrupt(execution_id: str, rows: Sequence[tuple[int, object]]) -> NoReturn:
    """Raises CorruptHistoryError naming the first row whose payload does not decode."""
    for sequence, payload in rows:
        try:
            if not isinstance(payload, bytes):
                raise TypeError(f"payload is {type(payload).__name__}, not bytes")
            execution_pb2.ExecutionEvent.FromString(payload)
        except Exception as error:
            raise CorruptHistoryError(execution_id, sequence, f"{type(error).__name__}: {error}") from error
    raise CorruptHistoryError(execution_id, rows[0][0] if rows else 0, "the history failed to decode")
