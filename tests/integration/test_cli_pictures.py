"""`baton plan|status --format dot|mermaid` and `baton status`'s timeline against a real orchestrator:
a run that retried, waited for approval, failed and undid its effect, drawn and charted."""

from __future__ import annotations

import re

import pydot
import pytest
from baton.v1 import execution_pb2, faults_pb2

from server.app import RunningServer
from server.cli._graph import STATE_COLOURS
from server.client import BatonClient
from tests.integration.test_cli import baton
from tests.unit.test_cli_graphs import mermaid_structure

E = execution_pb2
pytestmark = pytest.mark.timeout(90)


async def _eventful_run(orchestrator: RunningServer) -> str:
    """A manual application whose first job search fails once (a retry), that waits for approval,
    and whose notification then fails (the execution fails and its applications are withdrawn)."""
    assert orchestrator.fleet is not None
    fleet = orchestrator.fleet
    fleet.set_faults(  # type: ignore[attr-defined]
        faults_pb2.FaultConfig(agent="job_discovery", fail_next=1, error_code="UNAVAILABLE", operations=["SearchJobs"])
    )
    fleet.set_faults(  # type: ignore[attr-defined]
        faults_pb2.FaultConfig(agent="ui_ux", error_rate=1.0, error_code="INTERNAL", operations=["Notify"])
    )
    async with BatonClient(orchestrator.address) as client:
        execution = await client.submit(
            "application_automation",
            user_context={
                "user_id": "u-pictures",
                "journey_context": {"user_preferences": {"automation_level": "AUTOMATION_LEVEL_MANUAL"}},
            },
        )
        async for update in client.watch(execution.execution_id, view="events"):
            if update.event.HasField("step_waiting"):
                break
        await client.approve(execution.execution_id)
        final = await client.wait(execution.execution_id)
    assert final.status == E.EXECUTION_STATE_FAILED, final.failure_reason
    return str(execution.execution_id)


async def test_status_draws_the_dag_coloured_by_state_and_charts_a_timeline(orchestrator: RunningServer) -> None:
    execution_id = await _eventful_run(orchestrator)
    target = ("--target", orchestrator.address)

    dot = await baton("status", execution_id, "--format", "dot", *target)
    assert dot.returncode == 0, dot.stdout + dot.stderr
    (graph,) = pydot.graph_from_dot_data(dot.stdout)
    nodes = {n.get_name(): n for n in graph.get_nodes() if re.fullmatch(r"n\d+", n.get_name())}
    by_step = {n.get_label().strip('"').split("\\n")[0]: n for n in nodes.values()}
    colour = {step: n.get("fillcolor").strip('"') for step, n in by_step.items()}
    assert colour["search_jobs"] == STATE_COLOURS["completed"][0]
    assert colour["notify_user"] == STATE_COLOURS["failed"][0]
    assert colour["submit_applications"] == STATE_COLOURS["compensated"][0]
    edges = {(e.get_source(), e.get_destination()) for e in graph.get_edges()}
    name = {step: n.get_name() for step, n in by_step.items()}
    assert (name["search_jobs"], name["score_matches"]) in edges
    assert (name["approve_applications"], name["submit_applications"]) in edges

    mermaid = await baton("status", execution_id, "--format", "mermaid", *target)
    assert mermaid.returncode == 0, mermaid.stderr
    nodes_m, edges_m, classes = mermaid_structure(mermaid.stdout)
    assert len(nodes_m) == len(nodes) and len(edges_m) == len(edges)
    assert {"completed", "failed", "compensated"} <= set(classes)

    text = await baton("status", execution_id, *target)
    assert text.returncode == 0, text.stderr
    timeline = text.stdout.split("timeline (", 1)[1].splitlines()
    rows = {line.split()[0]: line for line in timeline[2:] if line.strip()}
    assert "1 retry" in rows["search_jobs"] and "╌" in rows["search_jobs"]
    assert "waited" in rows["approve_applications"] and "░" in rows["approve_applications"]
    assert "compensation undone" in rows["submit_applications"] and "▒" in rows["submit_applications"]
    assert rows["search_jobs"].split()[3] == "2"  # attempts
    assert all(row.split()[1].startswith("+") for row in rows.values())  # start offsets


async def test_plan_draws_its_dag_as_dot_and_mermaid(orchestrator: RunningServer) -> None:
    dot = await baton("plan", "application_automation", "--format", "dot", "--target", orchestrator.address)
    assert dot.returncode == 0, dot.stderr
    (graph,) = pydot.graph_from_dot_data(dot.stdout)
    labels = [n.get_label() for n in graph.get_nodes() if re.fullmatch(r"n\d+", n.get_name())]
    assert any("automation.SubmitApplication" in label for label in labels)
    assert not any(n.get("fillcolor") not in (None, '"#ffffff"') for n in graph.get_nodes())  # no states in a plan
    mermaid = await baton("plan", "document_analysis", "--format", "mermaid", "--target", orchestrator.address)
    assert mermaid.returncode == 0, mermaid.stderr
    nodes, edges, classes = mermaid_structure(mermaid.stdout)
    assert len(nodes) == 5 and len(edges) == 5 and not classes
    json_out = await baton("plan", "document_analysis", "--format", "json", "--target", orchestrator.address)
    assert json_out.stdout.lstrip().startswith("{")


async def test_status_format_of_an_unknown_execution_is_not_found(orchestrator: RunningServer) -> None:
    result = await baton("status", "no-such", "--format", "dot", "--target", orchestrator.address)
    assert result.returncode == 1
    assert result.stderr.startswith("error: NOT_FOUND")
