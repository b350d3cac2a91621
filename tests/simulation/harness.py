"""The crash-point simulation's machinery: a store and a fleet that can "crash the process", and a driver.

A run is the pure engine over an in-memory store (the SQLite contract, tests/unit/memory_store.py),
a fake clock and the ledger fleet (tests/unit/fleet.py), all seeded. A crash is a process dying
at one point: a store write that never lands (before its commit) or an agent that applied its
effect and never answered. Nothing more is written; the engine is closed (its tasks cancelled),
and a new engine recovers from the store and runs the execution to its end. The driver plays the
person: it approves, rejects, pauses, resumes or cancels from what the stored history shows, so
it does the same after a crash as before; it may also rerun an execution that ended.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from baton.v1 import execution_pb2 as E
from baton.v1 import journey_pb2, plan_pb2

from server.engine import Engine, ExecutionState, ExecutionStateError, SignalCommand, Submission, fold
from server.engine.inbox import Cancel, Command, Pause, Rerun, Resume
from server.engine.state import Phase
from tests.unit.fakes import FakeClock
from tests.unit.fleet import Fault, LedgerFleet
from tests.unit.memory_store import MemoryStore

EXECUTION = "sim-1"
USER = "sim-user"
MAX_ROUNDS = 400


class _Crashed(Exception):
    """The simulated process died."""


class CrashingStore(MemoryStore):
    """A memory store whose `crash_at`-th write (append or park) never lands: the process died first."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.crash_at: int | None = None
        self.crashed = False

    async def _maybe_crash(self) -> None:
        self.writes += 1
        if self.crash_at is not None and self.writes == self.crash_at:
            self.crashed = True
            await asyncio.get_running_loop().create_future()  # never returns: cancelled by the "kill"

    async def append(self, execution_id: str, events: Sequence[E.ExecutionEvent], state: int) -> None:
        await self._maybe_crash()
        await super().append(execution_id, events, state)

    async def park(self, execution_id: str, wake_at: datetime | None) -> None:
        await self._maybe_crash()
        await super().park(execution_id, wake_at)


Driver = Callable[[ExecutionState], Command | None]
"""Decides, from the stored state, what the person does now (None: nothing)."""


@dataclass
class Scenario:
    """One workflow run to crash at every point."""

    name: str
    plan: Callable[[], plan_pb2.OrchestrationPlan]
    faults: dict[str, list[Fault]] = field(default_factory=dict)
    driver: Driver | None = None
    user: Callable[[], journey_pb2.UserJourney] = lambda: journey_pb2.UserJourney(user_id=USER)
    timeout: float = 7200.0
    latency: float = 1.0
    """Seconds (on the fake clock) each agent call takes, so that calls are in flight between writes."""


@dataclass
class Outcome:
    """What one run ended with."""

    state: ExecutionState
    events: list[E.ExecutionEvent]
    fleet: LedgerFleet
    writes: int
    effects: int


class Run:
    """One run of a scenario, optionally crashing at one point."""

    def __init__(
        self, scenario: Scenario, seed: int, *, crash_write: int | None = None, crash_effect: int | None = None
    ) -> None:
        self.scenario = scenario
        self.seed = seed
        self.clock = FakeClock()
        self.store = CrashingStore()
        self.store.crash_at = crash_write
        self.fleet = LedgerFleet(self.clock, latency=scenario.latency, hang_at_effect=crash_effect)
        for operation, faults in scenario.faults.items():
            self.fleet.fail(operation, *faults)
        self.engine = self._engine()
        self.commands: set[asyncio.Task[None]] = set()
        self.recovered = 0

    def _engine(self) -> Engine:
        return Engine(self.store, self.fleet, self.clock, rng=random.Random(self.seed))

    async def settle(self) -> None:
        for _ in range(30):
            await asyncio.sleep(0)

    async def crash_and_recover(self) -> None:
        """Kills the engine (nothing more is written) and recovers from the store with a new one."""
        await self.engine.close()
        for task in self.commands:
            task.cancel()
        await asyncio.gather(*self.commands, return_exceptions=True)
        self.commands.clear()
        self.store.crash_at = None
        self.store.crashed = False
        self.fleet.hang_at_effect = None
        self.fleet.hung = False
        self.engine = self._engine()
        await self.engine.recover()
        self.recovered += 1

    def state(self) -> ExecutionState:
        return fold(EXECUTION, self.store.events[EXECUTION])

    async def run(self) -> Outcome:
        scenario = self.scenario
        options = journey_pb2.ExecutionOptions()
        options.timeout.FromSeconds(int(scenario.timeout))
        plan = scenario.plan()
        await self.engine.submit(
            Submission(execution_id=EXECUTION, plan=plan, user_context=scenario.user(), options=options)
        )
        for _ in range(MAX_ROUNDS):
            await self.settle()
            if self.store.crashed or self.fleet.hung:
                await self.crash_and_recover()
                continue
            state = self.state()
            if state.terminal:
                rerun = scenario.driver(state) if scenario.driver is not None else None
                if isinstance(rerun, Rerun):  # the person reruns the ended execution
                    if not self.commands:
                        self._issue(rerun)
                    continue
                await self.settle()
                events = self.store.events[EXECUTION]
                return Outcome(state, events, self.fleet, self.store.writes, len(self.fleet.effects))
            if not self.commands and scenario.driver is not None:
                command = scenario.driver(state)
                if command is not None:
                    self._issue(command)
                    continue
            wake = self.clock.next_wake()
            if wake is None:
                if self.commands:
                    continue
                raise AssertionError(f"{scenario.name}: stuck in {state.state_name} with nothing to wait for")
            self.clock.advance_to(wake)
        raise AssertionError(f"{scenario.name}: no end after {MAX_ROUNDS} rounds")

    def _issue(self, command: Command) -> None:
        engine = self.engine

        async def give() -> None:
            try:
                if isinstance(command, SignalCommand):
                    await engine.signal(EXECUTION, command)
                elif isinstance(command, Pause):
                    await engine.pause(EXECUTION, command.reason)
                elif isinstance(command, Resume):
                    await engine.resume(EXECUTION, command.reason)
                elif isinstance(command, Cancel):
                    await engine.cancel(EXECUTION, command.reason)
                elif isinstance(command, Rerun):
                    await engine.rerun(
                        EXECUTION, command.reason, from_step=command.from_step, request_id=command.request_id
                    )
            except (ExecutionStateError, RuntimeError):
                pass  # overtaken by the state, or the process "died" before it was recorded

        task = asyncio.ensure_future(give())
        self.commands.add(task)
        task.add_done_callback(self.commands.discard)


# ---- the invariants --------------------------------------------------------------------------


def violations(scenario: Scenario, outcome: Outcome) -> list[str]:
    """Every invariant the run broke, in words (empty when it broke none)."""
    found: list[str] = []
    state, events, fleet = outcome.state, outcome.events, outcome.fleet
    if not state.terminal:
        found.append(f"not terminal: {state.state_name}")
    sequences = [e.sequence for e in events]
    if sequences != list(range(1, len(events) + 1)):
        found.append(f"history has gaps or repeats: {sequences}")
    twice = [key for key, count in Counter(fleet.effects).items() if count > 1]
    if twice:
        found.append(f"effects applied twice: {twice}")
    undone_failed = any(
        r.compensation is not None and r.compensation.state == E.COMPENSATION_STATE_FAILED for r in state.steps.values()
    )
    if state.status != E.EXECUTION_STATE_COMPLETED and fleet.live(USER) and not undone_failed:
        found.append(f"{state.state_name} run left live applications: {[a.job_id for a in fleet.live(USER)]}")
    # Within one run: a rerun applies again, under its own keys, what an earlier run withdrew.
    jobs = Counter((a.job_id, _run_of(a.key)) for a in fleet.applications.values())
    if any(count > 1 for count in jobs.values()):
        found.append(f"a job was applied to more than once in a run: {jobs}")
    completed_at = {r.step_id: r.completed_at for r in state.steps.values() if r.completed_at}
    compensated = []
    for event in events:
        if event.WhichOneof("kind") == "compensation_started" and event.compensation_started.attempt == 1:
            compensated.append(event.compensation_started.step_id)
    expected = sorted(compensated, key=lambda sid: -completed_at.get(sid, 0))
    if compensated != expected:
        found.append(f"compensations ran in {compensated}, not in reverse completion order {expected}")
    for run in state.steps.values():
        if run.phase not in (Phase.COMPLETED, Phase.FAILED, Phase.SKIPPED):
            found.append(f"step {run.step_id} left {run.phase.value}")
    return found


def _run_of(key: str) -> str:
    """The run an idempotency key belongs to: ``run-N`` after a rerun (rerun.py, rule 4), else ``run-1``."""
    parts = key.split("/")
    return parts[1] if len(parts) > 2 and parts[1].startswith("run-") else "run-1"
