"""Rendering the Helm chart (helm-python-sdk) into manifests the chart tests can query."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import helm_python as helm
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "baton"
RELEASE = "prod"
NAMESPACE = "baton"
KUBERNETES = "1.32.0"
"""The Kubernetes release whose schemas every rendered manifest must satisfy."""

Manifest = dict[str, Any]


def render(values: Mapping[str, Any] | None = None, chart: Path = CHART) -> list[Manifest]:
    """Renders the chart as release `prod` in namespace `baton` and returns its manifests (no NOTES)."""
    rendered = helm.Chart.load(str(chart)).render(values=dict(values or {}), name=RELEASE, namespace=NAMESPACE)
    return [
        doc
        for path, text in sorted(rendered.items())
        if not path.endswith("NOTES.txt")
        for doc in yaml.safe_load_all(text)
        if doc
    ]


def find(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    """The one manifest of this kind named `prod-baton-<name>` (or `prod-baton` for name "")."""
    full = f"{RELEASE}-baton-{name}" if name else f"{RELEASE}-baton"
    matches = [m for m in manifests if m["kind"] == kind and m["metadata"]["name"] == full]
    assert len(matches) == 1, f"expected one {kind} {full}, found {[m['metadata']['name'] for m in matches]}"
    return matches[0]


def kinds(manifests: list[Manifest]) -> set[tuple[str, str]]:
    """(kind, name) of every manifest."""
    return {(m["kind"], m["metadata"]["name"]) for m in manifests}


def container(deployment: Manifest) -> Manifest:
    """The Deployment's only container."""
    containers = deployment["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def pod_labels(deployment: Manifest) -> dict[str, str]:
    """The labels of the Deployment's pods."""
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Whether a matchLabels selector selects pods with these labels."""
    return all(labels.get(k) == v for k, v in selector.items())


def environment(manifests: list[Manifest], deployment: Manifest, secrets: Mapping[str, str]) -> dict[str, str]:
    """The orchestrator container's environment as Kubernetes would resolve it.

    Values from ConfigMaps are read from the rendered ConfigMaps; values from Secrets come from
    `secrets` ("secret/key" → value), since the chart renders no Secret.
    """
    env: dict[str, str] = {}
    for var in container(deployment).get("env", []):
        if "value" in var:
            env[var["name"]] = var["value"]
            continue
        source = var["valueFrom"]
        if "configMapKeyRef" in source:
            ref = source["configMapKeyRef"]
            config_map = next(m for m in manifests if m["kind"] == "ConfigMap" and m["metadata"]["name"] == ref["name"])
            env[var["name"]] = config_map["data"][ref["key"]]
        else:
            ref = source["secretKeyRef"]
            env[var["name"]] = secrets[f"{ref['name']}/{ref['key']}"]
    return env


def expand(args: list[str], env: Mapping[str, str]) -> list[str]:
    """Expands $(NAME) in container args as the kubelet does (unknown names stay as written)."""
    return [re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env.get(m[1], m[0]), a) for a in args]
