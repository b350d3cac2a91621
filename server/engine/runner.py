"""The engine: runs executions as decide → commit → act → wait loops, one task per execution.

Every transition is an event, applied to the in-memory fold and committed to the store before
anything acts on it: a call starts only after its step_started event is durable, and watchers
hear of an event only after its commit. A runner that dies leaves its execution to `recover`,
which folds the stored events and continues; an attempt that was started but has no recorded
outcome is issued again with the same idempotency key.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from baton.v1 import execution_pb2, journey_pb2, plan_pb2
from google.protobuf import any_pb2, json_format

from server.engine.expressions import ExpressionError, evaluate, resolve
from server.engine.fold import STEP_DONE, ExecutionState, apply, fold, start
from server.engine.gates import evaluate_gate
from server.engine.inbox import SignalCommand
from server.engine.model import DEFAULT_EXECUTION_TIMEOUT, Call, Plan, QualityGate, Step, seconds
from server.engine.ports import AgentCall, AgentCaller, AgentCallError, AgentReply, Clock
from server.store.base import ExecutionNotFoundError, ExecutionRecord, ExecutionStore, NewExecution

E = execution_pb2
logger = logging.getLogger(__name__)

#: Errors that mean the agent could not serve, as opposed to a bad request.
UNAVAILABILITY = frozenset({"UNAVAILABLE", "CIRCUIT_OPEN", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED"})


@dataclass(frozen=True)
class EngineConfig:
    """Engine-wide settings."""

    default_execution_timeout: float = DEFAULT_EXECUTION_TIMEOUT
    """Seconds an execution may take when neither request nor plan says. Default 600."""
    restart_delays: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0, 60.0)
    """Waits before a runner that died on an unexpected error (a failed store write, say) is
    started again from the stored events; after the last, the execution waits for recovery."""


@dataclass(frozen=True)
class Submission:
    """A validated request to run a plan."""

    execution_id: str
    plan: plan_pb2.OrchestrationPlan
    """Validated, with plan_id and user_id set."""
    user_context: journey_pb2.UserJourney
    options: journey_pb2.ExecutionOptions = field(default_factory=journey_pb2.ExecutionOptions)
    callback_url: str = ""
    request_id: str = ""


#: Called once an execution's terminal event is committed.
TerminalListener = Callable[[ExecutionState], None]


class Engine:
    """Starts, recovers and cancels executions; owns one runner task per running execution."""

    def __init__(
        self,
        store: ExecutionStore,
        caller: AgentCaller,
        clock: Clock,
        *,
        config: EngineConfig | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.store = store
        self.caller = caller
        self.clock = clock
        self.config = config or EngineConfig()
        self.rng = rng or random.Random()
        self._runners: dict[str, _Runner] = {}
        self._terminal_listeners: list[TerminalListener] = []
        self._restarts: set[asyncio.Task[None]] = set()
        self._closing = False

    @property
    def active(self) -> int:
        """Executions running in this engine now."""
        return len(self._runners)

    def plan_of(self, execution_id: str) -> Plan | None:
        """The parsed plan of an execution running here (immutable, so watchers may share it)."""
        runner = self._runners.get(execution_id)
        return runner.state.plan if runner is not None else None

    def add_terminal_listener(self, listener: TerminalListener) -> None:
        """Registers a function called with the final state of every execution that ends here."""
        self._terminal_listeners.append(listener)

    async def submit(self, submission: Submission) -> tuple[ExecutionRecord, bool]:
        """Records a new execution durably and starts it.

        Returns:
            The execution's record, and False when its request_id matched an earlier execution
            (which is returned instead and not started again).
        """
        plan = submission.plan
        now = self.clock.now()
        timeout = (
            seconds(submission.options.timeout)
            if submission.options.HasField("timeout")
            else seconds(plan.timeout)
            if plan.HasField("timeout")
            else self.config.default_execution_timeout
        )
        event = E.ExecutionEvent(sequence=1)
        event.time.FromDatetime(now)
        started = event.execution_started
        started.plan.CopyFrom(plan)
        started.user_context.CopyFrom(submission.user_context)
        started.execution_options.CopyFrom(submission.options)
        started.callback_url = submission.callback_url
        started.request_id = submission.request_id
        started.deadline.FromDatetime(now + timedelta(seconds=timeout))
        record, created = await self.store.create_execution(
            NewExecution(
                execution_id=submission.execution_id,
                user_id=plan.user_id or submission.user_context.user_id,
                workflow_type=plan.workflow_type,
                plan_id=plan.plan_id,
                request_id=submission.request_id,
                priority=plan.execution_strategy.priority,
                created_at=now,
            ),
            event,
        )
        if created:
            self._start(start(event, submission.execution_id))
        return record, created

    async def recover(self) -> int:
        """Continues every unfinished execution of the store; returns how many."""
        resumed = 0
        for execution_id in [u.execution_id for u in await self.store.unfinished_executions()]:
            if execution_id in self._runners:
                continue
            try:
                state = fold(execution_id, await self.store.read_events(execution_id))
            except Exception as error:
                # An unreadable history must not stop start-up: quarantine it, run the others.
                logger.error("execution %s quarantined: %s: %s", execution_id, type(error).__name__, error)
                await self.store.quarantine(execution_id, f"{type(error).__name__}: {error}")
                continue
            self._start(state)
            resumed += 1
        if resumed:
            logger.info("recovered %d unfinished executions", resumed)
        return resumed

    async def cancel(self, execution_id: str, reason: str) -> None:
        """Cancels an execution and returns once the cancellation is durable.

        Cancelling a terminal execution does nothing.

        Raises:
            ExecutionNotFoundError: no such execution.
        """
        runner = self._runners.get(execution_id)
        if runner is not None:
            await runner.cancel(reason)
            return
        events = await self.store.read_events(execution_id)
        if not events:
            raise ExecutionNotFoundError(execution_id)
        state = fold(execution_id, events)
        if state.terminal:
            return
        # Not running here (its runner died): record the cancellation directly.
        event = E.ExecutionEvent(sequence=state.last_sequence + 1)
        event.time.FromDatetime(self.clock.now())
        event.execution_cancelled.reason = reason
        apply(state, event)
        await self.store.append(execution_id, [event], state.status)
        self._notify_terminal(state)

    async def pause(self, execution_id: str, reason: str) -> None:
        """Pauses a running execution; returns once the pause is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: the execution is not running (the message names its state).
        """
        raise NotImplementedError

    async def resume(self, execution_id: str, reason: str) -> None:
        """Resumes a paused execution; returns once the resumption is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: the execution is not paused (the message names its state).
        """
        raise NotImplementedError

    async def signal(self, execution_id: str, command: SignalCommand) -> None:
        """Gives a waiting step a signal; returns once the signal is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: no step waits, the named one does not, or the payload does not
                fit it (the message says which).
        """
        raise NotImplementedError

    async def close(self) -> None:
        """Stops every runner without recording anything: their executions resume on restart."""
        self._closing = True
        runners = list(self._runners.values())
        for task in [*self._restarts, *(r.task for r in runners)]:
            task.cancel()
        await asyncio.gather(*self._restarts, *(r.task for r in runners), return_exceptions=True)

    def _start(self, state: ExecutionState, failures: int = 0) -> None:
        if state.terminal or self._closing:
            return
        runner = _Runner(self, state, failures)
        self._runners[state.execution_id] = runner
        runner.task = asyncio.create_task(runner.run(), name=f"execution {state.execution_id}")

    def _forget(self, execution_id: str) -> None:
        self._runners.pop(execution_id, None)

    def _restart_later(self, execution_id: str, failures: int) -> None:
        """Starts a died runner again from the stored events, after a growing wait."""
        delays = self.config.restart_delays
        if self._closing or failures > len(delays):
            logger.error("execution %s: runner died %d times; it waits for recovery", execution_id, failures)
            return
        wake = self.clock.now() + timedelta(seconds=delays[failures - 1])

        async def restart() -> None:
            await self.clock.sleep_until(wake)
            if self._closing or execution_id in self._runners:
                return
            try:
                events = await self.store.read_events(execution_id)
                self._start(fold(execution_id, events), failures)
            except Exception:
                logger.exception("execution %s: restart failed", execution_id)
                self._restart_later(execution_id, failures + 1)

        task = asyncio.create_task(restart(), name=f"restart {execution_id}")
        self._restarts.add(task)
        task.add_done_callback(self._restarts.discard)

    def _notify_terminal(self, state: ExecutionState) -> None:
        for listener in self._terminal_listeners:
            try:
                listener(state)
            except Exception:
                logger.exception("terminal listener failed for execution %s", state.execution_id)


@dataclass
class _Launch:
    step_id: str
    attempt: int
    call: Call
    timeout: float
    use_breaker: bool


class _Runner:
    """Runs one execution until it is terminal (or the runner is stopped)."""

    task: asyncio.Task[None]

    def __init__(self, engine: Engine, state: ExecutionState, failures: int = 0) -> None:
        self.engine = engine
        self.state = state
        self.failures = failures
        """How many runners of this execution died before this one."""
        self.clock = engine.clock
        self._pending: list[execution_pb2.ExecutionEvent] = []
        self._launches: list[_Launch] = []
        self._calls: dict[asyncio.Task[tuple[str, int, AgentReply | AgentCallError]], str] = {}
        self._wakeup = asyncio.Event()
        self._wakeup_task: asyncio.Task[bool] | None = None
        self._timer: tuple[datetime, asyncio.Task[None]] | None = None
        self._cancel_reason: str | None = None
        self._cancelled: asyncio.Future[None] | None = None
        self._user_json: dict[str, Any] | None = None

    async def cancel(self, reason: str) -> None:
        if self._cancelled is None:
            self._cancelled = asyncio.get_running_loop().create_future()
            self._cancel_reason = reason
            self._wakeup.set()
        await asyncio.shield(self._cancelled)

    async def run(self) -> None:
        try:
            await self._loop()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("execution %s: runner died; restarting it from the store", self.state.execution_id)
            self.engine._forget(self.state.execution_id)
            self.engine._restart_later(self.state.execution_id, self.failures + 1)
        finally:
            self.engine._forget(self.state.execution_id)
            for task in [*self._calls, self._wakeup_task, self._timer[1] if self._timer else None]:
                if task is not None:
                    task.cancel()
            if self._cancelled is not None and not self._cancelled.done():
                if self.state.terminal:
                    self._cancelled.set_result(None)
                else:
                    self._cancelled.set_exception(RuntimeError("execution runner stopped"))

    async def _loop(self) -> None:
        state = self.state
        # Attempts started before a restart and never finished: issue them again, same key.
        for run in state.steps.values():
            if run.in_flight:
                step = state.plan.steps[run.step_id]
                call = step.alternative if run.on_alternative and step.alternative else step.call
                self._launches.append(self._launch_of(step, run.attempts, call))
        while True:
            self._decide()
            await self._flush()
            if state.terminal:
                if self._cancelled is not None and not self._cancelled.done():
                    self._cancelled.set_result(None)
                self.engine._notify_terminal(state)
                return
            await self._wait_and_handle()

    # ---- events ---------------------------------------------------------------------------

    def _emit(self) -> execution_pb2.ExecutionEvent:
        """Returns a new event with the next sequence and now; the caller fills its kind."""
        # Every emitted event is applied before the next is emitted, so the fold's last
        # sequence is always the previous event's.
        event = E.ExecutionEvent(sequence=self.state.last_sequence + 1)
        event.time.FromDatetime(self.clock.now())
        self._pending.append(event)
        return event

    def _applied(self) -> None:
        """Applies the last emitted event to the fold."""
        apply(self.state, self._pending[-1])

    async def _flush(self) -> None:
        if self._pending:
            events, self._pending = self._pending, []
            await self.engine.store.append(self.state.execution_id, events, self.state.status)
        launches, self._launches = self._launches, []
        for launch in launches:
            task = asyncio.create_task(self._attempt(launch))
            self._calls[task] = launch.step_id

    # ---- deciding ---------------------------------------------------------------------------

    def _decide(self) -> None:
        state = self.state
        plan = state.plan
        if state.terminal:
            return
        if self._cancel_reason is not None:
            self._emit().execution_cancelled.reason = self._cancel_reason
            self._applied()
            return
        now = self.clock.now()
        if now >= state.deadline:
            failed = self._emit().execution_failed
            failed.reason = "execution timed out"
            failed.error_type = "TIMEOUT"
            self._applied()
            return
        occupied = sum(1 for r in state.steps.values() if r.state == E.STEP_STATE_RUNNING)
        limit = plan.max_concurrency
        for sid in plan.order:
            run = state.steps[sid]
            step = plan.steps[sid]
            if run.state == E.STEP_STATE_RUNNING:
                # A retry, a gate retry or a switch to the alternative call that is due.
                if not run.in_flight and (run.start_at is None or run.start_at <= now):
                    call = step.alternative if run.on_alternative and step.alternative else step.call
                    self._start_attempt(step, call)
                continue
            if run.state != E.STEP_STATE_PENDING:
                continue
            if any(state.steps[d].state not in STEP_DONE for d in step.dependencies):
                continue
            if run.start_at is not None and run.start_at > now:
                continue  # a scheduled step waiting for its time
            if limit and occupied >= limit:
                continue
            if step.scheduling == plan_pb2.SCHEDULING_CONDITIONAL and not self._condition_holds(step):
                skipped = self._emit().step_skipped
                skipped.step_id, skipped.reason = sid, f"condition: {step.condition} is false"
                self._applied()
                continue
            if step.scheduling == plan_pb2.SCHEDULING_SCHEDULED and run.start_at is None and step.delay > 0:
                delayed = self._emit().step_delayed
                delayed.step_id = sid
                delayed.start_at.FromDatetime(now + timedelta(seconds=step.delay))
                self._applied()
                continue
            self._start_attempt(step, step.call)
            occupied += 1
        if all(r.state in STEP_DONE for r in state.steps.values()):
            self._emit().execution_completed.SetInParent()
            self._applied()

    def _condition_holds(self, step: Step) -> bool:
        try:
            return bool(evaluate(step.condition, self._context()))
        except ExpressionError as exc:
            logger.warning("execution %s: %s; the step is skipped", self.state.execution_id, exc)
            return False

    def _start_attempt(self, step: Step, call: Call) -> None:
        run = self.state.steps[step.step_id]
        attempt = run.attempts + 1
        started = self._emit().step_started
        started.step_id = step.step_id
        started.attempt = attempt
        started.agent, started.operation = call.agent, call.operation
        started.idempotency_key = f"{self.state.execution_id}/{step.step_id}/{attempt}"
        self._applied()
        self._launches.append(self._launch_of(step, attempt, call))

    def _launch_of(self, step: Step, attempt: int, call: Call) -> _Launch:
        return _Launch(step.step_id, attempt, call, step.timeout, self.state.plan.retry.use_breaker)

    def _context(self) -> Mapping[str, Any]:
        state = self.state
        if self._user_json is None:
            self._user_json = json_format.MessageToDict(state.started.user_context, preserving_proto_field_name=True)
        return {
            "user": self._user_json,
            "steps": {sid: run.output_json() for sid, run in state.steps.items() if run.output is not None},
            "execution": {
                "execution_id": state.execution_id,
                "user_id": state.user_id,
                "workflow_type": state.plan.workflow_type,
            },
        }

    # ---- acting -------------------------------------------------------------------------------

    async def _attempt(self, launch: _Launch) -> tuple[str, int, AgentReply | AgentCallError]:
        state = self.state
        try:
            payload = dict(launch.call.configuration)
            if launch.call.dynamic:
                payload = resolve(launch.call.configuration, self._context())
            remaining = (state.deadline - self.clock.now()).total_seconds()
            reply = await self.engine.caller.call(
                AgentCall(
                    agent=launch.call.agent,
                    operation=launch.call.operation,
                    payload=payload,
                    timeout=max(0.001, min(launch.timeout, remaining)),
                    idempotency_key=f"{state.execution_id}/{launch.step_id}/{launch.attempt}",
                    use_breaker=launch.use_breaker,
                )
            )
            return launch.step_id, launch.attempt, reply
        except AgentCallError as exc:
            return launch.step_id, launch.attempt, exc
        except ExpressionError as exc:
            return launch.step_id, launch.attempt, AgentCallError("INVALID_ARGUMENT", str(exc), retryable=False)
        except Exception as exc:
            logger.exception("execution %s: step %s: the caller raised", state.execution_id, launch.step_id)
            return launch.step_id, launch.attempt, AgentCallError("UNKNOWN", repr(exc), retryable=True)

    # ---- waiting ------------------------------------------------------------------------------

    async def _wait_and_handle(self) -> None:
        state = self.state
        waits: set[asyncio.Future[Any]] = set(self._calls)
        if self._wakeup_task is None or self._wakeup_task.done():
            self._wakeup.clear()
            self._wakeup_task = asyncio.create_task(self._wakeup.wait())
        waits.add(self._wakeup_task)
        # The next due retry or delayed start, or the execution's deadline if that comes first.
        wake_at = min(
            (r.start_at for r in state.steps.values() if r.start_at is not None and not r.in_flight),
            default=state.deadline,
        )
        wake_at = min(wake_at, state.deadline)
        if self._timer is None or self._timer[0] != wake_at or self._timer[1].done():
            if self._timer is not None:
                self._timer[1].cancel()
            self._timer = (wake_at, asyncio.create_task(self.clock.sleep_until(wake_at)))
        waits.add(self._timer[1])
        done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            if task in self._calls:
                del self._calls[task]
                self._handle_outcome(*task.result())

    def _handle_outcome(self, step_id: str, attempt: int, outcome: AgentReply | AgentCallError) -> None:
        run = self.state.steps[step_id]
        if self.state.terminal or not run.in_flight or run.attempts != attempt:
            return  # an outcome overtaken by cancellation or a newer attempt
        step = self.state.plan.steps[step_id]
        if isinstance(outcome, AgentReply):
            self._succeeded(step, attempt, outcome)
        else:
            self._failed(step, attempt, outcome)

    def _succeeded(self, step: Step, attempt: int, reply: AgentReply) -> None:
        event = self._emit()
        done = event.step_succeeded
        done.step_id, done.attempt = step.step_id, attempt
        output = any_pb2.Any()
        output.Pack(reply.output)
        done.output.CopyFrom(output)
        done.quality.score = reply.quality_score
        done.quality.metrics.update(reply.quality_metrics)
        done.request_bytes, done.response_bytes = reply.request_bytes, reply.response_bytes
        self._applied()
        for gate in self.state.plan.gates.get(step.step_id, ()):
            if self._evaluate_gate(gate, reply):
                break

    def _evaluate_gate(self, gate: QualityGate, reply: AgentReply) -> bool:
        """Records the gate's evaluation; returns True when it ended or re-ran the step."""
        verdict = evaluate_gate(gate, reply.quality_score, reply.quality_metrics)
        score, passed = verdict.score, verdict.passed
        action = plan_pb2.GATE_ACTION_UNSPECIFIED
        run = self.state.steps[gate.checkpoint]
        if not passed:
            action = gate.action
            if action == plan_pb2.GATE_ACTION_RETRY and gate.gate_id in run.gate_retries:
                action = plan_pb2.GATE_ACTION_STOP  # the one re-run did not help
        evaluated = self._emit().gate_evaluated
        evaluated.gate_id, evaluated.checkpoint = gate.gate_id, gate.checkpoint
        evaluated.score, evaluated.passed, evaluated.action = score, passed, action
        evaluated.details.extend(verdict.details)
        self._applied()
        if action == plan_pb2.GATE_ACTION_STOP:
            failed = self._emit().execution_failed
            failed.reason = f"quality gate {gate.gate_id} failed after step {gate.checkpoint} (score {score:.1f})"
            failed.step_id, failed.error_type = gate.checkpoint, "QUALITY_GATE"
            self._applied()
            return True
        return action == plan_pb2.GATE_ACTION_RETRY

    def _failed(self, step: Step, attempt: int, error: AgentCallError) -> None:
        state = self.state
        run = state.steps[step.step_id]
        retry = error.retryable and run.path_attempts <= step.retries
        event = self._emit()
        failed = event.step_attempt_failed
        failed.step_id, failed.attempt = step.step_id, attempt
        failed.error_type, failed.error_message = error.error_type, error.message
        failed.request_bytes = error.request_bytes
        if retry:
            wait = state.plan.retry.backoff(run.path_attempts, self.engine.rng.random())
            failed.retry_at.FromDatetime(self.clock.now() + timedelta(seconds=wait))
        self._applied()
        if retry:
            return
        exhausted = self._emit().step_failed
        exhausted.step_id = step.step_id
        exhausted.error_type, exhausted.error_message = error.error_type, error.message
        if step.optional and state.plan.degraded_mode and error.error_type in UNAVAILABILITY:
            exhausted.fallback_action = plan_pb2.FALLBACK_ACTION_SKIP
            self._applied()
            self._skip(step.step_id, f"degraded: agent {run.agent} unavailable ({error.error_type})")
        elif step.fallback == plan_pb2.FALLBACK_ACTION_ALTERNATIVE and step.alternative and not run.on_alternative:
            exhausted.fallback_action = plan_pb2.FALLBACK_ACTION_ALTERNATIVE
            self._applied()
        elif step.fallback == plan_pb2.FALLBACK_ACTION_SKIP:
            exhausted.fallback_action = plan_pb2.FALLBACK_ACTION_SKIP
            self._applied()
            self._skip(step.step_id, f"fallback after {error.error_type}: {error.message}")
        else:
            exhausted.fallback_action = plan_pb2.FALLBACK_ACTION_FAIL
            self._applied()
            ended = self._emit().execution_failed
            ended.reason = f"step {step.step_id} failed: {error.error_type}: {error.message}"
            ended.step_id, ended.error_type = step.step_id, error.error_type
            self._applied()

    def _skip(self, step_id: str, reason: str) -> None:
        skipped = self._emit().step_skipped
        skipped.step_id, skipped.reason = step_id, reason
        self._applied()
