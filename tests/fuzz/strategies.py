"""Hypothesis strategies that build any protobuf message from its descriptor, generically.

`messages(descriptor)` walks the descriptor: every scalar type with its extremes, strings that are
empty, huge, NUL-bearing, right-to-left or emoji, enums with undefined numbers, nested messages to
a bounded depth, repeated fields, maps, oneofs, and the well-known types (Struct/Value/ListValue,
deeply nested sometimes; Any; Timestamp and Duration at and past their ranges). No field list is
written by hand, so a new message or field is fuzzed as soon as it is generated.

Surrogates are never produced: proto3 strings must be valid UTF-8, which the client refuses to
serialize anyway (raw random bytes, sent apart, cover invalid UTF-8 on the wire).
"""

from __future__ import annotations

import random
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

__all__ = ["INT32", "INT64", "huge_text", "messages", "json_values", "text", "unicode_samples"]

INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)

#: Strings that break naive code: empty, NUL, control and bidirectional characters, emoji,
#: combining marks, byte-order marks, non-characters, format strings, paths, SQL and templates.
unicode_samples: tuple[str, ...] = (
    "",
    " ",
    "\x00",
    "a\x00b",
    "\x00" * 64,
    "\n\r\t\x0b\x0c",
    "\x1b[31mred\x1b[0m",
    "\u202eevil\u202c",
    "\u200f\u0645\u0631\u062d\u0628\u0627\u200e",
    "\u05e9\u05dc\u05d5\u05dd",
    "\U0001f600\U0001f469\u200d\U0001f4bb\U0001f3f3\ufe0f\u200d\U0001f308",
    "e\u0301\u0301\u0301\u0301\u0301",
    "\ufeff",
    "\ufffe\uffff",
    "\U0010ffff",
    "%s%n%x%d",
    "{}{0}{name}",
    "../../../../etc/passwd",
    "' OR 1=1 --",
    '"; DROP TABLE events; --',
    "${user.user_id}",
    "${",
    "}",
    "null",
    "NaN",
    "-0",
    "1e309",
    "9" * 400,
    "\\u0000",
    "<script>alert(1)</script>",
)

_characters = st.characters(exclude_categories=("Cs",))


def odds(draw: st.DrawFn) -> float:
    """A uniform draw from [0, 1): Hypothesis favours small numbers and edges, which would make a
    rare branch common; a Random seeded by Hypothesis keeps the intended odds (and replays)."""
    return random.Random(draw(st.integers(0, 2**32 - 1))).random()


def huge_text(min_size: int = 1_000, max_size: int = 300_000) -> st.SearchStrategy[str]:
    """A long string made cheaply: a short random unit repeated to a random length."""
    return st.builds(
        lambda unit, size: (unit * (size // max(len(unit), 1) + 1))[:size],
        st.text(_characters, min_size=1, max_size=4),
        st.integers(min_size, max_size),
    )


def text() -> st.SearchStrategy[str]:
    """Short strings, a quarter of them from `unicode_samples` (huge ones: see `messages`)."""
    return st.one_of(
        st.text(_characters, max_size=24), st.text(_characters, max_size=24), st.sampled_from(unicode_samples)
    )


def _binary() -> st.SearchStrategy[bytes]:
    return st.one_of(
        st.binary(max_size=32),
        st.sampled_from([b"", b"\x00", b"\xff" * 8, b"\x80"]),
        st.builds(lambda n: b"\xa5" * n, st.integers(1_000, 200_000)),
    )


def _ints(low: int, high: int) -> st.SearchStrategy[int]:
    edges = sorted({low, high, 0, 1, max(low, -1), high - 1, low + 1})
    return st.one_of(st.sampled_from(edges), st.integers(low, high))


def _floats(width: int) -> st.SearchStrategy[float]:
    extreme = [0.0, -0.0, float("nan"), float("inf"), float("-inf"), 1e308 if width == 64 else 3.4e38, -1.0, 5e-324]
    if width == 32:
        extreme[-1] = 1e-45
    return st.one_of(st.sampled_from(extreme), st.floats(width=width))


def _enum(field: FieldDescriptor) -> st.SearchStrategy[int]:
    defined = [v.number for v in field.enum_type.values]
    # Proto3 enums are open: a number no value names is kept and must be refused by the server.
    return st.one_of(st.sampled_from(defined), _ints(*INT32), st.sampled_from([max(defined) + 1, -1]))


_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_INT32: _ints(*INT32),
    FieldDescriptor.TYPE_SINT32: _ints(*INT32),
    FieldDescriptor.TYPE_SFIXED32: _ints(*INT32),
    FieldDescriptor.TYPE_INT64: _ints(*INT64),
    FieldDescriptor.TYPE_SINT64: _ints(*INT64),
    FieldDescriptor.TYPE_SFIXED64: _ints(*INT64),
    FieldDescriptor.TYPE_UINT32: _ints(*UINT32),
    FieldDescriptor.TYPE_FIXED32: _ints(*UINT32),
    FieldDescriptor.TYPE_UINT64: _ints(*UINT64),
    FieldDescriptor.TYPE_FIXED64: _ints(*UINT64),
    FieldDescriptor.TYPE_DOUBLE: _floats(64),
    FieldDescriptor.TYPE_FLOAT: _floats(32),
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_BYTES: _binary(),
}

# ---- JSON values (google.protobuf.Struct / Value / ListValue) ---------------------------------

_json_leaves = st.one_of(
    st.none(),
    st.booleans(),
    _floats(64),
    st.sampled_from([2**53 + 1, -(2**63), 2**64]).map(float),
    text(),
)


def _nested(depth: int, leaf: Any, kind: str) -> Any:
    value = leaf
    for _ in range(depth):
        value = [value] if kind == "list" else {"k": value}
    return value


def json_values(max_leaves: int = 12) -> st.SearchStrategy[Any]:
    """JSON-like values (NaN and infinities included, as a Value can hold them); sometimes nested
    tens to hundreds of levels deep."""
    shallow = st.recursive(
        _json_leaves,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4), st.dictionaries(st.one_of(text(), st.just("")), inner, max_size=4)
        ),
        max_leaves=max_leaves,
    )
    deep = st.builds(_nested, st.sampled_from([10, 16, 17, 24]), _json_leaves, st.sampled_from(["list", "dict"]))
    return st.one_of(shallow, shallow, shallow, deep)


def _struct_dicts() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        st.dictionaries(st.one_of(text(), st.just("")), json_values(), max_size=6),
        st.builds(lambda v: {"deep": v}, json_values()),
    )


def _fill_value(message: Message, value: Any) -> Message:
    # Value.update is absent; a ListValue wrapper converts any JSON value.
    from google.protobuf import struct_pb2

    holder = struct_pb2.ListValue()
    holder.append(value)
    message.CopyFrom(holder.values[0])
    return message


# ---- well-known types ----------------------------------------------------------------------

_SECONDS = [0, -1, 1, -62_135_596_800, -62_135_596_801, 253_402_300_799, 253_402_300_800, *INT64]
_DURATION_SECONDS = [0, -1, 1, 315_576_000_000, -315_576_000_000, 315_576_000_001, 86_400 * 365, *INT64]
_NANOS = [0, 1, -1, 999_999_999, 1_000_000_000, -999_999_999, *INT32]


def _well_known(descriptor: Descriptor, cls: type[Message]) -> st.SearchStrategy[Message] | None:
    name = descriptor.full_name
    if name == "google.protobuf.Struct":

        def struct(d: dict[str, Any]) -> Message:
            message = cls()
            message.update(d)  # type: ignore[attr-defined]
            return message

        return st.builds(struct, _struct_dicts())
    if name == "google.protobuf.Value":
        return st.builds(lambda v: _fill_value(cls(), v), json_values())
    if name == "google.protobuf.ListValue":

        def list_value(items: list[Any]) -> Message:
            message = cls()
            message.extend(items)  # type: ignore[attr-defined]
            return message

        return st.builds(list_value, st.lists(json_values(), max_size=5))
    if name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        seconds = _SECONDS if name.endswith("Timestamp") else _DURATION_SECONDS
        return st.builds(
            lambda s, n: cls(seconds=s, nanos=n),
            st.one_of(st.sampled_from(seconds), _ints(*INT64), st.integers(-1000, 100_000)),
            st.one_of(st.sampled_from(_NANOS), st.integers(0, 999_999_999)),
        )
    if name == "google.protobuf.Any":
        type_urls = st.one_of(
            text(),
            st.sampled_from(
                [
                    "type.googleapis.com/baton.v1.WorkflowStep",
                    "type.googleapis.com/google.protobuf.Struct",
                    "type.googleapis.com/",
                    "/",
                ]
            ),
        )
        return st.builds(lambda url, value: cls(type_url=url, value=value), type_urls, _binary())
    return None


# ---- any message --------------------------------------------------------------------------


def _is_map(field: FieldDescriptor) -> bool:
    return field.type == FieldDescriptor.TYPE_MESSAGE and field.message_type.GetOptions().map_entry


def _value_strategy(field: FieldDescriptor, depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _inner(field.message_type, depth - 1)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum(field)
    if field.type == FieldDescriptor.TYPE_STRING:
        return text()
    return _SCALARS[field.type]


def _set(message: Message, field: FieldDescriptor, value: Any) -> None:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        getattr(message, field.name).CopyFrom(value)
    else:
        setattr(message, field.name, value)


@st.composite
def _message(draw: st.DrawFn, descriptor: Descriptor, depth: int) -> Message:
    cls = message_factory.GetMessageClass(descriptor)
    message = cls()
    if depth <= 0:
        return message
    # Of each real oneof, at most one member is set; proto3 `optional` (synthetic oneofs) is free.
    skipped: set[str] = set()
    for oneof in descriptor.oneofs:
        if not _synthetic(oneof):
            chosen = draw(st.sampled_from([None, *(f.name for f in oneof.fields)]))
            skipped |= {f.name for f in oneof.fields if f.name != chosen}
    for field in descriptor.fields:
        if field.name in skipped or not draw(st.booleans()):
            continue
        if _is_map(field):
            key_field, value_field = (
                field.message_type.fields_by_name["key"],
                field.message_type.fields_by_name["value"],
            )
            entries = draw(
                st.dictionaries(_value_strategy(key_field, depth), _value_strategy(value_field, depth), max_size=4)
            )
            target = getattr(message, field.name)
            for key, value in entries.items():
                if value_field.type == FieldDescriptor.TYPE_MESSAGE:
                    target[key].CopyFrom(value)
                else:
                    target[key] = value
        elif field.is_repeated:
            values = draw(
                st.lists(_value_strategy(field, depth), max_size=draw(st.sampled_from([2, 2, 2, 2, 2, 2, 30])))
            )
            target = getattr(message, field.name)
            if field.type == FieldDescriptor.TYPE_MESSAGE:
                for value in values:
                    target.add().CopyFrom(value)
            else:
                target.extend(values)
        else:
            _set(message, field, draw(_value_strategy(field, depth)))
    return message


def _synthetic(oneof: Any) -> bool:
    """A proto3 `optional` field's oneof: its only member, named after it with a leading "_"."""
    return len(oneof.fields) == 1 and oneof.name == f"_{oneof.fields[0].name}"


def _inner(descriptor: Descriptor, depth: int) -> st.SearchStrategy[Message]:
    cls = message_factory.GetMessageClass(descriptor)
    known = _well_known(descriptor, cls)
    return known if known is not None else _message(descriptor, depth)


def _string_slots(message: Message) -> list[tuple[Message, FieldDescriptor]]:
    """Every singular string field of a message and of the messages set in it."""
    slots: list[tuple[Message, FieldDescriptor]] = []
    stack = [message]
    while stack:
        current = stack.pop()
        for field in current.DESCRIPTOR.fields:
            if field.type == FieldDescriptor.TYPE_STRING and not field.is_repeated:
                slots.append((current, field))
            elif field.type == FieldDescriptor.TYPE_MESSAGE and not _is_map(field):
                if field.is_repeated:
                    stack.extend(getattr(current, field.name))
                elif current.HasField(field.name):
                    stack.append(getattr(current, field.name))
    return slots


@st.composite
def messages(draw: st.DrawFn, descriptor: Descriptor, depth: int = 3) -> Message:
    """Any message of `descriptor`'s type; nested messages stop `depth` levels down.

    One message in fifty gets one huge string (1 KB to 300 KB) in a random string field; one in
    five hundred a string of about 5 MB (past the 4 MiB message limit).
    """
    message = draw(_inner(descriptor, depth))
    roll = odds(draw)
    if roll < 0.022:
        slots = _string_slots(message)
        if slots:
            target, field = draw(st.sampled_from(slots))
            size = huge_text(4_000_000, 5_500_000) if roll < 0.002 else huge_text()
            setattr(target, field.name, draw(size))
    return message
