"""The per-agent circuit breaker around a scripted caller: open, fail fast, half-open, close."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from agents_clients.breakers import BreakerConfig, BreakingCaller
from server.engine.ports import AgentCall, AgentCallError
from tests.unit.fakes import FakeCaller, FakeClock, invalid, reply, unavailable


def _call(agent: str = "job_discovery") -> AgentCall:
    return AgentCall(agent=agent, operation="SearchJobs", payload={}, timeout=1.0, idempotency_key="k")


def _rewind(breaker_caller: BreakingCaller, agent: str, seconds: float) -> None:
    """Moves the breaker's opening into the past instead of sleeping."""
    storage = breaker_caller.breaker(agent)._state_storage
    storage.opened_at = datetime.now(UTC) - timedelta(seconds=seconds)


async def test_the_breaker_opens_after_fail_max_failures_and_then_fails_fast() -> None:
    inner = FakeCaller(FakeClock())
    inner.script("job_discovery", "SearchJobs", *[unavailable()] * 3)
    caller = BreakingCaller(inner, BreakerConfig(fail_max=3, reset_timeout=60))
    for _ in range(3):
        with pytest.raises(AgentCallError) as err:
            await caller.call(_call())
        assert err.value.error_type == "UNAVAILABLE"
    assert caller.states()["job_discovery"] == "open"
    with pytest.raises(AgentCallError) as err:
        await caller.call(_call())
    assert err.value.error_type == "CIRCUIT_OPEN" and err.value.retryable
    assert len(inner.calls) == 3  # the open breaker did not call


async def test_business_errors_never_trip_the_breaker() -> None:
    inner = FakeCaller(FakeClock())
    inner.script("job_discovery", "SearchJobs", *[invalid()] * 5)
    caller = BreakingCaller(inner, BreakerConfig(fail_max=2))
    for _ in range(5):
        with pytest.raises(AgentCallError):
            await caller.call(_call())
    assert caller.states()["job_discovery"] == "closed"


async def test_after_the_reset_timeout_a_successful_trial_closes_the_breaker() -> None:
    inner = FakeCaller(FakeClock())
    inner.script("job_discovery", "SearchJobs", unavailable(), unavailable(), reply({}))
    caller = BreakingCaller(inner, BreakerConfig(fail_max=2, reset_timeout=30))
    for _ in range(2):
        with pytest.raises(AgentCallError):
            await caller.call(_call())
    _rewind(caller, "job_discovery", 31)
    await caller.call(_call())
    assert caller.states()["job_discovery"] == "closed"


async def test_a_failed_trial_in_half_open_opens_the_breaker_again() -> None:
    inner = FakeCaller(FakeClock())
    inner.script("job_discovery", "SearchJobs", *[unavailable()] * 3)
    caller = BreakingCaller(inner, BreakerConfig(fail_max=2, reset_timeout=30))
    for _ in range(2):
        with pytest.raises(AgentCallError):
            await caller.call(_call())
    _rewind(caller, "job_discovery", 31)
    with pytest.raises(AgentCallError) as err:
        await caller.call(_call())
    assert err.value.error_type == "UNAVAILABLE"
    assert caller.states()["job_discovery"] == "open"
    assert len(inner.calls) == 3


async def test_breakers_are_per_agent() -> None:
    inner = FakeCaller(FakeClock())
    inner.script("job_discovery", "SearchJobs", unavailable(), unavailable())
    caller = BreakingCaller(inner, BreakerConfig(fail_max=2))
    for _ in range(2):
        with pytest.raises(AgentCallError):
            await caller.call(_call())
    await caller.call(AgentCall(agent="analytics", operation="SearchJobs", payload={}, timeout=1, idempotency_key=""))
    assert caller.states() == {"job_discovery": "open", "analytics": "closed"}


async def test_a_call_that_opts_out_bypasses_the_open_breaker() -> None:
    inner = FakeCaller(FakeClock())
    inner.script("job_discovery", "SearchJobs", unavailable(), unavailable())
    caller = BreakingCaller(inner, BreakerConfig(fail_max=2))
    for _ in range(2):
        with pytest.raises(AgentCallError):
            await caller.call(_call())
    bypass = AgentCall(
        agent="job_discovery", operation="SearchJobs", payload={}, timeout=1, idempotency_key="", use_breaker=False
    )
    await caller.call(bypass)
    assert len(inner.calls) == 3


async def test_an_agents_resource_exhausted_never_trips_the_breaker_even_when_retryable() -> None:
    inner = FakeCaller(FakeClock())
    quota = AgentCallError("RESOURCE_EXHAUSTED", "the hourly quota of linkedin is spent", retryable=True)
    inner.script("job_discovery", "SearchJobs", *[quota] * 5, reply({}))
    caller = BreakingCaller(inner, BreakerConfig(fail_max=2))
    for _ in range(5):
        with pytest.raises(AgentCallError) as err:
            await caller.call(_call())
        assert err.value.error_type == "RESOURCE_EXHAUSTED"
    assert caller.states()["job_discovery"] == "closed"
    await caller.call(_call())
