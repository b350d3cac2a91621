"""The fold: an execution's state is its events applied in order by `apply`, by two tables.

Rules (every event kind's effect lives here and nowhere else):
1. `execution_started` creates the state (`start`); every other kind needs it first, and each
   event's sequence is the previous one's + 1.
2. The execution's phase decides which kinds may come at all (`_ALLOWED`): while it runs,
   anything but a resume or compensation events; while paused, only outcomes of calls already in
   flight, gate verdicts on them, a resume and the roads to an end; while unwinding, only
   outcomes, probes of steps in doubt, compensation events and the end; after the end, nothing
   but an `execution_rerun` (rule 8).
3. A step event may come only in the step phases its row of `_STEP_EVENTS` names; anything else
   is a `FoldError` naming the event, the step and its phase. An outcome must be of the step's
   latest attempt (a stale outcome of an older one is refused, not applied).
4. Step phases: PENDING → (step_delayed) DELAYED → (step_started) IN_FLIGHT → step_succeeded
   COMPLETED, or step_attempt_failed → BACKOFF (a retry due) or FAILED (none left) → step_failed
   names the fallback: ALTERNATIVE → BACKOFF (due at once, on the alternative call), SKIP →
   step_skipped → SKIPPED, FAIL → stays FAILED. A gate's RETRY puts a COMPLETED step back in
   BACKOFF; an approval step or an escalated checkpoint WAITs until a signal or its timeout.
5. `execution_unwinding` starts compensation (status COMPENSATING); each compensated step's
   CompensationRun moves PENDING → RUNNING → SUCCEEDED, or is settled FAILED / NOT_NEEDED.
6. `execution_completed`, `execution_failed` and `execution_cancelled` are terminal; steps not
   done then become SKIPPED (cause EXECUTION_ENDED).
7. Unknown event kinds (written by a newer release) are counted and otherwise ignored.
8. After the end only the terminal callback's events (callback.py) and `execution_rerun` may
   come: `callback_scheduled`, then one `callback_delivered` or `callback_failed` of that
   delivery id. They set the CallbackReport and nothing else: not the execution's time, so its
   status (durations included) stays as it ended. An earlier run's outcome may also come while a
   rerun runs, or after it ended: it settles that delivery id and leaves the report (the latest
   run's) alone. An outcome of a delivery id not owed is a `FoldError`.
9. `execution_rerun` takes a FAILED or CANCELLED execution back to RUNNING, in the same history:
   the steps it names are new (PENDING, no attempt, no output, no compensation), the others keep
   what they had; the end's cause and reason are cleared, the deadline is the event's, `run`
   counts up by one and the compensation scope starts afresh (`scope_start`); the errors that
   ended the last run (of the execution, or of a reset step) are no longer critical: they are
   being retried (recovery action "rerun"); a reset step's skip no longer degrades the
   execution. A rerun of any other state, of a run number out of turn, or naming a step the
   plan lacks is a `FoldError`.
10. A map step (for_each): PENDING/DELAYED → (step_map_started, its item count, at most
   MAX_MAP_ITEMS) MAPPING; each item moves PENDING → (step_item_started) IN_FLIGHT →
   step_item_succeeded COMPLETED, or step_item_attempt_failed → BACKOFF (a retry due) or FAILED
   (none left) → step_item_failed names what follows: SKIP_ITEM → SKIPPED, FAIL_STEP → stays
   FAILED. Item events need the step MAPPING and name the item's latest attempt; the step leaves
   MAPPING by step_succeeded (the join: it carries no output, the step's output is built here
   from its items' outputs) or step_failed. Compensation events with an
   `item` are that item's (a COMPLETED item's), in whatever phase the step is.

Why one module past the house's ~500 lines: the rules above are one state machine, and keeping
every event kind's effect in one file (python-hyper/h11's `_state.py` habit) is what makes "where
does this change the state?" answerable by reading one place.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import any_pb2, struct_pb2

from server.engine.callback import CALLBACK_KINDS
from server.engine.calls import tally_call
from server.engine.model import LOW_QUALITY, MAX_MAP_ITEMS, Plan, struct_json
from server.engine.state import (
    DONE,
    NEVER_SENT,
    NO_DEADLINE,
    NOT_APPLIED,
    RERUNNABLE,
    TERMINAL,
    CompensationRun,
    ErrorRecord,
    ExecutionState,
    FoldError,
    ItemPhase,
    ItemRun,
    ItemTally,
    Phase,
    StepRun,
    Unwinding,
    Wait,
)

E = execution_pb2
Event = execution_pb2.ExecutionEvent

# ---- rule 2: which kinds each execution phase allows ----------------------------------------

_ITEM_OUTCOMES = frozenset({"step_item_succeeded", "step_item_attempt_failed", "step_item_failed"})
_OUTCOMES = frozenset({"step_succeeded", "step_attempt_failed", "step_failed", "step_skipped"}) | _ITEM_OUTCOMES
_ENDS = frozenset({"execution_unwinding", "execution_completed", "execution_failed", "execution_cancelled"})
_COMPENSATION = frozenset(
    {"compensation_started", "compensation_attempt_failed", "compensation_succeeded", "compensation_settled"}
)
# An earlier run's callback may be settled while a rerun runs (rule 8).
_SETTLED = frozenset({"callback_delivered", "callback_failed"})
_ALLOWED: dict[str, frozenset[str]] = {
    "running": _OUTCOMES
    | _ENDS
    | _SETTLED
    | {
        "step_delayed",
        "step_started",
        "gate_evaluated",
        "step_waiting",
        "signal_received",
        "execution_paused",
        "step_map_started",
        "step_item_started",
    },
    "paused": _OUTCOMES | _ENDS | _SETTLED | {"gate_evaluated", "step_waiting", "execution_resumed"},
    "unwinding": _COMPENSATION
    | _SETTLED
    | {
        "step_started",
        "step_succeeded",
        "step_attempt_failed",
        "step_item_started",
        "step_item_succeeded",
        "step_item_attempt_failed",
        "execution_failed",
        "execution_cancelled",
    },
    "terminal": CALLBACK_KINDS | {"execution_rerun"},
}


def _phase_of(state: ExecutionState) -> str:
    if state.status in TERMINAL:
        return "terminal"
    if state.status == E.EXECUTION_STATE_COMPENSATING:
        return "unwinding"
    if state.status == E.EXECUTION_STATE_PAUSED:
        return "paused"
    return "running"


# ---- the entry points --------------------------------------------------------------------------


def start(event: Event, execution_id: str, plan: Plan | None = None) -> ExecutionState:
    """Creates the state from an execution's first event.

    Args:
        event: the execution_started event.
        execution_id: the execution.
        plan: the plan already built from this event's plan, to share instead of rebuilding.
    """
    if event.WhichOneof("kind") != "execution_started":
        raise FoldError(f"execution {execution_id}: first event is {event.WhichOneof('kind')}, not execution_started")
    if event.sequence != 1:
        raise FoldError(f"execution {execution_id}: execution_started has sequence {event.sequence}, not 1")
    started = event.execution_started
    try:
        plan = plan or Plan.from_proto(started.plan)
    except (ValueError, KeyError) as exc:
        raise FoldError(f"execution {execution_id}: its plan cannot be read: {exc}") from exc
    state = ExecutionState(
        execution_id=execution_id,
        started=started,
        plan=plan,
        steps={sid: StepRun(step_id=sid) for sid in plan.steps},
        deadline=started.deadline.ToDatetime(tzinfo=UTC) if started.HasField("deadline") else NO_DEADLINE,
    )
    _account(state, event)
    state.start_time = state.current_time
    return state


def fold(execution_id: str, events: list[Event], plan: Plan | None = None) -> ExecutionState:
    """Folds a whole history (its first event must be execution_started); `plan` as in `start`."""
    if not events:
        raise FoldError(f"execution {execution_id} has no events")
    state = start(events[0], execution_id, plan)
    for event in events[1:]:
        apply(state, event)
    return state


def apply(state: ExecutionState, event: Event) -> None:
    """Applies one event to the state in place (rules at the top of this module).

    Raises:
        FoldError: the event does not fit the state (checked before anything changes).
    """
    if event.sequence != state.last_sequence + 1:
        raise FoldError(f"execution {state.execution_id}: event {event.sequence} follows {state.last_sequence}")
    kind = event.WhichOneof("kind")
    if kind is None:
        _account(state, event)  # rule 7
        return
    phase = _phase_of(state)
    if kind not in _ALLOWED[phase]:
        after = "after the terminal event" if phase == "terminal" else f"while the execution is {state.state_name}"
        raise FoldError(f"execution {state.execution_id}: {kind} is not allowed {after}")
    if kind in CALLBACK_KINDS:
        _on_callback(state, event, kind)  # rule 8
        return
    step_rule = _STEP_EVENTS.get(kind)
    if step_rule is not None:
        phases, step_handler = step_rule
        body = getattr(event, kind)
        step_id = body.checkpoint if kind == "gate_evaluated" else body.step_id
        run = state.steps.get(step_id)
        if run is None:
            raise FoldError(f"execution {state.execution_id}: {kind} names unknown step {step_id!r}")
        item = _item_of(state, kind, body, run)
        if item is not None:
            _check_item(state, kind, body, run, item)
        elif run.phase not in phases:
            where = f"for step {run.step_id} in phase {run.phase.value}"
            raise FoldError(f"execution {state.execution_id}: {kind} is not allowed {where}")
        else:
            _check_step(state, kind, body, run)
        _account(state, event)
        run.report = None  # the event changes the step: its rendered report is stale
        step_handler(state, run, event)
        tally_call(state.calls, state.call_slots, kind, body)  # the cost (server/engine/calls.py)
        return
    execution_handler = _EXECUTION_EVENTS.get(kind)
    if execution_handler is None:
        raise FoldError(f"execution {state.execution_id}: {kind} cannot follow execution_started")
    if kind == "execution_rerun":
        _check_rerun(state, event.execution_rerun)
    _account(state, event)
    execution_handler(state, event)


def _account(state: ExecutionState, event: Event) -> None:
    state.last_sequence = event.sequence
    state.current_time = event.time
    state.storage_bytes += event.ByteSize()


def _check_step(state: ExecutionState, kind: str, body: Any, run: StepRun) -> None:
    """Rule 3's guards beyond the phase: the attempt named is the latest (no stale outcome), a
    probe is of a step in doubt, a compensation event fits where the compensation stands."""
    if kind == "step_started" and state.unwinding is not None and not run.in_doubt:
        raise FoldError(f"execution {state.execution_id}: step_started of {run.step_id} while unwinding, not in doubt")
    if kind in _COMPENSATION:
        _check_compensation(state, kind, body, run.step_id, run.compensation)
        return
    attempt = getattr(body, "attempt", None)
    if attempt is None:
        return
    if kind == "step_started":
        expected = run.attempts + 1
    elif run.phase == Phase.WAITING:
        expected = 0  # an approval step's outcome, which no attempt made
    else:
        expected = run.attempts
    if attempt != expected:
        raise FoldError(
            f"execution {state.execution_id}: {kind} of step {run.step_id} names attempt {attempt}, expected {expected}"
        )


def _check_rerun(state: ExecutionState, body: execution_pb2.ExecutionRerun) -> None:
    """Rule 9's guards: a failed or cancelled execution, the next run, steps of the plan."""
    if state.status not in RERUNNABLE:
        raise FoldError(f"execution {state.execution_id}: execution_rerun while the execution is {state.state_name}")
    if body.run != state.run + 1:
        raise FoldError(f"execution {state.execution_id}: execution_rerun starts run {body.run}, not {state.run + 1}")
    unknown = [sid for sid in body.reset_steps if sid not in state.steps]
    if unknown:
        raise FoldError(f"execution {state.execution_id}: execution_rerun resets unknown step {unknown[0]!r}")


def _check_compensation(
    state: ExecutionState, kind: str, body: Any, step_id: str, comp: CompensationRun | None
) -> None:
    """A compensation event fits where the compensation (of a step or of an item) stands."""
    if (
        kind == "compensation_started"
        and comp is not None
        and (comp.in_flight or comp.state > E.COMPENSATION_STATE_RUNNING)
    ):
        raise FoldError(f"execution {state.execution_id}: compensation_started of {step_id}, already {comp.state}")
    if kind in ("compensation_attempt_failed", "compensation_succeeded") and (comp is None or not comp.in_flight):
        raise FoldError(f"execution {state.execution_id}: {kind} of step {step_id} with no compensation in flight")
    if kind == "compensation_settled" and (
        (comp is not None and comp.in_flight)
        or body.state not in (E.COMPENSATION_STATE_FAILED, E.COMPENSATION_STATE_NOT_NEEDED)
    ):
        raise FoldError(f"execution {state.execution_id}: compensation_settled of {step_id} does not fit")
    if kind == "compensation_settled":
        return
    comp_attempts = comp.attempts if comp is not None else 0
    expected = comp_attempts + 1 if kind == "compensation_started" else comp_attempts
    if body.attempt != expected:
        raise FoldError(
            f"execution {state.execution_id}: {kind} of step {step_id} names attempt {body.attempt},"
            f" expected {expected}"
        )


def _item_of(state: ExecutionState, kind: str, body: Any, run: StepRun) -> ItemRun | None:
    """The item an item event (or an item's compensation event) names; None for a step's own event."""
    if not kind.startswith("step_item_") and not (kind in _COMPENSATION and body.HasField("item")):
        return None
    items = run.items
    if items is None or not 0 <= body.item < len(items):
        count = "no items" if items is None else f"{len(items)} items"
        raise FoldError(
            f"execution {state.execution_id}: {kind} names item {body.item} of step {run.step_id} ({count})"
        )
    item: ItemRun = items[body.item]
    return item


_ITEM_PHASES: dict[str, frozenset[ItemPhase]] = {
    # FAILED, SKIPPED: a probe of an item in doubt while unwinding (checked in `_check_item`).
    "step_item_started": frozenset({ItemPhase.PENDING, ItemPhase.BACKOFF, ItemPhase.FAILED, ItemPhase.SKIPPED}),
    "step_item_attempt_failed": frozenset({ItemPhase.IN_FLIGHT}),
    "step_item_succeeded": frozenset({ItemPhase.IN_FLIGHT}),
    "step_item_failed": frozenset({ItemPhase.FAILED}),
    "compensation_started": frozenset({ItemPhase.COMPLETED}),
    "compensation_attempt_failed": frozenset({ItemPhase.COMPLETED}),
    "compensation_succeeded": frozenset({ItemPhase.COMPLETED}),
    "compensation_settled": frozenset(ItemPhase) - {ItemPhase.IN_FLIGHT},
}


def _check_item(state: ExecutionState, kind: str, body: Any, run: StepRun, item: ItemRun) -> None:
    """Rule 8's guards: the step is MAPPING (for the item's own events), the item in a phase the
    kind allows, the attempt named its latest; compensation events as `_check_step`'s."""
    where = f"for item {item.index} of step {run.step_id}"
    unwinding = state.unwinding is not None
    # While unwinding, items in flight end and items in doubt are probed, whatever the step's phase.
    if kind.startswith("step_item_") and run.phase != Phase.MAPPING and not unwinding:
        raise FoldError(f"execution {state.execution_id}: {kind} is not allowed {where} in phase {run.phase.value}")
    if item.phase not in _ITEM_PHASES[kind]:
        raise FoldError(f"execution {state.execution_id}: {kind} is not allowed {where} in phase {item.phase.value}")
    if kind == "step_item_started" and unwinding and not item.in_doubt:
        raise FoldError(f"execution {state.execution_id}: {kind} {where} while unwinding, not in doubt")
    if kind == "step_item_started" and not unwinding and item.phase not in (ItemPhase.PENDING, ItemPhase.BACKOFF):
        raise FoldError(f"execution {state.execution_id}: {kind} {where} in phase {item.phase.value}, not a probe")
    comp = item.compensation
    if kind in _COMPENSATION:
        _check_compensation(state, kind, body, run.step_id, comp)
        return
    attempt = getattr(body, "attempt", None)
    if attempt is None:
        return
    expected = item.attempts + 1 if kind == "step_item_started" else item.attempts
    if attempt != expected:
        raise FoldError(f"execution {state.execution_id}: {kind} {where} names attempt {attempt}, expected {expected}")


def _at(ts: object) -> datetime:
    return ts.ToDatetime(tzinfo=UTC)  # type: ignore[attr-defined, no-any-return]


# ---- step events -------------------------------------------------------------------------------


def _on_step_delayed(state: ExecutionState, run: StepRun, event: Event) -> None:
    run.phase = Phase.DELAYED
    run.due = _at(event.step_delayed.start_at)


def _on_step_started(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_started
    run.phase = Phase.IN_FLIGHT
    run.attempts = e.attempt
    run.path_attempts += 1
    run.agent, run.operation = e.agent, e.operation
    run.due = None
    run.doubt_before = run.in_doubt
    run.in_doubt = True  # from now on the call may take effect without a reply
    if state.unwinding is not None:
        run.probes += 1
    if run.start_time is None:
        run.start_time = state.current_time
    run.end_time = None
    if state.status == E.EXECUTION_STATE_QUEUED:
        state.status = E.EXECUTION_STATE_RUNNING
    state.resume_status = E.EXECUTION_STATE_RUNNING


def _on_attempt_failed(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_attempt_failed
    state.network_bytes += e.request_bytes
    if e.error_type in NEVER_SENT:
        run.in_doubt = run.doubt_before
    elif e.error_type in NOT_APPLIED:
        # Refused: with one key for every attempt, a refusal also tells that no earlier attempt
        # took effect (the agent would have answered with that attempt's result).
        run.in_doubt = False
    if e.circuit_wait:
        # Refused unsent by an open breaker and parked until its probe time: not a retry spent.
        run.path_attempts -= 1
        run.circuit_waits += 1
    retrying = e.HasField("retry_at")
    if retrying:
        run.phase, run.due = Phase.BACKOFF, _at(e.retry_at)
    else:
        run.phase, run.due = Phase.FAILED, None
        run.end_time = state.current_time
    state.errors.append(
        ErrorRecord(
            step_id=e.step_id,
            error_type=e.error_type,
            message=e.error_message,
            recovery_action="retry" if retrying else "none",
            # Recovered (LOW) only once a later attempt of the step succeeds (`_on_step_succeeded`).
            impact=E.IMPACT_MEDIUM,
            attempt=e.attempt,
        )
    )


def _on_step_succeeded(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_succeeded
    run.phase = Phase.COMPLETED
    run.due = None
    run.wait = None
    run.in_doubt = False
    run.end_time = state.current_time
    # A map step's join carries no output: it is its items' outputs, in item order (rule 8).
    run.output = _join(run.items) if run.items is not None and not e.HasField("output") else e.output
    run.quality_score = e.quality.score
    run.quality_metrics = e.quality.metrics
    run.completed_at = event.sequence
    state.network_bytes += e.request_bytes + e.response_bytes
    # The step's earlier errors were recovered from (by a retry or the alternative call).
    for err in state.errors:
        # (A map step's items recover on their own: a skipped item's error stays unrecovered.)
        if err.step_id == e.step_id and err.error_type not in ("QUALITY_GATE", LOW_QUALITY) and err.item < 0:
            err.impact = E.IMPACT_LOW
    step = state.plan.steps.get(e.step_id)
    if step is not None and step.below_quality(e.quality.score):
        requirement = step.quality_miss(e.quality.score)
        state.errors.append(
            ErrorRecord(
                step_id=e.step_id,
                error_type=LOW_QUALITY,
                message=requirement,
                recovery_action="continue_degraded",
                impact=E.IMPACT_MEDIUM,
                attempt=e.attempt,
            )
        )
        state.degraded_reasons.append(f"step {e.step_id}: {requirement}")


_FALLBACK_NAMES = {
    plan_pb2.FALLBACK_ACTION_SKIP: "skip",
    plan_pb2.FALLBACK_ACTION_ALTERNATIVE: "alternative",
    plan_pb2.FALLBACK_ACTION_FAIL: "fail",
}
_FALLBACK_IMPACT = {
    plan_pb2.FALLBACK_ACTION_SKIP: E.IMPACT_HIGH,
    plan_pb2.FALLBACK_ACTION_ALTERNATIVE: E.IMPACT_MEDIUM,
}


def _on_step_failed(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_failed
    run.wait = None
    step = state.plan.steps.get(e.step_id)
    notified = step is not None and step.notify_on_failure
    # The step's last attempt error now knows what followed it.
    if state.errors and state.errors[-1].step_id == e.step_id and run.attempts:
        last = state.errors[-1]
        last.recovery_action = _FALLBACK_NAMES.get(e.fallback_action, "fail")
        last.impact = _FALLBACK_IMPACT.get(e.fallback_action, E.IMPACT_CRITICAL)
        last.user_notified = notified
    else:
        # Failed without an attempt of its own (an approval that timed out, say).
        state.errors.append(
            ErrorRecord(
                step_id=e.step_id,
                error_type=e.error_type,
                message=e.error_message,
                recovery_action=_FALLBACK_NAMES.get(e.fallback_action, "fail"),
                impact=_FALLBACK_IMPACT.get(e.fallback_action, E.IMPACT_CRITICAL),
                user_notified=notified,
            )
        )
    if e.fallback_action == plan_pb2.FALLBACK_ACTION_ALTERNATIVE:
        run.on_alternative = True
        run.path_attempts = run.circuit_waits = 0
        run.phase, run.due = Phase.BACKOFF, None
    else:
        # A skip is settled by the step_skipped event that follows.
        run.phase = Phase.FAILED
        run.end_time = state.current_time


def _on_step_skipped(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_skipped
    run.phase = Phase.SKIPPED
    run.due = None
    run.wait = None
    run.skip_cause = e.cause
    run.end_time = state.current_time
    if e.cause in (E.SKIP_CAUSE_FALLBACK, E.SKIP_CAUSE_DEGRADED, E.SKIP_CAUSE_APPROVAL_TIMEOUT):
        run.degraded_reason = f"step {e.step_id} skipped: {e.reason}"
        state.degraded_reasons.append(run.degraded_reason)


def _on_gate_evaluated(state: ExecutionState, run: StepRun, event: Event) -> None:
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
                plan_pb2.GATE_ACTION_ESCALATE: "escalate",
            }.get(e.action, "fail"),
            impact=E.IMPACT_MEDIUM if e.action != plan_pb2.GATE_ACTION_STOP else E.IMPACT_CRITICAL,
        )
    )
    if e.action == plan_pb2.GATE_ACTION_CONTINUE_DEGRADED:
        state.degraded_reasons.append(f"quality gate {e.gate_id} failed (score {e.score:.1f})")
    elif e.action == plan_pb2.GATE_ACTION_RETRY:
        run.gate_retries |= {e.gate_id}
        run.phase, run.due = Phase.BACKOFF, None
        run.path_attempts = run.circuit_waits = 0
        run.end_time = None


def _on_step_waiting(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_waiting
    run.phase = Phase.WAITING
    run.wait = Wait(
        kind=e.kind,
        gate_id=e.gate_id,
        prompt=e.prompt,
        data=struct_json(e.data),
        since=event.time,
        timeout_at=_at(e.timeout_at) if e.HasField("timeout_at") else None,
    )
    if run.start_time is None:
        run.start_time = state.current_time
        run.end_time = None
    if state.status == E.EXECUTION_STATE_QUEUED:
        state.status = E.EXECUTION_STATE_RUNNING  # waiting for a person is running, not queued
    state.resume_status = E.EXECUTION_STATE_RUNNING


def _on_signal_received(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.signal_received
    wait = run.wait
    if wait is None:  # the phase check guarantees WAITING, which always has a wait
        raise FoldError(f"execution {state.execution_id}: step {run.step_id} waits for nothing")
    payload = struct_json(e.payload)
    if e.signal == E.SIGNAL_INPUT:
        wait.data.update(payload)
    elif e.signal == E.SIGNAL_REJECT:
        wait.rejected, wait.reason = True, e.reason
    elif e.signal == E.SIGNAL_APPROVE:
        run.wait = None
        run.phase = Phase.COMPLETED
        if wait.kind == E.WAIT_KIND_APPROVAL:
            output = struct_pb2.Struct()
            output.update({**wait.data, **payload})
            packed = any_pb2.Any()
            packed.Pack(output)
            run.output = packed
            run.end_time = state.current_time
            run.completed_at = event.sequence
    else:
        raise FoldError(f"execution {state.execution_id}: signal_received with unknown signal {e.signal}")


def _compensation(run: StepRun, body: Any) -> CompensationRun:
    """The compensation an event is about: its item's (checked by `_item_of`) or the step's own."""
    owner: StepRun | ItemRun = run.items[body.item] if body.HasField("item") and run.items else run
    comp = owner.compensation
    if comp is None:
        comp = owner.compensation = CompensationRun()
    return comp


def _item_index(body: Any) -> int:
    return int(body.item) if body.HasField("item") else -1


def _on_compensation_started(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.compensation_started
    comp = _compensation(run, e)
    if comp.state == E.COMPENSATION_STATE_PENDING:
        state.compensations_run += 1
        comp.order = state.compensations_run
    comp.state = E.COMPENSATION_STATE_RUNNING
    comp.attempts = e.attempt
    comp.in_flight = True
    comp.due = None
    comp.agent, comp.operation = e.agent, e.operation


def _in_flight_compensation(run: StepRun, body: Any) -> CompensationRun:
    comp = _compensation(run, body)  # in flight: `_check_compensation` made sure
    comp.in_flight = False
    return comp


def _on_compensation_attempt_failed(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.compensation_attempt_failed
    comp = _in_flight_compensation(run, e)
    comp.error = f"{e.error_type}: {e.error_message}"
    if e.HasField("retry_at"):
        comp.due = _at(e.retry_at)


def _on_compensation_succeeded(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.compensation_succeeded
    comp = _in_flight_compensation(run, e)
    comp.state = E.COMPENSATION_STATE_SUCCEEDED
    comp.error = ""
    state.errors.append(
        ErrorRecord(
            step_id=run.step_id,
            error_type="COMPENSATION",
            message=f"compensated by {comp.agent}.{comp.operation}",
            recovery_action="compensate",
            impact=E.IMPACT_LOW,
            attempt=comp.attempts,
            item=_item_index(e),
        )
    )


def _on_compensation_settled(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.compensation_settled
    comp = _compensation(run, e)
    if comp.state == E.COMPENSATION_STATE_PENDING:
        state.compensations_run += 1
        comp.order = state.compensations_run
    comp.state = e.state
    comp.due = None
    comp.error = e.reason
    failed = e.state == E.COMPENSATION_STATE_FAILED
    state.errors.append(
        ErrorRecord(
            step_id=run.step_id,
            error_type="COMPENSATION",
            message=e.reason,
            recovery_action="compensate",
            impact=E.IMPACT_CRITICAL if failed else E.IMPACT_LOW,
            attempt=comp.attempts,
            item=_item_index(e),
        )
    )


# ---- map steps (rule 8) --------------------------------------------------------------------------


def _on_map_started(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_map_started
    if not 0 <= e.item_count <= MAX_MAP_ITEMS:
        # A stored count is trusted with memory: a corrupt or foreign one is refused, not allocated.
        raise FoldError(
            f"execution {state.execution_id}: step_map_started of {run.step_id} with {e.item_count} items"
            f" (at most {MAX_MAP_ITEMS})"
        )
    run.phase = Phase.MAPPING
    run.items = [ItemRun(index) for index in range(e.item_count)]
    run.tally = ItemTally.of(e.item_count)
    run.due = None
    if run.start_time is None:
        run.start_time = state.current_time
    run.end_time = None
    if state.status == E.EXECUTION_STATE_QUEUED:
        state.status = E.EXECUTION_STATE_RUNNING
    state.resume_status = E.EXECUTION_STATE_RUNNING


def _tally(run: StepRun) -> ItemTally:
    if run.tally is None:  # set with `items` by step_map_started
        raise FoldError(f"step {run.step_id} has no items")
    return run.tally


def _the_item(run: StepRun, body: Any) -> ItemRun:
    items = run.items
    if items is None:  # `_item_of` made sure it has
        raise FoldError(f"step {run.step_id} has no items")
    item: ItemRun = items[body.item]
    return item


def _on_item_started(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_item_started
    item = _the_item(run, e)
    _tally(run).set_phase(item, ItemPhase.IN_FLIGHT)
    item.attempts = e.attempt
    item.due = None
    item.doubt_before = item.in_doubt
    item.in_doubt = True
    if state.unwinding is not None:
        item.probes += 1
    run.attempts += 1
    run.agent, run.operation = e.agent, e.operation


def _on_item_attempt_failed(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_item_attempt_failed
    item = _the_item(run, e)
    state.network_bytes += e.request_bytes
    if e.error_type in NEVER_SENT:
        item.in_doubt = item.doubt_before
    elif e.error_type in NOT_APPLIED:
        item.in_doubt = False
    item.error_type, item.error_message = e.error_type, e.error_message
    retrying = e.HasField("retry_at")
    _tally(run).set_phase(item, ItemPhase.BACKOFF if retrying else ItemPhase.FAILED)
    item.due = _at(e.retry_at) if retrying else None
    state.errors.append(
        ErrorRecord(
            step_id=e.step_id,
            error_type=e.error_type,
            message=e.error_message,
            recovery_action="retry" if retrying else "none",
            impact=E.IMPACT_MEDIUM,
            attempt=e.attempt,
            item=e.item,
        )
    )


def _on_item_succeeded(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_item_succeeded
    item = _the_item(run, e)
    _tally(run).set_phase(item, ItemPhase.COMPLETED)
    item.in_doubt = False
    item.output = e.output
    item.quality_score = e.quality.score
    item.quality_metrics = e.quality.metrics
    item.completed_at = event.sequence
    state.network_bytes += e.request_bytes + e.response_bytes
    for err in state.errors:
        if err.step_id == e.step_id and err.item == e.item:
            err.impact = E.IMPACT_LOW  # recovered by a later attempt of the item


def _join(items: list[ItemRun]) -> any_pb2.Any:
    """A map step's output: a ListValue of its items' outputs in item order (null for an item without)."""
    joined = struct_pb2.ListValue()
    joined.extend([item.output_json() for item in items])
    packed = any_pb2.Any()
    packed.Pack(joined)
    return packed


def _on_item_failed(state: ExecutionState, run: StepRun, event: Event) -> None:
    e = event.step_item_failed
    item = _the_item(run, e)
    skipped = e.item_failure == plan_pb2.ITEM_FAILURE_SKIP_ITEM
    if skipped:
        _tally(run).set_phase(item, ItemPhase.SKIPPED)
        state.degraded_reasons.append(f"step {e.step_id} item {e.item} skipped: {e.error_type}: {e.error_message}")
    last = state.errors[-1] if state.errors else None
    if last is not None and last.step_id == e.step_id and last.item == e.item:
        last.recovery_action = "skip_item" if skipped else "fail"
        last.impact = E.IMPACT_HIGH if skipped else E.IMPACT_CRITICAL


_ANY = frozenset(Phase)
_STEP_EVENTS: dict[str, tuple[frozenset[Phase], Callable[[ExecutionState, StepRun, Event], None]]] = {
    "step_delayed": (frozenset({Phase.PENDING}), _on_step_delayed),
    # FAILED: a probe of a step in doubt while unwinding (checked in the handler).
    "step_started": (frozenset({Phase.PENDING, Phase.DELAYED, Phase.BACKOFF, Phase.FAILED}), _on_step_started),
    "step_attempt_failed": (frozenset({Phase.IN_FLIGHT}), _on_attempt_failed),
    # WAITING: an approval granted by its timeout.
    # MAPPING: a map step's join, once every item has ended.
    "step_succeeded": (frozenset({Phase.IN_FLIGHT, Phase.WAITING, Phase.MAPPING}), _on_step_succeeded),
    # PENDING, WAITING: an approval step that could not start waiting, or timed out.
    # MAPPING: a map step with an item failed under ITEM_FAILURE_FAIL_STEP, once none is in flight.
    "step_failed": (frozenset({Phase.FAILED, Phase.PENDING, Phase.WAITING, Phase.MAPPING}), _on_step_failed),
    "step_skipped": (frozenset({Phase.PENDING, Phase.DELAYED, Phase.FAILED, Phase.WAITING}), _on_step_skipped),
    "gate_evaluated": (frozenset({Phase.COMPLETED}), _on_gate_evaluated),
    "step_waiting": (frozenset({Phase.PENDING, Phase.COMPLETED}), _on_step_waiting),
    "signal_received": (frozenset({Phase.WAITING}), _on_signal_received),
    # Compensation of a completed step, or settling one whose effect never happened.
    "compensation_started": (frozenset({Phase.COMPLETED}), _on_compensation_started),
    "compensation_attempt_failed": (frozenset({Phase.COMPLETED}), _on_compensation_attempt_failed),
    "compensation_succeeded": (frozenset({Phase.COMPLETED}), _on_compensation_succeeded),
    "compensation_settled": (_ANY - {Phase.IN_FLIGHT}, _on_compensation_settled),
    # Map steps (rule 8); item events check the item's phase too (`_check_item`).
    "step_map_started": (frozenset({Phase.PENDING, Phase.DELAYED}), _on_map_started),
    "step_item_started": (frozenset({Phase.MAPPING}), _on_item_started),
    "step_item_attempt_failed": (frozenset({Phase.MAPPING}), _on_item_attempt_failed),
    "step_item_succeeded": (frozenset({Phase.MAPPING}), _on_item_succeeded),
    "step_item_failed": (frozenset({Phase.MAPPING}), _on_item_failed),
}


# ---- execution events --------------------------------------------------------------------------


def _on_unwinding(state: ExecutionState, event: Event) -> None:
    e = event.execution_unwinding
    if e.outcome not in (E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED):
        raise FoldError(f"execution {state.execution_id}: execution_unwinding toward {e.outcome}")
    state.unwinding = Unwinding(
        outcome=e.outcome, cause=e.cause, reason=e.reason, step_id=e.step_id, error_type=e.error_type
    )
    state.status = E.EXECUTION_STATE_COMPENSATING
    state.paused_at = None
    for run in state.steps.values():
        if run.wait is None:
            continue
        if run.wait.kind == E.WAIT_KIND_ESCALATION:
            # The checkpoint did complete (its effect happened); only its verdict was pending.
            run.phase = Phase.COMPLETED
        else:
            # Nobody is asked any more: the execution is ending.
            run.phase, run.skip_cause, run.end_time = Phase.SKIPPED, E.SKIP_CAUSE_EXECUTION_ENDED, state.current_time
        run.wait, run.report = None, None


def _on_paused(state: ExecutionState, event: Event) -> None:
    state.resume_status = state.status
    state.status = E.EXECUTION_STATE_PAUSED
    state.paused_at = _at(event.time)


def _on_resumed(state: ExecutionState, event: Event) -> None:
    e = event.execution_resumed
    state.status = state.resume_status
    state.paused_at = None
    if e.HasField("deadline"):
        state.deadline = _at(e.deadline)


def _on_rerun(state: ExecutionState, event: Event) -> None:
    e = event.execution_rerun
    state.status = state.resume_status = E.EXECUTION_STATE_RUNNING
    state.end_time = state.paused_at = state.unwinding = None
    state.end_cause = E.END_CAUSE_UNSPECIFIED
    state.failure_reason = ""
    state.deadline = _at(e.deadline) if e.HasField("deadline") else NO_DEADLINE
    state.run = e.run
    state.callback = None  # the rerun's own end will have its own (rule 8)
    state.scope_start = state.compensations_run
    if e.request_id:
        state.rerun_requests.add(e.request_id)
    for sid in e.reset_steps:
        reason = state.steps[sid].degraded_reason
        if reason in state.degraded_reasons:
            state.degraded_reasons.remove(reason)  # the skip that degraded the last run is undone
        state.steps[sid] = StepRun(step_id=sid)
    for err in state.errors:
        if err.impact == E.IMPACT_CRITICAL and (not err.step_id or err.step_id in e.reset_steps):
            # What ended the last run is being retried; a step's errors are recovered (LOW) once
            # the step succeeds, as for any retry.
            err.recovery_action, err.impact = "rerun", E.IMPACT_MEDIUM


def _finish(state: ExecutionState, status: execution_pb2.ExecutionState) -> None:
    state.status = status
    state.end_time = state.current_time
    state.paused_at = None
    for run in state.steps.values():
        if run.phase not in DONE:
            run.report = None
            run.phase = Phase.SKIPPED
            run.skip_cause = E.SKIP_CAUSE_EXECUTION_ENDED
            run.due = None
            run.wait = None
            run.end_time = run.end_time or (state.current_time if run.start_time else None)


def _on_completed(state: ExecutionState, event: Event) -> None:
    _finish(state, E.EXECUTION_STATE_COMPLETED)


def _on_failed(state: ExecutionState, event: Event) -> None:
    e = event.execution_failed
    state.failure_reason = e.reason
    state.end_cause = e.cause
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


def _on_cancelled(state: ExecutionState, event: Event) -> None:
    e = event.execution_cancelled
    state.failure_reason = f"cancelled: {e.reason}" if e.reason else "cancelled"
    state.end_cause = e.cause or E.END_CAUSE_CANCELLED
    _finish(state, E.EXECUTION_STATE_CANCELLED)


def _on_callback(state: ExecutionState, event: Event, kind: str) -> None:
    report = state.callback
    if kind == "callback_scheduled":
        e = event.callback_scheduled
        report = E.CallbackReport(state=E.CALLBACK_STATE_PENDING, delivery_id=e.delivery_id, deadline=e.deadline)
        state.callbacks_owed.add(e.delivery_id)
    else:
        e = getattr(event, kind)
        if e.delivery_id not in state.callbacks_owed:
            raise FoldError(f"execution {state.execution_id}: {kind} of {e.delivery_id!r}, which is not pending")
        state.callbacks_owed.discard(e.delivery_id)
        if report is None or report.delivery_id != e.delivery_id:
            # An earlier run's callback, settled while a rerun runs or after it ended: its
            # outcome is in the history; the report is the latest run's.
            state.last_sequence = event.sequence
            state.storage_bytes += event.ByteSize()
            return
        report = E.CallbackReport(state=report.state, delivery_id=report.delivery_id, deadline=report.deadline)
        delivered = kind == "callback_delivered"
        report.state = E.CALLBACK_STATE_DELIVERED if delivered else E.CALLBACK_STATE_FAILED
        report.attempts = e.attempts
        report.detail = e.detail
    state.callback = report
    state.last_sequence = event.sequence
    state.storage_bytes += event.ByteSize()


_EXECUTION_EVENTS: dict[str, Callable[[ExecutionState, Event], None]] = {
    "execution_unwinding": _on_unwinding,
    "execution_paused": _on_paused,
    "execution_resumed": _on_resumed,
    "execution_completed": _on_completed,
    "execution_failed": _on_failed,
    "execution_cancelled": _on_cancelled,
    "execution_rerun": _on_rerun,
}
