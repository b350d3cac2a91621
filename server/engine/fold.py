"""The fold: an execution's state is its events applied in order by `apply`.

Rules (every event kind's effect lives here and nowhere else):
1. `execution_started` creates the state; every other kind needs it first.
2. Step lifecycle: PENDING → (step_delayed) → RUNNING on `step_started` → COMPLETED on
   `step_succeeded`, or back to a retry wait on `step_attempt_failed`, → FAILED/SKIPPED on
   `step_failed` (by its fallback action) and `step_skipped`. `gate_evaluated` with action
   RETRY puts a completed step back to RUNNING.
3. Execution lifecycle: QUEUED until the first `step_started` (RUNNING); `execution_completed`,
   `execution_failed` and `execution_cancelled` are terminal, and steps still pending or running
   then become SKIPPED.
4. A terminal execution accepts no more events; unknown event kinds are ignored, so a newer
   history can be read by an older fold.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import any_pb2, json_format, timestamp_pb2

from server.engine.model import Plan

E = execution_pb2

TERMINAL = frozenset({E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED})
STEP_DONE = frozenset({E.STEP_STATE_COMPLETED, E.STEP_STATE_FAILED, E.STEP_STATE_SKIPPED})
"""Step states after which a step never runs again (but for a gate retry)."""


NO_DEADLINE = datetime.max.replace(tzinfo=UTC)


class FoldError(ValueError):
    """An event does not fit the state it is applied to (a corrupt or foreign history)."""


@dataclass
class ErrorRecord:
    """One error of the execution, for the error summary."""

    step_id: str
    error_type: str
    message: str
    recovery_action: str
    impact: execution_pb2.Impact
    attempt: int = 0


@dataclass
class StepRun:
    """What has happened to one step so far."""

    step_id: str
    state: execution_pb2.StepState = E.STEP_STATE_PENDING
    attempts: int = 0
    """Attempts started, over every path."""
    path_attempts: int = 0
    """Attempts started on the current path (primary or alternative)."""
    on_alternative: bool = False
    agent: str = ""
    operation: str = ""
    in_flight: bool = False
    """An attempt was started and has no outcome yet."""
    start_time: timestamp_pb2.Timestamp | None = None
    end_time: timestamp_pb2.Timestamp | None = None
    start_at: datetime | None = None
    """When a delayed step or a retry is due; None when not waiting."""
    output: any_pb2.Any | None = None
    quality_score: float = 0.0
    quality_metrics: dict[str, float] = field(default_factory=dict)
    gate_retries: set[str] = field(default_factory=set)
    """Gates that have already re-run this step."""
    skip_reason: str = ""
    report: execution_pb2.StepTimingReport | None = None
    """The step's rendered timing report, cached until an event changes the step."""
    _output_json: dict[str, Any] | None = None

    def output_json(self) -> dict[str, Any] | None:
        """The output as JSON with proto field names (cached; None without output)."""
        if self.output is None:
            return None
        if self._output_json is None:
            converted = json_format.MessageToDict(self.output, preserving_proto_field_name=True)
            type_url = converted.pop("@type", "")
            if type_url.startswith("type.googleapis.com/google.protobuf.") and "value" in converted:
                # Well-known types (a Struct, say) are wrapped as {"value": ...} in JSON.
                converted = converted["value"]
            self._output_json = converted
        return self._output_json


@dataclass
class ExecutionState:
    """The fold of an execution's events."""

    execution_id: str
    started: execution_pb2.ExecutionStarted
    plan: Plan
    status: execution_pb2.ExecutionState = E.EXECUTION_STATE_QUEUED
    steps: dict[str, StepRun] = field(default_factory=dict)
    last_sequence: int = 0
    deadline: datetime = NO_DEADLINE
    """The execution-level deadline."""
    # Times are the events' own Timestamps (no conversions on the hot path).
    start_time: timestamp_pb2.Timestamp | None = None
    current_time: timestamp_pb2.Timestamp | None = None
    end_time: timestamp_pb2.Timestamp | None = None
    failure_reason: str = ""
    degraded_reasons: list[str] = field(default_factory=list)
    errors: list[ErrorRecord] = field(default_factory=list)
    network_bytes: int = 0
    storage_bytes: int = 0

    @property
    def terminal(self) -> bool:
        """Whether the execution has ended."""
        return self.status in TERMINAL

    @property
    def user_id(self) -> str:
        """The owner."""
        return self.started.plan.user_id or self.started.user_context.user_id


def start(event: execution_pb2.ExecutionEvent, execution_id: str, plan: Plan | None = None) -> ExecutionState:
    """Creates the state from an execution's first event.

    Args:
        event: the execution_started event.
        execution_id: the execution.
        plan: the plan already built from this event's plan, to share instead of rebuilding.
    """
    if event.WhichOneof("kind") != "execution_started":
        raise FoldError(f"execution {execution_id}: first event is {event.WhichOneof('kind')}, not execution_started")
    started = event.execution_started
    plan = plan or Plan.from_proto(started.plan)
    state = ExecutionState(
        execution_id=execution_id,
        started=started,
        plan=plan,
        steps={sid: StepRun(step_id=sid) for sid in plan.steps},
        deadline=started.deadline.ToDatetime(tzinfo=UTC),
    )
    _account(state, event)
    state.start_time = state.current_time
    return state


def fold(execution_id: str, events: list[execution_pb2.ExecutionEvent], plan: Plan | None = None) -> ExecutionState:
    """Folds a whole history (its first event must be execution_started); `plan` as in `start`."""
    if not events:
        raise FoldError(f"execution {execution_id} has no events")
    state = start(events[0], execution_id, plan)
    for event in events[1:]:
        apply(state, event)
    return state


def apply(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    """Applies one event to the state in place (rules at the top of this module)."""
    if event.sequence != state.last_sequence + 1:
        raise FoldError(f"execution {state.execution_id}: event {event.sequence} follows {state.last_sequence}")
    kind = event.WhichOneof("kind")
    if state.terminal and kind is not None:
        raise FoldError(f"execution {state.execution_id}: {kind} after the terminal event")
    _account(state, event)
    handler = _HANDLERS.get(kind or "")
    if handler is not None:
        handler(state, event)


def _account(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    state.last_sequence = event.sequence
    state.current_time = event.time
    state.storage_bytes += event.ByteSize()


def _step(state: ExecutionState, step_id: str) -> StepRun:
    run = state.steps.get(step_id)
    if run is None:
        raise FoldError(f"execution {state.execution_id}: event names unknown step {step_id!r}")
    run.report = None  # the event changes the step: its rendered report is stale
    return run


def _on_step_delayed(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.step_delayed
    _step(state, e.step_id).start_at = e.start_at.ToDatetime(tzinfo=UTC)


def _on_step_started(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.step_started
    run = _step(state, e.step_id)
    run.state = E.STEP_STATE_RUNNING
    run.attempts = e.attempt
    run.path_attempts += 1
    run.agent, run.operation = e.agent, e.operation
    run.in_flight = True
    run.start_at = None
    if run.start_time is None:
        run.start_time = state.current_time
    run.end_time = None
    state.status = E.EXECUTION_STATE_RUNNING


def _on_attempt_failed(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.step_attempt_failed
    run = _step(state, e.step_id)
    run.in_flight = False
    state.network_bytes += e.request_bytes
    retrying = e.HasField("retry_at")
    if retrying:
        run.start_at = e.retry_at.ToDatetime(tzinfo=UTC)
    state.errors.append(
        ErrorRecord(
            step_id=e.step_id,
            error_type=e.error_type,
            message=e.error_message,
            recovery_action="retry" if retrying else "none",
            impact=E.IMPACT_LOW if retrying else E.IMPACT_MEDIUM,
            attempt=e.attempt,
        )
    )


def _on_step_succeeded(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.step_succeeded
    run = _step(state, e.step_id)
    run.state = E.STEP_STATE_COMPLETED
    run.in_flight = False
    run.end_time = state.current_time
    run.output = e.output
    run._output_json = None
    run.quality_score = e.quality.score
    run.quality_metrics = dict(e.quality.metrics)
    state.network_bytes += e.request_bytes + e.response_bytes
    # The step's earlier errors were recovered from (by a retry or the alternative call).
    for err in state.errors:
        if err.step_id == e.step_id and err.error_type != "QUALITY_GATE":
            err.impact = E.IMPACT_LOW


_FALLBACK_NAMES = {
    plan_pb2.FALLBACK_ACTION_SKIP: "skip",
    plan_pb2.FALLBACK_ACTION_ALTERNATIVE: "alternative",
    plan_pb2.FALLBACK_ACTION_FAIL: "fail",
}


_FALLBACK_IMPACT = {
    plan_pb2.FALLBACK_ACTION_SKIP: E.IMPACT_HIGH,
    plan_pb2.FALLBACK_ACTION_ALTERNATIVE: E.IMPACT_MEDIUM,
}


def _on_step_failed(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.step_failed
    run = _step(state, e.step_id)
    run.in_flight = False
    run.start_at = None
    # The step's last attempt error now knows what followed it.
    if state.errors and state.errors[-1].step_id == e.step_id:
        last = state.errors[-1]
        last.recovery_action = _FALLBACK_NAMES.get(e.fallback_action, "fail")
        last.impact = _FALLBACK_IMPACT.get(e.fallback_action, E.IMPACT_CRITICAL)
    if e.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
        run.on_alternative = True
        run.path_attempts = 0
    elif e.fallback_action != plan_pb2.FALLBACK_ACTION_SKIP:
        # A skip is settled by the step_skipped event that follows.
        run.state = E.STEP_STATE_FAILED
        run.end_time = state.current_time


def _on_step_skipped(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.step_skipped
    run = _step(state, e.step_id)
    run.state = E.STEP_STATE_SKIPPED
    run.in_flight = False
    run.start_at = None
    run.skip_reason = e.reason
    run.end_time = state.current_time
    if e.reason.startswith(("fallback", "degraded")):
        state.degraded_reasons.append(f"step {e.step_id} skipped: {e.reason}")


def _on_gate_evaluated(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.gate_evaluated
    if e.passed:
        return
    state.errors.append(
        ErrorRecord(
            step_id=e.checkpoint,
            error_type="QUALITY_GATE",
            message=f"gate {e.gate_id} scored {e.score:.1f}: " + "; ".join(e.details),
            recovery_action={
                plan_pb2.GATE_ACTION_CONTINUE_DEGRADED: "continue_degraded",
                plan_pb2.GATE_ACTION_RETRY: "retry",
            }.get(e.action, "fail"),
            impact=E.IMPACT_MEDIUM if e.action != plan_pb2.GATE_ACTION_STOP else E.IMPACT_CRITICAL,
        )
    )
    if e.action == plan_pb2.GATE_ACTION_CONTINUE_DEGRADED:
        state.degraded_reasons.append(f"quality gate {e.gate_id} failed (score {e.score:.1f})")
    elif e.action == plan_pb2.GATE_ACTION_RETRY:
        run = _step(state, e.checkpoint)
        run.gate_retries.add(e.gate_id)
        run.state = E.STEP_STATE_RUNNING
        run.path_attempts = 0
        run.end_time = None


def _finish(state: ExecutionState, status: execution_pb2.ExecutionState) -> None:
    state.status = status
    state.end_time = state.current_time
    for run in state.steps.values():
        if run.state not in STEP_DONE:
            run.report = None
            run.state = E.STEP_STATE_SKIPPED
            run.in_flight = False
            run.skip_reason = "execution ended"
            run.end_time = run.end_time or (state.current_time if run.start_time else None)


def _on_completed(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    _finish(state, E.EXECUTION_STATE_COMPLETED)


def _on_failed(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    e = event.execution_failed
    state.failure_reason = e.reason
    if not e.step_id:
        state.errors.append(
            ErrorRecord(
                step_id="",
                error_type=e.error_type or "FAILED",
                message=e.reason,
                recovery_action="fail",
                impact=E.IMPACT_CRITICAL,
            )
        )
    _finish(state, E.EXECUTION_STATE_FAILED)


def _on_cancelled(state: ExecutionState, event: execution_pb2.ExecutionEvent) -> None:
    state.failure_reason = (
        f"cancelled: {event.execution_cancelled.reason}" if event.execution_cancelled.reason else "cancelled"
    )
    _finish(state, E.EXECUTION_STATE_CANCELLED)


_HANDLERS = {
    "step_delayed": _on_step_delayed,
    "step_started": _on_step_started,
    "step_attempt_failed": _on_attempt_failed,
    "step_succeeded": _on_step_succeeded,
    "step_failed": _on_step_failed,
    "step_skipped": _on_step_skipped,
    "gate_evaluated": _on_gate_evaluated,
    "execution_completed": _on_completed,
    "execution_failed": _on_failed,
    "execution_cancelled": _on_cancelled,
}
