"""Step input expressions: "${EXPR}" strings resolved by JMESPath over the execution context.

Rule: an evaluation is bounded. JMESPath can multiply a list without bound (`a[*].[@, @, @][]`
applied again and again, or `join` of `to_string` of itself), so an expression of a few dozen
characters over a modest list could build millions of values (a map step's for_each, say) and
stall the engine or exhaust its memory. `evaluate` counts the list elements and the characters
its evaluation builds and stops it with an `ExpressionError` past MAX_VALUES or MAX_CHARS.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import jmespath
from jmespath.parser import ParsedResult
from jmespath.visitor import TreeInterpreter

from server.quoting import quote

if TYPE_CHECKING:
    from jmespath.visitor import _TreeNode


MAX_VALUES = 1_000_000
"""List elements one evaluation may build (projections, multi-selects, flattens, function
results): far above any real step input, far below what would stall the engine."""
MAX_CHARS = 16 * 1024 * 1024
"""Characters of strings one evaluation's functions may build (`join`, `to_string`)."""


class ExpressionError(ValueError):
    """An expression could not be evaluated."""


class _BoundedInterpreter(TreeInterpreter):
    """JMESPath's interpreter, counting what it builds (the rule at the top of this module)."""

    def __init__(self, expression: str) -> None:
        super().__init__()
        self._expression = expression
        self._values = 0
        self._chars = 0

    def _built(self, result: Any) -> Any:
        if isinstance(result, list | dict):
            self._values += len(result)
        elif isinstance(result, str):
            self._chars += len(result)
        if self._values > MAX_VALUES or self._chars > MAX_CHARS:
            raise ExpressionError(
                f"expression {quote(self._expression)} builds more than {MAX_VALUES:,} values"
                f" or {MAX_CHARS:,} characters; it is stopped"
            )
        return result

    def visit_flatten(self, node: _TreeNode, value: Any) -> Any:
        base = self.visit(node["children"][0], value)
        if not isinstance(base, list):
            return None
        merged: list[Any] = []
        for element in base:
            # Counted as it grows: a flatten of many long lists must stop before it is whole.
            self._built(element if isinstance(element, list) else [element])
            if isinstance(element, list):
                merged.extend(element)
            else:
                merged.append(element)
        return merged

    def visit_multi_select_list(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_multi_select_list(node, value))

    def visit_multi_select_dict(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_multi_select_dict(node, value))

    def visit_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_projection(node, value))

    def visit_value_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_value_projection(node, value))

    def visit_filter_projection(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_filter_projection(node, value))

    def visit_function_expression(self, node: _TreeNode, value: Any) -> Any:
        return self._built(super().visit_function_expression(node, value))


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
    """Evaluates one JMESPath expression over the context, within MAX_VALUES and MAX_CHARS.

    Raises:
        ExpressionError: the expression is invalid, fails, or builds too much.
    """
    try:
        return _BoundedInterpreter(expression).visit(_compiled(expression).parsed, context)
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
