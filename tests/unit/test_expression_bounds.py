"""Expressions are evaluated within bounds: one that would build millions of values or a string
of many megabytes stops with an ExpressionError instead of stalling the engine."""

from __future__ import annotations

import pytest

from server.engine.expressions import MAX_CHARS, MAX_VALUES, ExpressionError, evaluate

EIGHT = "[@, @, @, @, @, @, @, @]"


def test_an_ordinary_projection_over_a_long_list_is_evaluated() -> None:
    context = {"jobs": [{"id": n} for n in range(50_000)]}
    assert len(evaluate("jobs[*].id", context)) == 50_000
    assert evaluate("length(jobs[?id > `49990`])", context) == 9


def test_an_expression_that_multiplies_a_list_past_the_bound_is_stopped() -> None:
    context = {"jobs": list(range(10_000))}
    # 10,000 * 8 * 8 = 640,000 items, built from 1,460,000 values: past MAX_VALUES.
    with pytest.raises(ExpressionError, match=f"builds more than {MAX_VALUES:,} values"):
        evaluate(f"jobs[*].{EIGHT}[] | [*].{EIGHT}[]", context)


def test_a_string_built_past_the_bound_is_stopped() -> None:
    context = {"text": "x" * (1024 * 1024)}
    # 1 MiB, times 8, times 8 again: 64 MiB, past MAX_CHARS.
    expression = f"[text, text, text, text, text, text, text, text] | join('', @) | {EIGHT} | join('', @)"
    with pytest.raises(ExpressionError, match=f"{MAX_CHARS:,} characters"):
        evaluate(expression, context)
