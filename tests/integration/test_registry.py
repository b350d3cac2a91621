"""The workflow registry over real gRPC: versions side by side, pinned executions, restarts, both stores.

A new version of job_discovery with an extra step is registered; an execution of the new default
and one of the old version by name run side by side, each planned from, and pinned to, its own
version (their plans differ, GetExecution says which); a restart keeps every version, every pin
and the built-ins (once each), on SQLite and on PostgreSQL. Then immutability, deprecation,
hostile definitions, a stored definition that no longer validates, the CLI, and who may call.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from baton.v1 import execution_pb2, faults_pb2, faults_pb2_grpc, orchestrator_pb2, orchestrator_pb2_grpc, registry_pb2

from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.planner import DEFINITIONS_DIR, MAX_DEFINITION_BYTES
from tests.integration.auth_support import bearer, make_keys, start_secured
from tests.integration.pg_support import fresh_database
from tests.integration.support import watch_all
from tests.integration.test_cli import baton

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
R = registry_pb2
Code = grpc.StatusCode
Stub = orchestrator_pb2_grpc.OrchestratorStub

pytestmark = pytest.mark.timeout(120)

EXTRA_STEP = "summarize_search"
BUILTIN_STEPS = ["analyze_resume", "search_jobs", "score_matches", "notify_user", "record_analytics"]


def builtin(workflow_type: str = "job_discovery") -> dict[str, Any]:
    loaded = yaml.safe_load((DEFINITIONS_DIR / f"{workflow_type}.yaml").read_text())
    assert isinstance(loaded, dict)
    return loaded


def with_extra_step(version: str | None = "1.1.0") -> str:
    """job_discovery with one more step, recording a summary of the search once matches are scored."""
    definition = builtin()
    if version is None:
        del definition["version"]
    else:
        definition["version"] = version
    definition["workflow_steps"].append(
        {
            "step_id": EXTRA_STEP,
            "step_name": "Record a summary of the search",
            "agent": "analytics",
            "operation": "RecordEvents",
            "dependencies": ["score_matches"],
            "inputs": {
                "configuration": {
                    "user_id": "${user.user_id}",
                    "events": [
                        {"name": "search_summarized", "properties": {"jobs": "${steps.search_jobs.total_matches}"}}
                    ],
                }
            },
            "timing": {"estimated_duration": "0.2s", "timeout": "5s", "scheduling": "immediate"},
            "error_handling": {"retry_count": 1, "fallback_action": "fail"},
            "optional": False,
        }
    )
    return yaml.safe_dump(definition, sort_keys=False)


def execute(version: str = "", user: str = "u-registry", **kw: Any) -> O.ExecuteWorkflowRequest:
    request = O.ExecuteWorkflowRequest(workflow_type="job_discovery", workflow_version=version, **kw)
    request.user_context.user_id = user
    return request


async def error_of(call: Awaitable[object]) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


@dataclass
class Orchestrator:
    running: RunningServer
    stub: Stub
    url: str


class Servers:
    """Starts (and restarts) orchestrators on one store; stops whatever it started."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._running: RunningServer | None = None
        self._channel: grpc.aio.Channel | None = None

    async def start(self) -> Orchestrator:
        await self.stop()
        self._running = await start_server(
            ServerConfig(listen="127.0.0.1:0", store_url=self.url, agents="embedded", agent_faults=True)
        )
        self._channel = grpc.aio.insecure_channel(self._running.address)
        return Orchestrator(self._running, Stub(self._channel), self.url)

    async def stop(self) -> None:
        if self._channel is not None:
            await self._channel.close()
            self._channel = None
        if self._running is not None:
            await self._running.stop(grace=0.5)
            self._running = None


@pytest.fixture
async def sqlite_servers(tmp_path: Path) -> AsyncIterator[Servers]:
    servers = Servers(f"sqlite:///{tmp_path}/baton.db")
    try:
        yield servers
    finally:
        await servers.stop()


@pytest.fixture(params=["sqlite", "postgres"])
async def servers(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Servers]:
    if request.param == "sqlite":
        servers = Servers(f"sqlite:///{tmp_path}/baton.db")
        try:
            yield servers
        finally:
            await servers.stop()
        return
    async with fresh_database() as url:
        servers = Servers(url)
        try:
            yield servers
        finally:
            await servers.stop()


async def slow(running: RunningServer, agent: str, latency_ms: int) -> None:
    """Makes one reference agent answer every call after `latency_ms`."""
    assert running.fleet is not None
    config = faults_pb2.FaultConfig(agent=agent)
    config.latency.FromMilliseconds(latency_ms)
    async with grpc.aio.insecure_channel(running.fleet.address) as channel:  # type: ignore[attr-defined]
        await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)


def listed(reply: R.ListWorkflowsResponse, workflow_type: str = "job_discovery") -> list[tuple[str, bool, bool]]:
    """(version, latest, deprecated) of a type's listed versions, newest first."""
    return [(w.version, w.latest, w.deprecated) for w in reply.workflows if w.workflow_type == workflow_type]


# ---- versions side by side, pinned, across a restart ---------------------------------------------


async def test_two_versions_run_side_by_side_each_pinned_to_its_version_across_a_restart(servers: Servers) -> None:
    server = await servers.start()
    stub = server.stub
    before = await stub.ListWorkflows(R.ListWorkflowsRequest())
    assert sorted((w.workflow_type, w.version, w.builtin, w.latest) for w in before.workflows) == [
        (t, "1.0.0", True, True)
        for t in ("application_automation", "document_analysis", "job_discovery", "optimization")
    ]

    registered = await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step("1.1.0")))
    assert registered.created
    assert (registered.workflow.workflow_type, registered.workflow.version) == ("job_discovery", "1.1.0")
    assert registered.workflow.latest and not registered.workflow.builtin
    assert list(registered.workflow.step_ids) == [*BUILTIN_STEPS, EXTRA_STEP]

    # The new version is the default; the old one runs when named. Both at once.
    new = await stub.ExecuteWorkflow(execute(request_id="new"))
    old = await stub.ExecuteWorkflow(execute("1.0.0", request_id="old"))
    assert new.plan.workflow_version == "1.1.0" and old.plan.workflow_version == "1.0.0"
    assert EXTRA_STEP in [s.step_id for s in new.plan.workflow_steps]
    assert EXTRA_STEP not in [s.step_id for s in old.plan.workflow_steps]
    # PlanWorkflow picks versions the same way.
    preview = await stub.PlanWorkflow(
        O.PlanWorkflowRequest(workflow_type="job_search", user_context=execute().user_context)
    )
    assert preview.workflow_version == "1.1.0"
    named = O.PlanWorkflowRequest(workflow_type="job_discovery", workflow_version="1.0.0")
    named.user_context.user_id = "u-registry"
    assert (await stub.PlanWorkflow(named)).workflow_version == "1.0.0"

    finals = {}
    for execution in (new, old):
        updates = await watch_all(stub, execution.execution_id, deadline=60)
        finals[execution.execution_id] = updates[-1].status
        assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED, updates[-1].status.failure_reason
    assert finals[new.execution_id].workflow_version == "1.1.0"
    assert finals[old.execution_id].workflow_version == "1.0.0"
    ran = {x: [t.step_id for t in s.performance_metrics.step_timings] for x, s in finals.items()}
    assert ran[new.execution_id] == [*BUILTIN_STEPS, EXTRA_STEP]
    assert ran[old.execution_id] == BUILTIN_STEPS

    # A restart: every version once, the built-ins not duplicated, every pin kept.
    server = await servers.start()
    stub = server.stub
    after = await stub.ListWorkflows(R.ListWorkflowsRequest(workflow_type="job_discovery"))
    assert listed(after) == [("1.1.0", True, False), ("1.0.0", False, False)]
    assert len((await stub.ListWorkflows(R.ListWorkflowsRequest())).workflows) == 5
    for execution_id, version in ((new.execution_id, "1.1.0"), (old.execution_id, "1.0.0")):
        status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution_id))
        assert status.workflow_version == version
        assert [t.step_id for t in status.performance_metrics.step_timings] == ran[execution_id]
    again = await stub.ExecuteWorkflow(execute(request_id="after-restart"))
    assert again.plan.workflow_version == "1.1.0"
    shown = await stub.GetWorkflow(R.GetWorkflowRequest(workflow_type="job_discovery", version="1.1.0"))
    assert shown.definition_yaml == with_extra_step("1.1.0") and shown.digest == registered.workflow.digest
    builtin_shown = await stub.GetWorkflow(R.GetWorkflowRequest(workflow_type="job_search", version="1.0.0"))
    assert (
        builtin_shown.builtin and builtin_shown.definition_yaml == (DEFINITIONS_DIR / "job_discovery.yaml").read_text()
    )


async def test_a_rerun_keeps_the_version_its_execution_started_with(sqlite_servers: Servers) -> None:
    server = await sqlite_servers.start()
    stub = server.stub
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step("1.1.0")))
    await slow(server.running, "matching_intelligence", 3000)
    old = await stub.ExecuteWorkflow(execute("1.0.0"))
    async for update in stub.WatchExecution(O.WatchExecutionRequest(execution_id=old.execution_id), timeout=30):
        if update.event.HasField("step_started") and update.event.step_started.step_id == "score_matches":
            break
    cancelled = await stub.CancelExecution(O.CancelExecutionRequest(execution_id=old.execution_id))
    assert cancelled.status == E.EXECUTION_STATE_CANCELLED
    await slow(server.running, "matching_intelligence", 0)

    rerun = await stub.RerunExecution(O.RerunExecutionRequest(execution_id=old.execution_id))
    assert rerun.run == 2 and rerun.workflow_version == "1.0.0"
    final = (await watch_all(stub, old.execution_id, after=rerun.last_sequence, deadline=60))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert final.workflow_version == "1.0.0"
    assert [t.step_id for t in final.performance_metrics.step_timings] == BUILTIN_STEPS


# ---- immutability, automatic versions ----------------------------------------------------------------


async def test_a_version_is_immutable_and_an_identical_registration_is_idempotent(sqlite_servers: Servers) -> None:
    stub = (await sqlite_servers.start()).stub
    text = with_extra_step(None)
    first = await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=text, version="2.0.0"))
    same = await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=text, version="2.0.0"))
    assert first.created and not same.created
    assert same.workflow.digest == first.workflow.digest and same.workflow.registered_at == first.workflow.registered_at

    changed = text.replace("Record a summary of the search", "Record the search's summary")
    error = await error_of(stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=changed, version="2.0.0")))
    assert error.code() == Code.ALREADY_EXISTS
    assert "job_discovery 2.0.0 is registered already with another definition" in (error.details() or "")
    # A built-in's version is as immutable as any.
    error = await error_of(stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=changed, version="1.0.0")))
    assert error.code() == Code.ALREADY_EXISTS

    # No version anywhere: the next patch after the highest; the identical text again: that one.
    auto = await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=changed))
    assert (auto.created, auto.workflow.version) == (True, "2.0.1")
    again = await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=changed))
    assert (again.created, again.workflow.version) == (False, "2.0.1")
    # The text's version and the request's must agree.
    error = await error_of(
        stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step("3.0.0"), version="3.1.0"))
    )
    assert error.code() == Code.INVALID_ARGUMENT and "3.0.0" in (error.details() or "")
    # A new type starts at 1.0.0.
    fresh = builtin("document_analysis")
    for key in ("version", "aliases", "journey_types"):
        fresh.pop(key, None)
    fresh["workflow_type"] = "resume_review"
    made = await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=yaml.safe_dump(fresh)))
    assert (made.workflow.workflow_type, made.workflow.version) == ("resume_review", "1.0.0")
    run = await stub.ExecuteWorkflow(
        O.ExecuteWorkflowRequest(workflow_type="resume_review", user_context=execute().user_context)
    )
    assert (run.plan.workflow_type, run.plan.workflow_version) == ("resume_review", "1.0.0")


# ---- deprecation ----------------------------------------------------------------------------------------


async def test_a_deprecated_version_refuses_new_executions_while_running_ones_finish(servers: Servers) -> None:
    server = await servers.start()
    stub = server.stub
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step("1.1.0")))
    await slow(server.running, "matching_intelligence", 1500)
    running = await stub.ExecuteWorkflow(execute())
    assert running.plan.workflow_version == "1.1.0"

    deprecated = await stub.DeprecateWorkflow(
        R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="1.1.0", reason="summaries moved")
    )
    assert deprecated.deprecated and deprecated.deprecation_reason == "summaries moved" and not deprecated.latest
    status = await stub.GetExecution(O.GetExecutionRequest(execution_id=running.execution_id))
    assert status.status not in (E.EXECUTION_STATE_COMPLETED, E.EXECUTION_STATE_FAILED, E.EXECUTION_STATE_CANCELLED)

    error = await error_of(stub.ExecuteWorkflow(execute("1.1.0")))
    assert error.code() == Code.FAILED_PRECONDITION
    assert "job_discovery 1.1.0 is deprecated (summaries moved)" in (error.details() or "")
    # The default falls back to the highest version still allowed.
    fallback = await stub.ExecuteWorkflow(execute(request_id="after-deprecation"))
    assert fallback.plan.workflow_version == "1.0.0"

    final = (await watch_all(stub, running.execution_id, deadline=60))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    assert final.workflow_version == "1.1.0"
    assert EXTRA_STEP in [t.step_id for t in final.performance_metrics.step_timings]

    # Deprecating again changes nothing; a restart keeps it deprecated.
    again = await stub.DeprecateWorkflow(
        R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="1.1.0", reason="other")
    )
    assert again.deprecation_reason == "summaries moved" and again.deprecated_at == deprecated.deprecated_at
    stub = (await servers.start()).stub
    assert listed(await stub.ListWorkflows(R.ListWorkflowsRequest())) == [
        ("1.1.0", False, True),
        ("1.0.0", True, False),
    ]
    await stub.DeprecateWorkflow(R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="1.0.0"))
    error = await error_of(stub.ExecuteWorkflow(execute()))
    assert error.code() == Code.FAILED_PRECONDITION and "every version of job_discovery" in (error.details() or "")


# ---- hostile input ----------------------------------------------------------------------------------------


def _mutated(change: Any) -> str:
    definition = builtin()
    definition["version"] = "5.0.0"
    change(definition)
    return yaml.safe_dump(definition, sort_keys=False)


def _step(definition: dict[str, Any], step_id: str) -> dict[str, Any]:
    return next(s for s in definition["workflow_steps"] if s["step_id"] == step_id)


def _cycle(definition: dict[str, Any]) -> None:
    _step(definition, "search_jobs")["dependencies"] = ["analyze_resume", "score_matches"]


BAD_DEFINITIONS: dict[str, tuple[str, str]] = {
    "not yaml": ("workflow_type: [unclosed", "is not valid YAML"),
    "not a mapping": ("- a\n- b\n", "must be a mapping"),
    "an unknown key": (_mutated(lambda d: d.update(owner="me")), "unknown key 'owner'"),
    "an unknown agent": (
        _mutated(lambda d: _step(d, "search_jobs").update(agent="astrology")),
        "workflow_steps[1].agent",
    ),
    "an unknown operation": (
        _mutated(lambda d: _step(d, "search_jobs").update(operation="ReadTeaLeaves")),
        "workflow_steps[1].operation",
    ),
    "a cycle": (_mutated(_cycle), "cycle"),
    "a bad version key": (_mutated(lambda d: d.update(version="v2")), "not a semantic version"),
    "aliases": ("a: &x [1, 2]\nb: *x\n", "anchors and aliases"),
    "a date": (_mutated(lambda d: d.update(description=__import__("datetime").date(2026, 1, 1))), "not a JSON value"),
    "too deep": ("a: " + "[" * 40 + "]" * 40, "nested more than"),
    "a huge number": (
        with_extra_step("5.0.0").replace("retry_count: 1", "retry_count: " + "9" * 5000),
        "cannot be loaded",
    ),
    "too large": ("description: " + "x" * (MAX_DEFINITION_BYTES + 1), f"at most {MAX_DEFINITION_BYTES}"),
    "another type's alias": (
        _mutated(lambda d: d.update(workflow_type="scout", aliases=["job_search"], journey_types=[])),
        "'job_search' is an alias of job_discovery",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DEFINITIONS))
async def test_a_bad_definition_is_invalid_argument_naming_the_problem(sqlite_servers: Servers, case: str) -> None:
    stub = (await sqlite_servers.start()).stub
    text, problem = BAD_DEFINITIONS[case]
    error = await error_of(stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=text)))
    assert error.code() == Code.INVALID_ARGUMENT, error.details()
    details = error.details() or ""
    assert details.startswith("definition_yaml: ") and problem in details, details
    assert len(details) < 2100
    # Nothing was stored.
    assert listed(await stub.ListWorkflows(R.ListWorkflowsRequest())) == [("1.0.0", True, False)]


async def test_bad_versions_and_unknown_names_get_clear_statuses(sqlite_servers: Servers) -> None:
    stub = (await sqlite_servers.start()).stub
    cases: list[tuple[Awaitable[object], Code, str]] = [
        (
            stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step(None), version="1.1")),
            Code.INVALID_ARGUMENT,
            "version: '1.1' is not a semantic version",
        ),
        (
            stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step(None), version="01.1.0")),
            Code.INVALID_ARGUMENT,
            "not a semantic version",
        ),
        (
            stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml="  ")),
            Code.INVALID_ARGUMENT,
            "definition_yaml: required",
        ),
        (
            stub.GetWorkflow(R.GetWorkflowRequest(workflow_type="nope")),
            Code.NOT_FOUND,
            "workflow_type: no workflow type 'nope'",
        ),
        (
            stub.GetWorkflow(R.GetWorkflowRequest(workflow_type="job_discovery", version="9.9.9")),
            Code.NOT_FOUND,
            "job_discovery has no version 9.9.9; its versions: 1.0.0",
        ),
        (
            stub.GetWorkflow(R.GetWorkflowRequest(workflow_type="job_discovery", version="x" * 40)),
            Code.INVALID_ARGUMENT,
            "version: at most 32",
        ),
        (stub.GetWorkflow(R.GetWorkflowRequest()), Code.INVALID_ARGUMENT, "workflow_type: required"),
        (stub.ListWorkflows(R.ListWorkflowsRequest(workflow_type="nope")), Code.NOT_FOUND, "no workflow type 'nope'"),
        (
            stub.DeprecateWorkflow(R.DeprecateWorkflowRequest(workflow_type="job_discovery")),
            Code.INVALID_ARGUMENT,
            "version: required",
        ),
        (
            stub.DeprecateWorkflow(R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="2.0.0")),
            Code.NOT_FOUND,
            "has no version 2.0.0",
        ),
        (
            stub.DeprecateWorkflow(
                R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="1.0.0", reason="r" * 2000)
            ),
            Code.INVALID_ARGUMENT,
            "reason: at most 1024",
        ),
        (
            stub.ExecuteWorkflow(execute("4.0.0")),
            Code.NOT_FOUND,
            "workflow_version: job_discovery has no version 4.0.0",
        ),
        (
            stub.ExecuteWorkflow(execute("latest")),
            Code.INVALID_ARGUMENT,
            "workflow_version: 'latest' is not a semantic version",
        ),
        (
            stub.PlanWorkflow(
                O.PlanWorkflowRequest(
                    workflow_type="job_discovery", workflow_version="4.0.0", user_context=execute().user_context
                )
            ),
            Code.NOT_FOUND,
            "no version 4.0.0",
        ),
        (
            stub.ExecuteWorkflow(O.ExecuteWorkflowRequest(workflow_type="nope", user_context=execute().user_context)),
            Code.INVALID_ARGUMENT,
            'unknown workflow type "nope"',
        ),
    ]
    with_plan = O.ExecuteWorkflowRequest(workflow_version="1.0.0", user_context=execute().user_context)
    with_plan.plan.workflow_steps.add(step_id="A", step_name="A", agent="analytics", operation="RecordEvents")
    cases.append((stub.ExecuteWorkflow(with_plan), Code.INVALID_ARGUMENT, "workflow_version: not allowed with plan"))
    for call, code, message in cases:
        error = await error_of(call)
        assert (error.code(), message in (error.details() or "")) == (code, True), (code, message, error.details())


async def test_a_stored_definition_that_no_longer_validates_is_set_aside_not_fatal(tmp_path: Path) -> None:
    servers = Servers(f"sqlite:///{tmp_path}/baton.db")
    try:
        stub = (await servers.start()).stub
        await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step("1.1.0")))
        await servers.stop()
        # As if a later release had dropped RecordEvents: the stored text names an unknown operation.
        conn = sqlite3.connect(tmp_path / "baton.db")
        with conn:
            conn.execute(
                "UPDATE workflow_definitions SET definition = replace(definition, 'RecordEvents', 'RecordEventz')"
                " WHERE version = '1.1.0'"
            )
        conn.close()

        stub = (await servers.start()).stub
        versions = (await stub.ListWorkflows(R.ListWorkflowsRequest(workflow_type="job_discovery"))).workflows
        problem = {w.version: w.problem for w in versions}
        assert problem["1.0.0"] == "" and "RecordEventz" in problem["1.1.0"], problem
        assert [w.version for w in versions if w.latest] == ["1.0.0"]
        assert (await stub.ExecuteWorkflow(execute())).plan.workflow_version == "1.0.0"
        error = await error_of(stub.ExecuteWorkflow(execute("1.1.0")))
        assert error.code() == Code.FAILED_PRECONDITION and "job_discovery 1.1.0 is unusable" in (error.details() or "")
    finally:
        await servers.stop()


# ---- the CLI --------------------------------------------------------------------------------------------


async def test_the_cli_registers_lists_shows_and_deprecates_versions(sqlite_servers: Servers, tmp_path: Path) -> None:
    server = await sqlite_servers.start()
    target = ("--target", server.running.address)
    path = tmp_path / "job_discovery.yaml"
    path.write_text(with_extra_step(None))

    result = await baton("workflows", "register", str(path), "--version", "1.2.0", *target)
    assert result.returncode == 0, result.stderr
    assert "registered job_discovery 1.2.0" in result.stdout
    result = await baton("workflows", "register", str(path), "--version", "1.2.0", *target)
    assert result.returncode == 0 and "already registered" in result.stdout, result.stdout + result.stderr

    result = await baton("workflows", "list", *target)
    assert result.returncode == 0, result.stderr
    lines = [line.split() for line in result.stdout.splitlines()]
    assert ["job_discovery", "1.2.0", "latest", "registered"] in [line[:4] for line in lines], result.stdout
    assert ["job_discovery", "1.0.0", "available", "built-in"] in [line[:4] for line in lines], result.stdout

    result = await baton("workflows", "show", "job_search", "--version", "1.2.0", *target)
    assert result.returncode == 0, result.stderr
    assert EXTRA_STEP in result.stdout and "job_discovery 1.2.0" in result.stdout

    result = await baton("workflows", "deprecate", "job_discovery", "--version", "1.2.0", "--reason", "old", *target)
    assert result.returncode == 0, result.stderr
    assert "deprecated job_discovery 1.2.0" in result.stdout
    result = await baton("workflows", "list", "job_discovery", "--json", *target)
    assert result.returncode == 0, result.stderr
    assert '"deprecated": true' in result.stdout

    result = await baton("workflows", "show", "job_discovery", "--version", "7.0.0", *target)
    assert result.returncode == 1 and "no version 7.0.0" in result.stderr, result.stderr
    (tmp_path / "bad.yaml").write_text("workflow_type: [")
    result = await baton("workflows", "register", str(tmp_path / "bad.yaml"), *target)
    assert result.returncode == 2 and "not valid YAML" in result.stderr, result.stderr
    result = await baton("workflows", "register", str(tmp_path / "missing.yaml"), *target)
    assert result.returncode == 2 and "missing.yaml" in result.stderr, result.stderr


async def test_the_cli_plans_and_runs_a_named_version_beside_the_latest(sqlite_servers: Servers) -> None:
    server = await sqlite_servers.start()
    target = ("--target", server.running.address)
    async with grpc.aio.insecure_channel(server.running.address) as channel:
        stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
        await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=with_extra_step("1.1.0")))

    latest = await baton("plan", "job_discovery", "--json", *target)
    old = await baton("plan", "job_discovery", "--workflow-version", "1.0.0", "--json", *target)
    assert latest.returncode == 0 and old.returncode == 0, latest.stderr + old.stderr
    assert EXTRA_STEP in latest.stdout and '"workflow_version": "1.1.0"' in latest.stdout
    assert EXTRA_STEP not in old.stdout and '"workflow_version": "1.0.0"' in old.stdout

    ran = await baton("run", "job_discovery", "--workflow-version", "1.0.0", *target)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert EXTRA_STEP not in ran.stdout
    missing = await baton("run", "job_discovery", "--workflow-version", "9.9.9", *target)
    assert missing.returncode == 1 and "9.9.9" in missing.stderr, missing.stderr

    # The text views name the version: the plan's with each step's estimate and its source, the
    # status's with what the execution cost.
    text = await baton("plan", "job_discovery", *target)
    assert re.search(r"^workflow\s+job_discovery v1\.1\.0\s*$", text.stdout, re.M), text.stdout
    assert re.search(r"^summarize_search\s.*\sdeclared\s", text.stdout, re.M), text.stdout
    for version in ("1.0.0", "1.1.0"):
        detached = await baton("run", "job_discovery", "--workflow-version", version, "--detach", *target)
        execution_id = detached.stdout.strip()
        assert (await baton("watch", execution_id, *target)).returncode == 0
        status = await baton("status", execution_id, *target)
        assert re.search(rf"^workflow\s+job_discovery v{re.escape(version)}\s*$", status.stdout, re.M), status.stdout
        assert re.search(r"^cost\s+\d", status.stdout, re.M), status.stdout


# ---- authorization --------------------------------------------------------------------------------------


async def test_only_admins_may_use_the_registry_when_authentication_is_on(tmp_path: Path) -> None:
    keys = make_keys(tmp_path / "keys")
    running = await start_secured(tmp_path, keys)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            text = with_extra_step("1.1.0")
            calls = {
                "register": lambda md: stub.RegisterWorkflow(
                    R.RegisterWorkflowRequest(definition_yaml=text), metadata=md
                ),
                "get": lambda md: stub.GetWorkflow(R.GetWorkflowRequest(workflow_type="job_discovery"), metadata=md),
                "list": lambda md: stub.ListWorkflows(R.ListWorkflowsRequest(), metadata=md),
                "deprecate": lambda md: stub.DeprecateWorkflow(
                    R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="1.1.0"), metadata=md
                ),
            }
            for who in (keys.token("alice"), keys.token("oscar", "operator")):
                for name, call in calls.items():
                    error = await error_of(call(bearer(who)))
                    assert error.code() == Code.PERMISSION_DENIED, name
                    assert "the admin role" in (error.details() or ""), error.details()
            for name, call in calls.items():
                error = await error_of(call(()))
                assert error.code() == Code.UNAUTHENTICATED, name
            admin = bearer(keys.token("ada", "admin"))
            registered = await calls["register"](admin)
            assert registered.created and registered.workflow.registered_by == "ada"
            assert (await calls["get"](admin)).version == "1.1.0"
            assert len((await calls["list"](admin)).workflows) == 5
            assert (await calls["deprecate"](admin)).deprecated
            # A user runs the admin's versions; the denied calls stored nothing.
            user = O.ExecuteWorkflowRequest(workflow_type="job_discovery", workflow_version="1.0.0")
            execution = await stub.ExecuteWorkflow(user, metadata=bearer(keys.token("alice")))
            assert execution.plan.workflow_version == "1.0.0"
    finally:
        await running.stop(grace=0.5)
