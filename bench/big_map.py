"""One execution with a large map step (issue 12.4): how long it runs, and how fast its status
and watch stay.

Starts the orchestrator in this process (embedded agents, SQLite in a temporary directory), runs
one explicit plan whose only step maps Analytics.RecordEvents over ``--items`` items
(``max_concurrency`` 64), watched with ``--view``; then times GetExecution and a late watch from
the first event.

    .venv/bin/python bench/big_map.py --items 5000 [--view full|events|states]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.baton_client import VIEWS
from server.app import start_server
from server.config import ServerConfig

O = orchestrator_pb2  # noqa: E741


def big_plan() -> plan_pb2.OrchestrationPlan:
    """One map step: an Analytics.RecordEvents per item of user.data.items."""
    step = plan_pb2.WorkflowStep(step_id="A", step_name="A", agent="analytics", operation="RecordEvents")
    step.inputs.configuration.update({"user_id": "${user.user_id}"})
    step.for_each, step.max_concurrency = "${user.data.items}", 64
    return plan_pb2.OrchestrationPlan(workflow_type="big_map", workflow_steps=[step])


async def main(items: int, view: str) -> dict[str, object]:
    workdir = Path(tempfile.mkdtemp(prefix="baton-big-map-"))
    config = ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{workdir}/baton.db", agents="embedded")
    running = await start_server(config)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            request = O.ExecuteWorkflowRequest(plan=big_plan())
            request.user_context.user_id = "big-map"
            request.user_context.data.update({"items": list(range(items))})
            began = time.perf_counter()
            execution = await stub.ExecuteWorkflow(request, timeout=30)
            watch = O.WatchExecutionRequest(execution_id=execution.execution_id, view=VIEWS[view])
            updates = [u async for u in stub.WatchExecution(watch, timeout=600)]
            ran = time.perf_counter() - began
            reads = []
            for _ in range(5):
                start = time.perf_counter()
                status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution.execution_id))
                reads.append(1000 * (time.perf_counter() - start))
            start = time.perf_counter()
            late = [u async for u in stub.WatchExecution(watch, timeout=600)]
            late_s = time.perf_counter() - start
    finally:
        await running.stop(grace=0.5)
    (report,) = status.performance_metrics.step_timings
    return {
        "items": items,
        "view": view,
        "state": execution_pb2.ExecutionState.Name(status.status),
        "items_done": report.items_done,
        "events": status.last_sequence,
        "run_s": round(ran, 2),
        "updates": len(updates),
        "get_execution_ms_min": round(min(reads), 1),
        "get_execution_ms_max": round(max(reads), 1),
        "status_bytes": status.ByteSize(),
        "late_watch_s": round(late_s, 2),
        "late_watch_updates": len(late),
    }


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=5000, help="items of the map step (default 5000)")
    parser.add_argument("--view", choices=sorted(VIEWS), default="full", help="the watches' view (default full)")
    args = parser.parse_args()
    print(json.dumps(asyncio.run(main(args.items, args.view))))
