"""The orchestrator's memory under watch streams that are never read (issue 10's pinned memory).

Starts ``baton serve`` (embedded agents, SQLite in a temporary directory) as a child process,
runs one execution whose first event is large (``--event-mb``, user context and plan literals),
then opens ``--streams`` WatchExecution streams on it, each on its own connection, that never
read a byte. It prints the orchestrator's VmRSS before, while the streams are open, and after
the server has had ``--hold`` seconds to end them; then the clients read what is left, to show
how each stream ended (the code and message), and the orchestrator is stopped.

    .venv/bin/python bench/watch_memory.py --streams 50 --event-mb 2 --hold 20 -- --watch-stall 5

Arguments after ``--`` go to ``baton serve``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import tempfile
import time
from pathlib import Path

import grpc
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Child, _proc_status_kb, free_port, python

_STRING = 200 * 1024


def big_request(event_mb: float) -> orchestrator_pb2.ExecuteWorkflowRequest:
    """An ExecuteWorkflow of one RecordEvents step whose execution_started event takes ~event_mb MB."""
    total = int(event_mb * 1024 * 1024)
    # Half in user_context.data (at most 1 MiB), the rest as literal event properties in the plan.
    data_bytes = min(total // 2, 1000 * 1024)
    plan_bytes = total - data_bytes
    request = orchestrator_pb2.ExecuteWorkflowRequest(request_id=f"big-{time.time_ns()}")
    request.user_context.user_id = "memory-user"
    request.user_context.data.update({f"blob{i}": "d" * _STRING for i in range(max(1, data_bytes // _STRING))})
    plan = plan_pb2.OrchestrationPlan(workflow_type="memory")
    step = plan.workflow_steps.add(step_id="A", step_name="A", agent="analytics", operation="RecordEvents")
    properties = {f"p{i}": "p" * _STRING for i in range(max(1, plan_bytes // _STRING))}
    step.inputs.configuration.update(
        {"user_id": "${user.user_id}", "events": [{"name": "big", "properties": properties}]}
    )
    request.plan.CopyFrom(plan)
    return request


def rss_kb(pid: int) -> int:
    """The process's resident set size in kB."""
    return _proc_status_kb(pid, "VmRSS") or 0


async def main(args: argparse.Namespace, serve_args: list[str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="baton-watchmem-"))
    port = free_port()
    argv = [python(), "-m", "server.cli", "serve", "--listen", f"127.0.0.1:{port}"]
    argv += ["--store", f"sqlite:///{workdir}/baton.db", "--log-level", "warning", *serve_args]
    server = Child("orchestrator", argv, workdir / "serve.log")
    address = f"127.0.0.1:{port}"
    try:
        server.wait_for("baton serving on", 30)
        options = [("grpc.max_receive_message_length", 64 * 1024 * 1024)]
        async with grpc.aio.insecure_channel(address, options=options) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
            request = big_request(args.event_mb)
            execution = await stub.ExecuteWorkflow(request, timeout=30)
            updates = [
                u
                async for u in stub.WatchExecution(
                    orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id), timeout=60
                )
            ]
            first = updates[0].event.ByteSize()
            print(
                f"execution {execution.execution_id}: {len(updates)} updates, first event {first / 1e6:.2f} MB,"
                f" final state {updates[-1].status.status}"
            )
        await asyncio.sleep(1)
        before = rss_kb(server.pid)
        print(f"orchestrator VmRSS before the streams: {before / 1024:.1f} MiB")

        # A client that grants no more than the initial 64 KiB window (no BDP probing), as a
        # hostile or merely stuck client may: what the server cannot send, it holds.
        stuck = [*options, ("grpc.http2.bdp_probe", 0)]
        channels = [grpc.aio.insecure_channel(address, options=stuck) for _ in range(args.streams)]
        watch = orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id)
        calls = [
            ch.unary_stream(
                "/baton.v1.Orchestrator/WatchExecution", request_serializer=lambda m: m.SerializeToString()
            )(watch, timeout=args.hold + 120)
            for ch in channels
        ]
        samples = []
        started = time.monotonic()
        while time.monotonic() - started < args.hold:
            await asyncio.sleep(1)
            samples.append((time.monotonic() - started, rss_kb(server.pid)))
        peak = max(kb for _, kb in samples)
        print(
            f"orchestrator VmRSS with {args.streams} unread streams: peak {peak / 1024:.1f} MiB"
            f" (+{(peak - before) / 1024:.1f} MiB, {(peak - before) / 1024 / args.streams:.2f} MiB per stream)"
        )
        print("  samples (s, MiB): " + ", ".join(f"{t:.0f}:{kb / 1024:.0f}" for t, kb in samples))
        after = rss_kb(server.pid)
        print(f"orchestrator VmRSS after {args.hold:.0f}s: {after / 1024:.1f} MiB (+{(after - before) / 1024:.1f} MiB)")

        # Now read: how did each stream end?
        endings: collections.Counter[str] = collections.Counter()
        example = ""
        for call in calls:
            count = 0
            try:
                async for _ in call:
                    count += 1
                endings["OK (read to the end)"] += 1
            except grpc.aio.AioRpcError as error:
                limit = (error.details() or "").split(":", 1)[0]
                endings[f"{error.code().name} {limit} after {count} message(s)"] += 1
                example = example or f"{error.code().name}: {error.details()} (after {count} messages)"
        print(f"endings: {dict(endings)}")
        if example:
            print(f"  e.g. {example}")
        for ch in channels:
            await ch.close()
        await asyncio.sleep(2)
        print(f"orchestrator VmRSS once the clients read and left: {rss_kb(server.pid) / 1024:.1f} MiB")
    finally:
        server.stop()


if __name__ == "__main__":
    argv = sys.argv[1:]
    serve_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, serve_args = argv[:cut], argv[cut + 1 :]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=50)
    parser.add_argument("--event-mb", type=float, default=2.0)
    parser.add_argument("--hold", type=float, default=20.0)
    asyncio.run(main(parser.parse_args(argv), serve_args))
