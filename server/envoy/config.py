"""Envoy configurations as data, from one template: the front proxy and the agents' proxy.

Both are built from the same pieces (one listener with an HTTP connection manager, clusters of
HTTP/2 upstreams with active gRPC health checks, outlier detection and circuit breakers, an admin
endpoint on loopback, an overload manager) and dumped as YAML; nothing is hand-copied, so the
front proxy that `baton serve --http` runs, the files `python -m server.envoy` writes for a
deployment and the Helm chart's ConfigMap are the same configuration with different addresses.

Rules the template keeps (each is a choice with an operational reason):

- **One port for everything.** `codec_type: AUTO`: gRPC over h2c and HTTP/1.1 JSON share it.
- **Nothing cuts a watch.** Routes have `timeout: 0s` (the default 15 s would end every
  WatchExecution) and honour the client's own `grpc-timeout` (`grpc_timeout_header_max: 0s`);
  the connection manager's `stream_idle_timeout` is 0 (disabled) because a watch on a step
  delayed for an hour may legitimately send nothing but heartbeats, and the server's heartbeat
  interval is configurable up to an hour. Dead peers are found by liveness probes instead of
  idleness: HTTP/2 PINGs to downstream clients, TCP keepalive to upstreams (TCP keepalive, not
  HTTP/2 PINGs, upstream: it works whatever an upstream's ping policy; the orchestrator accepts
  frequent PINGs, but a gRPC server with the default policy, an agent say, answers PINGs more
  frequent than every 5 minutes on an idle connection with GOAWAY too_many_pings).
- **Retries only where safe.** Every route retries a request that never reached a server
  (connect-failure, refused-stream, reset-before-request), on another host. Only the idempotent
  reads (READ_RPCS) also retry on reset and UNAVAILABLE; ExecuteWorkflow, Cancel, Pause, Resume,
  Signal, Rerun and the watches are never replayed by the proxy after reaching a server.
- **TLS from files that reload.** Certificates are given to Envoy through file-based SDS (one
  small file per secret, `sds_files`), each watching its certificate's directory: Envoy re-reads
  the certificates when a file is moved into it (a Kubernetes Secret update, `mv`), without a
  restart. The listener may require client certificates (mTLS); upstreams get Envoy's client
  certificate and are verified against a CA and, when given, a name (also sent as SNI).
- **Only healthy hosts.** Active gRPC health checks (grpc.health.v1, with short intervals, and
  a short `no_traffic_interval` so an idle cluster notices a dead host before its first request),
  outlier detection on gateway errors and local connect failures, and a panic threshold of 1 %
  (traffic goes to healthy hosts only, unless none is healthy, when every host is tried).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml
from baton.v1 import orchestrator_pb2, seed_api_pb2

from agents_clients.catalog import AGENT_SERVICES, AGENTS
from server.envoy.tls import Tls, check_tls, downstream_tls, upstream_tls

ORCHESTRATOR_SERVICE = orchestrator_pb2.DESCRIPTOR.services_by_name["Orchestrator"].full_name
SEED_SERVICE = seed_api_pb2.DESCRIPTOR.services_by_name["SeedApi"].full_name
HEALTH_SERVICE = "grpc.health.v1.Health"

READ_RPCS: tuple[str, ...] = (
    f"/{ORCHESTRATOR_SERVICE}/GetExecution",
    f"/{ORCHESTRATOR_SERVICE}/ListExecutions",
    f"/{ORCHESTRATOR_SERVICE}/PlanWorkflow",
    f"/{ORCHESTRATOR_SERVICE}/GetSystemHealth",
    f"/{ORCHESTRATOR_SERVICE}/GetStepOutput",
    f"/{SEED_SERVICE}/GetStatus",
    f"/{SEED_SERVICE}/GetHealth",
    f"/{HEALTH_SERVICE}/Check",
)
"""The unary RPCs that change nothing, which the proxy may replay after a reset or UNAVAILABLE."""

SEED_HTTP_ROUTES: tuple[tuple[str, str], ...] = (
    ("path", "/api/v1/orchestration/execute"),
    ("path", "/api/v1/orchestration/health"),
    ("prefix", "/api/v1/orchestration/status/"),
)
"""The seed's HTTP paths, transcoded to baton.v1.SeedApi (every other /api/v1/ path to Orchestrator)."""

SAFE_RETRY_ON = "connect-failure,refused-stream,reset-before-request"
"""Failures after which the request cannot have reached a server."""
READ_RETRY_ON = f"{SAFE_RETRY_ON},reset,unavailable"
"""What idempotent reads also retry: a reset stream, a server answering UNAVAILABLE (draining)."""

_HCM = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"
_TRANSCODER = "type.googleapis.com/envoy.extensions.filters.http.grpc_json_transcoder.v3.GrpcJsonTranscoder"
_TRANSCODER_FILTER = "envoy.filters.http.grpc_json_transcoder"
_HTTP_OPTIONS = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions"


@dataclass(frozen=True)
class Endpoint:
    """A HOST:PORT; the host is an IP address or a DNS name (a Kubernetes Service, say)."""

    host: str
    port: int

    @classmethod
    def parse(cls, value: str, setting: str) -> Endpoint:
        """Parses HOST:PORT (IPv6 hosts in brackets: [::1]:8080).

        Raises:
            ValueError: not HOST:PORT; the message names `setting`.
        """
        host, sep, port = value.rpartition(":")
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"{setting}: expected HOST:PORT, got {value!r}")
        return cls(host, int(port))

    @property
    def is_ip(self) -> bool:
        """Whether the host is an IP address (else a name Envoy resolves)."""
        try:
            ipaddress.ip_address(self.host)
        except ValueError:
            return False
        return True

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    def socket_address(self) -> dict[str, Any]:
        """The Envoy address of this endpoint."""
        return {"socket_address": {"address": self.host, "port_value": self.port}}


@dataclass(frozen=True)
class Limits:
    """A cluster's circuit breaker thresholds and outlier ejection, per Envoy's defaults or tighter."""

    max_connections: int = 1024
    """Connections to all of the cluster's hosts together (Envoy's default 1024)."""
    max_pending_requests: int = 1024
    """Requests waiting for a connection or a stream; more are refused at once with 503."""
    max_requests: int = 10000
    """Requests in flight to the cluster, every open watch included (Envoy's default is 1024, too
    few for a fleet of watchers)."""
    max_retries: int = 3
    """Retries in flight to the cluster at once, so that retries cannot multiply an outage."""
    consecutive_gateway_failures: int = 3
    """Consecutive UNAVAILABLE (or 502/503/504) answers after which a host is ejected."""
    consecutive_local_failures: int = 2
    """Consecutive connect failures or resets after which a host is ejected."""
    base_ejection_seconds: float = 10.0
    """How long a host stays ejected the first time (it grows with each ejection)."""
    max_ejection_percent: int = 50
    """The largest share of hosts ejected at once (at least one host is always ejectable)."""


@dataclass(frozen=True)
class HealthChecks:
    """Active gRPC health checking of a cluster's hosts."""

    interval_seconds: float = 1.0
    """Seconds between checks of each host."""
    no_traffic_interval_seconds: float = 1.0
    """Seconds between checks while the cluster has no traffic (Envoy's default of 60 s lets an
    idle cluster send its first requests to a host that died a minute ago)."""
    timeout_seconds: float = 1.0
    """Seconds a check may take."""
    unhealthy_threshold: int = 2
    """Failed checks in a row that mark a host unhealthy."""
    healthy_threshold: int = 1
    """Passed checks in a row that mark a host healthy again."""


@dataclass(frozen=True)
class FrontProxy:
    """The front proxy: gRPC and the REST/JSON API on one port, over the orchestrator replicas."""

    listen: Endpoint
    """Where clients connect."""
    orchestrators: tuple[Endpoint, ...]
    """The orchestrator replicas: IP addresses (STATIC) or names resolved to every address behind
    them (STRICT_DNS, for a Kubernetes headless Service)."""
    descriptor_path: str
    """The descriptor set file (server.envoy.descriptors) as Envoy will see it."""
    admin: Endpoint = field(default_factory=lambda: Endpoint("127.0.0.1", 9901))
    """Envoy's admin endpoint; keep it on loopback, it can stop Envoy."""
    limits: Limits = field(default_factory=Limits)
    """The orchestrator cluster's circuit breakers and outlier detection."""
    health_checks: HealthChecks = field(default_factory=HealthChecks)
    """How the orchestrator replicas are checked."""
    max_message_bytes: int = 8 * 1024 * 1024
    """The largest JSON request or response body the transcoder buffers (the server's limit)."""
    max_downstream_connections: int = 50000
    """Client connections Envoy accepts at once."""
    tls: Tls | None = None
    """TLS at the listener and to the orchestrators; None: plaintext on both."""


@dataclass(frozen=True)
class AgentsProxy:
    """The agents' proxy: each agent's gRPC service routed to a cluster of its replicas."""

    listen: Endpoint
    """Where the orchestrators connect (`baton serve --agents HOST:PORT`)."""
    agents: Mapping[str, tuple[Endpoint, ...]]
    """Each of the seven agents' replicas."""
    admin: Endpoint = field(default_factory=lambda: Endpoint("127.0.0.1", 9902))
    """Envoy's admin endpoint; keep it on loopback, it can stop Envoy."""
    limits: Limits = field(default_factory=Limits)
    """Every agent cluster's circuit breakers and outlier detection."""
    health_checks: HealthChecks = field(default_factory=HealthChecks)
    """How agent replicas are checked."""
    max_downstream_connections: int = 50000
    """Orchestrator connections Envoy accepts at once."""
    tls: Tls | None = None
    """TLS at the listener and to the agents; None: plaintext on both."""


def _seconds(value: float) -> str:
    return f"{value:g}s"


def _retry(retry_on: str) -> dict[str, Any]:
    return {
        "retry_on": retry_on,
        "num_retries": 2,
        "retry_back_off": {"base_interval": "0.05s", "max_interval": "0.5s"},
        # A retry goes to another host than the one that failed, when there is one.
        "retry_host_predicate": [
            {
                "name": "envoy.retry_host_predicates.previous_hosts",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.retry.host.previous_hosts.v3.PreviousHostsPredicate"
                },
            }
        ],
        "host_selection_retry_max_attempts": 3,
    }


def _route(name: str, match: dict[str, Any], cluster: str, retry_on: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "match": match,
        "route": {
            "cluster": cluster,
            "timeout": "0s",
            # The client's grpc-timeout bounds the request, and nothing else does (see above).
            "max_stream_duration": {"grpc_timeout_header_max": "0s"},
            "retry_policy": _retry(retry_on),
        },
        **extra,
    }


def _cluster(
    name: str,
    endpoints: Sequence[Endpoint],
    health_service: str,
    limits: Limits,
    checks: HealthChecks,
    tls: Tls | None = None,
) -> dict[str, Any]:
    """An HTTP/2 cluster with active gRPC health checks, outlier detection and circuit breakers."""
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STATIC" if all(e.is_ip for e in endpoints) else "STRICT_DNS",
        "connect_timeout": "1s",
        "lb_policy": "ROUND_ROBIN",
        "typed_extension_protocol_options": {
            _HTTP_OPTIONS: {
                "@type": f"type.googleapis.com/{_HTTP_OPTIONS}",
                "explicit_http_config": {"http2_protocol_options": {}},
            }
        },
        "upstream_connection_options": {
            "tcp_keepalive": {"keepalive_time": 30, "keepalive_interval": 10, "keepalive_probes": 3}
        },
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": e.socket_address()}} for e in endpoints]}],
        },
        "health_checks": [
            {
                "timeout": _seconds(checks.timeout_seconds),
                "interval": _seconds(checks.interval_seconds),
                "no_traffic_interval": _seconds(checks.no_traffic_interval_seconds),
                "unhealthy_threshold": checks.unhealthy_threshold,
                "healthy_threshold": checks.healthy_threshold,
                "grpc_health_check": {"service_name": health_service},
            }
        ],
        "outlier_detection": {
            "consecutive_gateway_failure": limits.consecutive_gateway_failures,
            "enforcing_consecutive_gateway_failure": 100,
            "split_external_local_origin_errors": True,
            "consecutive_local_origin_failure": limits.consecutive_local_failures,
            "enforcing_consecutive_local_origin_failure": 100,
            "interval": "1s",
            "base_ejection_time": _seconds(limits.base_ejection_seconds),
            "max_ejection_percent": limits.max_ejection_percent,
        },
        "circuit_breakers": {
            "thresholds": [
                {
                    "priority": "DEFAULT",
                    "max_connections": limits.max_connections,
                    "max_pending_requests": limits.max_pending_requests,
                    "max_requests": limits.max_requests,
                    "max_retries": limits.max_retries,
                }
            ]
        },
        "common_lb_config": {"healthy_panic_threshold": {"value": 1.0}},
    }
    if cluster["type"] == "STRICT_DNS":
        cluster["dns_lookup_family"] = "V4_PREFERRED"
    if tls is not None and tls.upstream is not None:
        # The health checks go through it too: a host is healthy only if it passes the handshake.
        cluster["transport_socket"] = upstream_tls(tls, tls.upstream)
    return cluster


def _listener(
    name: str,
    endpoint: Endpoint,
    routes: list[dict[str, Any]],
    filters: list[dict[str, Any]],
    tls: Tls | None = None,
) -> dict[str, Any]:
    chain: dict[str, Any] = {}
    if tls is not None and tls.listener is not None:
        chain["transport_socket"] = downstream_tls(tls, tls.listener)
    return {
        "name": name,
        "address": endpoint.socket_address(),
        "filter_chains": [
            {
                **chain,
                "filters": [
                    {
                        "name": "envoy.filters.network.http_connection_manager",
                        "typed_config": {
                            "@type": _HCM,
                            "stat_prefix": name,
                            "codec_type": "AUTO",
                            "stream_idle_timeout": "0s",
                            "request_headers_timeout": "10s",
                            "normalize_path": True,
                            "merge_slashes": True,
                            "http2_protocol_options": {"connection_keepalive": {"interval": "30s", "timeout": "10s"}},
                            "route_config": {
                                "name": name,
                                "virtual_hosts": [{"name": name, "domains": ["*"], "routes": routes}],
                            },
                            "http_filters": [
                                *filters,
                                {
                                    "name": "envoy.filters.http.router",
                                    "typed_config": {
                                        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"
                                    },
                                },
                            ],
                        },
                    }
                ],
            }
        ],
    }


def _bootstrap(
    admin: Endpoint,
    listener: dict[str, Any],
    clusters: list[dict[str, Any]],
    max_connections: int,
    tls: Tls | None = None,
) -> dict[str, Any]:
    # SDS (even from files) needs the node to have an id and a cluster.
    node = {"node": {"id": "baton-envoy", "cluster": "baton"}} if tls is not None else {}
    return {
        **node,
        "admin": {"address": admin.socket_address()},
        "static_resources": {"listeners": [listener], "clusters": clusters},
        "overload_manager": {
            "resource_monitors": [
                {
                    "name": "envoy.resource_monitors.global_downstream_max_connections",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.resource_monitors."
                        "downstream_connections.v3.DownstreamConnectionsConfig",
                        "max_active_downstream_connections": max_connections,
                    },
                }
            ]
        },
    }


def transcoder(descriptor_path: str, service: str, max_message_bytes: int) -> dict[str, Any]:
    """The gRPC-JSON transcoder's configuration for one service."""
    return {
        "@type": _TRANSCODER,
        "proto_descriptor": descriptor_path,
        "services": [service],
        "print_options": {
            "add_whitespace": False,
            # The seed's answers show zeros ("progress": 0, "queue_depth": 0), not omit them.
            "always_print_primitive_fields": True,
            "always_print_enums_as_ints": False,
            "preserve_proto_field_names": True,
            # A watch is one JSON object per line, each flushed as it comes.
            "stream_newline_delimited": True,
        },
        "convert_grpc_status": True,
        "case_insensitive_enum_parsing": True,
        "request_validation_options": {"reject_unknown_method": True, "reject_unknown_query_parameters": True},
        "max_request_body_size": max_message_bytes,
        "max_response_body_size": max_message_bytes,
    }


def front_proxy_config(spec: FrontProxy) -> dict[str, Any]:
    """The front proxy's bootstrap configuration.

    Routes: the seed's HTTP paths are transcoded to baton.v1.SeedApi, the other /api/v1/ paths
    to baton.v1.Orchestrator; after transcoding (and for native gRPC) a request is routed on its
    gRPC path, where READ_RPCS get the broader retries and everything else the safe ones.
    """
    if not spec.orchestrators:
        raise ValueError("orchestrators: at least one endpoint is needed")
    cluster = "orchestrator"
    seed = transcoder(spec.descriptor_path, SEED_SERVICE, spec.max_message_bytes)
    rich = transcoder(spec.descriptor_path, ORCHESTRATOR_SERVICE, spec.max_message_bytes)
    routes = [
        _route(
            f"seed-http:{path}",
            {kind: path},
            cluster,
            SAFE_RETRY_ON,
            typed_per_filter_config={_TRANSCODER_FILTER: seed},
        )
        for kind, path in SEED_HTTP_ROUTES
    ]
    routes.append(
        _route(
            "http:/api/v1/",
            {"prefix": "/api/v1/"},
            cluster,
            SAFE_RETRY_ON,
            typed_per_filter_config={_TRANSCODER_FILTER: rich},
        )
    )
    routes += [_route(f"read:{path}", {"path": path}, cluster, READ_RETRY_ON) for path in READ_RPCS]
    routes.append(_route("grpc", {"prefix": "/"}, cluster, SAFE_RETRY_ON))
    check_tls(spec.tls)
    listener = _listener("front", spec.listen, routes, [{"name": _TRANSCODER_FILTER, "typed_config": rich}], spec.tls)
    clusters = [_cluster(cluster, spec.orchestrators, ORCHESTRATOR_SERVICE, spec.limits, spec.health_checks, spec.tls)]
    return _bootstrap(spec.admin, listener, clusters, spec.max_downstream_connections, spec.tls)


def agents_proxy_config(spec: AgentsProxy) -> dict[str, Any]:
    """The agents' proxy's bootstrap configuration: one cluster per agent, routed by gRPC service.

    Only requests that cannot have reached an agent are retried here: the orchestrator's own
    retry policy (with the step's idempotency key, its attempts recorded in the history and its
    breaker counting them) owns every other retry.
    """
    missing = [agent for agent in AGENTS if not spec.agents.get(agent)]
    if missing:
        raise ValueError(f"agents: no endpoint for {', '.join(missing)}")
    unknown = sorted(set(spec.agents) - set(AGENTS))
    if unknown:
        raise ValueError(f"agents: unknown agents {unknown}; known: {', '.join(AGENTS)}")
    routes = []
    clusters = []
    for agent in AGENTS:
        service = AGENT_SERVICES[agent].full_name
        routes.append(_route(agent, {"prefix": f"/{service}/"}, agent, SAFE_RETRY_ON))
        clusters.append(_cluster(agent, spec.agents[agent], service, spec.limits, spec.health_checks, spec.tls))
    check_tls(spec.tls)
    listener = _listener("agents", spec.listen, routes, [], spec.tls)
    return _bootstrap(spec.admin, listener, clusters, spec.max_downstream_connections, spec.tls)


def dump(config: Mapping[str, Any]) -> str:
    """The configuration as YAML, keys in the template's order."""
    return yaml.safe_dump(dict(config), sort_keys=False, width=120)
