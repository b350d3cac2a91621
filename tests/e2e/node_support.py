"""The Node.js package of the tests (tests/e2e/node): node, its installed modules, and buf from npm."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig
from pathlib import Path

NODE_PACKAGE = Path(__file__).resolve().parent / "node"
"""tests/e2e/node: the Node client, its tests, and the npm packages they use (buf among them)."""

NPM_CI_TIMEOUT = 300.0
"""Seconds `npm ci` may take (about 10 s on a warm npm cache, more on a cold one)."""


def executable(name: str) -> str:
    """The path of `name` on PATH; the test fails (tests/run.sh installs node and npm) when it is missing."""
    found = shutil.which(name)
    assert found, f"{name} is not installed: tests/run.sh installs it (apt-get install nodejs npm)"
    return found


def node_modules() -> Path:
    """tests/e2e/node/node_modules, installed from the committed package-lock.json when missing."""
    modules = NODE_PACKAGE / "node_modules"
    if not (modules / ".package-lock.json").is_file():
        installed = subprocess.run(
            [executable("npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error"],
            cwd=NODE_PACKAGE,
            capture_output=True,
            text=True,
            timeout=NPM_CI_TIMEOUT,
            check=False,
        )
        assert installed.returncode == 0, f"npm ci failed:\n{installed.stdout}\n{installed.stderr}"
    return modules


def googleapis_protos() -> str:
    """The directory holding google/api/annotations.proto: this Python's googleapis-common-protos."""
    return sysconfig.get_paths()["purelib"]


def buf() -> str:
    """The buf binary of the npm package @bufbuild/buf."""
    path = node_modules() / ".bin" / "buf"
    assert path.exists(), f"{path} is missing: is @bufbuild/buf still in tests/e2e/node/package.json?"
    return str(path)
