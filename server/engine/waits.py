"""Waiting for people: approval steps, escalated gates, and the signals that end their wait.

Rules:
1. An approval step that becomes ready resolves its data and waits (`step_waiting`, with its
   timeout); an escalated gate makes its checkpoint wait and tells the user through ui_ux.
2. A signal is checked against the state before it is recorded: the execution must be running
   (not paused, not ending), the step must wait, and an approve payload may only narrow the lists
   the step showed. Input merges into the data; approve completes the step (its data, narrowed,
   is its output); reject unwinds: CANCELLED for an approval, FAILED for an escalated gate.
3. An approval nobody answers acts at its timeout: approve, skip, or fail (unwinding).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import any_pb2, struct_pb2

from server.engine._decider import ESCALATION_NOTICE, DeciderBase, Launch, expression_error
from server.engine.expressions import resolve
from server.engine.inbox import SignalCommand
from server.engine.model import Step
from server.engine.ports import AgentCall
from server.engine.state import Phase, StepRun, Unwinding

E = execution_pb2
P = plan_pb2
logger = logging.getLogger(__name__)


class Waiter(DeciderBase):
    """Approvals, escalations and signals, as part of the decider."""

    def signal(self, item: SignalCommand) -> str | None:
        state = self.state
        if state.status == E.EXECUTION_STATE_PAUSED:
            return f"execution {state.execution_id} is paused; resume it first"
        if state.status not in (E.EXECUTION_STATE_QUEUED, E.EXECUTION_STATE_RUNNING):
            return f"execution {state.execution_id} is {state.state_name}"
        if item.signal not in (E.SIGNAL_APPROVE, E.SIGNAL_REJECT, E.SIGNAL_INPUT):
            return f"signal: {item.signal} is not approve, reject or input"
        waiting = [sid for sid in self.plan.order if state.steps[sid].phase == Phase.WAITING]
        if item.step_id:
            run = state.steps.get(item.step_id)
            if run is None:
                return f"step_id: execution {state.execution_id} has no step {item.step_id!r}"
            if run.phase != Phase.WAITING:
                return f"step {item.step_id} is not waiting (it is {run.phase.value})"
        elif not waiting:
            return f"no step of execution {state.execution_id} waits for a signal"
        elif len(waiting) > 1:
            return f"steps {', '.join(waiting)} wait; name one with step_id"
        else:
            run = state.steps[waiting[0]]
        wait = run.wait
        if wait is None:  # WAITING always has one
            return f"step {run.step_id} waits for nothing"
        if item.signal == E.SIGNAL_APPROVE and wait.kind == E.WAIT_KIND_APPROVAL:
            refusal = _narrowing_refusal(wait.data, item.payload)
            if refusal is not None:
                return refusal
        payload = struct_pb2.Struct()
        payload.update(item.payload)
        self.record(
            "signal_received",
            E.SignalReceived(step_id=run.step_id, signal=item.signal, payload=payload, reason=item.reason),  # type: ignore[arg-type]
        )
        return None

    def start_waiting(self, step: Step, run: StepRun) -> None:
        approval = step.approval
        if approval is None:
            return
        try:
            data = resolve(approval.data, self.context())
        except Exception as exc:
            self.exhausted(step, run, expression_error(f"approval {step.step_id} data", exc))
            return
        waiting = E.StepWaiting(
            step_id=step.step_id,
            kind=E.WAIT_KIND_APPROVAL,
            prompt=approval.prompt,
            timeout_at=self.at(approval.timeout),
        )
        waiting.data.update(data)
        self.record("step_waiting", waiting)

    def escalate(self, step: Step, gate_id: str, score: float, details: Sequence[str]) -> None:
        """A gate escalated: the checkpoint waits for a person, who is told through ui_ux."""
        prompt = (
            f"Quality gate {gate_id} after step {step.name} scored {score:.1f}. "
            "Approve to go on with this result, or reject to stop."
        )
        waiting = E.StepWaiting(step_id=step.step_id, kind=E.WAIT_KIND_ESCALATION, gate_id=gate_id, prompt=prompt)
        waiting.data.update({"gate_id": gate_id, "score": score, "details": list(details)})
        self.record("step_waiting", waiting)
        key = f"{self.key_prefix()}/{step.step_id}/{ESCALATION_NOTICE}/{gate_id}"
        self.decision.launches.append(
            Launch(
                step_id=step.step_id,
                attempt=0,
                call=AgentCall(
                    agent="ui_ux",
                    operation="Notify",
                    payload={
                        "user_id": self.state.user_id,
                        "channel": "in_app",
                        "title": "Your decision is needed",
                        "message": prompt,
                        "data": {"execution_id": self.state.execution_id, "step_id": step.step_id, "gate_id": gate_id},
                    },
                    timeout=5.0,
                    idempotency_key=key,
                    use_breaker=False,
                ),
                notice=True,
            )
        )

    def check_wait(self, step: Step, run: StepRun) -> None:
        """Acts on a waiting step that was rejected or whose time is up."""
        wait = run.wait
        if wait is None:
            return
        if wait.rejected:
            because = f": {wait.reason}" if wait.reason else ""
            if wait.kind == E.WAIT_KIND_APPROVAL:
                reason = f"approval {step.step_id} rejected{because}"
                self.unwind(Unwinding(E.EXECUTION_STATE_CANCELLED, E.END_CAUSE_REJECTED, reason, step_id=step.step_id))
            else:
                reason = f"quality gate {wait.gate_id} escalated and rejected{because}"
                self.unwind(
                    Unwinding(
                        E.EXECUTION_STATE_FAILED,
                        E.END_CAUSE_QUALITY_GATE,
                        reason,
                        step_id=step.step_id,
                        error_type="QUALITY_GATE",
                    )
                )
            return
        if wait.timeout_at is None or self.now < wait.timeout_at or step.approval is None:
            return
        action = step.approval.on_timeout
        if action == P.APPROVAL_TIMEOUT_ACTION_APPROVE:
            output = struct_pb2.Struct()
            output.update(wait.data)
            packed = any_pb2.Any()
            packed.Pack(output)
            self.record("step_succeeded", E.StepSucceeded(step_id=step.step_id, attempt=0, output=packed))
        elif action == P.APPROVAL_TIMEOUT_ACTION_SKIP:
            self.skip(step.step_id, E.SKIP_CAUSE_APPROVAL_TIMEOUT, "nobody answered the approval in time")
        else:
            message = "nobody answered the approval in time"
            failed = E.StepFailed(step_id=step.step_id, error_type="APPROVAL_TIMEOUT", error_message=message)
            failed.fallback_action = P.FALLBACK_ACTION_FAIL
            self.record("step_failed", failed)
            self.unwind(
                Unwinding(
                    E.EXECUTION_STATE_FAILED,
                    E.END_CAUSE_APPROVAL_TIMEOUT,
                    f"approval {step.step_id} timed out",
                    step_id=step.step_id,
                    error_type="APPROVAL_TIMEOUT",
                )
            )


def _narrowing_refusal(shown: Mapping[str, Any], payload: Mapping[str, Any]) -> str | None:
    """Why an approve payload does not narrow what was shown (None when it does)."""
    for key, value in payload.items():
        if key not in shown:
            return f"payload.{key}: the step shows no {key!r}; an approval may only narrow what it shows"
        original = shown[key]
        if not isinstance(original, list):
            return f"payload.{key}: only lists can be narrowed"
        if not isinstance(value, list) or not value:
            return f"payload.{key}: must be a non-empty list (reject the step to approve nothing)"
        for item in value:
            if item not in original:
                return f"payload.{key}: {item!r} was not among those shown"
    return None
