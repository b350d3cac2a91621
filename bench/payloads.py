"""Large outputs stored once (issue 12.4): the store's size for a map step of large outputs.

Starts the orchestrator in this process (embedded agents, SQLite in a temporary directory) with
``--payload-threshold`` on (16 KiB) and off (0), and runs one plan whose only step maps
JobDiscovery.SearchJobs over ``--items`` items (``max_concurrency`` 64). Each output is 20-46 KB:
``identical`` searches every board for 100 postings on every item (one 46 KB output); ``distinct``
varies the boards' order and the limit per item, so every output differs. After the server stops,
it reports the database file's size (checkpointed), the bytes of the events and payloads tables
(SQLite's dbstat: pages, overflow included), and how long reading the history back takes (the
store's read_events, references resolved, as recovery and the first GetExecution read it).

    .venv/bin/python bench/payloads.py --items 1000
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from server.app import start_server
from server.config import ServerConfig
from server.store import SqliteExecutionStore

O = orchestrator_pb2  # noqa: E741
BOARDS = ("linkedin", "indeed", "glassdoor", "ziprecruiter")
# Every order of three or four boards: outputs differ in sources_searched even with equal postings.
ORDERS = [list(order) for size in (3, 4) for order in itertools.permutations(BOARDS, size)]
LIMITS = range(45, 101)


def search_map() -> plan_pb2.OrchestrationPlan:
    """One map step: a SearchJobs per item of user.data.items, with the item's boards and limit."""
    step = plan_pb2.WorkflowStep(step_id="search", step_name="search", agent="job_discovery", operation="SearchJobs")
    step.inputs.configuration.update(
        {"user_id": "${user.user_id}", "sources": "${item.sources}", "limit": "${item.limit}"}
    )
    step.for_each, step.max_concurrency = "${user.data.items}", 64
    return plan_pb2.OrchestrationPlan(workflow_type="payloads", workflow_steps=[step])


def items(count: int, case: str) -> list[dict[str, Any]]:
    if case == "identical":
        return [{"sources": list(BOARDS), "limit": 100}] * count
    if count > len(ORDERS) * len(LIMITS):
        raise SystemExit(f"--items: at most {len(ORDERS) * len(LIMITS)} distinct outputs")
    return [{"sources": ORDERS[i // len(LIMITS)], "limit": LIMITS[i % len(LIMITS)]} for i in range(count)]


def table_bytes(conn: sqlite3.Connection, table: str) -> int:
    (size,) = conn.execute("SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name = ?", (table,)).fetchone()
    return int(size)


async def run(count: int, case: str, threshold: int) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="baton-payloads-"))
    db = workdir / "baton.db"
    config = ServerConfig(
        listen="127.0.0.1:0", store_url=f"sqlite:///{db}", agents="embedded", payload_threshold=threshold
    )
    running = await start_server(config)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            request = O.ExecuteWorkflowRequest(plan=search_map())
            request.user_context.user_id = "payloads"
            request.user_context.data.update({"items": items(count, case)})
            began = time.perf_counter()
            execution = await stub.ExecuteWorkflow(request, timeout=30)
            watch = O.WatchExecutionRequest(execution_id=execution.execution_id, view=O.WATCH_VIEW_STATE_CHANGES)
            async for _ in stub.WatchExecution(watch, timeout=900):
                pass
            ran = time.perf_counter() - began
            status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution.execution_id))
    finally:
        await running.stop(grace=0.5)
    # The history as the engine reads it (references resolved), timed.
    store = SqliteExecutionStore(str(db))
    await store.open()
    try:
        start = time.perf_counter()
        history = await store.read_events(execution.execution_id)
        read_ms = 1000 * (time.perf_counter() - start)
    finally:
        await store.close()
    outputs = [e.step_item_succeeded.output for e in history if e.HasField("step_item_succeeded")]
    conn = sqlite3.connect(db)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        sizes = {table: table_bytes(conn, table) for table in ("events", "payloads")}
        (rows,) = conn.execute("SELECT count(*) FROM payloads").fetchone()
        (item_rows,) = conn.execute(
            "SELECT COALESCE(SUM(length(payload)), 0) FROM events WHERE kind = 'step_item_succeeded'"
        ).fetchone()
    finally:
        conn.close()
    return {
        "items": count,
        "case": case,
        "threshold": threshold,
        "state": execution_pb2.ExecutionState.Name(status.status),
        "outputs": len(outputs),
        "output_kb_mean": round(sum(len(o.value) for o in outputs) / max(len(outputs), 1) / 1000, 1),
        "distinct_outputs": len({o.value for o in outputs}),
        "run_s": round(ran, 2),
        "store_mb": round(db.stat().st_size / 1e6, 2),
        "events_mb": round(sizes["events"] / 1e6, 2),
        "item_event_rows_mb": round(item_rows / 1e6, 2),
        "payloads_mb": round(sizes["payloads"] / 1e6, 2),
        "payload_rows": rows,
        "read_history_ms": round(read_ms, 1),
    }


async def main(count: int, cases: list[str], thresholds: list[int]) -> None:
    for case in cases:
        for threshold in thresholds:
            print(json.dumps(await run(count, case, threshold)), flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=1000, help="items of the map step (default 1000)")
    parser.add_argument("--case", choices=["identical", "distinct", "both"], default="both")
    parser.add_argument("--threshold", type=int, action="append", help="thresholds to run (default 16384 and 0)")
    args = parser.parse_args()
    chosen = ["identical", "distinct"] if args.case == "both" else [args.case]
    asyncio.run(main(args.items, chosen, args.threshold or [16 * 1024, 0]))
