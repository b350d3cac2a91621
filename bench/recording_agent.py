"""An agent process that says when each call reached it: what ``--recover`` times recovery by.

It serves ``baton.v1.Analytics/RecordEvents`` (the only operation workload W calls), each agent
service's ``GetStatus`` (HEALTHY: the orchestrator's health monitor asks) and grpc.health.v1
(SERVING for the seven agent services, as the reference fleet reports), answers
each call after ``--latency`` seconds, and prints one line per call *as it arrives*:
``call WALL_TIME IDEMPOTENCY_KEY`` (``time.time()``, the ``baton-idempotency-key`` metadata,
``execution_id/step_id``). The reference agents print nothing per call, and a call that baton
re-issues after a restart records no new event (DESIGN.md, Recovery: the same call, issued again
with the same key), so only the agent can see that an execution is running again.

For ``--agent-latency S --hold-output-bytes N`` (executions held with an output recorded) it
answers the calls of the steps named by ``--fast-step`` at once, and pads every answer to about
``--output-bytes`` (one quality metric with a long name); ``--quiet`` prints no line per call.

Run: ``python -m bench.recording_agent --listen 127.0.0.1:PORT --latency 60 [--fast-step A]
[--output-bytes 1024] [--quiet]``; it prints ``recording agent serving on HOST:PORT`` once it serves.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time

import grpc
from baton.v1 import analytics_pb2, common_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from agents._fleet import SERVICE_NAMES
from agents_clients.health import HealthServicer

SERVICES = tuple(name for name in SERVICE_NAMES if not name.endswith(".FaultInjection"))
"""The seven agent services: each answers GetStatus and is SERVING on grpc.health.v1."""


def answer(output_bytes: int) -> bytes:
    """A RecordEventsResponse of about `output_bytes` serialized bytes (at least its bare size)."""
    response = analytics_pb2.RecordEventsResponse(recorded=1)
    padding = output_bytes - response.ByteSize() - 16  # the map entry's tags, lengths and double
    if padding > 0:
        response.quality.metrics["p" * padding] = 1.0
    return response.SerializeToString()


async def serve(
    listen: str, latency_s: float, fast_steps: frozenset[str] = frozenset(), output_bytes: int = 0, quiet: bool = False
) -> None:
    """Serves until cancelled."""
    reply = answer(output_bytes)

    async def record_events(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        metadata = dict(context.invocation_metadata() or ())
        key = str(metadata.get("baton-idempotency-key", "-"))
        if not quiet:
            sys.stdout.write(f"call {time.time():.6f} {key}\n")
            sys.stdout.flush()
        parts = key.split("/")
        if len(parts) < 2 or parts[1] not in fast_steps:  # the key is execution_id/step_id[/alt]
            await asyncio.sleep(latency_s)
        return reply

    async def get_status(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        return common_pb2.AgentStatus(status=common_pb2.AGENT_HEALTH_HEALTHY).SerializeToString()

    server = grpc.aio.server()
    for service in SERVICES:  # raw bytes in and out: nothing here reads a request
        methods = {"GetStatus": grpc.unary_unary_rpc_method_handler(get_status)}
        if service == "baton.v1.Analytics":
            methods["RecordEvents"] = grpc.unary_unary_rpc_method_handler(record_events)
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(service, methods),))
    health = HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    for name in ("", *SERVICES):
        await health.set(name, health_pb2.HealthCheckResponse.SERVING)
    port = server.add_insecure_port(listen)
    await server.start()
    print(f"recording agent serving on {listen.rsplit(':', 1)[0]}:{port}", flush=True)
    try:
        await server.wait_for_termination()
    finally:
        await server.stop(1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.recording_agent", description=__doc__.splitlines()[0])
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any)")
    parser.add_argument("--latency", type=float, default=60.0, metavar="S", help="seconds before each answer")
    parser.add_argument("--fast-step", action="append", default=[], metavar="STEP", help="answer its calls at once")
    parser.add_argument("--output-bytes", type=int, default=0, metavar="N", help="pad each answer to about N bytes")
    parser.add_argument("--quiet", action="store_true", help="print no line per call")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args.listen, args.latency, frozenset(args.fast_step), args.output_bytes, args.quiet))


if __name__ == "__main__":
    main()
