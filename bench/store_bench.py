"""Micro-benchmark of an execution store: N executions x M events, K concurrent appenders.

Run: ``python bench/store_bench.py [--store sqlite|postgresql://USER@HOST:PORT/DB] [--executions N]
[--events M] [--concurrency K]``. SQLite runs on a fresh file in a temporary directory; with a
PostgreSQL URL each run creates a fresh database ``baton_bench_<random>`` on that server (the
URL's own database is used only to create and drop it). Each
appender takes executions one at a time, creates it, then appends its events one per call
(as the engine does), so every event is one awaited, durable append. Prints events/s,
appends/s, commits/s, the mean batch and append latency percentiles.

``--writer loop|thread`` picks where SQLite's batches commit; ``--busy-ms X`` keeps the event loop busy
with pure-Python work in X ms slices, as the rest of the orchestrator would, which is where
the two writers differ (a thread must win the GIL back from the loop after every SQLite call).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `bench` importable from the repository root
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from baton.v1 import execution_pb2
from google.protobuf import any_pb2, timestamp_pb2

from bench._common import fresh_postgres_database, is_postgres
from server.store import NewExecution, PostgresExecutionStore, SqliteExecutionStore


def _event(sequence: int, execution_id: str, stamp: timestamp_pb2.Timestamp) -> execution_pb2.ExecutionEvent:
    """An event shaped like the engine's: alternating step_started and step_succeeded."""
    event = execution_pb2.ExecutionEvent(sequence=sequence)
    # Copying a ready Timestamp keeps datetime conversion (the caller's cost) out of the figure.
    event.time.seconds = stamp.seconds
    event.time.nanos = stamp.nanos
    step_id = f"step_{sequence // 2}"
    if sequence % 2 == 0:
        event.step_started.step_id = step_id
        event.step_started.attempt = 1
        event.step_started.agent = "job_discovery"
        event.step_started.operation = "SearchJobs"
        event.step_started.idempotency_key = f"{execution_id}/{step_id}/1"
    else:
        event.step_succeeded.step_id = step_id
        event.step_succeeded.attempt = 1
        event.step_succeeded.output.CopyFrom(
            any_pb2.Any(type_url="type.googleapis.com/baton.v1.SearchJobsResponse", value=b"x" * 200)
        )
        event.step_succeeded.request_bytes = 120
        event.step_succeeded.response_bytes = 240
    return event


async def _run_postgres(args: argparse.Namespace) -> dict[str, float]:
    async with fresh_postgres_database(args.store) as url:
        return await _run(args, PostgresExecutionStore(url))


def _run_once(args: argparse.Namespace) -> dict[str, float]:
    if is_postgres(args.store):
        return asyncio.run(_run_postgres(args))
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = str(Path(folder) / "bench.db")
        return asyncio.run(_run(args, SqliteExecutionStore(path, synchronous=args.synchronous, writer=args.writer)))


async def _run(args: argparse.Namespace, store: SqliteExecutionStore | PostgresExecutionStore) -> dict[str, float]:
    await store.open()
    now = datetime.now(UTC)
    stamp = timestamp_pb2.Timestamp()
    stamp.FromDatetime(now)
    work: asyncio.Queue[str] = asyncio.Queue()
    for _ in range(args.executions):
        work.put_nowait(str(uuid.uuid4()))
    latencies: list[float] = []
    clock = time.perf_counter

    async def appender() -> None:
        while not work.empty():
            execution_id = work.get_nowait()
            first = execution_pb2.ExecutionEvent(sequence=1)
            first.time.CopyFrom(stamp)
            first.execution_started.request_id = execution_id
            # Creation times increase as they would in service, so the time-ordered indexes grow
            # at their ends; one shared time would scatter every insert by its random id.
            created_at = datetime.now(UTC)
            new = NewExecution(execution_id, "user-1", "job_search", "plan-1", execution_id, 2, created_at)
            await store.create_execution(new, first)
            for sequence in range(2, args.events + 1):
                event = _event(sequence, execution_id, stamp)
                started = clock()
                await store.append(execution_id, [event], execution_pb2.EXECUTION_STATE_RUNNING)
                latencies.append(clock() - started)

    done = False

    async def busy() -> None:
        # Stands in for the rest of the orchestrator (engine, gRPC) keeping the event loop busy:
        # pure-Python work in slices of --busy-ms, which a writer thread competes with for the GIL.
        while not done:
            until = clock() + args.busy_ms / 1000
            while clock() < until:
                pass
            await asyncio.sleep(0)

    before = store.stats.commits
    started = clock()
    spinner = asyncio.create_task(busy()) if args.busy_ms > 0 else None
    await asyncio.gather(*(appender() for _ in range(args.concurrency)))
    elapsed = clock() - started
    done = True
    if spinner is not None:
        await spinner
    commits = store.stats.commits - before
    await store.close()
    events = args.executions * args.events
    latencies.sort()
    return {
        "seconds": elapsed,
        "events_per_s": events / elapsed,
        "appends_per_s": len(latencies) / elapsed,
        "commits_per_s": commits / elapsed,
        "mean_batch": events / commits,
        "append_p50_ms": 1000 * statistics.median(latencies),
        "append_p99_ms": 1000 * latencies[int(0.99 * (len(latencies) - 1))],
    }


def main() -> None:
    """Parses the arguments, runs the benchmark `--runs` times and prints each run and the median."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=2000, help="executions (N)")
    parser.add_argument("--events", type=int, default=10, help="events per execution (M), the first is the create")
    parser.add_argument("--concurrency", type=int, default=100, help="concurrent appenders (K)")
    parser.add_argument(
        "--store", default="sqlite", help="sqlite (a temporary file) or a postgresql:// server URL (default sqlite)"
    )
    parser.add_argument("--synchronous", default="NORMAL", help="SQLite synchronous level")
    parser.add_argument("--writer", default="auto", help="auto, loop or thread")
    parser.add_argument("--busy-ms", type=float, default=0.0, help="keep the event loop busy in slices of this many ms")
    parser.add_argument(
        "--switch-interval", type=float, default=None, help="sys.setswitchinterval in seconds (default: Python's 0.005)"
    )
    parser.add_argument("--runs", type=int, default=3, help="runs; the median is reported")
    parser.add_argument("--dir", default=None, help="where to put the database (a temporary directory by default)")
    args = parser.parse_args()
    if args.store != "sqlite" and not is_postgres(args.store):
        parser.error(f"--store: sqlite or a postgresql:// URL, not {args.store.split('://', 1)[0]!r}")
    if args.switch_interval is not None:
        sys.setswitchinterval(args.switch_interval)
    results = []
    for run in range(args.runs):
        result = _run_once(args)
        results.append(result)
        print(f"run {run + 1}: " + ", ".join(f"{key} {value:,.2f}" for key, value in result.items()))
    where = (
        f"postgresql on {args.store.split('@')[-1].split('/')[0]}"
        if is_postgres(args.store)
        else f"sqlite synchronous={args.synchronous} writer={args.writer}"
    )
    print(
        f"median of {args.runs} (N={args.executions} M={args.events} K={args.concurrency} {where}): "
        + ", ".join(f"{key} {statistics.median(r[key] for r in results):,.2f}" for key in results[0])
    )


if __name__ == "__main__":
    main()
