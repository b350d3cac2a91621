"""The Helm chart's topology: Services, the agents' endpoints, TLS, Envoy, the reference agents
and the NetworkPolicies that let only the intended traffic through."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from agents_clients import AGENTS
from server.cli._parser import build_parser
from server.config import agent_endpoints
from tests.integration.helm_support import (
    CHART,
    container,
    environment,
    expand,
    find,
    kinds,
    pod_labels,
    render,
    selects,
)

ORCHESTRATOR_SERVICE = "prod-baton-orchestrator"


def _policy_peers_select(rule: dict[str, Any], labels: dict[str, str]) -> bool:
    """Whether an ingress or egress rule's peers select pods with these labels (same namespace)."""
    peers = rule.get("from", rule.get("to", []))
    return any("podSelector" in p and selects(p["podSelector"]["matchLabels"], labels) for p in peers)


def _ports(rule: dict[str, Any]) -> set[int]:
    return {p["port"] for p in rule.get("ports", [])}


def test_the_orchestrator_service_speaks_grpc_to_the_orchestrator_pods() -> None:
    manifests = render()
    labels = pod_labels(find(manifests, "Deployment", "orchestrator"))
    service = find(manifests, "Service", "orchestrator")
    assert selects(service["spec"]["selector"], labels)
    assert service["spec"]["ports"] == [
        {"name": "grpc", "port": 50051, "targetPort": "grpc", "protocol": "TCP", "appProtocol": "grpc"},
        {"name": "metrics", "port": 9090, "targetPort": "metrics", "protocol": "TCP", "appProtocol": "http"},
    ]


def test_envoy_finds_every_ready_replica_through_a_headless_service() -> None:
    manifests = render()
    headless = find(manifests, "Service", "orchestrator-headless")
    assert headless["spec"]["clusterIP"] == "None"
    assert headless["spec"]["publishNotReadyAddresses"] is False
    assert selects(headless["spec"]["selector"], pod_labels(find(manifests, "Deployment", "orchestrator")))


def test_the_reference_agents_are_rendered_only_when_enabled() -> None:
    assert not {k for k in kinds(render()) if k[1] == "prod-baton-agents"}
    manifests = render({"agents": {"enabled": True, "latencyMs": 50, "errorRate": 0.1}})
    deployment = find(manifests, "Deployment", "agents")
    args = build_parser().parse_args(container(deployment)["args"])
    assert (args.command, args.agents_command) == ("agents", "serve")
    assert args.listen == "0.0.0.0:50061"
    assert (args.latency, args.error_rate) == (50.0, 0.1)
    c = container(deployment)
    assert c["readinessProbe"]["grpc"] == {"port": 50062, "service": ""}  # with TLS, the health port
    service = find(manifests, "Service", "agents")
    assert selects(service["spec"]["selector"], pod_labels(deployment))
    assert service["spec"]["ports"][0]["port"] == 50061


def _agents_file(manifests: list[dict[str, Any]], tmp_path: Path) -> dict[str, list[str]]:
    """Writes the ConfigMap's agents.yaml where the pod would see it; returns what the server reads from it."""
    config_map = find(manifests, "ConfigMap", "orchestrator")
    deployment = find(manifests, "Deployment", "orchestrator")
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "config")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "config")
    (item,) = volume["configMap"]["items"]
    assert volume["configMap"]["name"] == config_map["metadata"]["name"]
    # The file the server is told to read is the one the volume puts there.
    assert config_map["data"]["BATON_AGENTS"] == f"{mount['mountPath']}/{item['path']}"
    path = tmp_path / item["path"]
    path.write_text(config_map["data"][item["key"]])
    return agent_endpoints(str(path))


def test_with_reference_agents_every_agent_is_served_by_the_agents_service(tmp_path: Path) -> None:
    endpoints = _agents_file(render({"agents": {"enabled": True}}), tmp_path)
    assert endpoints == {agent: ["prod-baton-agents.baton.svc:50061"] for agent in AGENTS}


def test_given_endpoints_are_written_in_the_format_the_server_reads(tmp_path: Path) -> None:
    values = {"agentEndpoints": {"default": "fleet.agents.svc:50061", "job_discovery": ["j0:7000", "j1:7000"]}}
    endpoints = _agents_file(render(values), tmp_path)
    assert endpoints["job_discovery"] == ["j0:7000", "j1:7000"]
    assert {endpoints[a][0] for a in AGENTS if a != "job_discovery"} == {"fleet.agents.svc:50061"}


def test_given_endpoints_win_over_the_reference_agents_default(tmp_path: Path) -> None:
    values = {"agents": {"enabled": True}, "agentEndpoints": {"default": "elsewhere:1", "security": "sec:2"}}
    endpoints = _agents_file(render(values), tmp_path)
    assert endpoints["security"] == ["sec:2"]
    assert endpoints["analytics"] == ["elsewhere:1"]


def test_without_agents_or_endpoints_each_replica_runs_the_embedded_fleet() -> None:
    manifests = render()
    assert find(manifests, "ConfigMap", "orchestrator")["data"]["BATON_AGENTS"] == "embedded"
    pod = find(manifests, "Deployment", "orchestrator")["spec"]["template"]["spec"]
    assert "config" not in {v["name"] for v in pod["volumes"]}


def _expanded_args(manifests: list[dict[str, Any]], deployment: dict[str, Any]) -> list[str]:
    """The container's arguments as the kubelet expands them."""
    env = environment(manifests, deployment, {"baton-database/url": "postgresql://baton@db/baton"})
    return expand(container(deployment)["args"], env)


def _secret_mounts(deployment: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """Mount path → (Secret name, volume name) of every Secret the Deployment's container mounts."""
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    return {
        m["mountPath"]: (volumes[m["name"]]["secret"]["secretName"], m["name"])
        for m in container(deployment)["volumeMounts"]
        if "secret" in volumes[m["name"]] and m.get("readOnly")
    }


def test_with_tls_the_orchestrator_serves_mtls_from_its_mounted_secret_and_calls_the_agents_with_it() -> None:
    manifests = render({"agents": {"enabled": True}, "tls": {"mountPath": "/etc/tls"}})
    deployment = find(manifests, "Deployment", "orchestrator")
    assert _secret_mounts(deployment)["/etc/tls"] == ("baton-orchestrator-tls", "tls")
    args = build_parser().parse_args(_expanded_args(manifests, deployment))
    assert (args.tls_cert, args.tls_key, args.tls_ca) == ("/etc/tls/tls.crt", "/etc/tls/tls.key", "/etc/tls/ca.crt")
    assert not args.plaintext


def test_with_tls_the_agents_serve_mtls_to_the_orchestrators_name_only() -> None:
    manifests = render({"agents": {"enabled": True}})
    deployment = find(manifests, "Deployment", "agents")
    assert _secret_mounts(deployment) == {"/etc/baton/tls": ("baton-agents-tls", "tls")}
    args = build_parser().parse_args(container(deployment)["args"])
    assert args.tls_ca == "/etc/baton/tls/ca.crt"
    # The name Envoy checks on the orchestrator's certificate is the one the agents allow.
    assert args.tls_allow_client == ["prod-baton-orchestrator-headless.baton.svc"]
    assert args.health_listen == "0.0.0.0:50062"
    named = render({"agents": {"enabled": True}, "tls": {"agents": {"allowClients": ["orch", "spiffe://x/y"]}}})
    assert build_parser().parse_args(container(find(named, "Deployment", "agents"))["args"]).tls_allow_client == [
        "orch",
        "spiffe://x/y",
    ]


def test_with_tls_envoy_serves_tls_and_talks_mtls_to_the_orchestrators_through_its_mounted_secrets() -> None:
    manifests = render({"tls": {"envoy": {"listenerSecretName": "public-tls"}}})
    deployment = find(manifests, "Deployment", "envoy")
    assert _secret_mounts(deployment) == {
        "/etc/envoy-tls/listener": ("public-tls", "tls-listener"),
        "/etc/envoy-tls/upstream": ("baton-envoy-tls", "tls-upstream"),
    }
    # Envoy runs as its own user: the Secrets' files are readable through the pod's fsGroup.
    assert deployment["spec"]["template"]["spec"]["securityContext"]["fsGroup"] == 101
    config_map = find(manifests, "ConfigMap", "envoy")["data"]
    envoy = yaml.safe_load(config_map["envoy.yaml"])
    (chain,) = envoy["static_resources"]["listeners"][0]["filter_chains"]
    assert chain["transport_socket"]["typed_config"]["@type"].endswith("DownstreamTlsContext")
    (cluster,) = envoy["static_resources"]["clusters"]
    upstream = cluster["transport_socket"]["typed_config"]
    assert upstream["sni"] == "prod-baton-orchestrator-headless.baton.svc"
    validation = upstream["common_tls_context"]["combined_validation_context"]
    (san,) = validation["default_validation_context"]["match_typed_subject_alt_names"]
    assert san["matcher"]["exact"] == "prod-baton-orchestrator-headless.baton.svc"
    # Every SDS file the configuration reads is in the ConfigMap, naming files in the mounted Secrets.
    sds = {c["sds_config"]["path_config_source"]["path"] for c in _sds_references(envoy)}
    assert sds == {f"/etc/envoy/{name}" for name in config_map if name != "envoy.yaml"}
    for name in config_map:
        if name != "envoy.yaml":
            for secret in yaml.safe_load(config_map[name])["resources"]:
                files = [
                    v["filename"]
                    for part in secret.values()
                    if isinstance(part, dict)
                    for v in part.values()
                    if isinstance(v, dict) and "filename" in v
                ]
                assert files and all(any(f.startswith(p + "/") for p in _secret_mounts(deployment)) for f in files)


def _sds_references(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if "sds_config" in node else []
        return found + [r for v in node.values() for r in _sds_references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _sds_references(v)]
    return []


def test_without_tls_every_hop_is_plaintext_by_request_and_no_secret_is_mounted() -> None:
    manifests = render({"tls": {"enabled": False}, "agents": {"enabled": True}, "auth": {"mode": "none"}})
    for name in ("orchestrator", "agents", "envoy"):
        deployment = find(manifests, "Deployment", name)
        assert _secret_mounts(deployment) == {}
    for name in ("orchestrator", "agents"):
        args = _expanded_args(manifests, find(manifests, "Deployment", name))
        assert build_parser().parse_args(args).plaintext
    config_map = find(manifests, "ConfigMap", "envoy")["data"]
    assert set(config_map) == {"envoy.yaml"}
    assert "transport_socket" not in config_map["envoy.yaml"]


def test_envoy_runs_the_chart_config_file_with_ready_probes_on_its_admin_port() -> None:
    manifests = render()
    deployment = find(manifests, "Deployment", "envoy")
    c = container(deployment)
    assert c["image"] == "envoyproxy/envoy:v1.40.0"
    assert c["args"][c["args"].index("--config-path") + 1] == "/etc/envoy/envoy.yaml"
    assert c["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "admin"}
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"listener": 8080, "admin": 9901}
    mount = next(m for m in c["volumeMounts"] if m["name"] == "config")
    assert mount["mountPath"] == "/etc/envoy"
    config_map = find(manifests, "ConfigMap", "envoy")
    # The generated config, rendered with the release's values: the ports of the Deployment and
    # the orchestrators' headless Service as the one upstream.
    envoy = yaml.safe_load(config_map["data"]["envoy.yaml"])
    assert envoy["admin"]["address"]["socket_address"]["port_value"] == 9901
    (listener,) = envoy["static_resources"]["listeners"]
    assert listener["address"]["socket_address"]["port_value"] == 8080
    upstreams = {
        endpoint["endpoint"]["address"]["socket_address"]["address"]
        for cluster in envoy["static_resources"]["clusters"]
        for group in cluster["load_assignment"]["endpoints"]
        for endpoint in group["lb_endpoints"]
    }
    headless = [s for s in manifests if s["kind"] == "Service" and s["spec"].get("clusterIP") == "None"]
    assert upstreams and all(any(s["metadata"]["name"] in address for s in headless) for address in upstreams)
    service = find(manifests, "Service", "envoy")
    assert service["spec"]["ports"] == [{"name": "http", "port": 8080, "targetPort": "listener", "protocol": "TCP"}]
    assert selects(service["spec"]["selector"], pod_labels(deployment))


def test_the_envoy_config_file_is_a_template_that_sees_the_release(tmp_path: Path) -> None:
    # What the generated files/envoy.yaml may rely on, and the descriptor set mounted beside it.
    chart = tmp_path / "baton"
    shutil.copytree(CHART, chart)
    for name, tls in (("envoy.yaml", False), ("envoy-tls.yaml", True)):
        (chart / "files" / name).write_text(
            f"tls: {str(tls).lower()}\n"
            'upstream: {{ include "baton.envoy.upstreamHost" . }}:{{ .Values.orchestrator.port }}\n'
            "listener: {{ .Values.envoy.ports.listener }}\nadmin: {{ .Values.envoy.ports.admin }}\n"
        )
    (chart / "files" / "baton.pb").write_bytes(b"\x0a\x00\xff descriptor")
    for tls in (True, False):
        values = {"envoy": {"ports": {"listener": 10000}}, "tls": {"enabled": tls}}
        config_map = find(render(values, chart=chart), "ConfigMap", "envoy")
        assert yaml.safe_load(config_map["data"]["envoy.yaml"]) == {
            "tls": tls,
            "upstream": "prod-baton-orchestrator-headless.baton.svc:50051",
            "listener": 10000,
            "admin": 9901,
        }
        assert config_map["binaryData"]["baton.pb"] == "CgD/IGRlc2NyaXB0b3I="


def test_envoy_is_rendered_only_when_enabled() -> None:
    assert not {k for k in kinds(render({"envoy": {"enabled": False}})) if k[1] == "prod-baton-envoy"}


def test_the_orchestrator_takes_traffic_only_from_envoy() -> None:
    manifests = render()
    policy = find(manifests, "NetworkPolicy", "orchestrator")
    orchestrator = pod_labels(find(manifests, "Deployment", "orchestrator"))
    envoy = pod_labels(find(manifests, "Deployment", "envoy"))
    assert selects(policy["spec"]["podSelector"]["matchLabels"], orchestrator)
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    rule, metrics = policy["spec"]["ingress"]
    assert _policy_peers_select(rule, envoy)
    assert not _policy_peers_select(rule, orchestrator)
    assert _ports(rule) == {50051}
    # Prometheus scrapes the metrics port alone (from anyone unless networkPolicy.metricsFrom says).
    assert _ports(metrics) == {9090}
    assert "from" not in metrics


def test_without_envoy_the_orchestrator_takes_no_traffic_unless_rules_are_added() -> None:
    no_metrics = {"metrics": {"enabled": False}}
    policy = find(render({"envoy": {"enabled": False}, "orchestrator": no_metrics}), "NetworkPolicy", "orchestrator")
    assert policy["spec"]["ingress"] == []
    extra = [{"from": [{"podSelector": {"matchLabels": {"app": "baton-cli"}}}]}]
    policy = find(
        render({"envoy": {"enabled": False}, "orchestrator": no_metrics, "networkPolicy": {"extraIngress": extra}}),
        "NetworkPolicy",
        "orchestrator",
    )
    assert policy["spec"]["ingress"] == extra


def test_the_orchestrator_reaches_only_dns_the_database_and_its_agents() -> None:
    values = {
        "agents": {"enabled": True},
        "networkPolicy": {"database": {"port": 6432, "to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}]}},
    }
    manifests = render(values)
    egress = find(manifests, "NetworkPolicy", "orchestrator")["spec"]["egress"]
    agents = pod_labels(find(manifests, "Deployment", "agents"))
    dns, database, to_agents = egress
    assert _ports(dns) == {53} and {p["protocol"] for p in dns["ports"]} == {"UDP", "TCP"}
    assert database == {"ports": [{"port": 6432, "protocol": "TCP"}], "to": [{"ipBlock": {"cidr": "10.0.0.5/32"}}]}
    assert _policy_peers_select(to_agents, agents) and _ports(to_agents) == {50061}


def test_the_agents_take_traffic_only_from_the_orchestrator_and_call_nothing() -> None:
    manifests = render({"agents": {"enabled": True}})
    policy = find(manifests, "NetworkPolicy", "agents")
    assert selects(policy["spec"]["podSelector"]["matchLabels"], pod_labels(find(manifests, "Deployment", "agents")))
    (rule,) = policy["spec"]["ingress"]
    assert _policy_peers_select(rule, pod_labels(find(manifests, "Deployment", "orchestrator")))
    assert not _policy_peers_select(rule, pod_labels(find(manifests, "Deployment", "envoy")))
    assert _ports(rule) == {50061}
    assert policy["spec"]["egress"] == []


def test_envoy_is_reachable_on_its_listener_only_and_reaches_the_orchestrator() -> None:
    manifests = render()
    policy = find(manifests, "NetworkPolicy", "envoy")
    (rule,) = policy["spec"]["ingress"]
    assert _ports(rule) == {8080}  # not 9901: the admin port stays private
    assert "from" not in rule
    _, to_orchestrator = policy["spec"]["egress"]
    assert _policy_peers_select(to_orchestrator, pod_labels(find(manifests, "Deployment", "orchestrator")))
    assert _ports(to_orchestrator) == {50051}

    peers = [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "ingress"}}}]
    (rule,) = find(render({"networkPolicy": {"envoyIngressFrom": peers}}), "NetworkPolicy", "envoy")["spec"]["ingress"]
    assert rule["from"] == peers


@pytest.mark.parametrize(
    "values",
    [{"networkPolicy": {"enabled": False}}, {"networkPolicy": {"enabled": False}, "agents": {"enabled": True}}],
)
def test_network_policies_can_be_turned_off(values: dict[str, Any]) -> None:
    assert not [m for m in render(values) if m["kind"] == "NetworkPolicy"]
