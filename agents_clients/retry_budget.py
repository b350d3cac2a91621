"""A fleet-wide retry budget per agent: retries at most a fraction of calls over a window.

Rules (Finagle's RetryBudget, Envoy's retry_budget):
1. Every call the orchestrator sends an agent through its breaker is recorded as a first call or
   a retry (`AgentCall.retry`: a later attempt of a step's call after a failure that reached the
   agent), shared by every execution in this process.
2. A retry is let through while the retries sent in the last `window` seconds stay under
   ``min_retries_per_second * window + ratio * first calls in the window``; otherwise it is
   refused unsent with ``RETRY_BUDGET_EXHAUSTED`` (retryable, counted as the step's attempt),
   so one sick agent cannot turn every execution's retries into a storm against it. The floor
   keeps a quiet agent's occasional retries possible.
3. The window is `SLOTS` buckets, so memory stays constant whatever the call rate.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

SLOTS = 10
"""Buckets a window is counted in."""


@dataclass(frozen=True)
class RetryBudgetConfig:
    """The retry budget every agent gets (one budget per agent, shared by all executions)."""

    ratio: float = 0.5
    """Retries allowed per first call over the window, 0 to 10. Default 0.5: retries add at most
    half again to an agent's load (a 30%-flaky agent needs about 0.43 retries per call with three
    retries; a dead one would need three)."""
    min_retries_per_second: float = 5.0
    """Retries per second always allowed, whatever the traffic, 0 to 10,000. Default 5."""
    window: float = 10.0
    """Seconds over which calls and retries are counted, 1 to 600. Default 10."""
    enabled: bool = True
    """Whether retries are held to the budget. Default True."""

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("ratio", self.ratio, 0.0, 10.0),
            ("min_retries_per_second", self.min_retries_per_second, 0.0, 10_000.0),
            ("window", self.window, 1.0, 600.0),
        ):
            if not (math.isfinite(value) and low <= value <= high):
                raise ValueError(f"retry_budget.{name}: expected a value from {low:g} to {high:g}, got {value}")


class _Counts:
    """First calls and retries of one agent, in SLOTS buckets of window/SLOTS seconds."""

    def __init__(self) -> None:
        self.firsts = [0] * SLOTS
        self.retries = [0] * SLOTS
        self.epochs = [-1] * SLOTS

    def _slot(self, epoch: int) -> int:
        index = epoch % SLOTS
        if self.epochs[index] != epoch:
            self.epochs[index], self.firsts[index], self.retries[index] = epoch, 0, 0
        return index

    def totals(self, epoch: int) -> tuple[int, int]:
        live = [i for i in range(SLOTS) if epoch - SLOTS < self.epochs[i] <= epoch]
        return sum(self.firsts[i] for i in live), sum(self.retries[i] for i in live)


class RetryBudget:
    """The retry budgets of every agent (see the module docstring)."""

    def __init__(self, config: RetryBudgetConfig | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config or RetryBudgetConfig()
        self._clock = clock
        self._agents: dict[str, _Counts] = {}

    def _epoch(self) -> int:
        return math.floor(self._clock() / (self.config.window / SLOTS))

    def allows(self, agent: str, retry: bool) -> bool:
        """Whether a call may be sent now; records it when it may.

        Args:
            agent: the agent called.
            retry: whether the call is a retry (first calls are always allowed).
        """
        counts = self._agents.setdefault(agent, _Counts())
        epoch = self._epoch()
        if retry and self.config.enabled:
            firsts, retries = counts.totals(epoch)
            allowed = self.config.min_retries_per_second * self.config.window + self.config.ratio * firsts
            if retries + 1 > allowed:
                return False
        slot = counts._slot(epoch)
        if retry:
            counts.retries[slot] += 1
        else:
            counts.firsts[slot] += 1
        return True

    def usage(self, agent: str) -> tuple[int, int]:
        """The first calls and retries of `agent` counted in the current window."""
        counts = self._agents.get(agent)
        return counts.totals(self._epoch()) if counts is not None else (0, 0)
