"""The composition root: config → store, engine, servicers, grpc.aio server; graceful shutdown."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

import grpc
from baton.v1 import common_pb2, orchestrator_pb2, orchestrator_pb2_grpc, seed_api_pb2, seed_api_pb2_grpc
from grpc_health.v1 import health, health_pb2

from agents_clients import BreakingCaller, CapacityCaller, GrpcAgentCaller, TracingCaller
from agents_clients.handlers import MalformedRequests
from server.api.estimates import Estimates
from server.api.handlers import HandlerGuard
from server.api.probes import report, serve_health_and_reflection
from server.api.seed import SeedApiServicer
from server.api.servicer import OrchestratorServicer
from server.api.shedding import PENDING_OPTIONS, LoadShedder
from server.auth.interceptor import AuthInterceptor
from server.auth.keys import KeyFileError
from server.auth.verifier import JwtVerifier
from server.callbacks import CallbackNotifier, CallbackRelay
from server.clock import SystemClock
from server.config import ConfigError, ServerConfig, agent_endpoints, is_loopback, parse_address
from server.engine import Engine, EngineConfig, ReplicaConfig
from server.estimates import CostModel, DurationRecorder
from server.health import HealthMonitor
from server.planner import Planner
from server.registry import WorkflowRegistry
from server.retention import RetentionSweeper
from server.store import open_store
from server.store.base import ExecutionStore
from server.streaming import ExecutionHub
from server.telemetry.tracing import (
    ORCHESTRATOR_SERVICE,
    current_trace_parent,
    make_tracer_provider,
    server_interceptor,
)
from server.tls import envoy_certificates, start_probe_port, transport

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
    from opentelemetry.trace import TracerProvider

    from agents import Fleet
    from server.engine.ports import AgentCaller
    from server.telemetry.metrics import MetricsEndpoint
    from server.web import WebView

logger = logging.getLogger(__name__)

SERVICE_NAME = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
SEED_SERVICE_NAME = seed_api_pb2.DESCRIPTOR.services_by_name["SeedApi"].full_name


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
    capacity: CapacityCaller
    """The agent calls' bulkheads, rate limits and job-board limits (agents_clients.capacity)."""
    monitor: HealthMonitor
    """The agents' statuses, refreshed every health_interval."""
    fleet: Fleet | None = None
    callbacks: CallbackNotifier | None = None
    relay: CallbackRelay | None = None
    servicer: OrchestratorServicer | None = None
    """The Orchestrator service's servicer (its caches, for tests and diagnostics)."""
    """Sends the callbacks owed in the store's outbox through `callbacks` (and closes it)."""
    guard: HandlerGuard | None = None
    """The handlers' guard: its ledger counts open watches and unread watch bytes per user."""
    background: list[asyncio.Task[None]] = field(default_factory=list)
    owned_tracer_provider: SdkTracerProvider | None = None
    """The provider made from config.tracing, flushed and shut down last (a given one is the giver's)."""
    security: str = ""
    """TLS, mTLS or plaintext on loopback, and how the agents are called (server/tls.py)."""
    probe: grpc.aio.Server | None = None
    """The plaintext grpc.health.v1-only port (--health-listen), if any."""
    metrics: MetricsEndpoint | None = None
    """The Prometheus endpoint (--metrics); None when off."""
    web: WebView | None = None
    """The web view (--web); None when off."""
    web_socket_dir: str = ""
    """The private directory of the unix socket the web view calls the server on; removed on stop."""
    recorder: DurationRecorder | None = None
    """The recorded durations of agent operations (server/estimates), flushed last at stop."""
    _stopped: bool = False

    async def stop(self, grace: float = 5.0, drain: float = 0.0) -> None:
        """Drains and stops, in this order.

        1. Health says NOT_SERVING at once, while RPCs are still served for `drain` seconds, so
           load balancers stop sending traffic before the server stops taking it.
        2. Watches end UNAVAILABLE (their clients resume elsewhere with after_sequence); new RPCs
           are refused and those in flight get `grace` seconds.
        3. The runners stop without recording anything (their executions resume wherever the
           store is next opened), then the agents' channels and the store close.
        """
        if self._stopped:
            return
        self._stopped = True
        if self.web is not None:
            await self.web.close()  # first: its live streams end before their watches are cut
        await self.health_servicer.enter_graceful_shutdown()
        if drain > 0:
            logger.info("draining for %.1fs (health NOT_SERVING, still serving)", drain)
            await asyncio.sleep(drain)
        self.hub.close()
        await self.server.stop(grace)
        if self.probe is not None:
            await self.probe.stop(None)
        if self.metrics is not None:
            await self.metrics.close()
        for task in self.background:
            task.cancel()
        await self.engine.close()
        if self.recorder is not None:
            await self.recorder.close()  # after the engine: no attempt can be recorded after it
        if self.relay is not None:
            await self.relay.close()  # after the engine: no terminal listener call can follow
        elif self.callbacks is not None:
            await self.callbacks.close()
        await self.caller.close()
        await self.store.close()
        if self.fleet is not None:
            await self.fleet.stop(1.0)
        if self.web_socket_dir:
            shutil.rmtree(self.web_socket_dir, ignore_errors=True)
        if self.owned_tracer_provider is not None:
            # Last, so the spans of the attempts the stop cancelled are exported too; in a thread,
            # as flushing to a collector blocks.
            await asyncio.to_thread(self.owned_tracer_provider.shutdown)

    async def wait(self) -> None:
        """Returns when the server terminates."""
        await self.server.wait_for_termination()


def _sqlite_path(url: str) -> str | None:
    prefix = "sqlite:///"
    return url[len(prefix) :] if url.startswith(prefix) else None


def _storage_dir(db_path: str | None) -> str | None:
    return os.path.dirname(os.path.abspath(db_path)) if db_path else None


def _authentication(config: ServerConfig) -> tuple[list[grpc.aio.ServerInterceptor], str]:
    """The interceptors `config.auth` asks for, and the start-up log's line about them."""
    if config.auth != "jwt":
        if config.auth == "none" and not is_loopback(config.listen):
            logger.warning(
                "AUTHENTICATION IS OFF on %s (--auth none): every caller may read and control every execution",
                config.listen,
            )
        how = "--auth none" if config.auth else "the default on loopback; --auth jwt turns it on"
        return [], f"authentication off ({how}): every caller may do everything"
    try:
        verifier = JwtVerifier(config.jwt_key, issuer=config.jwt_issuer, audience=config.jwt_audience)
    except KeyFileError as error:
        raise ConfigError(str(error)) from None
    return [AuthInterceptor(verifier)], f"authentication: {verifier.describe()}"


async def start_server(config: ServerConfig, *, tracer_provider: TracerProvider | None = None) -> RunningServer:
    """Starts everything the config describes and recovers unfinished executions.

    The port is bound first, so a taken port fails before anything else starts; whatever was
    started before a failure is stopped again.

    Args:
        config: what to start.
        tracer_provider: makes the spans instead of the provider config.tracing describes (tests
            pass one with an in-memory exporter); shared with the embedded fleet, never shut down here.
    """
    parse_address(config.listen, "listen")
    try:
        callbacks = CallbackNotifier.from_config(config.callbacks)  # reads the secret: fails early
    except ValueError as error:
        raise ConfigError(str(error)) from None
    options = [
        ("grpc.max_receive_message_length", config.max_message_bytes),
        ("grpc.max_send_message_length", config.max_message_bytes),
        # A second orchestrator on the same port must fail, not share it silently.
        ("grpc.so_reuseport", 0),
        # Keepalive: clients that ping every 10 s or more (grpc-js, grpc-go, Envoy) on long watch
        # streams, even with no call open, are never cut off with "too many pings" (gRPC's default
        # expects at most one ping per 5 minutes and sends GOAWAY after two strikes); the server
        # pings idle connections each minute to find dead peers.
        ("grpc.keepalive_time_ms", 60_000),
        ("grpc.keepalive_timeout_ms", 20_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 5_000),
        ("grpc.http2.max_ping_strikes", 0),
        *PENDING_OPTIONS,
    ]
    # TLS and plaintext rules are checked, and certificates loaded, before anything is bound.
    remote_agents = (
        ()
        if config.agents == "embedded"
        # A dns:NAME:PORT endpoint is checked by its name (localhost is loopback, others remote).
        else sorted(
            {a.removeprefix("dns:") for addresses in agent_endpoints(config.agents).values() for a in addresses}
        )
    )
    security = transport(config, remote_agents)
    # Tracing (server.telemetry.tracing): a span per RPC, ExecuteWorkflow's stored with the execution.
    owned_provider = make_tracer_provider(config.tracing, ORCHESTRATOR_SERVICE) if tracer_provider is None else None
    if tracer_provider is None:
        tracer_provider = owned_provider
    tracing = [server_interceptor(tracer_provider)] if tracer_provider is not None else []
    interceptors, auth_line = _authentication(config)
    # Tracing first, so that a request authentication refuses is traced too; malformed bytes last,
    # so that authentication answers first (agents_clients.handlers).
    # Load shedding right after tracing: a burst is refused before any other work (server.api.shedding).
    shedder = LoadShedder(config.limits.max_calls_in_flight, config.limits.calls_retry_after)
    server = grpc.aio.server(options=options, interceptors=[*tracing, shedder, *interceptors, MalformedRequests()])
    port = security.add_port(server, config.listen)
    async with contextlib.AsyncExitStack() as cleanup:
        cleanup.push_async_callback(server.stop, None)
        if owned_provider is not None:
            cleanup.push_async_callback(asyncio.to_thread, owned_provider.shutdown)
        store = open_store(config.store_url, payload_threshold=config.payload_threshold)
        await store.open()
        cleanup.push_async_callback(store.close)
        fleet = None
        if config.agents == "embedded":
            from agents import FleetConfig, start_fleet

            db = _sqlite_path(config.store_url)
            ledger = config.ledger_path or (f"{db}.ledger" if db else ":memory:")
            fleet = await start_fleet(
                FleetConfig(
                    listen="127.0.0.1:0",
                    ledger_path=ledger,
                    faults=config.agent_faults,
                    max_message_bytes=config.max_message_bytes,
                ),
                tracer_provider=tracer_provider,
            )
            cleanup.push_async_callback(fleet.stop, 0.5)
            endpoints = agent_endpoints(fleet.address)
        else:
            endpoints = agent_endpoints(config.agents)
        grpc_caller = GrpcAgentCaller(
            endpoints, tls=security.agents, max_message_bytes=config.max_message_bytes, routing=config.routing
        )
        cleanup.push_async_callback(grpc_caller.close)
        await grpc_caller.refresh_dns()  # dns:NAME:PORT endpoints: their addresses before the first call
        caller = BreakingCaller(grpc_caller, config.breaker, budget=config.retry_budget)
        # Outside the breaker, so a wait for a slot is never a slow call (agents_clients.capacity).
        capacity = CapacityCaller(caller, config.capacity)
        # Outermost, so an attempt an open breaker refuses has its span too.
        engine_caller: AgentCaller = capacity if tracer_provider is None else TracingCaller(capacity, tracer_provider)
        # Metrics (server.telemetry.metrics): fed at the engine's edges, none of it when off.
        planner = Planner()
        metrics = None
        if config.metrics:
            from server.telemetry.metrics import Metrics

            metrics = Metrics(workflow_types=planner.workflow_types())
            engine_caller = metrics.caller(engine_caller)
            metrics.watch_breakers(caller.breaker)
            store.observe_commits(metrics.observe_commit)
        clock = SystemClock()
        replica = ReplicaConfig(owner=config.replica, lease_seconds=config.lease_seconds) if config.replica else None
        try:
            engine = Engine(
                store,
                engine_caller,
                clock,
                config=EngineConfig(
                    replica=replica, admission=config.admission, callback_deadline=config.callbacks.deadline
                ),
            )
        except ValueError as error:
            raise ConfigError(f"replica: {error}") from None
        # Callbacks are owed from the commit that ends an execution (the store's outbox); the
        # relay sends them from there, here or, with replicas, from whichever claims them first.
        relay = CallbackRelay(
            store, callbacks, owner=config.replica or f"{socket.gethostname()}:{os.getpid()}", shared=bool(replica)
        )
        await relay.start()
        cleanup.push_async_callback(relay.close)
        engine.add_terminal_listener(relay.wake)
        hub = ExecutionHub(store, plans=engine.plan_of, heartbeat=config.watch_heartbeat)
        capacity.waits.add_listener(hub.nudge)
        engine.add_ending_listener(capacity.abandon)
        metrics_endpoint = None
        if metrics is not None:
            from server.telemetry.metrics import LiveSources, start_metrics_endpoint

            engine.add_start_listener(metrics.on_started)
            engine.add_terminal_listener(metrics.on_terminal)
            live = LiveSources(
                in_flight=lambda: engine.active,
                parked=lambda: engine.parked,
                watchers=lambda: hub.watchers,
                breaker_states=caller.states,
                store_counts=store.count_by_state,
                queue_depth=store.count_waiting,
                capacity=capacity.occupancy,
                routes=grpc_caller,
            )
            metrics.watch(live)
            metrics_endpoint = await start_metrics_endpoint(metrics, config.metrics)
            cleanup.push_async_callback(metrics_endpoint.close)
        # Estimates from history (server/estimates): the engine's successful step attempts feed
        # per-operation sketches in memory, flushed to the store every few seconds.
        costs = CostModel.load(config.estimates.costs_file or None)
        recorder = DurationRecorder(
            store,
            clock,
            min_samples=config.estimates.min_samples,
            flush_interval=config.estimates.flush_interval,
        )
        await recorder.load()
        engine.add_attempt_listener(recorder.record)
        monitor = HealthMonitor(
            grpc_caller,
            store,
            breaker_states=caller.states,
            routes=grpc_caller,
            storage_path=_storage_dir(_sqlite_path(config.store_url)),
        )
        monitor.add_listener(capacity.boards.update_from)
        # The workflow registry: the built-ins inserted as 1.0.0, every stored version loaded
        # (one that no longer validates is kept aside, never fatal: server.registry, rule 8).
        registry = WorkflowRegistry(store, planner, now=clock.now, shared=_sqlite_path(config.store_url) is None)
        await registry.start()
        servicer = OrchestratorServicer(
            engine=engine,
            store=store,
            planner=planner,
            hub=hub,
            health=monitor,
            clock=clock,
            max_message_bytes=config.max_message_bytes,
            trace_parent=current_trace_parent if tracer_provider is not None else None,
            callback_policy=callbacks.policy,
            limits=config.limits,
            capacity=capacity,
            forget_callbacks=relay.forget,
            registry=registry,
            estimates=Estimates(store, recorder, costs, config.estimates.timeout_factor),
        )
        # Malformed requests are INVALID_ARGUMENT, streams nobody reads end (server.api.handlers).
        guard = HandlerGuard(config.limits)
        guarded = guard.server(server)
        orchestrator_pb2_grpc.add_OrchestratorServicer_to_server(servicer, guarded)  # type: ignore[no-untyped-call]
        # The seed's REST shapes (transcoded by Envoy), delegating every RPC to `servicer`.
        seed_api_pb2_grpc.add_SeedApiServicer_to_server(SeedApiServicer(servicer), guarded)  # type: ignore[no-untyped-call]
        health_servicer = serve_health_and_reflection(server, (SERVICE_NAME, SEED_SERVICE_NAME))
        probe = start_probe_port(config.health_listen, health_servicer) if config.health_listen else None
        if probe is not None:
            cleanup.push_async_callback(probe.stop, None)
            await probe.start()
        web_socket_dir = ""
        if config.web:
            # The view calls this server's public API like any client (its interceptors, so its
            # authorization, apply), on a unix socket in a directory only this user can enter: no
            # TLS client setup, and no second network port.
            web_socket_dir = tempfile.mkdtemp(prefix="baton-web-")
            cleanup.callback(shutil.rmtree, web_socket_dir, True)
            server.add_insecure_port(f"unix:{web_socket_dir}/grpc.sock")
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
            capacity=capacity,
            monitor=monitor,
            fleet=fleet,
            owned_tracer_provider=owned_provider,
            callbacks=callbacks,
            relay=relay,
            security=security.description,
            probe=probe,
            guard=guard,
            metrics=metrics_endpoint,
            servicer=servicer,
            web_socket_dir=web_socket_dir,
            recorder=recorder,
        )
        if config.web:
            running.web = await _start_web(config, web_socket_dir)
            cleanup.push_async_callback(running.web.close)
        cleanup.push_async_callback(engine.close)
        resumed = await engine.recover()
        for name in ("", SERVICE_NAME):
            await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)

        async def report_health(store_ok: bool, agents: Mapping[str, common_pb2.AgentStatus]) -> None:
            await report(health_servicer, SERVICE_NAME, store_ok=store_ok, agents=agents)

        running.background.append(asyncio.create_task(monitor.run(config.health_interval, report_health)))
        running.background.append(asyncio.create_task(recorder.run(), name="duration flushes"))
        if config.retention:
            # Retention (--retention): finished executions older than it are deleted by a sweep.
            retention = timedelta(seconds=config.retention)
            triggers = servicer.triggers.published_store()
            sweeper = RetentionSweeper(
                store,
                clock,
                retention,
                forget=lambda ids: servicer.forget("", ids),
                published=None if triggers is None else triggers.delete_events_before,
            )
            running.background.append(asyncio.create_task(sweeper.run(), name="retention sweep"))
        cleanup.pop_all()  # started: from now on RunningServer.stop() owns the cleanup
    logger.info("baton serving on %s (store %s, %d executions resumed)", running.address, config.store_url, resumed)
    logger.info("%s", auth_line)
    (logger.warning if security.exposed else logger.info)("transport: %s", security.description)
    if running.metrics is not None:
        logger.info("metrics on %s", running.metrics.url)
    if running.web is not None:
        logger.info("web view on %s", running.web.url)
    return running


async def _start_web(config: ServerConfig, socket_dir: str) -> WebView:
    """Starts the web view (server.web) on config.web, calling this server through `socket_dir`'s socket."""
    import ssl

    from server.web import WebOptions, start_web_view

    context = None
    if config.tls.cert:
        # The server's own certificate; read once (a renewed certificate reaches the view on restart).
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(config.tls.cert, config.tls.key or None)
    return await start_web_view(
        WebOptions(
            listen=config.web,
            target=f"unix:{socket_dir}/grpc.sock",
            ssl_context=context,
            max_message_bytes=config.max_message_bytes,
        )
    )


async def serve(config: ServerConfig, *, ready: asyncio.Event | None = None) -> None:
    """Runs the orchestrator until SIGTERM or SIGINT, then drains gracefully."""
    running = await start_server(config)
    proxy = None
    if config.http:
        from server.envoy import start_front_proxy

        try:
            # JSON takes more room than protobuf: Envoy's body bound is twice the message limit.
            proxy = await start_front_proxy(
                config.http,
                running.address,
                max_message_bytes=2 * config.max_message_bytes,
                tls=envoy_certificates(config.tls),
            )
        except BaseException:
            await running.stop(0)
            raise
    try:
        print(f"baton serving on {running.address}", flush=True)
        print(f"baton transport: {running.security}", flush=True)
        if proxy is not None:
            scheme = "https" if config.tls.cert else "http"
            print(f"baton REST API on {scheme}://{proxy.listen} (Envoy pid {proxy.pid})", flush=True)
        if running.metrics is not None:
            print(f"baton metrics on {running.metrics.url}", flush=True)
        if running.web is not None:
            print(f"baton web view on {running.web.url}/executions", flush=True)
        if ready is not None:
            ready.set()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        logger.info("shutting down (drain %.1fs, grace %.1fs)", config.drain, config.grace)
        await running.stop(config.grace, config.drain)
    finally:
        # Envoy goes last: it forwards to the server while the server drains.
        if proxy is not None:
            await proxy.stop()
