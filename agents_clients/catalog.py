"""The agent catalog: agent names, their services and operations, derived from the descriptors.

There is no hand-written table of operations: every RPC of an agent's service is an operation,
and its request and response classes come from the method's descriptor. This module imports no
grpc, so the planner and the engine's tests may use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache, cached_property
from types import MappingProxyType
from typing import Any

from baton.v1 import (
    analytics_pb2,
    automation_pb2,
    document_intelligence_pb2,
    job_discovery_pb2,
    matching_intelligence_pb2,
    security_pb2,
    ui_ux_pb2,
)
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor
from google.protobuf.message import Message

_SERVICES: dict[str, ServiceDescriptor] = {
    "document_intelligence": document_intelligence_pb2.DESCRIPTOR.services_by_name["DocumentIntelligence"],
    "job_discovery": job_discovery_pb2.DESCRIPTOR.services_by_name["JobDiscovery"],
    "matching_intelligence": matching_intelligence_pb2.DESCRIPTOR.services_by_name["MatchingIntelligence"],
    "automation": automation_pb2.DESCRIPTOR.services_by_name["Automation"],
    "ui_ux": ui_ux_pb2.DESCRIPTOR.services_by_name["UiUx"],
    "analytics": analytics_pb2.DESCRIPTOR.services_by_name["Analytics"],
    "security": security_pb2.DESCRIPTOR.services_by_name["Security"],
}

#: Agent name → its gRPC service descriptor, in the seed's order.
AGENT_SERVICES: MappingProxyType[str, ServiceDescriptor] = MappingProxyType(_SERVICES)

#: The seven agent names.
AGENTS: tuple[str, ...] = tuple(_SERVICES)


#: The operations that are reads: idempotent and without effects (nothing recorded, sent, spent
#: or changed, by the agent or outside it), so that a second attempt sent while the first is still
#: running (a hedge, agents_clients.routing) costs only the work. Every agent's GetStatus is one.
#: Not reads: SubmitApplication, WithdrawApplication (the ledger), RecordEvents (analytics'
#: events), Notify (a message sent), ScreenCompliance (the agent keeps a history of verdicts in its
#: status), and SearchJobs, which spends the job boards' quotas.
READ_OPERATIONS: frozenset[tuple[str, str]] = frozenset(
    {
        ("document_intelligence", "AnalyzeDocument"),
        ("document_intelligence", "OptimizeDocument"),
        ("matching_intelligence", "ScoreMatches"),
        ("automation", "ListApplications"),
        ("analytics", "GetInsights"),
        *((agent, "GetStatus") for agent in _SERVICES),
    }
)


@dataclass(frozen=True)
class Operation:
    """One callable operation of an agent: an RPC of its service."""

    agent: str
    """The agent's name, e.g. ``job_discovery``."""
    name: str
    """The RPC's name, e.g. ``SearchJobs``."""
    method: MethodDescriptor
    """The RPC's descriptor."""

    @cached_property
    def path(self) -> str:
        """The gRPC method path, e.g. ``/baton.v1.JobDiscovery/SearchJobs``."""
        return f"/{self.method.containing_service.full_name}/{self.method.name}"

    @cached_property
    def request_class(self) -> type[Message]:
        """The request message class."""
        return message_factory.GetMessageClass(self.method.input_type)

    @cached_property
    def response_class(self) -> type[Message]:
        """The response message class."""
        return message_factory.GetMessageClass(self.method.output_type)

    @cached_property
    def read(self) -> bool:
        """Whether the operation is a read (READ_OPERATIONS): it may be hedged."""
        return (self.agent, self.name) in READ_OPERATIONS

    def new_request(self) -> Any:
        """Returns an empty request message."""
        return self.request_class()


class UnknownAgentError(LookupError):
    """The agent name is not one of the seven agents."""


class UnknownOperationError(LookupError):
    """The agent's service has no RPC of that name."""


@cache
def operation(agent: str, name: str) -> Operation:
    """Returns the operation `name` of `agent`.

    Raises:
        UnknownAgentError: `agent` is not an agent name.
        UnknownOperationError: the agent's service has no such RPC.
    """
    service = _SERVICES.get(agent)
    if service is None:
        raise UnknownAgentError(f"unknown agent {agent!r}; known agents: {', '.join(AGENTS)}")
    method = service.methods_by_name.get(name)
    if method is None or method.client_streaming or method.server_streaming:
        known = ", ".join(m.name for m in service.methods if not m.server_streaming)
        raise UnknownOperationError(f"agent {agent!r} has no operation {name!r}; its operations: {known}")
    return Operation(agent=agent, name=name, method=method)


def operations(agent: str) -> tuple[str, ...]:
    """Returns the operation names of `agent`, in service order."""
    if agent not in _SERVICES:
        raise UnknownAgentError(f"unknown agent {agent!r}; known agents: {', '.join(AGENTS)}")
    return tuple(m.name for m in _SERVICES[agent].methods)
