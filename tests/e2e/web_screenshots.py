"""Screenshots of the web view's three pages for the README: `python -m tests.e2e.web_screenshots [OUTDIR]`.

Starts the reference agents (slowed down) and `baton serve --web` as processes, runs the demo's
journey and a few small executions, and photographs the pages with the browser tests' headless
Chromium: the journey's page half-way through, the list, the agents. OUTDIR defaults to
server/web/screenshots/ (the README's).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path

import grpc
from baton.v1 import orchestrator_pb2, orchestrator_pb2_grpc

from server.cli._demo import demo_request
from tests.e2e.web_support import approval_plan, chain_plan, chromium_page, serve_with_web
from tests.integration.support import execute_plan, watch_all

ROOT = Path(__file__).resolve().parents[2]
OUTDIR = ROOT / "server" / "web" / "screenshots"


async def take(outdir: Path, processes: list[subprocess.Popen[str]], workdir: Path) -> list[Path]:
    """Takes the three screenshots into `outdir`; returns their paths."""
    server = serve_with_web(processes, workdir, latency_ms=900)
    shots = [outdir / "executions.png", outdir / "execution.png", outdir / "agents.png"]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        for user in ("ann", "ben"):
            done = await stub.ExecuteWorkflow(execute_plan(chain_plan("fetch", "parse", "report"), user_id=user))
            await watch_all(stub, done.execution_id)
        cancelled = await stub.ExecuteWorkflow(execute_plan(approval_plan(), user_id="cy"))
        await stub.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id=cancelled.execution_id))
        await stub.ExecuteWorkflow(execute_plan(approval_plan(), user_id="dee"))
        journey = await stub.ExecuteWorkflow(demo_request())
        async with chromium_page(1280, 860) as page:
            await page.goto(f"{server.url}/executions/{journey.execution_id}")
            # Half-way: some steps done, one running, the rest pending.
            await page.wait_for_function(
                "() => document.querySelectorAll('g.node[data-state=completed]').length >= 4", timeout=60_000
            )
            await page.wait_for_selector("g.node[data-state=running]", timeout=10_000)
            await page.screenshot(path=str(shots[1]))
            await page.goto(f"{server.url}/executions")
            await page.wait_for_selector("#executions tbody tr", timeout=10_000)
            await page.set_viewport_size({"width": 1280, "height": 520})
            await page.screenshot(path=str(shots[0]))
            await page.goto(f"{server.url}/agents")
            await page.wait_for_selector("tr[data-agent=analytics]", timeout=10_000)
            await page.set_viewport_size({"width": 1280, "height": 480})
            await page.screenshot(path=str(shots[2]))
        await watch_all(stub, journey.execution_id, deadline=60)
    return shots


def main(argv: list[str]) -> int:
    outdir = Path(argv[0]) if argv else OUTDIR
    outdir.mkdir(parents=True, exist_ok=True)
    processes: list[subprocess.Popen[str]] = []
    try:
        with tempfile.TemporaryDirectory(prefix="baton-shots-") as workdir:
            shots = asyncio.run(take(outdir, processes, Path(workdir)))
    finally:
        for proc in processes:
            proc.terminate()
            proc.wait(timeout=10)
    for shot in shots:
        print(f"{shot} ({shot.stat().st_size // 1024} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
