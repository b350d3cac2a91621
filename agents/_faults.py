"""Fault injection: the faults an agent injects into its own operations, and the service that sets them."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field

import grpc
from baton.v1 import common_pb2, faults_pb2, faults_pb2_grpc

from agents._runtime import AgentError, AgentRuntime, InjectedFault, abort, invalid_argument

logger = logging.getLogger(__name__)

#: The exit status of a process killed by SIGKILL, which an injected crash imitates.
CRASH_EXIT_STATUS = 137
#: The account health values board_health may set.
_ACCOUNT_HEALTH = frozenset(
    {common_pb2.ACCOUNT_HEALTH_ACTIVE, common_pb2.ACCOUNT_HEALTH_LIMITED, common_pb2.ACCOUNT_HEALTH_SUSPENDED}
)


@dataclass(eq=False)
class FaultState:
    """One fault configuration in force, with its remaining counters.

    A configuration set for every agent at once is one FaultState shared by all of them, so its
    counters count the fleet's operations (``fail_next=2`` fails the fleet's next two operations).
    """

    agent: str
    """The agent the configuration was set for; empty for every agent."""
    latency: float
    """Seconds added before each operation answers."""
    error_rate: float
    """The fraction of operations, from 0 to 1, that fail."""
    code: grpc.StatusCode
    """The status code failed operations answer with."""
    seed: int
    """The seed of `rng`; 0 means nondeterministic."""
    fail_next: int
    """Operations still to fail before error_rate applies."""
    crash_after: int
    """Operations left until the process exits; 0 means never."""
    operations: frozenset[str]
    """Operation names the configuration applies to; empty means every operation."""
    rng: random.Random = field(repr=False)
    """Picks the operations that fail by error_rate."""
    latency_after_effect: float = 0.0
    """Seconds added after an operation has taken effect and before it answers."""
    board_health: dict[str, common_pb2.AccountHealth] = field(default_factory=dict)
    """Board → the automation account's AccountHealth there, in place of active (FaultConfig.board_health)."""
    board_quota: dict[str, int] = field(default_factory=dict)
    """Board → job_discovery's requests left, set when the configuration is (FaultConfig.board_quota)."""

    @property
    def inert(self) -> bool:
        """Whether the configuration injects nothing, so operations may skip it entirely."""
        return (
            self.latency <= 0
            and self.error_rate <= 0
            and self.fail_next <= 0
            and self.crash_after <= 0
            and self.latency_after_effect <= 0
        )

    async def inject(self, agent: str, operation: str) -> None:
        """Applies the faults to one operation: crash, then latency, then failure.

        Raises:
            InjectedFault: the operation must fail.
        """
        if self.crash_after > 0:
            self.crash_after -= 1
            if self.crash_after == 0:
                logger.warning("fault injection: crashing at %s.%s", agent, operation)
                sys.stderr.flush()
                # os._exit skips every cleanup, as a SIGKILL or a power cut would.
                os._exit(CRASH_EXIT_STATUS)
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self.fail_next > 0:
            self.fail_next -= 1
            raise InjectedFault(self.code, f"injected fault: {agent}.{operation} failed (fail_next)")
        if self.error_rate > 0 and self.rng.random() < self.error_rate:
            raise InjectedFault(self.code, f"injected fault: {agent}.{operation} failed (error_rate)")

    async def after_effect(self) -> None:
        """Delays the answer of an operation that has taken effect (its handler returned).

        With a delay past the caller's deadline, the caller sees DEADLINE_EXCEEDED although the
        effect happened: the case an idempotency key exists for. gRPC cancels the handler at the
        deadline, which ends this sleep; the effect stays.
        """
        if self.latency_after_effect > 0:
            await asyncio.sleep(self.latency_after_effect)

    def to_proto(self) -> faults_pb2.FaultConfig:
        """Returns the configuration with its remaining counters."""
        config = faults_pb2.FaultConfig(
            agent=self.agent,
            error_rate=self.error_rate,
            error_code=self.code.name,
            seed=self.seed,
            fail_next=self.fail_next,
            crash_after=self.crash_after,
            operations=sorted(self.operations),
            board_health=self.board_health,
            board_quota=self.board_quota,
        )
        config.latency.FromNanoseconds(round(self.latency * 1e9))
        config.latency_after_effect.FromNanoseconds(round(self.latency_after_effect * 1e9))
        return config


def fault_state(
    config: faults_pb2.FaultConfig, known_operations: frozenset[str], known_boards: frozenset[str] = frozenset()
) -> FaultState:
    """Validates a FaultConfig and returns it as a FaultState.

    Args:
        config: The configuration as SetFaults received it.
        known_operations: The operation names the configuration may name.
        known_boards: The job boards board_health and board_quota may name (empty: any).

    Raises:
        AgentError: INVALID_ARGUMENT naming the first bad field.
    """
    latency = config.latency.ToNanoseconds() / 1e9
    if latency < 0:
        raise invalid_argument("latency", "must not be negative")
    latency_after_effect = config.latency_after_effect.ToNanoseconds() / 1e9
    if latency_after_effect < 0:
        raise invalid_argument("latency_after_effect", "must not be negative")
    if not 0.0 <= config.error_rate <= 1.0:
        raise invalid_argument("error_rate", f"must be from 0 to 1, got {config.error_rate}")
    code_name = config.error_code.strip().upper() or "UNAVAILABLE"
    code = grpc.StatusCode.__members__.get(code_name)
    if code is None or code is grpc.StatusCode.OK:
        raise invalid_argument("error_code", f"{config.error_code!r} is not a gRPC error status code name")
    if config.fail_next < 0:
        raise invalid_argument("fail_next", "must not be negative")
    if config.crash_after < 0:
        raise invalid_argument("crash_after", "must not be negative")
    unknown = sorted(set(config.operations) - known_operations)
    if unknown:
        raise invalid_argument("operations", f"unknown operations {', '.join(unknown)}")
    for name, boards in (("board_health", config.board_health), ("board_quota", config.board_quota)):
        unknown = sorted(b for b in boards if known_boards and b not in known_boards)
        if unknown:
            names = ", ".join(repr(b[:64]) for b in unknown[:5])
            raise invalid_argument(name, f"unknown boards {names}; known: {', '.join(sorted(known_boards))}")
    for board, health in config.board_health.items():
        if health not in _ACCOUNT_HEALTH:
            raise invalid_argument(f"board_health[{board[:64]!r}]", f"{health} is not active, limited or suspended")
    for board, left in config.board_quota.items():
        if left < 0:
            raise invalid_argument(f"board_quota[{board[:64]!r}]", f"must be 0 or more, got {left}")
    return FaultState(
        agent=config.agent,
        latency=latency,
        error_rate=config.error_rate,
        code=code,
        seed=config.seed,
        fail_next=config.fail_next,
        crash_after=config.crash_after,
        operations=frozenset(config.operations),
        rng=random.Random(config.seed or None),
        latency_after_effect=latency_after_effect,
        board_health=dict(config.board_health),
        board_quota=dict(config.board_quota),
    )


class FaultControl:
    """The faults in force in the fleet's agents; what FaultInjection serves, and what the process
    that runs the fleet may set directly (``Fleet.set_faults``) without serving it."""

    def __init__(
        self, runtimes: Mapping[str, AgentRuntime], default: FaultState, boards: frozenset[str] = frozenset()
    ) -> None:
        """Controls the faults of `runtimes`, which start with `default`; `boards` are the job
        boards that board_health and board_quota may name (empty: any)."""
        self._runtimes = runtimes
        self._boards = boards
        self.default = default
        for runtime in runtimes.values():
            runtime.set_faults(default)

    def set(self, config: faults_pb2.FaultConfig) -> FaultState:
        """Replaces the configuration of one agent, or of every agent when ``agent`` is empty.

        Raises:
            AgentError: INVALID_ARGUMENT naming the first bad field.
        """
        if config.agent:
            runtime = self.runtime(config.agent)
            state = fault_state(config, runtime.operations, self._boards)
            runtime.set_faults(state)
        else:
            every = frozenset().union(*(r.operations for r in self._runtimes.values()))
            state = fault_state(config, every, self._boards)
            self.default = state
            for runtime in self._runtimes.values():
                runtime.set_faults(state)
        logger.info("fault injection set: %s", state)
        return state

    def get(self, agent: str) -> faults_pb2.FaultConfig:
        """An agent's configuration, or the default one for an empty `agent`.

        Raises:
            AgentError: INVALID_ARGUMENT for an unknown agent.
        """
        if not agent:
            return self.default.to_proto()
        config = (self.runtime(agent).faults or self.default).to_proto()
        config.agent = agent
        return config

    def runtime(self, agent: str) -> AgentRuntime:
        """The runtime of a named agent.

        Raises:
            AgentError: INVALID_ARGUMENT for an unknown agent.
        """
        runtime = self._runtimes.get(agent)
        if runtime is None:
            raise invalid_argument("agent", f"unknown agent {agent[:64]!r}; known: {', '.join(self._runtimes)}")
        return runtime


class FaultInjectionServicer(faults_pb2_grpc.FaultInjectionServicer):
    """Sets and reports the faults of the fleet's agents over gRPC (served only when enabled)."""

    def __init__(self, control: FaultControl) -> None:
        self._control = control

    async def SetFaults(
        self, request: faults_pb2.FaultConfig, context: grpc.aio.ServicerContext
    ) -> faults_pb2.FaultConfig:
        """Replaces the configuration of one agent, or of every agent when ``agent`` is empty."""
        try:
            return self._control.set(request).to_proto()
        except AgentError as error:
            await abort(context, error.code, error.message)

    async def GetFaults(
        self, request: faults_pb2.GetFaultsRequest, context: grpc.aio.ServicerContext
    ) -> faults_pb2.FaultConfig:
        """Returns an agent's configuration, or the default one when ``agent`` is empty."""
        try:
            return self._control.get(request.agent)
        except AgentError as error:
            await abort(context, error.code, error.message)
