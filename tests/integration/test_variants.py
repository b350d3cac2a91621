"""A/B variants over real gRPC: a 50/50 split that is sticky per user, recorded, reported, and validated.

job_discovery 1.1.0 adds a step that waits half a second; 1.2.0 carries two variants, control
(1.0.0, the built-in) and slow (1.1.0), 50/50. Forty users run it twice each: both variants get
users in roughly equal shares, every user the same variant each time and after a restart, every
execution shows its variant, and the report gives each variant's outcomes with sample sizes
(slow's durations half a second longer). Then what bypasses an experiment, a deprecated
variant leaving the split, and the definitions refused.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml
from baton.v1 import execution_pb2, orchestrator_pb2, plan_pb2, registry_pb2, reports_pb2

from server.planner import assign_variant
from tests.integration.support import watch_all
from tests.integration.test_cli import baton
from tests.integration.test_registry import Servers, builtin, error_of, execute

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
R = registry_pb2
Code = grpc.StatusCode

pytestmark = pytest.mark.timeout(180)

USERS = [f"ab-user-{i}" for i in range(40)]
RUNS_PER_USER = 2
VERSIONS = {"control": "1.0.0", "slow": "1.1.0"}
WAIT_STEP = "wait_a_little"


@pytest.fixture
async def servers(tmp_path: Path) -> Any:
    servers = Servers(f"sqlite:///{tmp_path}/baton.db")
    try:
        yield servers
    finally:
        await servers.stop()


def slow_version() -> str:
    """job_discovery 1.1.0: one more step, scheduled half a second after the matches are scored."""
    definition = builtin()
    definition["version"] = "1.1.0"
    definition["workflow_steps"].append(
        {
            "step_id": WAIT_STEP,
            "step_name": "Record the search a little later",
            "agent": "analytics",
            "operation": "RecordEvents",
            "dependencies": ["score_matches"],
            "inputs": {"configuration": {"user_id": "${user.user_id}", "events": [{"name": "search_recorded"}]}},
            "timing": {"estimated_duration": "0.6s", "timeout": "5s", "scheduling": "scheduled", "delay": "0.5s"},
            "error_handling": {"retry_count": 1, "fallback_action": "fail"},
            "optional": False,
        }
    )
    return yaml.safe_dump(definition, sort_keys=False)


def experiment(variants: list[dict[str, Any]], version: str = "1.2.0") -> str:
    """The built-in job_discovery as `version`, carrying `variants`."""
    definition = builtin()
    definition["version"] = version
    definition["variants"] = variants
    return yaml.safe_dump(definition, sort_keys=False)


SPLIT = [{"name": "control", "weight": 50, "version": "1.0.0"}, {"name": "slow", "weight": 50, "version": "1.1.0"}]


def expected_variant(user: str) -> str:
    index = assign_variant("job_discovery", "job_discovery@1.2.0", user, [50, 50])
    return ("control", "slow")[index]


def preview(user: str, version: str = "") -> O.PlanWorkflowRequest:
    request = O.PlanWorkflowRequest(workflow_type="job_discovery", workflow_version=version)
    request.user_context.user_id = user
    return request


async def run(stub: Any, user: str, tag: str) -> tuple[O.Execution, E.ExecutionStatus]:
    execution = await stub.ExecuteWorkflow(execute(user=user, request_id=f"{user}-{tag}"), timeout=10)
    updates = await watch_all(stub, execution.execution_id, deadline=60)
    return execution, updates[-1].status


async def test_a_50_50_split_is_sticky_per_user_recorded_on_each_execution_and_reported_across_a_restart(
    servers: Servers,
) -> None:
    server = await servers.start()
    stub = server.stub
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=slow_version()))
    registered = await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=experiment(SPLIT)))
    assert (registered.workflow.version, registered.workflow.latest) == ("1.2.0", True)

    expected = {user: expected_variant(user) for user in USERS}
    shares = Counter(expected.values())
    assert shares.keys() == {"control", "slow"} and all(12 <= n <= 28 for n in shares.values()), shares

    # Two executions per user, ten at a time: each planned from its user's variant's version.
    results: list[tuple[str, O.Execution, E.ExecutionStatus]] = []
    jobs = [(user, tag) for tag in ("a", "b") for user in USERS]
    for start in range(0, len(jobs), 10):
        batch = jobs[start : start + 10]
        done = await asyncio.gather(*(run(stub, user, tag) for user, tag in batch))
        results += [(user, execution, status) for (user, _), (execution, status) in zip(batch, done, strict=True)]
    assigned: dict[str, set[str]] = {}
    for user, execution, status in results:
        variant = execution.plan.variant
        assert (variant.name, variant.experiment) == (expected[user], "job_discovery@1.2.0")
        assert (variant.weight, variant.total_weight) == (50, 100)
        assert execution.plan.workflow_version == VERSIONS[variant.name]
        assert (WAIT_STEP in [s.step_id for s in execution.plan.workflow_steps]) == (variant.name == "slow")
        assert status.status == E.EXECUTION_STATE_COMPLETED, status.failure_reason
        assert status.variant == variant and status.workflow_version == VERSIONS[variant.name]
        assigned.setdefault(user, set()).add(variant.name)
    assert assigned == {user: {expected[user]} for user in USERS}

    # The report: per variant, its runs, completion, durations and quality, with sample sizes.
    report = await stub.GetWorkflowReport(
        reports_pb2.GetWorkflowReportRequest(workflow_type="job_discovery", max_executions=1000), timeout=30
    )
    assert report.executions == len(jobs)
    by_name = {v.name: v for v in report.variants}
    assert [v.name for v in report.variants] == ["control", "slow"]
    for name, v in by_name.items():
        runs = shares[name] * RUNS_PER_USER
        assert (v.experiment, v.workflow_version) == ("job_discovery@1.2.0", VERSIONS[name])
        assert (v.executions, v.completed, v.completion_rate) == (runs, runs, 1.0)
        assert v.duration_samples == runs and v.quality_samples == runs
        assert 0 < v.duration_p50.ToNanoseconds() <= v.duration_p95.ToNanoseconds()
        assert 0 < v.quality <= 100
    slow_p50 = by_name["slow"].duration_p50.ToNanoseconds() / 1e9
    control_p50 = by_name["control"].duration_p50.ToNanoseconds() / 1e9
    assert slow_p50 >= control_p50 + 0.4, (slow_p50, control_p50)

    printed = await baton("report", "job_discovery", "--last", "1000", "--target", server.running.address)
    assert printed.returncode == 0, printed.stderr
    assert "A/B variants" in printed.stdout
    rows = [line.split() for line in printed.stdout.splitlines() if line.startswith("job_discovery@1.2.0")]
    assert [(r[1], r[2], r[3], r[5]) for r in rows] == [
        ("control", "1.0.0", str(shares["control"] * 2), "100%"),
        ("slow", "1.1.0", str(shares["slow"] * 2), "100%"),
    ]

    # A restart: every execution keeps its variant; every user still gets the same one.
    server = await servers.start()
    stub = server.stub
    for user, execution, _ in results[:: len(results) // 8]:
        status = await stub.GetExecution(O.GetExecutionRequest(execution_id=execution.execution_id))
        assert status.variant.name == expected[user]
    for user in USERS:
        plan = await stub.PlanWorkflow(preview(user), timeout=10)
        assert (plan.variant.name, plan.workflow_version) == (expected[user], VERSIONS[expected[user]])
    for user in USERS[:4]:
        execution, status = await run(stub, user, "after-restart")
        assert execution.plan.variant.name == status.variant.name == expected[user]
        assert status.status == E.EXECUTION_STATE_COMPLETED, status.failure_reason


async def test_what_runs_outside_an_experiment_and_a_deprecated_variant_leaving_the_split(servers: Servers) -> None:
    server = await servers.start()
    stub = server.stub
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=slow_version()))
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=experiment(SPLIT)))
    user = next(u for u in USERS if expected_variant(u) == "slow")

    # Naming the experiment's version assigns as the default does; naming a variant's target runs
    # it outside the experiment (no variant recorded, so the report does not count it).
    assert (await stub.PlanWorkflow(preview(user, "1.2.0"))).variant.name == "slow"
    shown = await baton("plan", "job_discovery", "--user", user, "--target", server.running.address)
    assert shown.returncode == 0, shown.stderr
    assert "job_discovery v1.1.0 (variant slow of job_discovery@1.2.0)" in shown.stdout
    named = await stub.PlanWorkflow(preview(user, "1.1.0"))
    assert named.workflow_version == "1.1.0" and not named.HasField("variant")

    # A client cannot choose its variant: an explicit plan's is cleared.
    plan = plan_pb2.OrchestrationPlan()
    plan.CopyFrom(await stub.PlanWorkflow(preview(user)))
    plan.variant.name = "control"
    explicit = O.ExecuteWorkflowRequest(plan=plan, request_id="explicit")
    explicit.user_context.user_id = user
    submitted = await stub.ExecuteWorkflow(explicit)
    assert not submitted.plan.HasField("variant")
    final = (await watch_all(stub, submitted.execution_id, deadline=60))[-1].status
    assert not final.HasField("variant")

    # A variant whose version is deprecated leaves the split: its users go to the others.
    await stub.DeprecateWorkflow(R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="1.1.0"))
    for u in USERS[:10]:
        variant = (await stub.PlanWorkflow(preview(u))).variant
        assert (variant.name, variant.weight, variant.total_weight) == ("control", 50, 50)


async def test_invalid_variants_are_refused_naming_the_variant_and_field(servers: Servers) -> None:
    stub = (await servers.start()).stub
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=slow_version()))
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=experiment(SPLIT, "1.2.0")))
    other = experiment([{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "version": "1.0.0"}], "1.3.0")
    await stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=other))
    await stub.DeprecateWorkflow(R.DeprecateWorkflowRequest(workflow_type="job_discovery", version="1.3.0"))

    cases = [
        ([{"name": "a", "weight": 0}, {"name": "b", "weight": 1}], "variants[0].weight must be an integer from 1"),
        ([{"name": "a", "weight": -50}, {"name": "b", "weight": 1}], "variants[0].weight"),
        ([{"name": "a", "weight": 1}, {"name": "a", "weight": 1}], "variants[1].name 'a' is another variant's name"),
        ([{"name": "a", "weight": 1}], "from 2 to 16 variants"),
        (
            [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "version": "9.9.9"}],
            "variants[1].version: job_discovery has no version 9.9.9 (variant 'b')",
        ),
        ([{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "version": "1.1"}], "not a semantic version"),
        (
            [{"name": "a", "weight": 1}, {"name": "b", "weight": 1, "version": "1.2.0"}],
            "variants[1].version: job_discovery 1.2.0 (variant 'b') carries variants itself",
        ),
        (
            [{"name": "a", "weight": 1, "version": "1.3.0"}, {"name": "b", "weight": 1}],
            "variants[0].version: job_discovery 1.3.0 (variant 'a') is deprecated",
        ),
        ([{"name": "a", "weight": 1, "users": ["x"]}, {"name": "b", "weight": 1}], "unknown key 'users'"),
    ]
    for variants, message in cases:
        error = await error_of(
            stub.RegisterWorkflow(R.RegisterWorkflowRequest(definition_yaml=experiment(variants, "2.0.0")))
        )
        assert error.code() == Code.INVALID_ARGUMENT, (variants, error.details())
        assert message in (error.details() or ""), (message, error.details())
    listed = await stub.ListWorkflows(R.ListWorkflowsRequest(workflow_type="job_discovery"))
    assert "2.0.0" not in [w.version for w in listed.workflows]
