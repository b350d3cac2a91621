"""Quoting a caller's input in a message: a bounded prefix, never the whole (it may be megabytes)."""

from __future__ import annotations

QUOTE_CHARS = 64
"""Characters of an input quoted in an error message or a log line."""


def clip(value: object, limit: int = QUOTE_CHARS) -> str:
    """`value`'s first `limit` characters, then how long it was when it was cut
    (``abc… (70000 characters)``); for messages that put their own quotes around it."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… ({len(text)} characters)"


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """`value` quoted as Python does (control characters and lone surrogates escaped), cut to
    its first `limit` characters like `clip` (``'abc'…`` followed by its length)."""
    text = value if isinstance(value, str) else str(value)
    if len(text) <= limit:
        return repr(text)
    return f"{text[:limit]!r}… ({len(text)} characters)"
