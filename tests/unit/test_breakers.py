"""The per-agent circuit breaker around a scripted caller: open, fail fast, half-open, close."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from agents_clients.breakers import BreakerConfig, BreakingCaller
from agents_clients.retry_budget import RetryBudgetConfig
from server.engine.ports import AgentCall, AgentCallError, AgentReply
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


# ---- the conformance table of issue 11.3 -------------------------------------------------------
# consecutive vs rate, slow calls, one probe in half-open, the refusal saying when, the budget.


class _Timed:
    """An inner caller whose calls take scripted (monotonic) seconds and answer scripted outcomes."""

    def __init__(self) -> None:
        self.now = 0.0
        self.outcomes: list[tuple[float, AgentReply | AgentCallError]] = []
        self.calls: list[AgentCall] = []
        self.gate: asyncio.Event | None = None

    def clock(self) -> float:
        return self.now

    def script(self, *outcomes: tuple[float, AgentReply | AgentCallError]) -> None:
        self.outcomes.extend(outcomes)

    async def call(self, call: AgentCall) -> AgentReply:
        self.calls.append(call)
        if self.gate is not None:
            await self.gate.wait()
        took, outcome = self.outcomes.pop(0) if self.outcomes else (0.0, reply({}))
        self.now += took
        if isinstance(outcome, AgentCallError):
            raise outcome
        return outcome


async def _outcome(caller: BreakingCaller, call: AgentCall | None = None) -> str:
    try:
        await caller.call(call or _call())
    except AgentCallError as exc:
        return exc.error_type
    return "OK"


def _flaky(n: int) -> list[tuple[float, AgentReply | AgentCallError]]:
    """n outcomes, 30 % UNAVAILABLE, never two failures in a row."""
    return [(0.0, unavailable() if i % 10 in (0, 3, 6) else reply({})) for i in range(n)]


async def test_a_thirty_percent_flaky_agent_keeps_its_breaker_closed_with_the_defaults() -> None:
    inner = _Timed()
    inner.script(*_flaky(300))
    caller = BreakingCaller(inner, clock=inner.clock)
    outcomes = [await _outcome(caller) for _ in range(300)]
    assert caller.states()["job_discovery"] == "closed"
    assert outcomes.count("CIRCUIT_OPEN") == 0 and len(inner.calls) == 300


async def test_the_same_failures_in_a_row_open_the_breaker_at_fail_max() -> None:
    inner = _Timed()
    inner.script(*[(0.0, unavailable())] * 11)
    caller = BreakingCaller(inner, BreakerConfig(), clock=inner.clock)  # fail_max 10
    assert [await _outcome(caller) for _ in range(9)] == ["UNAVAILABLE"] * 9
    assert caller.states()["job_discovery"] == "closed"
    assert await _outcome(caller) == "UNAVAILABLE"  # the tenth opens it, and is reported as itself
    assert caller.states()["job_discovery"] == "open"
    assert await _outcome(caller) == "CIRCUIT_OPEN" and len(inner.calls) == 10


async def test_a_failure_rate_at_the_threshold_opens_the_breaker_once_the_window_holds_its_minimum() -> None:
    inner = _Timed()
    inner.script(*[(0.0, unavailable() if i % 2 == 0 else reply({})) for i in range(12)])
    config = BreakerConfig(failure_rate=0.5, window=10, minimum_calls=10, fail_max=0)
    caller = BreakingCaller(inner, config, clock=inner.clock)
    for _ in range(9):
        await _outcome(caller)
    assert caller.states()["job_discovery"] == "closed"  # 5 of 9 failed, but 9 < minimum_calls
    await _outcome(caller)  # 5 of 10
    assert caller.states()["job_discovery"] == "open"


async def test_a_failure_rate_below_the_threshold_never_opens_the_breaker() -> None:
    inner = _Timed()
    inner.script(*[(0.0, unavailable() if i % 5 < 2 else reply({})) for i in range(100)])  # 40 %, 2 in a row
    caller = BreakingCaller(inner, BreakerConfig(failure_rate=0.5, window=10, minimum_calls=10), clock=inner.clock)
    for _ in range(100):
        await _outcome(caller)
    assert caller.states()["job_discovery"] == "closed"


async def test_callers_errors_count_neither_way_in_the_window() -> None:
    inner = _Timed()
    inner.script(*[(0.0, invalid())] * 20, *[(0.0, unavailable())] * 5)
    caller = BreakingCaller(inner, BreakerConfig(window=10, minimum_calls=5, fail_max=0), clock=inner.clock)
    for _ in range(25):
        await _outcome(caller)
    assert caller.states()["job_discovery"] == "open"  # the 5 failures alone filled the minimum


async def test_slow_calls_open_the_breaker_at_the_slow_call_rate_even_when_they_succeed() -> None:
    inner = _Timed()
    inner.script((2.0, reply({})), (0.1, reply({})), (2.0, reply({})), (2.0, reply({})))
    config = BreakerConfig(slow_call_seconds=1.0, slow_call_rate=0.75, window=4, minimum_calls=4)
    caller = BreakingCaller(inner, config, clock=inner.clock)
    assert [await _outcome(caller) for _ in range(3)] == ["OK"] * 3
    assert caller.states()["job_discovery"] == "closed"
    assert await _outcome(caller) == "OK"  # the call that opens it still answers its caller
    assert caller.states()["job_discovery"] == "open"


async def test_calls_are_not_slow_when_slow_call_seconds_is_zero() -> None:
    inner = _Timed()
    inner.script(*[(100.0, reply({}))] * 5)
    caller = BreakingCaller(inner, BreakerConfig(slow_call_seconds=0, window=4, minimum_calls=4), clock=inner.clock)
    for _ in range(5):
        await _outcome(caller)
    assert caller.states()["job_discovery"] == "closed"


async def test_a_slow_probe_opens_the_breaker_again_and_its_reply_still_reaches_its_caller() -> None:
    inner = _Timed()
    inner.script((0.0, unavailable()), (5.0, reply({"late": True})))
    caller = BreakingCaller(inner, BreakerConfig(fail_max=1, slow_call_seconds=1.0), clock=inner.clock)
    await _outcome(caller)
    _rewind(caller, "job_discovery", 31)
    answer = await caller.call(_call())
    assert dict(answer.output)["late"] is True  # type: ignore[call-overload]
    assert caller.states()["job_discovery"] == "open"


async def test_exactly_one_probe_goes_through_in_half_open_and_the_others_are_told_to_wait_briefly() -> None:
    inner = _Timed()
    inner.script((0.0, unavailable()))
    caller = BreakingCaller(inner, BreakerConfig(fail_max=1, probe_wait=2.0), clock=inner.clock)
    await _outcome(caller)
    _rewind(caller, "job_discovery", 31)
    inner.gate = asyncio.Event()
    probe = asyncio.create_task(caller.call(_call()))
    await asyncio.sleep(0)
    refusals = []
    for _ in range(4):
        with pytest.raises(AgentCallError) as err:
            await caller.call(_call())
        refusals.append((err.value.error_type, err.value.retry_after))
    inner.gate.set()
    await probe
    assert refusals == [("CIRCUIT_OPEN", 2.0)] * 4
    assert len(inner.calls) == 2  # the call that opened it, and the one probe
    assert caller.states()["job_discovery"] == "closed"


async def test_an_open_breakers_refusal_says_when_its_probe_is_due() -> None:
    inner = _Timed()
    inner.script((0.0, unavailable()))
    caller = BreakingCaller(inner, BreakerConfig(fail_max=1, reset_timeout=30), clock=inner.clock)
    await _outcome(caller)
    _rewind(caller, "job_discovery", 10)
    with pytest.raises(AgentCallError) as err:
        await caller.call(_call())
    assert err.value.error_type == "CIRCUIT_OPEN" and err.value.retryable
    assert err.value.retry_after == pytest.approx(20, abs=0.5)


async def test_the_window_starts_afresh_when_a_probe_closes_the_breaker() -> None:
    inner = _Timed()
    inner.script(*[(0.0, unavailable())] * 4, (0.0, reply({})), (0.0, unavailable()))
    caller = BreakingCaller(inner, BreakerConfig(window=10, minimum_calls=4, fail_max=0), clock=inner.clock)
    for _ in range(4):
        await _outcome(caller)
    assert caller.states()["job_discovery"] == "open"
    _rewind(caller, "job_discovery", 31)
    assert await _outcome(caller) == "OK"
    assert await _outcome(caller) == "UNAVAILABLE"
    assert caller.states()["job_discovery"] == "closed"
    assert (len(caller.window("job_discovery")), caller.window("job_discovery").failures) == (1, 1)


def _retry(agent: str = "job_discovery", key: str = "k") -> AgentCall:
    return AgentCall(agent=agent, operation="SearchJobs", payload={}, timeout=1.0, idempotency_key=key, retry=True)


async def test_retries_past_the_budget_are_refused_unsent_and_first_calls_never_are() -> None:
    inner = _Timed()
    budget = RetryBudgetConfig(ratio=0.5, min_retries_per_second=0.2, window=10)  # a floor of 2
    caller = BreakingCaller(inner, budget=budget, clock=inner.clock)
    for _ in range(4):
        assert await _outcome(caller) == "OK"  # first calls: 4, so 2 + 0.5 * 4 = 4 retries
    # Retries of many executions (different keys) share the agent's budget.
    outcomes = [await _outcome(caller, _retry(key=f"ex{i}/s")) for i in range(6)]
    assert outcomes == ["OK"] * 4 + ["RETRY_BUDGET_EXHAUSTED"] * 2
    assert len(inner.calls) == 8
    assert await _outcome(caller) == "OK"  # a first call is always let through...
    assert await _outcome(caller, _retry()) == "RETRY_BUDGET_EXHAUSTED"  # ...and earns half a retry
    assert await _outcome(caller) == "OK"
    assert await _outcome(caller, _retry()) == "OK"


async def test_the_retry_budget_is_per_agent_and_slides_with_its_window() -> None:
    inner = _Timed()
    caller = BreakingCaller(inner, budget=RetryBudgetConfig(ratio=0, min_retries_per_second=0.1, window=10))
    caller.budget._clock = inner.clock
    assert await _outcome(caller, _retry()) == "OK"
    assert await _outcome(caller, _retry()) == "RETRY_BUDGET_EXHAUSTED"
    assert await _outcome(caller, _retry("analytics")) == "OK"
    inner.now += 10.5
    assert await _outcome(caller, _retry()) == "OK"


async def test_a_retry_budget_that_is_off_lets_every_retry_through() -> None:
    inner = _Timed()
    caller = BreakingCaller(inner, budget=RetryBudgetConfig(ratio=0, min_retries_per_second=0, enabled=False))
    assert [await _outcome(caller, _retry()) for _ in range(5)] == ["OK"] * 5


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"failure_rate": 0}, "breaker.failure_rate"),
        ({"failure_rate": 1.5}, "breaker.failure_rate"),
        ({"window": 0}, "breaker.window"),
        ({"minimum_calls": 101}, "breaker.minimum_calls"),
        ({"fail_max": -1}, "breaker.fail_max"),
        ({"slow_call_seconds": float("nan")}, "breaker.slow_call_seconds"),
        ({"reset_timeout": 0}, "breaker.reset_timeout"),
    ],
)
def test_breaker_settings_out_of_range_are_refused_naming_the_setting(settings: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field.replace(".", r"\.")):
        BreakerConfig(**settings)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("settings", "field"),
    [
        ({"ratio": -0.1}, "ratio"),
        ({"window": 0.5}, "window"),
        ({"min_retries_per_second": float("inf")}, "min_retries"),
    ],
)
def test_retry_budget_settings_out_of_range_are_refused_naming_the_setting(
    settings: dict[str, float], field: str
) -> None:
    with pytest.raises(ValueError, match=f"retry_budget.{field}"):
        RetryBudgetConfig(**settings)
