"""The live view of an execution: a progress bar and step table on a terminal, else one line per event."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from types import TracebackType

from baton.v1 import execution_pb2, orchestrator_pb2, plan_pb2
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress_bar import ProgressBar
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from server.cli._common import DEFAULT_TARGET
from server.cli._format import (
    DONE_STEPS,
    TERMINAL,
    describe_event,
    execution_state,
    format_seconds,
    items_label,
    seconds,
    step_state,
    style_of,
    styled,
    when,
)
from server.cli._waiting import (
    compensation_label,
    compensations_table,
    render_paused,
    render_waiting,
    waiting_summary,
)

E = execution_pb2

_BUSY = frozenset({"running", "queued", "compensating"})
"""States shown with a spinner: something is under way."""


def steps_done(status: execution_pb2.ExecutionStatus) -> int:
    """Returns the number of steps completed, failed or skipped."""
    return sum(1 for t in status.performance_metrics.step_timings if t.status in DONE_STEPS)


def items_in_progress(status: execution_pb2.ExecutionStatus) -> str:
    """The running map steps' items done of total ("submit_applications 2/3 items"); empty for none."""
    return ", ".join(
        f"{t.step_id} {t.items_done}/{t.items_total} items"
        for t in status.performance_metrics.step_timings
        if t.items_total and t.status == E.STEP_STATE_RUNNING
    )


def summary_line(status: execution_pb2.ExecutionStatus) -> str:
    """Returns the one-line outcome of an execution (and its reason, on a second line)."""
    state = execution_state(status.status)
    total = status.progress.total_steps
    took = format_seconds(seconds(status.performance_metrics.total_duration))
    errors = status.error_summary.total_errors
    counted = f"{errors} error" if errors == 1 else f"{errors} errors"
    run = f" (run {status.run})" if status.run > 1 else ""  # a rerun execution's (README: Rerun)
    line = f"execution {status.execution_id} {state} in {took}{run}: {steps_done(status)}/{total} steps, {counted}"
    if status.degraded:
        line += f" (degraded: {'; '.join(status.degraded_reasons)})"
    if status.failure_reason:
        line += f"\nreason: {status.failure_reason}"
    return line


def steps_table(
    status: execution_pb2.ExecutionStatus | None,
    plan: plan_pb2.OrchestrationPlan | None,
    *,
    now: datetime | None = None,
) -> Table:
    """Returns a table of the steps: state, agent.operation, attempts, duration (and compensation, if any ran)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("step")
    table.add_column("state")
    table.add_column("agent.operation")
    table.add_column("attempts", justify="right")
    table.add_column("duration", justify="right")
    timings = status.performance_metrics.step_timings if status is not None else []
    compensated = any(t.compensation != E.COMPENSATION_STATE_UNSPECIFIED for t in timings)
    if compensated:
        table.add_column("compensation")
    if timings:
        for timing in timings:
            if timing.HasField("duration"):
                took = format_seconds(seconds(timing.duration))
            elif timing.HasField("start_time") and timing.status == E.STEP_STATE_RUNNING:
                elapsed = ((now or datetime.now(UTC)) - when(timing.start_time)).total_seconds()
                took = format_seconds(max(elapsed, 0.0)) + "…"
            else:
                took = ""
            state = styled(step_state(timing.status))
            items = items_label(timing)
            if items:
                state.append(f" ({items})")
            row: list[RenderableType] = [
                timing.step_id,
                state,
                f"{timing.agent}.{timing.operation}" if timing.agent else "—",
                str(timing.attempts or ""),
                took,
            ]
            if compensated:
                undo = compensation_label(timing.compensation)
                row.append(Text(undo if timing.compensation else "", style=style_of(undo) or "yellow"))
            table.add_row(*row)
    elif plan is not None:
        for step in plan.workflow_steps:
            call = f"{step.agent}.{step.operation}" if step.agent else "approval"
            table.add_row(step.step_id, styled("pending"), call, "", "")
    return table


class ExecutionView:
    """Shows an execution's progress: a live bar and step table on a terminal, else one line per update.

    Either way it shows what a person must do: the steps waiting for approval (with the jobs an
    approval would apply to) and the commands that decide them, or the command that resumes a
    paused execution.
    """

    def __init__(
        self,
        console: Console,
        execution_id: str,
        *,
        live: bool,
        plan: plan_pb2.OrchestrationPlan | None = None,
        target: str = DEFAULT_TARGET,
    ) -> None:
        self.console = console
        self.execution_id = execution_id
        self.plan = plan
        self.live = live
        self.target = target
        self.status: execution_pb2.ExecutionStatus | None = None
        self.last_event = ""
        self.notes: list[str] = []
        self._live: Live | None = None
        self._spinner = Spinner("dots")
        self._shown_waiting: tuple[tuple[str, int], ...] = ()
        self._shown_paused = False

    def __enter__(self) -> ExecutionView:
        if self.live:
            self._live = Live(self, console=self.console, refresh_per_second=10, transient=False)
            self._live.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._live is not None:
            self._live.refresh()
            self._live.stop()
            self._live = None

    def update(self, update: orchestrator_pb2.ExecutionUpdate) -> None:
        """Takes one update from WatchExecution."""
        self.status = update.status
        self.last_event = f"#{update.sequence} {describe_event(update.event)}"
        if self._live is not None:
            return
        status = update.status
        state = execution_state(status.status)
        waiting = waiting_summary(status.waiting)
        state = ", ".join(part for part in (state, items_in_progress(status), waiting) if part)
        print(f"{self.last_event}  [{steps_done(status)}/{status.progress.total_steps} steps, {state}]", flush=True)
        self._print_what_to_do(status)

    def _print_what_to_do(self, status: execution_pb2.ExecutionStatus) -> None:
        """Off a terminal, prints the waiting steps and the commands once each time they change."""
        if status.status in TERMINAL:
            return
        waiting = tuple((w.step_id, w.since.ToNanoseconds()) for w in status.waiting)
        if waiting and waiting != self._shown_waiting:
            self.console.print(render_waiting(self.execution_id, status.waiting, self.target))
            sys.stdout.flush()
        self._shown_waiting = waiting
        paused = status.status == E.EXECUTION_STATE_PAUSED
        if paused and not self._shown_paused:
            self.console.print(render_paused(self.execution_id, self.target))
            sys.stdout.flush()
        self._shown_paused = paused

    def restate(self, status: execution_pb2.ExecutionStatus) -> None:
        """Takes a status without an event (a heartbeat's: a wait for agent capacity began or ended)."""
        self.status = status
        if self._live is None:
            self._print_what_to_do(status)

    def finish(self, status: execution_pb2.ExecutionStatus) -> None:
        """Takes the final status (when it came from GetExecution rather than the stream)."""
        self.status = status

    def note(self, message: str) -> None:
        """Shows a message about the watch itself (a reconnect, say)."""
        if self._live is None:
            print(message, file=sys.stderr, flush=True)
        else:
            self.notes = [*self.notes[-2:], message]

    @staticmethod
    def _elapsed(status: execution_pb2.ExecutionStatus | None) -> str:
        if status is None:
            return ""
        perf = status.performance_metrics
        if status.status not in TERMINAL and perf.HasField("start_time"):
            return format_seconds(max((datetime.now(UTC) - when(perf.start_time)).total_seconds(), 0.0))
        return format_seconds(seconds(perf.total_duration))

    def __rich__(self) -> RenderableType:
        status = self.status
        planned = len(self.plan.workflow_steps) if self.plan is not None else 0
        total = status.progress.total_steps if status is not None else planned
        done = steps_done(status) if status is not None else 0
        state = execution_state(status.status) if status is not None else "queued"
        workflow = status.workflow_type if status is not None else (self.plan.workflow_type if self.plan else "")
        header = Table.grid(padding=(0, 1))
        header.add_row(
            self._spinner if state in _BUSY else Text("●", style=style_of(state)),
            Text(f"execution {self.execution_id}", style="bold"),
            Text(workflow),
            styled(state),
        )
        bar = Table.grid(padding=(0, 1))
        bar.add_row(
            ProgressBar(total=max(total, 1), completed=done, width=40),
            Text(f"{done}/{total} steps"),
            Text(self._elapsed(status), style="dim"),
        )
        parts: list[RenderableType] = [header, bar, steps_table(status, self.plan)]
        if status is not None:
            undo = compensations_table(status)
            if undo is not None:
                parts.append(undo)
            if status.waiting and status.status not in TERMINAL:
                parts.append(render_waiting(self.execution_id, status.waiting, self.target))
            if status.status == E.EXECUTION_STATE_PAUSED:
                parts.append(render_paused(self.execution_id, self.target))
        if self.last_event:
            parts.append(Text(self.last_event, style="dim"))
        parts.extend(Text(n, style="yellow") for n in self.notes)
        return Group(*parts)
