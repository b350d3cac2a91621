"""Step input expressions: "${EXPR}" strings resolved by JMESPath over the execution context."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jmespath
from jmespath.parser import ParsedResult

from server.quoting import quote


class ExpressionError(ValueError):
    """An expression could not be evaluated."""


@lru_cache(maxsize=1024)
def _compiled(expression: str) -> ParsedResult:
    return jmespath.compile(expression)


def expression_of(value: object) -> str | None:
    """Returns EXPR when `value` is exactly "${EXPR}", else None (a literal, even if it contains "${").

    The planner validates with this same function, so what it accepts is what the engine resolves.
    """
    if isinstance(value, str) and len(value) >= 3 and value.startswith("${") and value.endswith("}"):
        return value[2:-1]
    return None


def has_expressions(value: object) -> bool:
    """Whether a JSON value contains any "${EXPR}" string."""
    if isinstance(value, Mapping):
        return any(has_expressions(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(has_expressions(v) for v in value)
    return expression_of(value) is not None


def evaluate(expression: str, context: Mapping[str, Any]) -> Any:
    """Evaluates one JMESPath expression over the context."""
    try:
        return _compiled(expression).search(context)
    except jmespath.exceptions.JMESPathError as exc:
        raise ExpressionError(f"expression {quote(expression)}: {exc}") from exc


def resolve(value: Any, context: Mapping[str, Any]) -> Any:
    """Returns `value` with every "${EXPR}" replaced by its result; null results drop the key."""
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            resolved = resolve(item, context)
            if resolved is not None:
                out[key] = resolved
        return out
    if isinstance(value, list | tuple):
        return [resolve(v, context) for v in value]
    expression = expression_of(value)
    if expression is not None:
        return evaluate(expression, context)
    return value
