"""BENCH.md's benchmark in one command: baton beside the floor, on workloads W0 and W10, same run.

    .venv/bin/python bench/run.py [--quick] [--repeat K] [--stores sqlite,postgresql] [--profile DIR [--profile-native]]

For each workload it starts the reference agent process (latency 0 ms for W0, 10 ms for W10;
restarted between), then runs, repetition by repetition, the floor (``bench/floor.py``) and baton
(a fresh ``python -m server.cli serve`` on a fresh SQLite store in a temporary directory, driven
by ``bench/baton_client.py``), alternating which goes first. Each run warms up before measuring.
With ``--stores sqlite,postgresql`` (or ``--store postgresql://USER@HOST:PORT/DB``) baton also runs
on PostgreSQL, beside SQLite in the same run, each run on a fresh database of that server
(system ``baton-pg``).
It prints a markdown table of the medians, writes every raw figure to ``bench/results/`` and
exits 1 when any workflow failed.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import _profile
from bench._common import LEVELS, ROOT, Child, address_in, free_port, is_postgres, postgres_database, python

RESULTS_DIR = ROOT / "bench" / "results"
START_TIMEOUT_S = 60.0
"""Seconds a child process gets to print its "serving" line."""

W0_BAR = 0.5
"""baton's bar: W0 throughput at least half the floor's, same run."""
W10_BAR_MS = 1.0
"""baton's bar: W10 overhead per step at most 1 ms above the floor, at p50."""

LOCAL_POSTGRES = "postgresql://postgres@127.0.0.1:5432/postgres"
"""The server ``--stores postgresql`` means (its own database only creates and drops the runs')."""


def system_of(store: str) -> str:
    """The system name of baton on a store: ``baton`` on SQLite, ``baton-pg`` on PostgreSQL."""
    return "baton-pg" if is_postgres(store) else "baton"


@dataclass(frozen=True)
class Workload:
    """One of BENCH.md's workloads."""

    name: str
    latency_ms: float
    """Each agent call's latency (the agent process's --latency)."""
    n: int
    """Workflows measured per run."""
    concurrency: int
    """Workflows in flight."""

    def label(self) -> str:
        return f"{self.name} (N={self.n}, {self.concurrency} in flight)"


@dataclass(frozen=True)
class Settings:
    """What to run."""

    repeat: int = 3
    n0: int = 500
    concurrency0: int = 32
    n10: int = 60
    warmup: int = 20
    workloads: tuple[str, ...] = ("W0", "W10")
    stores: tuple[str, ...] = ("sqlite",)
    """Where baton stores executions: ``sqlite`` and/or PostgreSQL server URLs."""
    profile_dir: Path | None = None
    """When set, one extra (unmeasured) baton W0 run is profiled with py-spy into this folder."""
    profile_kinds: tuple[str, ...] = ("all", "gil")
    """The py-spy profiles of that run (keys of bench._profile.KINDS)."""

    def plan(self) -> list[Workload]:
        known = {
            "W0": Workload("W0", 0.0, self.n0, self.concurrency0),
            "W10": Workload("W10", 10.0, self.n10, 1),
        }
        return [known[name] for name in self.workloads]


@dataclass
class Report:
    """Everything one invocation measured."""

    machine: dict[str, Any]
    settings: dict[str, Any]
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    headline: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] | None = None

    def failures(self) -> int:
        return sum(int(r.get("failed", 0)) + int(r.get("warmup_failed", 0)) for r in self.runs)


# ---------------------------------------------------------------------------------------------
# Processes


@contextlib.contextmanager
def agent_process(latency_ms: float, logs: Path) -> Iterator[str]:
    """The reference agents (all seven services) on 127.0.0.1; yields their address."""
    requested = f"127.0.0.1:{free_port()}"
    argv = [python(), "-m", "agents", "--listen", requested, "--latency", f"{latency_ms:g}"]
    child = Child("agents", argv, logs / f"agents-{latency_ms:g}ms-{time.monotonic_ns()}.log")
    try:
        line = child.wait_for("serving", START_TIMEOUT_S)
        yield address_in(line, requested)
    finally:
        child.stop()


@contextlib.contextmanager
def store_url(store: str, workdir: Path) -> Iterator[str]:
    """A fresh store: a SQLite file in `workdir`, or a new database on the PostgreSQL server `store`."""
    if is_postgres(store):
        with postgres_database(store) as url:
            yield url
    else:
        yield f"sqlite:///{workdir / 'baton.db'}"


@contextlib.contextmanager
def orchestrator_process(
    agents: str, workdir: Path, store: str, extra_args: Sequence[str] = (), log_name: str = "orchestrator.log"
) -> Iterator[tuple[Child, str]]:
    """``python -m server.cli serve`` on the store URL `store`; yields it and its address.

    `extra_args` are more ``serve`` flags (the scale runs lift the per-user quotas); its output
    goes to `log_name` in `workdir`.
    """
    requested = f"127.0.0.1:{free_port()}"
    argv = [python(), "-m", "server.cli", "serve", "--listen", requested, "--store", store, "--agents", agents]
    child = Child("orchestrator", [*argv, *extra_args], workdir / log_name)
    serving = False
    try:
        line = child.wait_for("baton serving on", START_TIMEOUT_S)
        serving = True
        yield child, address_in(line, requested)
    finally:
        code = child.stop()
        if serving and not child.killed and code not in (0, None):
            print(f"  note: the orchestrator exited with {code} on SIGTERM; {child.tail(5)}", file=sys.stderr)


def _run_driver(module: str, args: list[str], n: int) -> dict[str, Any]:
    """Runs a driver (bench.floor or bench.baton_client) to its end; returns its JSON figures."""
    argv = [python(), "-m", module, *args]
    timeout = 120.0 + 1.0 * n
    try:
        done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as error:
        raise RuntimeError(f"{module} did not finish within {timeout:.0f}s (killed)") from error
    if done.returncode != 0:
        raise RuntimeError(f"{module} exited with {done.returncode}:\n{done.stderr[-3000:]}")
    lines = done.stdout.strip().splitlines()
    if not lines:
        raise RuntimeError(f"{module} printed nothing:\n{done.stderr[-3000:]}")
    figures: dict[str, Any] = json.loads(lines[-1])
    return figures


def run_floor(agents: str, load: Workload, warmup: int) -> dict[str, Any]:
    """One run of the floor."""
    args = ["--agents", agents, "--n", str(load.n), "--concurrency", str(load.concurrency), "--warmup", str(warmup)]
    return _run_driver("bench.floor", args, load.n + warmup)


def run_baton(
    agents: str,
    load: Workload,
    warmup: int,
    workdir: Path,
    profile_dir: Path | None = None,
    profile_kinds: tuple[str, ...] = (),
    store: str = "sqlite",
    view: str = "full",
) -> dict[str, Any]:
    """One run of baton: a fresh orchestrator and store, the client, the orchestrator's peak RSS.

    With `profile_dir`, py-spy samples the orchestrator during the client's run into
    ``baton-w0-KIND.collapsed.txt`` there, for each of `profile_kinds`. `store` is ``sqlite`` or
    a PostgreSQL server URL (the run gets a fresh database there). `view` is the client's watch
    view (bench/baton_client.py).
    """
    workdir.mkdir(parents=True, exist_ok=True)
    with store_url(store, workdir) as url, orchestrator_process(agents, workdir, url) as (orchestrator, address):
        args = ["--target", address, "--n", str(load.n), "--concurrency", str(load.concurrency)]
        args += ["--warmup", str(warmup), "--view", view]
        recorders = []
        if profile_dir is not None:
            for kind in profile_kinds:
                output = profile_dir / f"baton-w0-{kind}.collapsed.txt"
                recorders.append((output, _profile.start_recording(orchestrator.pid, output, kind)))
        cpu0 = orchestrator.cpu_s()
        try:
            figures = _run_driver("bench.baton_client", args, load.n + warmup)
        finally:
            for output, recorder in recorders:
                printed = _profile.stop_recording(recorder)
                if not output.is_file():
                    print(f"  py-spy wrote no {output.name}: {printed[-500:]}", file=sys.stderr)
        cpu1 = orchestrator.cpu_s()
        figures["orchestrator_peak_rss_kb"] = orchestrator.peak_rss_kb()
        if cpu0 is not None and cpu1 is not None:
            figures["orchestrator_cpu_ms_per_wf"] = round(1000.0 * (cpu1 - cpu0) / (load.n + warmup), 3)
    figures["system"] = system_of(store)
    return figures


# ---------------------------------------------------------------------------------------------
# The run


def machine() -> dict[str, Any]:
    """Where the figures were taken."""
    import grpc
    from google import protobuf

    cpu = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu": cpu,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "grpcio": grpc.__version__,
        "protobuf": protobuf.__version__,
        "loadavg_at_start": list(os.getloadavg()),
        "commit": commit,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def run_all(settings: Settings, results_dir: Path = RESULTS_DIR, say: Callable[[str], None] = print) -> Report:
    """Runs every workload, repetition and system; returns the report and writes its JSON."""
    report = Report(machine=machine(), settings=_jsonable(asdict(settings)))
    with tempfile.TemporaryDirectory(prefix="baton-bench-") as tmp:
        scratch = Path(tmp)
        for load in settings.plan():
            say(f"== {load.label()}: agents at {load.latency_ms:g} ms")
            with agent_process(load.latency_ms, scratch) as agents:
                for rep in range(settings.repeat):
                    systems = ["floor", *settings.stores]
                    order = systems if rep % 2 == 0 else systems[::-1]
                    for system in order:
                        if system == "floor":
                            figures = run_floor(agents, load, settings.warmup)
                        else:
                            workdir = scratch / f"{load.name}-{rep}-{system_of(system)}"
                            figures = run_baton(agents, load, settings.warmup, workdir, store=system)
                        figures.update(workload=load.name, rep=rep)
                        report.runs.append(figures)
                        say(f"  {load.name} rep {rep + 1}/{settings.repeat} {_one_line(figures)}")
                if load.name == "W0" and settings.profile_dir is not None:
                    report.profile = _profiled_run(agents, load, settings, scratch / "W0-profiled", say)
    report.summary = summarise(report.runs)
    report.headline = headline(report.summary)
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"bench-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    say(f"raw results: {path}")
    return report


def _profiled_run(agents: str, load: Workload, settings: Settings, workdir: Path, say: Callable[[str], None]) -> Any:
    """One extra baton W0 run under py-spy, not counted in the medians; returns its hot spots."""
    assert settings.profile_dir is not None
    settings.profile_dir.mkdir(parents=True, exist_ok=True)
    figures = run_baton(agents, load, settings.warmup, workdir, settings.profile_dir, settings.profile_kinds)
    say(f"  {load.name} profiled (not counted) {_one_line(figures)}")
    result: dict[str, Any] = {"figures": figures}
    for kind in settings.profile_kinds:
        collapsed = settings.profile_dir / f"baton-w0-{kind}.collapsed.txt"
        if not collapsed.is_file():
            result[kind] = {"error": "py-spy wrote no profile"}
            continue
        result[kind] = {"collapsed": str(collapsed), **_profile.hot_spots(collapsed)}
        title = {"all": "every thread", "gil": "the GIL holder", "native": "the GIL holder, native frames"}[kind]
        say(f"\nhot spots, {title} ({collapsed}; speedscope.app or flamegraph.pl read it):")
        say(_profile.format_hot_spots(result[kind]))
    return result


def _one_line(figures: dict[str, Any]) -> str:
    text = (
        f"{figures['system']:>5}: {figures['throughput_wf_s']:8.1f} wf/s  p50 {figures['p50_ms']} ms"
        f"  p99 {figures['p99_ms']} ms  completed {figures['completed']}/{figures['n']}"
    )
    if figures.get("orchestrator_peak_rss_kb"):
        text += f"  orchestrator RSS {figures['orchestrator_peak_rss_kb'] / 1024:.0f} MB"
    if figures["failed"] or figures.get("warmup_failed"):
        text += f"  FAILED {figures['failed']} (+{figures.get('warmup_failed', 0)} warm-up) {figures['errors']}"
    return text


METRICS = ("throughput_wf_s", "p50_ms", "p99_ms", "orchestrator_peak_rss_kb", "orchestrator_cpu_ms_per_wf")


def summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per workload and system: the median of each figure over the repetitions, and the failures."""
    summary: dict[str, dict[str, dict[str, Any]]] = {}
    for run in runs:
        summary.setdefault(run["workload"], {}).setdefault(run["system"], {"runs": []})["runs"].append(run)
    for systems in summary.values():
        for entry in systems.values():
            group = entry.pop("runs")
            entry["repetitions"] = len(group)
            entry["n"] = group[0]["n"]
            entry["concurrency"] = group[0]["concurrency"]
            entry["failed"] = sum(r["failed"] + r.get("warmup_failed", 0) for r in group)
            for metric in METRICS:
                values = [r[metric] for r in group if r.get(metric) is not None]
                if values:
                    entry[metric] = round(statistics.median(values), 3)
                    entry[f"{metric}_all"] = values
    return summary


def headline(summary: dict[str, dict[str, dict[str, Any]]]) -> dict[str, Any]:
    """baton against its bar: W0 throughput ratio to the floor, W10 overhead per step."""
    result: dict[str, Any] = {}
    w0 = summary.get("W0", {})
    if "baton" in w0 and "floor" in w0 and w0["floor"].get("throughput_wf_s"):
        ratio = w0["baton"]["throughput_wf_s"] / w0["floor"]["throughput_wf_s"]
        result["w0_throughput_ratio"] = round(ratio, 3)
        result["w0_bar_met"] = ratio >= W0_BAR
    if "baton-pg" in w0 and "floor" in w0 and w0["floor"].get("throughput_wf_s"):
        result["w0_postgres_throughput_ratio"] = round(
            w0["baton-pg"]["throughput_wf_s"] / w0["floor"]["throughput_wf_s"], 3
        )
    w10 = summary.get("W10", {})
    if "baton" in w10 and "floor" in w10 and w10["baton"].get("p50_ms") and w10["floor"].get("p50_ms"):
        overhead = (w10["baton"]["p50_ms"] - w10["floor"]["p50_ms"]) / LEVELS
        result["w10_overhead_ms_per_step"] = round(overhead, 3)
        result["w10_bar_met"] = overhead <= W10_BAR_MS
    return result


def markdown(report: Report) -> str:
    """The medians as a markdown table, baton beside the floor of the same run, and the headline."""
    lines = [
        f"baton vs the floor, same run — medians of {report.settings['repeat']} run(s); "
        f"{report.machine['nproc']} CPUs ({report.machine['cpu']}), Python {report.machine['python']}, "
        f"grpcio {report.machine['grpcio']}, commit {report.machine['commit']}",
        "",
        "| workload | system | workflows/s | p50 ms | p99 ms | orchestrator peak RSS | orchestrator CPU/wf | failed |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, systems in report.summary.items():
        for system in ("floor", "baton", "baton-pg"):
            entry = systems.get(system)
            if entry is None:
                continue
            rss = entry.get("orchestrator_peak_rss_kb")
            cpu = entry.get("orchestrator_cpu_ms_per_wf")
            label = f"{name} (N={entry['n']}, {entry['concurrency']} in flight)"
            lines.append(
                f"| {label} | {system} | {_num(entry.get('throughput_wf_s'), 1)} | {_num(entry.get('p50_ms'), 2)} "
                f"| {_num(entry.get('p99_ms'), 2)} | {f'{rss / 1024:.0f} MB' if rss else '—'} "
                f"| {f'{cpu:.2f} ms' if cpu else '—'} | {entry['failed']} |"
            )
    lines.append("")
    head = report.headline
    if "w0_throughput_ratio" in head:
        verdict = "met" if head["w0_bar_met"] else "MISSED"
        ratio = head["w0_throughput_ratio"]
        lines.append(f"- W0 throughput, baton / floor: **{ratio:.2f}** (bar ≥ {W0_BAR}: {verdict})")
    if "w0_postgres_throughput_ratio" in head:
        lines.append(f"- W0 throughput, baton on PostgreSQL / floor: **{head['w0_postgres_throughput_ratio']:.2f}**")
    if "w10_overhead_ms_per_step" in head:
        verdict = "met" if head["w10_bar_met"] else "MISSED"
        lines.append(
            f"- W10 overhead per step, (baton p50 - floor p50) / {LEVELS}: "
            f"**{head['w10_overhead_ms_per_step']:.2f} ms** (bar ≤ {W10_BAR_MS:g} ms: {verdict})"
        )
    failed = report.failures()
    if failed:
        lines.append(f"- **WARNING: {failed} workflow(s) did not complete; these figures are not valid.**")
    else:
        lines.append("- every workflow completed")
    return "\n".join(lines)


def _num(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:,.{digits}f}"


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return str(value) if isinstance(value, Path) else value


def parse_args(argv: list[str] | None = None) -> Settings:
    parser = argparse.ArgumentParser(prog="bench/run.py", description="baton beside the floor on BENCH.md's workload.")
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 repetition, N=100 (W0) and 20 (W10)")
    parser.add_argument("--repeat", type=int, help="repetitions of each system and workload (default 3)")
    parser.add_argument("--n0", type=int, help="W0 workflows per run (default 500)")
    parser.add_argument("--n10", type=int, help="W10 workflows per run (default 60)")
    parser.add_argument("--warmup", type=int, help="unmeasured workflows before each run (default 20)")
    parser.add_argument("--workloads", default="W0,W10", help="comma-separated, from W0 and W10 (default %(default)s)")
    parser.add_argument(
        "--stores",
        default="",
        help="comma-separated stores for baton: sqlite, postgresql (the local server) or postgresql:// URLs"
        " (default sqlite)",
    )
    parser.add_argument(
        "--store",
        action="append",
        default=[],
        metavar="URL",
        help="one more store for baton (sqlite or a postgresql:// server URL); may be repeated",
    )
    parser.add_argument(
        "--profile", type=Path, metavar="DIR", help="also profile one extra baton W0 run with py-spy into DIR"
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="with --profile: sample native frames of the GIL holder (py-spy --native, slows baton down)",
    )
    args = parser.parse_args(argv)
    workloads = tuple(w.strip().upper() for w in args.workloads.split(",") if w.strip())
    if not workloads or set(workloads) - {"W0", "W10"}:
        parser.error(f"--workloads: expected W0 and/or W10, got {args.workloads!r}")
    stores: list[str] = []
    for item in [*args.stores.split(","), *args.store]:
        item = item.strip()
        if not item:
            continue
        store = LOCAL_POSTGRES if item.lower() == "postgresql" else item
        if store != "sqlite" and not is_postgres(store):
            parser.error(f"--stores/--store: sqlite, postgresql or a postgresql:// URL, not {item.split('://')[0]!r}")
        if store not in stores:
            stores.append(store)
    base = Settings(repeat=1, n0=100, n10=20, warmup=5) if args.quick else Settings()
    settings = Settings(
        repeat=args.repeat if args.repeat is not None else base.repeat,
        n0=args.n0 if args.n0 is not None else base.n0,
        concurrency0=base.concurrency0,
        n10=args.n10 if args.n10 is not None else base.n10,
        warmup=args.warmup if args.warmup is not None else base.warmup,
        workloads=workloads,
        stores=tuple(stores) or base.stores,
        profile_dir=args.profile,
        profile_kinds=("native",) if args.profile_native else ("all", "gil"),
    )
    if args.profile_native and args.profile is None:
        parser.error("--profile-native needs --profile DIR")
    if settings.repeat < 1 or settings.n0 < 1 or settings.n10 < 1 or settings.warmup < 0:
        parser.error("--repeat, --n0 and --n10 must be at least 1, --warmup at least 0")
    return settings


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    report = run_all(settings)
    print()
    print(markdown(report))
    return 1 if report.failures() else 0


if __name__ == "__main__":
    sys.exit(main())
