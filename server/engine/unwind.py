"""Unwinding: the one road to a failed or cancelled end, and the compensation (saga) it runs.

Rules (decide.py's rules 3 and 4, in full):
1. `unwind` is the only way to start ending an execution other than completing it. When some
   step that declares a compensation has completed, is in flight or is in doubt, it records
   `execution_unwinding` (status COMPENSATING); otherwise it records the end at once.
2. While unwinding, no step starts but probes; forward calls in flight of steps with a
   compensation are waited for (their outcomes recorded, their gates not evaluated).
3. A step in doubt (a call was sent and no answer tells whether it took effect) is probed: its own
   call again, under its own key, so the agent answers with the original result if it applied.
   A refusal settles it NOT_NEEDED; probes that keep failing settle it FAILED ("effect may remain").
4. Compensations run one at a time, latest completion first, each retried with the plan's backoff
   up to its retries and never through a breaker, and each is settled: SUCCEEDED, FAILED or
   NOT_NEEDED. None is dropped; `end` lists every one in the terminal event.
5. A map step's items are compensated one by one, each as a step would be (its own key
   `execution/step/<item>/compensate`, `item`, `item_index` and `item_output` in its context):
   items in flight are waited for; an item whose call may have taken effect without a reply is
   probed under its own key (rule 3); a succeeded item is compensated.
"""

from __future__ import annotations

import logging

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import any_pb2

from server.engine._decider import DeciderBase, Launch, expression_error
from server.engine.model import Step
from server.engine.ports import AgentCall, AgentCallError, AgentReply
from server.engine.state import (
    CompensationRun,
    ExecutionState,
    ItemPhase,
    ItemRun,
    Phase,
    StepRun,
    Unwinding,
    compensations,
)

E = execution_pb2
P = plan_pb2
logger = logging.getLogger(__name__)


class Unwinder(DeciderBase):
    """Unwinding and compensation, as part of the decider."""

    def unwind(self, end: Unwinding) -> None:
        """The one road to a failed or cancelled end (rule 3)."""
        state = self.state
        if state.terminal or state.unwinding is not None:
            return
        if any(self.needs_compensation(sid) for sid in self.plan.order):
            unwinding = E.ExecutionUnwinding(
                outcome=end.outcome, cause=end.cause, reason=end.reason, step_id=end.step_id, error_type=end.error_type
            )
            self.record("execution_unwinding", unwinding)
            self.compensate()
        else:
            self.end(end)

    def needs_compensation(self, step_id: str) -> bool:
        """Whether the step has an effect to undo, or one whose fate is to be found out."""
        run = self.state.steps[step_id]
        if self.plan.steps[step_id].compensation is None:
            return False
        escalated = run.wait is not None and run.wait.kind == E.WAIT_KIND_ESCALATION
        if run.items is not None:
            return any(_item_needs_compensation(item) for item in run.items)
        return run.phase in (Phase.COMPLETED, Phase.IN_FLIGHT) or escalated or run.in_doubt

    def compensate(self) -> None:
        """Rule 4: one compensation at a time, then the end."""
        state, plan = self.state, self.plan
        while not state.terminal:
            pending: list[tuple[int, int, str, int]] = []
            for index, sid in enumerate(plan.order):
                run = state.steps[sid]
                if plan.steps[sid].compensation is None:
                    continue
                if run.items is not None:
                    for item in run.items:
                        if item.phase == ItemPhase.IN_FLIGHT or (
                            item.compensation is not None and item.compensation.in_flight
                        ):
                            return  # wait for the call's outcome
                        rank = _item_rank(item)
                        if rank is not None:
                            pending.append((rank, index, sid, item.index))
                    continue
                if run.phase == Phase.IN_FLIGHT or (run.compensation is not None and run.compensation.in_flight):
                    return  # wait for the call's outcome
                comp = run.compensation
                if comp is not None and comp.state not in (E.COMPENSATION_STATE_PENDING, E.COMPENSATION_STATE_RUNNING):
                    continue  # settled
                if comp is not None and comp.state == E.COMPENSATION_STATE_RUNNING:
                    pending.append((2**62, index, sid, -1))  # a retry is due first
                elif run.phase == Phase.COMPLETED:
                    pending.append((run.completed_at, index, sid, -1))
                elif run.in_doubt or run.probes:
                    pending.append((2**61, index, sid, -1))  # an effect that may have happened last
            if not pending:
                self.end_unwinding()
                return
            _, _, sid, item_index = max(pending)
            run = state.steps[sid]
            if item_index >= 0 and run.items is not None:
                settled = self.compensate_item(plan.steps[sid], run, run.items[item_index])
            else:
                settled = self.compensate_step(plan.steps[sid], run)
            if not settled:
                return

    def compensate_step(self, step: Step, run: StepRun) -> bool:
        """Moves one step's compensation on; returns True when it settled at once (go on to the next)."""
        spec = step.compensation
        if spec is None:
            return True
        comp = run.compensation
        if run.phase != Phase.COMPLETED:
            if run.in_doubt and run.probes <= spec.retries:
                if run.phase == Phase.BACKOFF and run.due is not None and run.due > self.now:
                    return False
                self.start_attempt(step, run)  # a probe: same call, same key
                return False
            reason = (
                f"the outcome of step {step.step_id}'s call is unknown after {run.probes} probes; its effect may remain"
                if run.in_doubt
                else f"step {step.step_id}'s call was refused, so it had no effect to undo"
            )
            state = E.COMPENSATION_STATE_FAILED if run.in_doubt else E.COMPENSATION_STATE_NOT_NEEDED
            self.record("compensation_settled", E.CompensationSettled(step_id=step.step_id, state=state, reason=reason))
            return True
        return self.start_compensation(step, run, comp, None)

    def compensate_item(self, step: Step, run: StepRun, item: ItemRun) -> bool:
        """Rule 5: moves one item's compensation on; True when it settled at once."""
        spec = step.compensation
        if spec is None:
            return True
        if item.phase != ItemPhase.COMPLETED:
            if item.in_doubt and item.probes <= spec.retries:
                if item.phase == ItemPhase.BACKOFF and item.due is not None and item.due > self.now:
                    return False
                self.start_item(step, run, item)  # a probe: same call, same key
                return False
            name = f"item {item.index} of step {step.step_id}"
            reason = (
                f"the outcome of {name}'s call is unknown after {item.probes} probes; its effect may remain"
                if item.in_doubt
                else f"{name}'s call was refused, so it had no effect to undo"
            )
            state = E.COMPENSATION_STATE_FAILED if item.in_doubt else E.COMPENSATION_STATE_NOT_NEEDED
            settled = E.CompensationSettled(step_id=step.step_id, state=state, reason=reason, item=item.index)
            self.record("compensation_settled", settled)
            return True
        return self.start_compensation(step, run, item.compensation, item)

    def start_compensation(self, step: Step, run: StepRun, comp: CompensationRun | None, item: ItemRun | None) -> bool:
        """Starts the next attempt of a step's (or an item's) compensation unless a retry is not due yet."""
        spec = step.compensation
        if spec is None:
            return True
        if comp is not None and comp.due is not None and comp.due > self.now:
            return False
        attempt = (comp.attempts if comp is not None else 0) + 1
        call = spec.call
        started = E.CompensationStarted(
            step_id=step.step_id,
            attempt=attempt,
            agent=call.agent,
            operation=call.operation,
            idempotency_key=self.compensation_key(step, item),
        )
        if item is not None:
            started.item = item.index
        self.record("compensation_started", started)
        return self.launch_compensation(step, run, attempt, item)

    def compensation_key(self, step: Step, item: ItemRun | None) -> str:
        """The idempotency key of a compensation: the same for every attempt."""
        own = f"{self.key_prefix()}/{step.step_id}"
        return f"{own}/compensate" if item is None else f"{own}/{item.index}/compensate"

    def launch_compensation(self, step: Step, run: StepRun, attempt: int, item: ItemRun | None = None) -> bool:
        spec = step.compensation
        if spec is None:
            return True
        try:
            context = None
            if item is not None:
                context = {**self.item_context(step, item.index), "item_output": item.output_json()}
            payload = self.payload(spec.call, context)
        except Exception as exc:
            self.compensation_outcome(step, run, expression_error(f"step {step.step_id} compensation", exc), item)
            return True
        self.decision.launches.append(
            Launch(
                step_id=step.step_id,
                attempt=attempt,
                item=item.index if item is not None else -1,
                call=AgentCall(
                    agent=spec.call.agent,
                    operation=spec.call.operation,
                    payload=payload,
                    timeout=spec.timeout,
                    idempotency_key=self.compensation_key(step, item),
                    attempt=attempt,
                    # An undo must be tried: it does not wait out a breaker opened by others.
                    use_breaker=False,
                ),
                compensation=True,
            )
        )
        return False

    def compensation_outcome(
        self, step: Step, run: StepRun, result: AgentReply | AgentCallError, item: ItemRun | None = None
    ) -> None:
        spec = step.compensation
        comp = run.compensation if item is None else item.compensation
        if spec is None or comp is None:
            return
        if isinstance(result, AgentReply):
            output = any_pb2.Any()
            output.Pack(result.output)
            succeeded = E.CompensationSucceeded(step_id=step.step_id, attempt=comp.attempts, output=output)
            if item is not None:
                succeeded.item = item.index
            self.record("compensation_succeeded", succeeded)
            return
        retry = result.retryable and comp.attempts <= spec.retries
        failed = E.CompensationAttemptFailed(
            step_id=step.step_id,
            attempt=comp.attempts,
            error_type=result.error_type,
            error_message=result.message,
        )
        if item is not None:
            failed.item = item.index
        if retry:
            failed.retry_at.CopyFrom(self.at(self.plan.retry.backoff(comp.attempts, self.rng())))
        self.record("compensation_attempt_failed", failed)
        if not retry:
            reason = (
                f"compensation {spec.call.agent}.{spec.call.operation} failed after {comp.attempts} attempts: "
                f"{result.error_type}: {result.message}; the step's effect may remain"
            )
            settled = E.CompensationSettled(step_id=step.step_id, state=E.COMPENSATION_STATE_FAILED, reason=reason)
            if item is not None:
                settled.item = item.index
            self.record("compensation_settled", settled)

    def end_unwinding(self) -> None:
        if self.state.unwinding is not None:
            self.end(self.state.unwinding)

    def end(self, end: Unwinding) -> None:
        """Records the end of a failed or cancelled execution (the only place that does)."""
        summary = compensation_summary(self.state)
        if end.outcome == E.EXECUTION_STATE_CANCELLED:
            cancelled = E.ExecutionCancelled(reason=end.reason, cause=end.cause, compensation_summary=summary)
            self.record("execution_cancelled", cancelled)
        else:
            failed = E.ExecutionFailed(
                reason=end.reason,
                step_id=end.step_id,
                error_type=end.error_type,
                cause=end.cause,
                compensation_summary=summary,
            )
            self.record("execution_failed", failed)


def _item_needs_compensation(item: ItemRun) -> bool:
    return item.phase in (ItemPhase.COMPLETED, ItemPhase.IN_FLIGHT) or item.in_doubt


def _item_rank(item: ItemRun) -> int | None:
    """Where an item's compensation comes in the latest-first order; None when it needs none (any more)."""
    comp = item.compensation
    if comp is not None and comp.state not in (E.COMPENSATION_STATE_PENDING, E.COMPENSATION_STATE_RUNNING):
        return None  # settled
    if comp is not None and comp.state == E.COMPENSATION_STATE_RUNNING:
        return 2**62  # a retry is due first
    if item.phase == ItemPhase.COMPLETED:
        return item.completed_at
    return 2**61 if item.in_doubt or item.probes else None  # an effect that may have happened last


def compensation_summary(state: ExecutionState) -> list[str]:
    """One line per compensation that ran in this run (rerun.py, rule 5; of a step, or of a map
    step's item), in the order they ran."""
    lines = []
    for step_id, item, comp in compensations(state):
        if comp.order <= state.scope_start:
            continue  # an earlier run's
        name = step_id if item < 0 else f"{step_id} item {item}"
        if comp.state == E.COMPENSATION_STATE_SUCCEEDED:
            lines.append(f"{name}: undone by {comp.agent}.{comp.operation}")
        elif comp.state == E.COMPENSATION_STATE_NOT_NEEDED:
            lines.append(f"{name}: nothing to undo ({comp.error})")
        else:
            lines.append(f"{name}: NOT undone: {comp.error}")
    return lines
