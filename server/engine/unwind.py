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
"""

from __future__ import annotations

import logging

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import any_pb2

from server.engine._decider import DeciderBase, Launch, expression_error
from server.engine.model import Step
from server.engine.ports import AgentCall, AgentCallError, AgentReply
from server.engine.state import ExecutionState, Phase, StepRun, Unwinding

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
        return run.phase in (Phase.COMPLETED, Phase.IN_FLIGHT) or escalated or run.in_doubt

    def compensate(self) -> None:
        """Rule 4: one compensation at a time, then the end."""
        state, plan = self.state, self.plan
        while not state.terminal:
            pending: list[tuple[int, int, str]] = []
            for index, sid in enumerate(plan.order):
                run = state.steps[sid]
                if plan.steps[sid].compensation is None:
                    continue
                if run.phase == Phase.IN_FLIGHT or (run.compensation is not None and run.compensation.in_flight):
                    return  # wait for the call's outcome
                comp = run.compensation
                if comp is not None and comp.state not in (E.COMPENSATION_STATE_PENDING, E.COMPENSATION_STATE_RUNNING):
                    continue  # settled
                if comp is not None and comp.state == E.COMPENSATION_STATE_RUNNING:
                    pending.append((2**62, index, sid))  # a retry is due first
                elif run.phase == Phase.COMPLETED:
                    pending.append((run.completed_at, index, sid))
                elif run.in_doubt or run.probes:
                    pending.append((2**61, index, sid))  # an effect that may have happened last
            if not pending:
                self.end_unwinding()
                return
            _, _, sid = max(pending)
            if not self.compensate_step(plan.steps[sid], state.steps[sid]):
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
        if comp is not None and comp.due is not None and comp.due > self.now:
            return False
        attempt = (comp.attempts if comp is not None else 0) + 1
        call = spec.call
        started = E.CompensationStarted(
            step_id=step.step_id,
            attempt=attempt,
            agent=call.agent,
            operation=call.operation,
            idempotency_key=f"{self.key_prefix()}/{step.step_id}/compensate",
        )
        self.record("compensation_started", started)
        return self.launch_compensation(step, run, attempt)

    def launch_compensation(self, step: Step, run: StepRun, attempt: int) -> bool:
        spec = step.compensation
        if spec is None:
            return True
        try:
            payload = self.payload(spec.call)
        except Exception as exc:
            self.compensation_outcome(step, run, expression_error(f"step {step.step_id} compensation", exc))
            return True
        self.decision.launches.append(
            Launch(
                step_id=step.step_id,
                attempt=attempt,
                call=AgentCall(
                    agent=spec.call.agent,
                    operation=spec.call.operation,
                    payload=payload,
                    timeout=spec.timeout,
                    idempotency_key=f"{self.key_prefix()}/{step.step_id}/compensate",
                    attempt=attempt,
                    # An undo must be tried: it does not wait out a breaker opened by others.
                    use_breaker=False,
                ),
                compensation=True,
            )
        )
        return False

    def compensation_outcome(self, step: Step, run: StepRun, result: AgentReply | AgentCallError) -> None:
        spec = step.compensation
        comp = run.compensation
        if spec is None or comp is None:
            return
        if isinstance(result, AgentReply):
            output = any_pb2.Any()
            output.Pack(result.output)
            succeeded = E.CompensationSucceeded(step_id=step.step_id, attempt=comp.attempts, output=output)
            self.record("compensation_succeeded", succeeded)
            return
        retry = result.retryable and comp.attempts <= spec.retries
        failed = E.CompensationAttemptFailed(
            step_id=step.step_id,
            attempt=comp.attempts,
            error_type=result.error_type,
            error_message=result.message,
        )
        if retry:
            failed.retry_at.CopyFrom(self.at(self.plan.retry.backoff(comp.attempts, self.rng())))
        self.record("compensation_attempt_failed", failed)
        if not retry:
            reason = (
                f"compensation {spec.call.agent}.{spec.call.operation} failed after {comp.attempts} attempts: "
                f"{result.error_type}: {result.message}; the step's effect may remain"
            )
            settled = E.CompensationSettled(step_id=step.step_id, state=E.COMPENSATION_STATE_FAILED, reason=reason)
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


def compensation_summary(state: ExecutionState) -> list[str]:
    """One line per compensation that ran in this run (rerun.py, rule 5), in the order they ran."""
    runs = sorted(
        (r for r in state.steps.values() if r.compensation is not None and r.compensation.order > state.scope_start),
        key=lambda r: r.compensation.order,  # type: ignore[union-attr]
    )
    lines = []
    for run in runs:
        comp = run.compensation
        if comp is None:
            continue
        if comp.state == E.COMPENSATION_STATE_SUCCEEDED:
            lines.append(f"{run.step_id}: undone by {comp.agent}.{comp.operation}")
        elif comp.state == E.COMPENSATION_STATE_NOT_NEEDED:
            lines.append(f"{run.step_id}: nothing to undo ({comp.error})")
        else:
            lines.append(f"{run.step_id}: NOT undone: {comp.error}")
    return lines
