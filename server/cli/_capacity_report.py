"""The demo summary's lines on job boards and agent capacity, read from the in-process limits."""

from __future__ import annotations

from baton.v1 import plan_pb2

from agents_clients import CapacityCaller, CapacityConfig, RateLimit


def _pace(rate: float) -> str:
    return f"{rate:g} a second" if rate >= 1 else f"1 per {1 / rate:.3g} s"


def board_lines(plan: plan_pb2.OrchestrationPlan, caller: CapacityCaller) -> list[str]:
    """One line per job board that is limited, suspended or out of quota: what the plan and the
    run-time limits did about it; then how many applications a suspended board kept unsent."""
    notes = list(plan.execution_strategy.fallback_strategy.fallback_paths)
    lines = []
    guard = caller.boards
    for board, state in sorted(guard.boards.items()):
        spent = state.remaining == 0
        if state.word not in ("limited", "suspended") and not spent:
            continue
        what = [state.word if state.word in ("limited", "suspended") else "quota spent"]
        if state.remaining is not None and not spent:
            what.append(f"{state.remaining} requests left")
        effects = []
        if any("avoiding job boards" in note and f"{board} (" in note for note in notes):
            effects.append("left out of the job search by the plan")
        if state.word == "suspended":
            effects.append("its applications are not sent")
        if state.bucket is not None:
            effects.append(f"its automation calls held to {_pace(state.bucket.rate)}")
        lines.append(f"{board} {', '.join(what)}: {'; '.join(effects) or 'no call for it'}")
    if guard.dropped or guard.refused:
        lines.append(
            f"{guard.dropped} jobs taken out of submissions and {guard.refused} submissions refused"
            " (BOARD_SUSPENDED): their board's account is suspended"
        )
    return lines


def describe_limits(config: CapacityConfig) -> str:
    """``every agent 2 a second (burst 1)``; ``automation bulkhead 1, job_discovery 5 a second (burst 10)``."""
    rates: dict[RateLimit, list[str]] = {}
    for scope, limit in config.rate_limits.items():
        rates.setdefault(limit, []).append(scope)
    parts = [f"{scope} bulkhead {n}" for scope, n in config.bulkheads.items()]
    for limit, scopes in rates.items():
        pace = f"{_pace(limit.rate)} (burst {limit.burst})"
        parts.append(f"every agent {pace}" if len(scopes) == 7 else f"{', '.join(scopes)} {pace}")
    return ", ".join(parts) or "none"


def capacity_lines(caller: CapacityCaller) -> list[str]:
    """How many calls the bulkheads and rate limits held (and for how long), refused, and which held them."""
    counts = caller.counts
    head = f"{counts.held} calls held by a bulkhead or rate limit, {counts.held_seconds:.2f} s in all"
    if counts.refused:
        head += f"; {counts.refused} refused unsent (AGENT_CAPACITY)"
    lines = [head]
    for name, held in sorted(counts.held_by.items()):
        lines.append(f"{name}: {held} call{'s' if held != 1 else ''} held")
    lines.append(f"limits: {describe_limits(caller.config)}")
    return lines
