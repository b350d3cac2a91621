"""A burst of concurrent ExecuteWorkflow calls: how every one is answered (issue 11's burst).

Starts ``baton serve`` (embedded agents, SQLite in a temporary directory) as a child process,
then fires ``--calls`` ExecuteWorkflow RPCs at once from this process over ``--channels``
connections, each with a ``--deadline``, every call from its own user (so the per-user
submission quota refuses none). It counts the answers by status code, and for
RESOURCE_EXHAUSTED whether the status details carry a ``google.rpc.RetryInfo``.

    .venv/bin/python bench/admission_burst.py --calls 3000 -- --max-running 50 --max-queued 1000

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
from google.rpc import error_details_pb2, status_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._common import Child, free_port, python


def request(index: int) -> orchestrator_pb2.ExecuteWorkflowRequest:
    """One RecordEvents step, from user `index`."""
    plan = plan_pb2.OrchestrationPlan(workflow_type="burst")
    step = plan.workflow_steps.add(step_id="A", step_name="A", agent="analytics", operation="RecordEvents")
    step.inputs.configuration.update({"user_id": "${user.user_id}"})
    call = orchestrator_pb2.ExecuteWorkflowRequest(plan=plan)
    call.user_context.user_id = f"burst-{index}"
    return call


examples: dict[str, str] = {}
"""One status message per code of the last burst."""


def has_retry_info(error: grpc.aio.AioRpcError) -> bool:
    """Whether the error's status details hold a google.rpc.RetryInfo."""
    raw = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin")
    if not isinstance(raw, bytes):
        return False
    status = status_pb2.Status.FromString(raw)
    return any(detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR) for detail in status.details)


async def burst(address: str, calls: int, channels: int, deadline: float) -> collections.Counter[str]:
    """Fires the calls at once; returns answers by status code (``+retry`` when RetryInfo came)."""
    opened = [grpc.aio.insecure_channel(address) for _ in range(channels)]
    stubs = [orchestrator_pb2_grpc.OrchestratorStub(ch) for ch in opened]  # type: ignore[no-untyped-call]
    for ch in opened:
        await ch.channel_ready()
    answers: collections.Counter[str] = collections.Counter()
    examples.clear()

    async def one(index: int) -> None:
        try:
            await stubs[index % channels].ExecuteWorkflow(request(index), timeout=deadline)
            answers["OK"] += 1
        except grpc.aio.AioRpcError as error:
            name = error.code().name
            if error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED and has_retry_info(error):
                name += "+retry"
            answers[name] += 1
            examples.setdefault(name, (error.details() or "")[:160])

    try:
        await asyncio.gather(*(one(i) for i in range(calls)))
    finally:
        for ch in opened:
            await ch.close()
    return answers


async def main(args: argparse.Namespace, serve_args: list[str]) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="baton-burst-"))
    port = free_port()
    argv = [python(), "-m", "server.cli", "serve", "--listen", f"127.0.0.1:{port}"]
    argv += ["--store", f"sqlite:///{workdir}/baton.db", "--log-level", "warning", *serve_args]
    server = Child("orchestrator", argv, workdir / "serve.log")
    try:
        server.wait_for("baton serving on", 30)
        for round_no in range(args.rounds):
            started = time.monotonic()
            answers = await burst(f"127.0.0.1:{port}", args.calls, args.channels, args.deadline)
            took = time.monotonic() - started
            shown = ", ".join(f"{code} {count}" for code, count in sorted(answers.items()))
            print(f"round {round_no + 1}: {args.calls} calls in {took:.1f}s: {shown}")
            for code, message in sorted(examples.items()):
                print(f"  {code}: {message}")
            await asyncio.sleep(args.pause)
    finally:
        server.stop()


if __name__ == "__main__":
    argv = sys.argv[1:]
    serve_args = argv[argv.index("--") + 1 :] if "--" in argv else []
    own = argv[: argv.index("--")] if "--" in argv else argv
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="concurrent ExecuteWorkflow calls (default 3000)")
    parser.add_argument("--channels", type=int, default=4, help="client connections (default 4)")
    parser.add_argument("--deadline", type=float, default=10.0, help="each call's deadline in seconds (default 10)")
    parser.add_argument("--rounds", type=int, default=1, help="bursts, one after the other (default 1)")
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between rounds (default 2)")
    asyncio.run(main(parser.parse_args(own), serve_args))
