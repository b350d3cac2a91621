"""The floor: workload W driven by plain asyncio, no persistence, no status stream.

Each step is one real unary grpc.aio ``Analytics.RecordEvents`` call over loopback to the agent
process; the DAG ``A -> (B, C, D) -> E`` is ``await A; await gather(B, C, D); await E``. What a
gRPC orchestrator in Python cannot beat on this machine (BENCH.md).

Run: ``python -m bench.floor --agents 127.0.0.1:PORT --n 500 --concurrency 32 [--warmup 20]``;
prints one JSON line with the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from typing import Any

import grpc
from baton.v1 import analytics_pb2, analytics_pb2_grpc

from bench._common import USER_ID, BatchResult, Outcome, drive

CALL_TIMEOUT_S = 30.0


async def run_floor(agents: str, n: int, concurrency: int, warmup: int = 0) -> dict[str, Any]:
    """Runs `warmup` then `n` workflows of W against the agent process at `agents`; returns the figures."""
    async with grpc.aio.insecure_channel(agents) as channel:
        await asyncio.wait_for(channel.channel_ready(), CALL_TIMEOUT_S)
        stub = analytics_pb2_grpc.AnalyticsStub(channel)  # type: ignore[no-untyped-call]

        async def step() -> None:
            await stub.RecordEvents(analytics_pb2.RecordEventsRequest(user_id=USER_ID), timeout=CALL_TIMEOUT_S)

        async def workflow() -> Outcome:
            try:
                await step()  # A
                await asyncio.gather(step(), step(), step())  # B, C, D
                await step()  # E
            except grpc.aio.AioRpcError as error:
                return Outcome(ok=False, end=time.perf_counter(), error=error.code().name)
            return Outcome(ok=True, end=time.perf_counter())

        warm: BatchResult | None = await drive(workflow, warmup, concurrency) if warmup > 0 else None
        measured = await drive(workflow, n, concurrency)
    figures = measured.summary()
    figures["system"] = "floor"
    figures["warmup"] = warmup
    figures["warmup_failed"] = warm.failures if warm else 0
    return figures


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.floor", description=__doc__.splitlines()[0])
    parser.add_argument("--agents", required=True, help="HOST:PORT of the agent process")
    parser.add_argument("--n", type=int, default=500, help="workflows measured (default %(default)s)")
    parser.add_argument("--concurrency", type=int, default=32, help="workflows in flight (default %(default)s)")
    parser.add_argument("--warmup", type=int, default=20, help="workflows run first, unmeasured (default %(default)s)")
    args = parser.parse_args(argv)
    print(json.dumps(asyncio.run(run_floor(args.agents, args.n, args.concurrency, args.warmup))), flush=True)


if __name__ == "__main__":
    main()
