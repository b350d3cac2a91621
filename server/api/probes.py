"""Health checking and reflection: grpc.health.v1 (Check, Watch, List) and reflection v1 and v1alpha.

Health names:
- "" and "baton.v1.Orchestrator": SERVING while the store answers (reads and writes need it);
  NOT_SERVING when it does not, and from the moment the server starts to drain.
- each agent's service ("baton.v1.Automation", ...): SERVING while the agent answers its status,
  NOT_SERVING while it is offline. The orchestrator itself stays SERVING when agents are down:
  it can still answer status, watches and controls, and degrades or fails runs by their plans.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

import grpc
from baton.v1 import common_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2
from grpc_reflection.v1alpha._async import ReflectionServicer

from agents_clients.catalog import AGENT_SERVICES
from agents_clients.health import HealthServicer

logger = logging.getLogger(__name__)

REFLECTION_V1 = "grpc.reflection.v1.ServerReflection"
"""The v1 reflection service. Its messages are v1alpha's under another package, field for field,
so the v1alpha servicer answers both (grpcio-reflection serves only v1alpha)."""


def agent_health_name(agent: str) -> str:
    """The health name of an agent: its gRPC service's full name."""
    return str(AGENT_SERVICES[agent].full_name)


def serve_health_and_reflection(server: grpc.aio.Server, services: Iterable[str]) -> HealthServicer:
    """Adds grpc.health.v1 and server reflection (v1 and v1alpha) to the server.

    Args:
        server: the server, not started yet.
        services: the full names of the application's services, to list in reflection.
    """
    health_servicer = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    health_name = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
    names = (*services, health_name, reflection.SERVICE_NAME, REFLECTION_V1)
    reflection.enable_server_reflection(names, server)
    v1 = ReflectionServicer(names)
    handler = grpc.method_handlers_generic_handler(
        REFLECTION_V1,
        {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                v1.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
            )
        },
    )
    server.add_generic_rpc_handlers((handler,))
    return health_servicer


async def report(
    health_servicer: health.aio.HealthServicer,
    service: str,
    *,
    store_ok: bool,
    agents: Mapping[str, common_pb2.AgentStatus],
) -> None:
    """Sets every health name from the latest probes (a no-op once the server drains)."""
    serving = health_pb2.HealthCheckResponse.SERVING
    not_serving = health_pb2.HealthCheckResponse.NOT_SERVING
    for name in ("", service):
        await health_servicer.set(name, serving if store_ok else not_serving)
    for agent, status in agents.items():
        offline = status.status == common_pb2.AGENT_HEALTH_OFFLINE
        await health_servicer.set(agent_health_name(agent), not_serving if offline else serving)
