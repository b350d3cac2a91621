"""The seed's words → baton's messages: a SeedApi request read into an ExecuteWorkflowRequest.

Rules:

- **Enum words.** An enum value is given as the seed's lowercase word, the enum's value name
  without its prefix (`"high"` for PRIORITY_HIGH, `"fully_automatic"` for
  AUTOMATION_LEVEL_FULLY_AUTOMATIC), in any case; the full name is accepted too. Any other word
  is INVALID_ARGUMENT naming the field and listing the words it takes.
- **Durations** are strings of numbers with units h, m, s or ms (`"5m"`, `"1h30m"`, `"2.5s"`),
  the notation of Go and of Envoy's own configuration; `"300s"` (protobuf JSON) fits it too.
- **user_context is free-form.** Its keys that are baton.v1.UserJourney fields are read as that
  message (enum words as above); every other key is kept in the journey's `data`, where plans
  read it as `${user.data.KEY}`, never dropped. A `data` object given explicitly is merged in
  first, so a free-form key of the same name wins. A context wrapped as the seed's
  `{"user_journey": {...}}` is unwrapped.
- **Bounds first.** user_context is checked against server.api.limits before it is walked.
"""

from __future__ import annotations

import math
import re
from typing import Any, cast

from baton.v1 import journey_pb2, orchestrator_pb2, plan_pb2, seed_api_pb2
from google.protobuf import json_format, struct_pb2
from google.protobuf.descriptor import Descriptor, EnumDescriptor, FieldDescriptor

from server.api.errors import invalid
from server.api.limits import check_struct
from server.quoting import quote

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
MAX_DURATION_SECONDS = 315_576_000_000
"""The largest duration protobuf represents (10,000 years); larger is INVALID_ARGUMENT."""

_JOURNEY = cast(Descriptor, journey_pb2.UserJourney.DESCRIPTOR)


def enum_prefix(enum: EnumDescriptor) -> str:
    """The prefix of an enum's value names (`PRIORITY_` for Priority)."""
    return str(enum.values[0].name).removesuffix("UNSPECIFIED")


def enum_word(enum: EnumDescriptor, number: int, unknown: str = "unknown") -> str:
    """The seed's word for an enum value (`running` for EXECUTION_STATE_RUNNING).

    Args:
        enum: the enum.
        number: the value.
        unknown: the word for the UNSPECIFIED value and for numbers this release does not know.
    """
    value = enum.values_by_number.get(number)
    if value is None or number == 0:
        return unknown
    return str(value.name).removeprefix(enum_prefix(enum)).lower()


def parse_enum(enum: EnumDescriptor, word: str, field: str) -> int:
    """The value of a seed word or full value name, in any case; 0 for an empty word.

    Raises:
        RequestError: INVALID_ARGUMENT naming `field` when the word is not one of the enum's.
    """
    if not word:
        return 0
    name = word.strip().upper()
    prefix = enum_prefix(enum)
    for candidate in (name, prefix + name):
        value = enum.values_by_name.get(candidate)
        if value is not None and value.number != 0:
            return int(value.number)
    words = ", ".join(enum_word(enum, v.number) for v in enum.values if v.number != 0)
    raise invalid(field, f"expected one of {words}, got {quote(word)}")


def parse_duration(text: str, field: str) -> float:
    """Seconds of a duration string such as `5m`, `1h30m` or `2.5s`.

    Raises:
        RequestError: INVALID_ARGUMENT naming `field` when the text is not such a duration.
    """
    compact = text.strip()
    parts = _DURATION.findall(compact)
    if not parts or "".join(number + unit for number, unit in parts) != compact:
        raise invalid(field, f"expected a duration such as 5m, 90s or 1h30m, got {quote(text)}")
    seconds = sum(float(number) * _UNIT_SECONDS[unit] for number, unit in parts)
    if not math.isfinite(seconds) or seconds > MAX_DURATION_SECONDS:
        raise invalid(field, f"{quote(text)} is longer than any duration can be")
    return seconds


def _enum_words(data: dict[str, Any], descriptor: Descriptor, path: str) -> dict[str, Any]:
    """Rewrites the enum words of JSON meant for a baton message into enum numbers."""
    result: dict[str, Any] = {}
    for key, value in data.items():
        field: FieldDescriptor | None = descriptor.fields_by_name.get(key)
        if field is not None and field.enum_type is not None and isinstance(value, str):
            result[key] = parse_enum(field.enum_type, value, f"{path}.{key}")
        elif field is not None and field.message_type is not None and field.message_type.full_name.startswith("baton."):
            if not isinstance(value, dict):
                raise invalid(f"{path}.{key}", f"expected a JSON object, got {_kind(value)}")
            result[key] = _enum_words(value, field.message_type, f"{path}.{key}")
        else:
            result[key] = value
    return result


def _kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(value), "a number")


def user_journey(context: struct_pb2.Struct) -> journey_pb2.UserJourney:
    """Reads the seed's free-form user_context (a Struct) into a UserJourney (see the rules).

    Raises:
        RequestError: INVALID_ARGUMENT naming the offending field of user_context.
    """
    check_struct("user_context", context)
    data: dict[str, Any] = json_format.MessageToDict(context)
    if set(data) == {"user_journey"} and isinstance(data["user_journey"], dict):
        data = data["user_journey"]
    known = {key: value for key, value in data.items() if key in _JOURNEY.fields_by_name and key != "data"}
    free = {key: value for key, value in data.items() if key not in known and key != "data"}
    explicit = data.get("data", {})
    if not isinstance(explicit, dict):
        raise invalid("user_context.data", f"expected a JSON object, got {_kind(explicit)}")
    journey = journey_pb2.UserJourney()
    try:
        json_format.ParseDict(_enum_words(known, _JOURNEY, "user_context"), journey)
    except json_format.ParseError as error:
        raise invalid("user_context", str(error).split("\n")[0]) from None
    journey.data.update(explicit)
    journey.data.update(free)
    return journey


def execute_request(request: seed_api_pb2.SeedExecuteRequest) -> orchestrator_pb2.ExecuteWorkflowRequest:
    """The ExecuteWorkflowRequest a SeedExecuteRequest means.

    Raises:
        RequestError: INVALID_ARGUMENT naming the offending field.
    """
    if not request.workflow_type:
        raise invalid("workflow_type", "required")
    rich = orchestrator_pb2.ExecuteWorkflowRequest(
        workflow_type=request.workflow_type,
        user_context=user_journey(request.user_context),
        callback_url=request.callback_url,
        request_id=request.request_id,
    )
    seed = request.execution_options
    options = rich.execution_options
    options.priority = cast(
        plan_pb2.Priority, parse_enum(plan_pb2.Priority.DESCRIPTOR, seed.priority, "execution_options.priority")
    )
    options.quality_level = cast(
        journey_pb2.QualityLevel,
        parse_enum(journey_pb2.QualityLevel.DESCRIPTOR, seed.quality_level, "execution_options.quality_level"),
    )
    if seed.timeout:
        seconds = parse_duration(seed.timeout, "execution_options.timeout")
        options.timeout.FromNanoseconds(round(seconds * 1e9))
    return rich
