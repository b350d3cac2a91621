"""Who is calling: the authenticated principal of the current request, and the roles it may hold.

The interceptor that authenticates a request sets the principal in a context variable for the
servicer's task; the servicers read it with `current_principal()`. With authentication off
(`--auth none`, the embedded default on loopback) every caller is `ANONYMOUS`, who may do
everything, and ownership falls back to the user_id a request names.
"""

from __future__ import annotations

import contextvars
import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    """What a subject may do; a token's `roles` claim lists them (none means USER)."""

    USER = "user"
    """Sees and controls only the executions it owns."""
    OPERATOR = "operator"
    """Reads every execution, the audit trail and the system's health."""
    ADMIN = "admin"
    """Everything an operator may, plus controlling any execution and deleting a user's data."""
    PUBLISHER = "publisher"
    """Publishes events (PublishEvent) that start workflows for the users they name; an event
    source's account, not a person's: it reads nothing and controls nothing else."""


@dataclass(frozen=True)
class Principal:
    """The caller of the current request."""

    subject: str
    """The token's `sub` claim: the user; empty for ANONYMOUS."""
    roles: frozenset[Role]
    """The roles the token grants."""
    authenticated: bool = True
    """False for ANONYMOUS (authentication is off)."""

    def has(self, role: Role) -> bool:
        """Whether the principal holds `role` (ANONYMOUS holds every role)."""
        return not self.authenticated or role in self.roles

    @property
    def reads_all(self) -> bool:
        """Whether it may read every user's executions."""
        return self.has(Role.OPERATOR) or self.has(Role.ADMIN)


ANONYMOUS = Principal(subject="", roles=frozenset(Role), authenticated=False)
"""The caller when authentication is off."""

_current: contextvars.ContextVar[Principal] = contextvars.ContextVar("baton_principal", default=ANONYMOUS)


def current_principal() -> Principal:
    """The principal of the request being served (ANONYMOUS when authentication is off)."""
    return _current.get()


def set_principal(principal: Principal) -> contextvars.Token[Principal]:
    """Sets the current request's principal; returns the token to reset it with."""
    return _current.set(principal)


__all__ = ["ANONYMOUS", "Principal", "Role", "current_principal", "set_principal"]
