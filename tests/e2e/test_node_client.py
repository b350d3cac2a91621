"""The Node.js client (tests/e2e/node, grpc-js + proto-loader) against a real `baton serve`: `node --test` passes."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import ROOT, output_of, serve_orchestrator
from tests.e2e.node_support import NODE_PACKAGE, executable, googleapis_protos, node_modules

pytestmark = pytest.mark.timeout(420)

NODE_TEST_TIMEOUT = 120.0
"""Seconds the whole `node --test` run may take (about 3 s here)."""


def test_the_node_client_submits_watches_with_resume_approves_and_reads_results(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    node_modules()
    server, address = serve_orchestrator(processes, tmp_path / "baton.db")
    files = sorted(p.name for p in NODE_PACKAGE.glob("*.test.js"))
    assert {"pitfalls.test.js", "workflow.test.js", "example.test.js"} <= set(files)
    ran = subprocess.run(
        # TAP whatever node's default reporter is, so the counts below can be read.
        [executable("node"), "--test", "--test-reporter=tap", *files],
        cwd=NODE_PACKAGE,
        env={**os.environ, "BATON_TARGET": address, "BATON_GOOGLEAPIS_PROTOS": googleapis_protos()},
        capture_output=True,
        text=True,
        timeout=NODE_TEST_TIMEOUT,
        check=False,
    )
    report = f"{ran.stdout}\n{ran.stderr}\n--- server ---\n{output_of(server)}"
    assert ran.returncode == 0, report
    counts = dict(re.findall(r"^# (tests|pass|fail|cancelled) (\d+)$", ran.stdout, re.MULTILINE))
    assert counts.get("fail") == "0" and counts.get("cancelled") == "0", report
    # Every test ran and passed: none was skipped or filtered out.
    assert int(counts.get("pass", "0")) == int(counts.get("tests", "-1")) >= 9, report


def test_the_readme_shows_the_node_example_that_the_node_tests_run() -> None:
    example = (NODE_PACKAGE / "example.js").read_text()
    body = example[example.index("const { call") :]
    readme = (ROOT / "README.md").read_text()
    assert f"```js\n{body}```" in readme, "README's Node.js example differs from tests/e2e/node/example.js"
