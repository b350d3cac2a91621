"""Server configuration: --agents as one address or a YAML file of per-agent endpoints."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents_clients import AGENTS
from server.config import ConfigError, agent_endpoints, parse_address


def test_one_address_serves_all_seven_agents() -> None:
    assert agent_endpoints("127.0.0.1:7000") == {agent: ["127.0.0.1:7000"] for agent in AGENTS}


def test_a_yaml_file_gives_each_agent_its_endpoints_with_a_default_for_the_rest(tmp_path: Path) -> None:
    spec = tmp_path / "agents.yaml"
    spec.write_text(
        "agents:\n"
        "  job_discovery: [127.0.0.1:7001, 127.0.0.1:7002]\n"
        "  automation: 127.0.0.1:7003\n"
        "  default: 127.0.0.1:7000\n"
    )
    endpoints = agent_endpoints(str(spec))
    assert endpoints["job_discovery"] == ["127.0.0.1:7001", "127.0.0.1:7002"]
    assert endpoints["automation"] == ["127.0.0.1:7003"]
    assert endpoints["analytics"] == ["127.0.0.1:7000"]
    assert set(endpoints) == set(AGENTS)


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("oracle: 127.0.0.1:1\ndefault: 127.0.0.1:2\n", "unknown agents ['oracle']"),
        ("automation: 127.0.0.1:1\n", "no endpoint for document_intelligence"),
        ("default: nowhere\n", "expected HOST:PORT"),
        ("default: []\n", "empty endpoint list"),
        ("- a\n- b\n", "must map agent names"),
    ],
)
def test_a_bad_agents_file_is_refused_naming_what_is_wrong(tmp_path: Path, text: str, needle: str) -> None:
    spec = tmp_path / "agents.yaml"
    spec.write_text(text)
    with pytest.raises(ConfigError, match=None) as err:
        agent_endpoints(str(spec))
    assert needle in str(err.value)


def test_a_missing_agents_file_and_a_bad_address_are_refused() -> None:
    with pytest.raises(ConfigError, match="no such file"):
        agent_endpoints("missing.yaml")
    with pytest.raises(ConfigError, match="listen: expected HOST:PORT"):
        parse_address("localhost", "listen")
