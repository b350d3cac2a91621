"""The engine: each running execution is a runner task, an I/O loop around `decide`.

A runner folds its execution's events, then repeats: decide → append the events (durable before
anything acts on them) → answer the commands → perform the launches → wait for an outcome, a
command or the decided wake-up time. When nothing is in flight it *parks*: it records in the
store when it must wake (`park`) and ends, holding no task, timer or output in memory. One
engine-wide timer (a heap of wake-up times, read from the store on start) starts a runner again
when a parked execution's time comes; a command (cancel, pause, resume, signal) starts one at
once, and a rerun starts one on an ended execution (which it takes back to running). A runner
that dies on an unexpected error is started again from the store with growing
waits; after the last, the execution is failed with an internal-error cause and unwound, and
if even that cannot run it is quarantined. An execution whose history cannot be read or folded
is quarantined (marked FAILED in the store, logged), never allowed to stop the engine.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from datetime import datetime
from typing import TYPE_CHECKING

from server.engine.decide import Decision, Launch, decide
from server.engine.fold import fold
from server.engine.inbox import Command, ExecutionStateError, InboxItem, Outcome
from server.engine.ports import (
    AgentCallError,
    AgentReply,
    CallKind,
    CallOrigin,
    CallTrace,
    Cancellable,
    ExecutionNotFoundError,
    LeaseLostError,
    SequenceConflictError,
)
from server.engine.state import ExecutionState
from server.engine.task_context import EXECUTION_ID, TRACE_ID

if TYPE_CHECKING:
    from server.engine.engine import Engine

logger = logging.getLogger(__name__)

MAX_CONFLICTS = 3
"""Appends in a row another writer may overtake before the runner gives up (and is restarted)."""


class Runner:
    """The I/O loop of one execution, around `decide` (see the module docstring)."""

    task: asyncio.Task[None]

    def __init__(self, engine: Engine, execution_id: str, state: ExecutionState | None) -> None:
        self.engine = engine
        self.execution_id = execution_id
        self.state = state
        self.inbox: list[InboxItem] = []
        self._waiters: list[tuple[Command, asyncio.Future[None]]] = []
        self._calls: set[asyncio.Task[Outcome | None]] = set()
        # What `_wait` awaits (only while it waits): a future, not an asyncio.Event, whose deque
        # of waiters would be ~0.7 kB per held execution (bench/README.md, the third pass).
        self._woken: asyncio.Future[None] | None = None
        # The decided wake-up as a loop timer, not a task sleeping until then (~2 kB less).
        self._timer: Cancellable | None = None
        self._timer_at: datetime | None = None
        self._ending_told = False

    async def submit(self, command: Command) -> None:
        """Hands the runner a command; returns once it is recorded (or raises why it was refused)."""
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append((command, future))
        self.inbox.append(command)
        self._wake()
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            # The caller went away (its RPC was cancelled): the outcome is no one's to read.
            future.add_done_callback(_consume)
            raise

    async def run(self) -> None:
        engine = self.engine
        # This task's own context (a copy): the calls it starts inherit it, nothing else sees it.
        EXECUTION_ID.set(self.execution_id)
        try:
            if self.state is None:
                self.state = await self._load()
                if self.state is None:
                    return
            TRACE_ID.set(self.state.trace_id)
            await self._loop(self.state)
        except asyncio.CancelledError:
            self.fail_waiters(RuntimeError("the orchestrator is stopping"))
            raise
        except Exception as exc:
            logger.exception("execution %s: runner died", self.execution_id)
            self.fail_waiters(RuntimeError(f"execution {self.execution_id}: runner died"))
            engine._runner_died(self, exc)
        finally:
            for task in self._calls:
                task.cancel()
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

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
            self.fail_waiters(ExecutionStateError(f"execution {self.execution_id} is quarantined: {exc}"))
            await engine._quarantine(self.execution_id, f"its history cannot be read: {exc}")
            return None

    async def _loop(self, state: ExecutionState) -> None:
        engine = self.engine
        relaunch = True
        conflicts = 0
        while True:
            inbox, self.inbox = self.inbox, []
            waiters, self._waiters = self._waiters, []
            decision = decide(
                state,
                engine.clock.now(),
                inbox,
                rng=engine.rng.random,
                relaunch=relaunch,
                callback_deadline=engine.config.callback_deadline,
            )
            relaunch = False
            if decision.events:
                try:
                    await engine._append(self.execution_id, decision.events, state.status)
                except LeaseLostError:
                    self._waiters[:0] = waiters
                    self.fail_waiters(ExecutionStateError(f"execution {self.execution_id} moved to another replica"))
                    engine._runner_lost(self)
                    return
                except SequenceConflictError:
                    # Another writer appended first: the callback relay settling an earlier
                    # run's callback while a rerun runs (fold rule 8). Nothing of this decision
                    # was recorded; read the history again and decide anew, same commands.
                    conflicts += 1
                    if conflicts > MAX_CONFLICTS:
                        self._waiters[:0] = waiters
                        raise
                    self.inbox[:0] = inbox
                    self._waiters[:0] = waiters
                    reloaded = await self._load()
                    if reloaded is None:
                        return
                    state = self.state = reloaded
                    continue
                except ExecutionNotFoundError as gone:
                    # Deleted meanwhile (retention, DeleteUserData): an ended execution a rerun
                    # reached just as it went. Nothing to run; nothing to restart.
                    self._waiters[:0] = waiters
                    self.fail_waiters(gone)
                    engine._runner_ended(self, None, parked=False)
                    return
                except BaseException:
                    # Nothing was recorded: the commands this decision took are answered with the
                    # failure (by run()), not left waiting for ever.
                    self._waiters[:0] = waiters
                    raise
            conflicts = 0
            self._answer(inbox, waiters, decision)
            if (state.unwinding is not None or state.terminal) and not self._ending_told:
                self._ending_told = True
                engine._notify_ending(self.execution_id)
            for launch in decision.launches:
                if launch.notice:
                    # Nothing waits for a notice: it outlives the runner (the decision that fails
                    # a step may also end the execution), as one of the engine's background tasks.
                    engine._later(self._notice(launch))
                    continue
                task = asyncio.create_task(self._perform(launch))
                task.add_done_callback(self._call_done)
                self._calls.add(task)
            if state.terminal:
                engine._runner_ended(self, None, parked=False)
                if decision.events:
                    # It ended just now. A runner started on an ended execution (for a rerun that
                    # was refused or already recorded) recorded nothing: nobody is told again.
                    engine._notify_terminal(state)
                return
            if not self._calls and not self.inbox:
                await engine.store.park(self.execution_id, decision.wake_at)
                if not self.inbox:  # a command that came during the write keeps it running
                    engine._runner_ended(self, decision.wake_at, parked=True)
                    return
            wake_at = decision.wake_at
            # Nothing of this turn is kept while the runner waits (the outcomes' replies, the
            # decision's events): a held execution holds only its state and its calls.
            del inbox, waiters, decision
            await self._wait(wake_at)

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

    def fail_waiters(self, error: Exception) -> None:
        for _, future in self._waiters:
            if not future.done():
                future.set_exception(error)
        self._waiters = []

    async def _perform(self, launch: Launch) -> Outcome | None:
        result: AgentReply | AgentCallError
        call = launch.call
        trace_parent = self.state.started.trace_parent if self.state is not None else ""
        kind: CallKind = "notice" if launch.notice else "compensation" if launch.compensation else "step"
        origin = CallOrigin(self.execution_id, launch.step_id, launch.attempt, kind)
        # The edge (agents_clients) makes the attempt's span, a child of the stored context.
        trace = CallTrace(self.execution_id, launch.step_id, kind, trace_parent) if trace_parent else None
        call = replace(call, origin=origin, trace=trace)
        sent = self.engine.clock.now()
        try:
            result = await self.engine.caller.call(call)
            if kind == "step":
                # Where a step's attempt ends: its duration feeds the estimates (in memory only).
                elapsed = (self.engine.clock.now() - sent).total_seconds()
                self.engine._notify_attempt(call.agent, call.operation, elapsed)
        except AgentCallError as exc:
            result = exc
        except Exception as exc:
            logger.exception("execution %s: step %s: the caller raised", self.execution_id, launch.step_id)
            # The caller broke its contract (it raises only AgentCallError): a bug, not a reason to retry.
            result = AgentCallError("INTERNAL", repr(exc)[:2000], retryable=False)
        if launch.notice:
            if isinstance(result, AgentCallError):
                logger.warning("execution %s: notice for step %s failed: %s", self.execution_id, launch.step_id, result)
            return None
        return Outcome(launch.step_id, launch.attempt, result, compensation=launch.compensation, item=launch.item)

    async def _notice(self, launch: Launch) -> None:
        await self._perform(launch)

    async def _wait(self, wake_at: datetime | None) -> None:
        """Returns when an outcome or a command arrives, or at `wake_at`."""
        if self.inbox:
            return  # something came in while the last decision was being written
        if self._timer is None or self._timer_at != wake_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = None, wake_at
            if wake_at is not None:
                self._timer = self.engine.clock.call_at(wake_at, self._ring)
        woken = self._woken = asyncio.get_running_loop().create_future()
        try:
            await woken
        finally:
            self._woken = None

    def _ring(self) -> None:
        self._timer = None
        self._wake()

    def _wake(self) -> None:
        woken = self._woken
        if woken is not None and not woken.done():
            woken.set_result(None)

    def _call_done(self, task: asyncio.Task[Outcome | None]) -> None:
        self._calls.discard(task)
        if task.cancelled():
            return
        outcome = task.result()  # `_perform` turns every error into an outcome
        if outcome is not None:
            self.inbox.append(outcome)
        self._wake()


def _consume(future: asyncio.Future[None]) -> None:
    if not future.cancelled():
        future.exception()
