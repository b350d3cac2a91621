"""The CLI's server and reading commands: serve, agents serve, run, watch, status, plan, health."""

from __future__ import annotations

import argparse
import asyncio
import logging
import uuid
from collections.abc import Callable, Coroutine, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from baton.v1 import execution_pb2, orchestrator_pb2, plan_pb2
from google.protobuf.message import Message
from rich.console import Console

from server.cli._client import outcome, watch_with_view
from server.cli._common import (
    EXIT_OK,
    CommandError,
    UsageError,
    ask,
    connect,
    print_json,
    token_of,
)
from server.cli._control import rerun_line, rerun_request
from server.cli._format import make_console
from server.cli._graph import to_dot, to_mermaid
from server.cli._journey import load_user_context
from server.cli._render import render_health, render_plan, render_status
from server.cli._timeline import timeline_table
from server.cli._tracing import client_span, tracing_config
from server.client import BatonClient

PRIORITIES = {
    "low": plan_pb2.PRIORITY_LOW,
    "medium": plan_pb2.PRIORITY_MEDIUM,
    "high": plan_pb2.PRIORITY_HIGH,
    "critical": plan_pb2.PRIORITY_CRITICAL,
}
"""--priority's choices."""

_Reply = TypeVar("_Reply", bound=Message)


def configure_logging(level: str, log_format: str = "text") -> None:
    """Sends log records at `level` and above to stderr, as text or JSON lines."""
    from server.telemetry.logs import configure_logging as configure

    configure(level, log_format)


def _serve_until_stopped(server: Coroutine[Any, Any, None]) -> int:
    from server.config import ConfigError

    try:
        asyncio.run(server)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    except (OSError, RuntimeError) as exc:
        # Binding a taken port surfaces as RuntimeError from grpc; the message says which port.
        logging.getLogger(__name__).debug("server failed", exc_info=True)
        raise CommandError(str(exc)) from None
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """`baton serve`: runs the orchestrator until SIGTERM."""
    from agents_clients.tls import TlsFiles
    from server.app import serve
    from server.callbacks import CallbackConfig
    from server.cli._capacity import capacity_from
    from server.cli._estimates import estimates_from
    from server.cli._limits import admission_from, limits_from
    from server.cli._resilience import resilience_from, routing_from
    from server.config import (
        ConfigError,
        ServerConfig,
        agent_endpoints,
        agents_resilience,
        parse_address,
        parse_duration,
    )
    from server.store import open_store

    configure_logging(args.log_level, args.log_format)
    try:
        parse_address(args.listen, "listen")
        if args.http:
            from server.envoy.process import loopback

            if not loopback(parse_address(args.http, "http"), "http").is_ip:
                raise ConfigError(f"http: the host must be an IP address or localhost, got {args.http!r}")
        resilience_yaml: Mapping[str, object] = {}
        if args.agents != "embedded":
            agent_endpoints(args.agents)
            resilience_yaml = agents_resilience(args.agents)
        breaker, retry_budget = resilience_from(args, resilience_yaml)
        capacity = capacity_from(args, resilience_yaml)
        config = ServerConfig(
            listen=args.listen,
            store_url=args.store,
            agents=args.agents,
            grace=args.grace,
            drain=args.drain,
            watch_heartbeat=args.watch_heartbeat,
            replica=args.replica,
            lease_seconds=args.lease,
            ledger_path=args.ledger,
            http=args.http,
            tracing=tracing_config(args),
            auth=args.auth or "",
            jwt_key=args.jwt_key,
            jwt_issuer=args.jwt_issuer,
            jwt_audience=args.jwt_audience,
            callbacks=CallbackConfig(
                allow=tuple(args.callback_allow),
                secret_file=args.callback_secret_file,
                deadline=parse_duration(args.callback_deadline, "callback_deadline"),
                backoff=args.callback_backoff,
                max_backoff=args.callback_max_backoff,
            ),
            tls=TlsFiles(cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca),
            agents_tls_ca=args.agents_tls_ca,
            plaintext=args.plaintext,
            health_listen=args.health_listen,
            retention=parse_duration(args.retention, "retention") if args.retention else 0.0,
            max_message_bytes=args.max_message_bytes,
            payload_threshold=args.payload_threshold,
            limits=limits_from(args),
            breaker=breaker,
            retry_budget=retry_budget,
            routing=routing_from(args, resilience_yaml),
            capacity=capacity,
            admission=admission_from(args),
            estimates=estimates_from(args),
            agent_faults=args.faults,
            metrics=args.metrics,
            web=args.web,
        )
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    try:
        open_store(args.store)  # only checks the URL: nothing is opened before `open()`
    except (ValueError, NotImplementedError) as exc:
        raise UsageError(f"--store: {exc}") from None
    return _serve_until_stopped(serve(config))


def cmd_agents_serve(args: argparse.Namespace) -> int:
    """`baton agents serve`: runs the reference agent fleet until SIGTERM."""
    import agents
    from agents_clients.tls import TlsFiles, load

    configure_logging(args.log_level, args.log_format)
    if not 0.0 <= args.error_rate <= 1.0:
        raise UsageError(f"--error-rate: expected a fraction from 0 to 1, got {args.error_rate}")
    if args.latency < 0:
        raise UsageError(f"--latency: expected milliseconds of 0 or more, got {args.latency}")
    config = agents.FleetConfig(
        listen=args.listen,
        latency_ms=args.latency,
        error_rate=args.error_rate,
        seed=args.seed,
        ledger_path=args.ledger,
        tls=TlsFiles(cert=args.tls_cert, key=args.tls_key, ca=args.tls_ca),
        allow_clients=tuple(args.tls_allow_client),
        plaintext=args.plaintext,
        health_listen=args.health_listen,
        faults=args.faults,
        max_message_bytes=args.max_message_bytes,
    )
    try:
        config.validate()
        load(config.tls)  # the files' errors before anything starts (TlsError is a ValueError)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    tracing = tracing_config(args)

    async def serve() -> None:
        from server.telemetry.tracing import AGENTS_SERVICE, make_tracer_provider

        provider = make_tracer_provider(tracing, AGENTS_SERVICE)
        try:
            await agents.serve_fleet(config, tracer_provider=provider)
        finally:
            if provider is not None:
                provider.shutdown()

    return _serve_until_stopped(serve())


def cmd_run(args: argparse.Namespace) -> int:
    """`baton run`: submits a workflow and follows it to the end."""
    journey = load_user_context(args.context, args.user, fresh_user=not token_of(args))
    request = orchestrator_pb2.ExecuteWorkflowRequest(
        workflow_type=args.workflow_type,
        user_context=journey,
        request_id=args.request_id or f"cli-{uuid.uuid4()}",
        workflow_version=args.workflow_version,
    )
    if args.priority:
        request.execution_options.priority = PRIORITIES[args.priority]
    if args.timeout is not None:
        if args.timeout <= 0:
            raise UsageError(f"--timeout: expected seconds above 0, got {args.timeout:g}")
        request.execution_options.timeout.FromNanoseconds(int(args.timeout * 1e9))
    console = make_console()
    tracing = tracing_config(args)

    async def run() -> int:
        async with (
            client_span(tracing, f"baton run {args.workflow_type}") as interceptors,
            connect(args, interceptors) as client,
        ):
            execution = await client.submit(request)
            if args.detach:
                print(execution.execution_id)
                return EXIT_OK
            if not execution.created:
                console.print(f"request_id {request.request_id} matched execution {execution.execution_id}")
            status = await watch_with_view(
                client, console, execution.execution_id, plan=execution.plan, target=args.target
            )
            return outcome(console, status)

    return asyncio.run(run())


def cmd_watch(args: argparse.Namespace) -> int:
    """`baton watch`: follows an existing execution to the end."""
    if args.after < 0:
        raise UsageError(f"--after: expected a sequence of 0 or more, got {args.after}")
    console = make_console()

    async def watch() -> int:
        async with connect(args) as client:
            status = await watch_with_view(
                client, console, args.execution_id, after_sequence=args.after, target=args.target
            )
            return outcome(console, status)

    return asyncio.run(watch())


def cmd_rerun(args: argparse.Namespace) -> int:
    """`baton rerun`: a failed or cancelled execution runs again from where it stopped (or --from a
    step); with --watch, its progress is shown live from the rerun on, as `baton watch` shows it."""
    request = rerun_request(args)
    console = make_console()

    async def rerun() -> int:
        async with connect(args) as client:
            before = 0
            if args.watch:
                ended = await client.get(args.execution_id)
                before = ended.last_sequence  # the rerun's own event comes next
            status = await client.rerun(
                request.execution_id, from_step=request.from_step, reason=request.reason, request_id=request.request_id
            )
            print(rerun_line(status), flush=True)
            if not args.watch:
                return EXIT_OK
            status = await watch_with_view(
                client, console, args.execution_id, after_sequence=before, target=args.target
            )
            return outcome(console, status)

    return asyncio.run(rerun())


FORMATS = ("text", "json", "dot", "mermaid")
"""--format's choices for `baton status` and `baton plan`."""

_PICTURES = {"dot": to_dot, "mermaid": to_mermaid}


def _format_of(args: argparse.Namespace) -> str:
    return "json" if args.json else str(getattr(args, "format", "text") or "text")


def _show(args: argparse.Namespace, reply: _Reply, render: Callable[[Console, _Reply], None]) -> int:
    """Prints a reply as JSON (--json) or with its display."""
    if _format_of(args) == "json":
        print_json(reply)
    else:
        render(make_console(), reply)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """`baton status`: prints an execution's status (with a timeline of its steps), or its DAG."""
    shape = _format_of(args)

    async def fetch(client: BatonClient) -> tuple[execution_pb2.ExecutionStatus, list[execution_pb2.ExecutionEvent]]:
        status = await client.get(args.execution_id)
        if shape == "json":
            return status, []
        # The events up to this status: the plan is the first one's, the timeline all of theirs.
        until = 1 if shape in _PICTURES else status.last_sequence
        return status, await client.history(args.execution_id, until=until)

    status, events = ask(args, fetch)
    if shape in _PICTURES:
        started = events[0] if events and events[0].HasField("execution_started") else None
        if started is None:
            raise CommandError(f"execution {args.execution_id} has no recorded plan")
        print(_PICTURES[shape](started.execution_started.plan, status), end="")
        return EXIT_OK
    if shape == "json":
        print_json(status)
        return EXIT_OK
    console = make_console()
    render_status(console, status, target=args.target)
    timeline = timeline_table(events, datetime.now(UTC))
    if timeline is not None:
        console.print()
        console.print(timeline)
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    """`baton plan`: plans a workflow without running it (its steps, or its DAG)."""
    journey = load_user_context(args.context, args.user, fresh_user=not token_of(args))
    plan: plan_pb2.OrchestrationPlan = ask(
        args, lambda client: client.plan(args.workflow_type, user_context=journey, version=args.workflow_version)
    )
    shape = _format_of(args)
    if shape in _PICTURES:
        print(_PICTURES[shape](plan), end="")
        return EXIT_OK
    return _show(args, plan, render_plan)


def cmd_health(args: argparse.Namespace) -> int:
    """`baton health`: prints the system's health."""
    health: orchestrator_pb2.SystemHealth = ask(args, lambda client: client.health())
    return _show(args, health, render_health)
