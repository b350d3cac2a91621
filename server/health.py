"""System health: the agents' statuses, breaker states, execution counts and host utilization."""

from __future__ import annotations

import asyncio
import logging
import os
import resource
import shutil
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

from baton.v1 import common_pb2, execution_pb2, orchestrator_pb2, routing_pb2

from agents_clients.catalog import AGENTS
from agents_clients.routing import EndpointSnapshot
from server.store.base import ExecutionStore

logger = logging.getLogger(__name__)

STORE_PROBE_TIMEOUT = 2.0
"""Seconds the store has to answer the health probe's read before it counts as unreachable."""


ANSWER_WITHIN = 0.02
"""Seconds GetSystemHealth waits for fresh statuses and counts before it answers from the last ones."""

_ACTIVE = (
    execution_pb2.EXECUTION_STATE_QUEUED,
    execution_pb2.EXECUTION_STATE_RUNNING,
    execution_pb2.EXECUTION_STATE_PAUSED,
    execution_pb2.EXECUTION_STATE_COMPENSATING,
)


class StatusSource(Protocol):
    """Something that can ask an agent for its status."""

    async def status(self, agent: str, deadline: float = 1.0) -> common_pb2.AgentStatus: ...


class RouteSource(Protocol):
    """Something that routes agent calls over endpoints (agents_clients.GrpcAgentCaller)."""

    def routes(self) -> Mapping[str, Sequence[EndpointSnapshot]]: ...

    def hedging_counts(self, agent: str) -> tuple[int, int, int, int]: ...


_ENDPOINT_STATES = {
    "healthy": routing_pb2.ENDPOINT_STATE_HEALTHY,
    "ejected": routing_pb2.ENDPOINT_STATE_EJECTED,
    "probation": routing_pb2.ENDPOINT_STATE_PROBATION,
}


def agent_routes(source: RouteSource) -> dict[str, routing_pb2.AgentRoutes]:
    """Each agent's endpoints with their counters and state, and its hedging, as SystemHealth.routes."""
    routes = {}
    for agent, endpoints in source.routes().items():
        sent, won, refused, skipped = source.hedging_counts(agent)
        message = routing_pb2.AgentRoutes(
            hedges_sent=sent, hedges_won=won, hedges_refused=refused, ejections_skipped=skipped
        )
        for snapshot in endpoints:
            route = message.endpoints.add(
                address=snapshot.address,
                state=_ENDPOINT_STATES.get(snapshot.state, routing_pb2.ENDPOINT_STATE_UNSPECIFIED),
                requests=snapshot.requests,
                errors=snapshot.errors,
                in_flight=snapshot.in_flight,
                error_estimate=snapshot.error_estimate,
                ejections=snapshot.ejections,
                hedges=snapshot.hedges,
            )
            route.latency_ewma.FromNanoseconds(round(snapshot.latency * 1e9))
            route.ejected_for.FromNanoseconds(round(snapshot.ejected_for * 1e9))
        routes[agent] = message
    return routes


#: Called after each refresh with whether the store answered and the agents' statuses.
OnRefresh = Callable[[bool, Mapping[str, common_pb2.AgentStatus]], Awaitable[None]]


class HealthMonitor:
    """Keeps the agents' statuses fresh and computes the seed's system health."""

    def __init__(
        self,
        source: StatusSource,
        store: ExecutionStore,
        *,
        breaker_states: Callable[[], Mapping[str, str]] | None = None,
        routes: RouteSource | None = None,
        storage_path: str | None = None,
        max_age: float = 2.0,
        answer_within: float = ANSWER_WITHIN,
    ) -> None:
        self.source = source
        self.store = store
        self.breaker_states = breaker_states
        self.routes = routes
        self.storage_path = storage_path
        self.max_age = max_age
        self._statuses: dict[str, common_pb2.AgentStatus] = {}
        self._refreshed_at = float("-inf")
        self._cpu_mark = (time.monotonic(), _cpu_seconds())
        self._lock = asyncio.Lock()
        self._listeners: list[Callable[[Mapping[str, common_pb2.AgentStatus]], None]] = []
        self.answer_within = answer_within
        self._refresh: asyncio.Future[None] | None = None
        self._count: asyncio.Future[None] | None = None
        self._counts: tuple[int, int] | None = None
        """(active executions, executions waiting), as last counted."""

    def add_listener(self, listener: Callable[[Mapping[str, common_pb2.AgentStatus]], None]) -> None:
        """Registers a function given the agents' statuses after every refresh (the job boards'
        limits read automation's account_health and job_discovery's api_rate_limits from them)."""
        self._listeners.append(listener)

    def agent_statuses(self) -> dict[str, common_pb2.AgentStatus]:
        """The latest known statuses (empty before the first refresh)."""
        return dict(self._statuses)

    async def refresh(self) -> None:
        """Asks every agent for its status, concurrently."""
        async with self._lock:
            results = await asyncio.gather(*(self.source.status(a) for a in AGENTS))
            statuses = {}
            breakers = self.breaker_states() if self.breaker_states else {}
            for agent, status in zip(AGENTS, results, strict=True):
                state = breakers.get(agent, "closed")
                if state != "closed" and status.status != common_pb2.AGENT_HEALTH_OFFLINE:
                    status.status = common_pb2.AGENT_HEALTH_DEGRADED
                status.metrics.update({"circuit_breaker": state})
                statuses[agent] = status
            self._statuses = statuses
            self._refreshed_at = time.monotonic()
            for listener in self._listeners:
                try:
                    listener(statuses)
                except Exception:
                    logger.exception("agent status listener failed")

    def _refreshing(self) -> asyncio.Future[None]:
        """The refresh under way, or a new one (one at a time, whoever asks)."""
        if self._refresh is None or self._refresh.done():
            self._refresh = asyncio.ensure_future(self.refresh())
            self._refresh.add_done_callback(_retrieve)
        return self._refresh

    def _counting(self) -> asyncio.Future[None]:
        """The count of active and waiting executions under way, or a new one."""
        if self._count is None or self._count.done():
            self._count = asyncio.ensure_future(self._recount())
            self._count.add_done_callback(_retrieve)
        return self._count

    async def _recount(self) -> None:
        counts = await self.store.count_by_state()
        active = sum(counts.get(state, 0) for state in _ACTIVE)
        self._counts = (active, await self.store.count_waiting())

    async def _within(self, work: asyncio.Future[None], *, first: bool) -> None:
        """Awaits `work` for at most `answer_within` seconds, unless nothing is known before it;
        its failure is raised only then (otherwise the last snapshot stands, and it is logged)."""
        if first:
            await asyncio.shield(work)
        else:
            await asyncio.wait({work}, timeout=self.answer_within)

    async def store_ok(self) -> bool:
        """Whether the store answers a read within STORE_PROBE_TIMEOUT seconds."""
        try:
            await asyncio.wait_for(self.store.count_by_state(), STORE_PROBE_TIMEOUT)
        except Exception as error:
            logger.warning("the store does not answer: %r", error)
            return False
        return True

    async def run(self, interval: float = 5.0, on_refresh: OnRefresh | None = None) -> None:
        """Refreshes forever (a background task of the server), then reports to `on_refresh`."""
        while True:
            try:
                await self.refresh()
            except Exception:
                logger.exception("agent status refresh failed")
            if on_refresh is not None:
                try:
                    await on_refresh(await self.store_ok(), self.agent_statuses())
                except Exception:
                    logger.exception("health report failed")
            await asyncio.sleep(interval)

    async def system_health(self) -> orchestrator_pb2.SystemHealth:
        """The seed's health, with statuses at most max_age seconds old.

        Fresh when the refresh answers within `answer_within` seconds; past that (a burst has the
        store's readers and the agents busy), the last snapshot, and the refresh goes on in the
        background to update it: a health check must stay fast exactly when the system is not.
        """
        if time.monotonic() - self._refreshed_at > self.max_age:
            await self._within(self._refreshing(), first=not self._statuses)
        await self._within(self._counting(), first=self._counts is None)
        active, waiting = self._counts or (0, 0)
        health = orchestrator_pb2.SystemHealth(
            agent_statuses=self._statuses, active_workflows=active, queue_depth=waiting
        )
        offline = sum(1 for s in self._statuses.values() if s.status == common_pb2.AGENT_HEALTH_OFFLINE)
        unhealthy = sum(1 for s in self._statuses.values() if s.status != common_pb2.AGENT_HEALTH_HEALTHY)
        if offline * 2 >= len(AGENTS):
            health.overall_health = orchestrator_pb2.OVERALL_HEALTH_CRITICAL
        elif unhealthy:
            health.overall_health = orchestrator_pb2.OVERALL_HEALTH_DEGRADED
        else:
            health.overall_health = orchestrator_pb2.OVERALL_HEALTH_HEALTHY
        if self.routes is not None:
            for agent, routes in agent_routes(self.routes).items():
                health.routes[agent].CopyFrom(routes)
        utilization = health.resource_utilization
        now, cpu = time.monotonic(), _cpu_seconds()
        then, cpu_then = self._cpu_mark
        if now > then:
            utilization.cpu = min(100.0, 100.0 * (cpu - cpu_then) / (now - then))
        self._cpu_mark = (now, cpu)
        utilization.memory = _memory_percent()
        if self.storage_path:
            usage = shutil.disk_usage(self.storage_path)
            utilization.storage = 100.0 * usage.used / usage.total
        health.checked_at.GetCurrentTime()
        return health


def _retrieve(work: asyncio.Future[None]) -> None:
    if not work.cancelled() and work.exception() is not None:
        logger.warning("health refresh failed: %r", work.exception())


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _memory_percent() -> float:
    try:
        with open("/proc/self/statm") as statm:
            resident_pages = int(statm.read().split()[1])
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return 100.0 * resident_pages * os.sysconf("SC_PAGE_SIZE") / total
    except (OSError, ValueError):
        return 0.0
