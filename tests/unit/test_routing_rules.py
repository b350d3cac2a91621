"""The routing rules of agents_clients.routing, one test or more per rule, with a fake clock."""

from __future__ import annotations

import argparse
import io
import random
from collections import Counter

import pytest
from baton.v1 import orchestrator_pb2, routing_pb2
from rich.console import Console

from agents_clients.catalog import READ_OPERATIONS, operation
from agents_clients.routing import EndpointState, Hedging, Router, RoutingConfig
from server.cli._render import render_health
from server.cli._resilience import routing_from
from server.config import ConfigError


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def _router(n: int = 3, clock: Clock | None = None, **config: float) -> Router:
    return Router(
        "analytics",
        [f"10.0.0.{i}:1" for i in range(1, n + 1)],
        RoutingConfig(**config),
        clock or Clock(),
        random.Random(7),
    )


def _answer(router: Router, address: str, seconds: float, *, fail: bool = False) -> None:
    endpoint = next(e for e in router.endpoints if e.address == address)
    router.started(endpoint)
    (router.failed if fail else router.succeeded)(endpoint, seconds)


def _spread(
    router: Router, calls: int, latencies: dict[str, float], errors: frozenset[str] = frozenset()
) -> Counter[str]:
    """Sends `calls` sequential calls, each answered by its endpoint's latency; counts the choices."""
    seen: Counter[str] = Counter()
    for _ in range(calls):
        endpoint = router.choose()
        assert endpoint is not None
        seen[endpoint.address] += 1
        router.started(endpoint)
        if endpoint.address in errors:
            router.failed(endpoint, latencies[endpoint.address])
        else:
            router.succeeded(endpoint, latencies[endpoint.address])
    return seen


def test_the_better_of_two_endpoints_gets_the_call_and_a_slow_one_is_avoided() -> None:
    router = _router()
    latencies = {"10.0.0.1:1": 0.01, "10.0.0.2:1": 0.012, "10.0.0.3:1": 0.2}
    seen = _spread(router, 300, latencies)
    assert seen["10.0.0.3:1"] <= 5  # only until its first answers are known
    # The pairs {1, 2} and {1, 3} go to the fastest, {2, 3} to the second: two thirds, one third.
    assert 170 <= seen["10.0.0.1:1"] <= 230 and 70 <= seen["10.0.0.2:1"] <= 130


def test_calls_in_flight_raise_the_score_so_a_busy_endpoint_is_spared() -> None:
    router = _router(2)
    fast, slow = router.endpoints
    _answer(router, fast.address, 0.01)
    _answer(router, slow.address, 0.02)
    for _ in range(3):
        router.started(fast)  # three calls hang on the fast one
    assert router.score(fast) == pytest.approx(0.04) and router.score(slow) == pytest.approx(0.02)
    assert router.choose() is slow


def test_errors_raise_the_score_and_a_failure_never_lowers_the_latency_estimate() -> None:
    router = _router(2, consecutive_failures=0, failure_rate=1.0)
    a, b = router.endpoints
    _answer(router, a.address, 0.01)
    _answer(router, b.address, 0.01)
    _answer(router, a.address, 0.0001, fail=True)  # a fast refusal
    assert a.latency == pytest.approx(0.01)
    assert router.score(a) == pytest.approx(0.01 * (1 + 10 * 0.3))
    assert router.choose() is b


def test_an_idle_endpoints_estimates_relax_toward_the_best_peer() -> None:
    clock = Clock()
    router = _router(2, clock, idle_relax=30.0)
    fast, slow = router.endpoints
    _answer(router, slow.address, 1.0)
    _answer(router, fast.address, 0.01)
    assert router.score(slow) == pytest.approx(1.0)
    clock.advance(30.0)
    # e^-1 of the gap is left (the fast one answered just now too, relaxing nothing of its own).
    assert router.score(slow) == pytest.approx(0.01 + 0.99 * 0.36788, rel=1e-3)
    clock.advance(300.0)
    assert router.score(slow) == pytest.approx(0.01, rel=1e-2)


def test_consecutive_failures_eject_an_endpoint_which_then_gets_no_calls() -> None:
    clock = Clock()
    router = _router(3, clock, consecutive_failures=3, base_ejection=10.0)
    bad = router.endpoints[0].address
    for _ in range(2):
        _answer(router, bad, 0.01, fail=True)
    assert router.endpoints[0].state is EndpointState.HEALTHY
    _answer(router, bad, 0.01, fail=True)
    assert router.endpoints[0].state is EndpointState.EJECTED and router.endpoints[0].ejections == 1
    seen = _spread(router, 50, dict.fromkeys((e.address for e in router.endpoints), 0.01))
    assert seen[bad] == 0
    assert router.snapshot()[0].ejected_for == pytest.approx(10.0)


def test_a_failure_share_over_the_window_ejects_an_endpoint_that_never_fails_five_in_a_row() -> None:
    router = _router(3, consecutive_failures=5, failure_window=10, minimum_calls=10, failure_rate=0.5)
    bad = router.endpoints[0].address
    for i in range(9):
        _answer(router, bad, 0.01, fail=i % 2 == 0)  # 5 failures of 9, never two in a row
    assert router.endpoints[0].state is EndpointState.HEALTHY  # fewer than minimum_calls outcomes
    _answer(router, bad, 0.01, fail=True)
    assert router.endpoints[0].state is EndpointState.EJECTED


def test_the_last_endpoint_is_never_ejected_and_the_share_is_held() -> None:
    router = _router(3, consecutive_failures=1, max_ejection_share=0.5)
    first, second, _ = (e.address for e in router.endpoints)
    _answer(router, first, 0.01, fail=True)
    _answer(router, second, 0.01, fail=True)  # a second ejection would pass half of three
    assert [e.state for e in router.endpoints] == [EndpointState.EJECTED, EndpointState.HEALTHY, EndpointState.HEALTHY]
    assert router.skipped_ejections == 1
    lone = _router(1, consecutive_failures=1)
    _answer(lone, lone.endpoints[0].address, 0.01, fail=True)
    assert lone.endpoints[0].state is EndpointState.HEALTHY and lone.choose() is lone.endpoints[0]
    pair = _router(2, consecutive_failures=1, max_ejection_share=1.0)
    for endpoint in pair.endpoints:
        _answer(pair, endpoint.address, 0.01, fail=True)
    assert sum(e.state is EndpointState.EJECTED for e in pair.endpoints) == 1
    off = _router(3, consecutive_failures=1, max_ejection_share=0.0)
    _answer(off, off.endpoints[0].address, 0.01, fail=True)
    assert off.endpoints[0].state is EndpointState.HEALTHY


def test_after_its_cool_off_an_endpoint_is_readmitted_on_probation_and_proves_itself() -> None:
    clock = Clock()
    router = _router(3, clock, consecutive_failures=1, base_ejection=10.0, probation_successes=3)
    bad = router.endpoints[0]
    _answer(router, bad.address, 0.5, fail=True)
    clock.advance(9.9)
    assert bad not in router.available()
    clock.advance(0.2)
    assert bad in router.available() and bad.state is EndpointState.PROBATION
    assert bad.latency is None and bad.error_estimate == 0.0  # fresh, so it is tried
    _answer(router, router.endpoints[1].address, 0.01)
    _answer(router, bad.address, 0.05)  # slower than its peer, yet on probation it scores as the best
    assert router.score(bad) == router.score(router.endpoints[1])
    _answer(router, bad.address, 0.01)
    assert bad.state is EndpointState.PROBATION
    _answer(router, bad.address, 0.01)
    assert bad.state is EndpointState.HEALTHY


def test_a_failure_on_probation_ejects_again_for_longer_and_the_cool_off_is_capped() -> None:
    clock = Clock()
    router = _router(3, clock, consecutive_failures=5, base_ejection=10.0, max_ejection=25.0)
    bad = router.endpoints[0]
    cool_offs = []
    for _ in range(4):
        for _ in range(5 if bad.state is EndpointState.HEALTHY else 1):
            _answer(router, bad.address, 0.01, fail=True)
        assert bad.state is EndpointState.EJECTED
        cool_offs.append(bad.ejected_until - clock.now)
        clock.advance(cool_offs[-1])
        router.available()
        assert bad.state is EndpointState.PROBATION
    assert cool_offs == [10.0, 20.0, 25.0, 25.0]
    assert bad.ejections == 4


def test_a_quiet_spell_forgives_the_ejection_multiplier() -> None:
    clock = Clock()
    router = _router(3, clock, consecutive_failures=1, base_ejection=10.0, max_ejection=100.0, probation_successes=1)
    bad = router.endpoints[0]
    _answer(router, bad.address, 0.01, fail=True)
    clock.advance(10.0)
    router.available()
    _answer(router, bad.address, 0.01, fail=True)  # on probation: 20 s
    assert bad.ejected_until - clock.now == 20.0
    clock.advance(20.0)
    router.available()
    _answer(router, bad.address, 0.01)  # healthy again
    clock.advance(200.0)  # two max_ejection spells without an ejection: the multiplier is back at 0
    _answer(router, bad.address, 0.01, fail=True)
    assert bad.ejected_until - clock.now == 10.0


def test_a_cancelled_attempt_counts_only_as_a_censored_latency() -> None:
    router = _router(2)
    slow = router.endpoints[0]
    _answer(router, slow.address, 0.01)
    router.started(slow)
    router.abandoned(slow, 0.5)
    assert slow.in_flight == 0 and slow.errors == 0 and slow.latency == pytest.approx(0.01 + 0.3 * 0.49)
    router.started(slow)
    router.abandoned(slow, 0.001)  # shorter than the estimate: nothing learnt
    assert slow.latency == pytest.approx(0.01 + 0.3 * 0.49)


def test_the_endpoint_list_can_change_and_keeps_what_is_known() -> None:
    router = _router(2)
    _answer(router, "10.0.0.1:1", 0.3)
    router.update(["10.0.0.1:1", "10.0.0.9:1"])
    assert [e.address for e in router.endpoints] == ["10.0.0.1:1", "10.0.0.9:1"]
    assert router.endpoints[0].latency == pytest.approx(0.3) and router.endpoints[1].requests == 0
    with pytest.raises(ValueError, match="no endpoint"):
        router.update([])


def test_a_hedge_waits_for_enough_samples_then_for_the_quantile_with_a_floor() -> None:
    hedging = Hedging(RoutingConfig(hedge_min_samples=20, hedge_floor=0.05, hedge_quantile=0.95))
    for i in range(19):
        hedging.observe("ScoreMatches", 0.01 * (i + 1))
    assert hedging.delay("ScoreMatches") is None
    hedging.observe("ScoreMatches", 0.2)
    assert hedging.delay("ScoreMatches") == pytest.approx(0.19)  # the 19th of 20 sorted
    fast = Hedging(RoutingConfig(hedge_min_samples=5, hedge_floor=0.05))
    for _ in range(5):
        fast.observe("GetInsights", 0.001)
    assert fast.delay("GetInsights") == 0.05
    assert Hedging(RoutingConfig(hedging=False, hedge_min_samples=1)).delay("GetInsights") is None


def test_hedges_are_held_to_their_budget() -> None:
    hedging = Hedging(RoutingConfig(hedge_budget=0.1, hedge_burst=2.0))
    granted = 0
    for _ in range(100):
        hedging.first_attempt()
        granted += hedging.spend()
    assert granted == 10 and hedging.sent == 10 and hedging.refused == 90
    for _ in range(1000):
        hedging.first_attempt()
    assert hedging.tokens == 2.0  # the burst caps what is saved up


def test_reads_are_declared_in_the_catalog_and_writes_are_not_reads() -> None:
    for agent, name in READ_OPERATIONS:
        assert operation(agent, name).read
    for agent, name in (
        ("automation", "SubmitApplication"),
        ("automation", "WithdrawApplication"),
        ("analytics", "RecordEvents"),
        ("ui_ux", "Notify"),
        ("job_discovery", "SearchJobs"),
    ):
        assert not operation(agent, name).read


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("latency_alpha", 0.0),
        ("failure_rate", 1.5),
        ("minimum_calls", 50),
        ("max_ejection", 1.0),
        ("hedge_budget", -0.1),
        ("hedge_floor", float("nan")),
        ("consecutive_failures", True),
    ],
)
def test_a_setting_out_of_range_is_refused_by_name(setting: str, value: float) -> None:
    with pytest.raises(ValueError, match=f"routing.{setting}"):
        RoutingConfig(**{setting: value})


def test_baton_health_shows_each_endpoint_when_an_agent_has_several() -> None:
    health = orchestrator_pb2.SystemHealth()
    routes = health.routes["analytics"]
    routes.endpoints.add(address="10.0.0.1:1", state=routing_pb2.ENDPOINT_STATE_HEALTHY, requests=40)
    ejected = routes.endpoints.add(address="10.0.0.2:1", state=routing_pb2.ENDPOINT_STATE_EJECTED, errors=5)
    ejected.ejected_for.FromSeconds(17)
    health.routes["ui_ux"].endpoints.add(address="10.0.0.3:1", state=7)  # a state this CLI does not know
    out = io.StringIO()
    render_health(Console(file=out, width=160, color_system=None), health)
    lines = [line.split() for line in out.getvalue().splitlines() if "10.0.0." in line]
    assert lines[0][:4] == ["analytics", "10.0.0.1:1", "healthy", "40"]
    assert lines[1][:7] == ["analytics", "10.0.0.2:1", "ejected", "(17", "s", "left)", "0"]
    assert lines[2][:3] == ["ui_ux", "10.0.0.3:1", "7"]
    single = orchestrator_pb2.SystemHealth()
    single.routes["analytics"].endpoints.add(address="10.0.0.1:1")
    out = io.StringIO()
    render_health(Console(file=out, width=160, color_system=None), single)
    assert "10.0.0.1:1" not in out.getvalue()  # one endpoint per agent: nothing to route


def test_the_agents_file_sets_routing_and_no_hedging_turns_hedging_off() -> None:
    section = {"routing": {"consecutive_failures": 2, "base_ejection": 30, "hedging": True}, "breaker": {}}
    config = routing_from(argparse.Namespace(), section)
    assert (config.consecutive_failures, config.base_ejection, config.hedging) == (2, 30, True)
    assert routing_from(argparse.Namespace(no_hedging=True), section).hedging is False
    assert routing_from(argparse.Namespace()) == RoutingConfig()
    for bad, message in (
        ({"routing": {"failure_rate": 2}}, "resilience.routing.failure_rate: expected a value from above 0 to 1"),
        ({"routing": {"nope": 1}}, "resilience.routing.nope: unknown"),
        ({"routing": {"hedging": 1}}, "resilience.routing.hedging: expected true or false"),
        ({"routing": {"base_ejection": "10s"}}, "resilience.routing.base_ejection: expected a number"),
        ({"routing": [1]}, "resilience.routing: expected a mapping"),
    ):
        with pytest.raises(ConfigError, match=message):
            routing_from(argparse.Namespace(), bad)
