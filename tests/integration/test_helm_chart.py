"""The Helm chart: it renders, lints and validates against Kubernetes 1.32, and the orchestrator's
Deployment does what production needs (probes, drain, secrets, scaling, disruption, hardening)."""

from __future__ import annotations

import math
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from server.cli._limits import admission_from
from server.cli._parser import build_parser
from server.cli._resilience import resilience_from
from server.engine.admission import AdmissionLimits
from tests.integration.helm_support import (
    CHART,
    KUBERNETES,
    NAMESPACE,
    container,
    environment,
    expand,
    find,
    pod_labels,
    render,
    selects,
)

SECRETS = {"baton-database/url": "postgresql://baton:secret@db.example:5432/baton"}

VALUE_SETS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "three replicas without autoscaling": {"orchestrator": {"replicas": 3}, "autoscaling": {"enabled": False}},
    "reference agents enabled": {"agents": {"enabled": True}},
    "network policies off": {"networkPolicy": {"enabled": False}},
    "TLS secrets named, drain and extra settings": {
        "tls": {"orchestrator": {"secretName": "baton-tls"}, "envoy": {"listenerSecretName": "public-tls"}},
        "orchestrator": {"drain": 10, "settings": {"OTEL_SERVICE_NAME": "baton"}},
    },
    "plaintext (TLS off) with reference agents": {"tls": {"enabled": False}, "agents": {"enabled": True}},
    "external agents, no Envoy, maxUnavailable": {
        "envoy": {"enabled": False},
        "agentEndpoints": {"default": "agents.fleet.svc:50061", "job_discovery": ["a.jobs:1", "b.jobs:1"]},
        "podDisruptionBudget": {"minAvailable": None, "maxUnavailable": "50%"},
    },
    "metrics off, text logs": {"orchestrator": {"metrics": {"enabled": False}, "logFormat": "text"}},
    "metrics on another port, scraped from one namespace": {
        "orchestrator": {"metrics": {"enabled": True, "port": 9464}},
        "networkPolicy": {
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
        },
    },
}


def _orchestrator(values: dict[str, Any] | None = None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    manifests = render(values)
    return manifests, find(manifests, "Deployment", "orchestrator")


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_manifest_validates_strictly_against_kubernetes_1_32(values: dict[str, Any]) -> None:
    manifests = render(values)
    assert manifests
    for manifest in manifests:
        assert manifest["metadata"]["namespace"] == NAMESPACE
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_strict_lint_finds_nothing(values: dict[str, Any]) -> None:
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_strict_validation_would_catch_an_unknown_field() -> None:
    # The validation above is worth something only if a misspelt field fails it.
    _, deployment = _orchestrator()
    deployment["spec"]["bogus"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"orchestrator": {"replicas": 0}}, "at '/orchestrator/replicas': minimum"),
        ({"orchestrator": {"replics": 2}}, "additional properties 'replics' not allowed"),
        ({"orchestrator": {"logLevel": "verbose"}}, "at '/orchestrator/logLevel'"),
        ({"orchestrator": {"grace": 0}}, "at '/orchestrator/grace'"),
        ({"orchestrator": {"settings": {"BATON_GRACE": "1"}}}, "BATON_GRACE"),
        ({"agentEndpoints": {"scheduler": "a:1"}}, "invalid propertyName 'scheduler'"),
        ({"agentEndpoints": {"default": "no-port"}}, "at '/agentEndpoints/default'"),
        ({"agents": {"errorRate": 2}}, "at '/agents/errorRate': maximum"),
        ({"orchestrator": {"admission": {"maxQueued": -1}}}, "at '/orchestrator/admission/maxQueued': minimum"),
        ({"orchestrator": {"calls": {"maxInFlight": 0}}}, "at '/orchestrator/calls/maxInFlight': minimum"),
        ({"orchestrator": {"resilience": {"breaker-rest": 5}}}, "additional properties 'breaker-rest' not allowed"),
        ({"orchestrator": {"resilience": {"breaker-window": 2.5}}}, "at '/orchestrator/resilience/breaker-window'"),
        ({"database": {"existingSecret": ""}}, "at '/database/existingSecret'"),
        ({"podSecurityContext": {"runAsNonRoot": False}}, "at '/podSecurityContext/runAsNonRoot'"),
    ],
)
def test_the_schema_refuses_a_bad_value_naming_it(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert message in str(caught.value)


def test_with_tls_the_probes_ask_grpc_health_on_the_plaintext_health_port() -> None:
    # The kubelet's gRPC probes cannot speak TLS: `--health-listen` serves grpc.health.v1 alone.
    manifests, deployment = _orchestrator()
    c = container(deployment)
    assert c["ports"] == [
        {"name": "grpc", "containerPort": 50051, "protocol": "TCP"},
        {"name": "health", "containerPort": 50052, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert c["readinessProbe"]["grpc"] == {"port": 50052, "service": "baton.v1.Orchestrator"}
    assert c["livenessProbe"]["grpc"] == {"port": 50052, "service": ""}
    assert c["startupProbe"]["grpc"] == {"port": 50052, "service": ""}
    args = build_parser().parse_args(expand(c["args"], environment(manifests, deployment, SECRETS)))
    assert args.health_listen == "0.0.0.0:50052"


def test_without_tls_the_probes_ask_grpc_health_on_the_serving_port() -> None:
    _, deployment = _orchestrator({"tls": {"enabled": False}})
    c = container(deployment)
    assert c["ports"] == [
        {"name": "grpc", "containerPort": 50051, "protocol": "TCP"},
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
    ]
    assert c["readinessProbe"]["grpc"] == {"port": 50051, "service": "baton.v1.Orchestrator"}
    assert c["livenessProbe"]["grpc"] == {"port": 50051, "service": ""}
    assert c["startupProbe"]["grpc"] == {"port": 50051, "service": ""}


@pytest.mark.parametrize(("tls", "probed"), [(True, 6001), (False, 6000)])
def test_the_probes_follow_a_changed_port(tls: bool, probed: int) -> None:
    values = {"orchestrator": {"port": 6000, "healthPort": 6001}, "tls": {"enabled": tls}}
    manifests, deployment = _orchestrator(values)
    c = container(deployment)
    assert {c[p]["grpc"]["port"] for p in ("readinessProbe", "livenessProbe", "startupProbe")} == {probed}
    env = environment(manifests, deployment, SECRETS)
    assert env["BATON_LISTEN"] == "0.0.0.0:6000"


@pytest.mark.parametrize(("drain", "grace"), [(None, 5), (10, 5), (2.5, 0.5), (60, 30)])
def test_the_termination_grace_outlasts_drain_and_grace(drain: float | None, grace: float) -> None:
    _, deployment = _orchestrator({"orchestrator": {"drain": drain, "grace": grace}})
    period = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert period == math.ceil((drain or 0) + grace + 10)
    assert period > (drain or 0) + grace


def test_a_termination_grace_given_must_exceed_drain_and_grace() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"terminationGracePeriodSeconds \(15\) must exceed"):
        render({"orchestrator": {"drain": 10, "grace": 5, "terminationGracePeriodSeconds": 15}})
    _, deployment = _orchestrator({"orchestrator": {"drain": 10, "grace": 5, "terminationGracePeriodSeconds": 16}})
    assert deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == 16


def test_the_drain_flag_is_passed_only_when_drain_is_set() -> None:
    manifests, deployment = _orchestrator()
    assert "--drain" not in container(deployment)["args"]
    assert "BATON_DRAIN" not in find(manifests, "ConfigMap", "orchestrator")["data"]

    manifests, deployment = _orchestrator({"orchestrator": {"drain": 7}})
    args = expand(container(deployment)["args"], environment(manifests, deployment, SECRETS))
    assert args[args.index("--drain") + 1] == "7"


def test_the_orchestrator_arguments_parse_with_baton_serves_own_parser() -> None:
    manifests, deployment = _orchestrator({"orchestrator": {"grace": 8, "logLevel": "debug"}})
    args = expand(container(deployment)["args"], environment(manifests, deployment, SECRETS))
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve"
    assert parsed.listen == "0.0.0.0:50051"
    assert parsed.store == SECRETS["baton-database/url"]
    assert parsed.agents == "embedded"
    assert parsed.grace == 8.0
    assert parsed.log_level == "debug"


def test_the_drain_argument_parses_with_baton_serves_own_parser() -> None:
    # Waits for `baton serve --drain S` (being added to server/cli by the lead).
    manifests, deployment = _orchestrator({"orchestrator": {"drain": 12.5}})
    args = expand(container(deployment)["args"], environment(manifests, deployment, SECRETS))
    assert build_parser().parse_args(args).drain == 12.5


def test_the_database_url_comes_from_the_named_secret_and_the_chart_holds_no_secret() -> None:
    secrets = {"pg-credentials/dsn": "postgresql://u:p@pg:5432/baton"}
    manifests, deployment = _orchestrator({"database": {"existingSecret": "pg-credentials", "key": "dsn"}})
    c = container(deployment)
    database_url = next(v for v in c["env"] if v["name"] == "DATABASE_URL")
    assert database_url["valueFrom"] == {"secretKeyRef": {"name": "pg-credentials", "key": "dsn"}}
    assert c["args"][c["args"].index("--store") + 1] == "$(DATABASE_URL)"
    assert expand(c["args"], environment(manifests, deployment, secrets))[c["args"].index("--store") + 1] == (
        "postgresql://u:p@pg:5432/baton"
    )
    assert not [m for m in manifests if m["kind"] == "Secret"]


def test_extra_settings_reach_the_orchestrator_through_the_config_map() -> None:
    values = {"orchestrator": {"settings": {"OTEL_SERVICE_NAME": "baton", "OTEL_TRACES_SAMPLER_ARG": 0.25}}}
    manifests, deployment = _orchestrator(values)
    env = environment(manifests, deployment, SECRETS)
    assert env["OTEL_SERVICE_NAME"] == "baton"
    assert env["OTEL_TRACES_SAMPLER_ARG"] == "0.25"


def test_a_changed_config_map_changes_the_pod_template_so_pods_restart() -> None:
    def checksum(values: dict[str, Any]) -> str:
        _, deployment = _orchestrator(values)
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum({}) == checksum({})
    assert checksum({}) != checksum({"orchestrator": {"grace": 9}})


def test_with_autoscaling_the_hpa_owns_the_replica_count() -> None:
    manifests, deployment = _orchestrator({"autoscaling": {"minReplicas": 3, "maxReplicas": 9}})
    assert "replicas" not in deployment["spec"]
    hpa = find(manifests, "HorizontalPodAutoscaler", "orchestrator")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "prod-baton-orchestrator",
    }
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 9)
    assert hpa["spec"]["metrics"] == [
        {"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}
    ]


def test_without_autoscaling_the_deployment_sets_the_replicas_and_there_is_no_hpa() -> None:
    manifests, deployment = _orchestrator(VALUE_SETS["three replicas without autoscaling"])
    assert deployment["spec"]["replicas"] == 3
    assert not [m for m in manifests if m["kind"] == "HorizontalPodAutoscaler"]


def test_an_hpa_minimum_above_its_maximum_is_refused() -> None:
    with pytest.raises(helm.HelmRenderError, match=r"minReplicas \(5\) must not exceed autoscaling.maxReplicas \(3\)"):
        render({"autoscaling": {"minReplicas": 5, "maxReplicas": 3}})


def test_the_disruption_budget_protects_the_orchestrator_pods() -> None:
    manifests, deployment = _orchestrator()
    pdb = find(manifests, "PodDisruptionBudget", "orchestrator")
    assert pdb["spec"]["minAvailable"] == 1
    assert "maxUnavailable" not in pdb["spec"]
    assert selects(pdb["spec"]["selector"]["matchLabels"], pod_labels(deployment))

    manifests = render(VALUE_SETS["external agents, no Envoy, maxUnavailable"])
    spec = find(manifests, "PodDisruptionBudget", "orchestrator")["spec"]
    assert spec["maxUnavailable"] == "50%"
    assert "minAvailable" not in spec


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"podDisruptionBudget": {"maxUnavailable": 1}}, "exactly one of minAvailable and maxUnavailable"),
        ({"podDisruptionBudget": {"minAvailable": None}}, "exactly one of minAvailable and maxUnavailable"),
        ({"podDisruptionBudget": {"minAvailable": 2}}, r"minAvailable \(2\) must be below the orchestrator's replica"),
        (
            {"autoscaling": {"enabled": False}, "orchestrator": {"replicas": 1}},
            r"minAvailable \(1\) must be below the orchestrator's replica count \(1\)",
        ),
    ],
)
def test_a_disruption_budget_that_would_block_every_drain_is_refused(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmRenderError, match=message):
        render(values)


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_pod_runs_unprivileged_without_a_service_account_token(values: dict[str, Any]) -> None:
    manifests = render(values)
    for sa in (m for m in manifests if m["kind"] == "ServiceAccount"):
        assert sa["automountServiceAccountToken"] is False
    deployments = [m for m in manifests if m["kind"] == "Deployment"]
    assert deployments
    for deployment in deployments:
        pod = deployment["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] > 0
        for c in pod["containers"]:
            assert c["securityContext"]["readOnlyRootFilesystem"] is True
            assert c["securityContext"]["allowPrivilegeEscalation"] is False
            assert c["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_the_replicas_spread_across_nodes() -> None:
    _, deployment = _orchestrator()
    pod = deployment["spec"]["template"]["spec"]
    labels = pod_labels(deployment)
    (spread,) = pod["topologySpreadConstraints"]
    assert spread["topologyKey"] == "kubernetes.io/hostname"
    assert selects(spread["labelSelector"]["matchLabels"], labels)
    (term,) = pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
    assert term["podAffinityTerm"]["topologyKey"] == "kubernetes.io/hostname"
    assert selects(term["podAffinityTerm"]["labelSelector"]["matchLabels"], labels)


# ---- metrics and logs ---------------------------------------------------------------------------


def _serve_args(values: dict[str, Any] | None = None) -> Any:
    manifests, deployment = _orchestrator(values)
    return build_parser().parse_args(expand(container(deployment)["args"], environment(manifests, deployment, SECRETS)))


def test_by_default_the_orchestrator_serves_metrics_on_their_port_and_its_pods_ask_to_be_scraped() -> None:
    manifests, deployment = _orchestrator()
    parsed = _serve_args()
    assert parsed.metrics == "0.0.0.0:9090"
    assert parsed.log_format == "json"
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert annotations["prometheus.io/port"] == "9090"
    assert annotations["prometheus.io/path"] == "/metrics"
    service = find(manifests, "Service", "orchestrator")
    assert {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP", "appProtocol": "http"} in (
        service["spec"]["ports"]
    )


def test_a_changed_metrics_port_is_followed_by_the_flag_the_container_the_service_and_the_annotation() -> None:
    values = {"orchestrator": {"metrics": {"enabled": True, "port": 9464}}}
    manifests, deployment = _orchestrator(values)
    assert _serve_args(values).metrics == "0.0.0.0:9464"
    assert {"name": "metrics", "containerPort": 9464, "protocol": "TCP"} in container(deployment)["ports"]
    assert deployment["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"] == "9464"
    ports = {p["name"]: p["port"] for p in find(manifests, "Service", "orchestrator")["spec"]["ports"]}
    assert ports["metrics"] == 9464
    (metrics_rule,) = [
        rule
        for rule in find(manifests, "NetworkPolicy", "orchestrator")["spec"]["ingress"]
        if {p["port"] for p in rule["ports"]} == {9464}
    ]
    assert "from" not in metrics_rule


def test_metrics_off_means_no_flag_port_annotation_or_policy_rule() -> None:
    values = {"orchestrator": {"metrics": {"enabled": False}, "podAnnotations": {"team": "jobs"}}}
    manifests, deployment = _orchestrator(values)
    assert _serve_args(values).metrics == ""
    assert "BATON_METRICS" not in find(manifests, "ConfigMap", "orchestrator")["data"]
    assert [p["name"] for p in container(deployment)["ports"]] == ["grpc", "health"]
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert not [k for k in annotations if k.startswith("prometheus.io/")]
    assert annotations["team"] == "jobs"
    assert [p["name"] for p in find(manifests, "Service", "orchestrator")["spec"]["ports"]] == ["grpc"]
    policy = find(manifests, "NetworkPolicy", "orchestrator")
    assert [{p["port"] for p in rule["ports"]} for rule in policy["spec"]["ingress"]] == [{50051}]


def test_pod_annotations_given_win_over_the_scrape_annotations() -> None:
    _, deployment = _orchestrator({"orchestrator": {"podAnnotations": {"prometheus.io/scrape": "false"}}})
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "false"
    assert annotations["prometheus.io/port"] == "9090"


def test_metrics_scrapers_can_be_narrowed_to_given_peers() -> None:
    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    policy = find(render({"networkPolicy": {"metricsFrom": peers}}), "NetworkPolicy", "orchestrator")
    (rule,) = [r for r in policy["spec"]["ingress"] if {p["port"] for p in r["ports"]} == {9090}]
    assert rule["from"] == peers


def test_text_logs_can_be_chosen() -> None:
    assert _serve_args({"orchestrator": {"logFormat": "text"}}).log_format == "text"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"orchestrator": {"metrics": {"enabled": True, "port": 50051}}}, "must differ from orchestrator.port"),
        ({"orchestrator": {"metrics": {"enabled": True, "port": 50052}}}, "must differ from orchestrator.port"),
        ({"orchestrator": {"metrics": {"enabled": True, "port": 0}}}, "at '/orchestrator/metrics/port'"),
        ({"orchestrator": {"metrics": {"enabled": "yes", "port": 9090}}}, "at '/orchestrator/metrics/enabled'"),
        ({"orchestrator": {"logFormat": "xml"}}, "at '/orchestrator/logFormat'"),
    ],
)
def test_bad_metrics_or_log_values_are_refused_naming_them(values: dict[str, Any], message: str) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as caught:
        render(values)
    assert message in str(caught.value)


# ---- admission, bursts and resilience -------------------------------------------------------------


def test_by_default_the_chart_asks_for_baton_serves_own_admission_burst_and_resilience_defaults() -> None:
    args = _serve_args()
    default = build_parser().parse_args(["serve"])
    for name in ("max_running", "max_queued", "queue_aging", "queue_retry_after", "max_calls_in_flight"):
        assert getattr(args, name) == getattr(default, name), name
    assert args.calls_retry_after == default.calls_retry_after
    assert resilience_from(args) == resilience_from(default)


def test_admission_burst_and_resilience_values_reach_baton_serve() -> None:
    args = _serve_args(
        {
            "orchestrator": {
                "admission": {"maxRunning": 4, "maxQueued": 20, "agingSeconds": 30, "retryAfterSeconds": 5},
                "calls": {"maxInFlight": 500, "retryAfterSeconds": 0.5},
                "resilience": {"breaker-reset": 15, "breaker-window": 50, "retry-budget-ratio": 0.3},
            }
        }
    )
    assert admission_from(args) == AdmissionLimits(
        max_running=4, max_queued=20, aging_seconds=30, retry_after_seconds=5
    )
    assert (args.max_calls_in_flight, args.calls_retry_after) == (500, 0.5)
    breaker, budget = resilience_from(args)
    assert (breaker.reset_timeout, breaker.window, budget.ratio) == (15, 50, 0.3)
