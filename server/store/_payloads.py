"""Large outputs stored once: content-addressed payloads, the same for every store.

Rules:

1. An event is written as it is unless it carries an output (StepSucceeded.output,
   StepItemSucceeded.output) whose serialized bytes (the Any's value) are larger than the store's
   threshold (0: never). Such an output's bytes go to the ``payloads`` table under their SHA-256
   (hex), and the event row keeps a ``baton.v1.PayloadReference`` packed in the output's Any
   instead, with the digest in the row's ``payload_sha256`` column. A debug-mode request
   (StepStarted.request, StepItemStarted.request, a Struct serialized deterministically) larger
   than the threshold goes the same way, its reference in the event's ``request_reference``.
   An event carries one or the other, never both: one digest per row.
2. The payload row is written in the transaction of its event (``INSERT ... ON CONFLICT``), so
   the event and its bytes commit together: what was acknowledged survives kill -9 whole.
3. ``payloads.refs`` counts the event rows naming the digest. A write adds its events' counts in
   its transaction; deleting executions subtracts theirs, in the deleting transaction, and
   deletes the rows left at zero. Identical outputs (one digest) are stored once, across steps,
   map items, executions and reruns; a payload goes with the last event naming it.
4. Every read joins the payloads (one query per read, never one per event) and resolves the
   references back, so nothing above the store sees one. A reference whose row is missing is a
   CorruptHistoryError naming the digest: the execution is quarantined like one with an
   undecodable event, and the server still starts.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from baton.v1 import execution_pb2
from google.protobuf import any_pb2

from server.store._events import decode_events
from server.store.base import CorruptHistoryError

DEFAULT_PAYLOAD_THRESHOLD = 16 * 1024
"""Outputs larger than this many serialized bytes are stored once and referenced (16 KiB)."""
MAX_PAYLOAD_THRESHOLD = 1024 * 1024 * 1024
"""The largest threshold accepted (1 GiB: larger than any message, so the same as off)."""
REFERENCE_TYPE_URL = "type.googleapis.com/" + execution_pb2.PayloadReference.DESCRIPTOR.full_name
"""The type URL of an output's Any that holds a reference instead of the output."""

# The event kinds whose output (an Any) may be stored apart, and those whose request (a Struct) may.
_OUTPUT_KINDS = ("step_succeeded", "step_item_succeeded")
_REQUEST_KINDS = ("step_started", "step_item_started")
_STRUCT_TYPE_URL = "type.googleapis.com/google.protobuf.Struct"


def check_threshold(threshold: int) -> int:
    """Returns the threshold, or raises ValueError naming payload_threshold."""
    if isinstance(threshold, bool) or not isinstance(threshold, int) or not 0 <= threshold <= MAX_PAYLOAD_THRESHOLD:
        raise ValueError(
            f"payload_threshold: expected 0 (off) or bytes from 1 to {MAX_PAYLOAD_THRESHOLD}, got {threshold!r}"
        )
    return threshold


@dataclass(frozen=True, slots=True)
class Blob:
    """One output stored apart: its digest and bytes."""

    sha256: str
    data: bytes


def _output(event: execution_pb2.ExecutionEvent) -> any_pb2.Any | None:
    kind = event.WhichOneof("kind")
    if kind not in _OUTPUT_KINDS:
        return None
    body = getattr(event, kind)
    if not body.HasField("output"):
        return None
    output: any_pb2.Any = body.output
    return output


def split(event: execution_pb2.ExecutionEvent, threshold: int) -> tuple[bytes, Blob | None]:
    """The event's row payload, and the blob stored apart (None when it keeps everything).

    The event itself is not changed: a copy carries the reference.
    """
    kind = event.WhichOneof("kind") if threshold else None
    if kind in _OUTPUT_KINDS:
        output = _output(event)
        if output is not None and len(output.value) > threshold and output.type_url != REFERENCE_TYPE_URL:
            data = output.value
            digest = hashlib.sha256(data).hexdigest()
            reference = execution_pb2.PayloadReference(sha256=digest, size_bytes=len(data), type_url=output.type_url)
            stored = execution_pb2.ExecutionEvent()
            stored.CopyFrom(event)
            kept = _output(stored)
            assert kept is not None  # the copy has the output the event has
            kept.type_url = REFERENCE_TYPE_URL
            kept.value = reference.SerializeToString()
            return stored.SerializeToString(), Blob(digest, data)
    elif kind in _REQUEST_KINDS and getattr(event, kind).HasField("request"):
        data = getattr(event, kind).request.SerializeToString(deterministic=True)
        if len(data) > threshold:
            digest = hashlib.sha256(data).hexdigest()
            stored = execution_pb2.ExecutionEvent()
            stored.CopyFrom(event)
            body = getattr(stored, kind)
            body.ClearField("request")
            body.request_reference.sha256, body.request_reference.size_bytes = digest, len(data)
            body.request_reference.type_url = _STRUCT_TYPE_URL
            return stored.SerializeToString(), Blob(digest, data)
    return event.SerializeToString(), None


def distinct_blobs(blobs: Iterable[Blob | None]) -> list[tuple[str, bytes, int]]:
    """(sha256, data, references) per distinct digest, in digest order (the order rows are locked in)."""
    data: dict[str, bytes] = {}
    counts: dict[str, int] = {}
    for blob in blobs:
        if blob is not None:
            data[blob.sha256] = blob.data
            counts[blob.sha256] = counts.get(blob.sha256, 0) + 1
    return [(digest, data[digest], counts[digest]) for digest in sorted(data)]


def resolve_events(
    execution_id: str, rows: Sequence[tuple[int, bytes, str | None, bytes | None]]
) -> list[execution_pb2.ExecutionEvent]:
    """Decodes (sequence, payload, payload_sha256, payload data) rows and resolves their references.

    Raises:
        CorruptHistoryError: an event does not decode, or names a payload that is missing or
            is not the one it names, or holds a reference its row does not name.
    """
    events = decode_events(execution_id, [(row[0], row[1]) for row in rows])
    for (sequence, _, digest, data), event in zip(rows, events, strict=True):
        if digest is not None:
            resolve(execution_id, sequence, event, digest, data)
        elif _checked_reference(execution_id, sequence, event) is not None:
            message = "the event holds a payload reference its row does not name"
            raise CorruptHistoryError(execution_id, sequence, message)
    return events


def _checked_reference(
    execution_id: str, sequence: int, event: execution_pb2.ExecutionEvent
) -> execution_pb2.PayloadReference | None:
    try:
        return _reference(event)
    except Exception as error:
        raise CorruptHistoryError(execution_id, sequence, f"payload reference does not decode: {error}") from error


def _reference(event: execution_pb2.ExecutionEvent) -> execution_pb2.PayloadReference | None:
    """The reference the event holds in place of its output or request (None: none)."""
    kind = event.WhichOneof("kind")
    if kind in _REQUEST_KINDS:
        body = getattr(event, kind)
        return body.request_reference if body.HasField("request_reference") else None
    output = _output(event)
    if output is None or output.type_url != REFERENCE_TYPE_URL:
        return None
    return execution_pb2.PayloadReference.FromString(output.value)


def resolve(
    execution_id: str, sequence: int, event: execution_pb2.ExecutionEvent, digest: str, data: bytes | None
) -> None:
    """Puts the payload `data` back in place of the event's reference to `digest`.

    Raises:
        CorruptHistoryError: the payload is missing, or the event holds no reference to it.
    """
    reference = _checked_reference(execution_id, sequence, event)
    if reference is None:
        raise CorruptHistoryError(execution_id, sequence, f"the row names payload {digest} but the event has none")
    if reference.sha256 != digest:
        raise CorruptHistoryError(
            execution_id, sequence, f"the row names payload {digest} but the event names {reference.sha256}"
        )
    if data is None:
        raise CorruptHistoryError(execution_id, sequence, f"payload {digest} is missing from the payloads table")
    if not isinstance(data, bytes):
        raise CorruptHistoryError(execution_id, sequence, f"payload {digest} is {type(data).__name__}, not bytes")
    if len(data) != reference.size_bytes:
        raise CorruptHistoryError(
            execution_id, sequence, f"payload {digest} has {len(data)} bytes, the event says {reference.size_bytes}"
        )
    kind = event.WhichOneof("kind")
    if kind in _REQUEST_KINDS:
        body = getattr(event, kind)
        try:
            body.request.ParseFromString(data)
        except Exception as error:
            raise CorruptHistoryError(
                execution_id, sequence, f"payload {digest} does not decode: {type(error).__name__}: {error}"
            ) from error
        body.ClearField("request_reference")
        return
    output = _output(event)
    assert output is not None  # _reference found the reference in it
    output.type_url = reference.type_url
    output.value = data
