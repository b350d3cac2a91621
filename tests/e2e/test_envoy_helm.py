"""The chart's Envoy: the generated files/envoy.yaml, rendered by the chart as a release would, runs in Envoy."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.envoy import descriptor_set_bytes, envoy_binary
from server.envoy.helm import DESCRIPTOR_PATH, helm_front_proxy
from tests.conftest import ROOT
from tests.integration.helm_support import CHART, find, render

CHART_CONFIG = CHART / "files" / "envoy.yaml"
PLACEHOLDER = "BATON-ENVOY-PLACEHOLDER" in CHART_CONFIG.read_text()


def test_the_generated_chart_config_rendered_by_the_chart_passes_envoy_validate(tmp_path: Path) -> None:
    chart = tmp_path / "baton"
    shutil.copytree(CHART, chart)
    generated = subprocess.run(
        [sys.executable, str(ROOT / "envoy" / "generate.py"), "helm", "--out", str(chart / "files"), "--validate"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    config_map = find(render({"envoy": {"ports": {"listener": 10000}}}, chart=chart), "ConfigMap", "envoy")
    assert base64.b64decode(config_map["binaryData"]["baton.pb"]) == descriptor_set_bytes()
    text = config_map["data"]["envoy.yaml"]
    assert "prod-baton-orchestrator-headless.baton.svc" in text and "port_value: 10000" in text
    (tmp_path / "baton.pb").write_bytes(descriptor_set_bytes())
    config = tmp_path / "envoy.yaml"
    config.write_text(text.replace(DESCRIPTOR_PATH, str(tmp_path / "baton.pb")))
    checked = subprocess.run([envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.xfail(
    PLACEHOLDER,
    strict=True,
    reason="helm/baton/files/ still holds the placeholder: run python envoy/generate.py helm --out helm/baton/files",
)
def test_the_charts_envoy_config_and_descriptors_are_the_generated_ones() -> None:
    assert CHART_CONFIG.read_text() == helm_front_proxy()
    assert (CHART / "files" / "baton.pb").read_bytes() == descriptor_set_bytes()
