"""Renders a folded execution state as the seed's execution_status message."""

from __future__ import annotations

from collections.abc import Iterable

from baton.v1 import execution_pb2
from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2

from server.engine.calls import cost_of
from server.engine.state import ITEM_DONE, ExecutionState, ItemPhase, Phase, StepRun, compensations

E = execution_pb2


def _between(start: timestamp_pb2.Timestamp, end: timestamp_pb2.Timestamp) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(max(end.ToNanoseconds() - start.ToNanoseconds(), 0))
    return d


def _dur(seconds: float) -> duration_pb2.Duration:
    d = duration_pb2.Duration()
    d.FromNanoseconds(int(max(seconds, 0.0) * 1e9))
    return d


def render(state: ExecutionState, *, with_results: bool = True) -> execution_pb2.ExecutionStatus:
    """Returns the ExecutionStatus of a folded state.

    Args:
        state: the folded execution.
        with_results: whether to fill `results` (the step outputs), the costliest part.
    """
    plan = state.plan
    status = E.ExecutionStatus(
        execution_id=state.execution_id,
        plan_id=plan.plan_id,
        status=state.status,
        user_id=state.user_id,
        workflow_type=plan.workflow_type,
        degraded=bool(state.degraded_reasons),
        degraded_reasons=state.degraded_reasons,
        failure_reason=state.failure_reason,
        last_sequence=state.last_sequence,
        end_cause=state.end_cause,
        trace_id=state.trace_id,
        run=state.run,
        workflow_version=state.started.plan.workflow_version,
    )
    if state.callback is not None:
        status.callback.CopyFrom(state.callback)
    started = state.started
    if started.HasField("trigger"):
        status.trigger.CopyFrom(started.trigger)
    if started.HasField("execution_context"):
        status.execution_context.CopyFrom(started.execution_context)
    if started.plan.HasField("variant"):
        status.variant.CopyFrom(started.plan.variant)
    runs = [state.steps[sid] for sid in plan.steps]
    done = sum(1 for r in runs if r.done)
    running = [r.step_id for r in runs if r.phase in (Phase.IN_FLIGHT, Phase.MAPPING)]
    remaining = _remaining_estimate(state) if plan.estimated and not state.terminal else 0.0
    progress = status.progress
    progress.total_steps = len(runs)
    progress.current_step = min(done + (1 if running else 0), len(runs))
    progress.completion_percentage = 100.0 * done / len(runs) if runs else 100.0
    progress.running_steps.extend(running)
    progress.estimated_time_remaining.CopyFrom(_dur(remaining))
    if plan.estimated and not state.terminal and state.current_time is not None:
        progress.estimated_completion.FromNanoseconds(state.current_time.ToNanoseconds() + int(remaining * 1e9))

    perf = status.performance_metrics
    if state.start_time is not None:
        perf.start_time.CopyFrom(state.start_time)
    now = state.end_time or state.current_time
    if now is not None:
        perf.current_time.CopyFrom(state.current_time or now)
        if state.start_time is not None:
            perf.total_duration.CopyFrom(_between(state.start_time, now))
    if state.end_time is not None:
        perf.end_time.CopyFrom(state.end_time)
    perf.step_timings.extend([run.report or _step_report(state, run) for run in runs])

    status.resource_usage.total_network_io = state.network_bytes
    status.resource_usage.total_storage_io = state.storage_bytes
    status.resource_usage.cost_estimate = cost_of(state.calls, state.started.plan.unit_costs)

    quality = status.quality_metrics
    for run in _scored(runs):
        quality.step_quality_scores.add(
            step_id=run.step_id, quality_score=run.quality_score, quality_factors=run.quality_metrics
        )
    overall = overall_quality(state)
    if overall is not None:
        quality.overall_quality_score = overall
        # A step skipped because its condition was false is the plan working as meant, not a miss.
        missed = sum(
            1 for r in runs if r.phase in (Phase.FAILED, Phase.SKIPPED) and r.skip_cause != E.SKIP_CAUSE_CONDITION_FALSE
        )
        quality.user_satisfaction_prediction = max(0.0, quality.overall_quality_score - 20.0 * missed)

    summary = status.error_summary
    for err in state.errors:
        detail = summary.error_details.add(
            step_id=err.step_id,
            error_type=err.error_type,
            error_message=err.message,
            recovery_action=err.recovery_action,
            impact=err.impact,
            attempt=err.attempt,
            user_notified=err.user_notified,
        )
        if err.item >= 0:
            detail.item = err.item
    summary.total_errors = len(state.errors)
    summary.critical_errors = sum(1 for e in state.errors if e.impact == E.IMPACT_CRITICAL)
    summary.recovered_errors = sum(1 for e in state.errors if e.impact == E.IMPACT_LOW)

    for run in runs:
        wait = run.wait
        if wait is not None:
            waiting = status.waiting.add(
                step_id=run.step_id, kind=wait.kind, gate_id=wait.gate_id, prompt=wait.prompt, since=wait.since
            )
            waiting.data.update(wait.data)
            if wait.timeout_at is not None:
                waiting.timeout_at.FromDatetime(wait.timeout_at)
    for step_id, item, comp in compensations(state):
        report = status.compensations.add(
            step_id=step_id,
            state=comp.state,
            agent=comp.agent,
            operation=comp.operation,
            attempts=comp.attempts,
            error_message=comp.error,
        )
        if item >= 0:
            report.item = item

    if with_results:
        cached = state.results_cache
        if cached is not None and cached[0] == state.last_sequence:
            status.results.CopyFrom(cached[1])
        else:
            _fill_results(state, status.results)
            if state.terminal:
                # An ended execution's results change only with a new event (a rerun): keep them.
                kept = execution_pb2.Results()
                kept.CopyFrom(status.results)
                state.results_cache = (state.last_sequence, kept)
    return status


def _step_report(state: ExecutionState, run: StepRun) -> execution_pb2.StepTimingReport:
    """Builds (and caches on the step until an event changes it) the step's timing report."""
    step = state.plan.steps[run.step_id]
    report = E.StepTimingReport(
        step_id=run.step_id,
        step_name=step.name,
        status=run.state,
        attempts=run.attempts,
        agent=run.agent or step.call.agent,
        operation=run.operation or step.call.operation,
        compensation=_compensation_state(run),
    )
    if run.items is not None and run.tally is not None:
        counts = run.tally.counts
        report.items_total = len(run.items)
        report.items_done = sum(counts[phase] for phase in ITEM_DONE)
        report.items_skipped = counts[ItemPhase.SKIPPED]
        report.items_failed = counts[ItemPhase.FAILED]
    if run.start_time is not None:
        report.start_time.CopyFrom(run.start_time)
        if run.end_time is not None:
            report.end_time.CopyFrom(run.end_time)
            report.duration.CopyFrom(_between(run.start_time, run.end_time))
    run.report = report
    return report


# A map step's items' compensation states, most telling first: the step's shows the first found.
_ITEM_COMPENSATION_ORDER = (
    E.COMPENSATION_STATE_FAILED,
    E.COMPENSATION_STATE_RUNNING,
    E.COMPENSATION_STATE_PENDING,
    E.COMPENSATION_STATE_SUCCEEDED,
    E.COMPENSATION_STATE_NOT_NEEDED,
)


def _compensation_state(run: StepRun) -> execution_pb2.CompensationState:
    """The step's compensation state; for a map step, its items' summed up (any failed: FAILED;
    any still going: RUNNING or PENDING; else SUCCEEDED if any was undone)."""
    if run.compensation is not None:
        return run.compensation.state
    states = {item.compensation.state for item in run.items or () if item.compensation is not None}
    return next((state for state in _ITEM_COMPENSATION_ORDER if state in states), E.COMPENSATION_STATE_UNSPECIFIED)


def _remaining_estimate(state: ExecutionState) -> float:
    """Seconds left along the critical path of the steps not done, from their estimates, as of
    the latest event: a done step adds nothing, a started one what its estimate has left (never
    below 0), any other its whole estimate."""
    plan = state.plan
    now = state.current_time.ToNanoseconds() if state.current_time is not None else None
    finish: dict[str, float] = {}
    for sid in plan.order:
        step, run = plan.steps[sid], state.steps[sid]
        own = 0.0 if run.done else step.estimated_duration
        if own and run.start_time is not None and now is not None:
            own = max(own - (now - run.start_time.ToNanoseconds()) / 1e9, 0.0)
        finish[sid] = own + max((finish[d] for d in step.dependencies), default=0.0)
    return max(finish.values(), default=0.0)


def _fill_results(state: ExecutionState, results: execution_pb2.Results) -> None:
    plan = state.plan
    final = set(plan.final_steps)
    for sid in plan.steps:
        output = state.steps[sid].output_json()
        if output is None:
            continue
        target: struct_pb2.Struct = results.primary_outputs if sid in final else results.intermediate_results
        target.update({sid: output})
        if not isinstance(output, dict):
            continue  # a map step's list of item outputs
        for text in output.get("recommendations", ()) or ():
            if isinstance(text, str):
                results.recommendations.append(text)
        for text in output.get("suggestions", ()) or ():
            if isinstance(text, str):
                results.recommendations.append(text)
    results.recommendations.extend(recommendations(state))
    results.metadata.update(
        {
            "workflow_type": plan.workflow_type,
            "workflow_version": state.started.plan.workflow_version,
            "plan_id": plan.plan_id,
        }
    )


def _scored(runs: Iterable[StepRun]) -> list[StepRun]:
    """The steps whose quality counts: completed with an output."""
    return [run for run in runs if run.state == E.STEP_STATE_COMPLETED and run.output is not None]


def overall_quality(state: ExecutionState) -> float | None:
    """The execution's overall quality score: the mean of its scored steps'; None without any."""
    scores = [run.quality_score for run in _scored(state.steps[sid] for sid in state.plan.steps)]
    return sum(scores) / len(scores) if scores else None


def recommendations(state: ExecutionState) -> list[str]:
    """What the orchestrator advises after a run that degraded, recovered or failed (the agents'
    own recommendations come first in Results): one line per agent that needed retries, per
    step skipped or below its quality bar, and for the step that failed."""
    plan = state.plan
    advice: list[str] = []
    retried: dict[str, list[str]] = {}
    for err in state.errors:
        step = plan.steps.get(err.step_id)
        if step is None or err.recovery_action != "retry" or err.impact != E.IMPACT_LOW:
            continue
        agent = state.steps[err.step_id].agent or step.call.agent
        retried.setdefault(agent, []).append(err.error_type)
    for agent, types in retried.items():
        kinds = ", ".join(sorted(set(types)))
        advice.append(
            f"Agent {agent} needed {len(types)} retr{'y' if len(types) == 1 else 'ies'} in this run ({kinds}); "
            "if it recurs, check its health and breaker in GetSystemHealth."
        )
    last_error = {err.step_id: err for err in state.errors}
    for sid in plan.order:
        run, step = state.steps[sid], plan.steps[sid]
        if run.phase == Phase.SKIPPED and run.skip_cause in (E.SKIP_CAUSE_FALLBACK, E.SKIP_CAUSE_DEGRADED):
            cause = last_error[sid].error_type if sid in last_error else "its agent was unavailable"
            advice.append(f"Step {step.name} was skipped after {cause}; run the journey again for complete results.")
        if run.phase == Phase.COMPLETED and step.below_quality(run.quality_score):
            advice.append(
                f"Step {step.name} scored {run.quality_score:.1f}, below its bar of {step.quality_requirement:g}: "
                "richer inputs (a fuller profile or résumé) usually raise it."
            )
    ended_by = [err.step_id for err in state.errors if err.impact == E.IMPACT_CRITICAL and err.step_id in plan.steps]
    if state.status in (E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED) and ended_by:
        advice.append(
            f"Step {ended_by[-1]} ended the run; once its cause is fixed, RerunExecution (baton rerun "
            f"{state.execution_id}) continues from it, keeping what completed."
        )
    return advice
