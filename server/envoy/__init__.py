"""Envoy in front of baton: configurations from one template, the transcoder's descriptors, a child process."""

from server.envoy.config import (
    READ_RPCS,
    AgentsProxy,
    Endpoint,
    FrontProxy,
    HealthChecks,
    Limits,
    agents_proxy_config,
    dump,
    front_proxy_config,
)
from server.envoy.descriptors import descriptor_set, descriptor_set_bytes
from server.envoy.process import EnvoyError, EnvoyProcess, envoy_binary, start_envoy, start_front_proxy
from server.envoy.tls import Certificates, Tls, sds_files

__all__ = [
    # Configurations as data
    "AgentsProxy",
    "Certificates",
    "Endpoint",
    "FrontProxy",
    "HealthChecks",
    "Limits",
    "READ_RPCS",
    "Tls",
    "agents_proxy_config",
    "dump",
    "front_proxy_config",
    "sds_files",
    # The transcoder's descriptor set
    "descriptor_set",
    "descriptor_set_bytes",
    # Envoy as a child process
    "EnvoyError",
    "EnvoyProcess",
    "envoy_binary",
    "start_envoy",
    "start_front_proxy",
]
