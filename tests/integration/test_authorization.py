"""Authorization over real gRPC with --auth jwt: every RPC of both services as every kind of caller.

The table test tries each RPC of baton.v1.Orchestrator and baton.v1.SeedApi against user A's
(completed) execution as: no token, a badly signed token, an expired token, user A (the owner),
user B, an operator and an admin, and asserts the exact status of each. User B gets NOT_FOUND
for everything about A's execution, with the very message a missing execution gets, and never
any of its data; lists never show B an execution of A's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from baton.v1 import (
    execution_pb2,
    orchestrator_pb2,
    orchestrator_pb2_grpc,
    plan_pb2,
    registry_pb2,
    reports_pb2,
    seed_api_pb2,
    seed_api_pb2_grpc,
    triggers_pb2,
)
from google.protobuf.message import Message
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from server.app import RunningServer
from server.auth.interceptor import AuthInterceptor
from server.auth.policy import GUARDED_SERVICES, POLICY
from server.auth.verifier import JwtVerifier
from server.planner import DEFINITIONS_DIR
from tests.integration.auth_support import ALICE, BOB, Keys, Metadata, bearer, callers, make_keys, start_secured
from tests.integration.support import execute_plan, step, w_plan

E = execution_pb2
O = orchestrator_pb2  # noqa: E741
S = seed_api_pb2
R = registry_pb2
T = triggers_pb2
Code = grpc.StatusCode

pytestmark = pytest.mark.timeout(60)

ORCHESTRATOR = O.DESCRIPTOR.services_by_name["Orchestrator"]
SEED = S.DESCRIPTOR.services_by_name["SeedApi"]
ALL_METHODS = {f"/{service.full_name}/{m.name}" for service in (ORCHESTRATOR, SEED) for m in service.methods}
UNAUTHENTICATED = ("no token", "bad token", "expired token")
MISSING = "no-such-execution"


@dataclass
class Stubs:
    orchestrator: orchestrator_pb2_grpc.OrchestratorStub
    seed: seed_api_pb2_grpc.SeedApiStub


Call = Callable[[Stubs, str, Metadata], Awaitable[object]]


async def _all(stream: AsyncIterator[Message]) -> list[Message]:
    return [item async for item in stream]


def _own_plan() -> O.ExecuteWorkflowRequest:
    # No user_id: the owner is the caller.
    return O.ExecuteWorkflowRequest(plan=plan_pb2.OrchestrationPlan(workflow_type="w", workflow_steps=[step("A")]))


def _new_version() -> str:
    return (DEFINITIONS_DIR / "document_analysis.yaml").read_text().replace('version: "1.0.0"', 'version: "1.0.1"')


def _seed_execute() -> S.SeedExecuteRequest:
    request = S.SeedExecuteRequest(workflow_type="document_analysis")
    request.user_context.update({"resume_text": "Python developer"})
    return request


CALLS: dict[str, Call] = {
    "/baton.v1.Orchestrator/ExecuteWorkflow": lambda s, x, md: s.orchestrator.ExecuteWorkflow(
        _own_plan(), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/PlanWorkflow": lambda s, x, md: s.orchestrator.PlanWorkflow(
        O.PlanWorkflowRequest(workflow_type="document_analysis"), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/GetExecution": lambda s, x, md: s.orchestrator.GetExecution(
        O.GetExecutionRequest(execution_id=x), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/WatchExecution": lambda s, x, md: _all(
        s.orchestrator.WatchExecution(O.WatchExecutionRequest(execution_id=x), metadata=md, timeout=10)
    ),
    "/baton.v1.Orchestrator/GetStepOutput": lambda s, x, md: s.orchestrator.GetStepOutput(
        O.GetStepOutputRequest(execution_id=x, step_id="A"), metadata=md, timeout=10
    ),
    # Asks for A's executions by name: a user gets their own whatever they ask.
    "/baton.v1.Orchestrator/ListExecutions": lambda s, x, md: s.orchestrator.ListExecutions(
        O.ListExecutionsRequest(user_id=ALICE), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/CancelExecution": lambda s, x, md: s.orchestrator.CancelExecution(
        O.CancelExecutionRequest(execution_id=x), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/PauseExecution": lambda s, x, md: s.orchestrator.PauseExecution(
        O.PauseExecutionRequest(execution_id=x), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/ResumeExecution": lambda s, x, md: s.orchestrator.ResumeExecution(
        O.ResumeExecutionRequest(execution_id=x), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/SignalExecution": lambda s, x, md: s.orchestrator.SignalExecution(
        O.SignalExecutionRequest(execution_id=x, signal=E.SIGNAL_APPROVE), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/RerunExecution": lambda s, x, md: s.orchestrator.RerunExecution(
        O.RerunExecutionRequest(execution_id=x), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/GetSystemHealth": lambda s, x, md: s.orchestrator.GetSystemHealth(
        O.GetSystemHealthRequest(), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/ListAuditEvents": lambda s, x, md: s.orchestrator.ListAuditEvents(
        O.ListAuditEventsRequest(), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/GetWorkflowReport": lambda s, x, md: s.orchestrator.GetWorkflowReport(
        reports_pb2.GetWorkflowReportRequest(workflow_type="w"), metadata=md, timeout=10
    ),
    # Never A's own data: the fixture execution must survive the admin's call.
    "/baton.v1.Orchestrator/DeleteUserData": lambda s, x, md: s.orchestrator.DeleteUserData(
        O.DeleteUserDataRequest(user_id="nobody-here"), metadata=md, timeout=10
    ),
    # An event no rule matches: nothing starts.
    "/baton.v1.Orchestrator/PublishEvent": lambda s, x, md: s.orchestrator.PublishEvent(
        T.PublishEventRequest(event_type="nothing.matches", subject=ALICE), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/RegisterTriggerRule": lambda s, x, md: s.orchestrator.RegisterTriggerRule(
        T.RegisterTriggerRuleRequest(
            rule=T.TriggerRule(name="never", event_type="never.published", workflow_type="job_discovery")
        ),
        metadata=md,
        timeout=10,
    ),
    "/baton.v1.Orchestrator/ListTriggerRules": lambda s, x, md: s.orchestrator.ListTriggerRules(
        T.ListTriggerRulesRequest(), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/DeleteTriggerRule": lambda s, x, md: s.orchestrator.DeleteTriggerRule(
        T.DeleteTriggerRuleRequest(name="no-such-rule"), metadata=md, timeout=10
    ),
    # The workflow registry: a new version of a built-in, read, listed and deprecated.
    "/baton.v1.Orchestrator/RegisterWorkflow": lambda s, x, md: s.orchestrator.RegisterWorkflow(
        R.RegisterWorkflowRequest(definition_yaml=_new_version(), version="1.0.1"), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/GetWorkflow": lambda s, x, md: s.orchestrator.GetWorkflow(
        R.GetWorkflowRequest(workflow_type="document_analysis"), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/ListWorkflows": lambda s, x, md: s.orchestrator.ListWorkflows(
        R.ListWorkflowsRequest(), metadata=md, timeout=10
    ),
    "/baton.v1.Orchestrator/DeprecateWorkflow": lambda s, x, md: s.orchestrator.DeprecateWorkflow(
        R.DeprecateWorkflowRequest(workflow_type="optimization", version="1.0.0"), metadata=md, timeout=10
    ),
    "/baton.v1.SeedApi/Execute": lambda s, x, md: s.seed.Execute(_seed_execute(), metadata=md, timeout=10),
    "/baton.v1.SeedApi/GetStatus": lambda s, x, md: s.seed.GetStatus(
        S.SeedStatusRequest(execution_id=x), metadata=md, timeout=10
    ),
    "/baton.v1.SeedApi/WatchStatus": lambda s, x, md: _all(
        s.seed.WatchStatus(S.SeedWatchRequest(execution_id=x), metadata=md, timeout=10)
    ),
    "/baton.v1.SeedApi/GetHealth": lambda s, x, md: s.seed.GetHealth(S.SeedHealthRequest(), metadata=md, timeout=10),
}

OK: frozenset[Code] = frozenset({Code.OK})
NOT_FOUND = frozenset({Code.NOT_FOUND})
DENIED = frozenset({Code.PERMISSION_DENIED})
REFUSED_STATE = frozenset({Code.FAILED_PRECONDITION})

_READ = {"user A": OK, "user B": NOT_FOUND, "operator": OK, "admin": OK}
_EVERYONE = {"user A": OK, "user B": OK, "operator": OK, "admin": OK}
# A's execution has completed: a control that got through is refused by its state, not its caller.
_CONTROL_ENDED = {"user A": REFUSED_STATE, "user B": NOT_FOUND, "operator": DENIED, "admin": REFUSED_STATE}
_STAFF = {"user A": DENIED, "user B": DENIED, "operator": OK, "admin": OK}
_ADMIN = {"user A": DENIED, "user B": DENIED, "operator": DENIED, "admin": OK}

EXPECTED: dict[str, dict[str, frozenset[Code]]] = {
    "/baton.v1.Orchestrator/ExecuteWorkflow": _EVERYONE,
    "/baton.v1.Orchestrator/PlanWorkflow": _EVERYONE,
    "/baton.v1.Orchestrator/GetExecution": _READ,
    "/baton.v1.Orchestrator/WatchExecution": _READ,
    "/baton.v1.Orchestrator/GetStepOutput": _READ,
    "/baton.v1.Orchestrator/ListExecutions": _EVERYONE,
    # Cancelling an ended execution returns its status unchanged.
    "/baton.v1.Orchestrator/CancelExecution": {"user A": OK, "user B": NOT_FOUND, "operator": DENIED, "admin": OK},
    "/baton.v1.Orchestrator/PauseExecution": _CONTROL_ENDED,
    "/baton.v1.Orchestrator/ResumeExecution": _CONTROL_ENDED,
    "/baton.v1.Orchestrator/SignalExecution": _CONTROL_ENDED,
    # Who may rerun is who may cancel; A's execution completed, so it is not rerun.
    "/baton.v1.Orchestrator/RerunExecution": _CONTROL_ENDED,
    "/baton.v1.Orchestrator/GetSystemHealth": _STAFF,
    "/baton.v1.Orchestrator/ListAuditEvents": _STAFF,
    "/baton.v1.Orchestrator/DeleteUserData": _ADMIN,
    "/baton.v1.Orchestrator/PublishEvent": _ADMIN,  # and publishers (test_triggers.py)
    "/baton.v1.Orchestrator/RegisterTriggerRule": _ADMIN,
    "/baton.v1.Orchestrator/ListTriggerRules": _STAFF,
    # Past the gate, an admin is told the rule does not exist.
    "/baton.v1.Orchestrator/DeleteTriggerRule": {
        "user A": DENIED,
        "user B": DENIED,
        "operator": DENIED,
        "admin": NOT_FOUND,
    },
    "/baton.v1.Orchestrator/RegisterWorkflow": _ADMIN,
    "/baton.v1.Orchestrator/GetWorkflow": _ADMIN,
    "/baton.v1.Orchestrator/ListWorkflows": _ADMIN,
    "/baton.v1.Orchestrator/DeprecateWorkflow": _ADMIN,
    "/baton.v1.Orchestrator/GetWorkflowReport": _STAFF,
    "/baton.v1.SeedApi/Execute": _EVERYONE,
    "/baton.v1.SeedApi/GetStatus": _READ,
    "/baton.v1.SeedApi/WatchStatus": _READ,
    "/baton.v1.SeedApi/GetHealth": _STAFF,
}


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
async def secured(tmp_path: Path, keys: Keys) -> AsyncIterator[RunningServer]:
    running = await start_secured(tmp_path, keys)
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def stubs(secured: RunningServer) -> AsyncIterator[Stubs]:
    async with grpc.aio.insecure_channel(secured.address) as channel:
        yield Stubs(orchestrator_pb2_grpc.OrchestratorStub(channel), seed_api_pb2_grpc.SeedApiStub(channel))


async def _completed_execution_of_alice(stubs: Stubs, keys: Keys) -> str:
    alice = bearer(keys.token(ALICE))
    request = execute_plan(w_plan(), user_id="")
    request.user_context.data.update({"secret": "alice's resume"})
    execution = await stubs.orchestrator.ExecuteWorkflow(request, metadata=alice, timeout=10)
    assert execution.plan.user_id == ALICE
    updates = [
        u
        async for u in stubs.orchestrator.WatchExecution(
            O.WatchExecutionRequest(execution_id=execution.execution_id), metadata=alice, timeout=30
        )
    ]
    assert updates[-1].status.status == E.EXECUTION_STATE_COMPLETED
    return str(execution.execution_id)


async def _outcome(call: Awaitable[object]) -> tuple[Code, object, str]:
    try:
        return Code.OK, await call, ""
    except grpc.aio.AioRpcError as error:
        return error.code(), None, error.details() or ""


def test_the_table_names_every_rpc_of_both_services_and_nothing_else() -> None:
    # A new RPC fails here until the policy, and this test's table, say who may call it.
    assert set(POLICY) == ALL_METHODS
    assert set(CALLS) == ALL_METHODS
    assert set(EXPECTED) == ALL_METHODS
    assert {ORCHESTRATOR.full_name, SEED.full_name} == GUARDED_SERVICES


@pytest.mark.parametrize("method", sorted(ALL_METHODS), ids=lambda m: m.rpartition("/")[2])
async def test_every_rpc_answers_each_caller_exactly_as_the_policy_says(stubs: Stubs, keys: Keys, method: str) -> None:
    execution_id = await _completed_execution_of_alice(stubs, keys)
    call = CALLS[method]
    seen: dict[str, Code] = {}
    for caller, metadata in callers(keys).items():
        code, reply, details = await _outcome(call(stubs, execution_id, metadata))
        seen[caller] = code
        assert ALICE not in details and "resume" not in details, (caller, details)
        if caller in UNAUTHENTICATED:
            assert code == Code.UNAUTHENTICATED, (caller, code, details)
            assert details.startswith("authorization: "), details
            continue
        assert code in EXPECTED[method][caller], (caller, code, details)
        if caller == "user B":
            assert execution_id not in str(reply), "user B saw A's execution"
            if code == Code.NOT_FOUND:
                # Exactly the answer for an execution that does not exist.
                _, _, missing = await _outcome(call(stubs, MISSING, metadata))
                assert details == missing.replace(MISSING, execution_id)
        if code == Code.PERMISSION_DENIED:
            assert "role" in details, details
        if method.endswith("/ListExecutions") and reply is not None:
            listed = {e.execution_id: e.user_id for e in reply.executions}  # type: ignore[attr-defined]
            if caller == "user B":
                assert listed == {}
            else:
                assert listed.get(execution_id) == ALICE, (caller, listed)
    assert set(seen) == {*UNAUTHENTICATED, "user A", "user B", "operator", "admin"}


async def test_a_user_lists_only_their_own_executions_whatever_the_request_names(stubs: Stubs, keys: Keys) -> None:
    alice_execution = await _completed_execution_of_alice(stubs, keys)
    bob = bearer(keys.token(BOB))
    mine = await stubs.orchestrator.ExecuteWorkflow(_own_plan(), metadata=bob, timeout=10)
    for asked in ("", ALICE, BOB):
        page = await stubs.orchestrator.ListExecutions(O.ListExecutionsRequest(user_id=asked), metadata=bob)
        assert [(e.execution_id, e.user_id) for e in page.executions] == [(mine.execution_id, BOB)]
    everyone = await stubs.orchestrator.ListExecutions(
        O.ListExecutionsRequest(), metadata=bearer(keys.token("oscar", "operator"))
    )
    assert {e.execution_id for e in everyone.executions} == {alice_execution, mine.execution_id}


async def test_the_owner_is_the_caller_and_another_user_id_is_refused_naming_the_field(
    stubs: Stubs, keys: Keys
) -> None:
    bob = bearer(keys.token(BOB))
    for request, field in (
        (execute_plan(w_plan(), user_id=ALICE), "user_context.user_id"),
        (
            O.ExecuteWorkflowRequest(plan=plan_pb2.OrchestrationPlan(user_id=ALICE, workflow_steps=[step("A")])),
            "plan.user_id",
        ),
    ):
        code, _, details = await _outcome(stubs.orchestrator.ExecuteWorkflow(request, metadata=bob))
        assert code == Code.PERMISSION_DENIED
        assert details.startswith(f"{field}: ")
    planned = O.PlanWorkflowRequest(workflow_type="document_analysis")
    planned.user_context.user_id = ALICE
    code, _, details = await _outcome(stubs.orchestrator.PlanWorkflow(planned, metadata=bob))
    assert (code, details.split(":")[0]) == (Code.PERMISSION_DENIED, "user_context.user_id")
    # Naming oneself is fine; even an admin owns what they submit.
    execution = await stubs.orchestrator.ExecuteWorkflow(execute_plan(w_plan(), user_id=BOB), metadata=bob)
    assert execution.plan.user_id == BOB
    admin = bearer(keys.token("ada", "admin"))
    code, _, _ = await _outcome(
        stubs.orchestrator.ExecuteWorkflow(execute_plan(w_plan(), user_id=ALICE), metadata=admin)
    )
    assert code == Code.PERMISSION_DENIED


async def test_a_request_id_is_scoped_to_its_owner(stubs: Stubs, keys: Keys) -> None:
    alice, bob = bearer(keys.token(ALICE)), bearer(keys.token(BOB))
    first = await stubs.orchestrator.ExecuteWorkflow(_own_plan_with("req-1"), metadata=alice)
    theirs = await stubs.orchestrator.ExecuteWorkflow(_own_plan_with("req-1"), metadata=bob)
    assert theirs.created and theirs.execution_id != first.execution_id
    assert theirs.plan.user_id == BOB
    again = await stubs.orchestrator.ExecuteWorkflow(_own_plan_with("req-1"), metadata=alice)
    assert (again.created, again.execution_id) == (False, first.execution_id)
    again_bob = await stubs.orchestrator.ExecuteWorkflow(_own_plan_with("req-1"), metadata=bob)
    assert (again_bob.created, again_bob.execution_id) == (False, theirs.execution_id)
    # The seed's Execute, the same.
    seed = _seed_execute()
    seed.request_id = "req-1"
    via_seed = await stubs.seed.Execute(seed, metadata=bob)
    assert via_seed.execution_id not in (first.execution_id,)


def _own_plan_with(request_id: str) -> O.ExecuteWorkflowRequest:
    request = _own_plan()
    request.request_id = request_id
    return request


def _approval_plan() -> plan_pb2.OrchestrationPlan:
    approve = plan_pb2.WorkflowStep(
        step_id="approve", step_name="approve", kind=plan_pb2.STEP_KIND_APPROVAL, dependencies=["A"]
    )
    approve.approval.prompt = "Apply?"
    return plan_pb2.OrchestrationPlan(
        workflow_type="approval", workflow_steps=[step("A"), approve, step("B", "approve")]
    )


async def _waiting_execution_of_alice(stubs: Stubs, keys: Keys) -> str:
    alice = bearer(keys.token(ALICE))
    execution = await stubs.orchestrator.ExecuteWorkflow(execute_plan(_approval_plan(), user_id=""), metadata=alice)
    async for update in stubs.orchestrator.WatchExecution(
        O.WatchExecutionRequest(execution_id=execution.execution_id), metadata=alice, timeout=30
    ):
        if update.event.HasField("step_waiting"):
            return str(execution.execution_id)
    raise AssertionError("the execution never waited")


async def test_only_the_owner_and_admins_control_a_running_execution(stubs: Stubs, keys: Keys) -> None:
    o = stubs.orchestrator
    alice, bob = bearer(keys.token(ALICE)), bearer(keys.token(BOB))
    operator, admin = bearer(keys.token("oscar", "operator")), bearer(keys.token("ada", "admin"))
    execution_id = await _waiting_execution_of_alice(stubs, keys)
    attempts: list[Callable[[Metadata], Awaitable[object]]] = [
        lambda md: o.SignalExecution(
            O.SignalExecutionRequest(execution_id=execution_id, signal=E.SIGNAL_REJECT), metadata=md
        ),
        lambda md: o.PauseExecution(O.PauseExecutionRequest(execution_id=execution_id), metadata=md),
        lambda md: o.CancelExecution(O.CancelExecutionRequest(execution_id=execution_id), metadata=md),
    ]
    for attempt in attempts:
        assert (await _outcome(attempt(bob)))[0] == Code.NOT_FOUND
        code, _, details = await _outcome(attempt(operator))
        assert (code, details) == (
            Code.PERMISSION_DENIED,
            "execution_id: controlling another user's execution needs the admin role",
        )
    status = await o.GetExecution(O.GetExecutionRequest(execution_id=execution_id), metadata=operator)
    assert [w.step_id for w in status.waiting] == ["approve"]
    assert status.status == E.EXECUTION_STATE_RUNNING
    approved = await o.SignalExecution(
        O.SignalExecutionRequest(execution_id=execution_id, signal=E.SIGNAL_APPROVE), metadata=alice
    )
    assert not approved.waiting
    final = (await watch_all_as(o, execution_id, alice))[-1].status
    assert final.status == E.EXECUTION_STATE_COMPLETED

    another = await _waiting_execution_of_alice(stubs, keys)
    cancelled = await o.CancelExecution(O.CancelExecutionRequest(execution_id=another, reason="admin"), metadata=admin)
    assert cancelled.execution_id == another
    final = (await watch_all_as(o, another, alice))[-1].status
    assert final.status == E.EXECUTION_STATE_CANCELLED


async def watch_all_as(
    stub: orchestrator_pb2_grpc.OrchestratorStub, execution_id: str, metadata: Metadata
) -> list[O.ExecutionUpdate]:
    request = O.WatchExecutionRequest(execution_id=execution_id)
    return [u async for u in stub.WatchExecution(request, metadata=metadata, timeout=30)]


async def test_health_and_reflection_stay_open_without_a_token(secured: RunningServer) -> None:
    async with grpc.aio.insecure_channel(secured.address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest(service="baton.v1.Orchestrator"), timeout=5)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        reflection = reflection_pb2_grpc.ServerReflectionStub(channel)
        answers = [
            a
            async for a in reflection.ServerReflectionInfo(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=5
            )
        ]
        names = {s.name for s in answers[0].list_services_response.service}
        assert {"baton.v1.Orchestrator", "baton.v1.SeedApi"} <= names


async def test_the_unauthenticated_answer_says_why_and_never_echoes_the_token(stubs: Stubs, keys: Keys) -> None:
    request = O.GetExecutionRequest(execution_id="x")
    expired = keys.token(ALICE, ttl=60, now=1_000_000)
    cases = {
        (): "authorization: a bearer token is required (metadata `authorization: Bearer <JWT>`)",
        (("authorization", f"Basic {expired}"),): "authorization: expected `Bearer <JWT>`",
        bearer(expired): "authorization: the bearer token has expired",
        bearer("not-a-jwt"): "authorization: the bearer token is not a well-formed JWT",
        bearer(keys.token(ALICE)) + bearer(keys.token(BOB)): "authorization: more than one authorization header",
    }
    for metadata, message in cases.items():
        code, _, details = await _outcome(stubs.orchestrator.GetExecution(request, metadata=metadata))
        assert (code, details) == (Code.UNAUTHENTICATED, message)
        assert expired not in details


async def test_an_rpc_the_policy_does_not_name_is_refused_even_to_an_admin(keys: Keys) -> None:
    # A real server whose policy lacks GetHealth: the servicer (the generated base class,
    # which answers UNIMPLEMENTED) is never reached for it.
    policy = {m: rule for m, rule in POLICY.items() if m != "/baton.v1.SeedApi/GetHealth"}
    server = grpc.aio.server(interceptors=[AuthInterceptor(JwtVerifier(keys.public_pem), policy)])
    seed_api_pb2_grpc.add_SeedApiServicer_to_server(seed_api_pb2_grpc.SeedApiServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            seed = seed_api_pb2_grpc.SeedApiStub(channel)
            admin = bearer(keys.token("ada", "admin"))
            code, _, details = await _outcome(seed.GetHealth(S.SeedHealthRequest(), metadata=admin))
            assert (code, details) == (Code.PERMISSION_DENIED, "GetHealth: no access rule names this method")
            code, _, _ = await _outcome(seed.GetStatus(S.SeedStatusRequest(execution_id="x"), metadata=admin))
            assert code == Code.UNIMPLEMENTED
    finally:
        await server.stop(None)


async def test_issuer_and_audience_are_enforced_by_a_configured_server(tmp_path: Path, keys: Keys) -> None:
    running = await start_secured(tmp_path, keys, jwt_issuer="https://id.example", jwt_audience="baton")
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = orchestrator_pb2_grpc.OrchestratorStub(channel)
            from server.auth.keys import mint_token

            good = mint_token(keys.private, BOB, issuer="https://id.example", audience="baton")
            page = await stub.ListExecutions(O.ListExecutionsRequest(), metadata=bearer(good))
            assert list(page.executions) == []
            for token in (
                mint_token(keys.private, BOB, issuer="https://id.example", audience="other"),
                mint_token(keys.private, BOB, issuer="https://elsewhere", audience="baton"),
                keys.token(BOB),
            ):
                code, _, _ = await _outcome(stub.ListExecutions(O.ListExecutionsRequest(), metadata=bearer(token)))
                assert code == Code.UNAUTHENTICATED
    finally:
        await running.stop(grace=0.5)


async def test_a_watch_of_another_users_execution_ends_before_sending_anything(stubs: Stubs, keys: Keys) -> None:
    execution_id = await _waiting_execution_of_alice(stubs, keys)
    bob = bearer(keys.token(BOB))
    received = []
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        async for update in stubs.orchestrator.WatchExecution(
            O.WatchExecutionRequest(execution_id=execution_id), metadata=bob, timeout=5
        ):
            received.append(update)
    assert raised.value.code() == Code.NOT_FOUND
    assert received == []
    await stubs.orchestrator.CancelExecution(
        O.CancelExecutionRequest(execution_id=execution_id), metadata=bearer(keys.token(ALICE))
    )
