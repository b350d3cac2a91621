"""RerunExecution over real gRPC: a failed run finished by a rerun, --from, watchers, restarts, errors, CLI.

The reference fleet runs apart from the orchestrator (so a restarted orchestrator finds the same
agents, and their counts), with fault injection: step B (ui_ux.Notify) fails until the fault is
lifted. Calls are counted at the agents: analytics counts each step's RecordEvents under a user of
its own, ui_ux counts every Notify it served (failed or not).
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from pathlib import Path

import grpc
import pytest
from baton.v1 import (
    analytics_pb2,
    analytics_pb2_grpc,
    automation_pb2,
    automation_pb2_grpc,
    common_pb2,
    execution_pb2,
    faults_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
    ui_ux_pb2_grpc,
)

from agents import Fleet, FleetConfig, start_fleet
from server.app import RunningServer, start_server
from server.callbacks import CallbackConfig, delivery_id_of
from server.config import ServerConfig
from server.engine.admission import AdmissionLimits
from tests.conftest import free_port
from tests.integration.callback_support import Receiver
from tests.integration.pg_support import fresh_database
from tests.integration.store_support import inject_sqlite_event
from tests.integration.support import execute_plan, step, watch_all

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parents[2]


# ---- the fleet, the orchestrator, the plan ----------------------------------------------------


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    started = await start_fleet(FleetConfig(faults=True))
    try:
        yield started
    finally:
        await started.stop(0.5)


@asynccontextmanager
async def _orchestrator(store_url: str, fleet: Fleet) -> AsyncIterator[RunningServer]:
    running = await start_server(ServerConfig(listen="127.0.0.1:0", store_url=store_url, agents=fleet.address))
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def orchestrator(tmp_path: Path, fleet: Fleet) -> AsyncIterator[RunningServer]:
    async with _orchestrator(f"sqlite:///{tmp_path}/baton.db", fleet) as running:
        yield running


@pytest.fixture
async def stub(orchestrator: RunningServer) -> AsyncIterator[Stub]:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        yield Stub(channel)


def _counted(step_id: str, tag: str, *deps: str) -> plan_pb2.WorkflowStep:
    """A RecordEvents step whose calls the analytics agent counts under user `<tag>-<step_id>`."""
    return step(step_id, *deps, config={"user_id": f"{tag}-{step_id}", "events": [{"name": step_id}]})


def _flaky(step_id: str, *deps: str) -> plan_pb2.WorkflowStep:
    return step(step_id, *deps, agent="ui_ux", operation="Notify", config={"user_id": "${user.user_id}", "title": "hi"})


def _abc(tag: str) -> plan_pb2.OrchestrationPlan:
    """A -> B -> C, no retries: B is the flaky one."""
    return plan_pb2.OrchestrationPlan(
        workflow_type="rerun", workflow_steps=[_counted("A", tag), _flaky("B", "A"), _counted("C", tag, "B")]
    )


def _faults(fleet: Fleet, **kw: object) -> None:
    """Sets ui_ux.Notify's faults (none: lifted)."""
    config = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"], **kw)  # type: ignore[arg-type]
    fleet.set_faults(config)


async def _recorded(fleet: Fleet, user_id: str) -> int:
    """How many RecordEvents calls (of one event each) the analytics agent applied for the user."""
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        reply = await analytics_pb2_grpc.AnalyticsStub(channel).GetInsights(
            analytics_pb2.GetInsightsRequest(user_id=user_id), timeout=10
        )
    return int(next(i.value for i in reply.insights if i.name == "events_recorded"))


async def _notifies(fleet: Fleet) -> int:
    """How many Notify calls the ui_ux agent served, failed or not."""
    async with grpc.aio.insecure_channel(fleet.address) as channel:
        status = await ui_ux_pb2_grpc.UiUxStub(channel).GetStatus(common_pb2.GetStatusRequest(), timeout=10)
    return int(status.requests_served)


async def _failed_run(stub: Stub, fleet: Fleet, plan: plan_pb2.OrchestrationPlan, user: str = "u1") -> str:
    _faults(fleet, error_rate=1.0, error_code="UNAVAILABLE")
    execution = await stub.ExecuteWorkflow(execute_plan(plan, user_id=user), timeout=10)
    updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_FAILED, updates[-1].status.failure_reason
    return str(execution.execution_id)


async def _error(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


def _kinds(updates: list[O.ExecutionUpdate]) -> list[str]:
    return [u.event.WhichOneof("kind") or "" for u in updates]


def _started(updates: list[O.ExecutionUpdate]) -> list[tuple[str, str]]:
    return [
        (u.event.step_started.step_id, u.event.step_started.idempotency_key)
        for u in updates
        if u.event.HasField("step_started")
    ]


# ---- finishing a failed run -------------------------------------------------------------------


async def test_a_run_failed_on_a_flaky_step_is_finished_by_a_rerun_without_calling_completed_steps_again(
    stub: Stub, fleet: Fleet
) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t1"))
    assert (await _recorded(fleet, "t1-A"), await _notifies(fleet), await _recorded(fleet, "t1-C")) == (1, 1, 0)
    failed = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    _faults(fleet)  # the agent is fixed
    status = await stub.RerunExecution(
        O.RerunExecutionRequest(execution_id=execution_id, reason="ui_ux is back"), timeout=10
    )
    assert status.status not in (E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED)
    assert status.run == 2 and status.failure_reason == ""
    updates = await watch_all(stub, execution_id)
    final = updates[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED
    # A was not called again; B was (failed once, then succeeded); C ran once.
    assert (await _recorded(fleet, "t1-A"), await _notifies(fleet), await _recorded(fleet, "t1-C")) == (1, 2, 1)
    # One history, gapless, the rerun right after the failure; the watch went past run 1's end.
    assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
    kinds = _kinds(updates)
    rerun_at = kinds.index("execution_rerun")
    assert kinds[rerun_at - 1] == "execution_failed" and updates[rerun_at].sequence == failed.last_sequence + 1
    rerun = updates[rerun_at].event.execution_rerun
    assert (list(rerun.reset_steps), rerun.run, rerun.reason, rerun.from_step) == (["B", "C"], 2, "ui_ux is back", "")
    assert _started(updates) == [
        ("A", f"{execution_id}/A"),
        ("B", f"{execution_id}/B"),
        ("B", f"{execution_id}/run-2/B"),
        ("C", f"{execution_id}/run-2/C"),
    ]
    assert final.run == 2 and final.end_cause == E.END_CAUSE_UNSPECIFIED
    assert set(final.results.primary_outputs.fields) == {"C"}
    assert {"A", "B"} <= set(final.results.intermediate_results.fields)


async def test_a_rerun_from_a_named_step_reruns_it_and_everything_downstream(stub: Stub, fleet: Fleet) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t2"))
    _faults(fleet)
    status = await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id, from_step="A"))
    assert status.run == 2
    updates = await watch_all(stub, execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
    assert (await _recorded(fleet, "t2-A"), await _notifies(fleet), await _recorded(fleet, "t2-C")) == (2, 2, 1)
    rerun = next(u.event.execution_rerun for u in updates if u.event.HasField("execution_rerun"))
    assert (rerun.from_step, list(rerun.reset_steps)) == ("A", ["A", "B", "C"])


async def test_a_watcher_resuming_after_the_failure_sees_the_rerun_live(stub: Stub, fleet: Fleet) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t3"))
    failed = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    slow = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
    slow.latency.FromMilliseconds(800)  # no error, but slow: the watch below attaches before B ends
    fleet.set_faults(slow)
    await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id, reason="watch this"))
    watched = await watch_all(stub, execution_id, after=failed.last_sequence)
    assert watched[0].sequence == failed.last_sequence + 1
    assert watched[0].event.HasField("execution_rerun")
    assert watched[0].status.status == E.EXECUTION_STATE_RUNNING
    assert [u.sequence for u in watched] == list(range(failed.last_sequence + 1, watched[-1].sequence + 1))
    assert watched[-1].status.status == E.EXECUTION_STATE_COMPLETED
    assert "step_succeeded" in _kinds(watched)


async def test_a_run_that_failed_by_its_timeout_is_rerun_with_the_timeout_started_again(
    stub: Stub, fleet: Fleet
) -> None:
    slow = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
    slow.latency.FromMilliseconds(3000)
    fleet.set_faults(slow)
    request = execute_plan(_abc("t4"))
    request.execution_options.timeout.FromMilliseconds(1500)
    execution = await stub.ExecuteWorkflow(request)
    updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_FAILED
    assert updates[-1].status.end_cause == E.END_CAUSE_TIMEOUT
    _faults(fleet)
    await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution.execution_id))
    updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
    rerun = next(u.event for u in updates if u.event.HasField("execution_rerun"))
    window = rerun.execution_rerun.deadline.ToNanoseconds() - rerun.time.ToNanoseconds()
    assert window == 1_500_000_000  # the submitted timeout, from the rerun on


async def test_a_rerun_reapplies_an_undone_step_under_a_new_key_and_compensates_only_its_own(
    stub: Stub, fleet: Fleet
) -> None:
    submit = step(
        "submit",
        agent="automation",
        operation="SubmitApplication",
        config={"user_id": "${user.user_id}", "job_ids": ["job-0001"]},
    )
    submit.compensation.agent, submit.compensation.operation = "automation", "WithdrawApplication"
    submit.compensation.configuration.update(
        {"user_id": "${user.user_id}", "application_ids": "${steps.submit.applications[*].application_id}"}
    )
    plan = plan_pb2.OrchestrationPlan(workflow_type="rerun", workflow_steps=[submit, _flaky("B", "submit")])
    execution_id = await _failed_run(stub, fleet, plan, user="rerun-saga")

    async def applications() -> list[str]:
        async with grpc.aio.insecure_channel(fleet.address) as channel:
            listed = await automation_pb2_grpc.AutomationStub(channel).ListApplications(
                automation_pb2.ListApplicationsRequest(user_id="rerun-saga")
            )
        return sorted(automation_pb2.ApplicationState.Name(a.state) for a in listed.applications)

    assert await applications() == ["APPLICATION_STATE_WITHDRAWN"]  # run 1 undid it
    # The rerun fails again (B still broken): its own submit is undone, run 1's undo is not rerun.
    await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id))
    updates = await watch_all(stub, execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_FAILED
    assert await applications() == ["APPLICATION_STATE_WITHDRAWN"] * 2
    compensations = [
        u.event.compensation_started.idempotency_key for u in updates if u.event.HasField("compensation_started")
    ]
    assert compensations == [f"{execution_id}/submit/compensate", f"{execution_id}/run-2/submit/compensate"]
    assert list(updates[-1].event.execution_failed.compensation_summary) == [
        "submit: undone by automation.WithdrawApplication"
    ]
    # Once fixed, a third run applies again (a new key: the ledger does not answer with a withdrawn one).
    _faults(fleet)
    await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id))
    updates = await watch_all(stub, execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED and updates[-1].status.run == 3
    assert sorted(await applications()) == ["APPLICATION_STATE_SUBMITTED", *["APPLICATION_STATE_WITHDRAWN"] * 2]


# ---- surviving a restart ------------------------------------------------------------------------


@asynccontextmanager
async def _store_url(kind: str, tmp_path: Path) -> AsyncIterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{tmp_path}/restart.db"
    else:
        async with fresh_database() as url:
            yield url


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_a_rerun_survives_a_restart_midway(kind: str, tmp_path: Path, fleet: Fleet) -> None:
    async with _store_url(kind, tmp_path) as url:
        async with _orchestrator(url, fleet) as first, grpc.aio.insecure_channel(first.address) as channel:
            stub = Stub(channel)
            execution_id = await _failed_run(stub, fleet, _abc(f"t5{kind}"))
            slow = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
            slow.latency.FromMilliseconds(1500)
            fleet.set_faults(slow)
            await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id))
            async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=execution_id), timeout=30):
                if update.event.HasField("step_started") and "/run-2/" in update.event.step_started.idempotency_key:
                    break  # B of run 2 is in flight: stop the orchestrator now
        _faults(fleet)
        async with _orchestrator(url, fleet) as second, grpc.aio.insecure_channel(second.address) as channel:
            updates = await watch_all(Stub(channel), execution_id)
        assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
        assert [u.sequence for u in updates] == list(range(1, len(updates) + 1))
        assert _kinds(updates).count("execution_rerun") == 1
        # B of run 2 started once (its call re-issued under the same key after the restart), A never again.
        assert _started(updates)[2:] == [("B", f"{execution_id}/run-2/B"), ("C", f"{execution_id}/run-2/C")]
        assert await _recorded(fleet, f"t5{kind}-A") == 1 and await _recorded(fleet, f"t5{kind}-C") == 1


async def test_a_rerun_asked_of_another_replica_on_postgresql_is_taken_over_and_run_there(fleet: Fleet) -> None:
    async with fresh_database() as url:
        replicas = []
        for name in ("a", "b"):
            config = ServerConfig(listen="127.0.0.1:0", store_url=url, agents=fleet.address, replica=name)
            replicas.append(await start_server(config))
        a, b = replicas
        try:
            async with (
                grpc.aio.insecure_channel(a.address) as to_a,
                grpc.aio.insecure_channel(b.address) as to_b,
            ):
                execution_id = await _failed_run(Stub(to_a), fleet, _abc("t17"))
                record = await a.store.get_execution(execution_id)
                assert record is not None and record.owner == "a"  # its lease outlives the run
                _faults(fleet)
                status = await Stub(to_b).RerunExecution(O.RerunExecutionRequest(execution_id=execution_id), timeout=30)
                assert status.run == 2
                updates = await watch_all(Stub(to_a), execution_id)  # watched on the other replica
                assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
                record = await b.store.get_execution(execution_id)
                assert record is not None and record.owner == "b"
                assert await _recorded(fleet, "t17-A") == 1 and await _recorded(fleet, "t17-C") == 1
        finally:
            for running in replicas:
                await running.stop(grace=0.5)


# ---- admission --------------------------------------------------------------------------------


async def test_a_rerun_runs_at_once_and_counts_as_running_for_admission(tmp_path: Path, fleet: Fleet) -> None:
    limits = AdmissionLimits(max_running=1, max_queued=10)
    store_url = f"sqlite:///{tmp_path}/a.db"
    running = await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=store_url, agents=fleet.address, admission=limits)
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            execution_id = await _failed_run(stub, fleet, _abc("t13"))
            slow = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
            slow.latency.FromMilliseconds(1500)
            fleet.set_faults(slow)
            rerun = await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id))
            assert rerun.status == E.EXECUTION_STATE_RUNNING  # past the queue
            other = await stub.ExecuteWorkflow(execute_plan(_abc("t13-other")))
            queued = await stub.GetExecution(O.GetExecutionRequest(execution_id=other.execution_id))
            assert queued.status == E.EXECUTION_STATE_QUEUED and queued.queue_position == 1  # the slot is the rerun's
            await stub.CancelExecution(O.CancelExecutionRequest(execution_id=other.execution_id))
            error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id=other.execution_id)))
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert "never started" in error.details()
            assert (await watch_all(stub, execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
    finally:
        await running.stop(grace=0.5)


# ---- callbacks --------------------------------------------------------------------------------


async def test_each_run_posts_its_end_to_the_callback_with_a_delivery_id_of_its_own(
    tmp_path: Path, fleet: Fleet
) -> None:
    secret = tmp_path / "callback-secret"
    secret.write_bytes(b"0123456789abcdef0123456789abcdef\n")
    callbacks = CallbackConfig(allow=("127.0.0.1",), secret_file=str(secret))
    async with Receiver(200) as receiver:
        running = await start_server(
            ServerConfig(
                listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/c.db", agents=fleet.address, callbacks=callbacks
            )
        )
        try:
            async with grpc.aio.insecure_channel(running.address) as channel:
                stub = Stub(channel)
                _faults(fleet, error_rate=1.0, error_code="UNAVAILABLE")
                execution = await stub.ExecuteWorkflow(execute_plan(_abc("t16"), callback_url=receiver.url))
                assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_FAILED
                await _posted(receiver, 1)
                _faults(fleet)
                await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution.execution_id))
                assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
                await _posted(receiver, 2)
        finally:
            await running.stop(grace=0.5)
    posted = [(json.loads(r.body)["status"], json.loads(r.body)["run"]) for r in receiver.received]
    assert posted == [("EXECUTION_STATE_FAILED", 1), ("EXECUTION_STATE_COMPLETED", 2)]
    first, second = (r.headers["Baton-Delivery-Id"] for r in receiver.received)
    assert first == delivery_id_of(execution.execution_id) and second != first


async def test_the_first_runs_callback_settled_while_the_rerun_runs_breaks_nothing(
    tmp_path: Path, fleet: Fleet, caplog: pytest.LogCaptureFixture
) -> None:
    # Run 1's callback is owed (nothing listens) when the rerun starts; it is delivered while
    # run 2 waits on a slow step, so the relay appends its outcome under the running runner.
    port = free_port()
    callbacks = CallbackConfig(allow=("127.0.0.1",), backoff=0.1, max_backoff=0.2, poll_interval=0.1)
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/c.db", agents=fleet.address, callbacks=callbacks
        )
    )
    receiver = Receiver(200, port=port)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            _faults(fleet, error_rate=1.0, error_code="UNAVAILABLE")
            plan = _abc("t17")
            execution = await stub.ExecuteWorkflow(execute_plan(plan, callback_url=f"http://127.0.0.1:{port}/hook"))
            execution_id = execution.execution_id
            assert (await watch_all(stub, execution_id))[-1].status.status == E.EXECUTION_STATE_FAILED
            latency = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
            latency.latency.FromMilliseconds(1500)
            fleet.set_faults(latency)
            await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id))
            async with receiver:
                await _posted(receiver, 1)  # run 1's end, while run 2's B is in flight
                final = (await watch_all(stub, execution_id))[-1].status
                await _posted(receiver, 2)
                for _ in range(200):
                    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
                    if status.callback.state == E.CALLBACK_STATE_DELIVERED:
                        break
                    await asyncio.sleep(0.05)
            events = [u.event.WhichOneof("kind") for u in await watch_all(stub, execution_id)]
    finally:
        await running.stop(grace=0.5)
    assert final.status == E.EXECUTION_STATE_COMPLETED and status.run == 2
    # Run 1's outcome lies between the rerun and run 2's end; run 2's report is its own.
    assert events.index("execution_rerun") < events.index("callback_delivered") < events.index("execution_completed")
    assert events.count("callback_delivered") == 2 and status.callback.state == E.CALLBACK_STATE_DELIVERED
    assert status.callback.delivery_id == delivery_id_of(execution_id, 2)
    # The runner overtaken by the relay's append read the history again: it did not die.
    assert not [r for r in caplog.records if "runner died" in r.getMessage()]
    posted = [json.loads(r.body)["run"] for r in receiver.received]
    assert posted == [1, 2]


async def _posted(receiver: Receiver, count: int) -> None:
    """Waits (at most 10 s) until the receiver has had `count` requests."""
    for _ in range(200):
        if len(receiver.received) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(receiver.received)} callbacks, not {count}")


# ---- errors -----------------------------------------------------------------------------------


async def test_rerunning_an_unknown_execution_is_not_found(stub: Stub) -> None:
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id="no-such")))
    assert error.code() == grpc.StatusCode.NOT_FOUND
    assert error.details().startswith("execution_id: ")


async def test_rerunning_without_an_execution_id_is_invalid(stub: Stub) -> None:
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(from_step="A")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("execution_id: ")


async def test_rerunning_a_completed_execution_is_a_failed_precondition_naming_its_state(
    stub: Stub, fleet: Fleet
) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(_abc("t6")))
    assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution.execution_id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is completed" in error.details()


async def test_rerunning_a_running_execution_is_a_failed_precondition_naming_its_state(
    stub: Stub, fleet: Fleet
) -> None:
    slow = faults_pb2.FaultConfig(agent="ui_ux", operations=["Notify"])
    slow.latency.FromMilliseconds(2000)
    fleet.set_faults(slow)
    execution = await stub.ExecuteWorkflow(execute_plan(_abc("t7")))
    async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=execution.execution_id), timeout=30):
        if update.event.HasField("step_started") and update.event.step_started.step_id == "B":
            break
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution.execution_id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "is running" in error.details()
    await stub.CancelExecution(O.CancelExecutionRequest(execution_id=execution.execution_id))


async def test_rerunning_from_a_step_the_plan_lacks_is_invalid_naming_it(stub: Stub, fleet: Fleet) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t8"))
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id, from_step="Z9")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("from_step: ") and "'Z9'" in error.details()
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id, from_step="s" * 65)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT and error.details().startswith("from_step: ")
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    assert status.status == E.EXECUTION_STATE_FAILED and status.run == 1  # nothing recorded


async def test_rerunning_a_quarantined_execution_is_a_failed_precondition(
    stub: Stub, fleet: Fleet, orchestrator: RunningServer
) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t14"))
    await orchestrator.store.quarantine(execution_id, "set aside by hand")
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "quarantined" in error.details()


async def test_a_failed_execution_whose_history_is_poisoned_is_quarantined_by_its_rerun_not_run(
    stub: Stub, fleet: Fleet, orchestrator: RunningServer, tmp_path: Path
) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t15"))
    inject_sqlite_event(str(tmp_path / "baton.db"), execution_id, b"\x0a\xff\xff\xff\xff\x0f")
    error = await _error(stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id)))
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "quarantined" in error.details()
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    assert status.status == E.EXECUTION_STATE_FAILED and status.end_cause == E.END_CAUSE_HISTORY_UNREADABLE
    _faults(fleet)
    other = await stub.ExecuteWorkflow(execute_plan(_abc("t15-other")))  # the server goes on serving
    assert (await watch_all(stub, other.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED


async def test_a_rerun_retried_with_its_request_id_reruns_once(stub: Stub, fleet: Fleet) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t9"))
    _faults(fleet)
    request = O.RerunExecutionRequest(execution_id=execution_id, request_id="rerun-1")
    first = await stub.RerunExecution(request)
    await watch_all(stub, execution_id)
    again = await stub.RerunExecution(request)  # completed by now: the same answer, no second rerun
    assert first.run == again.run == 2
    assert again.status == E.EXECUTION_STATE_COMPLETED
    updates = await watch_all(stub, execution_id)
    assert _kinds(updates).count("execution_rerun") == 1


async def test_the_rerun_is_in_the_audit_trail_with_its_reason(stub: Stub, fleet: Fleet) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t10"))
    await stub.RerunExecution(O.RerunExecutionRequest(execution_id=execution_id, reason="second chance"))
    page = await stub.ListAuditEvents(O.ListAuditEventsRequest(execution_id=execution_id))
    assert (page.entries[0].action, page.entries[0].reason) == ("execution_rerun", "second chance")
    assert page.entries[0].actor.peer.startswith("ipv")


# ---- the CLI --------------------------------------------------------------------------------------


async def _baton(*args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "server.cli",
        *args,
        cwd=ROOT,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    return proc.returncode if proc.returncode is not None else -1, out.decode(), err.decode()


async def test_baton_rerun_prints_the_new_run_and_with_watch_follows_it_to_the_end(
    stub: Stub, fleet: Fleet, orchestrator: RunningServer
) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t11"))
    code, out, err = await _baton("rerun", execution_id, "--from", "Z", "--target", orchestrator.address)
    assert code == 2 and err.startswith("error: INVALID_ARGUMENT: from_step: "), err
    _faults(fleet)
    code, out, err = await _baton(
        "rerun", execution_id, "--reason", "fixed", "--watch", "--target", orchestrator.address
    )
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith(f"rerun: execution {execution_id} ") and lines[0].endswith("(run 2)"), lines[0]
    assert "execution rerun (run 2) from where it stopped: fixed; steps to run again: B, C" in out
    assert "execution failed" not in out  # the watch shows the rerun on, not run 1 again
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
    assert status.status == E.EXECUTION_STATE_COMPLETED
    code, out, err = await _baton("rerun", execution_id, "--target", orchestrator.address)
    assert code == 1 and err.startswith("error: FAILED_PRECONDITION: ") and "is completed" in err


async def test_baton_watch_of_a_rerun_execution_follows_it_past_the_first_runs_end(
    stub: Stub, fleet: Fleet, orchestrator: RunningServer
) -> None:
    execution_id = await _failed_run(stub, fleet, _abc("t12"))
    _faults(fleet)
    code, out, err = await _baton("rerun", execution_id, "--target", orchestrator.address)
    assert code == 0, err
    assert out.strip().endswith("(run 2)")
    code, out, err = await _baton("watch", execution_id, "--target", orchestrator.address)
    assert code == 0, err  # the end of run 2 (completed), not of run 1 (failed)
    assert "execution failed" in out and "execution completed" in out
