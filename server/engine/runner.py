"""The engine: each running execution is a runner task, an I/O loop around `decide`.

A runner folds its execution's events, then repeats: decide → append the events (durable before
anything acts on them) → answer the commands → perform the launches → wait for an outcome, a
command or the decided wake-up time. When nothing is in flight it *parks*: it records in the
store when it must wake (`park`) and ends, holding no task, timer or output in memory. One
engine-wide timer (a heap of wake-up times, read from the store on start) starts a runner again
when a parked execution's time comes; a command (cancel, pause, resume, signal) starts one at
once. A runner that dies on an unexpected error is started again from the store with growing
waits; after the last, the execution is failed with an internal-error cause and unwound, and
if even that cannot run it is quarantined. An execution whose history cannot be read or folded
is quarantined (marked FAILED in the store, logged), never allowed to stop the engine.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from baton.v1 import execution_pb2, journey_pb2, plan_pb2

from server.engine.decide import Decision, Launch, decide
from server.engine.fold import fold, start
from server.engine.inbox import (
    Cancel,
    Command,
    ExecutionStateError,
    InboxItem,
    InternalFailure,
    Outcome,
    Pause,
    Resume,
    SignalCommand,
)
from server.engine.model import DEFAULT_EXECUTION_TIMEOUT, Plan, seconds
from server.engine.ports import (
    AgentCaller,
    AgentCallError,
    AgentReply,
    Clock,
    ExecutionNotFoundError,
    ExecutionRecord,
    ExecutionStore,
    NewExecution,
)
from server.engine.state import TERMINAL, ExecutionState

E = execution_pb2
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class EngineConfig:
    """Engine-wide settings."""

    default_execution_timeout: float = DEFAULT_EXECUTION_TIMEOUT
    """Seconds an execution may take when neither request nor plan says. Default 600."""
    restart_delays: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0, 60.0)
    """Waits before a runner that died on an unexpected error (a failed store write, say) is
    started again from the stored events; after the last, the execution is failed (and unwound)."""


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
    """Starts, recovers and controls executions; owns the runners and the engine-wide timer."""

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
        self._background: set[asyncio.Task[None]] = set()
        self._parked: dict[str, datetime | None] = {}
        """Parked executions → their wake-up time (None: until a command)."""
        self._timers: list[tuple[datetime, str]] = []
        self._timer_changed = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._deaths: dict[str, int] = {}
        """Executions whose runner died → how many times in a row."""
        self._closing = False

    @property
    def active(self) -> int:
        """Executions with a live runner here now."""
        return len(self._runners)

    @property
    def parked(self) -> int:
        """Executions parked here (waiting for a time or a command, holding no task)."""
        return len(self._parked)

    def plan_of(self, execution_id: str) -> Plan | None:
        """The parsed plan of an execution running here (immutable, so watchers may share it)."""
        runner = self._runners.get(execution_id)
        return runner.state.plan if runner is not None and runner.state is not None else None

    def add_terminal_listener(self, listener: TerminalListener) -> None:
        """Registers a function called with the final state of every execution that ends here."""
        self._terminal_listeners.append(listener)

    # ---- starting -------------------------------------------------------------------------------

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
        if created and not self._closing:
            self._spawn(submission.execution_id, start(event, submission.execution_id))
        return record, created

    async def recover(self) -> int:
        """Takes up every unfinished execution of the store; returns how many.

        Parked ones go back on the timer (or wait for a command); the others are started. An
        execution whose history cannot be read or folded is quarantined, never raised.
        """
        resumed = 0
        for unfinished in await self.store.unfinished_executions():
            execution_id = unfinished.execution_id
            if execution_id in self._runners or execution_id in self._parked:
                continue
            if unfinished.parked:
                self._park(execution_id, unfinished.wake_at)
            else:
                self._spawn(execution_id)
            resumed += 1
        if resumed:
            logger.info("recovered %d unfinished executions (%d parked)", resumed, len(self._parked))
        return resumed

    # ---- commands -------------------------------------------------------------------------------

    async def cancel(self, execution_id: str, reason: str) -> None:
        """Cancels an execution; returns once its unwinding (or end) is durable.

        Completed steps that declare a compensation are compensated before it ends CANCELLED.
        Cancelling an execution that has ended or is ending does nothing.

        Raises:
            ExecutionNotFoundError: no such execution.
        """
        await self._command(execution_id, Cancel(reason))

    async def pause(self, execution_id: str, reason: str) -> None:
        """Pauses a running execution; returns once the pause is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: the execution is not running (the message names its state).
        """
        await self._command(execution_id, Pause(reason))

    async def resume(self, execution_id: str, reason: str) -> None:
        """Resumes a paused execution; returns once the resumption is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: the execution is not paused (the message names its state).
        """
        await self._command(execution_id, Resume(reason))

    async def signal(self, execution_id: str, command: SignalCommand) -> None:
        """Gives a waiting step a signal; returns once the signal is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: no step waits, the named one does not, or the payload does not
                fit it (the message says which).
        """
        await self._command(execution_id, command)

    async def _command(self, execution_id: str, command: Command) -> None:
        runner = self._runners.get(execution_id)
        if runner is None:
            record = await self.store.get_execution(execution_id)
            if record is None:
                raise ExecutionNotFoundError(execution_id)
            if record.state in TERMINAL:
                if isinstance(command, Cancel):
                    return
                name = E.ExecutionState.Name(record.state).removeprefix("EXECUTION_STATE_").lower()
                raise ExecutionStateError(f"execution {execution_id} is {name}")
            runner = self._runners.get(execution_id) or self._spawn(execution_id)
        await runner.submit(command)

    # ---- stopping -------------------------------------------------------------------------------

    async def close(self) -> None:
        """Stops every runner and the timer without recording anything: they resume on restart."""
        self._closing = True
        tasks = [*self._background, *(r.task for r in self._runners.values())]
        if self._timer_task is not None:
            tasks.append(self._timer_task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ---- runners, parking and the timer ---------------------------------------------------------

    def _spawn(self, execution_id: str, state: ExecutionState | None = None) -> _Runner:
        """Starts a runner (which folds the stored history itself when `state` is None)."""
        self._unpark(execution_id)
        runner = _Runner(self, execution_id, state)
        self._runners[execution_id] = runner
        runner.task = asyncio.create_task(runner.run(), name=f"execution {execution_id}")
        return runner

    def _park(self, execution_id: str, wake_at: datetime | None) -> None:
        self._parked[execution_id] = wake_at
        if wake_at is None:
            return
        heapq.heappush(self._timers, (wake_at, execution_id))
        if self._timer_task is None and not self._closing:
            self._timer_task = asyncio.create_task(self._timer_loop(), name="engine timer")
        self._timer_changed.set()

    def _unpark(self, execution_id: str) -> None:
        self._parked.pop(execution_id, None)  # its heap entry is dropped when it comes up

    async def _timer_loop(self) -> None:
        """The one engine-wide timer: wakes parked executions when their time comes."""
        while True:
            while self._timers:
                when, execution_id = self._timers[0]
                if self._parked.get(execution_id) != when:
                    heapq.heappop(self._timers)  # stale: started or re-parked since
                    continue
                if when > self.clock.now():
                    break
                heapq.heappop(self._timers)
                if execution_id not in self._runners:
                    self._spawn(execution_id)
            self._timer_changed.clear()
            waits: list[asyncio.Future[object]] = [asyncio.ensure_future(self._timer_changed.wait())]
            if self._timers:
                waits.append(asyncio.ensure_future(self.clock.sleep_until(self._timers[0][0])))
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    def _runner_ended(self, runner: _Runner, wake_at: datetime | None, parked: bool) -> None:
        if self._runners.get(runner.execution_id) is runner:
            del self._runners[runner.execution_id]
        self._deaths.pop(runner.execution_id, None)
        if parked and not self._closing:
            self._park(runner.execution_id, wake_at)

    def _runner_died(self, runner: _Runner, error: BaseException) -> None:
        """Starts a died runner again from the stored events, after a growing wait."""
        execution_id = runner.execution_id
        if self._runners.get(execution_id) is runner:
            del self._runners[execution_id]
        if self._closing:
            return
        deaths = self._deaths.get(execution_id, 0) + 1
        self._deaths[execution_id] = deaths
        delays = self.config.restart_delays
        if deaths > len(delays) + 1:
            # Even failing it could not run: take it out of the way of everything else.
            self._later(self._quarantine(execution_id, f"its runner kept failing: {error!r}"))
            return
        give_up = deaths > len(delays)
        wake = self.clock.now() + timedelta(seconds=delays[min(deaths, len(delays)) - 1])
        logger.error("execution %s: runner died (%d times)%s", execution_id, deaths, "; failing it" if give_up else "")

        async def restart() -> None:
            if not give_up:
                await self.clock.sleep_until(wake)
            if self._closing or execution_id in self._runners:
                return
            runner = self._spawn(execution_id)
            if give_up:
                runner.inbox.append(InternalFailure(f"the orchestrator could not go on running it ({error!r})"))

        self._later(restart())

    def _later(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _quarantine(self, execution_id: str, error: str) -> None:
        logger.error("execution %s is quarantined: %s", execution_id, error)
        self._deaths.pop(execution_id, None)
        self._unpark(execution_id)
        try:
            await self.store.quarantine(execution_id, error)
        except Exception:
            logger.exception("execution %s: quarantining failed", execution_id)

    def _notify_terminal(self, state: ExecutionState) -> None:
        for listener in self._terminal_listeners:
            try:
                listener(state)
            except Exception:
                logger.exception("terminal listener failed for execution %s", state.execution_id)


class _Runner:
    """The I/O loop of one execution, around `decide` (see the module docstring)."""

    task: asyncio.Task[None]

    def __init__(self, engine: Engine, execution_id: str, state: ExecutionState | None) -> None:
        self.engine = engine
        self.execution_id = execution_id
        self.state = state
        self.inbox: list[InboxItem] = []
        self._waiters: list[tuple[Command, asyncio.Future[None]]] = []
        self._calls: set[asyncio.Task[Outcome | None]] = set()
        self._wakeup = asyncio.Event()
        self._timer: asyncio.Task[None] | None = None
        self._timer_at: datetime | None = None

    async def submit(self, command: Command) -> None:
        """Hands the runner a command; returns once it is recorded (or raises why it was refused)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((command, future))
        self.inbox.append(command)
        self._wakeup.set()
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller went away (its RPC was cancelled): the outcome is no one's to read.
            future.add_done_callback(_consume)
            raise

    async def run(self) -> None:
        engine = self.engine
        try:
            if self.state is None:
                self.state = await self._load()
                if self.state is None:
                    return
            await self._loop(self.state)
        except asyncio.CancelledError:
            self._fail_waiters(RuntimeError("the orchestrator is stopping"))
            raise
        except Exception as exc:
            logger.exception("execution %s: runner died", self.execution_id)
            self._fail_waiters(RuntimeError(f"execution {self.execution_id}: runner died"))
            engine._runner_died(self, exc)
        finally:
            for task in [*self._calls, self._timer]:
                if task is not None:
                    task.cancel()

    async def _load(self) -> ExecutionState | None:
        engine = self.engine
        try:
            events = await engine.store.read_events(self.execution_id)
            if not events:
                raise ExecutionNotFoundError(self.execution_id)
            return fold(self.execution_id, events)
        except Exception as exc:
            # Nothing stored may stop the engine: an unreadable history is set aside.
            engine._runner_ended(self, None, parked=False)
            self._fail_waiters(ExecutionStateError(f"execution {self.execution_id} is quarantined: {exc}"))
            await engine._quarantine(self.execution_id, f"its history cannot be read: {exc}")
            return None

    async def _loop(self, state: ExecutionState) -> None:
        engine = self.engine
        relaunch = True
        while True:
            inbox, self.inbox = self.inbox, []
            waiters, self._waiters = self._waiters, []
            decision = decide(state, engine.clock.now(), inbox, rng=engine.rng.random, relaunch=relaunch)
            relaunch = False
            if decision.events:
                await engine.store.append(self.execution_id, decision.events, state.status)
            self._answer(inbox, waiters, decision)
            for launch in decision.launches:
                task = asyncio.create_task(self._perform(launch))
                task.add_done_callback(self._call_done)
                self._calls.add(task)
            if state.terminal:
                engine._runner_ended(self, None, parked=False)
                engine._notify_terminal(state)
                return
            if not self._calls and not self.inbox:
                await engine.store.park(self.execution_id, decision.wake_at)
                if not self.inbox:  # a command that came during the write keeps it running
                    engine._runner_ended(self, decision.wake_at, parked=True)
                    return
            await self._wait(decision.wake_at)

    def _answer(
        self, inbox: list[InboxItem], waiters: list[tuple[Command, asyncio.Future[None]]], decision: Decision
    ) -> None:
        refusals = {id(inbox[index]): reason for index, reason in decision.refused.items()}
        for command, future in waiters:
            if future.done():
                continue
            reason = refusals.get(id(command))
            if reason is None:
                future.set_result(None)
            else:
                future.set_exception(ExecutionStateError(reason))

    def _fail_waiters(self, error: Exception) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)
        self._waiters = []

    async def _perform(self, launch: Launch) -> Outcome | None:
        result: AgentReply | AgentCallError
        try:
            result = await self.engine.caller.call(launch.call)
        except AgentCallError as exc:
            result = exc
        except Exception as exc:
            logger.exception("execution %s: step %s: the caller raised", self.execution_id, launch.step_id)
            result = AgentCallError("UNKNOWN", repr(exc), retryable=True)
        if launch.notice:
            if isinstance(result, AgentCallError):
                logger.warning("execution %s: notice for step %s failed: %s", self.execution_id, launch.step_id, result)
            return None
        return Outcome(launch.step_id, launch.attempt, result, compensation=launch.compensation)

    async def _wait(self, wake_at: datetime | None) -> None:
        """Returns when an outcome or a command arrives, or at `wake_at`."""
        if self.inbox:
            return  # something came in while the last decision was being written
        if self._timer is None or self._timer_at != wake_at or self._timer.done():
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = None, wake_at
            if wake_at is not None:
                self._timer = asyncio.create_task(self._ring(wake_at))
        self._wakeup.clear()
        await self._wakeup.wait()

    async def _ring(self, when: datetime) -> None:
        await self.engine.clock.sleep_until(when)
        self._wakeup.set()

    def _call_done(self, task: asyncio.Task[Outcome | None]) -> None:
        self._calls.discard(task)
        if task.cancelled():
            return
        outcome = task.result()  # `_perform` turns every error into an outcome
        if outcome is not None:
            self.inbox.append(outcome)
        self._wakeup.set()


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
