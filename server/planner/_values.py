"""Plan validation's limits and its checks of single values: enums, ranges, durations, JSON Structs."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import json_format
from google.protobuf.descriptor import EnumDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.struct_pb2 import Struct

from server.planner._errors import PlanInvalidError
from server.planner._expressions import compile_error
from server.quoting import clip

MAX_STEPS = 200
"""The most steps a plan may have."""
MIN_TIMEOUT = 0.001
"""Seconds: the shortest step or plan timeout (1 ms)."""
MAX_STEP_TIMEOUT = 3600.0
"""Seconds: the longest per-attempt step (or compensation) timeout (1 hour)."""
MAX_PLAN_TIMEOUT = 86400.0
"""Seconds: the longest execution timeout and scheduling delay (24 hours)."""
MAX_BACKOFF = 3600.0
"""Seconds: the longest retry wait (1 hour)."""
MAX_RETRIES = 10
"""The most retries of a step, a compensation or a retry policy."""
MAX_MULTIPLIER = 10.0
"""The largest exponential backoff multiplier."""
MAX_CIRCUIT_WAITS = 20
"""The most times a step's call waits for an open circuit breaker's probe (RetryPolicy.max_circuit_waits)."""
MAX_CUSTOM_BACKOFFS = 10
"""The most custom backoff waits."""
MAX_CONCURRENCY = 64
"""The largest hybrid-mode concurrency, and the largest max_concurrency of a map step's items."""
MIN_APPROVAL_TIMEOUT = 1.0
"""Seconds: the shortest wait of an approval step (1 s)."""
MAX_APPROVAL_TIMEOUT = 86400.0
"""Seconds: the longest wait of an approval step (24 hours)."""
DEFAULT_APPROVAL_TIMEOUT = 3600.0
"""Seconds an approval step waits when its timeout is unset (1 hour, as plan.proto says)."""
MAX_PROMPT_LENGTH = 2000
"""The longest approval prompt, in characters: a question for a person, not a document."""
MAX_STRUCT_DEPTH = 16
"""The deepest nesting of objects and lists in any JSON value of a plan (configurations, approval
data, success criteria). Every JSON level costs protobuf three message levels and its decoder
stops at 100, so a plan must stay far below 33 levels to be readable again once stored."""

# Durations beyond this are not valid google.protobuf.Duration values (about 10,000 years).
_DURATION_LIMIT = 315_576_000_000


def check_enum(field: str, value: int, descriptor: EnumDescriptor) -> None:
    """Refuses a number that is not a value of the enum, listing the valid names."""
    if value not in descriptor.values_by_number:
        names = ", ".join(v.name for v in descriptor.values)
        raise PlanInvalidError(field, f"{value} is not a {descriptor.name} value; valid values: {names}")


def check_range(field: str, value: float, low: float, high: float) -> None:
    """Refuses a number outside [low, high] or not finite."""
    if not math.isfinite(value) or not low <= value <= high:
        raise PlanInvalidError(field, f"must be between {low:g} and {high:g}, not {value:g}")


def check_retries(field: str, count: int) -> None:
    """Refuses a retry count outside 0 to MAX_RETRIES."""
    if not 0 <= count <= MAX_RETRIES:
        raise PlanInvalidError(field, f"must be between 0 and {MAX_RETRIES}, not {count}")


def seconds(duration: Duration) -> float:
    """Returns a Duration in seconds."""
    return duration.seconds + duration.nanos / 1e9


def check_duration(field: str, duration: Duration, *, minimum: float = 0.0, maximum: float | None = None) -> None:
    """Refuses an invalid, negative or out-of-bounds Duration, saying the bounds in human units."""
    s, n = duration.seconds, duration.nanos
    if abs(s) > _DURATION_LIMIT or abs(n) > 999_999_999 or (s > 0 > n) or (s < 0 < n):
        raise PlanInvalidError(field, "is not a valid google.protobuf.Duration")
    value = seconds(duration)
    if value < 0:
        raise PlanInvalidError(field, f"must not be negative, not {human(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bound = (
            f"between {human(minimum)} and {human(maximum)}" if maximum is not None else f"at least {human(minimum)}"
        )
        raise PlanInvalidError(field, f"must be {bound}, not {human(value)}")


def human(seconds: float) -> str:
    """Returns seconds as "24h", "5ms" or "30s"."""
    if seconds != 0 and seconds % 3600 == 0:
        return f"{seconds / 3600:g}h"
    if 0 < abs(seconds) < 1:
        return f"{seconds * 1000:g}ms"
    return f"{seconds:g}s"


def compile_expression(field: str, expression: str) -> None:
    """Refuses an expression the engine could not evaluate (syntax, unknown function)."""
    problem = compile_error(expression)
    if problem is not None:
        raise PlanInvalidError(field, f'expression "{clip(expression)}" does not compile: {problem}')


def struct_json(field: str, struct: Struct) -> dict[str, Any]:
    """Returns a plan's Struct as JSON after checking its nesting depth.

    Every JSON value of a plan goes through here, so each is bounded the same way.
    """
    value: dict[str, Any] = json_format.MessageToDict(struct)
    path = _too_deep(value, "", 1)
    if path is not None:
        raise PlanInvalidError(
            f"{field}{path}", f"nests objects and lists deeper than {MAX_STRUCT_DEPTH} levels; flatten it"
        )
    return value


def _too_deep(value: Any, path: str, depth: int) -> str | None:
    """Returns the path of the first container past MAX_STRUCT_DEPTH, or None."""
    if not isinstance(value, dict | list):
        return None
    if depth > MAX_STRUCT_DEPTH:
        return path
    items = value.items() if isinstance(value, dict) else ((f"[{i}]", v) for i, v in enumerate(value))
    for key, item in items:
        found = _too_deep(item, f"{path}.{key}" if isinstance(value, dict) else f"{path}{key}", depth + 1)
        if found is not None:
            return found
    return None
