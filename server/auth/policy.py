"""Who may call what: one table naming, for every RPC of baton.v1.Orchestrator and SeedApi, its rule.

Rules:

- **The role gate** (`Rule.roles`) is enforced centrally, by the authentication interceptor,
  before the servicer runs: a caller holding none of the roles gets PERMISSION_DENIED naming
  them. An RPC of these services missing from the table is refused PERMISSION_DENIED as well,
  so a new RPC is closed until someone decides who may call it (a test enumerates the service
  descriptors against this table).
- **Ownership** (`Rule.scope`) is enforced by the servicer, which alone knows an execution's
  owner (the user_id it was submitted for):
  - OWN: the request acts for the caller: the owner of what it creates is the caller's
    subject, never a field the caller sets (a different user_id is PERMISSION_DENIED).
  - READ: a user reads only the executions they own; operators and admins read all. Another
    user's execution is NOT_FOUND exactly like a missing one, and a list is filtered to the
    caller's own whatever the request asks.
  - CONTROL: a user controls only the executions they own; admins control all. Another user's
    execution is NOT_FOUND for a user (who cannot see it) and PERMISSION_DENIED for an operator
    (who can).
  - SYSTEM: not about one user's executions; the role gate is the whole rule.
- With authentication off every caller is ANONYMOUS, who holds every role and owns nothing in
  particular: the table lets everything through and ownership is whatever the request names.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from baton.v1 import orchestrator_pb2, seed_api_pb2

from server.auth import Principal, Role


class Scope(enum.Enum):
    """Which executions an RPC touches, and so which ownership check the servicer makes."""

    OWN = "own"
    READ = "read"
    CONTROL = "control"
    SYSTEM = "system"


@dataclass(frozen=True)
class Rule:
    """Who may call one RPC."""

    roles: frozenset[Role]
    """The caller must hold at least one of them."""
    scope: Scope
    """The ownership check the servicer makes (see the module docstring)."""

    def admits(self, principal: Principal) -> bool:
        """Whether the principal holds one of the rule's roles."""
        return any(principal.has(role) for role in self.roles)

    def needed(self) -> str:
        """The roles, for a refusal: `the operator or admin role`."""
        names = [role.value for role in Role if role in self.roles]
        return f"the {' or '.join(names)} role"


_ANYONE = frozenset(Role)
_STAFF = frozenset({Role.OPERATOR, Role.ADMIN})
_ADMIN = frozenset({Role.ADMIN})
_PUBLISHERS = frozenset({Role.PUBLISHER, Role.ADMIN})

_ORCHESTRATOR = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
_SEED = seed_api_pb2.DESCRIPTOR.services_by_name["SeedApi"].full_name

_RULES: dict[str, dict[str, Rule]] = {
    _ORCHESTRATOR: {
        "ExecuteWorkflow": Rule(_ANYONE, Scope.OWN),
        "PlanWorkflow": Rule(_ANYONE, Scope.OWN),
        "GetExecution": Rule(_ANYONE, Scope.READ),
        "WatchExecution": Rule(_ANYONE, Scope.READ),
        "GetStepOutput": Rule(_ANYONE, Scope.READ),
        "ListExecutions": Rule(_ANYONE, Scope.READ),
        "CancelExecution": Rule(_ANYONE, Scope.CONTROL),
        "PauseExecution": Rule(_ANYONE, Scope.CONTROL),
        "ResumeExecution": Rule(_ANYONE, Scope.CONTROL),
        "SignalExecution": Rule(_ANYONE, Scope.CONTROL),
        "RerunExecution": Rule(_ANYONE, Scope.CONTROL),
        "GetSystemHealth": Rule(_STAFF, Scope.SYSTEM),
        "ListAuditEvents": Rule(_STAFF, Scope.SYSTEM),
        "DeleteUserData": Rule(_ADMIN, Scope.SYSTEM),
        # An event names the user it is about, and the executions it starts are theirs: only an
        # event source's account (or an admin) may speak for any user that way.
        "PublishEvent": Rule(_PUBLISHERS, Scope.SYSTEM),
        "RegisterTriggerRule": Rule(_ADMIN, Scope.SYSTEM),
        "ListTriggerRules": Rule(_STAFF, Scope.SYSTEM),
        "DeleteTriggerRule": Rule(_ADMIN, Scope.SYSTEM),
        # The workflow registry: definitions are the admins' (DESIGN.md, "Observability and security").
        "RegisterWorkflow": Rule(_ADMIN, Scope.SYSTEM),
        "GetWorkflow": Rule(_ADMIN, Scope.SYSTEM),
        "ListWorkflows": Rule(_ADMIN, Scope.SYSTEM),
        "DeprecateWorkflow": Rule(_ADMIN, Scope.SYSTEM),
        "GetWorkflowReport": Rule(_STAFF, Scope.SYSTEM),
    },
    # The seed's shapes delegate to the Orchestrator servicer's RPCs of the same meaning, so
    # the same ownership checks apply; the gate is by the seed's own method name.
    _SEED: {
        "Execute": Rule(_ANYONE, Scope.OWN),
        "GetStatus": Rule(_ANYONE, Scope.READ),
        "WatchStatus": Rule(_ANYONE, Scope.READ),
        "GetHealth": Rule(_STAFF, Scope.SYSTEM),
    },
}

POLICY: Mapping[str, Rule] = MappingProxyType(
    {f"/{service}/{method}": rule for service, methods in _RULES.items() for method, rule in methods.items()}
)
"""Full method name (`/baton.v1.Orchestrator/GetExecution`) → its rule."""

GUARDED_SERVICES = frozenset(_RULES)
"""The services whose every RPC needs a rule (a missing one is refused)."""


def may_read(principal: Principal, owner: str) -> bool:
    """Whether the principal may see an execution owned by `owner` (READ)."""
    return principal.reads_all or principal.subject == owner


def may_control(principal: Principal, owner: str) -> bool:
    """Whether the principal may control an execution owned by `owner` (CONTROL)."""
    return principal.has(Role.ADMIN) or principal.subject == owner


__all__ = ["GUARDED_SERVICES", "POLICY", "Rule", "Scope", "may_control", "may_read"]
