"""The chart's Envoy: the generated files/envoy.yaml, rendered by the chart as a release would, runs in Envoy."""

from __future__ import annotations

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from server.envoy import descriptor_set_bytes, envoy_binary
from server.envoy.helm import CONFIG_DIR, helm_front_proxy, helm_sds_files
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
    for tls in (True, False):
        values = {"envoy": {"ports": {"listener": 10000}}, "tls": {"enabled": tls}}
        config_map = find(render(values, chart=chart), "ConfigMap", "envoy")
        assert base64.b64decode(config_map["binaryData"]["baton.pb"]) == descriptor_set_bytes()
        text = config_map["data"]["envoy.yaml"]
        assert "prod-baton-orchestrator-headless.baton.svc" in text and "port_value: 10000" in text
        assert ("transport_socket" in text) is tls
        # The ConfigMap as Envoy would see it mounted: envoy.yaml, baton.pb and the SDS files.
        mounted = tmp_path / f"etc-envoy-{tls}"
        mounted.mkdir()
        (mounted / "baton.pb").write_bytes(descriptor_set_bytes())
        for name, content in config_map["data"].items():
            (mounted / name).write_text(content.replace(CONFIG_DIR + "/", f"{mounted}/"))
        config = mounted / "envoy.yaml"
        checked = subprocess.run(
            [envoy_binary(), "--mode", "validate", "-c", str(config)], capture_output=True, text=True
        )
        assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.xfail(
    PLACEHOLDER,
    strict=True,
    reason="helm/baton/files/ still holds the placeholder: run python envoy/generate.py helm --out helm/baton/files",
)
def test_the_charts_envoy_config_and_descriptors_are_the_generated_ones() -> None:
    assert CHART_CONFIG.read_text() == helm_front_proxy()
    assert (CHART / "files" / "envoy-tls.yaml").read_text() == helm_front_proxy(tls=True)
    written = {p.name: p.read_text() for p in (CHART / "files" / "sds").iterdir()}
    assert written == helm_sds_files()
    assert (CHART / "files" / "baton.pb").read_bytes() == descriptor_set_bytes()
