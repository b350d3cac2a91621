"""Request bounds over real gRPC: past a bound INVALID_ARGUMENT naming the field, inside it accepted."""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2

from agents_clients import BreakerConfig
from server.api.limits import MAX_DEPTH, MAX_ITEMS, MAX_STRING_BYTES, MAX_STRUCT_BYTES
from server.app import RunningServer, start_server
from server.config import LimitsConfig, ServerConfig
from tests.integration.store_support import nested_struct
from tests.integration.support import execute_plan, step, w_plan, watch_all

E = execution_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub


def job_search(**data: object) -> orchestrator_pb2.ExecuteWorkflowRequest:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_search")
    request.user_context.user_id = "u1"
    request.user_context.data.update(data)
    return request


def plan_request(request: orchestrator_pb2.ExecuteWorkflowRequest) -> orchestrator_pb2.PlanWorkflowRequest:
    return orchestrator_pb2.PlanWorkflowRequest(workflow_type=request.workflow_type, user_context=request.user_context)


async def refused(call: object) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call  # type: ignore[misc]
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT, raised.value.details()
    return raised.value.details() or ""


async def test_the_issues_33_level_user_data_is_refused_naming_the_field(stub: Stub) -> None:
    request = job_search()
    request.user_context.data.CopyFrom(nested_struct(33))

    executed = await refused(stub.ExecuteWorkflow(request))
    planned = await refused(stub.PlanWorkflow(plan_request(request)))

    assert executed.startswith("user_context.data.a.a.a")
    assert executed.endswith(": nested deeper than 16 levels")
    assert planned == executed
    listed = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest())
    assert list(listed.executions) == []


async def test_user_data_just_inside_every_bound_runs_to_completion(stub: Stub) -> None:
    request = job_search(notes="n" * MAX_STRING_BYTES, ids=list(range(MAX_ITEMS)))
    request.user_context.data.fields["deep"].struct_value.CopyFrom(nested_struct(MAX_DEPTH - 1))
    assert request.user_context.data.ByteSize() <= MAX_STRUCT_BYTES

    plan = await stub.PlanWorkflow(plan_request(request))
    execution = await stub.ExecuteWorkflow(request)

    assert plan.workflow_steps
    assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED


async def test_each_bound_of_user_data_is_refused_one_past_it(stub: Stub) -> None:
    deep = job_search()
    deep.user_context.data.fields["deep"].struct_value.CopyFrom(nested_struct(MAX_DEPTH))
    long_string = job_search(notes="n" * (MAX_STRING_BYTES + 1))
    many = job_search(ids=list(range(MAX_ITEMS + 1)))
    big = job_search(**{f"s{i}": "b" * (MAX_STRING_BYTES - 100) for i in range(5)})

    assert (await refused(stub.ExecuteWorkflow(deep))).startswith("user_context.data.deep.a.a")
    assert (await refused(stub.ExecuteWorkflow(long_string))).startswith("user_context.data.notes: a string")
    assert (await refused(stub.PlanWorkflow(plan_request(many)))).startswith(
        f"user_context.data.ids: {MAX_ITEMS + 1} items"
    )
    assert (await refused(stub.ExecuteWorkflow(big))).startswith("user_context.data: ")


async def test_an_explicit_plan_is_bounded_too_and_still_runs_inside_the_bounds(stub: Stub) -> None:
    plan = w_plan()
    plan.workflow_steps.append(step("F", "E", config={"user_id": "${user.user_id}"}))
    inside = execute_plan(plan)
    inside.plan.workflow_steps[5].step_name = "f" * MAX_STRING_BYTES
    past = execute_plan(plan)
    past.plan.workflow_steps[5].step_name = "f" * (MAX_STRING_BYTES + 1)
    too_big = execute_plan(w_plan())
    for index in range(9):
        too_big.plan.workflow_steps.append(step(f"S{index}"))
        too_big.plan.workflow_steps[-1].step_name = "x" * (MAX_STRING_BYTES - 100)

    execution = await stub.ExecuteWorkflow(inside)
    assert (await watch_all(stub, execution.execution_id))[-1].status.status == E.EXECUTION_STATE_COMPLETED
    assert (await refused(stub.ExecuteWorkflow(past))).startswith("plan.workflow_steps[5].step_name: a string")
    assert (await refused(stub.ExecuteWorkflow(too_big))).startswith("request: ")


# ---- configured limits, quotas and the one message size limit ----------------------------------


async def _server(tmp_path: Path, **limits: Any) -> RunningServer:
    return await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            limits=LimitsConfig(**limits),
        )
    )


async def test_submissions_past_a_users_quota_are_resource_exhausted_naming_it(tmp_path: Path) -> None:
    running = await _server(tmp_path, submissions_per_minute=3)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            for _ in range(3):
                await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="busy"))
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="busy"))
            assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (raised.value.details() or "").startswith(
                "submissions_per_minute: more than 3 submissions a minute for this user; try again in"
            )
            # Another user is not held back by the first one's quota.
            await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="calm"))
    finally:
        await running.stop(grace=0.5)


async def test_configured_plan_and_string_bounds_are_applied_naming_the_limit(tmp_path: Path) -> None:
    running = await _server(tmp_path, max_plan_steps=2, max_string_bytes=4096, max_json_depth=3)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            steps = await refused(stub.ExecuteWorkflow(execute_plan(w_plan())))
            assert steps == "plan.workflow_steps: 5 steps, more than the 2 allowed"
            text = await refused(stub.ExecuteWorkflow(job_search(resume_text="r" * 5000)))
            assert text == "user_context.data.resume_text: a string longer than 4 KiB (max_string_bytes)"
            deep = await refused(stub.ExecuteWorkflow(job_search(a={"b": {"c": {"d": 1}}})))
            assert deep == "user_context.data.a.b.c: nested deeper than 3 levels"
            await stub.ExecuteWorkflow(job_search(resume_text="r" * 4000, a={"b": {"c": 1}}))
    finally:
        await running.stop(grace=0.5)


async def test_a_5_mb_resume_text_is_refused_before_it_can_reach_an_agent(stub: Stub) -> None:
    # Past the one message limit (4 MiB): gRPC itself refuses it, naming the limit.
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.ExecuteWorkflow(job_search(resume_text="r" * (5 * 1024 * 1024)))
    assert raised.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "larger than max" in (raised.value.details() or "")
    # Under it but past half of it (what an agent's request may carry besides): INVALID_ARGUMENT.
    chunks = {f"part{i}": "r" * (250 * 1024) for i in range(12)}
    message = await refused(stub.ExecuteWorkflow(job_search(**chunks)))
    assert message.startswith("request: ") and message.endswith("more than the 2 MiB allowed (max_request)")


# ---- the fuzz run's findings, and their siblings ------------------------------------------------


async def test_a_retried_request_id_with_nul_is_invalid_argument_each_time(stub: Stub) -> None:
    request = execute_plan(w_plan(), request_id="retry-\x00-me")
    for _ in range(2):
        message = await refused(stub.ExecuteWorkflow(request))
        assert message == "request_id: must not contain NUL (U+0000), got 'retry-\\x00-me'"
    same = execute_plan(w_plan(), request_id="retry-me")
    first = await stub.ExecuteWorkflow(same)
    again = await stub.ExecuteWorkflow(same)
    assert again.execution_id == first.execution_id and not again.created


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.ExecuteWorkflow(execute_plan(w_plan(), user_id="u\x00")), "user_context.user_id"),
        (lambda s: s.ExecuteWorkflow(_typed("job\x00")), "workflow_type"),
        (lambda s: s.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id="e\x00")), "execution_id"),
        (lambda s: s.CancelExecution(orchestrator_pb2.CancelExecutionRequest(execution_id="e\x00")), "execution_id"),
        (lambda s: s.RerunExecution(orchestrator_pb2.RerunExecutionRequest(execution_id="e\x00")), "execution_id"),
        (
            lambda s: s.RerunExecution(orchestrator_pb2.RerunExecutionRequest(execution_id="e", from_step="s\x00")),
            "from_step",
        ),
        (
            lambda s: s.RerunExecution(orchestrator_pb2.RerunExecutionRequest(execution_id="e", request_id="r" * 129)),
            "request_id",
        ),
        (lambda s: s.ListExecutions(orchestrator_pb2.ListExecutionsRequest(user_id="u\x00")), "user_id"),
        (lambda s: s.ListExecutions(orchestrator_pb2.ListExecutionsRequest(user_id="u" * 300)), "user_id"),
        (lambda s: s.ListExecutions(orchestrator_pb2.ListExecutionsRequest(page_token="t" * 2000)), "page_token"),
    ],
)
async def test_keys_no_store_can_hold_are_invalid_argument_naming_the_field(
    stub: Stub, call: Callable[[Stub], object], field: str
) -> None:
    assert (await refused(call(stub))).startswith(f"{field}: ")


def _typed(workflow_type: str) -> orchestrator_pb2.ExecuteWorkflowRequest:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type=workflow_type)
    request.user_context.user_id = "u1"
    return request


@pytest.mark.parametrize("created_at", [2**63, -(2**63) - 1, 10**30])
async def test_a_page_token_of_a_time_past_any_store_is_invalid_argument(stub: Stub, created_at: int) -> None:
    token = base64.urlsafe_b64encode(f"1:{created_at}:x".encode()).decode().rstrip("=")
    message = await refused(stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest(page_token=token)))
    assert message.startswith("page_token ") and message.endswith("is not a token this store made")


def _conditional(condition: str) -> plan_pb2.OrchestrationPlan:
    plan = w_plan()
    timing = plan.workflow_steps[1].timing
    timing.scheduling = plan_pb2.SCHEDULING_CONDITIONAL
    timing.condition = condition
    return plan


@pytest.mark.parametrize(
    ("expression", "problem"),
    [
        ("!" * 487 + "a", "nested deeper than 32 levels"),  # the fuzz run's 488 characters
        ("!" * 33 + "a", "nested deeper than 32 levels"),
        ("abs(" * 40 + "a" + ")" * 40, "nested deeper than 32 levels"),
        ("|".join(["a"] * 400), "nested deeper than 32 levels"),
        ("a" * 1025, "1025 characters, more than the 1024 allowed"),
    ],
)
async def test_a_condition_nested_or_long_past_the_bounds_is_invalid_argument(
    stub: Stub, expression: str, problem: str
) -> None:
    message = await refused(stub.ExecuteWorkflow(execute_plan(_conditional(expression))))
    assert message.startswith("plan.workflow_steps[1].timing.condition: expression ")
    assert message.endswith(f"does not compile: {problem}")
    assert len(message) < 300  # the expression is quoted by a bounded prefix


async def test_an_input_expression_nested_past_the_bound_is_invalid_argument(stub: Stub) -> None:
    plan = w_plan()
    plan.workflow_steps[0].inputs.configuration.update({"user_id": "${" + "!" * 300 + "user.user_id}"})
    message = await refused(stub.ExecuteWorkflow(execute_plan(plan)))
    assert message.startswith("plan.workflow_steps[0].inputs.configuration.user_id: expression ")
    assert message.endswith("does not compile: nested deeper than 32 levels")


async def test_a_condition_just_inside_the_bounds_runs(stub: Stub) -> None:
    execution = await stub.ExecuteWorkflow(execute_plan(_conditional("!" * 30 + "user.user_id")))
    updates = await watch_all(stub, execution.execution_id)
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED


# ---- messages quote a bounded prefix of the input -----------------------------------------------


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.ExecuteWorkflow(_typed("w" * 200)),
        lambda s: s.PlanWorkflow(orchestrator_pb2.PlanWorkflowRequest(workflow_type="w" * 100_000)),
        lambda s: s.ExecuteWorkflow(execute_plan(_with_step(agent="a" * 100_000))),
        lambda s: s.ExecuteWorkflow(execute_plan(_with_step(operation="o" * 100_000))),
        lambda s: s.ExecuteWorkflow(execute_plan(_with_step(deps=("d" * 100_000,)))),
        lambda s: s.ExecuteWorkflow(execute_plan(_with_step(step_id="s" * 100_000))),
        lambda s: s.ExecuteWorkflow(execute_plan(_with_step(config={"k" * 100_000: 1}))),
        lambda s: s.ExecuteWorkflow(execute_plan(_conditional("a" * 100_000))),
        lambda s: s.ExecuteWorkflow(execute_plan(w_plan(), callback_url="c" * 100_000)),
        lambda s: s.ListExecutions(orchestrator_pb2.ListExecutionsRequest(page_token="!" * 1000)),
        lambda s: s.GetStepOutput(orchestrator_pb2.GetStepOutputRequest(execution_id="e", step_id="s" * 60)),
    ],
)
async def test_an_error_message_quotes_at_most_a_bounded_prefix_of_the_input(
    stub: Stub, call: Callable[[Stub], object]
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call(stub)  # type: ignore[misc]
    assert raised.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND)
    assert len(raised.value.details() or "") < 600, raised.value.details()


def _with_step(
    *,
    step_id: str = "X",
    agent: str = "analytics",
    operation: str = "RecordEvents",
    deps: tuple[str, ...] = (),
    config: dict[str, Any] | None = None,
) -> plan_pb2.OrchestrationPlan:
    plan = w_plan()
    added = step(step_id, *deps, agent=agent, operation=operation, config=config)
    plan.workflow_steps.append(added)
    return plan


# ---- one user's oversized payload opens no breaker for everyone ---------------------------------


def _amplifying(user_id: str) -> orchestrator_pb2.ExecuteWorkflowRequest:
    """A run whose agent request copies 920 KB of the user's data six times: past the 4 MiB limit."""
    copies = [{"name": f"${{user.data.b{i % 4}}}"} for i in range(24)]
    config = {"user_id": "${user.user_id}", "events": copies}
    request = execute_plan(plan_pb2.OrchestrationPlan(workflow_steps=[step("A", config=config)]), user_id=user_id)
    request.user_context.data.update({f"b{i}": "b" * (230 * 1024) for i in range(4)})
    return request


async def test_two_oversized_requests_open_no_breaker_and_the_next_users_run_completes(tmp_path: Path) -> None:
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            breaker=BreakerConfig(fail_max=2, reset_timeout=600),
        )
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            heavy = []
            for user in ("heavy-1", "heavy-2"):
                execution = await stub.ExecuteWorkflow(_amplifying(user))
                heavy.append(await watch_all(stub, execution.execution_id))
            execution = await stub.ExecuteWorkflow(execute_plan(w_plan(), user_id="next-user"))
            final = (await watch_all(stub, execution.execution_id))[-1].status
            assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
        for updates in heavy:
            failed = updates[-1].status
            assert failed.status == E.EXECUTION_STATE_FAILED
            assert "RESOURCE_EXHAUSTED" in failed.failure_reason and "max_message_bytes" in failed.failure_reason
            # The same payload is not sent again: one attempt, no retry.
            assert [u.event.WhichOneof("kind") for u in updates].count("step_attempt_failed") == 1
    finally:
        await running.stop(grace=0.5)


async def test_an_int32_out_of_range_from_an_expression_fails_the_step_unsent_and_the_next_run_completes(
    tmp_path: Path,
) -> None:
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            breaker=BreakerConfig(fail_max=1, reset_timeout=600),
        )
    )
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            config = {"user_id": "${user.user_id}", "limit": "${user.data.limit}"}
            plan = plan_pb2.OrchestrationPlan(
                workflow_steps=[step("search", agent="job_discovery", operation="SearchJobs", config=config)]
            )
            request = execute_plan(plan, user_id="big-limit")
            request.user_context.data.update({"limit": 2**40})
            execution = await stub.ExecuteWorkflow(request)
            updates = await watch_all(stub, execution.execution_id)
            kinds = [u.event.WhichOneof("kind") for u in updates]
            assert kinds.count("step_attempt_failed") == 1
            failed = next(u.event.step_attempt_failed for u in updates if u.event.HasField("step_attempt_failed"))
            assert failed.error_type == "INVALID_ARGUMENT" and failed.request_bytes == 0  # nothing was sent
            assert updates[-1].status.status == E.EXECUTION_STATE_FAILED

            fine = plan_pb2.OrchestrationPlan()
            fine.CopyFrom(plan)
            fine.workflow_steps[0].inputs.configuration.update({"limit": 5})
            execution = await stub.ExecuteWorkflow(execute_plan(fine, user_id="next-user"))
            final = (await watch_all(stub, execution.execution_id))[-1].status
            assert final.status == E.EXECUTION_STATE_COMPLETED, final.failure_reason
    finally:
        await running.stop(grace=0.5)


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.ListAuditEvents(orchestrator_pb2.ListAuditEventsRequest(subject="a\x00b")),
        lambda s: s.ListAuditEvents(orchestrator_pb2.ListAuditEventsRequest(user_id="a\x00b")),
        lambda s: s.DeleteUserData(orchestrator_pb2.DeleteUserDataRequest(user_id="a\x00b")),
    ],
)
async def test_audit_filters_and_deletions_with_nul_are_invalid_argument(
    stub: Stub, call: Callable[[Stub], object]
) -> None:
    assert "must not contain NUL" in await refused(call(stub))
