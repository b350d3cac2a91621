"""Opaque ListExecutions page tokens: the position after the last row of a page."""

from __future__ import annotations

import base64
import binascii

from server.quoting import quote
from server.store._keys import storable
from server.store.base import InvalidPageTokenError

# A version prefix lets a later store change the token's shape and still refuse old tokens
# with InvalidPageTokenError rather than misreading them.
_VERSION = "1"
# The times a token may name: what both stores can turn into a timestamp (years 1 to 9999,
# in microseconds since 1970). Anything else was not made here, and would overflow the
# store's conversion (OverflowError, or PostgreSQL's int64) instead of being refused.
_MIN_MICROS = -62_135_596_800_000_000
_MAX_MICROS = 253_402_300_799_999_999
_MAX_ID_CHARS = 256


def encode_page_token(created_at_micros: int, execution_id: str) -> str:
    """Returns the token of the position just after (created_at, execution_id), newest first."""
    raw = f"{_VERSION}:{created_at_micros}:{execution_id}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_page_token(token: str) -> tuple[int, str]:
    """Returns the (created_at microseconds, execution_id) a token points after.

    Raises:
        InvalidPageTokenError: the token was not made by encode_page_token.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
        version, created_at, execution_id = raw.split(":", 2)
        micros = int(created_at)
        if (
            version != _VERSION
            or not execution_id
            or len(execution_id) > _MAX_ID_CHARS
            or not storable(execution_id)
            or not _MIN_MICROS <= micros <= _MAX_MICROS
        ):
            raise ValueError("unknown token shape")
        return micros, execution_id
    except (ValueError, UnicodeError, binascii.Error) as error:
        raise InvalidPageTokenError(f"page_token {quote(token)} is not a token this store made") from error


# ---- the audit trail's tokens: the position after an entry's number, newest first ----------------

_AUDIT_VERSION = "a1"
_MAX_AUDIT_NO = 2**63 - 1
"""Entry numbers are 64-bit signed integers in both databases."""


def encode_audit_token(audit_no: int) -> str:
    """Returns the token of the position just after audit entry `audit_no`, newest first."""
    raw = f"{_AUDIT_VERSION}:{audit_no}".encode()
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_audit_token(token: str) -> int:
    """Returns the audit entry number a token points after.

    Raises:
        InvalidPageTokenError: the token was not made by encode_audit_token.
    """
    try:
        padded = token + "=" * (-len(token) % 4)
        raw = base64.b64decode(padded.encode("ascii"), altchars=b"-_", validate=True).decode("utf-8")
        version, number = raw.split(":", 1)
        audit_no = int(number)
        if version != _AUDIT_VERSION or not 0 < audit_no <= _MAX_AUDIT_NO or number != str(audit_no):
            raise ValueError("unknown token shape")
        return audit_no
    except (ValueError, UnicodeError, binascii.Error) as error:
        raise InvalidPageTokenError(f"page_token {token[:64]!r} is not a token this store made") from error
