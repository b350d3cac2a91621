"""Resilience under injected faults, measured by what it does to users (issue 11, item 3).

Runs N executions of the built-in ``application_automation`` workflow (fully automatic, one user
each, so no two compete for the same jobs) against the reference fleet in its own process with
``--error-rate R`` (every agent operation fails UNAVAILABLE with probability R, seeded), or with
one agent dead (``--dead AGENT``: its every operation fails), and reports:

- the share of executions that completed, failed on an open breaker (the failing step's last
  error CIRCUIT_OPEN), failed otherwise, and the p50/p95 duration (submit to terminal status);
- how the attempts went: sent and failed (by code), refused by an open breaker, refused by the
  retry budget (from the executions' error details);
- that nothing was done twice: the automation agent's ledger has no two applications for one
  (idempotency key, job), the same check tests/integration/test_effects_once.py makes.

Run: ``python bench/faults.py [--n 200] [--concurrency 20] [--error-rate 0.3] [--dead AGENT]
[--outage S] [--root CHECKOUT] [-- SERVE-ARGS...]``; ``--outage S`` brings the dead agent back S
seconds in (a transient outage). ``--root`` runs the orchestrator and agents of another
checkout (``/work/main`` for "before"), with its own ``generated/``. Everything listens on
127.0.0.1; both processes are stopped at the end. Prints one JSON line and a markdown row.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as a script: `python bench/faults.py`
    sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "generated"))

import grpc  # noqa: E402
from baton.v1 import (  # noqa: E402
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    journey_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)

from bench._common import Child, address_in, free_port, percentile, python  # noqa: E402

WORKFLOW = "application_automation"
START_TIMEOUT_S = 60.0
WATCH_TIMEOUT_S = 600.0


def request(user_id: str) -> orchestrator_pb2.ExecuteWorkflowRequest:
    """The demo's journey (fully automatic, the bundled sample resume) for `user_id`."""
    prefs = journey_pb2.UserPreferences(
        automation_level=journey_pb2.AUTOMATION_LEVEL_FULLY_AUTOMATIC,
        processing_speed=journey_pb2.PROCESSING_SPEED_BALANCED,
    )
    journey = journey_pb2.UserJourney(
        user_id=user_id,
        journey_type=journey_pb2.JOURNEY_TYPE_APPLICATION,
        journey_context=journey_pb2.JourneyContext(
            entry_point=journey_pb2.ENTRY_POINT_API,
            user_intent=journey_pb2.USER_INTENT_APPLY,
            urgency_level=journey_pb2.URGENCY_LEVEL_MEDIUM,
            user_preferences=prefs,
        ),
        current_data_state=journey_pb2.CurrentDataState(document_status=journey_pb2.DOCUMENT_STATUS_UPLOADED),
    )
    return orchestrator_pb2.ExecuteWorkflowRequest(workflow_type=WORKFLOW, user_context=journey, request_id=user_id)


def classify(status: execution_pb2.ExecutionStatus) -> str:
    """completed, CIRCUIT_OPEN (the step that failed it last met an open breaker) or failed:<TYPE>."""
    if status.status == execution_pb2.EXECUTION_STATE_COMPLETED:
        return "completed"
    critical = [d for d in status.error_summary.error_details if d.impact == execution_pb2.IMPACT_CRITICAL]
    last = critical[-1].error_type if critical else (execution_pb2.ExecutionState.Name(status.status))
    return "CIRCUIT_OPEN" if last == "CIRCUIT_OPEN" else f"failed:{last}"


async def run_executions(target: str, n: int, concurrency: int, tag: str) -> dict[str, Any]:
    """Runs n executions, `concurrency` at once; returns outcomes, durations and attempt errors."""
    outcomes: Counter[str] = Counter()
    attempt_errors: Counter[str] = Counter()
    durations: list[float] = []
    failed_durations: list[float] = []
    degraded = 0
    queue = list(range(n))
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), START_TIMEOUT_S)
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]

        async def one(i: int) -> None:
            nonlocal degraded
            started = time.perf_counter()
            try:
                execution = await stub.ExecuteWorkflow(request(f"faults-{tag}-{i}"), timeout=30)
                last = None
                async for update in stub.WatchExecution(
                    orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id),
                    timeout=WATCH_TIMEOUT_S,
                ):
                    last = update
                final = await stub.GetExecution(
                    orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id), timeout=30
                )
            except grpc.aio.AioRpcError as error:
                outcomes[f"rpc:{error.code().name}"] += 1
                return
            elapsed = time.perf_counter() - started
            del last
            kind = classify(final)
            outcomes[kind] += 1
            (durations if kind == "completed" else failed_durations).append(elapsed)
            degraded += final.status == execution_pb2.EXECUTION_STATE_COMPLETED and final.degraded
            for detail in final.error_summary.error_details:
                attempt_errors[detail.error_type] += 1

        async def worker() -> None:
            while queue:
                await one(queue.pop(0))

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(min(n, concurrency))))
        wall = time.perf_counter() - t0
    return {
        "outcomes": dict(outcomes),
        "attempt_errors": dict(attempt_errors),
        "p50_s": round(percentile(durations, 50), 3) if durations else None,
        "p95_s": round(percentile(durations, 95), 3) if durations else None,
        "failed_p50_s": round(percentile(failed_durations, 50), 3) if failed_durations else None,
        "completed_degraded": degraded,
        "wall_s": round(wall, 1),
    }


def duplicates(ledger: Path) -> tuple[int, int]:
    """(applications in the ledger, (idempotency key, job) pairs applied more than once)."""
    with sqlite3.connect(ledger) as db:
        total = db.execute("SELECT COUNT(*) FROM applications").fetchone()[0]
        twice = db.execute(
            "SELECT COUNT(*) FROM (SELECT 1 FROM applications GROUP BY idempotency_key, job_id HAVING COUNT(*) > 1)"
        ).fetchone()[0]
    return int(total), int(twice)


async def set_dead(address: str, agent: str, dead: bool = True) -> None:
    """Makes `agent` fail every call (or, with dead False, none)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = faults_pb2_grpc.FaultInjectionStub(channel)  # type: ignore[no-untyped-call]
        config = faults_pb2.FaultConfig(agent=agent, error_rate=1.0 if dead else 0.0, error_code="UNAVAILABLE")
        await stub.SetFaults(config, timeout=10)


async def run_with_outage(target: str, args: argparse.Namespace, tag: str, agents_address: str) -> dict[str, Any]:
    """Runs the executions; with --outage S, the dead agent comes back S seconds in."""

    async def heal() -> None:
        await asyncio.sleep(args.outage)
        await set_dead(agents_address, args.dead, dead=False)

    healing = asyncio.create_task(heal()) if args.dead and args.outage > 0 else None
    try:
        return await run_executions(target, args.n, args.concurrency, tag)
    finally:
        if healing is not None:
            healing.cancel()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python bench/faults.py", description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200, help="executions (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=20, help="executions in flight (default %(default)s)")
    parser.add_argument("--error-rate", type=float, default=0.3, help="every agent's error rate (default %(default)s)")
    parser.add_argument("--dead", default="", metavar="AGENT", help="make this agent fail every call")
    parser.add_argument(
        "--outage", type=float, default=0.0, metavar="S", help="with --dead: the agent comes back after S seconds"
    )
    parser.add_argument("--latency", type=float, default=5.0, metavar="MS", help="agent latency (default %(default)s)")
    parser.add_argument("--seed", type=int, default=11, help="fault seed (default %(default)s)")
    parser.add_argument("--root", default=str(ROOT), help="the checkout whose server runs (default this one)")
    parser.add_argument("--label", default="", help="a name for the row")
    parser.add_argument("serve_args", nargs="*", help="extra `baton serve` arguments (after --)")
    args = parser.parse_args(argv)
    root = Path(args.root).resolve()
    env_path = os.pathsep.join([str(root / "generated"), str(root)])
    os.environ["PYTHONPATH"] = env_path  # the children's code and stubs are the checkout's
    with tempfile.TemporaryDirectory(prefix="baton-faults-") as tmp:
        work = Path(tmp)
        ledger = work / "ledger.db"
        agents_port = free_port()
        # -P: the code comes from PYTHONPATH (the checkout), not from the working directory (this one).
        agents_argv = [python(), "-P", "-m", "server.cli", "agents", "serve", "--listen", f"127.0.0.1:{agents_port}"]
        agents_argv += ["--latency", f"{args.latency:g}", "--error-rate", f"{args.error_rate:g}"]
        agents_argv += ["--seed", str(args.seed), "--ledger", str(ledger), "--faults"]
        agents = Child("agents", agents_argv, work / "agents.log")
        orchestrator = None
        try:
            agents.wait_for("serving", START_TIMEOUT_S)
            if args.dead:
                asyncio.run(set_dead(f"127.0.0.1:{agents_port}", args.dead))
            serve = [python(), "-P", "-m", "server.cli", "serve", "--listen", "127.0.0.1:0"]
            serve += ["--store", f"sqlite:///{work / 'baton.db'}", "--agents", f"127.0.0.1:{agents_port}"]
            serve += ["--log-level", "warning", *args.serve_args]
            orchestrator = Child("orchestrator", serve, work / "orchestrator.log")
            line = orchestrator.wait_for("baton serving on", START_TIMEOUT_S)
            target = address_in(line, "")
            tag = str(time.monotonic_ns())
            figures = asyncio.run(run_with_outage(target, args, tag, f"127.0.0.1:{agents_port}"))
        finally:
            for child in (orchestrator, agents):
                if child is not None:
                    child.stop()
        applications, twice = duplicates(ledger)
    n = args.n
    out = figures["outcomes"]
    completed = out.get("completed", 0)
    circuit = out.get("CIRCUIT_OPEN", 0)
    other = n - completed - circuit
    result = {
        "label": args.label,
        "root": str(root),
        "n": n,
        "concurrency": args.concurrency,
        "error_rate": args.error_rate,
        "dead": args.dead,
        "outage_s": args.outage,
        "serve_args": args.serve_args,
        **figures,
        "completed_pct": round(100 * completed / n, 1),
        "circuit_open_pct": round(100 * circuit / n, 1),
        "failed_otherwise_pct": round(100 * other / n, 1),
        "applications": applications,
        "applied_twice": twice,
    }
    print(json.dumps(result))
    errors = figures["attempt_errors"]
    scenario = f"{args.error_rate:.0%} errors"
    if args.dead:
        scenario = f"{args.dead} dead" + (f" for {args.outage:g} s" if args.outage else "")
    print(
        f"| {args.label or root.name} | {scenario} | {result['completed_pct']}% |"
        f" {result['circuit_open_pct']}% | {result['failed_otherwise_pct']}% | {figures['p50_s']} s |"
        f" {figures['failed_p50_s']} s | {errors.get('UNAVAILABLE', 0)} | {errors.get('CIRCUIT_OPEN', 0)} |"
        f" {errors.get('RETRY_BUDGET_EXHAUSTED', 0)} | {twice} |"
    )


if __name__ == "__main__":
    main()
