"""grpc.health.v1 with List, for every server of the project (the orchestrator's and the agents').

grpcio-health-checking's aio servicer leaves List unimplemented: a call answered UNIMPLEMENTED and
logged a NotImplementedError traceback each time, so a client polling it flooded the log.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2


class HealthServicer(health.aio.HealthServicer):  # type: ignore[misc]
    """grpc.health.v1 (Check, Watch) with List: every health name with its status."""

    async def List(
        self, request: health_pb2.HealthListRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthListResponse:
        """Every health name with its status."""
        response = health_pb2.HealthListResponse()
        for name, status in list(self._server_status.items()):
            response.statuses[name].status = status
        return response
