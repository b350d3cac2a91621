"""Routing across an agent's replicas: which endpoint one attempt goes to, and when to hedge it.

Pure logic over an injected clock and random generator (no grpc, no I/O): the gRPC caller
(agents_clients.grpc_caller) asks it where to send, tells it how each call ended, and does the
sending. The breaker, bulkheads and retry budget stay per agent, above it: routing chooses the
endpoint of one attempt, nothing more.

Rules (the conformance tests are tests/unit/test_routing_rules.py):
1. **Power of two choices.** An attempt goes to the better of two endpoints picked at random
   among the agent's *available* ones (not ejected), by score = latency estimate x (calls in
   flight + 1) x (1 + `error_weight` x error estimate), lower is better (Finagle's and Linkerd's
   "peak EWMA" balancer, without the peak). The latency estimate is an EWMA of the endpoint's
   answers (`latency_alpha` per answer); a failure never lowers it (a fast refusal must not
   attract traffic). The error estimate is an EWMA of its failures (1) and answers (0).
2. **Idle estimates relax.** An endpoint the chooser avoids gets no answers to learn from, so
   its estimates relax with its idle time (time constant `idle_relax` seconds) toward the best
   available peer's latency and no errors: a replica that was slow is tried again now and then,
   and keeps its traffic if it has recovered. An endpoint never answered scores as the best peer.
3. **Outlier ejection** (Envoy's outlier detection): `consecutive_failures` failures in a row,
   or a failure share of at least `failure_rate` over its last `failure_window` outcomes (once it
   has `minimum_calls` of them), eject an endpoint for base_ejection x n seconds (n: its
   ejections so far, one step forgotten per `max_ejection` seconds without one), at most
   `max_ejection`. An ejected endpoint gets no attempts; its calls in flight still finish.
4. **Never the last.** At most `max_ejection_share` of an agent's endpoints are ejected at once
   (at least one when it has two or more) and never all of them; an ejection past that is
   skipped (and counted), and the endpoint stays in rotation with its poor score.
5. **Probation.** After its cool-off an endpoint is re-admitted on probation, with fresh
   estimates: until it is healthy again its latency scores as the best peer's at most, so that
   it is tried and can prove itself. One failure ejects it again (for longer);
   `probation_successes` answers in a row make it healthy.
6. **Failures are the endpoint's.** The caller reports as failures only what says something
   about the endpoint (unreachable, deadline exceeded, internal errors), never an answer about
   the request itself (INVALID_ARGUMENT and the like are answers: they count as successes).
   A call cancelled by its caller (a hedge's loser) is neither; only its elapsed time is learnt,
   when it exceeds the estimate (a censored sample: it took at least that long).
7. **Hedging for reads only** (`Hedging`): an operation the catalog declares a read
   (agents_clients.catalog.READ_OPERATIONS) gets a second attempt, to another endpoint with the
   same idempotency key, when the first has not answered after the operation's observed
   `hedge_quantile` latency (at least `hedge_floor` seconds, and only once `hedge_min_samples`
   answers were seen). The first answer wins and the other attempt is cancelled. Hedges are
   held to a budget: each first attempt earns `hedge_budget` tokens (at most `hedge_burst`
   kept), a hedge spends one; without a token, no hedge.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class EndpointState(StrEnum):
    """Where an endpoint stands in its agent's rotation."""

    HEALTHY = "healthy"
    """In rotation."""
    EJECTED = "ejected"
    """Out of rotation until its cool-off ends (rule 3)."""
    PROBATION = "probation"
    """Back in rotation after a cool-off; one failure ejects it again (rule 5)."""


@dataclass(frozen=True)
class RoutingConfig:
    """How attempts are spread over an agent's endpoints, shared by every agent (each routes its own)."""

    latency_alpha: float = 0.3
    """Weight of a new answer in the latency and error EWMAs, above 0 to 1. Default 0.3."""
    error_weight: float = 10.0
    """How much the error estimate raises the score (rule 1), 0 to 100. Default 10: an endpoint
    failing half its calls scores as one six times slower (with as many calls in flight)."""
    idle_relax: float = 30.0
    """Seconds (time constant) over which an idle endpoint's estimates relax toward the best
    peer's (rule 2), above 0 to 3600. Default 30."""
    consecutive_failures: int = 5
    """Failures in a row that eject an endpoint; 0: none. Default 5."""
    failure_rate: float = 0.5
    """Failure share over the last `failure_window` outcomes that ejects an endpoint, above 0 to 1. Default 0.5."""
    failure_window: int = 20
    """Outcomes the failure share is measured over, 1 to 10,000. Default 20."""
    minimum_calls: int = 10
    """Outcomes the window must hold before the share can eject, 1 to `failure_window`. Default 10."""
    base_ejection: float = 10.0
    """Seconds of the first ejection; the n-th lasts n times that (rule 3), above 0 to 3600. Default 10."""
    max_ejection: float = 300.0
    """The longest ejection, in seconds, at least `base_ejection`. Default 300."""
    max_ejection_share: float = 0.5
    """The share of an agent's endpoints that may be ejected at once, 0 to 1 (rule 4); 0: no
    ejection at all. Default 0.5 (one of two or three, two of four)."""
    probation_successes: int = 3
    """Answers in a row that end a re-admitted endpoint's probation, 1 to 1000. Default 3."""
    dns_refresh: float = 30.0
    """Seconds between resolutions of the ``dns:NAME:PORT`` endpoints (agents_clients.dns), 1 to 3600. Default 30."""
    hedging: bool = True
    """Whether read operations are hedged (rule 7). Default on."""
    hedge_quantile: float = 0.95
    """The quantile of an operation's latency after which its call is hedged, 0.5 to 0.999. Default 0.95."""
    hedge_floor: float = 0.05
    """The shortest hedge delay, in seconds, 0.001 to 60. Default 0.05."""
    hedge_min_samples: int = 20
    """Answers of an operation seen before it is hedged, 1 to 10,000. Default 20."""
    hedge_budget: float = 0.1
    """Hedges allowed per first attempt, per agent, 0 to 1; 0: none. Default 0.1 (10 % extra calls)."""
    hedge_burst: float = 5.0
    """Hedge tokens an agent may save up, 1 to 1000. Default 5."""

    def __post_init__(self) -> None:
        for name, low, high, low_open in (
            ("latency_alpha", 0.0, 1.0, True),
            ("error_weight", 0.0, 100.0, False),
            ("idle_relax", 0.0, 3600.0, True),
            ("consecutive_failures", 0, 10_000, False),
            ("failure_rate", 0.0, 1.0, True),
            ("failure_window", 1, 10_000, False),
            ("minimum_calls", 1, self.failure_window, False),
            ("base_ejection", 0.0, 3600.0, True),
            ("max_ejection", self.base_ejection, 86_400.0, False),
            ("max_ejection_share", 0.0, 1.0, False),
            ("probation_successes", 1, 1000, False),
            ("dns_refresh", 1.0, 3600.0, False),
            ("hedge_quantile", 0.5, 0.999, False),
            ("hedge_floor", 0.001, 60.0, False),
            ("hedge_min_samples", 1, 10_000, False),
            ("hedge_budget", 0.0, 1.0, False),
            ("hedge_burst", 1.0, 1000.0, False),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"routing.{name}: expected a number, got {value!r}")
            if not math.isfinite(value) or value > high or value < low or (low_open and value <= low):
                above = "above " if low_open else ""
                raise ValueError(f"routing.{name}: expected a value from {above}{low:g} to {high:g}, got {value}")
        if not isinstance(self.hedging, bool):
            raise ValueError(f"routing.hedging: expected true or false, got {self.hedging!r}")


NEVER_ANSWERED = 0.001
"""The latency estimate, in seconds, of an endpoint when none of its peers has answered yet either."""


@dataclass(eq=False)
class Endpoint:
    """One address of an agent, with what routing has learnt of it."""

    address: str
    """HOST:PORT."""
    state: EndpointState = EndpointState.HEALTHY
    in_flight: int = 0
    """Attempts sent here and not yet ended."""
    requests: int = 0
    """Attempts sent here (hedges included)."""
    errors: int = 0
    """Attempts that ended in an endpoint failure (rule 6)."""
    ejections: int = 0
    """Times it was ejected."""
    hedges: int = 0
    """Hedges (second attempts) sent here."""
    latency: float | None = None
    """EWMA of its answers' latency, in seconds; None until it answers (or after a re-admission)."""
    error_estimate: float = 0.0
    """EWMA of its failures (1) and answers (0)."""
    last_outcome: float = -math.inf
    """Clock reading of its last answer or failure."""
    consecutive: int = 0
    """Failures in a row."""
    window: deque[bool] = field(default_factory=deque)
    """Its latest outcomes, True for a failure (at most failure_window)."""
    ejected_until: float = 0.0
    """While ejected: when its cool-off ends."""
    probation_left: int = 0
    """While on probation: answers in a row still needed."""
    multiplier: int = 0
    """The current ejection's multiple of base_ejection."""
    last_ejected: float = -math.inf
    """Clock reading of its last ejection."""


@dataclass(frozen=True)
class EndpointSnapshot:
    """One endpoint's counters and state, as GetSystemHealth and the metrics show them."""

    address: str
    state: str
    requests: int
    errors: int
    in_flight: int
    latency: float
    """The latency EWMA, seconds; 0 before any answer."""
    error_estimate: float
    ejections: int
    hedges: int
    ejected_for: float
    """While ejected: seconds left of the cool-off; 0 otherwise."""


class Router:
    """The endpoints of one agent and the choice among them (rules 1 to 6)."""

    def __init__(
        self,
        agent: str,
        addresses: Sequence[str],
        config: RoutingConfig,
        clock: Callable[[], float],
        rng: random.Random | None = None,
    ) -> None:
        if not addresses:
            raise ValueError(f"agent {agent} has no endpoint")
        self.agent = agent
        self.config = config
        self._clock = clock
        self._rng = rng or random.Random()
        self.endpoints: list[Endpoint] = []
        self.skipped_ejections = 0
        """Ejections rule 4 skipped (the share was reached)."""
        self.update(addresses)

    def update(self, addresses: Iterable[str]) -> None:
        """Replaces the endpoint list (a DNS re-resolution), keeping what is known of the kept ones."""
        known = {e.address: e for e in self.endpoints}
        fresh = [known.get(a) or Endpoint(a) for a in dict.fromkeys(addresses)]
        if not fresh:
            raise ValueError(f"agent {self.agent} has no endpoint")
        self.endpoints = fresh

    def _readmit_due(self, now: float) -> None:
        for endpoint in self.endpoints:
            if endpoint.state is EndpointState.EJECTED and now >= endpoint.ejected_until:
                endpoint.state = EndpointState.PROBATION
                endpoint.probation_left = self.config.probation_successes
                endpoint.latency = None  # fresh estimates, so that it is tried (rule 5)
                endpoint.error_estimate = 0.0
                endpoint.consecutive = 0
                endpoint.window.clear()

    def available(self) -> list[Endpoint]:
        """The endpoints in rotation now (re-admitting those whose cool-off ended)."""
        self._readmit_due(self._clock())
        return [e for e in self.endpoints if e.state is not EndpointState.EJECTED]

    def score(self, endpoint: Endpoint, now: float | None = None, best: float | None = None) -> float:
        """The endpoint's cost of one more attempt (rule 1); lower is better."""
        now = self._clock() if now is None else now
        if best is None:
            best = self._best_latency()
        latency, errors = endpoint.latency, endpoint.error_estimate
        keep = math.exp(-max(0.0, now - endpoint.last_outcome) / self.config.idle_relax)
        if latency is None or endpoint.state is EndpointState.PROBATION:
            latency = best if latency is None else min(latency, best)
        elif latency > best:
            latency = best + (latency - best) * keep
        errors *= keep
        return max(latency, NEVER_ANSWERED) * (endpoint.in_flight + 1) * (1 + self.config.error_weight * errors)

    def _best_latency(self) -> float:
        known = [e.latency for e in self.endpoints if e.latency is not None and e.state is not EndpointState.EJECTED]
        return min(known) if known else NEVER_ANSWERED

    def choose(self, avoid: Endpoint | None = None) -> Endpoint | None:
        """The endpoint of the next attempt: the better of two random available ones.

        Args:
            avoid: an endpoint not to choose (a hedge goes elsewhere than its first attempt).

        Returns:
            None only when `avoid` is the one available endpoint.
        """
        candidates = [e for e in self.available() if e is not avoid]
        if len(candidates) <= 1:
            return candidates[0] if candidates else None
        first, second = self._rng.sample(candidates, 2)
        now, best = self._clock(), self._best_latency()
        return first if self.score(first, now, best) <= self.score(second, now, best) else second

    def started(self, endpoint: Endpoint, *, hedge: bool = False) -> None:
        """An attempt is sent to `endpoint`."""
        endpoint.in_flight += 1
        endpoint.requests += 1
        if hedge:
            endpoint.hedges += 1

    def succeeded(self, endpoint: Endpoint, seconds: float) -> None:
        """The endpoint answered (an answer about the request counts too) after `seconds`."""
        now = self._clock()
        endpoint.in_flight -= 1
        endpoint.last_outcome = now
        alpha = self.config.latency_alpha
        endpoint.latency = _ewma(endpoint.latency, seconds, alpha)
        endpoint.error_estimate -= alpha * endpoint.error_estimate
        endpoint.consecutive = 0
        self._remember(endpoint, failed=False)
        if endpoint.state is EndpointState.PROBATION:
            endpoint.probation_left -= 1
            if endpoint.probation_left <= 0:
                endpoint.state = EndpointState.HEALTHY

    def failed(self, endpoint: Endpoint, seconds: float) -> None:
        """The attempt at `endpoint` failed in a way that is the endpoint's (rule 6)."""
        now = self._clock()
        endpoint.in_flight -= 1
        endpoint.errors += 1
        endpoint.last_outcome = now
        alpha = self.config.latency_alpha
        if endpoint.latency is None or seconds > endpoint.latency:
            endpoint.latency = _ewma(endpoint.latency, seconds, alpha)
        endpoint.error_estimate += alpha * (1.0 - endpoint.error_estimate)
        if endpoint.state is EndpointState.EJECTED:
            return  # a call that was in flight when it was ejected
        endpoint.consecutive += 1
        self._remember(endpoint, failed=True)
        if self._outlier(endpoint):
            self._eject(endpoint, now)

    def abandoned(self, endpoint: Endpoint, seconds: float) -> None:
        """The attempt was cancelled by its caller after `seconds` (rule 6: a censored sample)."""
        endpoint.in_flight -= 1
        if endpoint.latency is not None and seconds > endpoint.latency:
            endpoint.latency += self.config.latency_alpha * (seconds - endpoint.latency)
            endpoint.last_outcome = self._clock()

    def _remember(self, endpoint: Endpoint, *, failed: bool) -> None:
        endpoint.window.append(failed)
        while len(endpoint.window) > self.config.failure_window:
            endpoint.window.popleft()

    def _outlier(self, endpoint: Endpoint) -> bool:
        config = self.config
        if endpoint.state is EndpointState.PROBATION:
            return True
        if config.consecutive_failures and endpoint.consecutive >= config.consecutive_failures:
            return True
        window = endpoint.window
        return len(window) >= config.minimum_calls and sum(window) >= config.failure_rate * len(window)

    def _eject(self, endpoint: Endpoint, now: float) -> None:
        config = self.config
        total = len(self.endpoints)
        ejected = sum(1 for e in self.endpoints if e.state is EndpointState.EJECTED)
        allowed = min(total - 1, max(1, math.floor(config.max_ejection_share * total)))
        if not config.max_ejection_share:
            allowed = 0
        if ejected + 1 > allowed:
            self.skipped_ejections += 1
            return
        # One step of the multiplier is forgiven per max_ejection seconds since the last ejection.
        forgiven = int((now - endpoint.last_ejected) // config.max_ejection) if endpoint.multiplier else 0
        endpoint.multiplier = max(0, endpoint.multiplier - forgiven) + 1
        endpoint.state = EndpointState.EJECTED
        endpoint.ejected_until = now + min(config.base_ejection * endpoint.multiplier, config.max_ejection)
        endpoint.last_ejected = now
        endpoint.ejections += 1
        endpoint.consecutive = 0
        endpoint.window.clear()

    def snapshot(self) -> list[EndpointSnapshot]:
        """Every endpoint's counters and state, in list order."""
        now = self._clock()
        self._readmit_due(now)
        return [
            EndpointSnapshot(
                address=e.address,
                state=e.state.value,
                requests=e.requests,
                errors=e.errors,
                in_flight=e.in_flight,
                latency=e.latency or 0.0,
                error_estimate=e.error_estimate,
                ejections=e.ejections,
                hedges=e.hedges,
                ejected_for=max(0.0, e.ejected_until - now) if e.state is EndpointState.EJECTED else 0.0,
            )
            for e in self.endpoints
        ]


def _ewma(estimate: float | None, sample: float, alpha: float) -> float:
    return sample if estimate is None else estimate + alpha * (sample - estimate)


LATENCY_SAMPLES = 256
"""The latest answers per operation the hedge delay's quantile is computed over."""


class Hedging:
    """When one agent's read operations are hedged, and its hedge budget (rule 7)."""

    def __init__(self, config: RoutingConfig) -> None:
        self.config = config
        self._samples: dict[str, deque[float]] = {}
        self._delays: dict[str, float] = {}
        self.tokens = 0.0
        self.sent = 0
        """Hedges sent."""
        self.won = 0
        """Hedges whose answer came first."""
        self.refused = 0
        """Hedges the budget refused."""

    def observe(self, operation: str, seconds: float) -> None:
        """Records an answer's latency (the winner's, for a hedged call)."""
        samples = self._samples.get(operation)
        if samples is None:
            samples = self._samples[operation] = deque(maxlen=LATENCY_SAMPLES)
        samples.append(seconds)
        self._delays.pop(operation, None)

    def delay(self, operation: str) -> float | None:
        """Seconds after which a call of `operation` is hedged; None: not (yet) hedged."""
        config = self.config
        if not config.hedging or not config.hedge_budget:
            return None
        delay = self._delays.get(operation)
        if delay is None:
            samples = self._samples.get(operation)
            if samples is None or len(samples) < config.hedge_min_samples:
                return None
            ordered = sorted(samples)
            quantile = ordered[min(len(ordered) - 1, math.ceil(config.hedge_quantile * len(ordered)) - 1)]
            delay = self._delays[operation] = max(config.hedge_floor, quantile)
        return delay

    def first_attempt(self) -> None:
        """A first attempt was sent: it earns its share of a hedge."""
        self.tokens = min(self.config.hedge_burst, self.tokens + self.config.hedge_budget)

    def spend(self) -> bool:
        """Takes a token for a hedge; False (and counted) when there is none."""
        if self.tokens >= 1.0 - 1e-9:  # ten tenths make a token, whatever the float sum says
            self.tokens = max(0.0, self.tokens - 1.0)
            self.sent += 1
            return True
        self.refused += 1
        return False
