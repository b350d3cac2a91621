"""The engine's public face: starting, recovering and controlling executions, and replicas.

`Engine` owns the runners (runner.py), the engine-wide timer of parked executions, and with
replicas the leases: a claim loop takes due work no replica holds, renews the leases of what runs
here, and stops a runner whose lease another replica took. See runner.py for the runner's loop.

Past the house's ~500 lines because everything that touches the engine's in-memory tables
(runners, parked executions, timers, leases) stays in the one class that owns them.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import random
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from baton.v1 import execution_context_pb2, execution_pb2, journey_pb2, plan_pb2, triggers_pb2

from server.engine.admission import AdmissionLimits
from server.engine.admitter import Admitter
from server.engine.callback import DEFAULT_CALLBACK_DEADLINE
from server.engine.fold import fold, start
from server.engine.inbox import (
    Cancel,
    Command,
    ExecutionStateError,
    InternalFailure,
    Pause,
    Rerun,
    Resume,
    SignalCommand,
    UnknownStepError,
)
from server.engine.model import DEFAULT_EXECUTION_TIMEOUT, Plan, seconds
from server.engine.ports import (
    AgentCaller,
    Clock,
    ExecutionNotFoundError,
    ExecutionRecord,
    ExecutionStore,
    Lease,
    NewExecution,
    ReplicaStore,
)
from server.engine.runner import Runner
from server.engine.state import RERUNNABLE, TERMINAL, ExecutionState
from server.quoting import quote

E = execution_pb2
logger = logging.getLogger(__name__)

HANDOVER_POLL = 0.1
"""Seconds between a replica's tries to claim an execution whose holder it asked to hand it over."""


@dataclass(frozen=True)
class ReplicaConfig:
    """How this engine shares a store with other replicas (needs a store with leases)."""

    owner: str
    """This replica's name, unique among the processes sharing the store."""
    lease_seconds: float = 15.0
    """How long a hold on an execution lasts unless renewed; a dead replica's executions are
    taken over this long after its last renewal. Default 15."""
    claim_interval: float = 1.0
    """Seconds between looks for due work (new, recovered, parked and due, abandoned). Default 1."""
    claim_batch: int = 100
    """The most executions taken per look. Default 100."""


@dataclass(frozen=True)
class EngineConfig:
    """Engine-wide settings."""

    default_execution_timeout: float = DEFAULT_EXECUTION_TIMEOUT
    """Seconds an execution may take when neither request nor plan says. Default 600."""
    restart_delays: tuple[float, ...] = (0.5, 2.0, 10.0, 30.0, 60.0)
    """Waits before a runner that died on an unexpected error (a failed store write, say) is
    started again from the stored events; after the last, the execution is failed (and unwound)."""
    replica: ReplicaConfig | None = None
    """Set when several orchestrator processes share the store; None (the default) when this
    engine is the store's only user (the embedded SQLite default)."""
    admission: AdmissionLimits | None = None
    """Admission control (server/engine/admission.py); None (the default) or limits without
    max_running: every execution starts as it is recorded. Replicas should share one setting."""
    callback_deadline: float = DEFAULT_CALLBACK_DEADLINE
    """Seconds after an execution's end during which its callback is retried (recorded in its
    callback_scheduled event, so a restart keeps the deadline). Default 86,400 (24 h)."""


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
    trace_parent: str = ""
    """The W3C ``traceparent`` of the submitting request's span (empty when tracing is off):
    stored in execution_started, it is the parent of every span of the execution."""
    actor: execution_pb2.Actor | None = None
    """Who submitted it; recorded on the execution_started event (the audit trail)."""
    trigger: triggers_pb2.TriggeringEvent | None = None
    """The event that started it (PublishEvent); None for a client's submission."""
    execution_context: execution_context_pb2.ExecutionContext | None = None
    """The validated execution_context; None when the request gave none."""


#: Called once an execution's terminal event is committed.
TerminalListener = Callable[[ExecutionState], None]
#: Called once a submitted execution is recorded (not for a request_id that found an earlier one).
StartListener = Callable[[ExecutionRecord], None]
#: Called with an execution_id once its runner has recorded that it unwinds or ended.
EndingListener = Callable[[str], None]
#: Called with (agent, operation, seconds) when a step's attempt got its agent's answer (not
#: for compensations, notices or failed attempts): seconds from sending to the answer, by the
#: engine's clock. Called on the event loop, so it must not block (record in memory only).
AttemptListener = Callable[[str, str, float], None]


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
        self._runners: dict[str, Runner] = {}
        self._terminal_listeners: list[TerminalListener] = []
        self._start_listeners: list[StartListener] = []
        self._ending_listeners: list[EndingListener] = []
        self._attempt_listeners: list[AttemptListener] = []
        self._background: set[asyncio.Task[None]] = set()
        self._parked: dict[str, datetime | None] = {}
        """Parked executions → their wake-up time (None: until a command)."""
        self._timers: list[tuple[datetime, str]] = []
        self._timer_changed = asyncio.Event()
        self._timer_task: asyncio.Task[None] | None = None
        self._deaths: dict[str, int] = {}
        """Executions whose runner died → how many times in a row."""
        self._closing = False
        self.replica = self.config.replica
        self._leases: ReplicaStore | None = None
        if self.replica is not None:
            if not hasattr(store, "claim"):
                raise ValueError("replicas need a store with leases (PostgreSQL); this one has none")
            self._leases = cast(ReplicaStore, store)
        self._lease_task: asyncio.Task[None] | None = None
        admission = self.config.admission
        self._admitter: Admitter | None = None
        if admission is not None and admission.bounded:
            interval = self.replica.claim_interval if self.replica is not None else 1.0
            self._admitter = Admitter(store, clock, admission, self._start_admitted, interval=interval)

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

    def add_ending_listener(self, listener: EndingListener) -> None:
        """Registers a function called with the id of every execution here that begins to unwind
        or ends (once per runner): the calls it has waiting to be sent are no longer wanted."""
        self._ending_listeners.append(listener)

    def _notify_ending(self, execution_id: str) -> None:
        for listener in self._ending_listeners:
            try:
                listener(execution_id)
            except Exception:
                logger.exception("ending listener failed for execution %s", execution_id)

    def add_attempt_listener(self, listener: AttemptListener) -> None:
        """Registers a function called with the duration of every successful step attempt here."""
        self._attempt_listeners.append(listener)

    def _notify_attempt(self, agent: str, operation: str, elapsed: float) -> None:
        for listener in self._attempt_listeners:
            try:
                listener(agent, operation, elapsed)
            except Exception:
                logger.exception("attempt listener failed for %s.%s", agent, operation)

    def add_start_listener(self, listener: StartListener) -> None:
        """Registers a function called with the record of every execution submitted here, once it
        is durable (an idempotent resubmission, which returns an earlier execution, is not one)."""
        self._start_listeners.append(listener)

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
        started.trace_parent = submission.trace_parent
        started.deadline.FromDatetime(now + timedelta(seconds=timeout))
        if submission.actor is not None:
            event.actor.CopyFrom(submission.actor)
        if submission.trigger is not None:
            started.trigger.CopyFrom(submission.trigger)
        if submission.execution_context is not None:
            started.execution_context.CopyFrom(submission.execution_context)
        record, created = await self.store.create_execution(
            NewExecution(
                execution_id=submission.execution_id,
                user_id=plan.user_id or submission.user_context.user_id,
                workflow_type=plan.workflow_type,
                plan_id=plan.plan_id,
                request_id=submission.request_id,
                # Unset means medium (baton.v1.Priority), in the queue too: never below low.
                priority=plan.execution_strategy.priority or submission.options.priority or plan_pb2.PRIORITY_MEDIUM,
                created_at=now,
                admission=self.config.admission,
            ),
            event,
        )
        if created:
            self._notify_started(record)
        if record.waiting:
            if created and self._admitter is not None:
                self._admitter.wake()
            return record, created  # queued: started when admitted (server/engine/admission.py)
        if created and not self._closing:
            if self._leases is not None:
                taken = await self._leases.claim(self.lease(), now, 1, [submission.execution_id])
                if submission.execution_id not in taken or submission.execution_id in self._runners:
                    return record, created  # another replica took it first: it runs there
            self._spawn(submission.execution_id, start(event, submission.execution_id))
        return record, created

    async def recover(self) -> int:
        """Takes up every unfinished execution of the store; returns how many it started.

        Alone on its store: parked ones go back on the timer (or wait for a command); the others
        are started. With replicas: takes the due work no replica holds, and starts the loop that
        keeps doing so, renews leases and hands executions over. An execution whose history
        cannot be read or folded is quarantined by its runner, never raised.
        """
        if self._admitter is not None:
            self._admitter.wake()
        if self._leases is not None:
            taken = await self._claim_due()
            if self._lease_task is None and not self._closing:
                self._lease_task = asyncio.create_task(self._lease_loop(), name="engine leases")
            return taken
        resumed = 0
        waiting = 0
        for unfinished in await self.store.unfinished_executions():
            execution_id = unfinished.execution_id
            if execution_id in self._runners or execution_id in self._parked:
                continue
            if unfinished.waiting:
                waiting += 1  # the admitter starts it when a slot is free
                continue
            if unfinished.parked:
                self._park(execution_id, unfinished.wake_at)
            else:
                self._spawn(execution_id)
            resumed += 1
        if waiting and self._admitter is None:
            # Queued under limits this process no longer has: nothing bounds them now.
            resumed += len(await Admitter(self.store, self.clock, AdmissionLimits(), self._start_admitted).admit_now())
        if resumed:
            logger.info("recovered %d unfinished executions (%d parked)", resumed, len(self._parked))
        return resumed

    # ---- admission ------------------------------------------------------------------------------

    async def _start_admitted(self, execution_ids: list[str]) -> None:
        """Starts executions the store just admitted (with replicas: those this one can claim;
        the others are due work for any replica's next claim)."""
        if self._closing:
            return
        ready = [execution_id for execution_id in execution_ids if execution_id not in self._runners]
        if self._leases is not None and ready:
            taken = set(await self._leases.claim(self.lease(), self.clock.now(), len(ready), ready))
            ready = [execution_id for execution_id in ready if execution_id in taken]
        for execution_id in ready:
            if execution_id not in self._runners:
                self._spawn(execution_id)

    async def queue_position(self, execution_id: str) -> int:
        """The execution's place in the admission queue now (1: next); 0 when it does not wait."""
        admission = self.config.admission or AdmissionLimits()
        return await self.store.queue_position(execution_id, admission.aging_seconds, self.clock.now())

    # ---- commands -------------------------------------------------------------------------------

    async def cancel(self, execution_id: str, reason: str, *, actor: execution_pb2.Actor | None = None) -> None:
        """Cancels an execution; returns once its unwinding (or end) is durable.

        Completed steps that declare a compensation are compensated before it ends CANCELLED.
        Cancelling an execution that has ended or is ending does nothing.
        `actor` (here and in pause, resume and signal's command) is recorded on the event the
        command causes: the audit trail.

        Raises:
            ExecutionNotFoundError: no such execution.
        """
        await self._command(execution_id, Cancel(reason, actor))

    async def pause(self, execution_id: str, reason: str, *, actor: execution_pb2.Actor | None = None) -> None:
        """Pauses a running execution; returns once the pause is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: the execution is not running (the message names its state).
        """
        await self._command(execution_id, Pause(reason, actor))

    async def resume(self, execution_id: str, reason: str, *, actor: execution_pb2.Actor | None = None) -> None:
        """Resumes a paused execution; returns once the resumption is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: the execution is not paused (the message names its state).
        """
        await self._command(execution_id, Resume(reason, actor))

    async def signal(self, execution_id: str, command: SignalCommand) -> None:
        """Gives a waiting step a signal; returns once the signal is durable.

        Raises:
            ExecutionNotFoundError: no such execution.
            ExecutionStateError: no step waits, the named one does not, or the payload does not
                fit it (the message says which).
        """
        await self._command(execution_id, command)

    async def rerun(
        self,
        execution_id: str,
        reason: str,
        *,
        from_step: str = "",
        request_id: str = "",
        actor: execution_pb2.Actor | None = None,
    ) -> None:
        """Reruns a failed or cancelled execution; returns once the rerun is durable (rerun.py).

        It runs again at once, whatever the admission limits (a rerun does not queue), on this
        replica (with replicas: taken over from whichever holds it).

        Raises:
            ExecutionNotFoundError: no such execution.
            UnknownStepError: `from_step` is not a step of the execution's plan.
            ExecutionStateError: the execution is not failed or cancelled, was cancelled before it
                ever started, or is quarantined (the message says which).
        """
        if from_step:
            first = await self.store.read_events(execution_id, limit=1)
            if not first:
                raise ExecutionNotFoundError(execution_id)
            if from_step not in {step.step_id for step in first[0].execution_started.plan.workflow_steps}:
                raise UnknownStepError(f"from_step: execution {execution_id} has no step {quote(from_step)}")
        await self._command(execution_id, Rerun(reason, from_step, request_id, actor))

    async def _command(self, execution_id: str, command: Command) -> None:
        runner = self._runners.get(execution_id)
        if runner is None:
            record = await self.store.get_execution(execution_id)
            if record is None:
                raise ExecutionNotFoundError(execution_id)
            if isinstance(command, Rerun):
                if await self._rerun_answered(record, command):
                    return
            elif record.state in TERMINAL:
                if isinstance(command, Cancel):
                    return
                raise ExecutionStateError(f"execution {execution_id} is {_state_name(record.state)}")
            if record.waiting and not isinstance(command, Cancel):
                position = await self.queue_position(execution_id)
                raise ExecutionStateError(
                    f"execution {execution_id} is queued (position {position}), waiting for admission;"
                    " only cancel acts on it before it starts"
                )
            runner = self._runners.get(execution_id)
            ended = record.state in TERMINAL  # only a rerun gets here with an ended execution
            if runner is None and self._leases is not None and not await self._take_over(execution_id, ended=ended):
                raise ExecutionStateError(
                    f"execution {execution_id} is held by another replica that did not hand it over; retry"
                )
            runner = self._runners.get(execution_id) or self._spawn(execution_id)
        await runner.submit(command)

    async def _rerun_answered(self, record: ExecutionRecord, rerun: Rerun) -> bool:
        """Checks a rerun against the execution's record before any runner is started for it.

        Refused from the record (with replicas, asking the holder to hand the execution over
        would be for nothing); `decide` checks again against the folded state.

        Returns:
            True when the rerun is a retried request already recorded: nothing more to do.

        Raises:
            ExecutionStateError: quarantined, cancelled while queued (never started), or in a
                state other than failed or cancelled (the message names it).
        """
        execution_id, name = record.execution_id, _state_name(record.state)
        if record.quarantine_error:
            raise ExecutionStateError(f"execution {execution_id} is quarantined (its history cannot be read)")
        if record.state in RERUNNABLE and record.waiting:
            raise ExecutionStateError(
                f"execution {execution_id} is {name} and never started (it was cancelled while queued); submit it again"
            )
        if record.state in RERUNNABLE:
            return False
        if rerun.request_id:
            events = await self.store.read_events(execution_id)
            if rerun.request_id in fold(execution_id, events).rerun_requests:
                return True
        raise ExecutionStateError(f"execution {execution_id} is {name}; only a failed or cancelled one can be rerun")

    def forget(self, execution_ids: Iterable[str]) -> None:
        """Drops what this engine holds in memory of executions deleted from the store.

        They are finished (the store deletes no other), so normally nothing is held; a runner
        still there (a quarantined execution's, say) is stopped without recording anything.
        """
        for execution_id in execution_ids:
            self._unpark(execution_id)
            self._deaths.pop(execution_id, None)
            runner = self._runners.pop(execution_id, None)
            if runner is not None:
                runner.fail_waiters(ExecutionNotFoundError(execution_id))
                runner.task.cancel()

    # ---- stopping -------------------------------------------------------------------------------

    async def close(self, *, release: bool = True) -> None:
        """Stops every runner and the timer without recording anything: they resume on restart.

        Args:
            release: with replicas, free this engine's executions at once so another replica
                goes on with them now, not when the leases lapse (False: as if the process died).
        """
        self._closing = True
        if self._admitter is not None:
            await self._admitter.close()
        held = list(self._runners)
        tasks = [*self._background, *(r.task for r in self._runners.values())]
        for task in (self._timer_task, self._lease_task):
            if task is not None:
                tasks.append(task)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if release and self._leases is not None and self.replica is not None and held:
            try:
                await self._leases.release(self.replica.owner, held)
            except Exception:
                logger.exception(
                    "releasing %d executions failed; they are taken over when their leases lapse", len(held)
                )

    # ---- replicas ---------------------------------------------------------------------------------

    def lease(self) -> Lease:
        """This replica's lease as of now."""
        replica = self.replica
        if replica is None:
            raise RuntimeError("this engine runs without replicas")
        return Lease(replica.owner, self.clock.now() + timedelta(seconds=replica.lease_seconds))

    async def _take_over(self, execution_id: str, *, ended: bool = False) -> bool:
        """Holds the execution here for a command: claims it, asking its holder to hand it over.

        The holder stops its runner and releases the execution at its next look (every
        claim_interval); this waits for that, at most a lease and two looks (a dead holder's
        lease lapses in that time too). `ended`: the execution has ended (a rerun takes it).
        """
        leases, replica = self._leases, self.replica
        if leases is None or replica is None:
            return False
        if execution_id in await leases.claim(self.lease(), self.clock.now(), 1, [execution_id], ended=ended):
            return True
        await leases.want(execution_id, replica.owner)
        give_up = self.clock.now() + timedelta(seconds=replica.lease_seconds + 2 * replica.claim_interval)
        while self.clock.now() < give_up:
            await self.clock.sleep_until(self.clock.now() + timedelta(seconds=HANDOVER_POLL))
            if execution_id in self._runners:
                return True  # taken by this replica's own claim loop meanwhile
            if execution_id in await leases.claim(self.lease(), self.clock.now(), 1, [execution_id], ended=ended):
                return True
        return False

    async def _hand_over(self) -> None:
        """Stops and releases the executions other replicas asked for (a command reached them)."""
        leases, replica = self._leases, self.replica
        if leases is None or replica is None:
            return
        wanted = await leases.wanted(replica.owner)
        for execution_id in wanted:
            runner = self._runners.get(execution_id)
            if runner is not None:
                logger.info("execution %s: handed over to the replica that got a command for it", execution_id)
                self._runner_lost(runner)
        if wanted:
            await leases.release(replica.owner, wanted)

    async def _claim_due(self) -> int:
        """Takes due work no replica holds (new, recovered, due, abandoned) and starts it here."""
        if self._leases is None or self.replica is None or self._closing:
            return 0
        taken = await self._leases.claim(self.lease(), self.clock.now(), self.replica.claim_batch)
        started = 0
        for execution_id in taken:
            if execution_id not in self._runners:
                self._spawn(execution_id)
                started += 1
        if started:
            logger.info("took %d executions", started)
        return started

    async def _lease_loop(self) -> None:
        """Renews the leases of the executions running here, and takes due work, forever."""
        replica = self.replica
        if replica is None or self._leases is None:
            return
        renewed_at = self.clock.now()
        while not self._closing:
            await self.clock.sleep_until(self.clock.now() + timedelta(seconds=replica.claim_interval))
            try:
                if (self.clock.now() - renewed_at).total_seconds() >= replica.lease_seconds / 3:
                    running = list(self._runners)
                    held = await self._leases.renew(self.lease(), running)
                    renewed_at = self.clock.now()
                    for execution_id in running:
                        runner = self._runners.get(execution_id)
                        if execution_id not in held and runner is not None:
                            self._runner_lost(runner)
                await self._hand_over()
                await self._claim_due()
            except Exception:
                logger.exception("lease renewal, hand-over or claim failed; trying again")

    def _runner_lost(self, runner: Runner) -> None:
        """Another replica holds (or is taking) the execution now: stop here quietly, record nothing."""
        logger.warning("execution %s: another replica goes on with it", runner.execution_id)
        if self._runners.get(runner.execution_id) is runner:
            del self._runners[runner.execution_id]
        runner.fail_waiters(ExecutionStateError(f"execution {runner.execution_id} moved to another replica; retry"))
        runner.task.cancel()

    async def _append(self, execution_id: str, events: list[execution_pb2.ExecutionEvent], state: int) -> None:
        if self._leases is not None:
            await self._leases.append_fenced(self.lease(), execution_id, events, state)
        else:
            await self.store.append(execution_id, events, state)

    # ---- runners, parking and the timer ---------------------------------------------------------

    def _spawn(self, execution_id: str, state: ExecutionState | None = None) -> Runner:
        """Starts a runner (which folds the stored history itself when `state` is None)."""
        self._unpark(execution_id)
        runner = Runner(self, execution_id, state)
        self._runners[execution_id] = runner
        runner.task = asyncio.create_task(runner.run(), name=f"execution {execution_id}")
        return runner

    def _park(self, execution_id: str, wake_at: datetime | None) -> None:
        if self._leases is not None:
            return  # parked executions are free: whichever replica looks first when due takes it
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

    def _runner_ended(self, runner: Runner, wake_at: datetime | None, parked: bool) -> None:
        if self._runners.get(runner.execution_id) is runner:
            del self._runners[runner.execution_id]
        self._deaths.pop(runner.execution_id, None)
        if parked and not self._closing:
            self._park(runner.execution_id, wake_at)

    def _runner_died(self, runner: Runner, error: BaseException) -> None:
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

    def _notify_started(self, record: ExecutionRecord) -> None:
        for listener in self._start_listeners:
            try:
                listener(record)
            except Exception:
                logger.exception("start listener failed for execution %s", record.execution_id)

    def _notify_terminal(self, state: ExecutionState) -> None:
        if self._admitter is not None:
            self._admitter.wake()  # its slot is free
        for listener in self._terminal_listeners:
            try:
                listener(state)
            except Exception:
                logger.exception("terminal listener failed for execution %s", state.execution_id)


def _state_name(state: int) -> str:
    """An ExecutionState value in words ("failed", "running"), for messages."""
    return E.ExecutionState.Name(state).removeprefix("EXECUTION_STATE_").lower()
