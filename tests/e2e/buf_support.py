"""buf (from npm) over baton's contract: lint, breaking changes against the released image, and cutting it.

buf resolves imports within its workspace only, and google/api/annotations.proto is not vendored
(it comes from the Python package googleapis-common-protos, as for protoc). So buf runs in a
workspace made for the purpose: the repository's buf.yaml with one more module, `googleapis`,
holding that package's google/api files, beside the protos to check (the repository's own, or a
changed copy). Its paths mirror the repository's, so buf.yaml's ignore_only entries apply as written.

Run:  python tests/e2e/buf_support.py lint       (buf lint, with buf.yaml's rules and exceptions)
      python tests/e2e/buf_support.py breaking   (buf breaking against protos/released/baton-v1.binpb)
      python tests/e2e/buf_support.py release    (rewrites that image from protos/: at a release)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

if __package__ in (None, ""):  # run as a script: the repository root is two levels up
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.e2e.node_support import buf, googleapis_protos

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"
RELEASED = PROTOS / "released" / "baton-v1.binpb"
"""The contract as last released: a buf image of protos/baton/v1 with its imports, without source info."""

GOOGLEAPIS_FILES = ("google/api/annotations.proto", "google/api/http.proto")
"""What protos/ imports from googleapis (annotations.proto imports http.proto)."""

BUF_TIMEOUT = 120.0
"""Seconds one buf command may take (under a second here)."""


def config() -> dict[str, Any]:
    """The repository's buf.yaml."""
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "buf.yaml").read_text())
    return loaded


def workspace(where: Path, protos: Path = PROTOS, exceptions: bool = True) -> Path:
    """Lays out a buf workspace in `where`: buf.yaml, protos/ (a link to `protos`), googleapis/.

    Args:
        where: an empty directory.
        protos: the protos directory to check (holding baton/v1).
        exceptions: False leaves buf.yaml's lint exceptions (ignore_only) out.

    Returns:
        `where`, to run buf from.
    """
    config = yaml.safe_load((ROOT / "buf.yaml").read_text())
    config["modules"] = [*config["modules"], {"path": "googleapis"}]
    if not exceptions:
        config["lint"].pop("ignore_only", None)
    (where / "buf.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    (where / "protos").symlink_to(protos.resolve(), target_is_directory=True)
    source = Path(googleapis_protos())
    for name in GOOGLEAPIS_FILES:
        target = where / "googleapis" / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.symlink_to(source / name)
    return where


def run_buf(where: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Runs `buf ARGS` in the workspace `where`; never raises on buf's own failure."""
    return subprocess.run([buf(), *args], cwd=where, capture_output=True, text=True, timeout=BUF_TIMEOUT, check=False)


def lint(protos: Path = PROTOS) -> subprocess.CompletedProcess[str]:
    """`buf lint` of the protos module, with buf.yaml's rules and exceptions."""
    with tempfile.TemporaryDirectory(prefix="baton-buf-") as tmp:
        return run_buf(workspace(Path(tmp), protos), "lint", "protos")


def findings_without_exceptions(protos: Path = PROTOS) -> set[tuple[str, str]]:
    """What `buf lint` finds with buf.yaml's exceptions left out: (rule, file) pairs."""
    with tempfile.TemporaryDirectory(prefix="baton-buf-") as tmp:
        linted = run_buf(workspace(Path(tmp), protos, exceptions=False), "lint", "protos", "--error-format=json")
    assert linted.returncode in (0, 100), linted.stderr
    return {(found["type"], found["path"]) for found in map(json.loads, linted.stdout.splitlines())}


def breaking(protos: Path = PROTOS, against: Path = RELEASED) -> subprocess.CompletedProcess[str]:
    """`buf breaking` of the protos module against a released image, with buf.yaml's rules."""
    with tempfile.TemporaryDirectory(prefix="baton-buf-") as tmp:
        return run_buf(workspace(Path(tmp), protos), "breaking", "protos", "--against", str(against.resolve()))


def release(protos: Path = PROTOS, out: Path = RELEASED) -> subprocess.CompletedProcess[str]:
    """Builds the image of the protos module into `out` (the contract as released)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="baton-buf-") as tmp:
        return run_buf(
            workspace(Path(tmp), protos),
            "build",
            "protos",
            "--exclude-source-info",
            "-o",
            str(out.resolve()),
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("command", choices=("lint", "breaking", "release"))
    command = parser.parse_args().command
    done = {"lint": lint, "breaking": breaking, "release": release}[command]()
    sys.stdout.write(done.stdout)
    sys.stderr.write(done.stderr)
    if done.returncode == 0:
        print(f"buf {command}: ok" + (f" ({RELEASED.relative_to(ROOT)})" if command == "release" else ""))
    return done.returncode


if __name__ == "__main__":
    sys.exit(main())
