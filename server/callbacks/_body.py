"""A callback's body: the terminal ExecutionStatus as JSON, fitted to a byte limit.

A status can be many megabytes (every step's output is in its results); a receiver should not
have to accept that, and the notifier must not hold thousands of them. So a status whose JSON
is over the limit is shrunk with server.api.sizing's rules (largest outputs first, each named
with its size in ``results.omitted_outputs`` so it can be fetched with GetStepOutput; then
recommendations, long error messages, old recovered errors). sizing measures protobuf bytes and
JSON is larger (keys spelled out, numbers as text), so the protobuf budget is lowered by the
overshoot until the JSON fits (a status is first cut to the limit in protobuf bytes, so one of
many megabytes is never encoded whole). If even that fails (thousands of steps' timings), only
the status's identity and outcome are sent.
"""

from __future__ import annotations

from baton.v1 import execution_pb2
from google.protobuf import json_format

from server.api.sizing import fit_status

_ROUNDS = 6
_MARGIN = 0.9
_REASON_CHARS = 1024


def encode(status: execution_pb2.ExecutionStatus) -> bytes:
    """The status as compact JSON with proto field names (the callback's wire format).

    Keys are sorted: a map's order is not protobuf's to keep, and every process that sends a
    callback (after a restart, another replica) must send the same bytes.
    """
    return json_format.MessageToJson(status, preserving_proto_field_name=True, indent=None, sort_keys=True).encode()


def callback_body(status: execution_pb2.ExecutionStatus, max_bytes: int) -> tuple[bytes, bool]:
    """Encodes `status` (shrinking it in place) in at most `max_bytes` bytes.

    Returns:
        The body, and whether anything was left out of it.
    """
    budget = status.ByteSize()
    abridged = budget > max_bytes
    if abridged:
        # JSON is at least as large as protobuf: shrink before encoding, so a status of many
        # megabytes is never encoded whole (that would hold the event loop).
        budget = max_bytes
        fit_status(status, budget)
    body = encode(status)
    if len(body) <= max_bytes:
        return body, abridged
    for _ in range(_ROUNDS):
        budget = max(1, int(budget * max_bytes / len(body) * _MARGIN))
        fit_status(status, budget)
        body = encode(status)
        if len(body) <= max_bytes:
            return body, True
    essentials = execution_pb2.ExecutionStatus(
        execution_id=status.execution_id,
        plan_id=status.plan_id,
        status=status.status,
        user_id=status.user_id,
        workflow_type=status.workflow_type,
        degraded=status.degraded,
        failure_reason=status.failure_reason[:_REASON_CHARS],
        last_sequence=status.last_sequence,
        end_cause=status.end_cause,
        trace_id=status.trace_id,
    )
    essentials.results.omitted_outputs.update(status.results.omitted_outputs)
    body = encode(essentials)
    if len(body) > max_bytes:
        essentials.ClearField("results")
        body = encode(essentials)
    return body, True
