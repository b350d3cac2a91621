"""The DAG pictures (DOT, Mermaid) and the steps' timeline, from plans and events built here: hostile
step ids cannot break either syntax, states get their colours, segments their glyphs."""

from __future__ import annotations

import html
import re
from datetime import UTC, datetime, timedelta

import pydot
import pytest
from baton.v1 import execution_pb2, plan_pb2
from rich.console import Console

from server.cli._graph import STATE_COLOURS, drawn_state, to_dot, to_mermaid
from server.cli._timeline import build, timeline_table

E = execution_pb2

HOSTILE = [
    'quote"inside',
    "x]; click n0 callback",
    "<script>alert(1)</script>",
    "multi\nline",
    "back\\slash\\",
    '%%{init: {"theme":"dark"}}%%',
    "a --> b",
    "#quot;&amp;",
    "`md` | pipe (paren) {brace}",
    "digraph { n0 -> n1 }",
]


def _plan(*steps: tuple[str, tuple[str, ...]]) -> plan_pb2.OrchestrationPlan:
    plan = plan_pb2.OrchestrationPlan(workflow_type="w", plan_id="p")
    for step_id, deps in steps:
        plan.workflow_steps.add(step_id=step_id, agent="analytics", operation="RecordEvents", dependencies=deps)
    return plan


def _hostile_plan() -> plan_pb2.OrchestrationPlan:
    # A chain through every hostile id, and each also depending on the first.
    steps = [(HOSTILE[0], ())] + [
        (s, (HOSTILE[i], HOSTILE[0]) if i else (HOSTILE[i],)) for i, s in enumerate(HOSTILE[1:])
    ]
    return _plan(*steps)


_NODE = re.compile(r'^  (n\d+)\["([^"]*)"\]$')
_EDGE = re.compile(r"^  (n\d+) --> (n\d+)$")
_CLASSDEF = re.compile(r"^  classDef ([a-z]+) fill:#[0-9a-f]{6},stroke:#[0-9a-f]{6},color:#000$")
_CLASS = re.compile(r"^  class (n\d+(?:,n\d+)*) ([a-z]+)$")


def mermaid_structure(text: str) -> tuple[dict[str, str], list[tuple[str, str]], dict[str, list[str]]]:
    """Checks a flowchart line by line (every line one of the shapes we write, every edge's and
    class's nodes declared, every class defined) and returns its nodes, edges and classes."""
    lines = text.splitlines()
    assert lines[0] == "flowchart LR"
    nodes: dict[str, str] = {}
    edges: list[tuple[str, str]] = []
    defined: set[str] = set()
    classes: dict[str, list[str]] = {}
    for line in lines[1:]:
        if m := _NODE.match(line):
            assert m[1] not in nodes, f"node declared twice: {line}"
            nodes[m[1]] = m[2]
        elif m := _EDGE.match(line):
            edges.append((m[1], m[2]))
        elif m := _CLASSDEF.match(line):
            defined.add(m[1])
        elif m := _CLASS.match(line):
            classes[m[2]] = m[1].split(",")
        else:
            raise AssertionError(f"not a line of ours: {line!r}")
    for a, b in edges:
        assert a in nodes and b in nodes, f"edge {a} --> {b} names an undeclared node"
    for name, members in classes.items():
        assert name in defined, f"class {name} has no classDef"
        assert set(members) <= set(nodes)
    return nodes, edges, classes


def _decode_entities(text: str) -> str:
    return html.unescape(re.sub(r"#(\d+);", r"&#\1;", re.sub(r"#([a-z]+);", r"&\1;", text)))


def _dot_label(node: pydot.Node) -> list[str]:
    raw = node.get_label()
    assert raw.startswith('"') and raw.endswith('"')
    body = raw[1:-1]
    lines = re.split(r"(?<!\\)((?:\\\\)*)\\n", body)
    # re.split keeps the captured even runs of backslashes: glue them back to the line before.
    out: list[str] = []
    for i, part in enumerate(lines):
        if i % 2 == 1:
            out[-1] += part
        else:
            out.append(part)
    return [re.sub(r"\\(.)", r"\1", line) for line in out]


def test_dot_of_hostile_step_ids_parses_with_one_node_per_step_and_the_ids_as_labels() -> None:
    plan = _hostile_plan()
    text = to_dot(plan)
    graphs = pydot.graph_from_dot_data(text)
    assert graphs is not None and len(graphs) == 1, text
    graph = graphs[0]
    nodes = [n for n in graph.get_nodes() if re.fullmatch(r"n\d+", n.get_name())]
    assert len(nodes) == len(HOSTILE)
    shown = [_dot_label(n)[0] for n in nodes]
    assert shown == [" ".join(s.splitlines()) for s in HOSTILE]
    assert all(_dot_label(n)[1] == "analytics.RecordEvents" for n in nodes)
    assert len(graph.get_edges()) == sum(len(s.dependencies) for s in plan.workflow_steps)


def test_mermaid_of_hostile_step_ids_keeps_its_structure_and_shows_the_ids() -> None:
    plan = _hostile_plan()
    nodes, edges, classes = mermaid_structure(to_mermaid(plan))
    assert len(nodes) == len(HOSTILE)
    assert [_decode_entities(label.split("<br/>")[0]) for label in nodes.values()] == [
        " ".join(s.splitlines()) for s in HOSTILE
    ]
    for label in nodes.values():
        bare = re.sub(r"#(\d+|[a-z]+);", "", label.replace("<br/>", ""))  # our own line breaks and entities
        assert not set(bare) & set('"<>[]{}()|`;%#&'), label
    assert len(edges) == sum(len(s.dependencies) for s in plan.workflow_steps)
    assert classes == {}


def test_a_dependency_on_no_step_of_the_plan_draws_no_edge() -> None:
    plan = _plan(("a", ()), ("b", ("a", "ghost")))
    _, edges, _ = mermaid_structure(to_mermaid(plan))
    assert edges == [("n0", "n1")]
    (graph,) = pydot.graph_from_dot_data(to_dot(plan))
    assert [(e.get_source(), e.get_destination()) for e in graph.get_edges()] == [("n0", "n1")]


def _status(*timings: tuple[str, int, int]) -> execution_pb2.ExecutionStatus:
    status = execution_pb2.ExecutionStatus(execution_id="x", status=E.EXECUTION_STATE_FAILED)
    for step_id, state, compensation in timings:
        status.performance_metrics.step_timings.add(step_id=step_id, status=state, compensation=compensation)  # type: ignore[arg-type]
    return status


def test_states_are_coloured_and_named_in_both_pictures() -> None:
    plan = _plan(("done", ()), ("undone", ("done",)), ("broke", ("undone",)), ("never", ("broke",)))
    status = _status(
        ("done", E.STEP_STATE_COMPLETED, 0),
        ("undone", E.STEP_STATE_COMPLETED, E.COMPENSATION_STATE_SUCCEEDED),
        ("broke", E.STEP_STATE_FAILED, 0),
        ("never", E.STEP_STATE_PENDING, 0),
    )
    nodes, _, classes = mermaid_structure(to_mermaid(plan, status))
    assert classes == {"completed": ["n0"], "compensated": ["n1"], "failed": ["n2"], "pending": ["n3"]}
    assert nodes["n2"].endswith("<br/>failed")
    (graph,) = pydot.graph_from_dot_data(to_dot(plan, status))
    fills = {n.get_name(): n.get("fillcolor") for n in graph.get_nodes() if re.fullmatch(r"n\d+", n.get_name())}
    assert fills == {
        "n0": f'"{STATE_COLOURS["completed"][0]}"',
        "n1": f'"{STATE_COLOURS["compensated"][0]}"',
        "n2": f'"{STATE_COLOURS["failed"][0]}"',
        "n3": f'"{STATE_COLOURS["pending"][0]}"',
    }


@pytest.mark.parametrize(
    ("state", "compensation", "cancelled", "drawn"),
    [
        (E.STEP_STATE_COMPLETED, E.COMPENSATION_STATE_RUNNING, False, "compensated"),
        (E.STEP_STATE_COMPLETED, E.COMPENSATION_STATE_FAILED, False, "completed"),
        (E.STEP_STATE_PENDING, 0, True, "cancelled"),
        (E.STEP_STATE_PENDING, 0, False, "pending"),
        (E.STEP_STATE_WAITING, 0, False, "waiting"),
        (E.STEP_STATE_SKIPPED, 0, False, "skipped"),
        (E.STEP_STATE_RUNNING, 0, False, "running"),
    ],
)
def test_drawn_state(state: int, compensation: int, cancelled: bool, drawn: str) -> None:
    timing = execution_pb2.StepTimingReport(status=state, compensation=compensation)  # type: ignore[arg-type]
    assert drawn_state(timing, cancelled) == drawn


T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _event(seconds: float, **kind: object) -> execution_pb2.ExecutionEvent:
    event = execution_pb2.ExecutionEvent(**kind)  # type: ignore[arg-type]
    event.time.FromDatetime(T0 + timedelta(seconds=seconds))
    return event


def _history() -> list[execution_pb2.ExecutionEvent]:
    failed = execution_pb2.StepAttemptFailed(step_id="search", attempt=1, error_type="UNAVAILABLE")
    failed.retry_at.FromDatetime(T0 + timedelta(seconds=3))
    return [
        _event(0, execution_started=execution_pb2.ExecutionStarted()),
        _event(1, step_started=execution_pb2.StepStarted(step_id="search", attempt=1)),
        _event(2, step_attempt_failed=failed),
        _event(3, step_started=execution_pb2.StepStarted(step_id="search", attempt=2)),
        _event(4, step_succeeded=execution_pb2.StepSucceeded(step_id="search", attempt=2)),
        _event(4, step_waiting=execution_pb2.StepWaiting(step_id="approve")),
        _event(8, signal_received=execution_pb2.SignalReceived(step_id="approve")),
        _event(8, step_succeeded=execution_pb2.StepSucceeded(step_id="approve")),
        _event(8, step_started=execution_pb2.StepStarted(step_id="submit", attempt=1)),
        _event(9, step_succeeded=execution_pb2.StepSucceeded(step_id="submit", attempt=1)),
        _event(9, step_started=execution_pb2.StepStarted(step_id="notify", attempt=1)),
        _event(10, step_failed=execution_pb2.StepFailed(step_id="notify")),
        _event(10, compensation_started=execution_pb2.CompensationStarted(step_id="submit", attempt=1)),
        _event(12, compensation_succeeded=execution_pb2.CompensationSucceeded(step_id="submit", attempt=1)),
    ]


def test_the_timeline_folds_attempts_retries_waits_and_compensations() -> None:
    lines, origin = build(_history())
    assert origin == T0
    by_step = {line.step_id: line for line in lines}
    assert list(by_step) == ["search", "approve", "submit", "notify"]
    search = by_step["search"]
    assert (search.attempts, search.retries, search.end_state) == (2, 1, "succeeded")
    assert [(s.kind, s.outcome) for s in search.segments] == [("run", "failed"), ("retry", "open"), ("run", "ok")]
    assert [(s.kind, (s.end - s.start).total_seconds()) for s in by_step["approve"].segments if s.end] == [
        ("wait", 4.0)
    ]
    assert by_step["submit"].compensation == "undone"
    assert by_step["notify"].end_state == "failed"


def test_the_timeline_table_shows_offsets_durations_attempts_bars_and_notes() -> None:
    table = timeline_table(_history(), T0 + timedelta(seconds=12), width=12)
    assert table is not None
    console = Console(width=120, record=True, color_system=None)
    console.print(table)
    rows = {line.split()[0]: line for line in console.export_text().splitlines()[2:] if line.strip()}
    assert rows["search"].split()[1:4] == ["+1.00s", "3.00s", "2"]
    # 12 cells over 12 s: one cell a second. Attempt 1 runs 1-2, the retry waits 2-3, attempt 2 runs 3-4.
    assert " █╌█ " in rows["search"] and "1 retry" in rows["search"]
    assert "░░░░" in rows["approve"] and "waited 4.00s" in rows["approve"]
    # Submitted 8-9; undone 10-12, after the notification failed.
    assert "█ ▒▒ " in rows["submit"] and "compensation undone" in rows["submit"]
    assert "1 retry" not in rows["notify"]


def test_an_open_wait_runs_to_now_and_says_so() -> None:
    events = _history()[:6]  # approve has just started waiting
    table = timeline_table(events, T0 + timedelta(seconds=6), width=6)
    assert table is not None
    console = Console(width=120, record=True, color_system=None)
    console.print(table)
    assert "waiting 2.00s…" in console.export_text()


def test_no_steps_no_timeline() -> None:
    assert timeline_table([_event(0, execution_started=execution_pb2.ExecutionStarted())], T0) is None
