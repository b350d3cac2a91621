"""The composition root: config → store, engine, servicers, grpc.aio server; graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import grpc
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from agents_clients import BreakingCaller, GrpcAgentCaller
from server.api.servicer import OrchestratorServicer
from server.callbacks import CallbackNotifier
from server.clock import SystemClock
from server.config import ServerConfig, agent_endpoints, parse_address
from server.engine import Engine
from server.health import HealthMonitor
from server.planner import Planner
from server.store import open_store
from server.store.base import ExecutionStore
from server.streaming import ExecutionHub

if TYPE_CHECKING:
    from agents import Fleet

logger = logging.getLogger(__name__)

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name


@dataclass
class RunningServer:
    """A started orchestrator (and its embedded fleet, if any)."""

    address: str
    """HOST:PORT actually bound."""
    port: int
    server: grpc.aio.Server
    engine: Engine
    store: ExecutionStore
    hub: ExecutionHub
    health_servicer: health.aio.HealthServicer
    caller: GrpcAgentCaller
    fleet: Fleet | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)
    _stopped: bool = False

    async def stop(self, grace: float = 5.0) -> None:
        """Drains: NOT_SERVING, end watches, finish in-flight RPCs, stop runners, close the store."""
        if self._stopped:
            return
        self._stopped = True
        await self.health_servicer.enter_graceful_shutdown()
        self.hub.close()
        await self.server.stop(grace)
        for task in self.background:
            task.cancel()
        await self.engine.close()
        await self.caller.close()
        await self.store.close()
        if self.fleet is not None:
            await self.fleet.stop(1.0)

    async def wait(self) -> None:
        """Returns when the server terminates."""
        await self.server.wait_for_termination()


def _sqlite_path(url: str) -> str | None:
    prefix = "sqlite:///"
    return url[len(prefix) :] if url.startswith(prefix) else None


def _storage_dir(db_path: str | None) -> str | None:
    return os.path.dirname(os.path.abspath(db_path)) if db_path else None


async def start_server(config: ServerConfig) -> RunningServer:
    """Starts everything the config describes and recovers unfinished executions.

    The port is bound first, so a taken port fails before anything else starts; whatever was
    started before a failure is stopped again.
    """
    parse_address(config.listen, "listen")
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # A second orchestrator on the same port must fail, not share it silently.
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    port = server.add_insecure_port(config.listen)
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.push_async_callback(server.stop, None)
        store = open_store(config.store_url)
        await store.open()
        cleanup.push_async_callback(store.close)
        fleet = None
        if config.agents == "embedded":
            from agents import FleetConfig, start_fleet

            db = _sqlite_path(config.store_url)
            ledger = config.ledger_path or (f"{db}.ledger" if db else ":memory:")
            fleet = await start_fleet(FleetConfig(listen="127.0.0.1:0", ledger_path=ledger))
            cleanup.push_async_callback(fleet.stop, 0.5)
            endpoints = agent_endpoints(fleet.address)
        else:
            endpoints = agent_endpoints(config.agents)
        grpc_caller = GrpcAgentCaller(endpoints)
        cleanup.push_async_callback(grpc_caller.close)
        caller = BreakingCaller(grpc_caller, config.breaker)
        clock = SystemClock()
        engine = Engine(store, caller, clock)
        engine.add_terminal_listener(CallbackNotifier().on_terminal)
        hub = ExecutionHub(store, plans=engine.plan_of)
        monitor = HealthMonitor(
            grpc_caller,
            store,
            breaker_states=caller.states,
            storage_path=_storage_dir(_sqlite_path(config.store_url)),
        )
        servicer = OrchestratorServicer(
            engine=engine,
            store=store,
            planner=Planner(),
            hub=hub,
            health=monitor,
            clock=clock,
            max_message_bytes=config.max_message_bytes,
        )
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, server)  # type: ignore[no-untyped-call]
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        reflection.enable_server_reflection(
            (SERVICE_NAME, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME),
            server,
        )
        await server.start()
        host = config.listen.rpartition(":")[0]
        running = RunningServer(
            address=f"{host}:{port}",
            port=port,
            server=server,
            engine=engine,
            store=store,
            hub=hub,
            health_servicer=health_servicer,
            caller=grpc_caller,
            fleet=fleet,
        )
        cleanup.push_async_callback(engine.close)
        resumed = await engine.recover()
        running.background.append(asyncio.create_task(monitor.run(config.health_interval)))
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
        cleanup.pop_all()  # started: from now on RunningServer.stop() owns the cleanup
    logger.info("baton serving on %s (store %s, %d executions resumed)", running.address, config.store_url, resumed)
    return running


async def serve(config: ServerConfig, *, ready: asyncio.Event | None = None) -> None:
    """Runs the orchestrator until SIGTERM or SIGINT, then drains gracefully."""
    running = await start_server(config)
    print(f"baton serving on {running.address}", flush=True)
    if ready is not None:
        ready.set()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    logger.info("shutting down (grace %.1fs)", config.grace)
    await running.stop(config.grace)
