"""The server's configuration: frozen values, validated once at start-up."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from agents_clients import AGENTS, BreakerConfig, CapacityConfig, RetryBudgetConfig, RoutingConfig, dns
from agents_clients.tls import TlsFiles
from agents_clients.tls import is_loopback as host_is_loopback
from server.callbacks import CallbackConfig
from server.engine.admission import AdmissionLimits
from server.telemetry.tracing import TracingConfig


class ConfigError(ValueError):
    """The configuration is wrong; the message names the setting."""


_KIB = 1024
_MIB = 1024 * 1024
_GIB = 1024 * _MIB


@dataclass(frozen=True)
class LimitsConfig:
    """What one caller may send, hold open or pin; each breach is answered naming the limit.

    The request bounds can only be tightened: the ceilings are where a stored execution would
    no longer be readable back (protobuf's 100-level decoder) or the planner's own rules.
    """

    max_string_bytes: int = 256 * _KIB
    """UTF-8 bytes of any one string of a request (Struct and map keys included). Default 256 KiB."""
    max_json_depth: int = 16
    """Levels of nesting of any JSON value of a request (user_context.data, a plan's inputs,
    a signal's payload); the Struct itself is level 1. Default and ceiling 16."""
    max_items: int = 10_000
    """Entries of any list, Struct, repeated or map field of a request. Default 10,000."""
    max_plan_steps: int = 200
    """Steps of an explicit plan. Default and ceiling 200 (the planner's own bound)."""
    submissions_per_minute: int = 600
    """ExecuteWorkflow calls per user per minute (a token bucket, as many in a burst); 0: no limit."""
    watches_per_user: int = 256
    """Watch streams a user may have open at once; 0: no limit. Without authentication a watch's
    user is the peer's address, so behind a proxy every client shares it."""
    watch_stall: float = 30.0
    """Seconds an update may wait for a watch's client to read before the stream is ended
    RESOURCE_EXHAUSTED, naming the after_sequence to resume from."""
    watch_pending_bytes_per_user: int = 16 * _MIB
    """Bytes of a user's watch updates sent and not yet read by the client, over all its streams.
    Default 16 MiB. The memory a stalled update holds is about four times its size until
    `watch_stall` ends its stream, about twice after (README: Limits)."""
    watch_pending_bytes: int = 128 * _MIB
    """The same over every user: what unread watches may pin in the whole server. Default 128 MiB."""

    max_calls_in_flight: int = 2_000
    """Unary calls handled at once; past it a call is answered RESOURCE_EXHAUSTED with a
    RetryInfo at once (server.api.shedding). Default 2,000."""
    calls_retry_after: float = 1.0
    """The retry delay a shed call is given, in seconds. Default 1."""

    def __post_init__(self) -> None:
        bounds: tuple[tuple[str, float, float], ...] = (
            ("max_calls_in_flight", 1, 1_000_000),
            ("calls_retry_after", 0.001, 3600),
            ("max_string_bytes", _KIB, 1 * _MIB),
            ("max_json_depth", 1, 16),
            ("max_items", 1, 10_000),
            ("max_plan_steps", 1, 200),
            ("submissions_per_minute", 0, 1_000_000),
            ("watches_per_user", 0, 1_000_000),
            ("watch_stall", 1, 3600),
            ("watch_pending_bytes_per_user", _MIB, 64 * 1024 * _MIB),
            ("watch_pending_bytes", _MIB, 64 * 1024 * _MIB),
        )
        for name, low, high in bounds:
            value = getattr(self, name)
            if not low <= value <= high:
                raise ConfigError(f"limits.{name}: expected a value from {low:g} to {high:g}, got {value}")


@dataclass(frozen=True)
class EstimatesConfig:
    """Estimates from recorded durations, adaptive timeouts and the cost model (server/estimates)."""

    costs_file: str = ""
    """A YAML cost model (default, agents, operations: prices per call); empty for the built-in
    server/estimates/costs.yaml."""
    min_samples: int = 20
    """Successful attempts of an operation before its recorded p50 replaces the declared
    duration in plans. Default 20; from 1 to 1,000,000."""
    flush_interval: float = 5.0
    """Seconds between writes of the recorded durations to the store (and one at shutdown).
    Default 5; from 0.05 to 3600."""
    timeout_factor: float = 0.0
    """Adaptive per-step timeouts: above 0, a step with enough history gets timeout p99 * this
    factor, within its declared timeout (server/planner rule 7). Default 0: off; else 1 to 100."""

    def __post_init__(self) -> None:
        if not 1 <= self.min_samples <= 1_000_000:
            raise ConfigError(f"estimate_min_samples: expected 1 to 1000000, got {self.min_samples}")
        if not 0.05 <= self.flush_interval <= 3600:
            raise ConfigError(f"estimate_flush: expected seconds from 0.05 to 3600, got {self.flush_interval}")
        if self.timeout_factor != 0 and not 1 <= self.timeout_factor <= 100:
            raise ConfigError(
                f"adaptive_timeouts: expected 0 (off) or a factor from 1 to 100, got {self.timeout_factor}"
            )


@dataclass(frozen=True)
class ServerConfig:
    """Everything `baton serve` needs."""

    listen: str = "127.0.0.1:50051"
    """HOST:PORT the orchestrator listens on; port 0 picks a free port."""
    store_url: str = "sqlite:///baton.db"
    """Where executions are stored: sqlite:///PATH or postgresql://USER@HOST[:PORT]/DATABASE."""
    agents: str = "embedded"
    """embedded (start the reference fleet alongside), HOST:PORT (one address serving all seven
    agents) or a YAML file mapping each agent to its endpoints."""
    ledger_path: str = ""
    """The embedded fleet's application ledger; empty means beside the SQLite store."""
    breaker: BreakerConfig = field(default_factory=BreakerConfig)
    """Circuit breaker settings of every agent."""
    retry_budget: RetryBudgetConfig = field(default_factory=RetryBudgetConfig)
    """The retry budget every agent gets (shared by all executions)."""
    routing: RoutingConfig = field(default_factory=RoutingConfig)
    """How each attempt chooses among an agent's endpoints (replicas), outlier ejection, and
    hedged reads (agents_clients.routing)."""
    capacity: CapacityConfig = field(default_factory=CapacityConfig)
    """Bulkheads and rate limits per agent and operation, and how the job boards' reported quotas
    and account health limit the calls for them (agents_clients.capacity); none by default."""
    grace: float = 5.0
    """Seconds in-flight RPCs get on shutdown, after the drain."""
    drain: float = 0.0
    """Seconds between SIGTERM and refusing new RPCs: health says NOT_SERVING at once while RPCs
    are still served, so load balancers (Kubernetes endpoints, Envoy's health checks) stop
    sending traffic before the server stops taking it."""
    watch_heartbeat: float = 15.0
    """Seconds a watch may go without an event before the server sends it a heartbeat."""
    replica: str = ""
    """This process's name among replicas sharing one store (which must have leases: PostgreSQL);
    empty when it is the store's only user."""
    lease_seconds: float = 15.0
    """With replicas: how long a hold on an execution lasts unless renewed, so how soon a dead
    replica's executions are taken over."""
    health_interval: float = 5.0
    """Seconds between agent status refreshes."""
    max_message_bytes: int = 4 * 1024 * 1024
    """The one message size limit, in bytes, of every gRPC hop: what the orchestrator receives and
    sends, what it sends to and accepts from the agents (and the embedded fleet's own limit).
    Requests are held to half of it and user_context.data to a quarter (README: Limits), so that
    what is accepted still fits once forwarded. Default 4 MiB, every gRPC client's default."""
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    """Per-request bounds and per-user quotas."""
    agent_faults: bool = False
    """Whether the embedded fleet serves baton.v1.FaultInjection (anyone reaching it can make
    agents fail); off unless asked for (`baton serve --faults`, `baton demo`'s fault flags)."""
    http: str = ""
    """HOST:PORT of the REST/JSON API (and gRPC) through a bundled Envoy child process; empty: none."""
    tracing: TracingConfig = field(default_factory=TracingConfig)
    """Where the orchestrator's (and the embedded fleet's) spans go; none by default."""
    # ---- authentication (server.auth) ----
    auth: str = ""
    """jwt (bearer tokens, see jwt_key), none, or empty: none, allowed only on a loopback `listen`."""
    jwt_key: str = ""
    """With auth jwt: a PEM public key or a JWKS JSON file (re-read when it changes)."""
    jwt_issuer: str = ""
    """With auth jwt: the `iss` every token must have; empty: not checked."""
    jwt_audience: str = ""
    """With auth jwt: the audience every token's `aud` must name; empty: tokens must name none."""
    callbacks: CallbackConfig = field(default_factory=CallbackConfig)
    """Terminal callbacks: --callback-allow, --callback-secret-file and delivery bounds."""
    # Transport security (server/tls.py has the rules).
    tls: TlsFiles = field(default_factory=TlsFiles)
    """The orchestrator's certificate and key (TLS) and the CA its clients' certificates must come
    from (mTLS); without a certificate the port is plaintext, on loopback only unless `plaintext`."""
    agents_tls_ca: str = ""
    """The CA that verifies the agents' certificates; empty: the CA of `tls`, else the system's roots."""
    plaintext: bool = False
    """Allows plaintext on a non-loopback listen address and to non-loopback agents (loudly)."""
    health_listen: str = ""
    """HOST:PORT of a plaintext port serving grpc.health.v1 alone (for the kubelet's probes); empty: none."""
    payload_threshold: int = 16 * _KIB
    """Bytes above which an agent's output is stored once, apart from its event, and referenced
    (server/store/_payloads.py): identical outputs are kept once, and events stay small. Default
    16 KiB; 0 keeps every output inside its event."""
    retention: float = 0.0
    """Seconds a finished execution is kept after its end before a periodic sweep deletes it
    with its events and audit entries (`--retention 30d`); 0 (the default) keeps everything."""
    metrics: str = ""
    """HOST:PORT of the Prometheus endpoint (GET /metrics); empty (the default): no metrics at all."""
    web: str = ""
    """HOST:PORT of the web view (server.web: pages and a JSON API over this server's own gRPC API);
    empty (the default): none. HTTPS with `tls`'s certificate when there is one; plain HTTP on
    loopback only unless `plaintext`."""
    admission: AdmissionLimits = field(default_factory=AdmissionLimits)
    """Admission control (server/engine/admission.py): how many executions run and wait at once;
    by default every execution starts as it is recorded."""
    estimates: EstimatesConfig = field(default_factory=lambda: EstimatesConfig())
    """Estimates from history and the cost model (server/estimates)."""

    def __post_init__(self) -> None:
        for name in ("grace", "drain"):
            if not 0 <= getattr(self, name) <= 3600:
                raise ConfigError(f"{name}: expected seconds from 0 to 3600, got {getattr(self, name)}")
        if self.replica and not 1 <= self.lease_seconds <= 600:
            raise ConfigError(f"lease_seconds: expected seconds from 1 to 600, got {self.lease_seconds}")
        if not 0.1 <= self.watch_heartbeat <= 3600:
            raise ConfigError(f"watch_heartbeat: expected seconds from 0.1 to 3600, got {self.watch_heartbeat}")
        if not 64 * _KIB <= self.max_message_bytes <= 1024 * _MIB:
            raise ConfigError(f"max_message_bytes: expected 65536 to 1073741824 bytes, got {self.max_message_bytes}")
        try:
            self.callbacks.validate()
            self.admission.validate()
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if type(self.payload_threshold) is not int or not 0 <= self.payload_threshold <= _GIB:
            raise ConfigError(
                f"payload_threshold: expected 0 (off) or bytes from 1 to {_GIB}, got {self.payload_threshold!r}"
            )
        if self.retention and not MIN_RETENTION <= self.retention <= MAX_RETENTION:
            raise ConfigError(f"retention: expected 0 (off) or from 1h to 3650d, got {self.retention:g} seconds")
        if self.metrics:
            parse_address(self.metrics, "metrics")
        self._check_auth()
        self._check_web()

    def _check_web(self) -> None:
        if not self.web:
            return
        parse_address(self.web, "web")
        if is_loopback(self.web):
            return
        if not self.auth:
            raise ConfigError(
                f"web: {self.web} is not a loopback address and no --auth was given: anyone who reaches it could"
                " read and control every execution; pass --auth jwt --jwt-key FILE, or --auth none to run so anyway"
            )
        if not self.tls.cert and not self.plaintext:
            raise ConfigError(
                f"web: {self.web} is not a loopback address and there is no --tls-cert: the view (and the tokens"
                " sent to it) would be plain HTTP; pass --tls-cert and --tls-key, or --plaintext to run so anyway"
            )

    def _check_auth(self) -> None:
        if self.auth not in ("", "none", "jwt"):
            raise ConfigError(f"auth: expected none or jwt, got {self.auth!r}")
        if self.auth == "jwt" and not self.jwt_key:
            raise ConfigError("jwt_key: --auth jwt needs --jwt-key FILE (a PEM public key or a JWKS file)")
        if self.auth != "jwt" and (self.jwt_key or self.jwt_issuer or self.jwt_audience):
            raise ConfigError("jwt_key: --jwt-key, --jwt-issuer and --jwt-audience go with --auth jwt")
        if not self.auth and not is_loopback(self.listen):
            raise ConfigError(
                f"auth: {self.listen} is not a loopback address and no --auth was given: anyone who reaches it could"
                " read and control every execution; pass --auth jwt --jwt-key FILE, or --auth none to run so anyway"
            )


MIN_RETENTION = 3600.0
"""The shortest retention: an hour (a finished execution stays readable for at least that long)."""
MAX_RETENTION = 3650 * 86400.0
"""The longest: ten years."""
_DURATION = re.compile(r"^([0-9]+(?:\.[0-9]+)?)([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str, setting: str) -> float:
    """Seconds of a duration such as 90m, 12h, 30d or 2w (one number and one unit: s m h d w).

    Raises:
        ConfigError: naming `setting`, when the value is not such a duration.
    """
    match = _DURATION.match(value.strip())
    if match is None:
        raise ConfigError(f"{setting}: expected a duration such as 12h or 30d, got {value[:64]!r}")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def parse_address(value: str, setting: str) -> str:
    """Checks HOST:PORT and returns it."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ConfigError(f"{setting}: expected HOST:PORT, got {value!r}")
    return value


def is_loopback(listen: str) -> bool:
    """Whether HOST:PORT listens on a loopback address only (127.0.0.0/8, ::1 or localhost)."""
    return host_is_loopback(listen.rpartition(":")[0])


def agent_endpoints(spec: str) -> dict[str, list[str]]:
    """Resolves --agents HOST:PORT or a YAML file to agent → endpoints (every agent present).

    The YAML file maps agent names to an address or a list of addresses; a `default` entry
    serves the agents not named. An address may be ``dns:NAME:PORT``: every address NAME
    resolves to, resolved again every `resilience.routing.dns_refresh` seconds (agents_clients.dns).
    """
    path = Path(spec)
    if spec.endswith((".yaml", ".yml")) or path.is_file():
        if not path.is_file():
            raise ConfigError(f"agents: no such file {spec!r}")
        data = yaml.safe_load(path.read_text()) or {}
        if not isinstance(data, Mapping):
            raise ConfigError(f"agents: {spec} must map agent names to addresses")
        data = data.get("agents", data)
        unknown = set(data) - set(AGENTS) - {"default", "resilience"}
        if unknown:
            raise ConfigError(f"agents: {spec} names unknown agents {sorted(unknown)}; known: {', '.join(AGENTS)}")
        endpoints: dict[str, list[str]] = {}
        for agent in AGENTS:
            value = data.get(agent, data.get("default"))
            if value is None:
                raise ConfigError(f"agents: {spec} gives no endpoint for {agent} (and no default)")
            addresses = [value] if isinstance(value, str) else list(value)
            if not addresses:
                raise ConfigError(f"agents: {spec}: {agent} has an empty endpoint list")
            endpoints[agent] = [_endpoint(str(a), f"agents.{agent}") for a in addresses]
        return endpoints
    address = _endpoint(spec, "agents")
    return {agent: [address] for agent in AGENTS}


def _endpoint(value: str, setting: str) -> str:
    """Checks HOST:PORT, or dns:NAME:PORT (every address NAME resolves to, re-resolved), and returns it."""
    try:
        if dns.parse(value) is not None:
            return value
    except ValueError as error:
        raise ConfigError(f"{setting}: {error}") from None
    return parse_address(value, setting)


def agents_resilience(spec: str) -> Mapping[str, object]:
    """The `resilience:` section of an --agents YAML file (empty for an address or no section)."""
    path = Path(spec)
    if not (spec.endswith((".yaml", ".yml")) or path.is_file()) or not path.is_file():
        return {}
    data = yaml.safe_load(path.read_text()) or {}
    section = data.get("resilience", {}) if isinstance(data, Mapping) else {}
    if not isinstance(section, Mapping):
        raise ConfigError(
            f"agents: {spec}: resilience must be a mapping (breaker:, retry_budget:, bulkheads:, rate_limits:,"
            " capacity:)"
        )
    return section
