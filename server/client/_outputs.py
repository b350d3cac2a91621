"""A step's output as the agent's own response message, decoded from GetStepOutput's answer.

GetStepOutput answers JSON (a Struct, proto field names). The message type is the response of
the step's ``agent.operation`` (from the execution's status), found through the agent's service
descriptor (agents_clients.catalog), as the engine itself finds it. The events carry outputs as
``google.protobuf.Any`` (StepSucceeded.output): `unpack` turns one into its concrete class by its
type URL, looked up in the default descriptor pool, where every generated ``baton.v1`` module
registers itself.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from baton.v1 import execution_pb2, orchestrator_pb2
from google.protobuf import any_pb2, descriptor_pool, json_format, message_factory
from google.protobuf.message import Message

import agents_clients.catalog as catalog  # registers every agent's messages in the default pool


@dataclass(frozen=True)
class StepResult:
    """One step's output."""

    execution_id: str
    """The execution."""
    step_id: str
    """The step."""
    json: Any
    """The output as JSON with proto field names: an object, or for a map step (for_each) the
    list of its items' outputs (None for a skipped item)."""
    message: Message | None
    """The agent's response as its generated message class (e.g. ``SearchJobsResponse``); None for
    a map step (see `items`) or a step no agent answered (an approval's data)."""
    items: tuple[Message | None, ...] = ()
    """A map step's items' responses, in item order (None for a skipped item); empty otherwise."""


def unpack(packed: any_pb2.Any) -> Message:
    """Unpacks an Any into its concrete generated class, found by its type URL in the default pool.

    Raises:
        KeyError: the type is not known to this process.
    """
    descriptor = descriptor_pool.Default().FindMessageTypeByName(packed.TypeName())
    message = message_factory.GetMessageClass(descriptor)()
    packed.Unpack(message)
    return message


def _response_class(agent: str, operation: str) -> type[Message] | None:
    if not agent or not operation:
        return None
    try:
        return catalog.operation(agent, operation).response_class
    except LookupError:  # an agent or operation this client does not know (a newer server's)
        return None


def _parse(value: Any, cls: type[Message] | None) -> Message | None:
    if cls is None or not isinstance(value, dict):
        return None
    return json_format.ParseDict(value, cls(), ignore_unknown_fields=True)


def decode_step_output(reply: orchestrator_pb2.StepOutput, timing: execution_pb2.StepTimingReport | None) -> StepResult:
    """The StepResult of a GetStepOutput answer.

    Args:
        reply: the answer.
        timing: the step's timing report from the execution's status (its agent, operation and
            whether it maps over items); None when unknown (then only the JSON is given).
    """
    data = json_format.MessageToDict(reply.output, preserving_proto_field_name=True)
    mapped = timing is not None and timing.items_total > 0
    value: Any = data.get("value") if mapped else data
    cls = _response_class(timing.agent, timing.operation) if timing is not None else None
    if mapped:
        items = tuple(_parse(item, cls) for item in value or [])
        return StepResult(reply.execution_id, reply.step_id, value, None, items)
    return StepResult(reply.execution_id, reply.step_id, value, _parse(value, cls))
