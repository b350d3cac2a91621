"""The baton CLI against real orchestrators on loopback: demo, run, watch, status, plan, health, controls."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import grpc
import pytest
from baton.v1 import (
    automation_pb2,
    automation_pb2_grpc,
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    journey_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
)
from google.protobuf import duration_pb2

from server.app import RunningServer, start_server
from server.cli import follow
from server.client import BatonClient
from server.config import ServerConfig
from tests.conftest import serve_orchestrator

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]
AGENTS = {
    "document_intelligence",
    "job_discovery",
    "matching_intelligence",
    "automation",
    "ui_ux",
    "analytics",
    "security",
}
CLI_TIMEOUT = 60.0


def _env() -> dict[str, str]:
    # A narrow terminal would wrap tables; the CLI is not on a terminal here anyway.
    return {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200"}


async def baton(*args: str) -> subprocess.CompletedProcess[str]:
    """Runs `python -m server.cli ARGS` without blocking the event loop the test's server runs on."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *args,
        cwd=ROOT,
        env=_env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), CLI_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return subprocess.CompletedProcess(list(args), proc.returncode, out.decode(), err.decode())


async def completed_execution(address: str, workflow_type: str = "document_analysis", user: str = "u-cli") -> str:
    """Submits a workflow over gRPC and waits for its end; returns its id."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(
            orchestrator_pb2.ExecuteWorkflowRequest(
                workflow_type=workflow_type, user_context=journey_pb2.UserJourney(user_id=user)
            ),
            timeout=10,
        )
        async for update in stub.WatchExecution(
            orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id), timeout=30
        ):
            if update.status.status == execution_pb2.EXECUTION_STATE_COMPLETED:
                break
        return str(execution.execution_id)


def test_demo_exits_zero_and_prints_the_matched_jobs_and_the_applications_made() -> None:
    script = Path(sys.executable).with_name("baton")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]
    result = subprocess.run(
        [*command, "demo", "--latency", "0"],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Resume analysis" in out
    assert "Top matches" in out
    assert "Applications (" in out
    assert "submitted" in out
    assert "execution completed" in out
    assert "transport     plaintext on loopback only" in out  # the demo says how it is (not) secured
    assert "Traceback" not in result.stderr


async def test_run_exits_zero_when_the_document_analysis_workflow_completes(orchestrator: RunningServer) -> None:
    result = await baton("run", "document_analysis", "--user", "u-run", "--target", orchestrator.address)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    # Off a terminal, one plain line per update, in sequence order from #1.
    assert lines[0].startswith("#1 execution started")
    assert any("execution completed" in line for line in lines)
    assert "completed in" in lines[-1]


async def test_run_exits_two_and_names_workflow_type_for_an_unknown_workflow(orchestrator: RunningServer) -> None:
    result = await baton("run", "no_such_workflow", "--target", orchestrator.address)
    assert result.returncode == 2
    assert result.stderr.startswith("error: INVALID_ARGUMENT: ")
    assert "workflow_type" in result.stderr
    assert "Traceback" not in result.stderr


async def test_run_reads_a_wrapped_user_journey_with_seed_enum_spellings(
    orchestrator: RunningServer, tmp_path: Path
) -> None:
    context = tmp_path / "journey.json"
    context.write_text(
        json.dumps(
            {
                "user_journey": {
                    "user_id": "u-from-file",
                    "journey_context": {
                        "urgency_level": "high",
                        "user_preferences": {"automation_level": "AUTOMATION_LEVEL_FULLY_AUTOMATIC"},
                    },
                }
            }
        )
    )
    result = await baton(
        "plan", "document_analysis", "--context", str(context), "--json", "--target", orchestrator.address
    )
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    assert plan["user_id"] == "u-from-file"
    assert plan["execution_strategy"]["priority"] == "PRIORITY_HIGH"


async def test_a_context_file_that_is_not_a_user_journey_is_bad_usage(tmp_path: Path) -> None:
    context = tmp_path / "bad.json"
    context.write_text(json.dumps({"user_id": "u1", "no_such_field": 1}))
    result = await baton("run", "document_analysis", "--context", str(context), "--target", "127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith(f"error: --context {context}")


async def test_status_prints_a_summary_and_parseable_json(orchestrator: RunningServer) -> None:
    execution_id = await completed_execution(orchestrator.address)

    summary = await baton("status", execution_id, "--target", orchestrator.address)
    assert summary.returncode == 0, summary.stderr
    assert execution_id in summary.stdout
    assert "completed" in summary.stdout
    assert "analyze_resume" in summary.stdout

    raw = await baton("status", execution_id, "--json", "--target", orchestrator.address)
    assert raw.returncode == 0, raw.stderr
    status = json.loads(raw.stdout)
    assert status["execution_id"] == execution_id
    assert status["status"] == "EXECUTION_STATE_COMPLETED"
    assert "analyze_resume" in {**status["results"]["primary_outputs"], **status["results"]["intermediate_results"]}


async def test_status_of_an_unknown_execution_prints_not_found_without_a_traceback(
    orchestrator: RunningServer,
) -> None:
    result = await baton("status", "no-such-execution", "--target", orchestrator.address)
    assert result.returncode == 1
    assert result.stderr.startswith("error: NOT_FOUND: ")
    assert "Traceback" not in result.stderr


async def test_plan_json_prints_a_parseable_plan_and_the_table_names_every_step(orchestrator: RunningServer) -> None:
    raw = await baton("plan", "application_automation", "--user", "u-plan", "--json", "--target", orchestrator.address)
    assert raw.returncode == 0, raw.stderr
    plan = json.loads(raw.stdout)
    assert plan["workflow_type"] == "application_automation"
    steps = plan["workflow_steps"]
    assert steps
    assert all(step["agent"] and step["operation"] for step in steps)

    table = await baton("plan", "application_automation", "--user", "u-plan", "--target", orchestrator.address)
    assert table.returncode == 0, table.stderr
    for step in steps:
        assert step["step_id"] in table.stdout
        assert f"{step['agent']}.{step['operation']}" in table.stdout
    # The submission is a map step: the table says how it runs.
    assert (
        "submit_applications runs once per item of ${steps.score_matches.matches[:3].job_id}"
        " (3 at a time, a failed item skipped)" in table.stdout
    )


async def test_health_lists_the_seven_agents(orchestrator: RunningServer) -> None:
    table = await baton("health", "--target", orchestrator.address)
    assert table.returncode == 0, table.stderr
    for agent in AGENTS:
        assert agent in table.stdout

    raw = await baton("health", "--json", "--target", orchestrator.address)
    assert raw.returncode == 0, raw.stderr
    assert set(json.loads(raw.stdout)["agent_statuses"]) == AGENTS


async def test_watch_after_a_sequence_shows_only_the_later_events(orchestrator: RunningServer) -> None:
    execution_id = await completed_execution(orchestrator.address)
    result = await baton("watch", execution_id, "--after", "3", "--target", orchestrator.address)
    assert result.returncode == 0, result.stderr
    events = [line for line in result.stdout.splitlines() if line.startswith("#")]
    assert events[0].startswith("#4 ")
    assert "execution completed" in events[-1]


async def test_an_unreachable_server_is_an_error_without_a_traceback() -> None:
    result = await baton("health", "--target", "127.0.0.1:1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: UNAVAILABLE: ")
    assert "Traceback" not in result.stderr


async def test_a_watch_resumes_after_the_last_sequence_seen_when_the_server_restarts(tmp_path: Path) -> None:
    config = ServerConfig(
        listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded", agent_faults=True
    )
    first = await start_server(config)
    second: RunningServer | None = None
    try:
        fleet_address = first.fleet.address  # type: ignore[union-attr]
        async with grpc.aio.insecure_channel(fleet_address) as channel:
            latency = duration_pb2.Duration()
            latency.FromMilliseconds(300)
            await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults_pb2.FaultConfig(latency=latency))
        updates: list[orchestrator_pb2.ExecutionUpdate] = []
        notes: list[str] = []
        under_way = asyncio.Event()

        def on_update(update: orchestrator_pb2.ExecutionUpdate) -> None:
            updates.append(update)
            if len(updates) >= 3:
                under_way.set()

        async with BatonClient(first.address) as client:
            execution = await client.submit("document_analysis", user_id="u-resume")
            watching = asyncio.create_task(
                follow(client, execution.execution_id, on_update=on_update, on_note=notes.append)
            )
            await asyncio.wait_for(under_way.wait(), 30)
            await first.stop(0.2)
            second = await start_server(dataclasses.replace(config, listen=first.address))
            final = await asyncio.wait_for(watching, 60)
        assert final.status == execution_pb2.EXECUTION_STATE_COMPLETED
        assert notes, "the watch never broke"
        sequences = [u.sequence for u in updates]
        assert sequences == list(range(1, len(sequences) + 1))
        assert sequences[-1] == final.last_sequence
    finally:
        await first.stop(0.2)
        if second is not None:
            await second.stop(0.2)


# ---- approvals, pause, resume, cancel ----------------------------------------------------------


async def _slow_fleet(orchestrator: RunningServer, latency_ms: int) -> None:
    assert orchestrator.fleet is not None
    latency = duration_pb2.Duration()
    latency.FromMilliseconds(latency_ms)
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:  # type: ignore[attr-defined]
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(faults_pb2.FaultConfig(latency=latency))


async def _running_execution(address: str) -> str:
    """Submits a document analysis and returns its id once its first step has started."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        execution = await stub.ExecuteWorkflow(
            orchestrator_pb2.ExecuteWorkflowRequest(
                workflow_type="document_analysis", user_context=journey_pb2.UserJourney(user_id="u-control")
            ),
            timeout=10,
        )
        async for update in stub.WatchExecution(
            orchestrator_pb2.WatchExecutionRequest(execution_id=execution.execution_id), timeout=30
        ):
            if update.event.HasField("step_started"):
                break
        return str(execution.execution_id)


async def test_cancel_prints_the_resulting_state_in_one_line(orchestrator: RunningServer) -> None:
    await _slow_fleet(orchestrator, 2000)
    execution_id = await _running_execution(orchestrator.address)
    result = await baton("cancel", execution_id, "--reason", "changed my mind", "--target", orchestrator.address)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"cancelled: execution {execution_id} ")
    assert lines[0].split()[3] in ("cancelled", "compensating")


async def test_a_control_whose_reason_is_too_long_exits_two_naming_reason(orchestrator: RunningServer) -> None:
    result = await baton("pause", "some-id", "--reason", "r" * 1025, "--target", orchestrator.address)
    assert result.returncode == 2
    assert result.stderr.startswith("error: INVALID_ARGUMENT: reason: ")


async def test_a_payload_that_is_not_json_exits_two_before_calling_the_server() -> None:
    result = await baton("approve", "some-id", "--payload", "{job_ids: 1", "--target", "127.0.0.1:1")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --payload: not JSON")
    assert "Traceback" not in result.stderr


async def test_pausing_a_completed_execution_exits_one_with_failed_precondition(orchestrator: RunningServer) -> None:
    execution_id = await completed_execution(orchestrator.address)
    result = await baton("pause", execution_id, "--target", orchestrator.address)
    assert result.returncode == 1
    assert result.stderr.startswith("error: FAILED_PRECONDITION: ")
    assert "completed" in result.stderr


async def test_pause_and_resume_print_the_state_they_leave(orchestrator: RunningServer) -> None:
    # Slow enough that the run is still going when `baton pause` has started as a process, on a
    # loaded machine too (at 300 ms a step it sometimes had ended: FAILED_PRECONDITION).
    await _slow_fleet(orchestrator, 1500)
    execution_id = await _running_execution(orchestrator.address)
    paused = await baton("pause", execution_id, "--target", orchestrator.address)
    assert paused.returncode == 0, paused.stderr
    assert paused.stdout.strip() == f"paused: execution {execution_id} paused"
    resumed = await baton("resume", execution_id, "--target", orchestrator.address)
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == f"resumed: execution {execution_id} running"
    watched = await baton("watch", execution_id, "--target", orchestrator.address)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    assert "execution paused" in watched.stdout
    assert "execution resumed" in watched.stdout


class _Run:
    """`baton run` as a child process whose output is read line by line as it comes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []

    @classmethod
    async def start(cls, *args: str) -> _Run:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "server.cli",
            *args,
            cwd=ROOT,
            env=_env(),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc)

    async def line_starting(self, prefix: str) -> str:
        """Reads until a line starts with `prefix` (after indentation) and returns it."""

        async def read() -> str:
            assert self.proc.stdout is not None
            while raw := await self.proc.stdout.readline():
                self.lines.append(raw.decode().rstrip())
                if self.lines[-1].strip().startswith(prefix):
                    return self.lines[-1].strip()
            raise AssertionError(f"no line starting with {prefix!r}:\n" + "\n".join(self.lines))

        return await asyncio.wait_for(read(), CLI_TIMEOUT)

    async def end(self) -> tuple[int, str]:
        """Waits for the process to end; returns its exit status and everything it printed."""
        assert self.proc.stdout is not None
        rest = await asyncio.wait_for(self.proc.stdout.read(), CLI_TIMEOUT)
        await self.proc.wait()
        assert self.proc.returncode is not None
        return self.proc.returncode, "\n".join([*self.lines, rest.decode()])

    def kill(self) -> None:
        if self.proc.returncode is None:
            self.proc.kill()


def _manual_context(tmp_path: Path, user: str) -> Path:
    context = tmp_path / "manual.json"
    context.write_text(
        json.dumps({"user_id": user, "journey_context": {"user_preferences": {"automation_level": "manual"}}})
    )
    return context


async def test_a_manual_application_waits_showing_its_jobs_until_approved_from_another_shell(
    orchestrator: RunningServer, tmp_path: Path
) -> None:
    context = _manual_context(tmp_path, "u-manual")
    run = await _Run.start("run", "application", "--context", str(context), "--target", orchestrator.address)
    try:
        await run.line_starting("waiting for approval")
        approve = shlex.split(await run.line_starting("baton approve"))
        assert approve[:2] == ["baton", "approve"]
        assert approve[-2:] == ["--target", orchestrator.address]
        shown = "\n".join(run.lines)
        assert "job-" in shown

        status = await baton("status", approve[2], "--target", orchestrator.address)
        assert status.returncode == 0, status.stderr
        assert "waiting for approval" in status.stdout

        approved = await baton(*approve[1:])
        assert approved.returncode == 0, approved.stderr
        assert approved.stdout.startswith(f"approved: execution {approve[2]} ")
        code, out = await run.end()
    finally:
        run.kill()
    assert code == 0, out
    assert "got approve" in out
    assert "execution completed" in out


async def test_a_rejected_manual_application_ends_cancelled_with_nothing_applied(
    orchestrator: RunningServer, tmp_path: Path
) -> None:
    context = _manual_context(tmp_path, "u-reject")
    run = await _Run.start("run", "application", "--context", str(context), "--target", orchestrator.address)
    try:
        reject = shlex.split(await run.line_starting("baton reject"))
        rejected = await baton(*reject[1:])
        assert rejected.returncode == 0, rejected.stderr
        code, out = await run.end()
    finally:
        run.kill()
    assert code == 1
    assert "cancelled" in out.splitlines()[-2] + out.splitlines()[-1]
    async with grpc.aio.insecure_channel(orchestrator.fleet.address) as channel:  # type: ignore[union-attr]
        listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
            automation_pb2.ListApplicationsRequest(user_id="u-reject")
        )
    assert all(a.state != automation_pb2.APPLICATION_STATE_SUBMITTED for a in listed.applications)


def _demo(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", "demo", "--latency", "0", *args],
        cwd=ROOT,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT,
        check=False,
    )


def _handling_summary(out: str) -> dict[str, list[str]]:
    """The demo's closing summary, row by row (a row's continuation lines under it); asserts it ends the output."""
    tail = out[out.index("How failures were handled") :].splitlines()[1:]
    rows: dict[str, list[str]] = {}
    row = ""
    for line in tail:
        if not line.strip():
            break
        if not line.startswith(" "):
            row, _, value = line.partition("  ")
            rows[row] = [value.strip()]
        else:
            rows[row].append(line.strip())
    # After the summary only the execution's one-line outcome (and its reason) follows.
    rest = [line for line in tail[tail.index("") :] if line.strip()] if "" in tail else []
    assert rest, out
    assert rest[0].startswith("execution "), rest
    assert all(line.startswith("reason: ") for line in rest[1:]), rest
    return rows


def _fallen_back_steps(rows: dict[str, list[str]]) -> int:
    count = int(rows["fallbacks"][0].split()[0])
    assert count == len({line.split()[0] for line in rows["fallbacks"][1:]}), rows["fallbacks"]
    return count


def test_demo_with_an_error_rate_ends_with_how_failures_were_handled() -> None:
    result = _demo("--error-rate", "0.3", "--seed", "7")
    assert result.returncode in (0, 1), result.stdout + result.stderr
    out = result.stdout
    assert "faults        30% of agent calls fail with UNAVAILABLE (seed 7)" in out
    rows = _handling_summary(out)
    # A capacity row follows when the demo's rate limits held a quick retry (issue 11.2).
    assert [r for r in rows if r != "capacity"] == ["retries", "breaker trips", "fallbacks", "compensations", "outcome"]
    retried = int(rows["retries"][0].split()[0])
    assert retried > 0, rows["retries"]
    # Each step's line says how many of its attempts were retried; they add up to the total.
    assert retried == sum(int(line.split(": ")[1].split()[0]) for line in rows["retries"][1:])
    _fallen_back_steps(rows)
    assert rows["outcome"][0] == "completed" if result.returncode == 0 else rows["outcome"][0].startswith("failed")
    assert "Traceback" not in result.stderr


def test_demo_whose_notification_fails_withdraws_its_applications_and_says_so_at_the_end() -> None:
    result = _demo("--error-rate", "0.3", "--seed", "7", "--fail-notify")
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "execution unwinding before it ends failed (step failed): step notify_user failed: INTERNAL" in out
    applications = out[out.index("Applications (") : out.index("How failures were handled")].splitlines()[2:]
    states = {line.split()[1] for line in applications if line.strip()}
    assert states == {"withdrawn"}, applications
    rows = _handling_summary(out)
    # One effect per submitted job (the submit step is a map step), each undone on its own.
    assert rows["compensations"][0] == "3 effects to undo"
    assert all(
        line.startswith("submit_applications item ") and "by automation.WithdrawApplication: undone" in line
        for line in rows["compensations"][1:]
    )
    assert rows["outcome"][0].startswith("failed (step failed): step notify_user failed: INTERNAL")
    assert "notify_user: 2 retries after 2 INTERNAL" in rows["retries"]
    assert out.rstrip().splitlines()[-1].startswith("reason: step notify_user failed: INTERNAL")
    assert "Traceback" not in result.stderr


async def test_demo_refuses_an_error_rate_outside_zero_to_one() -> None:
    result = await baton("demo", "--error-rate", "1.5")
    assert result.returncode == 2
    assert result.stderr.startswith("error: --error-rate: ")


async def test_serve_as_a_replica_on_a_store_without_leases_is_refused_naming_why(tmp_path: Path) -> None:
    done = await baton("serve", "--listen", "127.0.0.1:0", "--store", f"sqlite:///{tmp_path}/b.db", "--replica", "a")
    assert done.returncode == 2
    assert "replica: replicas need a store with leases (PostgreSQL)" in done.stderr


@pytest.mark.parametrize(
    ("flag", "value", "setting"),
    [
        ("--max-json-depth", "17", "limits.max_json_depth"),
        ("--max-plan-steps", "0", "limits.max_plan_steps"),
        ("--watch-stall", "0", "limits.watch_stall"),
        ("--max-message-bytes", "100", "max_message_bytes"),
        ("--callback-deadline", "31d", "callbacks.deadline"),
        ("--callback-deadline", "tomorrow", "callback_deadline"),
        ("--callback-backoff", "0", "callbacks.backoff"),
        ("--callback-max-backoff", "7200", "callbacks.max_backoff"),
    ],
)
async def test_serve_refuses_a_limit_out_of_range_naming_the_setting(flag: str, value: str, setting: str) -> None:
    result = await baton("serve", "--listen", "127.0.0.1:0", flag, value)
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"error: {setting}: expected" in result.stderr
    assert "Traceback" not in result.stderr


async def test_serve_with_limit_flags_serves_and_applies_them(
    processes: list[subprocess.Popen[str]], tmp_path: Path
) -> None:
    _, target = serve_orchestrator(
        processes, tmp_path / "baton.db", "embedded", "--submissions-per-minute", "1", "--max-watches-per-user", "5"
    )
    async with grpc.aio.insecure_channel(target) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="document_analysis")
        request.user_context.user_id = "u-flags"
        await stub.ExecuteWorkflow(request)
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await stub.ExecuteWorkflow(request)
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert (raised.value.details() or "").startswith("submissions_per_minute: more than 1 submissions a minute")
