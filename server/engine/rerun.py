"""Rerun (redrive): a failed or cancelled execution continues, in the same history, as a new run.

Rules (decide.py's rerun command; the fold's rule 8 applies the event):
1. Only a FAILED or CANCELLED execution is rerun (there is no TIMED_OUT state: a run that hit its
   timeout is FAILED with cause TIMEOUT). Anything else is refused naming the state. A rerun
   whose request_id an earlier rerun of the execution recorded records nothing (a retried
   request) and is answered as done.
2. What runs again (`steps_to_reset`): every step that did not complete (failed, skipped by the
   end, a fallback or degraded mode, never started), and every completed step whose effect the
   previous run's compensation undid (its output describes something no longer true), with
   everything downstream of it; with `from_step`, also that step and everything downstream of
   it. A step skipped because its condition was false stays skipped (the plan working as
   meant), unless it is downstream of from_step. Every other completed step keeps its output
   and is not called again. A step that did not complete runs again even when its earlier call
   may have taken effect (sent without an answer, or settled "effect may remain"): rerunning is
   the client's decision to try again, as with Step Functions' redrive.
3. One `execution_rerun` event records it, with the actor (the audit trail), the reset steps,
   the run number (previous + 1) and the run's deadline: the event's time plus the execution's
   timeout as submitted, so the timeout restarts and a run that timed out can be rerun.
4. The run's calls carry keys of their own, `<execution_id>/run-<n>/<step_id>` (and `/alt`,
   `/compensate` after it), so an agent that dedupes on keys applies a rerun call anew; within a
   run every attempt keeps one key, so a crash mid-run re-issues calls exactly once, as ever.
5. A new compensation scope: compensations that ran before the rerun are not run again (their
   steps are settled, or reset and new); the steps completed by this run are compensated if it
   fails or is cancelled, and the end's compensation summary lists only this run's.
"""

from __future__ import annotations

from datetime import UTC

from baton.v1 import execution_pb2

from server.engine._decider import DeciderBase
from server.engine.inbox import Rerun
from server.engine.model import Plan
from server.engine.state import RERUNNABLE, ExecutionState, Phase

E = execution_pb2


class Rerunner(DeciderBase):
    """The rerun command, as part of the decider."""

    def rerun(self, item: Rerun) -> str | None:
        """Records the rerun (rules 1-3); returns why it is refused, or None."""
        state = self.state
        if item.request_id and item.request_id in state.rerun_requests:
            return None  # rule 1: this request was recorded already
        if state.status not in RERUNNABLE:
            return f"execution {state.execution_id} is {state.state_name}; only a failed or cancelled one can be rerun"
        if item.from_step and item.from_step not in self.plan.steps:
            return f"execution {state.execution_id} has no step {item.from_step!r} to rerun from"
        rerun = E.ExecutionRerun(
            from_step=item.from_step,
            reason=item.reason,
            reset_steps=steps_to_reset(state, item.from_step),
            run=state.run + 1,
            request_id=item.request_id,
        )
        started = state.started
        if started.HasField("deadline") and state.start_time is not None:
            timeout = started.deadline.ToDatetime(tzinfo=UTC) - state.start_time.ToDatetime(tzinfo=UTC)
            rerun.deadline.CopyFrom(self.at(timeout.total_seconds()))
        self.record("execution_rerun", rerun)
        return None


def steps_to_reset(state: ExecutionState, from_step: str = "") -> list[str]:
    """The steps a rerun makes pending again, in plan order (rule 2)."""
    plan = state.plan
    undone: set[str] = set()
    reset: set[str] = set()
    for sid, run in state.steps.items():
        if run.phase == Phase.COMPLETED:
            # A step undone, or a map step with any item undone: its output is no longer true.
            undos = [run.compensation, *(item.compensation for item in run.items or ())]
            if any(comp is not None and comp.state == E.COMPENSATION_STATE_SUCCEEDED for comp in undos):
                undone.add(sid)
        elif not (run.phase == Phase.SKIPPED and run.skip_cause == E.SKIP_CAUSE_CONDITION_FALSE):
            reset.add(sid)
    if from_step:
        undone.add(from_step)
    reset |= downstream(plan, undone)
    return [sid for sid in plan.order if sid in reset]


def downstream(plan: Plan, roots: set[str]) -> set[str]:
    """The roots and every step that depends on one of them, directly or not."""
    found = set(roots)
    for sid in plan.order:  # topological: a step's dependencies come before it
        if any(dependency in found for dependency in plan.steps[sid].dependencies):
            found.add(sid)
    return found
