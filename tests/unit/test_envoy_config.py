"""The Envoy configurations as data: what the template promises, checked without running Envoy."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import descriptor_pb2, descriptor_pool

from agents_clients.catalog import AGENT_SERVICES, AGENTS
from server.envoy import (
    READ_RPCS,
    AgentsProxy,
    Certificates,
    Endpoint,
    FrontProxy,
    Tls,
    agents_proxy_config,
    descriptor_set,
    dump,
    envoy_binary,
    front_proxy_config,
    sds_files,
)
from server.envoy.config import READ_RETRY_ON, SAFE_RETRY_ON, SEED_HTTP_ROUTES
from server.envoy.helm import HEADER, helm_front_proxy, render_sample, sample_values

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"

ORCHESTRATORS = (Endpoint("10.0.0.1", 50051), Endpoint("10.0.0.2", 50051))


def _front(*orchestrators: Endpoint) -> dict[str, Any]:
    spec = FrontProxy(
        listen=Endpoint("0.0.0.0", 8080), orchestrators=orchestrators or ORCHESTRATORS, descriptor_path="/x/baton.pb"
    )
    return front_proxy_config(spec)


def _hcm(config: dict[str, Any]) -> dict[str, Any]:
    return config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]  # type: ignore[no-any-return]


def _routes(config: dict[str, Any]) -> list[dict[str, Any]]:
    return _hcm(config)["route_config"]["virtual_hosts"][0]["routes"]  # type: ignore[no-any-return]


def _retry_on(config: dict[str, Any], path: str) -> str:
    """The retry_on of the route a gRPC path takes (the first route that matches, as Envoy picks)."""
    for route in _routes(config):
        match = route["match"]
        if match.get("path") == path or ("prefix" in match and path.startswith(match["prefix"])):
            return str(route["route"]["retry_policy"]["retry_on"])
    raise AssertionError(f"no route for {path}")


def test_every_read_rpc_named_for_broad_retries_exists() -> None:
    pool = descriptor_pool.Default()
    for path in READ_RPCS:
        service, method = path.strip("/").split("/")
        assert pool.FindServiceByName(service).methods_by_name[method].server_streaming is False, path


def test_only_idempotent_reads_are_retried_after_reaching_a_server() -> None:
    config = _front()
    assert _retry_on(config, "/baton.v1.Orchestrator/GetExecution") == READ_RETRY_ON
    assert _retry_on(config, "/baton.v1.SeedApi/GetStatus") == READ_RETRY_ON
    for path in (
        "/baton.v1.Orchestrator/ExecuteWorkflow",
        "/baton.v1.Orchestrator/CancelExecution",
        "/baton.v1.Orchestrator/SignalExecution",
        "/baton.v1.Orchestrator/PauseExecution",
        "/baton.v1.Orchestrator/RerunExecution",
        "/baton.v1.Orchestrator/WatchExecution",
        "/baton.v1.SeedApi/Execute",
        "/baton.v1.SeedApi/WatchStatus",
    ):
        assert _retry_on(config, path) == SAFE_RETRY_ON, path
    assert set(SAFE_RETRY_ON.split(",")) == {"connect-failure", "refused-stream", "reset-before-request"}


def test_nothing_times_out_a_watch() -> None:
    config = _front()
    assert _hcm(config)["stream_idle_timeout"] == "0s"
    for route in _routes(config):
        assert route["route"]["timeout"] == "0s"
        assert route["route"]["max_stream_duration"] == {"grpc_timeout_header_max": "0s"}
        assert "idle_timeout" not in route["route"]


def test_the_seeds_paths_go_to_the_seed_service_and_the_rest_of_the_api_to_the_orchestrator() -> None:
    routes = _routes(_front())
    transcoded = {
        next(iter(r["match"].values())): r["typed_per_filter_config"]["envoy.filters.http.grpc_json_transcoder"][
            "services"
        ]
        for r in routes
        if "typed_per_filter_config" in r
    }
    assert transcoded == {
        **{path: ["baton.v1.SeedApi"] for _, path in SEED_HTTP_ROUTES},
        "/api/v1/": ["baton.v1.Orchestrator"],
    }
    # The seed's routes come before the catch-all /api/v1/ one, or they would never match.
    order = [next(iter(r["match"].values())) for r in routes]
    assert max(order.index(p) for _, p in SEED_HTTP_ROUTES) < order.index("/api/v1/")


def test_the_transcoder_prints_zeros_and_proto_names_and_streams_one_object_per_line() -> None:
    transcoder = _hcm(_front())["http_filters"][0]["typed_config"]
    assert transcoder["print_options"]["always_print_primitive_fields"] is True
    assert transcoder["print_options"]["preserve_proto_field_names"] is True
    assert transcoder["print_options"]["stream_newline_delimited"] is True
    assert transcoder["convert_grpc_status"] is True


def test_ip_replicas_are_static_and_names_are_resolved_for_every_address() -> None:
    assert _front()["static_resources"]["clusters"][0]["type"] == "STATIC"
    named = _front(Endpoint("baton-orchestrator.baton.svc", 50051))["static_resources"]["clusters"][0]
    assert named["type"] == "STRICT_DNS"


def test_the_orchestrator_cluster_is_health_checked_on_grpc_health_with_short_intervals() -> None:
    cluster = _front()["static_resources"]["clusters"][0]
    (check,) = cluster["health_checks"]
    assert check["grpc_health_check"] == {"service_name": "baton.v1.Orchestrator"}
    assert check["interval"] == check["no_traffic_interval"] == "1s"
    assert cluster["outlier_detection"]["enforcing_consecutive_gateway_failure"] == 100
    assert [
        e["endpoint"]["address"]["socket_address"] for e in cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]
    ] == [
        {"address": "10.0.0.1", "port_value": 50051},
        {"address": "10.0.0.2", "port_value": 50051},
    ]


def test_every_agent_has_a_cluster_of_its_replicas_with_breakers_outlier_detection_and_health_checks() -> None:
    replicas = (Endpoint("10.0.1.1", 50061), Endpoint("10.0.1.2", 50061))
    config = agents_proxy_config(AgentsProxy(listen=Endpoint("0.0.0.0", 50070), agents=dict.fromkeys(AGENTS, replicas)))
    clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
    assert list(clusters) == list(AGENTS)
    for agent, cluster in clusters.items():
        service = AGENT_SERVICES[agent].full_name
        assert cluster["health_checks"][0]["grpc_health_check"] == {"service_name": service}
        assert cluster["circuit_breakers"]["thresholds"][0]["max_pending_requests"] > 0
        assert cluster["outlier_detection"]["consecutive_local_origin_failure"] > 0
        assert len(cluster["load_assignment"]["endpoints"][0]["lb_endpoints"]) == 2
    routes = {r["match"]["prefix"]: r["route"]["cluster"] for r in _routes(config)}
    assert routes == {f"/{AGENT_SERVICES[a].full_name}/": a for a in AGENTS}
    assert all(r["route"]["retry_policy"]["retry_on"] == SAFE_RETRY_ON for r in _routes(config))


def test_an_agents_proxy_without_every_agent_is_refused_naming_the_missing() -> None:
    with pytest.raises(ValueError, match="no endpoint for security"):
        agents_proxy_config(
            AgentsProxy(
                listen=Endpoint("0.0.0.0", 50070),
                agents={a: (Endpoint("10.0.1.1", 50061),) for a in AGENTS if a != "security"},
            )
        )


@pytest.mark.parametrize("value", ["8080", "host:", ":80", "host:99999", "[::1]"])
def test_an_endpoint_that_is_not_host_port_is_refused_naming_the_setting(value: str) -> None:
    with pytest.raises(ValueError, match=r"^--listen: expected HOST:PORT"):
        Endpoint.parse(value, "--listen")


def test_ipv6_endpoints_parse_and_print_in_brackets() -> None:
    endpoint = Endpoint.parse("[::1]:8080", "x")
    assert (endpoint.host, endpoint.port, endpoint.is_ip, str(endpoint)) == ("::1", 8080, True, "[::1]:8080")


def _without_json_names(file: descriptor_pb2.FileDescriptorProto) -> descriptor_pb2.FileDescriptorProto:
    """The file without json_name: protoc writes the default ones into a descriptor set, not into
    generated code, and Envoy derives the same defaults when they are absent."""
    copy = descriptor_pb2.FileDescriptorProto()
    copy.CopyFrom(file)
    messages = list(copy.message_type)
    while messages:
        message = messages.pop()
        messages.extend(message.nested_type)
        for field in message.field:
            field.ClearField("json_name")
    return copy


def test_the_descriptor_set_holds_what_protoc_gives_for_every_proto_with_its_imports(tmp_path: Path) -> None:
    out = tmp_path / "protoc.pb"
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "baton" / "v1").glob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTOS}",
            f"-I{sysconfig.get_paths()['purelib']}",
            "--include_imports",
            f"--descriptor_set_out={out}",
            *sources,
        ],
        check=True,
        cwd=PROTOS,
        timeout=120,
    )
    from_protoc = {f.name: f for f in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file}
    ours = descriptor_set()
    assert [f.name for f in ours.file] == list(from_protoc)  # protoc's order: every file after its imports
    for file in ours.file:
        if file.name.startswith("baton/"):
            assert _without_json_names(file) == _without_json_names(from_protoc[file.name]), file.name
        # google/protobuf/descriptor.proto is the protobuf runtime's (newer than protoc's): same name only.
    seen: set[str] = set()
    for file in ours.file:
        assert set(file.dependency) <= seen, file.name
        seen.add(file.name)


def test_the_charts_template_is_the_front_proxy_with_the_charts_values_in_place() -> None:
    rendered = render_sample(helm_front_proxy(), sample_values("/x/baton.pb"))
    spec = FrontProxy(
        listen=Endpoint("0.0.0.0", 8080),
        orchestrators=(Endpoint("localhost", 50051),),
        descriptor_path="/x/baton.pb",
        admin=Endpoint("0.0.0.0", 9901),
    )
    assert rendered == HEADER + dump(front_proxy_config(spec))
    assert yaml.safe_load(rendered)["static_resources"]["clusters"][0]["type"] == "STRICT_DNS"


def _tls(**kw: Any) -> Tls:
    return Tls(
        sds_dir="/sds",
        listener=Certificates(cert="/certs/front/tls.crt", key="/certs/front/tls.key", **kw),
        upstream=Certificates(cert="/certs/up/tls.crt", key="/certs/up/tls.key", ca="/certs/up/ca.crt"),
        upstream_server_name="orchestrator.baton.svc",
    )


def _tls_front(tls: Tls) -> dict[str, Any]:
    spec = FrontProxy(listen=Endpoint("0.0.0.0", 8080), orchestrators=ORCHESTRATORS, descriptor_path="/x.pb", tls=tls)
    return front_proxy_config(spec)


def test_without_tls_no_transport_socket_and_no_sds_file_is_made() -> None:
    assert "transport_socket" not in dump(_front())
    assert sds_files(None) == {}


def test_the_listener_requires_client_certificates_only_when_given_a_ca() -> None:
    for ca, required in (("", False), ("/certs/front/ca.crt", True)):
        chain = _tls_front(_tls(ca=ca))["static_resources"]["listeners"][0]["filter_chains"][0]
        context = chain["transport_socket"]["typed_config"]
        assert context.get("require_client_certificate", False) is required
        assert context["common_tls_context"]["alpn_protocols"] == ["h2", "http/1.1"]
        assert ("validation_context_sds_secret_config" in context["common_tls_context"]) is required


def test_upstreams_get_envoys_client_certificate_and_must_hold_the_server_name() -> None:
    config = _tls_front(_tls())
    context = config["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
    assert context["sni"] == "orchestrator.baton.svc"
    common = context["common_tls_context"]
    assert common["alpn_protocols"] == ["h2"]
    assert common["tls_certificate_sds_secret_configs"][0]["name"] == "upstream-cert"
    validation = common["combined_validation_context"]
    assert validation["default_validation_context"]["match_typed_subject_alt_names"] == [
        {"san_type": "DNS", "matcher": {"exact": "orchestrator.baton.svc"}}
    ]
    assert config["node"] == {"id": "baton-envoy", "cluster": "baton"}  # file SDS needs a node


def test_each_sds_file_names_its_certificates_and_watches_their_directory() -> None:
    files = {name: yaml.safe_load(text) for name, text in sds_files(_tls(ca="/certs/front/ca.crt")).items()}
    assert set(files) == {"listener-cert.yaml", "listener-ca.yaml", "upstream-cert.yaml", "upstream-ca.yaml"}
    (cert,) = files["listener-cert.yaml"]["resources"]
    assert cert["name"] == "listener-cert"
    assert cert["tls_certificate"]["certificate_chain"] == {"filename": "/certs/front/tls.crt"}
    assert cert["tls_certificate"]["watched_directory"] == {"path": "/certs/front"}
    (ca,) = files["upstream-ca.yaml"]["resources"]
    assert ca["validation_context"] == {
        "trusted_ca": {"filename": "/certs/up/ca.crt"},
        "watched_directory": {"path": "/certs/up"},
    }
    paths = {
        ref["sds_config"]["path_config_source"]["path"]
        for ref in _references(_tls_front(_tls(ca="/certs/front/ca.crt")))
    }
    assert paths == {f"/sds/{name}" for name in files}


def _references(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        return ([node] if "sds_config" in node else []) + [r for v in node.values() for r in _references(v)]
    if isinstance(node, list):
        return [r for v in node for r in _references(v)]
    return []


@pytest.mark.parametrize(
    ("tls", "message"),
    [
        (Tls(sds_dir="/s", listener=Certificates(cert="/c")), "tls.listener: a certificate needs its key"),
        (Tls(sds_dir="/s", listener=Certificates(ca="/ca")), "tls.listener: the listener needs a certificate"),
        (Tls(sds_dir="/s", upstream=Certificates(), upstream_server_name="x"), "upstream_server_name: checking"),
    ],
)
def test_tls_that_makes_no_sense_is_refused_naming_the_field(tls: Tls, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        _tls_front(tls)


def test_tls_configurations_of_both_proxies_pass_envoy_validate(tmp_path: Path) -> None:
    tls = Tls(
        sds_dir=str(tmp_path),
        listener=Certificates(cert=f"{tmp_path}/tls.crt", key=f"{tmp_path}/tls.key", ca=f"{tmp_path}/ca.crt"),
        upstream=Certificates(cert=f"{tmp_path}/tls.crt", key=f"{tmp_path}/tls.key", ca=f"{tmp_path}/ca.crt"),
        upstream_server_name="10.0.0.9",
    )
    for name, text in sds_files(tls).items():
        (tmp_path / name).write_text(text)
    (tmp_path / "baton.pb").write_bytes(descriptor_set().SerializeToString())
    front = FrontProxy(
        listen=Endpoint("127.0.0.1", 0), orchestrators=ORCHESTRATORS, descriptor_path=f"{tmp_path}/baton.pb", tls=tls
    )
    agents = AgentsProxy(listen=Endpoint("127.0.0.1", 0), agents=dict.fromkeys(AGENTS, ORCHESTRATORS), tls=tls)
    for config in (front_proxy_config(front), agents_proxy_config(agents)):
        path = tmp_path / "envoy.yaml"
        path.write_text(dump(config))
        checked = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(path)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr
    san = front_proxy_config(front)["static_resources"]["clusters"][0]["transport_socket"]["typed_config"]
    matcher = san["common_tls_context"]["combined_validation_context"]["default_validation_context"]
    assert matcher["match_typed_subject_alt_names"][0]["san_type"] == "IP_ADDRESS"
