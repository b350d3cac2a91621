"""The seed's execution_context: its validation, and what of it changes how an execution runs.

Rules:
1. Every part is bounded and from a fixed set: the environment and toggles are enum values this
   release knows, feature flags at most MAX_FLAGS booleans with names matching FLAG_NAME,
   reserved_capacity a percentage. A breach is INVALID_ARGUMENT naming the field
   (`execution_context.feature_flags["Debug"]`).
2. Two parts are acted on: `feature_flags["debug_mode"]` (the engine records each attempt's
   request in its step_started event, server.engine.decide) and `monitoring.tracing` disabled
   (the execution's stored trace context is marked not sampled, so no span of its agent calls is
   recorded, here or in the agents). The rest is recorded with the execution for reports.
"""

from __future__ import annotations

import re

from baton.v1 import execution_context_pb2 as X

from server.api.errors import invalid
from server.quoting import quote

MAX_FLAGS = 32
"""Feature flags per execution."""
FLAG_NAME = re.compile(r"[a-z][a-z0-9_]{0,63}")
"""A feature flag's name."""
DEBUG_MODE = "debug_mode"
"""The feature flag that keeps full payloads in the execution's events."""

_TOGGLES = ("TOGGLE_UNSPECIFIED", "TOGGLE_ENABLED", "TOGGLE_DISABLED")


def check_execution_context(field: str, context: X.ExecutionContext) -> None:
    """Validates an execution_context (rule 1).

    Args:
        field: its field path, for errors (``execution_context``, ``rule.execution_context``).
        context: the context.

    Raises:
        RequestError: INVALID_ARGUMENT naming the field at fault.
    """
    if context.environment not in X.Environment.values():
        raise invalid(f"{field}.environment", f"{context.environment} is not an Environment value")
    if len(context.feature_flags) > MAX_FLAGS:
        raise invalid(f"{field}.feature_flags", f"at most {MAX_FLAGS} flags, got {len(context.feature_flags)}")
    for name in sorted(context.feature_flags):
        if FLAG_NAME.fullmatch(name) is None:
            raise invalid(
                f"{field}.feature_flags[{quote(name)}]",
                "a flag's name is 1 to 64 characters from a-z, 0-9 and _, starting with a letter",
            )
    allocation = context.resource_allocation
    if not 0 <= allocation.reserved_capacity <= 100:
        raise invalid(
            f"{field}.resource_allocation.reserved_capacity",
            f"a percentage from 0 to 100, got {allocation.reserved_capacity}",
        )
    for part, names in (
        ("resource_allocation", ("auto_scaling", "priority_queues")),
        ("monitoring", ("metrics_collection", "alerting", "tracing", "profiling")),
    ):
        holder = getattr(context, part)
        for name in names:
            value = getattr(holder, name)
            if value not in X.Toggle.values():
                raise invalid(f"{field}.{part}.{name}", f"{value} is not a Toggle value ({', '.join(_TOGGLES)})")


def debug_mode(context: X.ExecutionContext) -> bool:
    """Whether the context asks for full payloads in the execution's events."""
    return context.feature_flags.get(DEBUG_MODE, False)


def untraced(context: X.ExecutionContext) -> bool:
    """Whether the context turns the execution's tracing off."""
    return context.monitoring.tracing == X.TOGGLE_DISABLED


def unsampled(trace_parent: str) -> str:
    """A W3C ``traceparent`` with its sampled flag cleared (empty stays empty).

    The execution keeps a valid trace context, so the agents it calls see it and, their samplers
    following the parent's decision, record no span either.
    """
    parts = trace_parent.split("-")
    if len(parts) != 4 or len(parts[3]) != 2:
        return ""
    try:
        flags = int(parts[3], 16) & ~1
    except ValueError:
        return ""
    return "-".join([*parts[:3], f"{flags:02x}"])


__all__ = ["DEBUG_MODE", "MAX_FLAGS", "check_execution_context", "debug_mode", "unsampled", "untraced"]
