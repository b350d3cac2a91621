"""One command for BENCH.md's workload and the scale runs (issue 12): ``python -m bench``.

    python -m bench --workload W0|W10 [--n N] [--inflight K] [--store URL] [--view full|events|states] [--json]
    python -m bench --agent-latency 60 --inflight 10000 [--store URL] [--json]   # executions held
    python -m bench --watchers 1000 | --recover 1000 | --health-during-burst 5000 [--json]

**The workload run** (``--workload``, the default when no scale run is asked for): one run, over
real gRPC, of BENCH.md's W — the reference agent process (``python -m agents``, 0 ms a call for
W0, 10 ms for W10), the floor (``bench/floor.py``) against it, then ``baton serve`` in its own
process on a fresh store (SQLite in a temporary directory; ``--store postgresql://...``: a fresh
database on that server) driven by ``bench/baton_client.py`` against the same agent process.
Both warm up first (``--warmup``). The processes and figures are bench/run.py's; this command
is one repetition of one workload, where bench/run.py gives the medians of several.

``--json`` prints one JSON object: ``throughput_wfps``, ``p50_ms``, ``p99_ms``,
``overhead_per_step_ms`` ((baton p50 - floor p50) / 3 levels, the same run), ``peak_rss_mb``
(the orchestrator's VmHWM), ``floor_throughput_wfps``, ``floor_p50_ms``, ``ratio`` (baton
throughput / floor throughput), ``workload``, ``n``, ``inflight``, ``store``, ``failed`` (baton's
workflows, warm-up included, that did not complete), and more (``floor_p99_ms``,
``floor_failed``, ``orchestrator_cpu_ms_per_wf``). Each scale run adds one key holding an object
(``hold``, ``watchers``, ``recover``, ``health_burst``; their keys: bench/scale.py). Without
``--json``: a short table. Exit status 1 when any workflow or scale run failed.

**The scale runs** (bench/scale.py says what each measures): ``--agent-latency S`` makes the
run the hold run (``--inflight`` executions held against agents that take S seconds);
``--watchers``, ``--recover`` and ``--health-during-burst`` each add their run. With a scale run,
the workload runs only when ``--workload`` is given. ``--profile DIR`` has py-spy sample the
orchestrator during the hold, watchers and burst runs (bench/scale.py); for the workload,
``bench/run.py --profile DIR`` does it.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench import scale
from bench._common import LEVELS, is_postgres
from bench.baton_client import VIEWS
from bench.run import LOCAL_POSTGRES, Workload, agent_process, run_baton, run_floor

LATENCY_MS = {"W0": 0.0, "W10": 10.0}
DEFAULT_N = {"W0": 500, "W10": 60}
DEFAULT_INFLIGHT = {"W0": 32, "W10": 1}


def run_workload(name: str, n: int, inflight: int, store: str, warmup: int, view: str = "full") -> dict[str, Any]:
    """One run of the floor then baton on workload `name`, against one agent process."""
    load = Workload(name, LATENCY_MS[name], n, inflight)
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp, agent_process(load.latency_ms, Path(tmp)) as agents:
        floor = run_floor(agents, load, warmup)
        baton = run_baton(agents, load, warmup, Path(tmp) / "baton", store=store, view=view)
    rss = baton.get("orchestrator_peak_rss_kb")
    ratio = baton["throughput_wf_s"] / floor["throughput_wf_s"] if floor["throughput_wf_s"] else None
    overhead = None
    if baton["p50_ms"] is not None and floor["p50_ms"] is not None:
        overhead = round((baton["p50_ms"] - floor["p50_ms"]) / LEVELS, 3)
    return {
        "workload": name,
        "n": n,
        "inflight": inflight,
        "store": "sqlite" if store == "sqlite" else "postgresql",
        "view": view,
        "throughput_wfps": baton["throughput_wf_s"],
        "p50_ms": baton["p50_ms"],
        "p99_ms": baton["p99_ms"],
        "overhead_per_step_ms": overhead,
        "peak_rss_mb": None if rss is None else round(rss / 1024, 1),
        "floor_throughput_wfps": floor["throughput_wf_s"],
        "floor_p50_ms": floor["p50_ms"],
        "floor_p99_ms": floor["p99_ms"],
        "ratio": None if ratio is None else round(ratio, 3),
        "failed": baton["failed"] + baton.get("warmup_failed", 0),
        "floor_failed": floor["failed"] + floor.get("warmup_failed", 0),
        "orchestrator_cpu_ms_per_wf": baton.get("orchestrator_cpu_ms_per_wf"),
        "errors": baton["errors"],
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--workload", choices=("W0", "W10"), help="BENCH.md's workload (default W0 without scale runs)")
    parser.add_argument("--n", type=int, help="workflows measured (default 500 for W0, 60 for W10)")
    parser.add_argument(
        "--inflight",
        type=int,
        help="workflows in flight (default 32 for W0, 1 for W10); with --agent-latency: executions held "
        "(default 10000)",
    )
    parser.add_argument("--warmup", type=int, default=20, help="unmeasured workflows first (default %(default)s)")
    parser.add_argument(
        "--view",
        choices=sorted(VIEWS),
        default="full",
        help="the client's WatchExecution view: a status with every update, only with state changes, or "
        "only the state changes (default %(default)s)",
    )
    parser.add_argument(
        "--store",
        default="sqlite",
        metavar="URL",
        help="sqlite (a fresh file), postgresql (the local server) or a postgresql:// server URL (a fresh "
        "database there)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    parser.add_argument(
        "--profile",
        type=Path,
        metavar="DIR",
        help="py-spy samples the orchestrator during the hold, watchers and burst runs' measured phase, into DIR",
    )
    scales = parser.add_argument_group("scale runs (bench/scale.py)")
    scales.add_argument(
        "--agent-latency", type=float, metavar="S", help="the hold run: --inflight executions held, agents at S s"
    )
    scales.add_argument(
        "--hold-output-bytes",
        type=int,
        default=0,
        metavar="B",
        help="with --agent-latency: step A answers at once with a ~B-byte output, B/C/D held (default none)",
    )
    scales.add_argument("--watchers", type=int, metavar="W", help="W concurrent WatchExecution streams")
    scales.add_argument(
        "--watchers-per-execution", type=int, default=10, metavar="K", help="streams per execution (default 10)"
    )
    scales.add_argument(
        "--watch-agent-latency-ms",
        type=float,
        default=1000.0,
        metavar="MS",
        help="agents' latency in the watchers run (default %(default)s)",
    )
    scales.add_argument("--recover", type=int, metavar="N", help="kill -9 with N unfinished executions, restart")
    scales.add_argument(
        "--recover-agent-latency", type=float, default=60.0, metavar="S", help="agents' latency there (default 60)"
    )
    scales.add_argument(
        "--health-during-burst", type=int, metavar="N", help="GetSystemHealth latency while N submissions arrive"
    )
    scales.add_argument(
        "--burst-agent-latency", type=float, default=2.0, metavar="S", help="agents' latency there (default 2)"
    )
    args = parser.parse_args(argv)
    if args.store.lower() == "postgresql":
        args.store = LOCAL_POSTGRES
    if args.store != "sqlite" and not is_postgres(args.store):
        parser.error(f"--store: sqlite, postgresql or a postgresql:// URL, not {args.store.split('://')[0]!r}")
    if args.agent_latency is not None and args.workload:
        parser.error("--agent-latency is the hold run; --inflight then counts executions held, not a workload's")
    for name in ("n", "inflight", "watchers", "watchers_per_execution", "recover", "health_during_burst"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.warmup < 0 or args.hold_output_bytes < 0:
        parser.error("--warmup and --hold-output-bytes must be at least 0")
    for name in ("agent_latency", "recover_agent_latency", "burst_agent_latency", "watch_agent_latency_ms"):
        value = getattr(args, name)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must be at least 0")
    return args


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every run the arguments ask for, in one JSON-able object."""
    any_scale = any(v is not None for v in (args.agent_latency, args.watchers, args.recover, args.health_during_burst))
    result: dict[str, Any] = {}
    if args.workload or not any_scale:
        name = args.workload or "W0"
        n = args.n or DEFAULT_N[name]
        inflight = args.inflight or DEFAULT_INFLIGHT[name]
        result.update(run_workload(name, n, inflight, args.store, args.warmup, args.view))
    else:
        result["store"] = "sqlite" if args.store == "sqlite" else "postgresql"
    if args.agent_latency is not None:
        result["hold"] = scale.run_hold(args.inflight or 10_000, args.agent_latency, args.store, args.hold_output_bytes)
    if args.watchers is not None:
        result["watchers"] = scale.run_watchers(
            args.watchers, args.watchers_per_execution, args.watch_agent_latency_ms, args.store, args.profile
        )
    if args.recover is not None:
        result["recover"] = scale.run_recover(args.recover, args.recover_agent_latency, args.store)
    if args.health_during_burst is not None:
        result["health_burst"] = scale.run_health_burst(
            args.health_during_burst, args.burst_agent_latency, args.store, profile_dir=args.profile
        )
    return result


def failures(result: dict[str, Any]) -> int:
    """Workflows (or scale-run executions) that failed, over every run in `result`."""
    total = int(result.get("failed", 0))
    for key in ("hold", "watchers", "recover", "health_burst"):
        if key in result:
            total += int(result[key].get("failed", 0))
    return total


def table(result: dict[str, Any]) -> str:
    """The figures as a short human table."""
    lines: list[str] = []
    if "workload" in result:
        r = result
        lines += [
            f"{r['workload']} (N={r['n']}, {r['inflight']} in flight), baton on {r['store']}, "
            "the floor in the same run",
            "",
            "| system | workflows/s | p50 ms | p99 ms | peak RSS |",
            "|---|---:|---:|---:|---:|",
            f"| floor | {r['floor_throughput_wfps']} | {r['floor_p50_ms']} | {r['floor_p99_ms']} | — |",
            f"| baton | {r['throughput_wfps']} | {r['p50_ms']} | {r['p99_ms']} | {r['peak_rss_mb']} MB |",
            "",
            f"ratio (baton / floor throughput): {r['ratio']}; overhead per step: {r['overhead_per_step_ms']} ms; "
            f"failed: {r['failed']} (floor: {r['floor_failed']})",
        ]
    if "hold" in result:
        h = result["hold"]
        lines += [
            "",
            f"hold: {h['submitted']}/{h['n']} executions held (agents at {h['agent_latency_s']:g} s, "
            f"{h['calls_held_per_execution']} call(s) each, outputs {h['output_bytes']} B), "
            f"{h['active_at_full']} active; RSS idle {h['rss_idle_mb']} MB, full {h['rss_full_mb']} MB, "
            f"peak {h['peak_rss_mb']} MB, {h['rss_per_execution_kb']} kB per execution; "
            f"submission p50 {h['submit_p50_ms']} ms, p99 {h['submit_p99_ms']} ms",
        ]
    if "watchers" in result:
        w = result["watchers"]
        lines += [
            "",
            f"watchers: {w['watchers']} streams on {w['executions']} executions; {w['live_updates']} live updates, "
            f"commit to watcher p50 {w['update_p50_ms']} ms, p99 {w['update_p99_ms']} ms, "
            f"max {w['update_max_ms']} ms; ends {w['stream_ends']}",
        ]
    if "recover" in result:
        c = result["recover"]
        lines += [
            "",
            f"recover: {c['running_again']}/{c['n']} running again {c['recovery_s']} s after the restart "
            f"(serving after {c['restart_to_serving_s']} s, p50 {c['recovery_p50_s']} s)",
        ]
    if "health_burst" in result:
        b = result["health_burst"]
        lines += [
            "",
            f"health during a burst of {b['n']}: GetSystemHealth p50 {b['health_p50_ms']} ms, "
            f"p99 {b['health_p99_ms']} ms, max {b['health_max_ms']} ms over {b['polls_during']} polls "
            f"(quiet p50 {b['health_quiet_p50_ms']} ms); burst {b['burst_s']} s, answers {b['answers']}",
        ]
    return "\n".join(lines).strip()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    result = run(args)
    print(json.dumps(result) if args.json else table(result), flush=True)
    return 1 if failures(result) else 0


if __name__ == "__main__":
    sys.exit(main())
