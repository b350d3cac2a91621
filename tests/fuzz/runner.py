"""The fuzzer: every RPC of both ports, found from the descriptors; the oracle; the end checks.

Oracle, after every call: the status is not INTERNAL or UNKNOWN (else a `Finding` with a replay
string ``METHOD:BASE64``) and the server's thread is alive. At the end (`finish`): grpc.health.v1
SERVING on both ports, a sample journey still completes, and once the executions the fuzz left
running are cancelled and settled, the server loop's task count is back near where it started.

METHOD is the gRPC path on the orchestrator's port (``/baton.v1.Orchestrator/GetExecution``), or
``agents`` then the path on the fleet's port (``agents/grpc.health.v1.Health/Check``); a bidi call
of several requests is replayed from their base64 joined by commas.
"""

from __future__ import annotations

import base64
import importlib
import pkgutil
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import baton.v1
import grpc
from baton.v1 import execution_pb2, orchestrator_pb2
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, MethodDescriptor, ServiceDescriptor
from google.protobuf.message import DecodeError, Message
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from server.api.probes import REFLECTION_V1
from server.cli._demo import demo_request
from tests.fuzz.domain import IdPool
from tests.fuzz.target import ServerThread, rss_kib

__all__ = ["BAD_CODES", "Finding", "Fuzzer", "Method", "Stats", "invoke"]

BAD_CODES = frozenset({grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN})
TERMINAL = frozenset(
    {
        execution_pb2.EXECUTION_STATE_COMPLETED,
        execution_pb2.EXECUTION_STATE_FAILED,
        execution_pb2.EXECUTION_STATE_CANCELLED,
    }
)
UNARY_DEADLINE = 10.0
"""Seconds a unary call may take; past it, the call is listed as a hang."""
STREAM_DEADLINE = 0.15
"""Seconds a server stream is read for (most never end by themselves: DEADLINE_EXCEEDED is fine)."""
TASK_SLACK = 5
"""Tasks the server loop may hold at the end beyond its count before the run."""
_REFLECTION_V1ALPHA = "grpc.reflection.v1alpha.ServerReflection"
_CREATES = ("/baton.v1.Orchestrator/ExecuteWorkflow", "/baton.v1.SeedApi/Execute")
_OPTIONS = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


@dataclass(frozen=True)
class Method:
    """One RPC on one port."""

    port: str
    """``orchestrator`` or ``agents``."""
    path: str
    """The gRPC path, ``/package.Service/Method``."""
    input: Descriptor
    output: Descriptor
    server_streaming: bool
    client_streaming: bool

    @property
    def key(self) -> str:
        """METHOD of a replay string."""
        return self.path if self.port == "orchestrator" else f"agents{self.path}"


@dataclass
class Finding:
    """A call the oracle refused."""

    method: str
    code: str
    details: str
    replay: str


@dataclass
class Stats:
    """What a run did and saw."""

    requests: int = 0
    raw_requests: int = 0
    codes: Counter[str] = field(default_factory=Counter)
    per_method: dict[str, Counter[str]] = field(default_factory=dict)
    executions: set[str] = field(default_factory=set)
    findings: list[Finding] = field(default_factory=list)
    hangs: list[Finding] = field(default_factory=list)
    """Unary calls that did not answer within UNARY_DEADLINE."""
    details: dict[str, Counter[str]] = field(default_factory=dict)
    """Method → the first 60 characters of its error details, counted (what refused the requests)."""
    slowest: tuple[float, str] = (0.0, "")
    rss: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, int] = field(default_factory=dict)
    checks: dict[str, str] = field(default_factory=dict)
    """End check → "ok" or what went wrong."""

    @property
    def failed(self) -> bool:
        """Whether the oracle or an end check failed."""
        return bool(self.findings) or any(v != "ok" for v in self.checks.values())


def _services() -> dict[str, ServiceDescriptor]:
    """Every service of every generated baton.v1 module, and grpc.health.v1 and reflection."""
    found: dict[str, ServiceDescriptor] = {}
    for module in pkgutil.iter_modules(baton.v1.__path__):
        if module.name.endswith("_pb2"):
            descriptor = importlib.import_module(f"baton.v1.{module.name}").DESCRIPTOR
            found.update({s.full_name: s for s in descriptor.services_by_name.values()})
    for descriptor in (health_pb2.DESCRIPTOR, reflection_pb2.DESCRIPTOR):
        found.update({s.full_name: s for s in descriptor.services_by_name.values()})
    return found


class Fuzzer:
    """Sends requests to a `ServerThread` and judges the answers."""

    def __init__(self, target: ServerThread) -> None:
        self.target = target
        self.pool = IdPool()
        self.stats = Stats()
        self.channels = {
            "orchestrator": grpc.insecure_channel(target.address, options=_OPTIONS),
            "agents": grpc.insecure_channel(target.agents_address, options=_OPTIONS),
        }
        self.methods = self._discover()

    def close(self) -> None:
        """Closes the client channels."""
        for channel in self.channels.values():
            channel.close()

    # ---- what there is to call ---------------------------------------------------------------

    def _listed(self, port: str) -> list[str]:
        """The services a port names through reflection (v1alpha)."""
        call = self.channels[port].stream_stream(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        answers = call(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
        return [s.name for answer in answers for s in answer.list_services_response.service]

    def _discover(self) -> list[Method]:
        """Every method of every service each port lists, from the generated descriptors.

        Raises:
            AssertionError: a generated baton.v1 service is served on neither port (FaultInjection
                aside, which the fuzz target leaves off), or a listed service has no descriptor.
        """
        services = _services()
        methods: list[Method] = []
        served: set[str] = set()
        for port in ("orchestrator", "agents"):
            for name in self._listed(port):
                served.add(name)
                # v1 reflection's messages are v1alpha's, field for field (server.api.probes).
                service = (
                    services["grpc.reflection.v1alpha.ServerReflection"] if name == REFLECTION_V1 else services[name]
                )
                methods.extend(_method(port, name, m) for m in service.methods)
        missing = {n for n in services if n.startswith("baton.v1.")} - served - {"baton.v1.FaultInjection"}
        assert not missing, f"services served on neither port: {sorted(missing)}"
        return methods

    # ---- one call and its judgement ------------------------------------------------------

    def send(
        self, method: Method, payloads: list[bytes], *, raw: bool = False
    ) -> tuple[grpc.StatusCode, str, list[bytes]]:
        """Sends one request (several for a bidi call), judges the answer, and learns its ids."""
        started = time.monotonic()
        code, details, answers = invoke(self.channels[method.port], method, payloads)
        elapsed = time.monotonic() - started
        stats = self.stats
        stats.requests += 1
        stats.raw_requests += raw
        stats.codes[code.name] += 1
        stats.per_method.setdefault(method.key, Counter())[code.name] += 1
        if details:
            stats.details.setdefault(method.key, Counter())[details[:60]] += 1
        replay = f"{method.key}:{','.join(base64.b64encode(p).decode('ascii') for p in payloads)}"
        if elapsed > stats.slowest[0]:
            stats.slowest = (elapsed, method.key)
        if code in BAD_CODES:
            stats.findings.append(Finding(method.key, code.name, details[:500], replay))
        elif code == grpc.StatusCode.DEADLINE_EXCEEDED and not method.server_streaming:
            stats.hangs.append(Finding(method.key, code.name, details[:500], replay))
        if not self.target.alive:
            stats.findings.append(Finding(method.key, "SERVER DEAD", "the server's thread ended", replay))
            raise RuntimeError(f"the server died after {replay[:300]}")
        if code == grpc.StatusCode.OK:
            self._learn(method, answers)
        return code, details, answers

    def _learn(self, method: Method, answers: list[bytes]) -> None:
        cls = message_factory.GetMessageClass(method.output)
        for data in answers[:3]:
            try:
                answer = cls.FromString(data)
            except DecodeError:
                continue
            self.pool.learn(answer)
            if method.path in _CREATES and answer.execution_id:  # type: ignore[attr-defined]
                self.stats.executions.add(answer.execution_id)  # type: ignore[attr-defined]

    # ---- the end checks --------------------------------------------------------------------

    def baseline(self) -> None:
        """Warms up (a journey, health on both ports), then records RSS and the loop's tasks."""
        self._journey()
        self._settle(lambda: True, 0.5)
        self.stats.tasks["before"] = self.target.task_count()
        self.stats.rss["before"] = rss_kib()["rss"]

    def finish(self) -> Stats:
        """Runs the end checks and fills in the figures."""
        stats = self.stats
        stats.rss["after_fuzz"] = rss_kib()["rss"]
        stats.checks["server alive"] = "ok" if self.target.alive else "the server's thread ended"
        if not self.target.alive:
            return stats
        stats.checks["executions settle"] = self._cancel_and_settle()
        for port in ("orchestrator", "agents"):
            stats.checks[f"health SERVING ({port})"] = self._health(port)
        stats.checks["sample journey completes"] = self._journey()
        before = stats.tasks["before"]
        self._settle(lambda: self.target.task_count() <= before + TASK_SLACK, 20.0)
        stats.tasks["after"] = self.target.task_count()
        if stats.tasks["after"] <= before + TASK_SLACK:
            stats.checks["no task leaked"] = "ok"
        else:
            names = Counter(self.target.task_names()).most_common(8)
            stats.checks["no task leaked"] = f"{stats.tasks['after']} tasks, {before} before: {names}"
        memory = rss_kib()
        stats.rss.update(after=memory["rss"], peak=memory["peak"])
        return stats

    def _unary(self, path: str, request: Message, response: type[Message], port: str = "orchestrator") -> Any:
        call = self.channels[port].unary_unary(
            path, request_serializer=type(request).SerializeToString, response_deserializer=response.FromString
        )
        return call(request, timeout=UNARY_DEADLINE)

    def _status(self, execution_id: str) -> Any:
        request = orchestrator_pb2.GetExecutionRequest(execution_id=execution_id)
        return self._unary("/baton.v1.Orchestrator/GetExecution", request, execution_pb2.ExecutionStatus)

    def _cancel_and_settle(self) -> str:
        """Cancels every execution the fuzz started that has not finished; waits until all have."""
        open_ids = []
        for execution_id in sorted(self.stats.executions):
            try:
                if self._status(execution_id).status not in TERMINAL:
                    request = orchestrator_pb2.CancelExecutionRequest(execution_id=execution_id, reason="fuzz ends")
                    self._unary("/baton.v1.Orchestrator/CancelExecution", request, execution_pb2.ExecutionStatus)
                    open_ids.append(execution_id)
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:  # deleted by a fuzzed DeleteUserData
                    return f"{execution_id}: {error.code().name}: {error.details()}"
        left = list(open_ids)
        deadline = time.monotonic() + 60
        while left and time.monotonic() < deadline:
            left = [e for e in left if self._status(e).status not in TERMINAL]
            time.sleep(0.2)
        return "ok" if not left else f"{len(left)} executions still not finished 60 s after cancel: {left[:5]}"

    def _health(self, port: str) -> str:
        try:
            answer = self._unary(
                "/grpc.health.v1.Health/Check",
                health_pb2.HealthCheckRequest(),
                health_pb2.HealthCheckResponse,
                port=port,
            )
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
        return "ok" if answer.status == health_pb2.HealthCheckResponse.SERVING else f"status {answer.status}"

    def _journey(self) -> str:
        """The README's demo journey, submitted and followed until it ends."""
        try:
            execution = self._unary(
                "/baton.v1.Orchestrator/ExecuteWorkflow", demo_request(), orchestrator_pb2.Execution
            )
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                status = self._status(execution.execution_id)
                if status.status in TERMINAL:
                    name = execution_pb2.ExecutionState.Name(status.status)
                    return "ok" if status.status == execution_pb2.EXECUTION_STATE_COMPLETED else f"ended {name}"
                time.sleep(0.1)
        except grpc.RpcError as error:
            return f"{error.code().name}: {error.details()}"
        return "not finished within 60 s"

    @staticmethod
    def _settle(done: Any, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not done() and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.2)


def _method(port: str, service_name: str, method: MethodDescriptor) -> Method:
    return Method(
        port=port,
        path=f"/{service_name}/{method.name}",
        input=method.input_type,
        output=method.output_type,
        server_streaming=method.server_streaming,
        client_streaming=method.client_streaming,
    )


def invoke(channel: grpc.Channel, method: Method, payloads: list[bytes]) -> tuple[grpc.StatusCode, str, list[bytes]]:
    """Sends bytes as they are; returns the status, its details and the answers' bytes."""
    answers: list[bytes] = []
    try:
        if method.client_streaming:
            stream = channel.stream_stream(method.path)(iter(payloads), timeout=UNARY_DEADLINE)
            answers.extend(_read(stream, 50))
        elif method.server_streaming:
            stream = channel.unary_stream(method.path)(payloads[0], timeout=STREAM_DEADLINE)
            answers.extend(_read(stream, 1000))
            stream.cancel()
        else:
            answers.append(channel.unary_unary(method.path)(payloads[0], timeout=UNARY_DEADLINE))
    except grpc.RpcError as error:
        return error.code(), error.details() or "", answers
    return grpc.StatusCode.OK, "", answers


def _read(stream: Iterator[bytes], limit: int) -> list[bytes]:
    answers = []
    for answer in stream:
        answers.append(answer)
        if len(answers) >= limit:
            break
    return answers
