"""The web view in a real browser (headless Chromium): the graph turns green step by step, live; Approve works."""

from __future__ import annotations

import asyncio
import itertools
import signal
import subprocess
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc

from tests.e2e.web_support import TRANSITIONS_SCRIPT, approval_plan, chain_plan, chromium_page, serve_with_web
from tests.integration.support import execute_plan, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741

pytestmark = pytest.mark.timeout(90)

LATENCY_MS = 800
"""Each agent call's latency: a step runs long enough for the page to show it running, then done."""


async def test_a_running_executions_graph_turns_green_step_by_step(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server = serve_with_web(processes, tmp_path, LATENCY_MS)
    steps = ["fetch", "parse", "score", "report"]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        async with chromium_page() as page:
            await page.add_init_script(TRANSITIONS_SCRIPT)
            execution = await stub.ExecuteWorkflow(execute_plan(chain_plan(*steps)))
            await page.goto(f"{server.url}/executions/{execution.execution_id}")
            await page.wait_for_selector("#state[data-state=completed]", timeout=30_000)
            transitions: list[dict[str, Any]] = await page.evaluate("window.__transitions")
            nodes = await page.eval_on_selector_all(
                "g.node",
                "ns => ns.map(n => [n.dataset.stepId, n.dataset.state, getComputedStyle(n.querySelector('rect')).fill])",  # noqa: E501
            )
            live = await page.text_content("#live")
        final = await watch_all(stub, execution.execution_id)
    assert final[-1].status.status == E.EXECUTION_STATE_COMPLETED
    # The end: every node completed, and green.
    assert [(n[0], n[1]) for n in nodes] == [(s, "completed") for s in steps]
    assert {n[2] for n in nodes} == {"rgb(220, 243, 229)"}
    assert live == "ended"
    # On the way: each node turned completed in the plan's order, one at a time as events came,
    # each seen running first (after the first, which may have run before the page loaded).
    completed = [t for t in transitions if t["state"] == "completed"]
    assert [t["step"] for t in completed] == steps
    for before, after in itertools.pairwise(completed):
        # A step's own call takes LATENCY_MS: the next one cannot turn green much sooner.
        assert after["t"] - before["t"] > LATENCY_MS / 2, completed
    for name in steps[1:]:
        states = [t["state"] for t in transitions if t["step"] == name]
        assert states.index("running") < states.index("completed"), (name, states)
        assert states[0] == "pending", (name, states)


async def test_an_execution_waiting_for_approval_is_approved_from_the_page(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server = serve_with_web(processes, tmp_path, 200)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        execution = await stub.ExecuteWorkflow(execute_plan(approval_plan()))
        async with chromium_page() as page:
            await page.goto(f"{server.url}/executions/{execution.execution_id}")
            approve = page.locator(".waiting-step[data-step-id=approve] button[data-action=approve]")
            await approve.wait_for(timeout=20_000)
            assert await page.get_attribute("g.node[data-step-id=approve]", "data-state") == "waiting"
            assert "Apply to these jobs?" in (await page.text_content(".waiting-step")) or ""
            # While it waits, the page offers what a running execution allows.
            assert await page.locator("#actions button").all_text_contents() == ["Pause", "Cancel"]
            await approve.click()
            await page.wait_for_selector("#state[data-state=completed]", timeout=20_000)
            assert await page.locator(".waiting-step").count() == 0
            assert await page.locator("#actions button").count() == 0
            assert await page.get_attribute("g.node[data-step-id=submit]", "data-state") == "completed"
            # The results arrive once it ends: the approval's data among each step's outputs.
            approved = page.locator("#results details[data-step-id=approve] pre")
            await approved.wait_for(state="attached", timeout=10_000)
            assert '"job-2"' in (await approved.text_content() or "")
        updates = await watch_all(stub, execution.execution_id)
    signals = [u.event.signal_received for u in updates if u.event.HasField("signal_received")]
    assert [(s.step_id, s.signal, s.reason) for s in signals] == [("approve", E.SIGNAL_APPROVE, "from the web view")]
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED


async def test_the_page_resumes_by_sequence_across_a_server_restart(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server = serve_with_web(processes, tmp_path, 100)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        execution = await stub.ExecuteWorkflow(execute_plan(approval_plan()))
    async with chromium_page() as page:
        resumed_after: list[str | None] = []
        page.on(
            "request",
            lambda r: resumed_after.append(r.headers.get("last-event-id")) if r.url.endswith("/events") else None,
        )
        await page.goto(f"{server.url}/executions/{execution.execution_id}")
        await page.wait_for_selector(".waiting-step button[data-action=approve]", timeout=20_000)
        before = await page.locator("#events tbody tr").count()
        server.process.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(server.process.wait, 15) == 0
        await page.wait_for_selector("#live.off", timeout=10_000)  # the page noticed, and retries
        server = server.restart()
        await page.wait_for_selector("#live.on", timeout=20_000)  # back, after the last sequence it had
        await page.click(".waiting-step button[data-action=approve]")
        await page.wait_for_selector("#state[data-state=completed]", timeout=20_000)
        sequences = [
            int(s) for s in await page.eval_on_selector_all("#events tbody tr", "rs => rs.map(r => r.dataset.sequence)")
        ]
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        updates = await watch_all(stub, execution.execution_id)
    # Every event once, in order, the ones before the restart not shown again.
    assert sequences == [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    assert before < len(sequences)
    # The first request asked for everything; every retry, for what followed the last event shown.
    assert resumed_after[0] is None
    assert set(resumed_after[1:]) == {str(before)}, resumed_after


async def test_the_list_and_agents_pages_show_what_the_api_says(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server = serve_with_web(processes, tmp_path, 0)
    async with grpc.aio.insecure_channel(server.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]
        done = await stub.ExecuteWorkflow(execute_plan(chain_plan("one"), user_id="ann"))
        await watch_all(stub, done.execution_id)
        waiting = await stub.ExecuteWorkflow(execute_plan(approval_plan(), user_id="ben"))
        async with chromium_page() as page:
            await page.goto(f"{server.url}/executions")
            await page.wait_for_selector(f"tr[data-execution-id='{done.execution_id}']")
            assert await page.locator("#executions tbody tr").count() == 2
            await page.fill("input[name=user]", "ann")
            await page.click("#filters button[type=submit]")
            await page.wait_for_function("() => document.querySelectorAll('#executions tbody tr').length === 1")
            assert await page.get_attribute("#executions tbody tr", "data-state") == "completed"
            assert "user=ann" in page.url
            await page.click(f"a[href='/executions/{done.execution_id}']")
            await page.wait_for_selector("#state[data-state=completed]")
            await page.goto(f"{server.url}/agents")
            await page.wait_for_selector("tr[data-agent=analytics]")
            rows = await page.eval_on_selector_all(
                "#agents tbody tr", "rs => rs.map(r => [r.dataset.agent, r.dataset.health, r.dataset.breaker])"
            )
        await stub.CancelExecution(O.CancelExecutionRequest(execution_id=waiting.execution_id))
    assert [r[0] for r in rows] == sorted(
        [
            "analytics",
            "automation",
            "document_intelligence",
            "job_discovery",
            "matching_intelligence",
            "security",
            "ui_ux",
        ]
    )
    assert {(r[1], r[2]) for r in rows} == {("healthy", "closed")}
