"""The Python client API (server.client.BatonClient) against `baton serve` processes on loopback:
a watch that survives kill -9, approvals, pause/resume/cancel, paging, step outputs, typed errors,
and the README's example, run as written."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from baton.v1 import (
    automation_pb2,
    document_intelligence_pb2,
    execution_pb2,
    faults_pb2,
    faults_pb2_grpc,
    journey_pb2,
    orchestrator_pb2,
    plan_pb2,
)

from server.client import (
    BatonClient,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    Reconnect,
    RpcError,
    StepResult,
    unpack,
)
from tests.conftest import ROOT, free_port, serve_orchestrator, wait_for_line
from tests.integration.support import w_plan

E = execution_pb2
pytestmark = pytest.mark.timeout(90)


class Orchestrator:
    """`baton serve` with its embedded fleet (FaultInjection on), restartable on the same port and store."""

    def __init__(self, processes: list[subprocess.Popen[str]], store: Path) -> None:
        self.processes = processes
        self.store = store
        self.port = free_port()
        self.proc: subprocess.Popen[str] | None = None
        self.target = ""
        self.fleet = ""

    def start(self) -> Orchestrator:
        self.proc, self.target = serve_orchestrator(self.processes, self.store, "embedded", "--faults", port=self.port)
        line = wait_for_line(self.proc, "reference agents serving on")
        self.fleet = line.split("reference agents serving on ", 1)[1].split()[0]
        return self

    def kill_9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=10)

    async def slow(self, agent: str = "", latency_ms: int = 0) -> None:
        """Sets (or, with 0, clears) an added latency on the fleet's calls."""
        config = faults_pb2.FaultConfig(agent=agent)
        config.latency.FromMilliseconds(latency_ms)
        async with grpc.aio.insecure_channel(self.fleet) as channel:
            await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config, timeout=10)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Orchestrator]:
    """One `baton serve` for the tests that do not kill it."""
    processes: list[subprocess.Popen[str]] = []
    try:
        yield Orchestrator(processes, tmp_path_factory.mktemp("client") / "baton.db").start()
    finally:
        for proc in processes:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=10)


def _manual(user: str) -> dict[str, object]:
    """A user_journey (JSON, proto field names) whose automation level asks for an approval before applying."""
    return {
        "user_id": user,
        "journey_context": {"user_preferences": {"automation_level": "AUTOMATION_LEVEL_MANUAL"}},
    }


async def test_a_watch_resumes_after_kill_9_and_restart_delivering_every_sequence_once_in_order(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server = Orchestrator(processes, tmp_path / "baton.db").start()
    await server.slow(latency_ms=300)  # slow enough that the kill lands mid-run
    notes: list[str] = []
    async with BatonClient(server.target, reconnect=Reconnect(attempts=40)) as client:
        execution = await client.submit(plan=w_plan(), user_id="u-client-kill")
        watch = client.watch(execution.execution_id, on_reconnect=notes.append)
        sequences: list[int] = []
        killed_after = 0
        async for update in watch:
            sequences.append(update.sequence)
            if len(sequences) == 3:
                killed_after = update.sequence
                server.kill_9()
                server.start()  # the same port and store; the restarted fleet has no latency
    final = watch.final
    assert final is not None
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert killed_after == 3
    assert watch.reconnects >= 1 and notes, "the watch never broke"
    assert any("resuming after #" in note for note in notes), notes
    assert sequences == list(range(1, final.last_sequence + 1))
    assert watch.last_sequence == final.last_sequence
    assert {t.step_id: t.status for t in final.performance_metrics.step_timings} == dict.fromkeys(
        "ABCDE", E.STEP_STATE_COMPLETED
    )


async def test_approve_lets_an_execution_waiting_for_approval_go_on_to_completion(server: Orchestrator) -> None:
    async with BatonClient(server.target) as client:
        execution = await client.submit("application_automation", user_context=_manual("u-client-approve"))
        waiting: execution_pb2.ExecutionStatus | None = None
        async for update in client.watch(execution.execution_id, view="events"):
            if update.event.HasField("step_waiting"):
                waiting = update.status if update.HasField("status") else await client.get(execution.execution_id)
                break
        assert waiting is not None, "the execution never waited for approval"
        status = await client.get(execution.execution_id)
        assert [w.step_id for w in status.waiting] == ["approve_applications"]
        approved = await client.approve(execution.execution_id, reason="go")
        assert not approved.waiting
        final = await client.wait(execution.execution_id)
        assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
        assert final.results.primary_outputs  # the terminal update of the states view has the results
        # A map step's output is its items' responses; an approval's is the data it was given.
        submitted = await client.step_output(execution.execution_id, "submit_applications")
        assert submitted.message is None and submitted.items
        assert all(isinstance(item, automation_pb2.SubmitApplicationResponse) for item in submitted.items)
        assert [len(item.applications) for item in submitted.items] == [len(e["applications"]) for e in submitted.json]
        approval = await client.step_output(execution.execution_id, "approve_applications")
        assert approval.message is None and isinstance(approval.json, dict)
        with pytest.raises(FailedPrecondition) as raised:
            await client.approve(execution.execution_id)
        assert raised.value.code == grpc.StatusCode.FAILED_PRECONDITION
        assert execution.execution_id in raised.value.details


async def test_pause_resume_and_cancel_change_the_state_and_the_end(server: Orchestrator) -> None:
    await server.slow("analytics", 400)
    try:
        async with BatonClient(server.target) as client:
            execution = await client.submit(plan=w_plan(), user_id="u-client-pause")
            async for update in client.watch(execution.execution_id, view="events"):
                if update.event.HasField("step_started"):
                    break
            paused = await client.pause(execution.execution_id, reason="lunch")
            assert paused.status == E.EXECUTION_STATE_PAUSED
            with pytest.raises(FailedPrecondition):
                await client.pause(execution.execution_id)  # already paused
            resumed = await client.resume(execution.execution_id, reason="back")
            assert resumed.status == E.EXECUTION_STATE_RUNNING
            await client.cancel(execution.execution_id, reason="changed my mind")
            final = await client.wait(execution.execution_id)
            assert final.status == E.EXECUTION_STATE_CANCELLED
            kinds = [u.event.WhichOneof("kind") async for u in client.watch(execution.execution_id, view="events")]
            assert kinds.index("execution_paused") < kinds.index("execution_resumed")
            assert kinds[-1] == "execution_cancelled"
            with pytest.raises(FailedPrecondition):
                await client.resume(execution.execution_id)  # it has ended
    finally:
        await server.slow("analytics", 0)


async def test_list_pages_through_every_execution_of_a_user_and_single_pages_carry_a_token(
    server: Orchestrator,
) -> None:
    user = "u-client-list"
    async with BatonClient(server.target) as client:
        submitted = [(await client.submit(plan=w_plan(), user_id=user)).execution_id for _ in range(5)]
        for execution_id in submitted:
            assert (await client.wait(execution_id)).status == E.EXECUTION_STATE_COMPLETED
        first = await client.list_page(user_id=user, page_size=2)
        assert len(first.executions) == 2 and first.next_page_token
        listed = [s.execution_id async for s in client.list(user_id=user, page_size=2)]
        assert sorted(listed) == sorted(submitted)
        assert listed[:2] == [s.execution_id for s in first.executions]  # newest first, page after page
        assert [s async for s in client.list(user_id=user, states=[E.EXECUTION_STATE_FAILED])] == []
        assert [s.execution_id async for s in client.list(user_id="u-client-nobody")] == []


async def test_step_output_decodes_into_the_agents_response_message(server: Orchestrator) -> None:
    async with BatonClient(server.target) as client:
        execution = await client.submit("document_analysis", user_id="u-client-output")
        final = await client.wait(execution.execution_id)
        assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
        result = await client.step_output(execution.execution_id, "analyze_resume")
        events = await client.history(execution.execution_id)
    assert [e.sequence for e in events] == list(range(1, final.last_sequence + 1))
    assert isinstance(result, StepResult)
    assert isinstance(result.message, document_intelligence_pb2.AnalyzeDocumentResponse)
    assert result.message.ListFields(), "the decoded response is empty"
    # The message holds what the JSON holds, and what the event recorded (an Any, unpacked).
    assert result.json["document_id"] == result.message.document_id
    recorded = [e.step_succeeded.output for e in events if e.step_succeeded.step_id == "analyze_resume"]
    assert unpack(recorded[0]) == result.message


async def test_bad_requests_raise_typed_errors_with_the_status_code_and_details(server: Orchestrator) -> None:
    async with BatonClient(server.target) as client:
        with pytest.raises(InvalidArgument) as bad_type:
            await client.submit("nope", user_id="u-client-bad")
        assert bad_type.value.code == grpc.StatusCode.INVALID_ARGUMENT
        assert "workflow_type" in bad_type.value.details
        assert str(bad_type.value).startswith("INVALID_ARGUMENT: workflow_type")
        with pytest.raises(InvalidArgument, match="page_size"):
            await client.list_page(page_size=5000)
        with pytest.raises(NotFound) as missing:
            await client.get("no-such-execution")
        assert missing.value.code == grpc.StatusCode.NOT_FOUND
        with pytest.raises(NotFound):
            [u async for u in client.watch("no-such-execution")]
        execution = await client.submit(plan=w_plan(), user_id="u-client-bad")
        await client.wait(execution.execution_id)
        with pytest.raises(NotFound, match="step_id"):
            await client.step_output(execution.execution_id, "no_such_step")
        with pytest.raises(RpcError):  # every typed error is an RpcError
            await client.signal(execution.execution_id, "approve")


async def test_a_submit_with_the_same_request_id_returns_the_same_execution(server: Orchestrator) -> None:
    async with BatonClient(server.target) as client:
        first = await client.submit(plan=w_plan(), user_id="u-client-idem", request_id="req-1")
        again = await client.submit(plan=w_plan(), user_id="u-client-idem", request_id="req-1")
        fresh = await client.submit(plan=w_plan(), user_id="u-client-idem")  # a fresh request_id of its own
        assert first.created and not again.created
        assert again.execution_id == first.execution_id
        assert fresh.execution_id != first.execution_id
        request = orchestrator_pb2.ExecuteWorkflowRequest(plan=w_plan())
        request.user_context.user_id = "u-client-idem"
        await client.submit(request)
        assert request.request_id == "", "submit changed the caller's request"
        for execution_id in (first.execution_id, fresh.execution_id):
            await client.wait(execution_id)


async def test_plan_and_health_answer_typed_messages(server: Orchestrator) -> None:
    async with BatonClient(server.target) as client:
        plan = await client.plan("document_analysis", user_context=journey_pb2.UserJourney(user_id="u-client-plan"))
        assert isinstance(plan, plan_pb2.OrchestrationPlan)
        assert "analyze_resume" in [s.step_id for s in plan.workflow_steps]
        health = await client.health()
        assert set(health.agent_statuses) >= {"analytics", "automation"}


async def test_a_raw_watch_yields_undecoded_updates_and_its_final_status(server: Orchestrator) -> None:
    async with BatonClient(server.target) as client:
        execution = await client.submit(plan=w_plan(), user_id="u-client-raw")
        watch = client.watch_raw(execution.execution_id, view="states")
        raw = [item async for item in watch]
    assert all(isinstance(item, bytes) for item in raw)
    decoded = [orchestrator_pb2.ExecutionUpdate.FromString(item) for item in raw]
    assert watch.final is not None and watch.final.status == E.EXECUTION_STATE_COMPLETED
    assert decoded[-1].status == watch.final
    assert watch.last_sequence == watch.final.last_sequence


def _readme_example() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Python client", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    assert blocks, "the README's Python client section has no ```python block"
    return str(blocks[0])


def test_the_readmes_python_client_example_runs_as_written(server: Orchestrator) -> None:
    code = _readme_example()
    assert "127.0.0.1:50051" in code
    proc = subprocess.run(
        [sys.executable, "-c", code.replace("127.0.0.1:50051", server.target)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0] == "1 execution_started"
    assert lines[-2].startswith("AnalyzeDocumentResponse ")
    assert lines[-1].endswith(" EXECUTION_STATE_COMPLETED")


def test_the_client_package_imports_without_the_cli() -> None:
    # Users import server.client alone; it must not drag in the CLI (rich, argparse commands).
    code = "import sys, server.client; print(any(m.split('.')[:2] == ['server', 'cli'] for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
