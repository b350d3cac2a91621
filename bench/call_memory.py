"""What one gRPC call in flight costs a grpc.aio client, in RSS: the floor under held executions.

Starts the recording agent (``bench.recording_agent``, answers after ``--latency`` seconds) as a
child process, opens ``--calls`` unary RecordEvents calls to it at once from this process, each
with the metadata baton's agent caller sends, waits until they are all in flight, and prints this
process's VmRSS before and while they are held, per call. ``--options`` are channel options as a
Python literal, e.g. ``'[("grpc.enable_retries", 0)]'``: the agent caller's own options are the
default.

    .venv/bin/python bench/call_memory.py --calls 10000
    .venv/bin/python bench/call_memory.py --calls 10000 --options '[]'   # gRPC's defaults
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import gc
import json
import os
import sys
import tempfile
from pathlib import Path

import grpc
from baton.v1 import analytics_pb2, analytics_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents_clients.grpc_caller import channel_options
from bench._common import _proc_status_kb
from bench.scale import _recording_agent


async def hold(target: str, calls: int, options: list[tuple[str, object]], settle_s: float) -> dict[str, object]:
    async with grpc.aio.insecure_channel(target, options=options) as channel:
        await asyncio.wait_for(channel.channel_ready(), 10)
        stub = analytics_pb2_grpc.AnalyticsStub(channel)  # type: ignore[no-untyped-call]
        gc.collect()
        before = _proc_status_kb(os.getpid(), "VmRSS") or 0
        held = [
            asyncio.ensure_future(
                stub.RecordEvents(
                    analytics_pb2.RecordEventsRequest(),
                    timeout=600,
                    metadata=(("baton-idempotency-key", f"execution-{i:06}/A"), ("baton-attempt", "1")),
                )
            )
            for i in range(calls)
        ]
        await asyncio.sleep(settle_s)
        gc.collect()
        during = _proc_status_kb(os.getpid(), "VmRSS") or 0
        for call in held:
            call.cancel()
        await asyncio.gather(*held, return_exceptions=True)
    return {
        "calls": calls,
        "options": [list(option) for option in options],
        "rss_before_mb": round(before / 1024, 1),
        "rss_held_mb": round(during / 1024, 1),
        "rss_per_call_kb": round((during - before) / calls, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=120.0, help="seconds the agent holds each call")
    parser.add_argument("--settle", type=float, default=8.0, help="seconds to wait for every call to be in flight")
    parser.add_argument("--options", default=None, help="channel options (a Python literal); default: baton's")
    args = parser.parse_args(argv)
    options = list(channel_options()) if args.options is None else list(ast.literal_eval(args.options))
    with tempfile.TemporaryDirectory() as tmp, _recording_agent(args.latency, Path(tmp), ("--quiet",)) as (_, agent):
        print(json.dumps(asyncio.run(hold(agent, args.calls, options, args.settle))))


if __name__ == "__main__":
    main()
