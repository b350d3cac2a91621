"""Decisions as a pure function: `decide(state, now, inbox)` → the events to record and the calls to make.

Rules (every decision of the engine lives here; the runner only performs them):
1. `decide` reads the state, the time and the inbox it is given and nothing else: no I/O, no
   clock, no randomness but the injected `rng`. It applies each event it makes to the state as it
   makes it (`_Decider.record`, one call), so afterwards the state is the fold of the history
   plus the returned events.
2. Commands are checked against the state before anything is recorded; a refused command is
   answered with the reason (`Decision.refused`) and records nothing. The first event a
   client's command records carries its actor (the audit trail); nothing after it does.
3. **One unwind path.** Every road to an end other than completion (a step failing with no
   fallback left, a gate that stops or that a person rejects, the execution's timeout, a cancel,
   an approval rejected or timed out, the engine giving up) goes through `_Decider.unwind`. It
   records `execution_unwinding` when some completed (or in-doubt) step declares a compensation,
   and the end at once otherwise. Only `_Decider.end` records `execution_failed` or
   `execution_cancelled`.
4. While unwinding: forward calls in flight of steps that declare a compensation finish first;
   a step in doubt (a call sent, its effect unknown) is probed with its own call under its own
   key (the agent answers a repeat with the original result); then compensations run one at a
   time, in reverse order of completion, each retried with the plan's backoff and finally
   settled, never dropped; then the end is recorded with one line per compensation.
5. Launches carry fully built calls (payload resolved, key, attempt, timeout). Any exception
   from evaluating an expression is the step's recorded, non-retryable failure
   (EXPRESSION_ERROR), never the runner's.
6. Idempotency keys name a step, not an attempt: `execution/step` for every attempt of its own
   call, `…/alt` for its alternative call, `…/compensate` for its compensation, `…/notify-failure`
   (`…/notify-failure/alt`) and `…/escalate/GATE` for notices to the user; a rerun's keys name
   their run too (`execution/run-N/step`, rerun.py).
7. An attempt an open breaker refused (CIRCUIT_OPEN, never sent) waits for the breaker's probe
   time (the refusal's `retry_after`, spread by the jitter) as a `circuit_wait` attempt failure,
   which spends none of the step's retries; at most `max_circuit_waits` times per path, never
   past the deadline, never for an optional step of a degraded plan (skipped at once). A
   launch says whether it is a retry (an earlier attempt on its path was sent and failed), for
   the agent's retry budget.
8. Quality requirements: a response below a step's `quality_requirements` is recorded as a
   LOW_QUALITY error by the fold (the execution degraded); with `fail_below_quality` it fails
   the attempt instead, not retried, and the step's fallback applies. A step with
   `notification_required` whose call path fails tells the user through ui_ux: a notice, sent
   once the step_failed event is durable, whose outcome nothing waits for (at most once: a crash
   between the commit and the send loses it).
9. The decision that ends an execution with a callback_url also records `callback_scheduled`,
   after the terminal event, so the end and its callback are one commit (callback.py).
10. A map step (for_each) runs its items by maps.py's rules: it starts where an ordinary step
   makes its first attempt, is driven each round while MAPPING, and counts as one step
   toward the plan's concurrency.

Past the house's ~500 lines because rules 1-10 are one decision function's: the forward path,
outcomes and commands stay here, and what grew a life of its own (unwinding, waiting for people,
reruns, map steps) lives in its mixin module.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

from baton.v1 import execution_pb2, plan_pb2
from google.protobuf import any_pb2

from server.engine._decider import FAILURE_NOTICE, expression_error
from server.engine._decider import Decision as Decision
from server.engine._decider import Launch as Launch
from server.engine.callback import DEFAULT_CALLBACK_DEADLINE, scheduled_callback
from server.engine.expressions import evaluate
from server.engine.gates import evaluate_gate
from server.engine.inbox import (
    Cancel,
    ClientCommand,
    Command,
    InboxItem,
    InternalFailure,
    Outcome,
    Pause,
    Rerun,
    Resume,
)
from server.engine.maps import Mapper
from server.engine.model import LOW_QUALITY, Step
from server.engine.ports import AgentCall, AgentCallError, AgentReply
from server.engine.rerun import Rerunner
from server.engine.state import NO_DEADLINE, ExecutionState, ItemPhase, Phase, StepRun, Unwinding
from server.engine.unwind import Unwinder
from server.engine.waits import Waiter
from server.quoting import quote

E = execution_pb2
P = plan_pb2
logger = logging.getLogger(__name__)

#: Errors that mean the agent could not serve, as opposed to a bad request.
_WHAT_FOLLOWS: dict[int, str] = {
    P.FALLBACK_ACTION_SKIP: "it was skipped and the rest of your journey goes on",
    P.FALLBACK_ACTION_ALTERNATIVE: "another way is being tried",
}
"""A failure notice's words for what follows the failed step, by FallbackAction."""

UNAVAILABILITY = frozenset(
    {
        "UNAVAILABLE",
        "CIRCUIT_OPEN",
        "RETRY_BUDGET_EXHAUSTED",
        "AGENT_CAPACITY",
        "DEADLINE_EXCEEDED",
        "RESOURCE_EXHAUSTED",
    }
)


def decide(
    state: ExecutionState,
    now: datetime,
    inbox: Sequence[InboxItem] = (),
    *,
    rng: Callable[[], float],
    relaunch: bool = False,
    callback_deadline: float = DEFAULT_CALLBACK_DEADLINE,
) -> Decision:
    """Decides what happens next (rules at the top of this module).

    Args:
        state: the execution's folded state; updated in place by the events decided.
        now: the current time.
        inbox: outcomes of calls and commands, in arrival order.
        rng: numbers in [0, 1) that place retry jitter.
        relaunch: the runner is new and no call is live: issue every in-flight attempt again.
        callback_deadline: seconds after the end during which its callback is retried (rule 8).
    """
    ended_before = state.terminal
    decider = _Decider(state, now, rng)
    decider.run(inbox, relaunch)
    if state.terminal and not ended_before and state.started.callback_url:
        url = state.started.callback_url
        decider.record(
            "callback_scheduled", scheduled_callback(state.execution_id, url, now, callback_deadline, state.run)
        )
    return decider.decision


class _Decider(Unwinder, Waiter, Rerunner, Mapper):
    """The decider: going forward, outcomes and commands (unwinding, waiting, reruns and map steps
    in their modules)."""

    # ---- the round --------------------------------------------------------------------------

    def run(self, inbox: Sequence[InboxItem], relaunch: bool) -> None:
        state = self.state
        if relaunch and not state.terminal:
            self.relaunch()
        for index, item in enumerate(inbox):
            if isinstance(item, Outcome):
                if not state.terminal:
                    self.outcome(item)
                continue
            self.actor = item.actor if isinstance(item, ClientCommand) else None
            refusal = self.command(item)
            self.actor = None  # a command that recorded nothing leaves nothing to stamp
            if refusal is not None:
                self.decision.refused[index] = refusal
        if state.terminal:
            return
        if state.unwinding is not None:
            self.compensate()
        else:
            self.advance()
        self.decision.wake_at = None if state.terminal else self.next_wake()

    def relaunch(self) -> None:
        """Issues again every attempt that was started and has no recorded outcome (same key)."""
        for sid in self.plan.order:
            run = self.state.steps[sid]
            step = self.plan.steps[sid]
            if run.phase == Phase.IN_FLIGHT:
                self.launch_step(step, run, run.attempts)
            comp = run.compensation
            if comp is not None and comp.in_flight and step.compensation is not None:
                self.launch_compensation(step, run, comp.attempts)
            for item in run.items or ():
                # Only the items without a recorded outcome are called again (same keys).
                if item.phase == ItemPhase.IN_FLIGHT:
                    self.launch_item(step, run, item)
                if item.compensation is not None and item.compensation.in_flight and step.compensation is not None:
                    self.launch_compensation(step, run, item.compensation.attempts, item)

    # ---- commands ---------------------------------------------------------------------------

    def command(self, item: Command) -> str | None:
        state = self.state
        if isinstance(item, Cancel):
            if not state.terminal and state.unwinding is None:
                self.unwind(Unwinding(E.EXECUTION_STATE_CANCELLED, E.END_CAUSE_CANCELLED, item.reason))
            return None  # cancelling what is ending or ended does nothing
        if isinstance(item, InternalFailure):
            if not state.terminal and state.unwinding is None:
                self.unwind(
                    Unwinding(E.EXECUTION_STATE_FAILED, E.END_CAUSE_INTERNAL_ERROR, item.reason, error_type="INTERNAL")
                )
            return None
        if isinstance(item, Rerun):
            return self.rerun(item)
        where = f"execution {state.execution_id} is {state.state_name}"
        if isinstance(item, Pause):
            if state.status not in (E.EXECUTION_STATE_QUEUED, E.EXECUTION_STATE_RUNNING):
                return where
            self.record("execution_paused", E.ExecutionPaused(reason=item.reason))
            return None
        if isinstance(item, Resume):
            if state.status != E.EXECUTION_STATE_PAUSED or state.paused_at is None:
                return f"{where}, not paused"
            resumed = E.ExecutionResumed(reason=item.reason)
            if state.deadline != NO_DEADLINE:
                resumed.deadline.FromDatetime(state.deadline + (self.now - state.paused_at))
            self.record("execution_resumed", resumed)
            return None
        return self.signal(item)

    # ---- going forward ----------------------------------------------------------------------

    def advance(self) -> None:
        state, plan, now = self.state, self.plan, self.now
        if state.status == E.EXECUTION_STATE_PAUSED:
            self.complete_if_done()  # calls in flight may have finished the plan
            return
        if now >= state.deadline:
            self.unwind(
                Unwinding(E.EXECUTION_STATE_FAILED, E.END_CAUSE_TIMEOUT, "execution timed out", error_type="TIMEOUT")
            )
            return
        for sid in plan.order:
            run = state.steps[sid]
            if run.phase == Phase.WAITING:
                self.check_wait(plan.steps[sid], run)
                if state.unwinding is not None:
                    return
        occupied = sum(1 for r in state.steps.values() if r.phase in (Phase.IN_FLIGHT, Phase.BACKOFF, Phase.MAPPING))
        limit = plan.max_concurrency
        for sid in plan.order:
            if state.unwinding is not None or state.terminal:
                return
            run = state.steps[sid]
            step = plan.steps[sid]
            if run.phase == Phase.BACKOFF:
                if run.due is None or run.due <= now:
                    self.start_attempt(step, run)
                continue
            if run.phase == Phase.MAPPING:
                self.drive_map(step, run)
                continue
            if run.phase == Phase.DELAYED:
                if run.due is not None and run.due <= now and not (limit and occupied >= limit):
                    self.start_attempt(step, run)
                    occupied += 1
                continue
            if run.phase != Phase.PENDING or any(not state.steps[d].done for d in step.dependencies):
                continue
            if limit and occupied >= limit:
                continue
            if step.scheduling == P.SCHEDULING_CONDITIONAL:
                holds = self.condition(step)
                if holds is None:
                    continue  # the step failed on its condition (recorded)
                if not holds:
                    skipped = E.StepSkipped(step_id=sid, reason=f"condition {step.condition} is false")
                    skipped.cause = E.SKIP_CAUSE_CONDITION_FALSE
                    self.record("step_skipped", skipped)
                    continue
            if step.approval is not None:
                self.start_waiting(step, run)
                continue
            if step.scheduling == P.SCHEDULING_SCHEDULED and step.delay > 0:
                self.record("step_delayed", E.StepDelayed(step_id=sid, start_at=self.at(step.delay)))
                continue
            self.start_attempt(step, run)
            occupied += 1
        self.complete_if_done()

    def complete_if_done(self) -> None:
        state = self.state
        if not state.terminal and state.unwinding is None and all(r.done for r in state.steps.values()):
            self.record("execution_completed", E.ExecutionCompleted())

    def condition(self, step: Step) -> bool | None:
        """The step's condition; None when evaluating it failed (then the step's failure is recorded)."""
        try:
            return bool(evaluate(step.condition, self.context()))
        except Exception as exc:
            run = self.state.steps[step.step_id]
            self.exhausted(step, run, expression_error(f"condition {quote(step.condition)}", exc))
            return None

    def start_attempt(self, step: Step, run: StepRun) -> None:
        if step.map is not None and run.phase in (Phase.PENDING, Phase.DELAYED):
            self.start_map(step, run)
            return
        call = step.call_on(run.on_alternative)
        attempt = run.attempts + 1
        started = E.StepStarted(
            step_id=step.step_id,
            attempt=attempt,
            agent=call.agent,
            operation=call.operation,
            idempotency_key=self.key(step, run),
        )
        if self.debug:
            self.record_request(started.request, lambda: self.payload(call))
        self.record("step_started", started)
        self.launch_step(step, run, attempt)

    def launch_step(self, step: Step, run: StepRun, attempt: int) -> None:
        call = step.call_on(run.on_alternative)
        try:
            payload = self.payload(call)
        except Exception as exc:
            self.attempt_failed(step, run, attempt, expression_error(f"step {step.step_id} inputs", exc))
            return
        self.decision.launches.append(
            Launch(
                step_id=step.step_id,
                attempt=attempt,
                call=AgentCall(
                    agent=call.agent,
                    operation=call.operation,
                    payload=payload,
                    timeout=self.attempt_timeout(step),
                    idempotency_key=self.key(step, run),
                    attempt=attempt,
                    # A probe while unwinding must reach the agent: it does not wait out a breaker.
                    use_breaker=self.plan.retry.use_breaker and self.state.unwinding is None,
                    retry=run.path_attempts > 1,
                ),
            )
        )

    # ---- outcomes ---------------------------------------------------------------------------

    def outcome(self, item: Outcome) -> None:
        run = self.state.steps.get(item.step_id)
        if run is None:
            return
        step = self.plan.steps[item.step_id]
        if item.compensation:
            owner = run.items[item.item] if run.items is not None and 0 <= item.item < len(run.items) else None
            comp = run.compensation if item.item < 0 else owner.compensation if owner is not None else None
            if comp is not None and comp.in_flight and comp.attempts == item.attempt:
                self.compensation_outcome(step, run, item.result, owner)
            return
        if item.item >= 0:
            if run.phase == Phase.MAPPING or self.state.unwinding is not None:
                self.item_outcome(step, run, item.item, item.attempt, item.result)
            return
        if run.phase != Phase.IN_FLIGHT or run.attempts != item.attempt:
            return  # overtaken: a newer attempt, or an escalation's notice
        result = item.result
        if isinstance(result, AgentReply):
            self.succeeded(step, run, item.attempt, result)
        else:
            self.attempt_failed(step, run, item.attempt, result)

    def succeeded(self, step: Step, run: StepRun, attempt: int, reply: AgentReply) -> None:
        if self.state.unwinding is None and step.fail_below_quality and step.below_quality(reply.quality_score):
            miss = AgentCallError(LOW_QUALITY, step.quality_miss(reply.quality_score), retryable=False)
            self.attempt_failed(step, run, attempt, miss)
            return
        output = any_pb2.Any()
        output.Pack(reply.output)
        done = E.StepSucceeded(
            step_id=step.step_id,
            attempt=attempt,
            output=output,
            request_bytes=reply.request_bytes,
            response_bytes=reply.response_bytes,
        )
        done.quality.score = reply.quality_score
        done.quality.metrics.update(reply.quality_metrics)
        self.record("step_succeeded", done)
        self.judge(step, run, reply.quality_score, reply.quality_metrics)

    def judge(self, step: Step, run: StepRun, score: float, metrics: dict[str, float]) -> None:
        """Evaluates the gates of a step that just succeeded, and does what a failed one says."""
        if self.state.unwinding is not None:
            return  # a call that finished while unwinding: its effect is compensated, its gates moot
        for gate in self.plan.gates.get(step.step_id, ()):
            verdict = evaluate_gate(gate, score, metrics)
            action = P.GATE_ACTION_UNSPECIFIED
            if not verdict.passed:
                action = gate.action
                if action == P.GATE_ACTION_RETRY and gate.gate_id in run.gate_retries:
                    action = P.GATE_ACTION_STOP  # the one re-run did not help
            evaluated = E.GateEvaluated(
                gate_id=gate.gate_id,
                checkpoint=gate.checkpoint,
                score=verdict.score,
                passed=verdict.passed,
                action=action,
                details=verdict.details,
            )
            self.record("gate_evaluated", evaluated)
            if action == P.GATE_ACTION_STOP:
                reason = f"quality gate {gate.gate_id} failed after step {gate.checkpoint} (score {verdict.score:.1f})"
                self.unwind(
                    Unwinding(
                        E.EXECUTION_STATE_FAILED,
                        E.END_CAUSE_QUALITY_GATE,
                        reason,
                        step_id=gate.checkpoint,
                        error_type="QUALITY_GATE",
                    )
                )
                return
            if action == P.GATE_ACTION_RETRY:
                return
            if action == P.GATE_ACTION_ESCALATE:
                self.escalate(step, gate.gate_id, verdict.score, verdict.details)
                return

    def attempt_failed(self, step: Step, run: StepRun, attempt: int, error: AgentCallError) -> None:
        unwinding = self.state.unwinding is not None
        if unwinding:
            # A probe (or a call that was in flight when unwinding began): retried only while the
            # step is in doubt, within its compensation's retries.
            spec = step.compensation
            retry = (
                spec is not None
                and error.retryable
                and error.error_type not in ("CIRCUIT_OPEN",)
                and run.probes <= spec.retries
                and run.probes > 0
            )
            wait = self.plan.retry.backoff(max(run.probes, 1), self.rng()) if retry else 0.0
        else:
            circuit_wait = self.circuit_wait(step, run, error)
            if circuit_wait is not None:
                failed = E.StepAttemptFailed(
                    step_id=step.step_id,
                    attempt=attempt,
                    error_type=error.error_type,
                    error_message=error.message,
                    circuit_wait=True,
                )
                failed.retry_at.CopyFrom(self.at(circuit_wait))
                self.record("step_attempt_failed", failed)
                return
            if error.error_type == "CIRCUIT_OPEN" and step.optional and self.plan.degraded_mode:
                retry = False  # degraded mode goes on without the step at once
            else:
                retry = error.retryable and run.path_attempts <= step.retries
            wait = self.plan.retry.backoff(run.path_attempts, self.rng()) if retry else 0.0
        failed = E.StepAttemptFailed(
            step_id=step.step_id,
            attempt=attempt,
            error_type=error.error_type,
            error_message=error.message,
            request_bytes=error.request_bytes,
        )
        if retry:
            failed.retry_at.CopyFrom(self.at(wait))
        self.record("step_attempt_failed", failed)
        if not retry and not unwinding:
            self.exhausted(step, run, error)

    def circuit_wait(self, step: Step, run: StepRun, error: AgentCallError) -> float | None:
        """Seconds the step waits for its agent's open breaker to admit a probe, spending no
        attempt; None when it does not wait (not an open breaker, an optional step of a degraded
        plan, no waits left, or a probe time past the execution's deadline)."""
        policy = self.plan.retry
        if (
            error.error_type != "CIRCUIT_OPEN"
            or not error.retryable
            or (step.optional and self.plan.degraded_mode)
            or run.circuit_waits >= policy.max_circuit_waits
        ):
            return None
        base = error.retry_after if error.retry_after is not None else policy.backoff(1, 0.5)
        # Arrive after the probe time, spread over up to `jitter` of it, so that the executions
        # parked on one breaker do not all come back in the same instant.
        wait = max(base, 0.001) * (1.0 + policy.jitter * self.rng())
        if self.now + timedelta(seconds=wait) >= self.state.deadline:
            return None  # waiting could only end in the execution's timeout
        return wait

    def exhausted(self, step: Step, run: StepRun, error: AgentCallError) -> None:
        """Records that a step's retries are exhausted, and its fallback (and tells the user when
        the step asks for it: rule 8)."""
        action, skip_cause = self.fallback(step, run, error)
        if step.notify_on_failure:
            self.notify_failure(step, run, error, action)
        failed = E.StepFailed(step_id=step.step_id, error_type=error.error_type, error_message=error.message)
        failed.fallback_action = action  # type: ignore[assignment]
        self.record("step_failed", failed)
        if skip_cause == E.SKIP_CAUSE_DEGRADED:
            agent = run.agent or step.call.agent
            self.skip(step.step_id, skip_cause, f"agent {agent} unavailable ({error.error_type})")
        elif skip_cause == E.SKIP_CAUSE_FALLBACK:
            self.skip(step.step_id, skip_cause, f"{error.error_type}: {error.message}")
        elif action == P.FALLBACK_ACTION_FAIL:
            self.unwind(
                Unwinding(
                    E.EXECUTION_STATE_FAILED,
                    E.END_CAUSE_STEP_FAILED,
                    f"step {step.step_id} failed: {error.error_type}: {error.message}",
                    step_id=step.step_id,
                    error_type=error.error_type,
                )
            )

    def fallback(self, step: Step, run: StepRun, error: AgentCallError) -> tuple[int, int]:
        """What follows a step's exhausted retries: its FallbackAction, and the SkipCause when it
        is skipped (SKIP_CAUSE_UNSPECIFIED otherwise)."""
        if step.optional and self.plan.degraded_mode and error.error_type in UNAVAILABILITY:
            return P.FALLBACK_ACTION_SKIP, E.SKIP_CAUSE_DEGRADED
        if step.fallback == P.FALLBACK_ACTION_ALTERNATIVE and step.alternative and not run.on_alternative:
            return P.FALLBACK_ACTION_ALTERNATIVE, E.SKIP_CAUSE_UNSPECIFIED
        if step.fallback == P.FALLBACK_ACTION_SKIP:
            return P.FALLBACK_ACTION_SKIP, E.SKIP_CAUSE_FALLBACK
        return P.FALLBACK_ACTION_FAIL, E.SKIP_CAUSE_UNSPECIFIED

    def notify_failure(self, step: Step, run: StepRun, error: AgentCallError, action: int) -> None:
        """The ui_ux notice of a failed step: once per call path (its own call, its alternative)."""
        then = _WHAT_FOLLOWS.get(action, "your journey stopped here")
        suffix = f"{FAILURE_NOTICE}/alt" if run.on_alternative else FAILURE_NOTICE
        self.notice(
            step,
            suffix,
            f"{step.name} did not succeed",
            f"{step.name} failed ({error.error_type}): {then}.",
            {"error_type": error.error_type, "error_message": error.message[:500]},
        )

    def skip(self, step_id: str, cause: int, reason: str) -> None:
        skipped = E.StepSkipped(step_id=step_id, reason=reason)
        skipped.cause = cause  # type: ignore[assignment]
        self.record("step_skipped", skipped)

    # ---- time -----------------------------------------------------------------------------------

    def next_wake(self) -> datetime | None:
        """The earliest future time at which `decide` has something to do without any input."""
        state, now = self.state, self.now
        if state.status == E.EXECUTION_STATE_PAUSED:
            return None
        times: list[datetime] = []
        unwinding = state.unwinding is not None
        if not unwinding and state.deadline != NO_DEADLINE:
            times.append(state.deadline)
        for sid, run in state.steps.items():
            waits_on_due = run.phase in (Phase.DELAYED, Phase.BACKOFF) and run.due is not None
            if waits_on_due and (not unwinding or self.plan.steps[sid].compensation is not None):
                times.append(run.due)  # type: ignore[arg-type]
            if not unwinding and run.wait is not None and run.wait.timeout_at is not None:
                times.append(run.wait.timeout_at)
            if run.compensation is not None and run.compensation.due is not None:
                times.append(run.compensation.due)
            items, tally = run.items, run.tally
            if items is None or tally is None:
                continue
            # Going forward only a mapping step retries its items; unwinding, one probes them.
            going_on = run.phase == Phase.MAPPING if not unwinding else self.plan.steps[sid].compensation is not None
            if going_on:
                times.extend(due for index in tally.backoff if (due := items[index].due) is not None)
            if unwinding:  # only then do items have compensations
                times.extend(
                    item.compensation.due
                    for item in items
                    if item.compensation is not None and item.compensation.due is not None
                )
        future = [t for t in times if t > now]
        return min(future, default=None)
