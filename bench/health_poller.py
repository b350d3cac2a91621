"""Polls an orchestrator's GetSystemHealth at a fixed pace until its stdin closes: ``--health-during-burst``.

It runs in its own process so that the burst's client, busy firing thousands of calls, does
not delay the polls and inflate their latency. Each poll is timed from just before the call to
its answer (wall clock, ``time.time()``); polls start every ``--interval`` seconds (or at once
after a poll that took longer). It prints ``polling`` once the channel is ready and, when its
stdin reaches end of file, one JSON line: ``{"polls": [[started_at, ms, code], ...]}``, ``code``
``OK`` or the gRPC status code's name.

Run: ``python -m bench.health_poller --target 127.0.0.1:PORT [--interval 0.05]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import threading
import time

import grpc
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc

POLL_TIMEOUT_S = 10.0


async def poll(target: str, interval: float, stop: threading.Event) -> list[list[object]]:
    """Polls until `stop` is set; returns ``[started_at, ms, code]`` per poll."""
    polls: list[list[object]] = []
    async with grpc.aio.insecure_channel(target) as channel:
        await asyncio.wait_for(channel.channel_ready(), POLL_TIMEOUT_S)
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        print("polling", flush=True)
        while not stop.is_set():
            started = time.time()
            code = "OK"
            try:
                await stub.GetSystemHealth(orchestrator_pb2.GetSystemHealthRequest(), timeout=POLL_TIMEOUT_S)
            except grpc.aio.AioRpcError as error:
                code = error.code().name
            ended = time.time()
            polls.append([round(started, 6), round((ended - started) * 1000.0, 3), code])
            await asyncio.sleep(max(0.0, interval - (ended - started)))
    return polls


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.health_poller", description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="HOST:PORT of the orchestrator")
    parser.add_argument("--interval", type=float, default=0.05, metavar="S", help="seconds between polls' starts")
    args = parser.parse_args(argv)
    stop = threading.Event()

    def wait_for_eof() -> None:
        sys.stdin.read()
        stop.set()

    threading.Thread(target=wait_for_eof, name="stdin", daemon=True).start()
    polls = asyncio.run(poll(args.target, args.interval, stop))
    print(json.dumps({"polls": polls}), flush=True)


if __name__ == "__main__":
    main()
