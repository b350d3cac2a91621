"""The web view's browser tests and screenshots: Debian's Chromium driven by Playwright, a real `baton serve --web`."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from baton.v1 import plan_pb2
from playwright.async_api import Page, async_playwright

from tests.conftest import free_port, serve_orchestrator, spawn, wait_for_line
from tests.integration.support import step


@asynccontextmanager
async def chromium_page(width: int = 1280, height: int = 900) -> AsyncIterator[Page]:
    """A page of a fresh headless Chromium, closed on exit."""
    executable = shutil.which("chromium")
    if executable is None:
        raise AssertionError("no chromium on PATH: apt-get install chromium (tests/run.sh does)")
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            page = await browser.new_page(viewport={"width": width, "height": height})
            yield page
        finally:
            await browser.close()


@dataclass(frozen=True)
class WebServer:
    """A `baton serve --web` process with its own agents process."""

    address: str
    """The orchestrator's gRPC HOST:PORT."""
    url: str
    """The web view's base URL."""
    process: subprocess.Popen[str]
    """The orchestrator's process."""
    restart: Callable[[], WebServer]
    """Starts the orchestrator again on the same ports and store (once this one has exited)."""


def serve_with_web(processes: list[subprocess.Popen[str]], workdir: Path, latency_ms: int) -> WebServer:
    """Starts `baton agents serve --latency MS` and `baton serve --agents … --web 127.0.0.1:PORT`."""
    agents_port = free_port()
    agents = spawn(
        "-m", "server.cli", "agents", "serve", "--listen", f"127.0.0.1:{agents_port}", "--latency", str(latency_ms)
    )
    processes.append(agents)
    wait_for_line(agents, "agents serving on")
    grpc_port, web_port = free_port(), free_port()

    def start() -> WebServer:
        proc, address = serve_orchestrator(
            processes,
            workdir / "baton.db",
            f"127.0.0.1:{agents_port}",
            "--web",
            f"127.0.0.1:{web_port}",
            "--grace",
            "0",
            port=grpc_port,
        )
        wait_for_line(proc, "baton web view on")
        return WebServer(address=address, url=f"http://127.0.0.1:{web_port}", process=proc, restart=start)

    return start()


def chain_plan(*names: str) -> plan_pb2.OrchestrationPlan:
    """Steps in a line, each an analytics.RecordEvents call depending on the one before."""
    steps = [step(name, *names[i - 1 : i]) for i, name in enumerate(names)]
    return plan_pb2.OrchestrationPlan(workflow_type="chain", workflow_steps=steps)


def approval_plan() -> plan_pb2.OrchestrationPlan:
    """collect → approve (an approval gate) → submit."""
    approve = plan_pb2.WorkflowStep(
        step_id="approve", step_name="approve", kind=plan_pb2.STEP_KIND_APPROVAL, dependencies=["collect"]
    )
    approve.approval.prompt = "Apply to these jobs?"
    approve.approval.data.update({"job_ids": ["job-1", "job-2"]})
    return plan_pb2.OrchestrationPlan(
        workflow_type="approval", workflow_steps=[step("collect"), approve, step("submit", "approve")]
    )


TRANSITIONS_SCRIPT = """
window.__transitions = [];
new MutationObserver((records) => {
  for (const r of records) {
    const nodes = r.type === "attributes" ? [r.target] : [...r.addedNodes].flatMap(
      (n) => n.querySelectorAll ? [n, ...n.querySelectorAll("[data-step-id][data-state]")] : []);
    for (const n of nodes) {
      if (n.matches && n.matches("g.node[data-step-id]")) {
        window.__transitions.push({step: n.dataset.stepId, state: n.dataset.state, t: performance.now()});
      }
    }
  }
}).observe(document, {subtree: true, childList: true, attributes: true, attributeFilter: ["data-state"]});
"""
"""Runs before the page's scripts: records every state each graph node takes, with the time, in order."""
