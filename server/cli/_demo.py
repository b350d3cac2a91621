"""`baton demo`: the orchestrator, the reference fleet and a SQLite store in one process, one sample journey."""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, cast

import grpc
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    common_pb2,
    execution_pb2,
    faults_pb2,
    journey_pb2,
    orchestrator_pb2,
)
from google.protobuf import duration_pb2
from rich.console import Console

from agents_clients import AGENTS, CapacityConfig, RateLimit
from server.cli._capacity_report import board_lines, capacity_lines, describe_limits
from server.cli._client import outcome, watch_with_view
from server.cli._common import RPC_TIMEOUT, CommandError, UsageError
from server.cli._format import make_console
from server.cli._results import render_journey_results, render_run_report, run_report
from server.client import BatonClient

DEMO_USER = "demo-user"
DEMO_WORKFLOW = "application_automation"
DEMO_LATENCY_MS = 100.0
"""Latency the demo's agents add per call: enough to see the progress, little enough to end in a second."""
DEMO_WEB_LATENCY_MS = 1500.0
"""Latency per call with --web: each step takes long enough to be seen turning from running to done."""
DEMO_SEED = 7
"""The default seed of --error-rate's random failures, so that a demo can be shown again the same way."""
DEMO_RATE_LIMIT = RateLimit(2.0, 1)
"""Every agent's rate limit in the demo unless --rate-limit or --bulkhead says otherwise: a quick
retry of a failed call waits for its token, so the summary shows a rate limit at work."""


class _Fleet(Protocol):
    address: str

    def set_faults(self, config: faults_pb2.FaultConfig) -> faults_pb2.FaultConfig: ...


@dataclass(frozen=True)
class DemoFaults:
    """The faults the demo injects into the reference fleet."""

    latency_ms: float = 0.0
    """Milliseconds every agent adds to each operation."""
    error_rate: float = 0.0
    """The fraction of operations, from 0 to 1, that fail with UNAVAILABLE."""
    seed: int = DEMO_SEED
    """The seed of the random generator that picks the failing operations (0: a different run each time)."""
    fail_search_once: bool = False
    """Whether job_discovery's next SearchJobs answers UNAVAILABLE (to show a retry)."""
    fail_notify: bool = False
    """Whether every ui_ux Notify answers INTERNAL, so the run fails after submitting (to show the
    applications withdrawn). Not UNAVAILABLE: an unavailable ui_ux only skips the optional notification."""
    board_health: Mapping[str, int] = field(default_factory=dict)
    """Board → the automation account's AccountHealth there (`--board-health linkedin=limited`)."""
    board_quota: Mapping[str, int] = field(default_factory=dict)
    """Board → job_discovery's requests left (`--board-quota linkedin=0`)."""

    @property
    def any(self) -> bool:
        """Whether any fault is injected at all."""
        return (
            self.latency_ms > 0
            or self.error_rate > 0
            or self.fail_search_once
            or self.fail_notify
            or bool(self.board_health or self.board_quota)
        )

    @property
    def failures(self) -> bool:
        """Whether the demo's fault flags ask for failures (latency alone is no fault flag)."""
        return self.error_rate > 0 or self.fail_search_once or self.fail_notify or bool(self.board_health)


def demo_capacity() -> CapacityConfig:
    """The demo's limits: every agent held to DEMO_RATE_LIMIT, so a quick retry shows a rate limit at work."""
    return CapacityConfig(rate_limits=dict.fromkeys(AGENTS, DEMO_RATE_LIMIT))


def _health_word(health: int) -> str:
    return common_pb2.AccountHealth.Name(health).removeprefix("ACCOUNT_HEALTH_").lower()


def board_settings(flag: str, texts: Sequence[str], known: Sequence[str]) -> dict[str, int]:
    """Reads ``BOARD=STATE`` (--board-health: active, limited, suspended) or ``BOARD=N`` (--board-quota).

    Raises:
        UsageError: not such a pair, an unknown board, state or count (the message names the flag).
    """
    settings: dict[str, int] = {}
    for text in texts:
        board, _, value = (part.strip().lower() for part in text.partition("="))
        if board not in known:
            raise UsageError(f"{flag}: expected BOARD=VALUE with BOARD one of {', '.join(known)}; got {text[:64]!r}")
        if flag == "--board-health":
            health = {"active": 1, "limited": 2, "suspended": 3}.get(value)
            if health is None:
                raise UsageError(f"{flag} {board}: expected active, limited or suspended, got {value[:32]!r}")
            settings[board] = health
        elif value.isdigit():
            settings[board] = int(value)
        else:
            raise UsageError(f"{flag} {board}: expected a count of requests (0 or more), got {value[:32]!r}")
    return settings


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


def inject_faults(fleet: _Fleet, faults: DemoFaults) -> None:
    """Sets the embedded fleet's faults in this process (no FaultInjection call over the network):
    latency and random failures on every call, and optionally one failed job search and failing
    notifications.

    Args:
        fleet: the embedded fleet.
        faults: what to inject.
    """
    latency = duration_pb2.Duration()
    latency.FromNanoseconds(int(faults.latency_ms * 1e6))
    # The boards ride on the fleet-wide configuration: automation reads board_health from it,
    # job_discovery board_quota (an agent's own configuration must repeat them).
    boards = {"board_health": faults.board_health, "board_quota": faults.board_quota}
    fleet.set_faults(
        faults_pb2.FaultConfig(latency=latency, error_rate=faults.error_rate, seed=faults.seed, **boards)  # type: ignore[arg-type]
    )
    if faults.fail_search_once:
        # An agent's own configuration replaces the fleet's, so it repeats the fleet's faults.
        flaky = faults_pb2.FaultConfig(
            agent="job_discovery",
            latency=latency,
            error_rate=faults.error_rate,
            seed=faults.seed,
            fail_next=1,
            error_code="UNAVAILABLE",
            operations=["SearchJobs"],
            board_quota=faults.board_quota,
        )
        fleet.set_faults(flaky)
    if faults.fail_notify:
        failing = faults_pb2.FaultConfig(
            agent="ui_ux", latency=latency, error_rate=1.0, error_code="INTERNAL", operations=["Notify"]
        )
        fleet.set_faults(failing)


async def run_demo(
    console: Console,
    workdir: str,
    faults: DemoFaults | None = None,
    *,
    metrics: str = "",
    hold: float = 0.0,
    capacity: CapacityConfig | None = None,
    web: str = "",
) -> tuple[int, str]:
    """Starts the embedded orchestrator and fleet, runs the sample journey, prints its results.

    The results are the resume analysis, the matches and the applications (with their state:
    a run that failed after submitting withdraws them), then how failures were handled: retries,
    breaker trips, fallbacks and compensations.

    Args:
        console: where to print.
        workdir: a directory for the SQLite store and the fleet's ledger.
        faults: the faults to inject into the reference fleet (none by default).
        metrics: HOST:PORT of the Prometheus endpoint; empty for none.
        hold: with metrics, seconds to keep serving after the run, so the metrics can be read.
        capacity: the agents' bulkheads and rate limits (default: `demo_capacity()`).
        web: HOST:PORT of the web view; empty for none. With it, the demo keeps serving after the
            run until SIGINT (Ctrl-C) or SIGTERM.

    Returns:
        The exit status (0 when the execution completed) and the execution's id.
    """
    from server.app import start_server
    from server.config import ServerConfig

    faults = faults or DemoFaults()
    # The demo sets its faults in-process; the fleet also serves FaultInjection (to play with
    # while the demo runs) only when the demo's fault flags ask for failures.
    config = ServerConfig(
        listen="127.0.0.1:0",
        store_url=f"sqlite:///{workdir}/baton.db",
        agents="embedded",
        agent_faults=faults.failures,
        metrics=metrics,
        capacity=capacity or demo_capacity(),
        web=web,
    )
    running = await start_server(config)
    try:
        fleet = cast(_Fleet, running.fleet)
        fleet_address = fleet.address
        console.print(f"orchestrator  {running.address}", markup=False)
        console.print(f"agents        {fleet_address} (the seven reference agents)", markup=False)
        console.print(f"store         {config.store_url}", markup=False)
        console.print(f"transport     {running.security}", markup=False)
        if running.metrics is not None:
            console.print(f"metrics       {running.metrics.url}", markup=False)
        if running.web is not None:
            console.print(f"web view      {running.web.url}/executions", markup=False)
        console.print(f"limits        {describe_limits(config.capacity)}", markup=False)
        if faults.any:
            inject_faults(fleet, faults)
        if faults.board_health or faults.board_quota:
            # The planner and the run-time limits read the boards from the agents' statuses: now.
            await running.monitor.refresh()
            told = [f"{b} {_health_word(h)}" for b, h in faults.board_health.items()]
            told += [f"{b} {n} requests left" for b, n in faults.board_quota.items()]
            console.print(f"job boards    {', '.join(told)}", markup=False)
        if faults.error_rate > 0:
            seed = f"seed {faults.seed}" if faults.seed else "unseeded"
            console.print(f"faults        {faults.error_rate:.0%} of agent calls fail with UNAVAILABLE ({seed})")
        if faults.fail_notify:
            console.print(
                "faults        ui_ux.Notify fails with INTERNAL (the run fails after submitting)", markup=False
            )
        request = demo_request()
        console.print(f"running {DEMO_WORKFLOW} for {DEMO_USER} (fully automatic, bundled sample resume)", markup=False)
        events: list[execution_pb2.ExecutionEvent] = []
        async with BatonClient(running.address) as client:
            execution = await client.submit(request)
            if running.web is not None:
                console.print(f"web view: {running.web.url}/executions/{execution.execution_id}", markup=False)
            status = await watch_with_view(
                client,
                console,
                execution.execution_id,
                plan=execution.plan,
                target=running.address,
                on_update=lambda update: events.append(update.event),
            )
        # The run is over: faults off, so that an injected failure of the listing cannot hide its results.
        if faults.any:
            inject_faults(fleet, DemoFaults(seed=0))
        async with grpc.aio.insecure_channel(fleet_address) as channel:
            automation = automation_pb2_grpc.AutomationStub(channel)  # type: ignore[no-untyped-call]
            listing: automation_pb2.ListApplicationsResponse = await automation.ListApplications(
                automation_pb2.ListApplicationsRequest(user_id=DEMO_USER), timeout=RPC_TIMEOUT
            )
        console.print()
        render_journey_results(console, execution.plan, status, list(listing.applications))
        console.print()
        report = run_report(status, events)
        report.boards = board_lines(execution.plan, running.capacity)
        if running.capacity.counts.held or running.capacity.counts.refused or capacity is not None:
            report.capacity = capacity_lines(running.capacity)
        render_run_report(console, report)
        console.print()
        code = outcome(console, status)
        if running.metrics is not None and hold > 0:
            console.print(f"serving {running.metrics.url} for {hold:g}s more (curl it; Ctrl-C stops)", markup=False)
            await asyncio.sleep(hold)
        if running.web is not None:
            console.print(f"serving the web view on {running.web.url} until Ctrl-C", markup=False)
            await _until_interrupted()
        return code, execution.execution_id
    finally:
        await running.stop(1.0)


async def _until_interrupted() -> None:
    """Returns on SIGINT or SIGTERM (the demo's exit status stays the journey's)."""
    import signal

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def cmd_demo(args: argparse.Namespace) -> int:
    """`baton demo`: the whole system in one process, one sample journey, end to end."""
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr, format="%(levelname)s %(name)s %(message)s")
    if args.hold < 0 or (args.hold and not args.metrics):
        raise UsageError(f"--hold: expected seconds of 0 or more, with --metrics; got {args.hold:g}")
    from server.config import ConfigError, is_loopback, parse_address

    try:
        for flag in ("metrics", "web"):
            if getattr(args, flag):
                parse_address(getattr(args, flag), flag)
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    if args.web and not is_loopback(args.web):
        raise UsageError(f"--web: the demo serves on loopback only (it has no authentication), got {args.web!r}")
    if args.latency is None:
        args.latency = DEMO_WEB_LATENCY_MS if args.web else DEMO_LATENCY_MS
    if args.latency < 0:
        raise UsageError(f"--latency: expected milliseconds of 0 or more, got {args.latency:g}")
    if not 0.0 <= args.error_rate <= 1.0:
        raise UsageError(f"--error-rate: expected a fraction from 0 to 1, got {args.error_rate:g}")
    from agents._automation import DIRECT_SOURCE
    from agents._jobs import JobCatalog
    from server.cli._capacity import capacity_from

    boards = [*JobCatalog.load().sources, DIRECT_SOURCE]
    faults = DemoFaults(
        latency_ms=args.latency,
        error_rate=args.error_rate,
        seed=args.seed,
        fail_search_once=args.inject_failure,
        fail_notify=args.fail_notify,
        board_health=board_settings("--board-health", args.board_health, boards),
        board_quota=board_settings("--board-quota", args.board_quota, boards),
    )
    try:
        capacity = capacity_from(args) if args.bulkhead or args.rate_limit else None
    except ConfigError as exc:
        raise UsageError(str(exc)) from None
    console = make_console()
    workdir = tempfile.mkdtemp(prefix="baton-demo-")
    try:
        try:
            code, execution_id = asyncio.run(
                run_demo(
                    console, workdir, faults, metrics=args.metrics, hold=args.hold, capacity=capacity, web=args.web
                )
            )
        except OSError as exc:
            # The metrics or web port is taken, say: the message names the address.
            raise CommandError(str(exc)) from None
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
