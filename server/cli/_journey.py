"""The user journey a client command sends: read from a JSON file, with the seed's short enum names."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any, cast

from baton.v1 import journey_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from server.cli._common import UsageError


def _enum_value(field: FieldDescriptor, value: str) -> str:
    """Accepts the seed's short enum spelling ("fully_automatic") beside the full name."""
    enum = field.enum_type
    if enum is None or value in enum.values_by_name:
        return value
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    candidate = prefix + value.upper()
    return candidate if candidate in enum.values_by_name else value


def _seed_enums(data: Any, descriptor: Descriptor) -> Any:
    """Rewrites short enum names in JSON meant for `descriptor` (baton messages only)."""
    if not isinstance(data, dict):
        return data
    result: dict[str, Any] = {}
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key) or descriptor.fields_by_camelcase_name.get(key)
        if field is not None and field.enum_type is not None and isinstance(value, str):
            result[key] = _enum_value(field, value)
        elif (
            field is not None
            and field.message_type is not None
            and field.message_type.full_name.startswith("baton.")
            and isinstance(value, dict)
        ):
            result[key] = _seed_enums(value, field.message_type)
        else:
            result[key] = value
    return result


def load_user_context(path: str | None, user: str | None, *, fresh_user: bool = True) -> journey_pb2.UserJourney:
    """Reads a user journey from a JSON file (bare or wrapped as {"user_journey": …}).

    Args:
        path: the JSON file, or None for an empty journey.
        user: the user id to set; None keeps the file's, or makes a fresh `user-…` id.
        fresh_user: False leaves a missing user id empty instead (with a bearer token the
            server makes the token's subject the owner).

    Returns:
        The journey, with user_id set.

    Raises:
        UsageError: the file is missing, not JSON, or not a UserJourney.
    """
    journey = journey_pb2.UserJourney()
    if path is not None:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise UsageError(f"--context {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--context {path}: not JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("user_journey"), dict):
            data = data["user_journey"]
        if not isinstance(data, dict):
            raise UsageError(f"--context {path}: expected a JSON object (a user_journey)")
        try:
            json_format.ParseDict(_seed_enums(data, cast(Descriptor, journey_pb2.UserJourney.DESCRIPTOR)), journey)
        except json_format.ParseError as exc:
            raise UsageError(f"--context {path}: {exc}") from None
    if user:
        journey.user_id = user
    elif not journey.user_id and fresh_user:
        journey.user_id = f"user-{uuid.uuid4().hex[:8]}"
    return journey
