"""What a person must do for an execution: steps waiting for approval, a pause, and the undoing of steps."""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from baton.v1 import execution_pb2
from rich.console import Group, RenderableType
from rich.padding import Padding
from rich.table import Table
from rich.text import Text

from server.cli._common import DEFAULT_TARGET
from server.cli._format import compact_json, enum_label, item_label, struct_dict, styled, waiting_for, when

E = execution_pb2

MAX_JOBS_SHOWN = 20
"""Jobs listed per waiting step; the rest are counted."""

_JOB_COLUMNS = ("job_id", "title", "company", "score")


def _target_flag(target: str) -> str:
    return f" --target {shlex.quote(target)}" if target != DEFAULT_TARGET else ""


def continue_commands(
    execution_id: str, waiting: Sequence[execution_pb2.WaitingStep], target: str
) -> list[tuple[str, str]]:
    """Returns the exact commands that decide the waiting steps (with --step when several wait), each
    with what it does.

    Args:
        execution_id: the execution.
        waiting: its waiting steps (ExecutionStatus.waiting).
        target: the orchestrator the commands must talk to (named only when not the default).
    """
    flag = _target_flag(target)
    # A wait for agent capacity ends by itself: no signal applies to it.
    waiting = [step for step in waiting if step.kind != E.WAIT_KIND_CAPACITY]
    several = len(waiting) > 1
    commands: list[tuple[str, str]] = []
    for step in waiting:
        which = f" --step {shlex.quote(step.step_id)}" if several else ""
        of = f" {step.step_id}" if several else ""
        if step.kind == E.WAIT_KIND_ESCALATION:
            commands.append((f"baton approve {execution_id}{which}{flag}", f"go on past gate {step.gate_id}{of}"))
            commands.append((f"baton reject {execution_id}{which}{flag}", "stop: fail, undoing completed steps"))
            continue
        commands.append((f"baton approve {execution_id}{which}{flag}", f"approve{of}: the execution goes on"))
        commands.append((f"baton reject {execution_id}{which}{flag}", "reject: cancel, undoing completed steps"))
        narrowing = _narrowing_example(struct_dict(step.data))
        if narrowing is not None:
            payload = shlex.quote(compact_json(narrowing, limit=10_000))
            commands.append(
                (f"baton approve {execution_id}{which} --payload {payload}{flag}", "approve only some of them")
            )
    return commands


def resume_command(execution_id: str, target: str) -> str:
    """Returns the command that resumes a paused execution."""
    return f"baton resume {execution_id}{_target_flag(target)}"


def _narrowing_example(data: dict[str, Any]) -> dict[str, list[Any]] | None:
    """An approve payload that keeps only the first item of the data's first list of ids (job_ids, say)."""
    for key, value in data.items():
        if key.endswith("_ids") and isinstance(value, list) and len(value) > 1:
            return {key: value[:1]}
    return None


def jobs_of(data: dict[str, Any]) -> tuple[str, list[dict[str, Any]]] | None:
    """Finds the jobs an approval would act on: the first list of objects that have a job_id.

    Falls back to a bare list of job_ids. Returns the key the list was found under and the jobs.
    """
    for key, value in data.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) and "job_id" in v for v in value):
            return key, value
    ids = data.get("job_ids")
    if isinstance(ids, list) and ids:
        return "job_ids", [{"job_id": str(i)} for i in ids]
    return None


def _jobs_table(jobs: list[dict[str, Any]]) -> Table:
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("job", "title", "company", "score"):
        table.add_column(column, justify="right" if column == "score" else "left")
    for job in jobs[:MAX_JOBS_SHOWN]:
        score = job.get("score")
        table.add_row(
            str(job.get("job_id", "")),
            str(job.get("title", "")),
            str(job.get("company", "")),
            f"{float(score):.1f}" if isinstance(score, int | float) else "",
        )
    return table


def render_waiting(
    execution_id: str, waiting: Sequence[execution_pb2.WaitingStep], target: str = DEFAULT_TARGET
) -> RenderableType:
    """Shows each waiting step (what it waits for, its prompt, its data, the jobs) and how to continue."""
    parts: list[RenderableType] = []
    for step in waiting:
        what = waiting_for(step.kind, step.gate_id)
        head = Text.assemble((what, "bold magenta"), f": step {step.step_id}")
        if step.HasField("timeout_at"):
            head.append(f" (until {when(step.timeout_at):%H:%M:%S} UTC)", style="dim")
        parts.append(head)
        if step.prompt:
            parts.append(Text(f"  {step.prompt}"))
        # A wait for capacity says it all in its prompt; its data is for programs.
        data = struct_dict(step.data) if step.kind != E.WAIT_KIND_CAPACITY else {}
        found = jobs_of(data)
        shown: set[str] = set()
        if found is not None:
            key, jobs = found
            shown = {key, "job_ids"}
            parts.append(Text(f"  {len(jobs)} job{'s' if len(jobs) != 1 else ''} ({key}):"))
            parts.append(Padding(_jobs_table(jobs), (0, 0, 0, 4), expand=False))
            if len(jobs) > MAX_JOBS_SHOWN:
                parts.append(Text(f"  … and {len(jobs) - MAX_JOBS_SHOWN} more"))
        for key, value in data.items():
            if key not in shown:
                parts.append(Text(f"  {key}: {compact_json(value)}"))
    commands = continue_commands(execution_id, waiting, target)
    if commands:
        parts.append(Text("to continue, run one of:", style="bold"))
    for command, what in commands:
        parts.append(Text(f"  # {what}", style="dim"))
        parts.append(_command_line(command))
    return Group(*parts)


def _command_line(command: str) -> Text:
    """A command on a line of its own: folded, never cut, where the display is narrower than the command."""
    return Text(f"  {command}", style="bold", overflow="fold")


def render_paused(execution_id: str, target: str = DEFAULT_TARGET) -> RenderableType:
    """Shows that the execution is paused and the command that resumes it."""
    return Group(
        Text.assemble(("paused", "bold magenta"), ": no new step starts until it is resumed"),
        Text("to continue, run:", style="bold"),
        _command_line(resume_command(execution_id, target)),
    )


def compensation_label(state: int) -> str:
    """Names a compensation's state for people: undone, FAILED (effect may remain), not needed, …."""
    if state == E.COMPENSATION_STATE_SUCCEEDED:
        return "undone"
    if state == E.COMPENSATION_STATE_FAILED:
        return "FAILED (its effect may remain)"
    return enum_label(E.CompensationState, state).replace("_", " ")


def compensations_table(status: execution_pb2.ExecutionStatus) -> Table | None:
    """Returns a table of the execution's compensations (None when nothing was undone)."""
    if not status.compensations:
        return None
    table = Table(
        box=None,
        pad_edge=False,
        header_style="bold",
        title="compensations, in the order they ran",
        title_justify="left",
    )
    for column in ("step", "undone by", "state", "attempts", "last error"):
        table.add_column(column, justify="right" if column == "attempts" else "left")
    for report in status.compensations:
        name = compensation_label(report.state)
        state = styled(name) if name != "undone" else Text(name, style="green")
        if report.state == E.COMPENSATION_STATE_FAILED:
            state = Text(name, style="bold red")
        table.add_row(
            item_label(report.step_id, report),
            f"{report.agent}.{report.operation}",
            state,
            str(report.attempts or ""),
            report.error_message,
        )
    return table


def waiting_summary(waiting: Sequence[execution_pb2.WaitingStep]) -> str:
    """A few words for the progress line: "1 waiting for approval", "2 waiting"."""
    if not waiting:
        return ""
    if len(waiting) == 1:
        return waiting_for(waiting[0].kind, waiting[0].gate_id)
    return f"{len(waiting)} steps waiting"
