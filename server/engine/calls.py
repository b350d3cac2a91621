"""The agent calls an execution made, counted from its events for its cost (ResourceUsage.cost_estimate).

Rules:
1. A call is counted when its attempt starts (step_started, step_item_started,
   compensation_started), under the agent and operation the event names: retries, alternatives,
   probes and compensations are calls like any other.
2. An attempt that ends with an error that means it was never sent (NOT_SENT: an open breaker,
   an exhausted retry budget, no agent capacity in time, a suspended job board) is taken back:
   nothing reached the agent, so nothing is owed.
3. A retry is a counted call whose attempt number is above 1 (later attempts of the same step,
   item or compensation, on any path).
4. The price is the plan's unit_costs["agent.Operation"] per call (0 when absent): the prices
   are fixed when the plan is made, so an execution's cost never changes with the server's config.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

__all__ = ["NOT_SENT", "CallTally", "cost_of", "tally_call"]

NOT_SENT = frozenset({"CIRCUIT_OPEN", "RETRY_BUDGET_EXHAUSTED", "AGENT_CAPACITY", "BOARD_SUSPENDED"})
"""Attempt errors that mean the call never reached the agent (rule 2)."""

_STARTS = frozenset({"step_started", "step_item_started", "compensation_started"})
_FAILS = frozenset({"step_attempt_failed", "step_item_attempt_failed", "compensation_attempt_failed"})


@dataclass
class CallTally:
    """Calls of one agent operation in one execution."""

    calls: int = 0
    """Attempts sent (rule 1 less rule 2)."""
    retries: int = 0
    """Of those, attempts numbered above 1 (rule 3)."""


def _slot(kind: str, body: Any) -> tuple[str, int, bool]:
    compensation = kind.startswith("compensation_")
    if kind.startswith("step_item_") or (compensation and body.HasField("item")):
        return body.step_id, int(body.item), compensation
    return body.step_id, -1, compensation


def tally_call(
    calls: dict[tuple[str, str], CallTally],
    latest: dict[tuple[str, int, bool], tuple[str, str, int]],
    kind: str,
    body: Any,
) -> None:
    """Counts one event's call (rules 1-3) into `calls`; `latest` remembers each attempt's call.

    Args:
        calls: (agent, operation) → tally, updated in place.
        latest: (step_id, item, compensation) → (agent, operation, attempt) of its latest start.
        kind: the event's kind.
        body: the event's body (its `kind` field).
    """
    if kind in _STARTS:
        slot = _slot(kind, body)
        key = (body.agent, body.operation)
        tally = calls.setdefault(key, CallTally())
        tally.calls += 1
        if body.attempt > 1:
            tally.retries += 1
        latest[slot] = (body.agent, body.operation, body.attempt)
    elif kind in _FAILS and body.error_type in NOT_SENT:
        started = latest.get(_slot(kind, body))
        if started is None:
            return
        agent, operation, attempt = started
        sent = calls.get((agent, operation))
        if sent is None or sent.calls == 0:
            return
        sent.calls -= 1
        if attempt > 1:
            sent.retries -= 1


def cost_of(calls: dict[tuple[str, str], CallTally], unit_costs: Any) -> float:
    """The price of the calls under a plan's unit_costs map (rule 4)."""
    return float(
        sum(
            tally.calls * float(unit_costs.get(f"{agent}.{operation}", 0.0))
            for (agent, operation), tally in calls.items()
        )
    )
