"""A callback receiver that is down for a while, at real timings: when does it get the callback?

Starts ``baton serve`` (embedded agents, SQLite) as a child process with the default callback
backoff (1 s doubling to 60 s, with jitter), runs one BENCH.md W execution whose callback_url is
a port nothing listens on, keeps the receiver down for ``--down`` seconds after the execution
ends, then starts it (aiohttp on 127.0.0.1) and measures how long the callback takes to arrive,
with the attempt number it carries and the status the history records.

    .venv/bin/python bench/callback_outage.py --down 60

Arguments after ``--`` go to ``baton serve`` (e.g. ``--callback-max-backoff 10``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import grpc
from aiohttp import web
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Child, address_in, free_port, python, w_plan

E = execution_pb2


async def main(args: argparse.Namespace, serve_args: list[str]) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="baton-callback-outage-"))
    hook_port = free_port()
    argv = [python(), "-m", "server.cli", "serve", "--listen", "127.0.0.1:0", "--agents", "embedded"]
    argv += ["--store", f"sqlite:///{work}/baton.db", "--callback-allow", "127.0.0.1", "--log-level", "warning"]
    server = Child("orchestrator", [*argv, *serve_args], work / "serve.log")
    received: list[tuple[float, dict[str, str]]] = []
    arrived = asyncio.Event()

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received.append((time.monotonic(), dict(request.headers)))
        arrived.set()
        return web.Response(status=204)

    try:
        target = address_in(server.wait_for("baton serving on", 30), "")
        async with grpc.aio.insecure_channel(target) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
            request = orchestrator_pb2.ExecuteWorkflowRequest(
                plan=w_plan(), callback_url=f"http://127.0.0.1:{hook_port}/hook"
            )
            request.user_context.user_id = "outage"
            execution = await stub.ExecuteWorkflow(request, timeout=10)
            ask = orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id)
            async for _ in stub.WatchExecution(ask, timeout=60):
                pass
            ended = time.monotonic()
            await asyncio.sleep(args.down)
            app = web.Application()
            app.router.add_post("/hook", hook)
            runner = web.AppRunner(app)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", hook_port).start()
            up = time.monotonic()
            try:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(arrived.wait(), args.wait)
                status = await stub.GetExecution(
                    orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id)
                )
                while status.callback.state == E.CALLBACK_STATE_PENDING and time.monotonic() - up < args.wait:
                    await asyncio.sleep(0.1)
                    status = await stub.GetExecution(
                        orchestrator_pb2.GetExecutionRequest(execution_id=execution.execution_id)
                    )
            finally:
                await runner.cleanup()
    finally:
        server.stop()
    if not received:
        return {"down_s": args.down, "delivered": False}
    at, headers = received[0]
    return {
        "down_s": args.down,
        "delivered": True,
        "posts": len(received),
        "after_up_s": round(at - up, 2),
        "after_end_s": round(at - ended, 2),
        "attempt": int(headers.get("Baton-Delivery-Attempt", "0")),
        "history_state": E.CallbackState.Name(status.callback.state),
        "history_attempts": status.callback.attempts,
    }


if __name__ == "__main__":
    argv = sys.argv[1:]
    serve_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--down", type=float, default=60.0, help="seconds the receiver stays down after the end (60)")
    parser.add_argument("--wait", type=float, default=180.0, help="seconds to wait for the callback once up (180)")
    print(json.dumps(asyncio.run(main(parser.parse_args(own), serve_args))))
