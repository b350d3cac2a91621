"""Bounds on what a request may carry, so nothing accepted can later fail to be read back.

Every accepted request is stored (the execution_started event embeds the plan and the user
context) and re-read on every status, watch and restart; a request the decoder cannot read back
would make its execution unreadable. So ExecuteWorkflow and PlanWorkflow refuse, each violation
an INVALID_ARGUMENT naming the field path (``user_context.data.a.b: nested deeper than 16
levels``):

- **Nesting: 16 levels of JSON** in every Struct (user_context.data, an explicit plan's step
  inputs, success criteria, alternative and compensation configuration, approval data). The
  protobuf decoder refuses messages nested past 100 levels, and each JSON level of a Struct
  costs three (Struct → field entry → Value); the deepest place a request's Struct is stored
  (ExecutionEvent → execution_started → plan → workflow_steps → inputs → configuration) adds
  six. 16 levels use 54 of the 100, which leaves room for an agent's request that embeds the
  value a few levels further down. No real profile or configuration nests past a handful.
- **Strings: 256 KiB** (UTF-8) for any single string, Struct keys and map keys included. The
  largest real string is a resume or document text (tens of KiB); a bound well under the
  request's keeps one field from using up the whole request, and keeps every error message
  and log line that quotes a key small.
- **Items: 10,000** in any list or Struct (and any repeated or map field). Real lists are a few
  hundred jobs or skills at most; the bound stops a request of a million tiny items that every
  expression evaluation and fold would then walk.
- **Size: user_context.data at most a quarter of the message limit serialized (1 MiB of the
  default 4 MiB), the whole request at most half (2 MiB).** gRPC clients receive at most 4 MiB
  by default, and so do the agents; the execution_started event and ExecuteWorkflow's answer
  carry the plan and user context, and an agent's request carries what its step reads of them,
  so each must fit the one limit with room for everything else. A SignalExecution payload
  (``check_struct``) is bounded like user_context.data.
- **Plans: at most 200 steps** (the planner's own bound; `max_plan_steps` may lower it). A plan's
  depth (its longest chain of dependencies) is bounded by its steps; every walk of the graph is
  iterative, so a 200-step chain costs no recursion.
- **Numbers: finite.** A Struct's number may not be NaN or an infinity: JSON has no spelling for
  them, so the server could neither convert the Struct to JSON nor store it (the conversion
  raised ValueError, answered INTERNAL).
- **Keys: no NUL, and short.** Identifiers that become columns and index entries (user ids, the
  request_id, workflow types, plan and execution ids, page tokens) may not contain U+0000
  (PostgreSQL's text cannot hold it, SQLite's JSON functions stop at it) and are at most
  `MAX_KEY_CHARS` characters (a PostgreSQL index entry holds at most about 2,700 bytes).

Every bound but the keys' is configurable downwards (server.config.LimitsConfig); the module's
constants are the defaults and the ceilings.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass

from baton.v1 import orchestrator_pb2, plan_pb2
from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.api.errors import invalid
from server.config import LimitsConfig
from server.quoting import quote

MAX_DEPTH = 16
"""Levels of JSON nesting in a Struct; the Struct itself is level 1."""
MAX_STRING_BYTES = 256 * 1024
"""UTF-8 bytes of any one string, keys included."""
MAX_ITEMS = 10_000
"""Entries of any list, Struct, repeated or map field."""
MAX_STRUCT_BYTES = 1024 * 1024
"""Serialized bytes of user_context.data and of any Struct checked with check_struct."""
MAX_REQUEST_BYTES = 2 * 1024 * 1024
"""Serialized bytes of a whole ExecuteWorkflow or PlanWorkflow request."""
MAX_PLAN_STEPS = 200
"""Steps of an explicit plan."""
MAX_KEY_CHARS = 256
"""Characters of an identifier: a user id, a workflow type, a plan or execution id."""

# Keys quoted in a field path are cut to this many characters (a path must stay readable).
_KEY_IN_PATH = 64
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_STRUCT = struct_pb2.Struct.DESCRIPTOR.full_name
_VALUE = struct_pb2.Value.DESCRIPTOR.full_name
_LIST = struct_pb2.ListValue.DESCRIPTOR.full_name


@dataclass(frozen=True)
class RequestLimits:
    """The bounds a request is checked against (the module's constants by default)."""

    max_depth: int = MAX_DEPTH
    max_string_bytes: int = MAX_STRING_BYTES
    max_items: int = MAX_ITEMS
    max_struct_bytes: int = MAX_STRUCT_BYTES
    max_request_bytes: int = MAX_REQUEST_BYTES
    max_plan_steps: int = MAX_PLAN_STEPS

    @classmethod
    def of(cls, limits: LimitsConfig, max_message_bytes: int) -> RequestLimits:
        """The bounds of a server: its configured limits, sizes derived from its message limit."""
        return cls(
            max_depth=min(limits.max_json_depth, MAX_DEPTH),
            max_string_bytes=min(limits.max_string_bytes, max_message_bytes // 4),
            max_items=min(limits.max_items, MAX_ITEMS),
            max_struct_bytes=max_message_bytes // 4,
            max_request_bytes=max_message_bytes // 2,
            max_plan_steps=min(limits.max_plan_steps, MAX_PLAN_STEPS),
        )


DEFAULT_LIMITS = RequestLimits()


def check_request(
    request: orchestrator_pb2.ExecuteWorkflowRequest | orchestrator_pb2.PlanWorkflowRequest,
    *,
    with_plan: bool = True,
    limits: RequestLimits = DEFAULT_LIMITS,
) -> None:
    """Checks a request against every bound (see the module docstring).

    Args:
        request: the request.
        with_plan: whether to walk an explicit plan too; the servicer walks a plan it has not
            seen before with check_plan instead (a plan already found valid was checked then).
        limits: the bounds.

    Raises:
        RequestError: INVALID_ARGUMENT naming the first field past a bound.
    """
    size = request.ByteSize()
    if size > limits.max_request_bytes:
        raise invalid(
            "request", f"{size} bytes serialized, more than the {_mib(limits.max_request_bytes)} allowed (max_request)"
        )
    walker = _Walker(limits)
    walker.struct_size("user_context.data", request.user_context.data)
    check_key("user_context.user_id", request.user_context.user_id)
    check_key("workflow_type", request.workflow_type)
    if with_plan and isinstance(request, orchestrator_pb2.ExecuteWorkflowRequest) and request.HasField("plan"):
        check_plan(request.plan, limits=limits)
    walker.fields("", request, skip="plan")


def check_plan(
    plan: plan_pb2.OrchestrationPlan, field: str = "plan", *, limits: RequestLimits = DEFAULT_LIMITS
) -> None:
    """Checks an explicit plan's steps, keys, strings, Structs and lists (its size is part of the request's).

    Raises:
        RequestError: INVALID_ARGUMENT naming the first field past a bound.
    """
    steps = len(plan.workflow_steps)
    if steps > limits.max_plan_steps:
        raise invalid(f"{field}.workflow_steps", f"{steps} steps, more than the {limits.max_plan_steps} allowed")
    for name in ("user_id", "plan_id", "workflow_type"):
        check_key(f"{field}.{name}", getattr(plan, name))
    _Walker(limits).message(field, plan)


def check_struct(field: str, value: struct_pb2.Struct, *, limits: RequestLimits = DEFAULT_LIMITS) -> None:
    """Checks a Struct's size, nesting, strings and items (bounded like user_context.data).

    Args:
        field: the Struct's field path, used in the error (``payload``).
        value: the Struct.
        limits: the bounds.

    Raises:
        RequestError: INVALID_ARGUMENT naming the field path past a bound.
    """
    walker = _Walker(limits)
    walker.struct_size(field, value)
    walker.struct(field, value, 1)


def check_key(field: str, value: str, max_chars: int = MAX_KEY_CHARS) -> None:
    """Checks an identifier: no NUL, at most `max_chars` characters (see the module docstring).

    Raises:
        RequestError: INVALID_ARGUMENT naming the field.
    """
    if len(value) > max_chars:
        raise invalid(field, f"at most {max_chars} characters, got {len(value)}")
    if "\x00" in value:
        raise invalid(field, f"must not contain NUL (U+0000), got {quote(value)}")


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size % (1024 * 1024) == 0 else f"{size // 1024} KiB"


class _Walker:
    """Walks a message, a Struct or a value against the bounds; raises at the first breach."""

    def __init__(self, limits: RequestLimits) -> None:
        self.limits = limits

    def struct_size(self, field: str, value: struct_pb2.Struct) -> None:
        size = value.ByteSize()
        if size > self.limits.max_struct_bytes:
            raise invalid(field, f"{size} bytes serialized, more than the {_mib(self.limits.max_struct_bytes)} allowed")

    def string(self, field: str, text: str) -> None:
        bound = self.limits.max_string_bytes
        # len() counts characters, at most 4 UTF-8 bytes each: encode only strings that may be over.
        if len(text) > bound // 4 and len(text.encode("utf-8", "surrogatepass")) > bound:
            raise invalid(field, f"a string longer than {_mib(bound)} (max_string_bytes)")

    def items(self, field: str, count: int) -> None:
        if count > self.limits.max_items:
            raise invalid(field, f"{count} items, more than the {self.limits.max_items} allowed")

    def key(self, path: str, key: str) -> str:
        """The path of a Struct or map entry: ``path.key``, or ``path["odd key"]`` when not an identifier."""
        self.string(f"{path}: a key", key)
        if _IDENTIFIER.match(key):
            return f"{path}.{key}"
        shown = key if len(key) <= _KEY_IN_PATH else key[:_KEY_IN_PATH] + "…"
        return f"{path}[{json.dumps(shown, ensure_ascii=False)}]"

    def message(self, path: str, message: Message) -> None:
        name = message.DESCRIPTOR.full_name
        if name == _STRUCT:
            self.struct(path, message, 1)  # type: ignore[arg-type]
        elif name == _VALUE:
            self.value(path, message, 1)  # type: ignore[arg-type]
        elif name == _LIST:
            self.list(path, message, 1)  # type: ignore[arg-type]
        else:
            self.fields(path, message)

    def fields(self, path: str, message: Message, skip: str = "") -> None:
        for field, value in message.ListFields():
            if field.name == skip:
                continue
            where = _join(path, field.name)
            if field.is_repeated:
                self.items(where, len(value))
                entry = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
                if entry is not None and entry.GetOptions().map_entry:
                    self.map(where, entry.fields_by_name["value"], value)
                else:
                    for index, item in enumerate(value):
                        self.scalar_or_message(f"{where}[{index}]", field, item)
            else:
                self.scalar_or_message(where, field, value)

    def scalar_or_message(self, path: str, field: FieldDescriptor, value: object) -> None:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            self.message(path, value)  # type: ignore[arg-type]
        elif field.type == FieldDescriptor.TYPE_STRING:
            self.string(path, value)  # type: ignore[arg-type]
        elif field.type == FieldDescriptor.TYPE_BYTES and len(value) > self.limits.max_string_bytes:  # type: ignore[arg-type]
            raise invalid(path, f"more than {_mib(self.limits.max_string_bytes)} of bytes")

    def map(self, path: str, value_field: FieldDescriptor, entries: object) -> None:
        for key, value in entries.items():  # type: ignore[attr-defined]
            where = self.key(path, key) if isinstance(key, str) else f"{path}[{key}]"
            self.scalar_or_message(where, value_field, value)

    def struct(self, path: str, struct: struct_pb2.Struct, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise invalid(path, f"nested deeper than {self.limits.max_depth} levels")
        fields = struct.fields
        self.items(path, len(fields))
        for key, value in fields.items():
            self.value(self.key(path, key), value, depth)

    def list(self, path: str, values: struct_pb2.ListValue, depth: int) -> None:
        if depth > self.limits.max_depth:
            raise invalid(path, f"nested deeper than {self.limits.max_depth} levels")
        items = values.values
        self.items(path, len(items))
        for index, value in enumerate(items):
            self.value(f"{path}[{index}]", value, depth)

    def value(self, path: str, value: struct_pb2.Value, depth: int) -> None:
        """Checks a Value found at `depth` (the level of the Struct or list holding it)."""
        kind = value.WhichOneof("kind")
        if kind == "string_value":
            self.string(path, value.string_value)
        elif kind == "struct_value":
            self.struct(path, value.struct_value, depth + 1)
        elif kind == "list_value":
            self.list(path, value.list_value, depth + 1)
        elif kind == "number_value" and not math.isfinite(value.number_value):
            raise invalid(path, f"a JSON number must be finite, got {value.number_value}")


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
