"""Callback signatures: ``Baton-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``; stdlib only.

The signed bytes are the timestamp, a dot, and the raw request body (``b"1700000000." + body``),
so a receiver verifies exactly the bytes it received and a captured request cannot be replayed
after the tolerance. ``verify_signature`` is meant to be copied into receivers as it is.
"""

from __future__ import annotations

import hashlib
import hmac
import time

SIGNATURE_HEADER = "Baton-Signature"
"""The header carrying the signature."""


def signature_header(secret: bytes, body: bytes, timestamp: int) -> str:
    """The Baton-Signature value of `body` sent at `timestamp` (Unix seconds)."""
    digest = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def verify_signature(
    secret: bytes, header: str, body: bytes, tolerance: float = 300.0, now: float | None = None
) -> bool:
    """Whether a callback's Baton-Signature header signs `body` with `secret`, recently enough.

    Args:
        secret: the deployment's callback secret (the bytes of --callback-secret-file, without
            trailing whitespace).
        header: the Baton-Signature header's value.
        body: the request body exactly as received.
        tolerance: how many seconds the signature's timestamp may be away from `now`.
        now: the current Unix time (default: time.time()).
    """
    timestamp: int | None = None
    candidates: list[str] = []
    for item in header.split(","):
        key, _, value = item.strip().partition("=")
        if key == "t" and value.isascii() and value.isdigit() and len(value) <= 12:
            timestamp = int(value)
        elif key == "v1":
            candidates.append(value)
    if timestamp is None or not candidates:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = signature_header(secret, body, timestamp).rpartition("v1=")[2]
    # Several v1 values let a sender sign with an old and a new secret while rotating.
    return any(hmac.compare_digest(expected.encode(), candidate.encode()) for candidate in candidates)
