"""The Helm chart's authentication: `auth.mode` becomes `baton serve --auth`, the JWT key comes from a Secret."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest

from server.auth.keys import generate_key_pair
from server.auth.verifier import JwtVerifier
from server.cli._parser import build_parser
from server.config import ServerConfig
from tests.integration.helm_support import CHART, KUBERNETES, container, environment, expand, find, render

SECRETS = {"baton-database/url": "postgresql://baton:secret@db.example:5432/baton"}


def _serve_args(values: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    manifests = render(values)
    deployment = find(manifests, "Deployment", "orchestrator")
    args = expand(container(deployment)["args"], environment(manifests, deployment, SECRETS))
    return build_parser().parse_args(args), deployment


def _config(parsed: Any) -> ServerConfig:
    """The server's own start-up check of the rendered arguments."""
    return ServerConfig(
        listen=parsed.listen,
        auth=parsed.auth or "",
        jwt_key=parsed.jwt_key,
        jwt_issuer=parsed.jwt_issuer,
        jwt_audience=parsed.jwt_audience,
    )


def test_by_default_tokens_are_verified_with_the_key_mounted_from_the_named_secret(tmp_path: Path) -> None:
    generate_key_pair(tmp_path)
    parsed, deployment = _serve_args({"auth": {"jwt": {"mountPath": str(tmp_path)}}})
    assert (parsed.auth, parsed.jwt_key) == ("jwt", f"{tmp_path}/public.pem")
    assert (parsed.jwt_issuer, parsed.jwt_audience) == ("", "")
    _config(parsed)
    # The file the server is told to read is one the key file reader accepts.
    assert JwtVerifier(parsed.jwt_key).keys
    mount = next(m for m in container(deployment)["volumeMounts"] if m["name"] == "jwt-key")
    assert mount == {"name": "jwt-key", "mountPath": str(tmp_path), "readOnly": True}  # no subPath: rotation works
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "jwt-key")
    assert volume["secret"]["secretName"] == "baton-jwt"
    assert volume["secret"]["items"] == [{"key": "public.pem", "path": "public.pem"}]


def test_issuer_audience_and_a_jwks_key_are_passed_as_flags() -> None:
    values = {
        "auth": {"jwt": {"existingSecret": "idp-keys", "key": "jwks.json", "issuer": "https://id", "audience": "baton"}}
    }
    parsed, deployment = _serve_args(values)
    assert parsed.jwt_key == "/etc/baton/jwt/jwks.json"
    assert (parsed.jwt_issuer, parsed.jwt_audience) == ("https://id", "baton")
    volume = next(v for v in deployment["spec"]["template"]["spec"]["volumes"] if v["name"] == "jwt-key")
    assert volume["secret"]["secretName"] == "idp-keys"
    _config(parsed)


def test_mode_none_says_so_explicitly_and_mounts_no_key() -> None:
    parsed, deployment = _serve_args({"auth": {"mode": "none"}})
    assert (parsed.auth, parsed.jwt_key) == ("none", "")
    assert "jwt-key" not in {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}
    # Listening on 0.0.0.0, the server starts only because --auth none is explicit.
    _config(parsed)
    with pytest.raises(ValueError, match="no --auth was given"):
        ServerConfig(listen=parsed.listen)


@pytest.mark.parametrize("mode", ["jwt", "none"])
def test_both_modes_validate_strictly_against_kubernetes(mode: str) -> None:
    for manifest in render({"auth": {"mode": mode, "jwt": {"issuer": "https://id", "audience": "aud"}}}):
        kubernetes_validate.validate(manifest, KUBERNETES, strict=True)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"auth": {"mode": "basic"}}, "at '/auth/mode'"),
        ({"auth": {"jwt": {"existingSecret": ""}}}, "at '/auth/jwt/existingSecret'"),
        ({"auth": {"jwt": {"mountPath": "relative"}}}, "at '/auth/jwt/mountPath'"),
    ],
)
def test_the_schema_refuses_a_bad_auth_value(values: dict[str, Any], message: str) -> None:
    with pytest.raises(helm.HelmValuesError) as caught:
        render(values)
    assert message in str(caught.value)


@pytest.mark.parametrize("mode", ["jwt", "none"])
def test_strict_lint_finds_nothing_in_either_mode(mode: str) -> None:
    report = helm.lint(str(CHART), {"auth": {"mode": mode}}, strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    assert [m for m in report["messages"] if m["severity"] >= 2] == []
