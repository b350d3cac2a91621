"""The "${EXPR}" convention of step inputs: finding, compiling and tracing JMESPath expressions."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import jmespath
import jmespath.functions

from server.engine.expressions import expression_of as expression_of

MAX_EXPRESSION_CHARS = 1024
"""Characters of an expression (the longest a definition holds is about 100)."""
MAX_EXPRESSION_DEPTH = 32
"""Levels of an expression's syntax tree: operators within operators (``!!!!a``, ``((a))``,
``a | b | c`` ...). JMESPath compiles and evaluates by recursion, a few frames per level, so a
deep expression would reach Python's recursion limit (RecursionError) at compile or run time;
real expressions are a handful of levels deep."""

# Node types whose later children are evaluated against the first child's result (or its
# elements), not against the context root, so a "steps" field there is not the context's steps.
_RELATIVE_TAIL = frozenset(
    {"subexpression", "projection", "value_projection", "filter_projection", "flatten", "pipe", "index_expression"}
)
# Node types that lead a chain; the step a chain reads is the leftmost field of its second link.
_CHAIN = frozenset(
    {"subexpression", "index_expression", "projection", "value_projection", "filter_projection", "flatten"}
)


def iter_expressions(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Yields (path, expression) for every expression nested in a JSON value, in document order.

    Paths are relative: ``.skills``, ``.data.matches``, ``.events[0].name``.
    """
    expression = expression_of(value)
    if expression is not None:
        yield path, expression
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from iter_expressions(item, f"{path}.{key}")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from iter_expressions(item, f"{path}[{index}]")


def strip_expressions(value: Any) -> Any:
    """Returns a copy of a JSON value without its expressions (keys and list items removed).

    What is left is the literal part of a request, which must parse as the request message.
    """
    if isinstance(value, Mapping):
        return {k: strip_expressions(v) for k, v in value.items() if expression_of(v) is None}
    if isinstance(value, list):
        return [strip_expressions(v) for v in value if expression_of(v) is None]
    return value


def compile_error(expression: str) -> str | None:
    """Returns why an expression cannot be evaluated, or None when it compiles.

    Besides syntax, it catches calls of functions JMESPath does not have, which would
    otherwise only fail when the step is about to run.
    """
    if not expression.strip():
        return "the expression is empty"
    if len(expression) > MAX_EXPRESSION_CHARS:
        return f"{len(expression)} characters, more than the {MAX_EXPRESSION_CHARS} allowed"
    try:
        parsed = jmespath.compile(expression).parsed
    except RecursionError:
        return f"nested deeper than {MAX_EXPRESSION_DEPTH} levels"
    except jmespath.exceptions.LexerError as error:
        return f"{error.message} at column {error.lexer_position}"
    except jmespath.exceptions.IncompleteExpressionError:
        return "the expression is incomplete"
    except jmespath.exceptions.ParseError as error:
        return f"{error.msg} at column {error.lex_position}"
    if _depth(parsed) > MAX_EXPRESSION_DEPTH:
        return f"nested deeper than {MAX_EXPRESSION_DEPTH} levels"
    unknown = sorted(_functions(parsed) - set(jmespath.functions.Functions.FUNCTION_TABLE))
    if unknown:
        return f"unknown function {unknown[0]}()"
    return None


def referenced_steps(expression: str) -> frozenset[str]:
    """Returns the step ids an expression reads as ``steps.<step_id>...`` from the context root.

    Raises:
        jmespath.exceptions.ParseError: the expression does not compile.
    """
    found: set[str] = set()
    _walk(jmespath.compile(expression).parsed, at_root=True, found=found)
    return frozenset(found)


def without_references(value: Any, step_id: str) -> Any:
    """Returns a copy of a JSON value without the expressions that read ``steps.<step_id>``.

    A step that is planned away has no output, so an expression reading it would evaluate to
    null and its field be omitted at run time; removing the field now has the same effect and
    keeps the plan free of references to steps it does not have.
    """
    if isinstance(value, Mapping):
        return {k: without_references(v, step_id) for k, v in value.items() if not _reads(v, step_id)}
    if isinstance(value, list):
        return [without_references(v, step_id) for v in value if not _reads(v, step_id)]
    return value


def expression_reads(expression: str, step_id: str) -> bool:
    """Returns whether an expression reads ``steps.<step_id>``; False if it does not compile."""
    try:
        return step_id in referenced_steps(expression)
    except jmespath.exceptions.JMESPathError:
        # Validation reports the broken expression with its field; here it reads nothing.
        return False


def _reads(value: Any, step_id: str) -> bool:
    expression = expression_of(value)
    return expression is not None and expression_reads(expression, step_id)


def _depth(tree: Any) -> int:
    """The depth of a parsed expression's tree, measured without recursion."""
    deepest = 0
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, Mapping):
            continue
        deepest = max(deepest, depth)
        stack.extend((child, depth + 1) for child in node.get("children", []))
    return deepest


def _functions(node: Any) -> set[str]:
    if not isinstance(node, Mapping):
        return set()
    names = {str(node.get("value"))} if node.get("type") == "function_expression" else set()
    for child in node.get("children", []):
        names |= _functions(child)
    return names


def _walk(node: Any, *, at_root: bool, found: set[str]) -> None:
    if not isinstance(node, Mapping):
        return
    kind = node.get("type")
    children = [c for c in node.get("children", []) if isinstance(c, Mapping)]
    if not children:
        return
    if kind in _RELATIVE_TAIL:
        first, rest = children[0], children[1:]
        if kind == "subexpression" and at_root and _is_field(first, "steps") and rest:
            step = _leftmost_field(rest[0])
            if step is not None:
                found.add(step)
        _walk(first, at_root=at_root, found=found)
        for child in rest:
            _walk(child, at_root=False, found=found)
    elif kind == "expref":
        for child in children:
            _walk(child, at_root=False, found=found)
    else:
        for child in children:
            _walk(child, at_root=at_root, found=found)


def _is_field(node: Mapping[str, Any], name: str) -> bool:
    return node.get("type") == "field" and node.get("value") == name


def _leftmost_field(node: Mapping[str, Any]) -> str | None:
    if node.get("type") == "field":
        value = node.get("value")
        return value if isinstance(value, str) else None
    if node.get("type") in _CHAIN:
        children = [c for c in node.get("children", []) if isinstance(c, Mapping)]
        return _leftmost_field(children[0]) if children else None
    return None
