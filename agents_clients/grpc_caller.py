"""Calls agent operations over gRPC, generically: JSON payload → request message → response.

Requests are built from the operation's descriptor (no table of operations), every call has a
deadline and carries its idempotency key as ``baton-idempotency-key`` metadata and its attempt
number apart, as ``baton-attempt`` (the key is the same for every attempt, so an agent applies the
effect once; the attempt is for its logs and metrics), and gRPC errors become AgentCallError with
the status code's name and whether a retry may help.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

import grpc
from baton.v1 import common_pb2
from google.protobuf import json_format
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from agents_clients.catalog import AGENT_SERVICES, Operation, UnknownAgentError, UnknownOperationError, operation
from agents_clients.dns import DnsEndpoints, Resolver, resolve
from agents_clients.routing import Endpoint, EndpointSnapshot, Hedging, Router, RoutingConfig
from agents_clients.tls import ClientTls
from server.engine.ports import AgentCall, AgentCallError, AgentReply

IDEMPOTENCY_KEY = "baton-idempotency-key"
"""The request metadata key of a call's idempotency key."""
ATTEMPT = "baton-attempt"
"""The request metadata key of a call's attempt number, from "1"."""

#: Status codes that mean the request itself is wrong: retrying cannot help, and they say
#: nothing about the agent's health (so they never trip a breaker).
BUSINESS_CODES = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.ALREADY_EXISTS,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.PERMISSION_DENIED,
        grpc.StatusCode.UNAUTHENTICATED,
        grpc.StatusCode.OUT_OF_RANGE,
        grpc.StatusCode.UNIMPLEMENTED,
    }
)

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
"""The one message size limit of every hop (server.config.ServerConfig.max_message_bytes): what
a call sends at most and accepts at most, and what the reference agents accept."""


def channel_options(max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES) -> tuple[tuple[str, int], ...]:
    """The options of a channel to the agents."""
    return (
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.keepalive_time_ms", 30_000),
        # The engine retries a failed call itself (same idempotency key, its own policy and
        # budget); gRPC's retry layer would only add ~4 kB to every call in flight, 15 % of a
        # held call's memory (bench/README.md: executions held).
        ("grpc.enable_retries", 0),
    )


@dataclass(frozen=True, slots=True)
class PreparedCall:
    """A call whose request message is built and checked: what `send` needs."""

    call: AgentCall
    request: Message
    request_bytes: int


RETIRED_CHANNEL_GRACE = 300.0
"""Seconds the calls in flight on channels replaced by a certificate reload may still take."""


def _too_large(code: grpc.StatusCode, details: str) -> bool:
    """Whether a RESOURCE_EXHAUSTED is gRPC's refusal of a message's size (the same request
    would be refused again), not an agent's quota (which may refill)."""
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and "larger than max" in details


_SCALAR_TYPES: dict[int, tuple[type, ...]] = {
    FieldDescriptor.TYPE_STRING: (str,),
    FieldDescriptor.TYPE_BOOL: (bool,),
    FieldDescriptor.TYPE_INT32: (int,),
    FieldDescriptor.TYPE_INT64: (int,),
    FieldDescriptor.TYPE_UINT32: (int,),
    FieldDescriptor.TYPE_UINT64: (int,),
    FieldDescriptor.TYPE_DOUBLE: (int, float),
    FieldDescriptor.TYPE_FLOAT: (int, float),
}


def _set_scalars(request: Message, payload: Mapping[str, Any]) -> bool:
    """Sets a flat payload of singular scalar fields directly; False (nothing set) otherwise.

    The common request is a handful of strings and numbers, for which json_format's generic
    parser costs more than the call's own serialization; anything else goes to the parser.
    """
    fields = request.DESCRIPTOR.fields_by_name
    for name, value in payload.items():
        field = fields.get(name)
        if (
            field is None
            or field.is_repeated
            or not isinstance(value, _SCALAR_TYPES.get(field.type, ()))
            or (isinstance(value, bool) and field.type != FieldDescriptor.TYPE_BOOL)
        ):
            return False
    for name, value in payload.items():
        setattr(request, name, value)
    return True


#: Status codes that say something about the endpoint that answered (or did not): routing counts
#: them as its failures (agents_clients.routing rule 6). Any other answer is the endpoint working.
ENDPOINT_FAILURES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.DATA_LOSS,
    }
)
HEDGE = "baton-hedge"
"""The request metadata key marking a hedge (a second attempt sent while the first still runs): "1"."""


class GrpcAgentCaller:
    """The AgentCaller over gRPC channels, one per distinct endpoint, shared between agents.

    Each attempt goes to one endpoint of its agent, chosen by the agent's Router (power of two
    choices, outlier ejection), and a read operation may be hedged (agents_clients.routing).
    """

    def __init__(
        self,
        endpoints: Mapping[str, Sequence[str]],
        *,
        channel_factory: Callable[[str], grpc.aio.Channel] | None = None,
        tls: ClientTls | None = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        routing: RoutingConfig | None = None,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        resolver: Resolver = resolve,
    ) -> None:
        """Creates the channels (they connect lazily).

        Args:
            endpoints: agent name → its addresses ("host:port"), among which each attempt chooses.
            channel_factory: makes a channel for an address; insecure by default.
            tls: TLS credentials for the channels (instead of `channel_factory`); when their
                files change, the channels are replaced (the calls in flight finish on the old ones).
            max_message_bytes: the largest request sent (a larger one fails its call at once,
                unsent) and the largest response accepted.
            routing: how attempts are spread over an agent's endpoints and when reads are
                hedged; the defaults when None.
            clock: monotonic seconds, for latencies and ejections (injected in tests).
            rng: picks the two candidates of each choice (seeded in tests).
            resolver: resolves the ``dns:NAME:PORT`` endpoints (agents_clients.dns).

        Raises:
            ValueError: an agent without endpoints, or a malformed ``dns:`` endpoint.
        """
        unknown = set(endpoints) - set(AGENT_SERVICES)
        if unknown:
            raise UnknownAgentError(f"unknown agents in endpoints: {', '.join(sorted(unknown))}")
        self.routing = routing or RoutingConfig()
        self._clock = clock
        rng = rng or random.Random()
        self._routers: dict[str, Router] = {}
        self._hedging: dict[str, Hedging] = {}
        self.dns = DnsEndpoints({a: list(e) for a, e in endpoints.items()}, self.routing.dns_refresh, resolver)
        self._resolving: asyncio.Task[None] | None = None
        for agent, addresses in endpoints.items():
            if not addresses:
                raise ValueError(f"agent {agent} has no endpoint")
            self._routers[agent] = Router(agent, self.dns.addresses(agent), self.routing, clock, rng)
            self._hedging[agent] = Hedging(self.routing)
        self._tls = tls
        self._factory = channel_factory
        self.max_message_bytes = max_message_bytes
        self._options = channel_options(max_message_bytes)
        self._retiring: set[asyncio.Task[None]] = set()
        self._open()

    def _make(self, target: str) -> grpc.aio.Channel:
        if self._tls is not None:
            name = self.dns.server_names.get(target)
            # A resolved address's certificate carries the DNS name (agents_clients.dns rule 3).
            extra = (("grpc.ssl_target_name_override", name),) if name else ()
            return self._tls.channel(target, (*self._options, *extra))
        if self._factory is not None:
            return self._factory(target)
        return grpc.aio.insecure_channel(target, options=self._options)

    def _open(self) -> None:
        """Creates a channel per distinct address, shared by the agents served there."""
        self._channels: dict[str, grpc.aio.Channel] = {}
        for router in self._routers.values():
            for endpoint in router.endpoints:
                self._channel(endpoint.address)
        self._methods: dict[tuple[int, str], grpc.aio.UnaryUnaryMultiCallable[Any, Any]] = {}

    def _channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = self._make(address)
        return channel

    async def refresh_dns(self) -> None:
        """Resolves the ``dns:`` endpoints again and updates the agents' rotations: a kept address
        keeps its counters, a new one starts fresh, a gone one's channel closes once its calls end."""
        if not self.dns.names:
            return
        await self.dns.refresh(self._clock())
        for agent, router in self._routers.items():
            router.update(self.dns.addresses(agent))
            for endpoint in router.endpoints:
                self._channel(endpoint.address)
        kept = {e.address for router in self._routers.values() for e in router.endpoints}
        for gone in set(self._channels) - kept:
            self._retire(self._channels.pop(gone))

    def _resolve_when_due(self) -> None:
        """Starts a DNS re-resolution in the background when one is due (the call goes on meanwhile)."""
        if not self.dns.names or self._clock() < self.dns.due:
            return
        if self._resolving is None or self._resolving.done():
            self.dns.due = self._clock() + self.dns.interval  # one at a time, whatever happens to it
            self._resolving = asyncio.get_running_loop().create_task(self.refresh_dns(), name="agents DNS")

    def _retire(self, channel: grpc.aio.Channel) -> None:
        """Closes a channel once its calls in flight end (at most RETIRED_CHANNEL_GRACE seconds)."""
        for key in [k for k in self._methods if k[0] == id(channel)]:
            del self._methods[key]
        task = asyncio.get_running_loop().create_task(channel.close(RETIRED_CHANNEL_GRACE))
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    def _refresh_tls(self) -> None:
        """Replaces every channel if the TLS files changed; the old ones close once their calls end."""
        if self._tls is None or not self._tls.refresh():
            return
        retired = list(self._channels.values())
        self._open()
        for channel in retired:
            self._retire(channel)

    @classmethod
    def single(cls, address: str, agents: Iterable[str] = tuple(AGENT_SERVICES)) -> GrpcAgentCaller:
        """A caller whose agents are all served at one address."""
        return cls({agent: [address] for agent in agents})

    def endpoints(self, agent: str) -> Sequence[grpc.aio.Channel]:
        """The channels of an agent."""
        return [self._channel(e.address) for e in self._routers[agent].endpoints]

    def router(self, agent: str) -> Router:
        """The agent's router: its endpoints, what is known of them, and the choice."""
        return self._routers[agent]

    def hedging(self, agent: str) -> Hedging:
        """The agent's hedging: delays per read operation, budget and counters."""
        return self._hedging[agent]

    def routes(self) -> dict[str, list[EndpointSnapshot]]:
        """Each agent's endpoints with their counters and state (GetSystemHealth, the metrics)."""
        return {agent: router.snapshot() for agent, router in self._routers.items()}

    def hedging_counts(self, agent: str) -> tuple[int, int, int, int]:
        """The agent's hedges sent, won and refused, and its ejections skipped (routing rule 4)."""
        hedging = self._hedging[agent]
        return hedging.sent, hedging.won, hedging.refused, self._routers[agent].skipped_ejections

    async def call(self, call: AgentCall) -> AgentReply:
        """Performs one attempt of the call within its timeout."""
        return await self.send(self.prepare(call))

    def prepare(self, call: AgentCall) -> PreparedCall:
        """Builds and checks the call's request, sending nothing.

        Raises:
            AgentCallError: not retryable, with nothing sent: an unknown agent or operation
                (INVALID_ARGUMENT), a payload that does not make the request (INVALID_ARGUMENT:
                a wrong type, an int32 out of range, a value nested too deep), or a request past
                the message limit (RESOURCE_EXHAUSTED, which the agent would answer anyway).
        """
        try:
            op = operation(call.agent, call.operation)
        except (UnknownAgentError, UnknownOperationError) as exc:
            raise AgentCallError("INVALID_ARGUMENT", str(exc), retryable=False) from None
        request = op.new_request()
        try:
            if not _set_scalars(request, call.payload):
                json_format.ParseDict(call.payload, request)
            request_bytes = request.ByteSize()
        except Exception as exc:
            # Nothing was sent: whatever building the request raised (a ParseError, a ValueError
            # for an int32 out of range, a RecursionError on a too-deep value) is this call's
            # refusal, never worth a retry.
            detail = str(exc) if isinstance(exc, json_format.ParseError) else f"{type(exc).__name__}: {exc}"
            raise AgentCallError(
                "INVALID_ARGUMENT", f"request of {call.agent}.{call.operation}: {detail}"[:2000], retryable=False
            ) from None
        if request_bytes > self.max_message_bytes:
            raise AgentCallError(
                "RESOURCE_EXHAUSTED",
                f"request of {call.agent}.{call.operation}: {request_bytes} bytes, more than the"
                f" {self.max_message_bytes} an agent accepts (max_message_bytes); not sent",
                retryable=False,
            )
        return PreparedCall(call, request, request_bytes)

    async def send(self, prepared: PreparedCall) -> AgentReply:
        """Sends a prepared call within its timeout: once, or, for a read, perhaps hedged."""
        call = prepared.call
        op = operation(call.agent, call.operation)
        self._refresh_tls()
        self._resolve_when_due()
        router = self._routers.get(call.agent)
        if router is None:
            raise AgentCallError("UNAVAILABLE", f"no endpoint for agent {call.agent}", retryable=True)
        first = router.choose()
        if first is None:  # never: an agent keeps an endpoint in rotation (routing rule 4)
            raise AgentCallError("UNAVAILABLE", f"no endpoint in rotation for agent {call.agent}", retryable=True)
        delay = None
        if op.read and len(router.endpoints) > 1:  # one endpoint: nowhere to hedge to, no task to pay for
            hedging = self._hedging[call.agent]
            hedging.first_attempt()
            delay = hedging.delay(op.name)
        if delay is None or delay >= call.timeout:
            return await self._attempt(router, first, prepared, op, call.timeout)
        return await self._hedged(router, first, prepared, op, delay)

    async def _hedged(
        self, router: Router, first: Endpoint, prepared: PreparedCall, op: Operation, delay: float
    ) -> AgentReply:
        """Sends the call to `first` and, if it has not answered after `delay`, to another endpoint
        too (within the hedge budget); the first answer wins and the other attempt is cancelled.
        A failure waits for the other attempt, if any; when both fail, the first failure is raised."""
        call = prepared.call
        hedging = self._hedging[call.agent]
        started = self._clock()
        primary = asyncio.ensure_future(self._attempt(router, first, prepared, op, call.timeout))
        pending: set[asyncio.Future[AgentReply]] = {primary}
        try:
            done, pending = await asyncio.wait(pending, timeout=delay)
            if done:
                return primary.result()
            second = router.choose(avoid=first)
            remaining = call.timeout - (self._clock() - started)
            if second is not None and remaining > 0 and hedging.spend():
                pending.add(asyncio.ensure_future(self._attempt(router, second, prepared, op, remaining, hedge=True)))
            failure: BaseException | None = None
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                for task in done:
                    error = task.exception()
                    if error is None:
                        if task is not primary:
                            hedging.won += 1
                        return task.result()
                    failure = failure or error
            raise failure or AgentCallError("UNAVAILABLE", f"{call.agent}.{call.operation}: no answer", retryable=True)
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def _attempt(
        self,
        router: Router,
        endpoint: Endpoint,
        prepared: PreparedCall,
        op: Operation,
        timeout: float,  # noqa: ASYNC109 - the gRPC deadline of this attempt, not a wait of ours
        *,
        hedge: bool = False,
    ) -> AgentReply:
        """Sends the call to one endpoint and tells the router how it went."""
        call = prepared.call
        channel = self._channel(endpoint.address)
        key = (id(channel), op.path)
        method = self._methods.get(key)
        if method is None:
            method = channel.unary_unary(
                op.path,
                request_serializer=op.request_class.SerializeToString,
                response_deserializer=op.response_class.FromString,
            )
            self._methods[key] = method
        metadata = ((IDEMPOTENCY_KEY, call.idempotency_key), (ATTEMPT, str(call.attempt)), *call.metadata)
        if hedge:
            metadata = (*metadata, (HEDGE, "1"))
        request_bytes = prepared.request_bytes
        router.started(endpoint, hedge=hedge)
        started = self._clock()
        try:
            response: Message = await method(prepared.request, timeout=timeout, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            code = exc.code()
            elapsed = self._clock() - started
            if code in ENDPOINT_FAILURES:
                router.failed(endpoint, elapsed)
            else:
                router.succeeded(endpoint, elapsed)
            # An agent's message may quote the request back; it is stored with the attempt.
            details = (exc.details() or code.name)[:2000]
            raise AgentCallError(
                code.name,
                details,
                retryable=code not in BUSINESS_CODES and not _too_large(code, details),
                request_bytes=request_bytes,
            ) from None
        except BaseException:
            router.abandoned(endpoint, self._clock() - started)
            raise
        elapsed = self._clock() - started
        router.succeeded(endpoint, elapsed)
        if op.read:
            self._hedging[call.agent].observe(op.name, elapsed)
        quality = getattr(response, "quality", None)
        return AgentReply(
            output=response,
            quality_score=quality.score if quality is not None else 0.0,
            quality_metrics=dict(quality.metrics) if quality is not None else {},
            request_bytes=request_bytes,
            response_bytes=response.ByteSize(),
        )

    async def status(self, agent: str, deadline: float = 1.0) -> common_pb2.AgentStatus:
        """Asks an agent for its status; an unreachable agent is reported OFFLINE."""
        try:
            reply = await self.call(
                AgentCall(agent=agent, operation="GetStatus", payload={}, timeout=deadline, idempotency_key="")
            )
        except AgentCallError as exc:
            return common_pb2.AgentStatus(
                agent=agent,
                status=common_pb2.AGENT_HEALTH_OFFLINE,
                metrics={"error": f"{exc.error_type}: {exc.message}"},
            )
        status = common_pb2.AgentStatus()
        status.CopyFrom(cast(common_pb2.AgentStatus, reply.output))
        status.agent = status.agent or agent
        return status

    async def close(self) -> None:
        """Closes every channel."""
        if self._resolving is not None:
            self._resolving.cancel()
            await asyncio.gather(self._resolving, return_exceptions=True)
        for channel in self._channels.values():
            await channel.close()
        for task in list(self._retiring):
            task.cancel()
        await asyncio.gather(*self._retiring, return_exceptions=True)
