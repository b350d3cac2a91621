"""The baton command line: serve, run and watch workflows, inspect plans and health, run the demo."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, Protocol, TypeVar, cast

import grpc
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    journey_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
)
from google.protobuf import duration_pb2, json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console

from server import cli_display as display

DEFAULT_TARGET = "127.0.0.1:50051"
"""Where the client commands find the orchestrator unless --target says otherwise."""
RPC_TIMEOUT = 10.0
_Reply = TypeVar("_Reply", bound=Message)
"""The deadline, in seconds, of every unary call the CLI makes."""
MAX_RECONNECTS = 20
"""Consecutive failed attempts to resume a broken watch before giving up."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_PRIORITIES = {
    "low": plan_pb2.PRIORITY_LOW,
    "medium": plan_pb2.PRIORITY_MEDIUM,
    "high": plan_pb2.PRIORITY_HIGH,
    "critical": plan_pb2.PRIORITY_CRITICAL,
}

DEMO_USER = "demo-user"
DEMO_WORKFLOW = "application_automation"
DEMO_LATENCY_MS = 100.0
"""Latency the demo's agents add per call: enough to see the progress, little enough to end in a second."""


class UsageError(Exception):
    """The command line or a file it names is wrong; printed as `error: …` with exit status 2."""


class CommandError(Exception):
    """A command could not do its job (a server could not bind its port, say); `error: …`, exit status 1."""


# ---- the user context -------------------------------------------------------------------------


def _enum_value(field: FieldDescriptor, value: str) -> str:
    """Accepts the seed's short enum spelling ("fully_automatic") beside the full name."""
    enum = field.enum_type
    if enum is None or value in enum.values_by_name:
        return value
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    candidate = prefix + value.upper()
    return candidate if candidate in enum.values_by_name else value


def _seed_enums(data: Any, descriptor: Descriptor) -> Any:
    """Rewrites short enum names in JSON meant for `descriptor` (baton messages only)."""
    if not isinstance(data, dict):
        return data
    result: dict[str, Any] = {}
    for key, value in data.items():
        field = descriptor.fields_by_name.get(key) or descriptor.fields_by_camelcase_name.get(key)
        if field is not None and field.enum_type is not None and isinstance(value, str):
            result[key] = _enum_value(field, value)
        elif (
            field is not None
            and field.message_type is not None
            and field.message_type.full_name.startswith("baton.")
            and isinstance(value, dict)
        ):
            result[key] = _seed_enums(value, field.message_type)
        else:
            result[key] = value
    return result


def load_user_context(path: str | None, user: str | None) -> journey_pb2.UserJourney:
    """Reads a user journey from a JSON file (bare or wrapped as {"user_journey": …}).

    Args:
        path: the JSON file, or None for an empty journey.
        user: the user id to set; None keeps the file's, or makes a fresh `user-…` id.

    Returns:
        The journey, with user_id set.

    Raises:
        UsageError: the file is missing, not JSON, or not a UserJourney.
    """
    journey = journey_pb2.UserJourney()
    if path is not None:
        try:
            data = json.loads(Path(path).read_text())
        except OSError as exc:
            raise UsageError(f"--context {path}: {exc.strerror or exc}") from None
        except json.JSONDecodeError as exc:
            raise UsageError(f"--context {path}: not JSON: {exc}") from None
        if isinstance(data, dict) and isinstance(data.get("user_journey"), dict):
            data = data["user_journey"]
        if not isinstance(data, dict):
            raise UsageError(f"--context {path}: expected a JSON object (a user_journey)")
        try:
            json_format.ParseDict(_seed_enums(data, cast(Descriptor, journey_pb2.UserJourney.DESCRIPTOR)), journey)
        except json_format.ParseError as exc:
            raise UsageError(f"--context {path}: {exc}") from None
    if user:
        journey.user_id = user
    elif not journey.user_id:
        journey.user_id = f"user-{uuid.uuid4().hex[:8]}"
    return journey


# ---- talking to the orchestrator --------------------------------------------------------------


def orchestrator_stub(channel: grpc.aio.Channel) -> orchestrator_pb2_grpc.OrchestratorStub:
    """Returns an Orchestrator stub on a channel (the generated stubs are untyped)."""
    return orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]


async def submit(
    stub: orchestrator_pb2_grpc.OrchestratorStub, request: orchestrator_pb2.ExecuteWorkflowRequest
) -> orchestrator_pb2.Execution:
    """Submits an execution, retrying a few times while the server is unreachable.

    The request carries a request_id, so a retry after a lost answer returns the same execution.
    """
    for attempt in range(3):
        try:
            execution: orchestrator_pb2.Execution = await stub.ExecuteWorkflow(request, timeout=RPC_TIMEOUT)
            return execution
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE or attempt == 2:
                raise
            await asyncio.sleep(0.3 * (attempt + 1))
    raise AssertionError("unreachable")


async def follow(
    stub: orchestrator_pb2_grpc.OrchestratorStub,
    execution_id: str,
    *,
    after_sequence: int = 0,
    on_update: Callable[[orchestrator_pb2.ExecutionUpdate], None],
    on_note: Callable[[str], None],
    max_reconnects: int = MAX_RECONNECTS,
) -> execution_pb2.ExecutionStatus:
    """Watches an execution to its end, resuming a broken stream after the last sequence seen.

    Args:
        stub: the orchestrator.
        execution_id: the execution to watch.
        after_sequence: the last sequence already seen (0 for the whole history).
        on_update: called with every update, in sequence order, each once.
        on_note: called with a line about reconnects.
        max_reconnects: consecutive failed attempts before giving up.

    Returns:
        The terminal status.

    Raises:
        grpc.aio.AioRpcError: the server refused the watch, or stayed unreachable.
        CommandError: the stream kept ending before the execution did.
    """
    last = after_sequence
    failures = 0
    while True:
        try:
            call: AsyncIterator[orchestrator_pb2.ExecutionUpdate] = stub.WatchExecution(
                orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id, after_sequence=last)
            )
            async for update in call:
                failures = 0
                last = update.sequence
                on_update(update)
                if update.status.status in display.TERMINAL:
                    return update.status
            # A clean end without a terminal update: either nothing is left after `last`, or
            # the server is draining. The status says which.
            status: execution_pb2.ExecutionStatus = await stub.GetExecution(
                orchestrator_pb2.GetExecutionRequest(execution_id=execution_id), timeout=RPC_TIMEOUT
            )
            if status.status in display.TERMINAL and status.last_sequence <= last:
                return status
            # Otherwise events after `last` remain (perhaps the end itself): fetch them, no gap.
            reason = "stream ended early"
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNAVAILABLE:
                raise
            reason = f"stream broken ({exc.code().name})"
            failures += 1
            if failures > max_reconnects:
                raise
        else:
            failures += 1
            if failures > max_reconnects:
                raise CommandError(f"the watch of {execution_id} kept ending before the execution did")
        on_note(f"{reason}; resuming after #{last}")
        await asyncio.sleep(min(0.1 * 2**failures, 2.0))


async def watch_with_view(
    stub: orchestrator_pb2_grpc.OrchestratorStub,
    console: Console,
    execution_id: str,
    *,
    after_sequence: int = 0,
    plan: plan_pb2.OrchestrationPlan | None = None,
) -> execution_pb2.ExecutionStatus:
    """Follows an execution with the live display (or plain lines off a terminal); returns its end."""
    with display.ExecutionView(console, execution_id, live=console.is_terminal, plan=plan) as view:
        status = await follow(
            stub, execution_id, after_sequence=after_sequence, on_update=view.update, on_note=view.note
        )
        view.finish(status)
    return status


def _outcome(console: Console, status: execution_pb2.ExecutionStatus) -> int:
    console.print(display.summary_line(status), markup=False)
    return EXIT_OK if status.status == execution_pb2.EXECUTION_STATE_COMPLETED else EXIT_FAILED


def _print_json(message: Message) -> None:
    print(json.dumps(display.to_json(message), indent=2))


# ---- commands ---------------------------------------------------------------------------------


def _configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def _serve_until_stopped(server: Coroutine[Any, Any, None]) -> int:
    try:
        asyncio.run(server)
    except (OSError, RuntimeError) as exc:
        # Binding a taken port surfaces as RuntimeError from grpc; the message says which port.
        logging.getLogger(__name__).debug("server failed", exc_info=True)
        raise CommandError(str(exc)) from None
    return EXIT_OK


def cmd_serve(args: argparse.Namespace) -> int:
    """`baton serve`: runs the orchestrator until SIGTERM."""
    from server.app import serve
    from server.config import ConfigError, ServerConfig, agent_endpoints, parse_address
    from server.store import open_store

    _configure_logging(args.log_level)
    try:
        parse_address(args.listen, "listen")
        if args.agents != "embedded":
            agent_endpoints(args.agents)
        config = ServerConfig(
            listen=args.listen, store_url=args.store, agents=args.agents, grace=args.grace, ledger_path=args.ledger
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

    _configure_logging(args.log_level)
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
    )
    try:
        config.validate()
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return _serve_until_stopped(agents.serve_fleet(config))


def cmd_run(args: argparse.Namespace) -> int:
    """`baton run`: submits a workflow and follows it to the end."""
    journey = load_user_context(args.context, args.user)
    request = orchestrator_pb2.ExecuteWorkflowRequest(
        workflow_type=args.workflow_type,
        user_context=journey,
        request_id=args.request_id or f"cli-{uuid.uuid4()}",
    )
    if args.priority:
        request.execution_options.priority = _PRIORITIES[args.priority]
    if args.timeout is not None:
        if args.timeout <= 0:
            raise UsageError(f"--timeout: expected seconds above 0, got {args.timeout:g}")
        request.execution_options.timeout.FromNanoseconds(int(args.timeout * 1e9))
    console = display.make_console()

    async def run() -> int:
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = orchestrator_stub(channel)
            execution = await submit(stub, request)
            if args.detach:
                print(execution.execution_id)
                return EXIT_OK
            if not execution.created:
                console.print(f"request_id {request.request_id} matched execution {execution.execution_id}")
            status = await watch_with_view(stub, console, execution.execution_id, plan=execution.plan)
            return _outcome(console, status)

    return asyncio.run(run())


def cmd_watch(args: argparse.Namespace) -> int:
    """`baton watch`: follows an existing execution to the end."""
    if args.after < 0:
        raise UsageError(f"--after: expected a sequence of 0 or more, got {args.after}")
    console = display.make_console()

    async def watch() -> int:
        async with grpc.aio.insecure_channel(args.target) as channel:
            stub = orchestrator_stub(channel)
            status = await watch_with_view(stub, console, args.execution_id, after_sequence=args.after)
            return _outcome(console, status)

    return asyncio.run(watch())


def _ask(target: str, rpc: Callable[[orchestrator_pb2_grpc.OrchestratorStub], Awaitable[_Reply]]) -> _Reply:
    """Makes one unary call to the orchestrator at `target` and returns its answer."""

    async def ask() -> _Reply:
        async with grpc.aio.insecure_channel(target) as channel:
            return await rpc(orchestrator_stub(channel))

    return asyncio.run(ask())


def _show(args: argparse.Namespace, reply: _Reply, render: Callable[[Any, _Reply], None]) -> int:
    """Prints a reply as JSON (--json) or with its display."""
    if args.json:
        _print_json(reply)
    else:
        render(display.make_console(), reply)
    return EXIT_OK


def cmd_status(args: argparse.Namespace) -> int:
    """`baton status`: prints an execution's status."""
    request = orchestrator_pb2.GetExecutionRequest(execution_id=args.execution_id)
    status: execution_pb2.ExecutionStatus = _ask(
        args.target, lambda stub: stub.GetExecution(request, timeout=RPC_TIMEOUT)
    )
    return _show(args, status, display.render_status)


def cmd_plan(args: argparse.Namespace) -> int:
    """`baton plan`: plans a workflow without running it."""
    journey = load_user_context(args.context, args.user)
    request = orchestrator_pb2.PlanWorkflowRequest(workflow_type=args.workflow_type, user_context=journey)
    plan: plan_pb2.OrchestrationPlan = _ask(args.target, lambda stub: stub.PlanWorkflow(request, timeout=RPC_TIMEOUT))
    return _show(args, plan, display.render_plan)


def cmd_health(args: argparse.Namespace) -> int:
    """`baton health`: prints the system's health."""
    request = orchestrator_pb2.GetSystemHealthRequest()
    health: orchestrator_pb2.SystemHealth = _ask(
        args.target, lambda stub: stub.GetSystemHealth(request, timeout=RPC_TIMEOUT)
    )
    return _show(args, health, display.render_health)


class _Fleet(Protocol):
    address: str


def demo_request() -> orchestrator_pb2.ExecuteWorkflowRequest:
    """Returns the demo's request: the demo user applies, fully automatically, with the sample resume."""
    journey = journey_pb2.UserJourney(
        user_id=DEMO_USER,
        journey_type=journey_pb2.JOURNEY_TYPE_APPLICATION,
        current_step="demo",
        journey_context=journey_pb2.JourneyContext(
            entry_point=journey_pb2.ENTRY_POINT_API,
            user_intent=journey_pb2.USER_INTENT_APPLY,
            urgency_level=journey_pb2.URGENCY_LEVEL_MEDIUM,
            user_preferences=journey_pb2.UserPreferences(
                automation_level=journey_pb2.AUTOMATION_LEVEL_FULLY_AUTOMATIC,
                communication_style=journey_pb2.COMMUNICATION_STYLE_STANDARD,
                processing_speed=journey_pb2.PROCESSING_SPEED_BALANCED,
            ),
        ),
        current_data_state=journey_pb2.CurrentDataState(document_status=journey_pb2.DOCUMENT_STATUS_UPLOADED),
    )
    # No user_journey.data.resume_text: the document agent reads its bundled sample resume.
    return orchestrator_pb2.ExecuteWorkflowRequest(
        workflow_type=DEMO_WORKFLOW, user_context=journey, request_id=f"demo-{uuid.uuid4()}"
    )


async def slow_down_fleet(address: str, latency_ms: float, *, fail_search_once: bool) -> None:
    """Sets the reference fleet's fault injection: latency on every call, optionally one failed search.

    Args:
        address: the fleet's HOST:PORT.
        latency_ms: milliseconds every agent adds to each operation.
        fail_search_once: whether job_discovery's next SearchJobs answers UNAVAILABLE (to show a retry).
    """
    latency = duration_pb2.Duration()
    latency.FromNanoseconds(int(latency_ms * 1e6))
    async with grpc.aio.insecure_channel(address) as channel:
        faults = faults_pb2_grpc.FaultInjectionStub(channel)  # type: ignore[no-untyped-call]
        await faults.SetFaults(faults_pb2.FaultConfig(latency=latency), timeout=RPC_TIMEOUT)
        if fail_search_once:
            flaky = faults_pb2.FaultConfig(
                agent="job_discovery", latency=latency, fail_next=1, error_code="UNAVAILABLE", operations=["SearchJobs"]
            )
            await faults.SetFaults(flaky, timeout=RPC_TIMEOUT)


async def run_demo(
    console: Console, workdir: str, *, latency_ms: float = 0.0, fail_search_once: bool = False
) -> tuple[int, str]:
    """Starts the embedded orchestrator and fleet, runs the sample journey, prints its results.

    Args:
        console: where to print.
        workdir: a directory for the SQLite store and the fleet's ledger.
        latency_ms: latency the reference agents add to each call, so the progress can be seen.
        fail_search_once: whether the first job search fails (UNAVAILABLE), to show a retry.

    Returns:
        The exit status (0 when the execution completed) and the execution's id.
    """
    from server.app import start_server
    from server.config import ServerConfig

    config = ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{workdir}/baton.db", agents="embedded")
    running = await start_server(config)
    try:
        fleet_address = cast(_Fleet, running.fleet).address
        console.print(f"orchestrator  {running.address}", markup=False)
        console.print(f"agents        {fleet_address} (the seven reference agents)", markup=False)
        console.print(f"store         {config.store_url}", markup=False)
        if latency_ms > 0 or fail_search_once:
            await slow_down_fleet(fleet_address, latency_ms, fail_search_once=fail_search_once)
        request = demo_request()
        console.print(f"running {DEMO_WORKFLOW} for {DEMO_USER} (fully automatic, bundled sample resume)", markup=False)
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_stub(channel)
            execution = await submit(stub, request)
            status = await watch_with_view(stub, console, execution.execution_id, plan=execution.plan)
        async with grpc.aio.insecure_channel(fleet_address) as channel:
            automation = automation_pb2_grpc.AutomationStub(channel)  # type: ignore[no-untyped-call]
            listing: automation_pb2.ListApplicationsResponse = await automation.ListApplications(
                automation_pb2.ListApplicationsRequest(user_id=DEMO_USER), timeout=RPC_TIMEOUT
            )
        console.print()
        display.render_journey_results(console, execution.plan, status, list(listing.applications))
        console.print()
        return _outcome(console, status), execution.execution_id
    finally:
        await running.stop(1.0)


def cmd_demo(args: argparse.Namespace) -> int:
    """`baton demo`: the whole system in one process, one sample journey, end to end."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    if args.latency < 0:
        raise UsageError(f"--latency: expected milliseconds of 0 or more, got {args.latency:g}")
    console = display.make_console()
    workdir = tempfile.mkdtemp(prefix="baton-demo-")
    try:
        code, execution_id = asyncio.run(
            run_demo(console, workdir, latency_ms=args.latency, fail_search_once=args.inject_failure)
        )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    if args.keep:
        console.print(
            f"kept {workdir}; to look again: baton serve --store sqlite:///{workdir}/baton.db, "
            f"then baton status {execution_id}",
            markup=False,
        )
    return code


# ---- the parser -------------------------------------------------------------------------------


def _target(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target", default=DEFAULT_TARGET, metavar="HOST:PORT", help=f"the orchestrator (default {DEFAULT_TARGET})"
    )


def _log_level(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--log-level",
        default=default,
        choices=("debug", "info", "warning", "error"),
        help=f"log level of the messages written to stderr (default {default})",
    )


def build_parser() -> argparse.ArgumentParser:
    """Returns the parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="baton",
        description="baton: a durable gRPC control plane for a fleet of AI agent services.",
        epilog="Start with `baton demo`. Exit status: 0 success (or a completed execution), "
        "1 a failed or cancelled execution or a server error, 2 bad usage or INVALID_ARGUMENT.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = commands.add_parser(
        "serve",
        help="run the orchestrator",
        description="Run the orchestrator until SIGTERM or Ctrl-C, then drain gracefully.",
    )
    p.add_argument("--listen", default="127.0.0.1:50051", metavar="HOST:PORT", help="address to serve on (port 0: any)")
    p.add_argument("--store", default="sqlite:///baton.db", metavar="URL", help="execution store, sqlite:///PATH")
    p.add_argument(
        "--agents",
        default="embedded",
        metavar="embedded|HOST:PORT|FILE.yaml",
        help="embedded (start the reference fleet in-process), one address serving all seven agents, "
        "or a YAML file mapping agents to endpoints (default embedded)",
    )
    p.add_argument(
        "--ledger", default="", metavar="PATH", help="the embedded fleet's ledger (default beside the store)"
    )
    p.add_argument("--grace", type=float, default=5.0, metavar="S", help="seconds in-flight RPCs get on shutdown")
    _log_level(p, "info")
    p.set_defaults(handler=cmd_serve)

    p = commands.add_parser(
        "agents", help="the reference agent fleet", description="Commands for the reference agent fleet."
    )
    agent_commands = p.add_subparsers(dest="agents_command", required=True, metavar="COMMAND")
    p = agent_commands.add_parser(
        "serve",
        help="serve all seven reference agents on one address",
        description="Serve all seven reference agents on one address, with optional fault injection.",
    )
    p.add_argument("--listen", default="127.0.0.1:50061", metavar="HOST:PORT", help="address to serve on")
    p.add_argument("--latency", type=float, default=0.0, metavar="MS", help="added latency per call, in milliseconds")
    p.add_argument("--error-rate", type=float, default=0.0, metavar="R", help="fraction of calls that fail, 0 to 1")
    p.add_argument(
        "--seed", type=int, default=0, metavar="N", help="seed of the fault injection's random failures (0: random)"
    )
    p.add_argument("--ledger", default=":memory:", metavar="PATH", help="the automation agent's application ledger")
    _log_level(p, "info")
    p.set_defaults(handler=cmd_agents_serve)

    p = commands.add_parser(
        "run",
        help="run a workflow and watch it",
        description="Submit a workflow, then show its progress live until it ends. Exit status 0 only if it completed.",
    )
    p.add_argument("workflow_type", metavar="WORKFLOW_TYPE", help="e.g. document_analysis, application_automation")
    p.add_argument(
        "--context",
        metavar="FILE.json",
        help='the user_journey as JSON with proto field names (bare or as {"user_journey": …})',
    )
    p.add_argument("--user", metavar="USER_ID", help="the user (default: the context's, else a fresh user-… id)")
    p.add_argument("--request-id", metavar="ID", help="idempotency key: the same id returns the same execution")
    p.add_argument("--priority", choices=tuple(_PRIORITIES), help="admission priority (default from the journey)")
    p.add_argument("--timeout", type=float, metavar="S", help="execution timeout in seconds")
    p.add_argument("--detach", action="store_true", help="print the execution id and return without watching")
    _target(p)
    p.set_defaults(handler=cmd_run)

    p = commands.add_parser(
        "watch",
        help="watch an execution",
        description="Show an execution's progress live until it ends, resuming if the stream breaks.",
    )
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    p.add_argument("--after", type=int, default=0, metavar="N", help="show only events after sequence N")
    _target(p)
    p.set_defaults(handler=cmd_watch)

    p = commands.add_parser("status", help="show an execution's status", description="Print an execution's status.")
    p.add_argument("execution_id", metavar="EXECUTION_ID")
    p.add_argument("--json", action="store_true", help="print the ExecutionStatus as JSON (proto field names)")
    _target(p)
    p.set_defaults(handler=cmd_status)

    p = commands.add_parser(
        "plan",
        help="plan a workflow without running it",
        description="Ask the orchestrator for the plan it would run (a dry run) and print its steps.",
    )
    p.add_argument("workflow_type", metavar="WORKFLOW_TYPE")
    p.add_argument("--context", metavar="FILE.json", help="the user_journey, as for `baton run`")
    p.add_argument("--user", metavar="USER_ID", help="the user (default: the context's, else a fresh id)")
    p.add_argument("--json", action="store_true", help="print the OrchestrationPlan as JSON (proto field names)")
    _target(p)
    p.set_defaults(handler=cmd_plan)

    p = commands.add_parser(
        "health", help="show the system's health", description="Print the orchestrator's and the agents' health."
    )
    p.add_argument("--json", action="store_true", help="print the SystemHealth as JSON (proto field names)")
    _target(p)
    p.set_defaults(handler=cmd_health)

    p = commands.add_parser(
        "demo",
        help="run a sample journey end to end, all in one process",
        description="Start the orchestrator, the seven reference agents and a SQLite store in a temporary "
        "directory, run the application_automation workflow for a demo user with the bundled sample resume, "
        "print the matches and applications, and stop. Exit status 0 only if the execution completed.",
    )
    p.add_argument("--keep", action="store_true", help="keep the temporary directory (store and ledger)")
    p.add_argument(
        "--latency",
        type=float,
        default=DEMO_LATENCY_MS,
        metavar="MS",
        help=f"latency the reference agents add to each call, to watch the progress (default {DEMO_LATENCY_MS:g})",
    )
    p.add_argument(
        "--inject-failure",
        action="store_true",
        help="make the first job search fail with UNAVAILABLE, to watch the step being retried",
    )
    _log_level(p, "warning")
    p.set_defaults(handler=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Runs the baton command line.

    Args:
        argv: the arguments (default sys.argv[1:]).

    Returns:
        The exit status.
    """
    args = build_parser().parse_args(argv)
    handler = cast(Callable[[argparse.Namespace], int], args.handler)
    try:
        return handler(args)
    except UsageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CommandError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except grpc.aio.AioRpcError as exc:
        print(f"error: {exc.code().name}: {exc.details()}", file=sys.stderr)
        return EXIT_USAGE if exc.code() == grpc.StatusCode.INVALID_ARGUMENT else EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader (head, say) went away: stop quietly, as cat does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
