"""The benchmark's client of a running orchestrator: submits workload W with N in flight.

Each workflow is ``ExecuteWorkflow`` (W's explicit plan, ``user_context.user_id`` set, no
request_id) and then ``WatchExecution`` from the first event until the stream ends, both through
the client API (server.client.BatonClient). Its latency runs from just before the submit to the
arrival of the stream's last update, the terminal status; it counts as completed only when that
status is COMPLETED, and every other end is counted as a failure.

The watcher reads every update off the wire but decodes only the last one (the terminal
status): ``BatonClient.watch_raw`` hands over the undecoded bytes and decodes a stream's last
update only. The client's own protobuf parsing competes with the orchestrator for the same
cores, and is no part of baton's cost.

Run: ``python -m bench.baton_client --target 127.0.0.1:PORT --n 500 --concurrency 32
[--warmup 20] [--view full|events|states]``; prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

from baton.v1 import execution_pb2, orchestrator_pb2

from bench._common import USER_ID, BatchResult, Outcome, drive, w_plan
from server.client import VIEWS, BatonClient, BatonError

SUBMIT_TIMEOUT_S = 30.0
WATCH_TIMEOUT_S = 120.0

__all__ = ["VIEWS", "main", "run_client"]


async def run_client(target: str, n: int, concurrency: int, warmup: int = 0, view: str = "full") -> dict[str, Any]:
    """Runs `warmup` then `n` workflows of W on the orchestrator at `target`, watching each with
    `view` (``full``: a status with every update; ``events``: with the state changes only;
    ``states``: only the updates where the state changes);
    returns the figures."""
    plan = w_plan()
    async with BatonClient(target, timeout=SUBMIT_TIMEOUT_S) as client:
        await asyncio.wait_for(client.channel.channel_ready(), SUBMIT_TIMEOUT_S)

        async def workflow() -> Outcome:
            request = orchestrator_pb2.ExecuteWorkflowRequest(plan=plan)
            request.user_context.user_id = USER_ID
            last_at = 0.0
            try:
                async with asyncio.timeout(WATCH_TIMEOUT_S):
                    execution = await client.submit(request, idempotent=False)
                    updates = client.watch_raw(execution.execution_id, view=VIEWS[view])
                    async for _ in updates:
                        last_at = time.perf_counter()
            except BatonError as error:
                return Outcome(ok=False, end=time.perf_counter(), error=error.code.name if error.code else "WATCH")
            except TimeoutError:
                return Outcome(ok=False, end=time.perf_counter(), error="DEADLINE_EXCEEDED")
            final = updates.final
            if final is None or not last_at:
                return Outcome(ok=False, end=time.perf_counter(), error="stream ended without updates")
            if final.status != execution_pb2.EXECUTION_STATE_COMPLETED:
                return Outcome(ok=False, end=last_at, error=execution_pb2.ExecutionState.Name(final.status))
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
