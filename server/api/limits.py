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
- **Size: user_context.data at most 1 MiB serialized, the whole request at most 2 MiB.** gRPC
  clients receive at most 4 MiB by default; the execution_started event and ExecuteWorkflow's
  answer carry the plan and user context, and must fit that with room for everything else.
  A SignalExecution payload (``check_struct``) is bounded like user_context.data.
"""

from __future__ import annotations

import json
import re

from baton.v1 import orchestrator_pb2, plan_pb2
from google.protobuf import struct_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from server.api.errors import invalid

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

# Keys quoted in a field path are cut to this many characters (a path must stay readable).
_KEY_IN_PATH = 64
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

_STRUCT = struct_pb2.Struct.DESCRIPTOR.full_name
_VALUE = struct_pb2.Value.DESCRIPTOR.full_name
_LIST = struct_pb2.ListValue.DESCRIPTOR.full_name


def check_request(
    request: orchestrator_pb2.ExecuteWorkflowRequest | orchestrator_pb2.PlanWorkflowRequest,
    *,
    with_plan: bool = True,
) -> None:
    """Checks a request against every bound (see the module docstring).

    Args:
        request: the request.
        with_plan: whether to walk an explicit plan too; the servicer walks a plan it has not
            seen before with check_plan instead (a plan already found valid was checked then).

    Raises:
        RequestError: INVALID_ARGUMENT naming the first field past a bound.
    """
    size = request.ByteSize()
    if size > MAX_REQUEST_BYTES:
        raise invalid("request", f"{size} bytes serialized, more than the {_mib(MAX_REQUEST_BYTES)} allowed")
    _check_struct_size("user_context.data", request.user_context.data)
    _walk_fields("", request, skip="" if with_plan else "plan")


def check_plan(plan: plan_pb2.OrchestrationPlan, field: str = "plan") -> None:
    """Checks an explicit plan's strings, Structs and lists (its size is part of the request's).

    Raises:
        RequestError: INVALID_ARGUMENT naming the first field past a bound.
    """
    _walk_message(field, plan)


def check_struct(field: str, value: struct_pb2.Struct) -> None:
    """Checks a Struct's size, nesting, strings and items (bounded like user_context.data).

    Args:
        field: the Struct's field path, used in the error (``payload``).
        value: the Struct.

    Raises:
        RequestError: INVALID_ARGUMENT naming the field path past a bound.
    """
    _check_struct_size(field, value)
    _walk_struct(field, value, 1)


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MiB" if size % (1024 * 1024) == 0 else f"{size // 1024} KiB"


def _check_struct_size(field: str, value: struct_pb2.Struct) -> None:
    size = value.ByteSize()
    if size > MAX_STRUCT_BYTES:
        raise invalid(field, f"{size} bytes serialized, more than the {_mib(MAX_STRUCT_BYTES)} allowed")


def _check_string(field: str, text: str) -> None:
    # len() counts characters, at most 4 UTF-8 bytes each: encode only strings that may be over.
    if len(text) > MAX_STRING_BYTES // 4 and len(text.encode("utf-8", "surrogatepass")) > MAX_STRING_BYTES:
        raise invalid(field, f"a string longer than {_mib(MAX_STRING_BYTES)}")


def _check_items(field: str, count: int) -> None:
    if count > MAX_ITEMS:
        raise invalid(field, f"{count} items, more than the {MAX_ITEMS} allowed")


def _key(path: str, key: str) -> str:
    """The path of a Struct or map entry: ``path.key``, or ``path["odd key"]`` when not an identifier."""
    _check_string(f"{path}: a key", key)
    if _IDENTIFIER.match(key):
        return f"{path}.{key}"
    shown = key if len(key) <= _KEY_IN_PATH else key[:_KEY_IN_PATH] + "…"
    return f"{path}[{json.dumps(shown, ensure_ascii=False)}]"


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _walk_message(path: str, message: Message) -> None:
    name = message.DESCRIPTOR.full_name
    if name == _STRUCT:
        _walk_struct(path, message, 1)  # type: ignore[arg-type]
        return
    if name == _VALUE:
        _walk_value(path, message, 1)  # type: ignore[arg-type]
        return
    if name == _LIST:
        _walk_list(path, message, 1)  # type: ignore[arg-type]
        return
    _walk_fields(path, message)


def _walk_fields(path: str, message: Message, skip: str = "") -> None:
    for field, value in message.ListFields():
        if field.name == skip:
            continue
        where = _join(path, field.name)
        if field.is_repeated:
            _check_items(where, len(value))
            entry = field.message_type if field.type == FieldDescriptor.TYPE_MESSAGE else None
            if entry is not None and entry.GetOptions().map_entry:
                _walk_map(where, entry.fields_by_name["value"], value)
            else:
                for index, item in enumerate(value):
                    _walk_scalar_or_message(f"{where}[{index}]", field, item)
        else:
            _walk_scalar_or_message(where, field, value)


def _walk_scalar_or_message(path: str, field: FieldDescriptor, value: object) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        _walk_message(path, value)  # type: ignore[arg-type]
    elif field.type == FieldDescriptor.TYPE_STRING:
        _check_string(path, value)  # type: ignore[arg-type]
    elif field.type == FieldDescriptor.TYPE_BYTES and len(value) > MAX_STRING_BYTES:  # type: ignore[arg-type]
        raise invalid(path, f"more than {_mib(MAX_STRING_BYTES)} of bytes")


def _walk_map(path: str, value_field: FieldDescriptor, entries: object) -> None:
    for key, value in entries.items():  # type: ignore[attr-defined]
        where = _key(path, key) if isinstance(key, str) else f"{path}[{key}]"
        _walk_scalar_or_message(where, value_field, value)


def _walk_struct(path: str, struct: struct_pb2.Struct, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise invalid(path, f"nested deeper than {MAX_DEPTH} levels")
    fields = struct.fields
    _check_items(path, len(fields))
    for key, value in fields.items():
        _walk_value(_key(path, key), value, depth)


def _walk_list(path: str, values: struct_pb2.ListValue, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise invalid(path, f"nested deeper than {MAX_DEPTH} levels")
    items = values.values
    _check_items(path, len(items))
    for index, value in enumerate(items):
        _walk_value(f"{path}[{index}]", value, depth)


def _walk_value(path: str, value: struct_pb2.Value, depth: int) -> None:
    """Checks a Value found at `depth` (the level of the Struct or list holding it)."""
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        _check_string(path, value.string_value)
    elif kind == "struct_value":
        _walk_struct(path, value.struct_value, depth + 1)
    elif kind == "list_value":
        _walk_list(path, value.list_value, depth + 1)
