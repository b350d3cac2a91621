"""Prometheus metrics: one registry per server, fed at the engine's edges, served on ``--metrics``.

Rules:
1. Nothing is global: each server makes its own `Metrics` (its own ``CollectorRegistry``), so
   several servers in one process (the tests) count apart; the global registry is never touched.
2. The engine knows nothing of this module. The series are fed at its edges: the engine's start
   and terminal listeners (executions), `MeteredCaller` around the agent caller (attempts,
   retries), the breakers' listeners (transitions), the store's commit observer (commit latency);
   the live values (executions in flight and parked here, open watches, breaker states, the
   store's executions by state, the agent endpoints' routing counters) are read when Prometheus
   scrapes, on the event loop.
3. Every label has a bounded set of values, whatever callers send: workflow types the planner
   defines (an explicit plan's own type counts as ``custom``), the catalog's agents and operations
   (anything else ``other``), and outcomes from a fixed set (gRPC code names, CIRCUIT_OPEN,
   EXPRESSION_ERROR, CANCELLED; anything else ``OTHER``). A caller cannot grow the registry.
4. Off by default (no ``--metrics``): no `Metrics` is made, no hook is installed and the store
   times nothing.
5. The endpoint is an aiohttp app on the server's own event loop (prometheus_client's exposition
   renders the registry), so the scrape-time reads never race the loop's tasks from a thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass

import grpc
import pybreaker
from aiohttp import web
from baton.v1 import execution_pb2
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from agents_clients.catalog import AGENTS, operations
from server.engine import AgentCall, AgentCaller, AgentCallError, AgentReply, ExecutionState
from server.health import RouteSource
from server.store.base import ExecutionRecord

logger = logging.getLogger(__name__)

PATH = "/metrics"
"""Where the endpoint serves the metrics (the usual path, named in the chart's scrape annotation)."""
CUSTOM_WORKFLOW = "custom"
"""The workflow_type label of an execution whose type the planner does not define (an explicit plan's)."""
OTHER = "other"
"""The agent or operation label of a call outside the catalog (validated plans make none)."""
OTHER_OUTCOME = "OTHER"
"""The outcome label of an error type outside the known set."""

# Seconds. Executions: a fast run is under a second, the default execution timeout is 10 minutes.
EXECUTION_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
# Attempts: the reference agents answer in about a millisecond; a deadline is at most minutes.
ATTEMPT_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Commits: a SQLite group commit takes well under a millisecond, a PostgreSQL one a WAL flush.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)

BREAKER_STATES = {"closed": 0, "half-open": 1, "open": 2}
"""The value of baton_circuit_breaker_state for each pybreaker state."""
_OUTCOMES = frozenset(
    {code.name for code in grpc.StatusCode}
    | {"CIRCUIT_OPEN", "RETRY_BUDGET_EXHAUSTED", "AGENT_CAPACITY", "BOARD_SUSPENDED", "EXPRESSION_ERROR"}
)
_EXECUTION_OUTCOMES = {
    execution_pb2.EXECUTION_STATE_COMPLETED: "completed",
    execution_pb2.EXECUTION_STATE_FAILED: "failed",
    execution_pb2.EXECUTION_STATE_CANCELLED: "cancelled",
}
_STATE_LABELS = {
    value: name.removeprefix("EXECUTION_STATE_").lower()
    for name, value in execution_pb2.ExecutionState.items()
    if value != execution_pb2.EXECUTION_STATE_UNSPECIFIED
}
STORE_READ_TIMEOUT = 2.0
"""Seconds the store has to count its executions during a scrape."""


@dataclass(frozen=True)
class LiveSources:
    """Where the values read at scrape time come from (the server's engine, hub, breakers, store)."""

    in_flight: Callable[[], int]
    """Executions with a live runner in this process."""
    parked: Callable[[], int]
    """Executions parked in this process (waiting for a time or a command, holding no task)."""
    watchers: Callable[[], int]
    """Open WatchExecution streams."""
    breaker_states: Callable[[], Mapping[str, str]]
    """Each agent's breaker state: closed, half-open or open."""
    store_counts: Callable[[], Awaitable[Mapping[int, int]]]
    """The store's executions per ExecutionState (every replica's)."""
    queue_depth: Callable[[], Awaitable[int]] | None = None
    """The store's executions waiting for admission (every replica's); None: 0."""
    capacity: Callable[[], Mapping[str, tuple[int, int]]] | None = None
    """Each limit scope (``agent``, ``agent.Operation``, ``board:NAME``) → its calls in flight
    (bulkheads; 0 otherwise) and its calls waiting for a slot or a token; None: none."""
    routes: RouteSource | None = None
    """The agent caller's routing: each agent's endpoints with their counters (agents_clients.routing)."""


class _LiveCollector(Collector):
    """The gauges read when Prometheus scrapes (see `LiveSources`)."""

    def __init__(self) -> None:
        self.sources: LiveSources | None = None
        self.store_counts: Mapping[int, int] = {}
        self.queue_depth = 0
        self.store_up = 0

    def collect(self) -> Iterator[Metric]:
        sources = self.sources
        if sources is None:
            return
        yield GaugeMetricFamily(
            "baton_executions_in_flight", "Executions with a live runner in this process.", value=sources.in_flight()
        )
        yield GaugeMetricFamily(
            "baton_executions_parked",
            "Executions parked in this process: waiting for a time or a command, holding no task.",
            value=sources.parked(),
        )
        yield GaugeMetricFamily("baton_watchers_open", "Open WatchExecution streams.", value=sources.watchers())
        breakers = GaugeMetricFamily(
            "baton_circuit_breaker_state",
            "Each agent's circuit breaker: 0 closed, 1 half-open, 2 open (an open breaker reads open "
            "until the next call after its reset timeout).",
            labels=["agent"],
        )
        for agent, state in sorted(sources.breaker_states().items()):
            breakers.add_metric([agent], BREAKER_STATES.get(state, BREAKER_STATES["open"]))
        yield breakers
        yield GaugeMetricFamily(
            "baton_store_up", "Whether the store answered this scrape's count of executions.", value=self.store_up
        )
        yield GaugeMetricFamily(
            "baton_queue_depth",
            "Executions waiting in the admission queue (the store's count, every replica's).",
            value=self.queue_depth,
        )
        by_state = GaugeMetricFamily(
            "baton_store_executions", "The store's executions by state (every replica's).", labels=["state"]
        )
        for value, label in _STATE_LABELS.items():
            by_state.add_metric([label], self.store_counts.get(value, 0))
        yield by_state
        if sources.capacity is not None:
            in_flight = GaugeMetricFamily(
                "baton_capacity_in_flight",
                "Agent calls in flight under each bulkhead (scope: agent or agent.Operation).",
                labels=["scope"],
            )
            waiting = GaugeMetricFamily(
                "baton_capacity_waiting",
                "Agent calls waiting for a bulkhead's slot or a rate limit's token (scope: agent,"
                " agent.Operation or board:NAME).",
                labels=["scope"],
            )
            for scope, (running, held) in sorted(sources.capacity().items()):
                in_flight.add_metric([scope], running)
                waiting.add_metric([scope], held)
            yield in_flight
            yield waiting
        if sources.routes is not None:
            yield from _route_metrics(sources.routes)


ENDPOINT_STATES = {"healthy": 0, "probation": 1, "ejected": 2}
"""The value of baton_agent_endpoint_state for each endpoint state (agents_clients.routing)."""


def _route_metrics(source: RouteSource) -> Iterator[Metric]:
    """The routing series: per agent endpoint (labels agent, endpoint: configured addresses, a
    bounded set) its counters and state, and per agent its hedges."""
    labels = ["agent", "endpoint"]
    requests = CounterMetricFamily(
        "baton_agent_endpoint_requests", "Attempts sent to each agent endpoint (hedges included).", labels=labels
    )
    errors = CounterMetricFamily(
        "baton_agent_endpoint_errors",
        "Attempts that failed at each agent endpoint (unreachable, deadline exceeded, internal errors).",
        labels=labels,
    )
    ejections = CounterMetricFamily(
        "baton_agent_endpoint_ejections", "Times each agent endpoint was ejected as an outlier.", labels=labels
    )
    in_flight = GaugeMetricFamily("baton_agent_endpoint_in_flight", "Attempts in flight per endpoint.", labels=labels)
    latency = GaugeMetricFamily(
        "baton_agent_endpoint_latency_ewma_seconds",
        "EWMA of each endpoint's answer latency, seconds (0 before an answer or after a re-admission).",
        labels=labels,
    )
    state = GaugeMetricFamily(
        "baton_agent_endpoint_state", "Each agent endpoint: 0 healthy, 1 on probation, 2 ejected.", labels=labels
    )
    hedges = CounterMetricFamily(
        "baton_agent_hedges",
        "Hedged reads per agent: sent, won (answered first) and refused (by the hedging budget).",
        labels=["agent", "outcome"],
    )
    for agent, endpoints in sorted(source.routes().items()):
        for endpoint in endpoints:
            key = [agent, endpoint.address]
            requests.add_metric(key, endpoint.requests)
            errors.add_metric(key, endpoint.errors)
            ejections.add_metric(key, endpoint.ejections)
            in_flight.add_metric(key, endpoint.in_flight)
            latency.add_metric(key, endpoint.latency)
            state.add_metric(key, ENDPOINT_STATES.get(endpoint.state, ENDPOINT_STATES["ejected"]))
        sent, won, refused, _ = source.hedging_counts(agent)
        for outcome, count in (("sent", sent), ("won", won), ("refused", refused)):
            hedges.add_metric([agent, outcome], count)
    yield from (requests, errors, ejections, in_flight, latency, state, hedges)


class Metrics:
    """The series of one server, in its own registry (see the module's rules)."""

    def __init__(self, *, workflow_types: Iterable[str] = ()) -> None:
        """Makes the registry and its series.

        Args:
            workflow_types: the workflow types the planner defines: the values of the
                workflow_type label (any other type counts as ``custom``).
        """
        self.registry = CollectorRegistry()
        self._workflow_types = frozenset(workflow_types)
        self._operations = {agent: frozenset(operations(agent)) for agent in AGENTS}
        registry = self.registry
        by_type = ["workflow_type"]
        self.started = Counter(
            "baton_executions_started", "Executions submitted and recorded here.", by_type, registry=registry
        )
        self.completed = Counter(
            "baton_executions_completed", "Executions that completed here.", by_type, registry=registry
        )
        self.failed = Counter("baton_executions_failed", "Executions that failed here.", by_type, registry=registry)
        self.cancelled = Counter(
            "baton_executions_cancelled", "Executions cancelled (or rejected) here.", by_type, registry=registry
        )
        self.execution_seconds = Histogram(
            "baton_execution_duration_seconds",
            "Seconds from an execution's submission to its end, by outcome (completed, failed, cancelled).",
            ["workflow_type", "outcome"],
            buckets=EXECUTION_BUCKETS,
            registry=registry,
        )
        self.attempt_seconds = Histogram(
            "baton_step_attempt_duration_seconds",
            "Seconds one attempt of an agent call took, by outcome (OK or the error: a gRPC code name, "
            "CIRCUIT_OPEN, EXPRESSION_ERROR, CANCELLED).",
            ["agent", "operation", "outcome"],
            buckets=ATTEMPT_BUCKETS,
            registry=registry,
        )
        self.retries = Counter(
            "baton_step_retries",
            "Attempts of an agent call after its first (retries of steps and compensations).",
            ["agent", "operation"],
            registry=registry,
        )
        self.breaker_transitions = Counter(
            "baton_circuit_breaker_transitions",
            "Changes of an agent's circuit breaker, by the state entered.",
            ["agent", "state"],
            registry=registry,
        )
        self.commit_seconds = Histogram(
            "baton_store_commit_duration_seconds",
            "Seconds one store transaction (a batch of writes, group commit) took to commit.",
            buckets=COMMIT_BUCKETS,
            registry=registry,
        )
        for workflow_type in (*sorted(self._workflow_types), CUSTOM_WORKFLOW):
            # Present at 0 from the start, so rate() sees the first execution of each type.
            for counter in (self.started, self.completed, self.failed, self.cancelled):
                counter.labels(workflow_type)
        self._live = _LiveCollector()
        registry.register(self._live)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)

    # ---- labels ---------------------------------------------------------------------------------

    def workflow_label(self, workflow_type: str) -> str:
        """The workflow_type label of a type: itself when the planner defines it, else ``custom``."""
        return workflow_type if workflow_type in self._workflow_types else CUSTOM_WORKFLOW

    def operation_labels(self, agent: str, operation: str) -> tuple[str, str]:
        """The agent and operation labels of a call (``other`` for what the catalog lacks)."""
        known = self._operations.get(agent)
        if known is None:
            return OTHER, OTHER
        return agent, operation if operation in known else OTHER

    # ---- hooks ----------------------------------------------------------------------------------

    def on_started(self, record: ExecutionRecord) -> None:
        """The engine's start listener: counts a new execution."""
        self.started.labels(self.workflow_label(record.workflow_type)).inc()

    def on_terminal(self, state: ExecutionState) -> None:
        """The engine's terminal listener: counts the end and observes the execution's duration."""
        outcome = _EXECUTION_OUTCOMES.get(state.status)
        if outcome is None:
            return
        workflow_type = self.workflow_label(state.started.plan.workflow_type)
        counter = {"completed": self.completed, "failed": self.failed, "cancelled": self.cancelled}[outcome]
        counter.labels(workflow_type).inc()
        began, ended = state.start_time, state.end_time or state.current_time
        if began is not None and ended is not None:
            seconds = (ended.seconds - began.seconds) + (ended.nanos - began.nanos) / 1e9
            self.execution_seconds.labels(workflow_type, outcome).observe(max(0.0, seconds))

    def observe_commit(self, seconds: float) -> None:
        """The store's commit observer (thread-safe: the thread writer calls it from its thread)."""
        self.commit_seconds.observe(seconds)

    def caller(self, inner: AgentCaller) -> MeteredCaller:
        """Wraps the engine's agent caller so every attempt is timed and every retry counted."""
        return MeteredCaller(inner, self)

    def watch_breakers(self, breaker: Callable[[str], pybreaker.CircuitBreaker]) -> None:
        """Counts the transitions of every agent's breaker (made now if not yet, so all show).

        Args:
            breaker: returns an agent's breaker (`agents_clients.BreakingCaller.breaker`).
        """
        listener = _TransitionCounter(self.breaker_transitions)
        for agent in AGENTS:
            breaker(agent).add_listener(listener)

    def watch(self, sources: LiveSources) -> None:
        """Reads these values at each scrape."""
        self._live.sources = sources

    async def refresh(self) -> None:
        """Reads what cannot be read synchronously at scrape time (the store's counts, within
        STORE_READ_TIMEOUT seconds)."""
        sources = self._live.sources
        if sources is None:
            return
        try:
            async with asyncio.timeout(STORE_READ_TIMEOUT):
                counts = await sources.store_counts()
                depth = await sources.queue_depth() if sources.queue_depth is not None else 0
            self._live.store_counts = dict(counts)
            self._live.queue_depth = depth
            self._live.store_up = 1
        except Exception as error:
            # The gauges keep their last values; baton_store_up says they are stale.
            logger.warning("metrics: the store did not answer its count of executions: %r", error)
            self._live.store_up = 0

    def exposition(self, accept: str = "") -> tuple[bytes, str]:
        """The registry in the format the Accept header asks for (text or OpenMetrics), with its type."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type


class _TransitionCounter(pybreaker.CircuitBreakerListener):
    def __init__(self, counter: Counter) -> None:
        self.counter = counter

    def state_change(self, cb: pybreaker.CircuitBreaker, old_state: object, new_state: object) -> None:
        old = getattr(old_state, "name", old_state)
        new = getattr(new_state, "name", new_state)
        if old != new:  # pybreaker reports closed -> closed when several trials succeed at once
            self.counter.labels(str(cb.name), str(new)).inc()


class MeteredCaller:
    """An AgentCaller that times every attempt of another and counts the retries."""

    def __init__(self, inner: AgentCaller, metrics: Metrics) -> None:
        self.inner = inner
        self.metrics = metrics

    async def call(self, call: AgentCall) -> AgentReply:
        """Performs the attempt, observing its duration under its outcome."""
        metrics = self.metrics
        agent, operation = metrics.operation_labels(call.agent, call.operation)
        if call.attempt > 1:
            metrics.retries.labels(agent, operation).inc()
        outcome = OTHER_OUTCOME
        began = time.perf_counter()
        try:
            reply = await self.inner.call(call)
            outcome = "OK"
            return reply
        except AgentCallError as error:
            outcome = error.error_type if error.error_type in _OUTCOMES else OTHER_OUTCOME
            raise
        except asyncio.CancelledError:
            # The execution ended without the reply, or the process is stopping.
            outcome = "CANCELLED"
            raise
        finally:
            metrics.attempt_seconds.labels(agent, operation, outcome).observe(time.perf_counter() - began)


# ---- the endpoint ---------------------------------------------------------------------------------


@dataclass
class MetricsEndpoint:
    """A started metrics endpoint."""

    address: str
    """HOST:PORT actually bound."""
    _runner: web.AppRunner

    @property
    def url(self) -> str:
        """The metrics' URL."""
        return f"http://{self.address}{PATH}"

    async def close(self) -> None:
        """Stops serving."""
        await self._runner.cleanup()


async def start_metrics_endpoint(metrics: Metrics, listen: str) -> MetricsEndpoint:
    """Serves `metrics` on HOST:PORT (port 0 picks one) at /metrics, on the running event loop.

    Raises:
        OSError: the address cannot be bound (the message names it).
    """
    host, _, port = listen.rpartition(":")
    host = host.strip("[]")

    async def scrape(request: web.Request) -> web.Response:
        await metrics.refresh()
        body, content_type = metrics.exposition(request.headers.get("Accept", ""))
        response = web.Response(body=body, headers={"Content-Type": content_type})
        response.enable_compression()  # gzip or deflate when the scraper accepts it (Prometheus does)
        return response

    app = web.Application()
    app.router.add_get(PATH, scrape)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, int(port))
        await site.start()
    except BaseException:
        await runner.cleanup()
        raise
    bound = runner.addresses[0]
    shown = f"[{host}]" if ":" in host else host
    return MetricsEndpoint(address=f"{shown}:{bound[1]}", _runner=runner)
