"""Builders and a driver for the engine's unit tests."""

from __future__ import annotations

import asyncio
import random
from datetime import timedelta
from typing import Any

from baton.v1 import execution_pb2, journey_pb2, plan_pb2

from server.engine import AgentCaller, Engine, EngineConfig, ExecutionState, Submission, fold
from server.store.base import TERMINAL_STATES
from tests.unit.fakes import START, FakeCaller, FakeClock, MemoryStore
from tests.unit.fleet import LedgerFleet


def step(
    step_id: str,
    *deps: str,
    agent: str = "analytics",
    operation: str = "RecordEvents",
    config: dict[str, Any] | None = None,
    timeout: float | None = None,
    retries: int | None = None,
    fallback: int = 0,
    optional: bool = False,
    alternative: tuple[str, str] | None = None,
) -> plan_pb2.WorkflowStep:
    s = plan_pb2.WorkflowStep(step_id=step_id, agent=agent, operation=operation, dependencies=deps, optional=optional)
    s.inputs.configuration.update(config or {"user_id": "${user.user_id}"})
    if timeout is not None:
        s.timing.timeout.FromNanoseconds(int(timeout * 1e9))
    if retries is not None:
        s.error_handling.retry_count = retries
    s.error_handling.fallback_action = fallback  # type: ignore[assignment]
    if alternative:
        s.error_handling.alternative.agent, s.error_handling.alternative.operation = alternative
    return s


def submit_step(
    step_id: str = "submit", *deps: str, job_ids: list[str] | str = "j1,j2", **kw: Any
) -> plan_pb2.WorkflowStep:
    """A SubmitApplication step compensated by WithdrawApplication of what it submitted."""
    jobs: Any = job_ids.split(",") if isinstance(job_ids, str) and not job_ids.startswith("$") else job_ids
    s = step(
        step_id,
        *deps,
        agent="automation",
        operation="SubmitApplication",
        config={"user_id": "${user.user_id}", "job_ids": jobs},
        **kw,
    )
    s.compensation.agent, s.compensation.operation = "automation", "WithdrawApplication"
    s.compensation.configuration.update(
        {"user_id": "${user.user_id}", "application_ids": f"${{steps.{step_id}.applications[*].application_id}}"}
    )
    return s


def approval_step(
    step_id: str, *deps: str, data: dict[str, Any], timeout: float = 3600.0, on_timeout: int = 0
) -> plan_pb2.WorkflowStep:
    """An approval step showing `data`."""
    s = plan_pb2.WorkflowStep(step_id=step_id, kind=plan_pb2.STEP_KIND_APPROVAL, dependencies=deps)
    s.approval.prompt = f"approve {step_id}?"
    s.approval.data.update(data)
    s.approval.timeout.FromNanoseconds(int(timeout * 1e9))
    s.approval.on_timeout = on_timeout  # type: ignore[assignment]
    return s


def plan(
    *steps: plan_pb2.WorkflowStep, mode: int = 0, max_concurrency: int = 0, **retry: Any
) -> plan_pb2.OrchestrationPlan:
    p = plan_pb2.OrchestrationPlan(plan_id="plan-1", user_id="u1", workflow_type="test", workflow_steps=steps)
    p.execution_strategy.execution_mode = mode  # type: ignore[assignment]
    p.execution_strategy.max_concurrency = max_concurrency
    policy = p.execution_strategy.retry_policy
    for key, value in retry.items():
        if key in ("initial_backoff", "max_backoff"):
            getattr(policy, key).FromNanoseconds(int(value * 1e9))
        else:
            setattr(policy, key, value)
    return p


def w_plan() -> plan_pb2.OrchestrationPlan:
    """BENCH.md's workload shape: A -> (B, C, D) -> E."""
    return plan(step("A"), step("B", "A"), step("C", "A"), step("D", "A"), step("E", "B", "C", "D"))


class Harness:
    """An engine over a fake clock, a fake caller (or a ledger fleet) and a memory store."""

    def __init__(
        self,
        latency: float = 0.0,
        seed: int = 7,
        *,
        store: MemoryStore | None = None,
        config: EngineConfig | None = None,
    ) -> None:
        self.clock = FakeClock()
        self.caller = FakeCaller(self.clock, latency=latency)
        self.fleet = LedgerFleet(self.clock, latency=latency)
        self.store = store or MemoryStore()
        self.config = config
        self.seed = seed
        self.engine = self._engine(self.caller)
        self._ids = 0

    def _engine(self, caller: AgentCaller) -> Engine:
        return Engine(self.store, caller, self.clock, config=self.config, rng=random.Random(self.seed))

    def use_fleet(self) -> LedgerFleet:
        """Makes the engine call the ledger fleet instead of the scripted caller."""
        self.engine = self._engine(self.fleet)
        return self.fleet

    async def restart(self) -> None:
        """The process dies (nothing more is recorded) and a new engine recovers from the store."""
        caller = self.engine.caller
        await self.engine.close()
        self.engine = self._engine(caller)
        await self.engine.recover()

    async def submit(
        self,
        p: plan_pb2.OrchestrationPlan,
        *,
        execution_timeout: float | None = None,
        user: dict[str, Any] | None = None,
    ) -> str:
        self._ids += 1
        execution_id = f"ex-{self._ids}"
        options = journey_pb2.ExecutionOptions()
        if execution_timeout is not None:
            options.timeout.FromNanoseconds(int(execution_timeout * 1e9))
        ctx = journey_pb2.UserJourney(user_id="u1")
        if user:
            ctx.data.update(user)
        await self.engine.submit(Submission(execution_id=execution_id, plan=p, user_context=ctx, options=options))
        return execution_id

    def status(self, execution_id: str) -> int:
        return self.store.records[execution_id].state

    async def settle(self) -> None:
        for _ in range(50):
            await asyncio.sleep(0)

    async def run(self, execution_id: str, max_rounds: int = 500) -> ExecutionState:
        """Lets the engine run, skipping the fake clock ahead, until the execution is terminal."""
        for _ in range(max_rounds):
            await self.settle()
            if self.store.records[execution_id].state in TERMINAL_STATES:
                return self.state(execution_id)
            wake = self.clock.next_wake()
            if wake is None:
                raise AssertionError(f"execution {execution_id} is stuck: nothing to wait for")
            self.clock.advance_to(wake)
        raise AssertionError(f"execution {execution_id} did not end in {max_rounds} rounds")

    def state(self, execution_id: str) -> ExecutionState:
        return fold(execution_id, self.store.events[execution_id])

    def kinds(self, execution_id: str) -> list[str]:
        return [e.WhichOneof("kind") or "" for e in self.store.events[execution_id]]


def started_event(p: plan_pb2.OrchestrationPlan | None = None) -> execution_pb2.ExecutionEvent:
    """The execution_started event of execution "ex" for user u1, at START, with a 600 s deadline."""
    event = execution_pb2.ExecutionEvent(sequence=1)
    event.time.FromDatetime(START)
    event.execution_started.plan.CopyFrom(p or plan(step("A"), step("B", "A")))
    event.execution_started.user_context.user_id = "u1"
    event.execution_started.deadline.FromDatetime(START + timedelta(seconds=600))
    return event
