"""Statuses and updates that fit the message limit: large step outputs are named, not sent.

A status carries every step's output in its results; 200 steps of 55 KB each make an 11 MB
status that no default gRPC client can receive (4 MiB), so GetExecution would answer
RESOURCE_EXHAUSTED for ever and every watcher would fail at the terminal update. Here, at the
API's edge, a status over its budget loses its largest outputs first: each is moved out of
``results.primary_outputs`` / ``results.intermediate_results`` into ``results.omitted_outputs``
(step_id → the output's size in bytes), to be fetched whole with GetStepOutput. Only if every
output is gone and it is still too large (thousands of long error messages), the derived
recommendations, then the error messages' tails, then the oldest recovered error details go.

An update (event + status) is fitted as a whole: a step_succeeded (or a map step's
step_item_succeeded) event whose own output is too large is sent as a copy without the output,
its status naming the step in omitted_outputs.
"""

from __future__ import annotations

from baton.v1 import execution_pb2, orchestrator_pb2
from google.protobuf import struct_pb2

E = execution_pb2

GRPC_DEFAULT_RECEIVE_BYTES = 4 * 1024 * 1024
"""What a gRPC client receives at most unless configured otherwise (every language's default)."""
ENVELOPE_BYTES = 64 * 1024
"""Room left for what wraps a message on the wire (framing, the update around a status)."""
_MESSAGE_TAIL = 1024
"""Characters of an error message kept when error messages must be shortened."""


def message_budget(max_message_bytes: int) -> int:
    """The bytes a status or update may take: the smaller of the server's limit and a default
    client's, less room for the envelope."""
    limit = min(max_message_bytes, GRPC_DEFAULT_RECEIVE_BYTES)
    return limit - min(ENVELOPE_BYTES, limit // 8)


def fit_status(status: execution_pb2.ExecutionStatus, budget: int) -> execution_pb2.ExecutionStatus:
    """Shrinks a status in place until it takes at most `budget` bytes (see the module docstring).

    Returns:
        The same status.
    """
    size = status.ByteSize()
    if size <= budget:
        return status
    size = _omit_outputs(status, size, budget)
    if size <= budget:
        return status
    del status.results.recommendations[:]
    size = status.ByteSize()
    if size <= budget:
        return status
    for detail in status.error_summary.error_details:
        if len(detail.error_message) > _MESSAGE_TAIL:
            detail.error_message = detail.error_message[:_MESSAGE_TAIL] + "…"
    size = status.ByteSize()
    details = status.error_summary.error_details
    # The oldest recovered errors matter least; the count fields keep telling how many there were.
    while size > budget and details:
        victim = next((i for i, d in enumerate(details) if d.impact != E.IMPACT_CRITICAL), 0)
        size -= details[victim].ByteSize()
        del details[victim]
    return status


#: How much larger than the events it comes from an update can be: everything in an update is
#: the event itself, texts copied from events, and outputs re-encoded as a Struct (keys spelled
#: out, numbers as doubles), at most a few times their proto size; 8 leaves room to spare.
_GROWTH = 8
_PER_STEP = 2048
"""Bytes of an update that do not come from events, per step (its timing report, names, ids)."""


def surely_fits(events_bytes: int, steps: int, budget: int) -> bool:
    """Whether any update of an execution whose events take `events_bytes` fits `budget` as it is.

    A cheap upper bound that spares the exact size (a walk of the whole message) on every update
    of the ordinary, small execution; an execution near the limit still gets `fit_update`.
    """
    return _GROWTH * events_bytes + _PER_STEP * steps + ENVELOPE_BYTES <= budget


def fit_update(update: orchestrator_pb2.ExecutionUpdate, budget: int) -> orchestrator_pb2.ExecutionUpdate:
    """Shrinks an update in place until it takes at most `budget` bytes; its event is its own copy.

    Returns:
        The same update.
    """
    if update.ByteSize() <= budget:
        return update
    # An event over half the budget would crowd out its status: send it without its output.
    if update.event.ByteSize() > budget // 2:
        _omit_event_output(update)
    if update.HasField("status"):  # a WATCH_VIEW_EVENTS update may carry none
        fit_status(update.status, budget - (update.ByteSize() - update.status.ByteSize()))
    if update.ByteSize() > budget:
        _omit_event_output(update)
    return update


def _omit_event_output(update: orchestrator_pb2.ExecutionUpdate) -> None:
    event = update.event
    kind = event.WhichOneof("kind")
    # A map step's item output is part of its step's output: it is named under the step.
    if kind in ("step_succeeded", "step_item_succeeded") and getattr(event, kind).HasField("output"):
        succeeded = getattr(event, kind)
        if update.HasField("status"):  # else GetStepOutput still has it; no status is made up
            update.status.results.omitted_outputs[succeeded.step_id] = succeeded.output.ByteSize()
        succeeded.ClearField("output")


def _omit_outputs(status: execution_pb2.ExecutionStatus, size: int, budget: int) -> int:
    """Moves the largest outputs to omitted_outputs until the status fits; returns its size."""
    results = status.results
    holders: tuple[struct_pb2.Struct, ...] = (results.primary_outputs, results.intermediate_results)
    outputs = sorted(
        ((value.ByteSize(), step_id, holder) for holder in holders for step_id, value in holder.fields.items()),
        key=lambda entry: (-entry[0], entry[1]),
    )
    while size > budget and outputs:
        # Drop by estimate (an entry costs its value plus a few bytes of key and framing), then
        # measure once: one ByteSize of an 11 MB status per pass, not one per output.
        while size > budget and outputs:
            output_bytes, step_id, holder = outputs.pop(0)
            del holder.fields[step_id]
            results.omitted_outputs[step_id] = output_bytes
            size -= output_bytes
        size = status.ByteSize()
    return size
