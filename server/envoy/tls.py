"""Envoy's TLS: certificates through file-based SDS (re-read when their directory changes), mTLS on both sides.

The transport sockets of the template in server/envoy/config.py (see its rules). Each secret is a
small SDS file naming the certificate files (`sds_files`), written beside the configuration; the
watched directory is the certificate's own, so a Kubernetes Secret update (an atomic rename of its
`..data` link) or an `mv` of new files into it makes Envoy load them without a restart.
"""

from __future__ import annotations

import ipaddress
import posixpath
from dataclasses import dataclass
from typing import Any

import yaml

_TLS = "type.googleapis.com/envoy.extensions.transport_sockets.tls.v3."


def _dump(config: dict[str, Any]) -> str:
    return yaml.safe_dump(config, sort_keys=False, width=120)


@dataclass(frozen=True)
class Certificates:
    """PEM files as Envoy sees them: a certificate chain and key (Envoy's own) and a CA (its peers')."""

    cert: str = ""
    """Envoy's certificate chain; empty: none (an upstream that needs no client certificate)."""
    key: str = ""
    """Its private key; in the certificate's directory, which Envoy watches."""
    ca: str = ""
    """The CA the peer's certificate must come from: at a listener, clients must then present one
    (mTLS); upstream, empty leaves the server unverified."""


@dataclass(frozen=True)
class Tls:
    """Envoy's TLS on both sides."""

    sds_dir: str
    """The directory of the SDS files (sds_files()) as Envoy sees it."""
    listener: Certificates | None = None
    """The listener's certificate (and client CA); None: plaintext."""
    upstream: Certificates | None = None
    """Towards the upstreams; None: plaintext."""
    upstream_server_name: str = ""
    """The name the upstreams' certificates must hold, sent as SNI; empty: any certificate from the CA."""


def _sds(tls: Tls, name: str) -> dict[str, Any]:
    """A reference to the SDS file of secret `name` (see sds_files)."""
    return {
        "name": name,
        "sds_config": {
            "path_config_source": {"path": posixpath.join(tls.sds_dir, f"{name}.yaml")},
            "resource_api_version": "V3",
        },
    }


def sds_files(tls: Tls | None) -> dict[str, str]:
    """The SDS files a configuration with `tls` reads, by file name: write them into `tls.sds_dir`.

    Each holds one secret naming the certificate files, with their directory as the watched one.
    """
    if tls is None:
        return {}
    secrets: dict[str, dict[str, Any]] = {}
    for side, certs in (("listener", tls.listener), ("upstream", tls.upstream)):
        if certs is None:
            continue
        if certs.cert:
            secrets[f"{side}-cert"] = {
                "tls_certificate": {
                    "certificate_chain": {"filename": certs.cert},
                    "private_key": {"filename": certs.key},
                    "watched_directory": {"path": posixpath.dirname(certs.cert) or "."},
                }
            }
        if certs.ca:
            secrets[f"{side}-ca"] = {
                "validation_context": {
                    "trusted_ca": {"filename": certs.ca},
                    "watched_directory": {"path": posixpath.dirname(certs.ca) or "."},
                }
            }
    return {
        f"{name}.yaml": _dump({"resources": [{"@type": f"{_TLS}Secret", "name": name, **secret}]})
        for name, secret in secrets.items()
    }


def check_tls(tls: Tls | None) -> None:
    """Checks that the files given make sense together.

    Raises:
        ValueError: a certificate without its key (or the reverse), a listener without a
            certificate, or an upstream name to check without a CA; the message names the field.
    """
    if tls is None:
        return
    for side, certs in (("listener", tls.listener), ("upstream", tls.upstream)):
        if certs is not None and bool(certs.cert) != bool(certs.key):
            raise ValueError(f"tls.{side}: a certificate needs its key and a key its certificate")
    if tls.listener is not None and not tls.listener.cert:
        raise ValueError("tls.listener: the listener needs a certificate and key")
    if tls.upstream_server_name and not (tls.upstream and tls.upstream.ca):
        raise ValueError("tls.upstream_server_name: checking the upstreams' name needs their CA (tls.upstream.ca)")


def downstream_tls(tls: Tls, certs: Certificates) -> dict[str, Any]:
    """The listener's transport socket: TLS, and mTLS when `certs.ca` is given."""
    common: dict[str, Any] = {
        # gRPC needs h2 negotiated; the REST API may come over HTTP/1.1.
        "alpn_protocols": ["h2", "http/1.1"],
        "tls_certificate_sds_secret_configs": [_sds(tls, "listener-cert")],
    }
    context: dict[str, Any] = {"@type": f"{_TLS}DownstreamTlsContext"}
    if certs.ca:
        common["validation_context_sds_secret_config"] = _sds(tls, "listener-ca")
        context["require_client_certificate"] = True
    context["common_tls_context"] = common
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}


def upstream_tls(tls: Tls, certs: Certificates) -> dict[str, Any]:
    """A cluster's transport socket: Envoy's client certificate, the CA and name the upstream must have."""
    common: dict[str, Any] = {"alpn_protocols": ["h2"]}
    if certs.cert:
        common["tls_certificate_sds_secret_configs"] = [_sds(tls, "upstream-cert")]
    if certs.ca and tls.upstream_server_name:
        try:
            ipaddress.ip_address(tls.upstream_server_name)
            san_type = "IP_ADDRESS"
        except ValueError:
            san_type = "DNS"
        common["combined_validation_context"] = {
            "default_validation_context": {
                "match_typed_subject_alt_names": [
                    {"san_type": san_type, "matcher": {"exact": tls.upstream_server_name}}
                ]
            },
            "validation_context_sds_secret_config": _sds(tls, "upstream-ca"),
        }
    elif certs.ca:
        common["validation_context_sds_secret_config"] = _sds(tls, "upstream-ca")
    context: dict[str, Any] = {"@type": f"{_TLS}UpstreamTlsContext", "common_tls_context": common}
    if tls.upstream_server_name:
        context["sni"] = tls.upstream_server_name
    return {"name": "envoy.transport_sockets.tls", "typed_config": context}
