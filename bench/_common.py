"""What the benchmark's pieces share: workload W, the batch driver, statistics and child processes.

Workload W (BENCH.md): five steps ``A -> (B, C, D) -> E``, each one unary
``baton.v1.Analytics/RecordEvents`` call to the agent process over loopback.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit, urlunsplit

from baton.v1 import plan_pb2

ROOT = Path(__file__).resolve().parents[1]
"""The repository's root: child processes run there so that ``-m bench.*`` and ``-m server.cli`` resolve."""

USER_ID = "bench-user"
"""The user every benchmark workflow runs for."""

LEVELS = 3
"""The levels of W's critical path (A, then B|C|D, then E)."""

STEPS = (("A", ()), ("B", ("A",)), ("C", ("A",)), ("D", ("A",)), ("E", ("B", "C", "D")))
"""W's steps and their dependencies, in plan order."""


def w_plan(step_timeout_s: float | None = None) -> plan_pb2.OrchestrationPlan:
    """The explicit plan of workload W, run in parallel mode.

    `step_timeout_s` sets each step's attempt timeout (the plan's default is 30 s): the scale runs
    hold agents longer than that and must not see a retry.
    """
    plan = plan_pb2.OrchestrationPlan(workflow_type="bench_w")
    plan.execution_strategy.execution_mode = plan_pb2.EXECUTION_MODE_PARALLEL
    for step_id, deps in STEPS:
        step = plan.workflow_steps.add(
            step_id=step_id, step_name=step_id, agent="analytics", operation="RecordEvents", dependencies=deps
        )
        step.inputs.configuration.update({"user_id": "${user.user_id}"})
        if step_timeout_s is not None:
            step.timing.timeout.FromNanoseconds(int(step_timeout_s * 1e9))
    return plan


# ---------------------------------------------------------------------------------------------
# The batch driver: N workflows, `concurrency` in flight, each timed from start to its end.


@dataclass(frozen=True)
class Outcome:
    """How one workflow ended."""

    ok: bool
    """True when it completed."""
    end: float
    """perf_counter() when its end was seen (the terminal status, or the floor's last call)."""
    error: str = ""
    """Why it did not complete, short (an RPC code or the final state)."""


@dataclass
class BatchResult:
    """N workflows driven with `concurrency` in flight."""

    n: int
    concurrency: int
    elapsed_s: float
    latencies_ms: list[float] = field(default_factory=list)
    failures: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    cpu_s: float = 0.0
    """CPU seconds the driving process used during the batch."""

    def summary(self) -> dict[str, Any]:
        """The batch's figures as plain JSON values."""
        completed = len(self.latencies_ms)
        return {
            "n": self.n,
            "concurrency": self.concurrency,
            "completed": completed,
            "failed": self.failures,
            "errors": dict(self.errors.most_common(5)),
            "elapsed_s": round(self.elapsed_s, 4),
            "throughput_wf_s": round(completed / self.elapsed_s, 2) if self.elapsed_s > 0 else 0.0,
            "p50_ms": _round(percentile(self.latencies_ms, 50)),
            "p99_ms": _round(percentile(self.latencies_ms, 99)),
            "mean_ms": _round(sum(self.latencies_ms) / completed if completed else math.nan),
            "min_ms": _round(min(self.latencies_ms, default=math.nan)),
            "max_ms": _round(max(self.latencies_ms, default=math.nan)),
            "client_cpu_s": round(self.cpu_s, 3),
        }


async def drive(one: Callable[[], Awaitable[Outcome]], n: int, concurrency: int) -> BatchResult:
    """Runs `one` n times with at most `concurrency` running at once; times each from its start.

    Args:
        one: Starts one workflow and returns how it ended; it must not raise.
        n: How many workflows.
        concurrency: How many in flight at once (workers pulling the next workflow).
    """
    result = BatchResult(n=n, concurrency=concurrency, elapsed_s=0.0)
    remaining = n

    async def worker() -> None:
        nonlocal remaining
        while remaining > 0:
            remaining -= 1
            started = time.perf_counter()
            try:
                outcome = await one()
            except Exception as error:  # a bug in `one`; still counted, never hidden
                outcome = Outcome(ok=False, end=time.perf_counter(), error=f"{type(error).__name__}: {error}"[:120])
            if outcome.ok:
                result.latencies_ms.append((outcome.end - started) * 1000.0)
            else:
                result.failures += 1
                result.errors[outcome.error] += 1

    cpu0 = time.process_time()
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, n)))))
    result.elapsed_s = time.perf_counter() - t0
    result.cpu_s = time.process_time() - cpu0
    return result


def percentile(values: Sequence[float], pct: float) -> float:
    """The pct-th percentile by linear interpolation between closest ranks; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * pct / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def _round(value: float) -> float | None:
    return None if math.isnan(value) else round(value, 3)


# ---------------------------------------------------------------------------------------------
# Child processes: started from the repository root, waited on with deadlines, always stopped.


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Child:
    """A long-running child process (agents or orchestrator) whose output goes to a log file.

    A thread copies its stdout to the log, so the pipe never fills; `wait_for` waits for a line.
    """

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self._log: TextIO = log_path.open("w", encoding="utf-8")
        self._lines: list[str] = []
        self.killed = False
        """True once `kill` was called: its exit code then says nothing about its shutdown."""
        self._new_line = threading.Condition()
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
        )
        self._reader = threading.Thread(target=self._pump, name=f"{name}-stdout", daemon=True)
        self._reader.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._log.write(line)
            self._log.flush()
            with self._new_line:
                self._lines.append(line)
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def wait_for(self, needle: str, timeout: float) -> str:
        """Returns the first output line containing `needle`; raises if it exits or times out first."""
        deadline = time.monotonic() + timeout
        seen = 0
        with self._new_line:
            while True:
                for line in self._lines[seen:]:
                    if needle in line:
                        return line.strip()
                seen = len(self._lines)
                if self.proc.poll() is not None and not self._reader.is_alive():
                    code = self.proc.returncode
                    raise RuntimeError(f"{self.name} exited with {code} before {needle!r}; {self.tail()}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"{self.name} printed no {needle!r} within {timeout:.0f}s; {self.tail()}")
                self._new_line.wait(min(left, 0.5))

    def tail(self, lines: int = 15) -> str:
        """The last lines of its output, for error messages."""
        return "output tail:\n" + "".join(self._lines[-lines:])

    def peak_rss_kb(self) -> int | None:
        """VmHWM (peak resident set size) in kB from /proc, while it runs."""
        return _proc_status_kb(self.pid, "VmHWM")

    def rss_kb(self) -> int | None:
        """VmRSS (resident set size now) in kB from /proc, while it runs."""
        return _proc_status_kb(self.pid, "VmRSS")

    def lines_since(self, start: int) -> list[str]:
        """Its output lines from the `start`-th on (0-based), as read so far."""
        with self._new_line:
            return self._lines[start:]

    def kill(self) -> None:
        """SIGKILL (``kill -9``), and waits for it to be gone; `stop` still closes the log."""
        self.killed = True
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)

    def cpu_s(self) -> float | None:
        """User + system CPU seconds it has used so far, from /proc."""
        try:
            fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks

    def stop(self, grace: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL after `grace` seconds; returns the exit code."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reader.join(2)
        self._log.close()
        return self.proc.returncode


def _proc_status_kb(pid: int, key: str) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def address_in(line: str, fallback: str) -> str:
    """The HOST:PORT a "... serving on HOST:PORT" line names, else `fallback`."""
    word = line.rsplit(" ", 1)[-1].strip()
    host, sep, port = word.rpartition(":")
    return word if sep and host and port.isdigit() else fallback


def python() -> str:
    """The interpreter the benchmark runs under (the venv's), for every child."""
    return sys.executable


# ---------------------------------------------------------------------------------------------
# PostgreSQL: every run gets a fresh database, as every SQLite run gets a fresh file.


def is_postgres(url: str) -> bool:
    """Whether a store URL names PostgreSQL."""
    return url.split("://", 1)[0].lower() in ("postgresql", "postgres", "postgresql+asyncpg")


async def _admin_execute(server_url: str, statement: str) -> None:
    """Runs one statement on the database `server_url` names (used to create and drop others)."""
    import asyncpg

    admin = await asyncpg.connect("postgresql://" + server_url.split("://", 1)[1], timeout=10)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


def _database_url(server_url: str, name: str) -> str:
    parts = urlsplit("postgresql://" + server_url.split("://", 1)[1])
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, ""))


@contextlib.asynccontextmanager
async def fresh_postgres_database(server_url: str) -> AsyncIterator[str]:
    """Creates ``baton_bench_<random>`` on the server `server_url` names, yields its URL, drops it.

    `server_url`'s own database is used only to create and drop the new one.
    """
    name = f"baton_bench_{secrets.token_hex(4)}"
    await _admin_execute(server_url, f'CREATE DATABASE "{name}"')
    try:
        yield _database_url(server_url, name)
    finally:
        await _admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def postgres_database(server_url: str) -> Iterator[str]:
    """fresh_postgres_database for code with no event loop running."""
    name = f"baton_bench_{secrets.token_hex(4)}"
    asyncio.run(_admin_execute(server_url, f'CREATE DATABASE "{name}"'))
    try:
        yield _database_url(server_url, name)
    finally:
        asyncio.run(_admin_execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
