"""The seed's REST API through the real Envoy that `baton serve --http` runs: curl-like HTTP and grpcurl.

One `baton serve --http 127.0.0.1:0` process (and so one Envoy) serves the whole module.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import free_port, output_of, spawn, wait_for_line
from tests.e2e.envoy_support import alive, call, stream_lines, wait_until_gone
from tests.e2e.test_grpcurl import grpcurl

SEED_STATUS_KEYS = {
    "execution_id",
    "status",
    "progress",
    "current_step",
    "estimated_completion",
    "quality_score",
    "sequence",
    "failure_reason",
    "heartbeat",
}


@dataclass(frozen=True)
class Served:
    """A `baton serve --http` process."""

    process: subprocess.Popen[str]
    grpc: str
    """The server's own gRPC HOST:PORT."""
    http: str
    """Envoy's HOST:PORT (REST and gRPC)."""
    envoy_pid: int

    def url(self, path: str) -> str:
        return f"http://{self.http}{path}"


def serve_with_http(tmp_path: Path, *extra: str) -> Served:
    """Starts `baton serve --http 127.0.0.1:0` and waits until it prints the REST address."""
    proc = spawn(
        "-m",
        "server.cli",
        "serve",
        "--listen",
        f"127.0.0.1:{free_port()}",
        "--store",
        f"sqlite:///{tmp_path / 'baton.db'}",
        "--http",
        "127.0.0.1:0",
        *extra,
    )
    try:
        rest = wait_for_line(proc, "baton REST API on http://")
    except AssertionError:
        proc.kill()
        raise
    found = re.search(r"http://(\S+) \(Envoy pid (\d+)\)", rest)
    assert found, rest
    grpc_address = wait_for_line(proc, "baton serving on").rsplit(" ", 1)[1]
    return Served(proc, grpc_address, found[1], int(found[2]))


def stop(served: Served) -> None:
    if served.process.poll() is None:
        served.process.send_signal(signal.SIGTERM)
        try:
            served.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            served.process.kill()
            served.process.wait(timeout=10)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    running = serve_with_http(tmp_path_factory.mktemp("rest"))
    try:
        yield running
    finally:
        stop(running)


def _execute(served: Served, body: dict[str, object]) -> dict[str, object]:
    status, reply = call("POST", served.url("/api/v1/orchestration/execute"), body)
    assert status == 200, (reply, output_of(served.process))
    assert isinstance(reply, dict)
    return reply


def test_execute_then_status_in_the_seeds_shape_reaching_completed(served: Served) -> None:
    execution = _execute(
        served,
        {
            "workflow_type": "job_search",
            "user_context": {"user_id": "rest-user", "location": "Berlin"},
            "execution_options": {"priority": "high", "quality_level": "balanced", "timeout": "5m"},
        },
    )
    assert execution["status"] == "queued" and execution["created"] is True
    execution_id = execution["execution_id"]
    assert isinstance(execution_id, str) and execution_id
    # The seed watch ends after the terminal status: when it has, the execution has ended.
    last = list(stream_lines(served.http, f"/api/v1/orchestration/status/{execution_id}/watch"))[-1]
    assert last["status"] == "completed"
    status, seed = call("GET", served.url(f"/api/v1/orchestration/status/{execution_id}"))
    assert status == 200
    assert set(seed) == SEED_STATUS_KEYS
    assert (seed["execution_id"], seed["status"], seed["progress"], seed["current_step"]) == (
        execution_id,
        "completed",
        100,
        "",
    )
    assert 0 < seed["quality_score"] <= 100
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", seed["estimated_completion"])


def test_health_says_healthy_with_zeros_printed(served: Served) -> None:
    status, health = call("GET", served.url("/api/v1/orchestration/health"))
    assert status == 200
    assert health["overall_health"] == "healthy"
    assert health["queue_depth"] == 0  # printed although zero
    assert isinstance(health["active_workflows"], int)  # a JSON number, not proto JSON's int64 string
    assert health["resource_utilization"]["network"] == 0
    assert len(health["agent_statuses"]) == 7
    for agent in health["agent_statuses"].values():
        assert agent["status"] == "healthy"
        assert {"load", "response_time", "error_rate", "queue_depth", "metrics"} <= set(agent)


def test_the_watch_streams_over_http_while_the_execution_runs(served: Served) -> None:
    # A manual user's application run waits for approval: the stream must deliver what happened
    # so far while the execution is still waiting, then go on after the approval.
    execution_id = _execute(
        served,
        {
            "workflow_type": "application",
            "user_context": {
                "user_id": "watcher",
                "journey_context": {"user_preferences": {"automation_level": "manual"}},
            },
        },
    )["execution_id"]
    updates = stream_lines(served.http, f"/api/v1/orchestration/status/{execution_id}/watch")
    seen = []
    for update in updates:
        seen.append(update)
        if update["current_step"] == "Approve the applications":
            break
    assert seen[-1]["status"] == "running"  # received before the execution could end
    status, signalled = call(
        "POST", served.url(f"/api/v1/orchestration/signal/{execution_id}"), {"signal": "SIGNAL_APPROVE"}
    )
    assert status == 200, signalled
    seen += list(updates)
    assert [int(u["sequence"]) for u in seen] == list(range(1, len(seen) + 1))
    assert seen[-1]["status"] == "completed" and seen[-1]["progress"] == 100


def test_the_rich_watch_streams_any_payloads_and_the_request_kept_the_seeds_words(served: Served) -> None:
    execution_id = _execute(
        served,
        {
            "workflow_type": "job_search",
            "user_context": {"user_id": "rich", "favourite_board": "indeed", "journey_type": "job_search"},
            "execution_options": {"priority": "critical", "timeout": "1h30m", "quality_level": "THOROUGH"},
        },
    )["execution_id"]
    updates = list(stream_lines(served.http, f"/api/v1/orchestration/watch/{execution_id}"))
    started = updates[0]["event"]["execution_started"]
    assert started["user_context"]["data"] == {"favourite_board": "indeed"}
    assert started["user_context"]["journey_type"] == "JOURNEY_TYPE_JOB_SEARCH"
    assert started["execution_options"] == {
        "priority": "PRIORITY_CRITICAL",
        "timeout": "5400s",
        "quality_level": "QUALITY_LEVEL_THOROUGH",
    }
    outputs = [u["event"]["step_succeeded"]["output"] for u in updates if "step_succeeded" in u["event"]]
    assert "type.googleapis.com/baton.v1.SearchJobsResponse" in {o["@type"] for o in outputs}
    assert updates[-1]["status"]["status"] == "EXECUTION_STATE_COMPLETED"


def _body(**options: str) -> dict[str, object]:
    return {"workflow_type": "job_search", "user_context": {"user_id": "u"}, "execution_options": options}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (_body(quality_level="best"), "execution_options.quality_level"),
        (_body(timeout="5 minutes"), "execution_options.timeout"),
        (_body(timeout="48h"), "execution_options.timeout"),
        ({"workflow_type": "job_search", "user_context": {"session_id": "s"}}, "user_context.user_id"),
        ({"workflow_type": "nope", "user_context": {"user_id": "u"}}, "workflow_type"),
    ],
)
def test_bad_input_is_400_with_a_message_naming_the_field(served: Served, body: dict[str, object], field: str) -> None:
    status, error = call("POST", served.url("/api/v1/orchestration/execute"), body)
    assert status == 400
    assert error["code"] == 3 and error["message"].startswith(f"{field}:"), error


def test_the_rerun_path_reaches_rerun_execution(served: Served) -> None:
    status, error = call("POST", served.url("/api/v1/orchestration/rerun/no-such-execution"), {"reason": "again"})
    assert (status, error["code"]) == (404, 5), error
    assert error["message"].startswith("execution_id: "), error


def test_an_unknown_execution_is_404_and_an_unknown_path_too(served: Served) -> None:
    status, error = call("GET", served.url("/api/v1/orchestration/status/no-such-execution"))
    assert (status, error["code"]) == (404, 5)
    assert "no-such-execution" in error["message"]
    assert call("GET", served.url("/api/v1/orchestration/nothing-here"))[0] == 404


def test_grpcurl_through_envoy_lists_the_services_and_runs_a_workflow_to_the_end(served: Served) -> None:
    listed = grpcurl(served.http, "list")
    assert listed.returncode == 0, listed.stderr
    assert {"baton.v1.Orchestrator", "baton.v1.SeedApi", "grpc.health.v1.Health"} <= set(listed.stdout.split())
    executed = grpcurl(
        served.http,
        "baton.v1.Orchestrator/ExecuteWorkflow",
        data={"workflow_type": "job_search", "user_context": {"user_id": "grpcurl-user"}},
    )
    assert executed.returncode == 0, executed.stderr
    execution_id = json.loads(executed.stdout)["execution_id"]
    watched = grpcurl(served.http, "baton.v1.Orchestrator/WatchExecution", data={"execution_id": execution_id})
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.rstrip().endswith("}") and '"EXECUTION_STATE_COMPLETED"' in watched.stdout
    seed = grpcurl(served.http, "baton.v1.SeedApi/GetStatus", data={"execution_id": execution_id})
    assert json.loads(seed.stdout)["status"] == "completed"


def test_sigterm_stops_envoy_with_the_server(tmp_path: Path) -> None:
    served = serve_with_http(tmp_path)
    try:
        assert alive(served.envoy_pid)
        served.process.send_signal(signal.SIGTERM)
        assert served.process.wait(timeout=20) == 0, output_of(served.process)
        assert wait_until_gone(served.envoy_pid)
    finally:
        stop(served)


def test_envoy_does_not_outlive_a_killed_server(tmp_path: Path) -> None:
    served = serve_with_http(tmp_path)
    try:
        served.process.kill()  # SIGKILL: no handler, no cleanup code runs
        served.process.wait(timeout=10)
        assert wait_until_gone(served.envoy_pid)
    finally:
        stop(served)


def test_a_taken_http_port_fails_the_server_with_envoys_reason(tmp_path: Path) -> None:
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = spawn(
            "-m", "server.cli", "serve", "--listen", "127.0.0.1:0",
            "--store", f"sqlite:///{tmp_path / 'baton.db'}", "--http", f"127.0.0.1:{port}",
        )  # fmt: skip
        try:
            assert proc.wait(timeout=30) == 1
        finally:
            if proc.poll() is None:
                proc.kill()
    output = output_of(proc)
    assert "Envoy exited" in output and f"127.0.0.1:{port}" in output, output
    assert not re.search(r"^baton serving on", output, re.MULTILINE)  # never announced as serving


def test_http_on_a_host_name_is_a_usage_error() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "server.cli", "serve", "--http", "example.com:8080"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "http: the host must be an IP address" in result.stderr
