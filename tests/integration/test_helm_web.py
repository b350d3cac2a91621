"""The Helm chart deploys the web view: `--web 0.0.0.0:PORT`, its container and Service port, its NetworkPolicy rule."""

from __future__ import annotations

from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from agents_clients.tls import TlsFiles
from server.cli._parser import build_parser
from server.config import ServerConfig
from tests.integration.helm_support import CHART, KUBERNETES, container, environment, expand, find, render

SECRETS = {"baton-database/url": "postgresql://baton:secret@db.example:5432/baton"}
PEERS = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]

VALUE_SETS: dict[str, dict[str, Any]] = {
    "web view on": {"web": {"enabled": True}},
    "web view on another port, TLS off, reachable from the ingress namespace": {
        "web": {"enabled": True, "port": 9000},
        "tls": {"enabled": False},
        "networkPolicy": {"webFrom": PEERS},
    },
    "web view on, no Envoy, no metrics": {
        "web": {"enabled": True},
        "envoy": {"enabled": False},
        "orchestrator": {"metrics": {"enabled": False}},
    },
}


def _serve(values: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any], Any]:
    manifests = render(values)
    deployment = find(manifests, "Deployment", "orchestrator")
    args = expand(container(deployment)["args"], environment(manifests, deployment, SECRETS))
    return manifests, deployment, build_parser().parse_args(args)


def _web_rules(manifests: list[dict[str, Any]], port: int) -> list[dict[str, Any]]:
    policy = find(manifests, "NetworkPolicy", "orchestrator")
    return [rule for rule in policy["spec"]["ingress"] if {p["port"] for p in rule["ports"]} == {port}]


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_manifests_with_the_web_view_validate_strictly_and_lint_clean(values: dict[str, Any]) -> None:
    for manifest in render(values):
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)
    report = helm.lint(str(CHART), values, strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_by_default_there_is_no_web_view() -> None:
    manifests, deployment, parsed = _serve({})
    assert parsed.web == ""
    assert "web" not in [p["name"] for p in container(deployment)["ports"]]
    assert "web" not in [p["name"] for p in find(manifests, "Service", "orchestrator")["spec"]["ports"]]
    assert _web_rules(manifests, 8088) == []


def test_the_web_view_is_served_on_its_port_by_every_replica_and_exposed_by_the_service() -> None:
    manifests, deployment, parsed = _serve({"web": {"enabled": True}})
    assert parsed.web == "0.0.0.0:8088"
    assert {"name": "web", "containerPort": 8088, "protocol": "TCP"} in container(deployment)["ports"]
    service = find(manifests, "Service", "orchestrator")
    # With TLS on (the default), the view serves HTTPS with the orchestrator's certificate.
    assert {"name": "web", "port": 8088, "targetPort": "web", "protocol": "TCP", "appProtocol": "https"} in (
        service["spec"]["ports"]
    )
    (rule,) = _web_rules(manifests, 8088)
    assert "from" not in rule
    # The headless Service (Envoy's) stays gRPC only.
    assert [p["name"] for p in find(manifests, "Service", "orchestrator-headless")["spec"]["ports"]] == ["grpc"]


def test_a_changed_port_and_narrowed_peers_are_followed_everywhere() -> None:
    values = VALUE_SETS["web view on another port, TLS off, reachable from the ingress namespace"]
    manifests, deployment, parsed = _serve(values)
    assert parsed.web == "0.0.0.0:9000"
    assert {"name": "web", "containerPort": 9000, "protocol": "TCP"} in container(deployment)["ports"]
    ports = {p["name"]: p for p in find(manifests, "Service", "orchestrator")["spec"]["ports"]}
    assert (ports["web"]["port"], ports["web"]["appProtocol"]) == (9000, "http")
    (rule,) = _web_rules(manifests, 9000)
    assert rule["from"] == PEERS


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_rendered_flags_make_a_configuration_baton_serve_accepts(values: dict[str, Any]) -> None:
    # A web view on 0.0.0.0 needs authentication said and TLS or --plaintext: the chart gives both.
    _, _, parsed = _serve(values)
    config = ServerConfig(
        listen=parsed.listen,
        web=parsed.web,
        auth=parsed.auth,
        jwt_key=parsed.jwt_key,
        tls=TlsFiles(cert=parsed.tls_cert, key=parsed.tls_key, ca=parsed.tls_ca),
        plaintext=parsed.plaintext,
    )
    assert config.web.startswith("0.0.0.0:")
    assert bool(config.tls.cert) != config.plaintext


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"web": {"enabled": True, "port": 50051}}, "web.port (50051) must differ"),
        ({"web": {"enabled": True, "port": 50052}}, "web.port (50052) must differ"),
        ({"web": {"enabled": True, "port": 9090}}, "web.port (9090) must differ"),
        ({"web": {"enabled": True, "port": 0}}, "at '/web/port'"),
        ({"web": {"enabled": "yes", "port": 8088}}, "at '/web/enabled'"),
        ({"web": {"enabled": True, "bind": "x"}}, "at '/web'"),
        ({"networkPolicy": {"webFrom": "everyone"}}, "at '/networkPolicy/webFrom'"),
    ],
)
def test_bad_web_values_are_refused_naming_them(values: dict[str, Any], message: str) -> None:
    with pytest.raises((helm.HelmValuesError, helm.HelmRenderError)) as caught:
        render(values)
    assert message in str(caught.value)
