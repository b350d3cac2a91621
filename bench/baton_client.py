"""The benchmark's client of a running orchestrator: submits workload W with N in flight.

Each workflow is ``ExecuteWorkflow`` (W's explicit plan, ``user_context.user_id`` set) and then
``WatchExecution`` from the first event until the stream ends. Its latency runs from just before
the submit to the arrival of the stream's last update, the terminal status; it counts as
completed only when that status is COMPLETED, and every other end is counted as a failure.

The watcher reads every update off the wire but decodes only the last one (the terminal
status): the client's own protobuf parsing competes with the orchestrator for the same cores,
and is no part of baton's cost.

Run: ``python -m bench.baton_client --target 127.0.0.1:PORT --n 500 --concurrency 32
[--warmup 20] [--view full|events|states]``; prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from bench._common import USER_ID, BatchResult, Outcome, drive, w_plan

SUBMIT_TIMEOUT_S = 30.0
WATCH_TIMEOUT_S = 120.0
WATCH_METHOD = "/baton.v1.Orchestrator/WatchExecution"


VIEWS = {
    "full": orchestrator_pb2.WATCH_VIEW_FULL,
    "events": orchestrator_pb2.WATCH_VIEW_EVENTS,
    "states": orchestrator_pb2.WATCH_VIEW_STATE_CHANGES,
}
"""The watch views a run may ask for (WatchExecutionRequest.view)."""


async def run_client(target: str, n: int, concurrency: int, warmup: int = 0, view: str = "full") -> dict[str, Any]:
    """Runs `warmup` then `n` workflows of W on the orchestrator at `target`, watching each with
    `view` (``full``: a status with every update; ``events``: with the state changes only;
    ``states``: only the updates where the state changes);
    returns the figures."""
    plan = w_plan()
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), SUBMIT_TIMEOUT_S)
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        # Raw bytes per update (no deserializer): only the terminal one is decoded.
        watch = channel.unary_stream(
            WATCH_METHOD,
            request_serializer=orchestrator_pb2.WatchExecutionRequest.SerializeToString,
            response_deserializer=None,
        )

        async def workflow() -> Outcome:
            request = orchestrator_pb2.ExecuteWorkflowRequest(plan=plan)
            request.user_context.user_id = USER_ID
            last: bytes | None = None
            last_at = 0.0
            try:
                execution = await stub.ExecuteWorkflow(request, timeout=SUBMIT_TIMEOUT_S)
                updates = watch(
                    orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id, view=VIEWS[view]),
                    timeout=WATCH_TIMEOUT_S,
                )
                async for raw in updates:
                    last, last_at = raw, time.perf_counter()
            except grpc.aio.AioRpcError as error:
                return Outcome(ok=False, end=time.perf_counter(), error=error.code().name)
            if last is None:
                return Outcome(ok=False, end=time.perf_counter(), error="stream ended without updates")
            final = orchestrator_pb2.ExecutionUpdate.FromString(last)
            if final.status.status != execution_pb2.EXECUTION_STATE_COMPLETED:
                state = execution_pb2.ExecutionState.Name(final.status.status)
                return Outcome(ok=False, end=last_at, error=state)
            return Outcome(ok=True, end=last_at)

        warm: BatchResult | None = await drive(workflow, warmup, concurrency) if warmup > 0 else None
        measured = await drive(workflow, n, concurrency)
    figures = measured.summary()
    figures["system"] = "baton"
    figures["watch_view"] = view
    figures["warmup"] = warmup
    figures["warmup_failed"] = warm.failures if warm else 0
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.baton_client", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the orchestrator")
    parser.add_argument("--n", type=int, default=500, help="workflows measured (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=32, help="workflows in flight (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="workflows run first, unmeasured (default %(default)s)")
    parser.add_argument("--view", choices=sorted(VIEWS), default="full", help="the watch's view (default %(default)s)")
    args = parser.parse_args(argv)
    figures = run_client(args.target, args.n, args.concurrency, args.warmup, args.view)
    print(json.dumps(asyncio.run(figures)), flush=True)


if __name__ == "__main__":
    main()
