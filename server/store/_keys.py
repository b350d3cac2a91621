"""Keys a store can hold: text without NUL, for SQLite and PostgreSQL alike (see InvalidKeyError)."""

from __future__ import annotations

from server.engine.ports import InvalidKeyError, NewExecution

_NEW_KEYS = ("execution_id", "user_id", "workflow_type", "plan_id", "request_id")


def check_new_keys(new: NewExecution) -> None:
    """Refuses a new execution whose keys a store cannot hold.

    Raises:
        InvalidKeyError: naming the first such key.
    """
    for name in _NEW_KEYS:
        if "\x00" in getattr(new, name):
            raise InvalidKeyError(name)


def storable(*keys: str) -> bool:
    """Whether a store can hold every one of `keys` (a lookup by any other finds nothing)."""
    return not any("\x00" in key for key in keys)


def storable_text(text: str) -> str:
    """Free text (a quarantine's reason, which may quote anything) with NUL replaced by U+FFFD."""
    return text.replace("\x00", "\ufffd")
