"""Event-driven triggers over real gRPC: rules registered durably, events deduplicated by id.

The example rules of server/triggers/examples are the ones the README shows; each test
registers what it needs on a fresh orchestrator (SQLite in tmp_path, or a fresh PostgreSQL
database) with the embedded reference fleet.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import execution_pb2, orchestrator_pb2, orchestrator_pb2_grpc, plan_pb2, triggers_pb2
from google.protobuf import json_format

from server.app import RunningServer, start_server
from server.config import ServerConfig
from server.retention import RetentionSweeper
from server.triggers import example_rules, trigger_store_for
from tests.integration.auth_support import bearer, make_keys, start_secured
from tests.integration.pg_support import fresh_database
from tests.integration.support import watch_all

E = execution_pb2
T = triggers_pb2
Stub = orchestrator_pb2_grpc.OrchestratorStub

EXAMPLES = example_rules()
POSTING_RULE = EXAMPLES["new_matching_posting.yaml"]
INTERVIEW_RULE = EXAMPLES["interview_invitation.yaml"]

EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "server" / "triggers" / "examples"
WATCHER = "wanda"
"""A user who watches for new postings."""


def posting(title: str = "Senior Backend Engineer", *, watching: bool = True) -> dict[str, Any]:
    """The payload of a job.posted event for WATCHER."""
    return {
        "watching": watching,
        "profile": {"target_titles": ["Senior Backend Engineer", "Staff Engineer"], "remote_only": False},
        "posting": {"job_id": "job-0001", "title": title, "location": "Berlin"},
    }


def event(
    event_type: str = "job.posted", payload: dict[str, Any] | None = None, *, event_id: str = "", subject: str = WATCHER
) -> T.PublishEventRequest:
    request = T.PublishEventRequest(event_id=event_id, event_type=event_type, subject=subject)
    request.payload.update(posting() if payload is None else payload)
    return request


async def register(stub: Stub, rule: T.TriggerRule, **kwargs: Any) -> T.TriggerRule:
    reply: T.TriggerRule = await stub.RegisterTriggerRule(T.RegisterTriggerRuleRequest(rule=rule, **kwargs))
    return reply


async def executions_of(stub: Stub, user_id: str) -> list[orchestrator_pb2.ExecutionSummary]:
    page = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest(user_id=user_id))
    return list(page.executions)


def rule(**fields: Any) -> T.TriggerRule:
    """The posting rule with some fields replaced (given as JSON)."""
    data = json_format.MessageToDict(POSTING_RULE, preserving_proto_field_name=True)
    data.update(fields)
    return json_format.ParseDict(data, T.TriggerRule())


# ---- rules ----------------------------------------------------------------------------------


async def test_rules_are_registered_listed_replaced_and_deleted(stub: Stub) -> None:
    first = await register(stub, POSTING_RULE)
    assert first.version == 1 and first.registered_at.seconds > 0
    await register(stub, INTERVIEW_RULE)
    listed = await stub.ListTriggerRules(T.ListTriggerRulesRequest())
    assert [r.name for r in listed.rules] == ["interview-invitation", "new-matching-posting"]
    only = await stub.ListTriggerRules(T.ListTriggerRulesRequest(event_type="interview.invited"))
    assert [r.name for r in only.rules] == ["interview-invitation"]

    again = await register(stub, POSTING_RULE)
    assert again == first  # the same definition: kept as it was

    changed = rule(condition="payload.watching == `true`")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register(stub, changed)
    assert refused.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert "rule.name" in (refused.value.details() or "") and "replace" in (refused.value.details() or "")
    replaced = await register(stub, changed, replace=True)
    assert replaced.version == 2 and replaced.condition == "payload.watching == `true`"

    deleted = await stub.DeleteTriggerRule(T.DeleteTriggerRuleRequest(name="new-matching-posting"))
    assert deleted.rule.version == 2
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await stub.DeleteTriggerRule(T.DeleteTriggerRuleRequest(name="new-matching-posting"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    listed = await stub.ListTriggerRules(T.ListTriggerRulesRequest())
    assert [r.name for r in listed.rules] == ["interview-invitation"]


@pytest.mark.parametrize(
    ("fields", "named"),
    [
        ({"workflow_type": "no_such_workflow"}, "rule.workflow_type: no workflow type 'no_such_workflow'; registered:"),
        ({"workflow_type": ""}, "rule.workflow_type: required"),
        ({"condition": "payload.[oops"}, "rule.condition:"),
        ({"user_context": {"data": {"keywords": "${payload..title}"}}}, "rule.user_context.data.keywords:"),
        ({"user_context": {"user_id": "someone"}}, "rule.user_context.user_id:"),
        ({"user_context": {"no_such_field": 1}}, "rule.user_context: not a UserJourney"),
        ({"user_context": {"journey_type": "JOURNEY_TYPE_NOPE"}}, "rule.user_context: not a UserJourney"),
        ({"name": "Bad Name"}, "rule.name:"),
        ({"name": ""}, "rule.name: required"),
        ({"event_type": ""}, "rule.event_type: required"),
        ({"event_type": "Job Posted"}, "rule.event_type:"),
        ({"description": "x" * 1025}, "rule.description:"),
        ({"condition": "a" * 1025}, "rule.condition: at most 1024"),
        ({"user_context": {"data": {"blob": "x" * 17000}}}, "rule: 17"),
        ({"execution_options": {"timeout": "0s"}}, "rule.execution_options.timeout:"),
        (
            {"execution_context": {"resource_allocation": {"reserved_capacity": 101}}},
            "rule.execution_context.resource_allocation.reserved_capacity:",
        ),
    ],
)
async def test_a_rule_that_does_not_validate_is_refused_naming_the_field(
    stub: Stub, fields: dict[str, Any], named: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register(stub, rule(**fields))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(named), refused.value.details()
    assert not (await stub.ListTriggerRules(T.ListTriggerRulesRequest())).rules


async def test_the_number_of_rules_is_bounded(stub: Stub) -> None:
    from server.triggers import MAX_RULES

    await asyncio.gather(*(register(stub, rule(name=f"rule-{n:03d}")) for n in range(MAX_RULES)))
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register(stub, rule(name="one-too-many"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    # Replacing one that exists is still allowed.
    replaced = await register(stub, rule(name="rule-000", condition="`true`"), replace=True)
    assert replaced.version == 2


# ---- events ---------------------------------------------------------------------------------


async def test_a_matching_event_starts_job_discovery_once_when_published_twice(stub: Stub) -> None:
    await register(stub, POSTING_RULE)
    first = await stub.PublishEvent(event(event_id="posting-1"))
    assert not first.duplicate and first.event_id == "posting-1"
    assert [(e.rule, e.workflow_type, e.created) for e in first.executions] == [
        ("new-matching-posting", "job_discovery", True)
    ]
    execution_id = first.executions[0].execution_id

    second = await stub.PublishEvent(event(event_id="posting-1"))
    assert second.duplicate
    assert [(e.execution_id, e.created) for e in second.executions] == [(execution_id, False)]
    assert second.published_at == first.published_at
    assert [e.execution_id for e in await executions_of(stub, WATCHER)] == [execution_id]

    updates = await watch_all(stub, execution_id, deadline=60)
    status = updates[-1].status
    assert status.status == E.EXECUTION_STATE_COMPLETED, status.failure_reason
    assert status.user_id == WATCHER and status.workflow_type == "job_discovery"
    trigger = status.trigger
    assert (trigger.event_id, trigger.event_type, trigger.subject, trigger.rule, trigger.rule_version) == (
        "posting-1",
        "job.posted",
        WATCHER,
        "new-matching-posting",
        1,
    )
    assert trigger.published_at == first.published_at
    shown = await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution_id))
    assert shown.trigger == trigger
    started = updates[0].event.execution_started
    assert started.trigger == trigger
    data = json_format.MessageToDict(started.user_context.data)
    assert data["keywords"] == ["Senior Backend Engineer"] and data["location"] == "Berlin"
    assert data["posting_id"] == "job-0001" and data["remote_only"] is False
    assert started.user_context.user_id == WATCHER
    assert started.execution_options.priority == plan_pb2.PRIORITY_HIGH


async def test_concurrent_publications_of_one_event_start_it_once(stub: Stub) -> None:
    await register(stub, POSTING_RULE)
    replies = await asyncio.gather(*(stub.PublishEvent(event(event_id="posting-burst")) for _ in range(8)))
    ids = {e.execution_id for reply in replies for e in reply.executions}
    assert len(ids) == 1
    assert sum(1 for reply in replies for e in reply.executions if e.created) == 1
    assert sum(1 for reply in replies if not reply.duplicate) == 1
    assert [e.execution_id for e in await executions_of(stub, WATCHER)] == list(ids)


async def test_an_event_without_an_id_gets_one_and_publishing_it_again_is_a_duplicate(stub: Stub) -> None:
    await register(stub, POSTING_RULE)
    first = await stub.PublishEvent(event())
    assert first.event_id and not first.duplicate and len(first.executions) == 1
    again = await stub.PublishEvent(event(event_id=first.event_id))
    assert again.duplicate and again.executions[0].execution_id == first.executions[0].execution_id


async def test_a_non_matching_event_starts_nothing(stub: Stub) -> None:
    await register(stub, POSTING_RULE)
    await register(stub, INTERVIEW_RULE)
    for request in (
        event(payload=posting("Barista"), event_id="other-title"),
        event(payload=posting(watching=False), event_id="not-watching"),
        event("job.closed", event_id="other-type"),
        event("interview.invited", {"company": "Contoso"}, event_id="no-job"),
    ):
        reply = await stub.PublishEvent(request)
        assert not reply.duplicate and not reply.executions, request.event_id
    assert await executions_of(stub, WATCHER) == []
    # Recorded all the same: a rule registered later does not start them on a second publication.
    await register(stub, rule(name="any-closed", event_type="job.closed", condition=""))
    reply = await stub.PublishEvent(event("job.closed", event_id="other-type"))
    assert reply.duplicate and not reply.executions
    fresh = await stub.PublishEvent(event("job.closed", event_id="other-type-2"))
    assert [e.rule for e in fresh.executions] == ["any-closed"]


async def test_an_interview_invitation_starts_a_workflow_that_notifies_the_user(stub: Stub) -> None:
    await register(stub, INTERVIEW_RULE)
    reply = await stub.PublishEvent(
        event(
            "interview.invited",
            {"company": "Contoso", "job": {"title": "Staff Engineer", "skills": ["go", "grpc"]}},
            event_id="invite-1",
        )
    )
    assert [(e.rule, e.workflow_type) for e in reply.executions] == [("interview-invitation", "document_analysis")]
    updates = await watch_all(stub, reply.executions[0].execution_id, deadline=60)
    status = updates[-1].status
    assert status.status == E.EXECUTION_STATE_COMPLETED, status.failure_reason
    notified = [u.event.step_succeeded for u in updates if u.event.WhichOneof("kind") == "step_succeeded"]
    assert "notify_user" in [s.step_id for s in notified]
    started = updates[0].event.execution_started
    assert json_format.MessageToDict(started.user_context.data)["target_skills"] == ["go", "grpc"]
    assert status.trigger.rule == "interview-invitation" and status.trigger.event_id == "invite-1"


async def test_an_interview_invitation_starts_the_registered_notification_only_workflow(stub: Stub) -> None:
    from baton.v1 import registry_pb2

    rule = EXAMPLES["interview_notification.yaml"]
    # The rule names a type only the workflow registry knows: refused until it is registered.
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await register(stub, rule)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "rule.workflow_type: no workflow type 'interview_notification'" in (refused.value.details() or "")

    definition = (EXAMPLES_DIR / "interview_notification.workflow.yaml").read_text(encoding="utf-8")
    await stub.RegisterWorkflow(registry_pb2.RegisterWorkflowRequest(definition_yaml=definition))
    assert (await register(stub, rule)).workflow_type == "interview_notification"
    payload = {"company": "Contoso", "job": {"title": "Staff Engineer"}, "interview_at": "2026-12-08T10:00:00Z"}
    reply = await stub.PublishEvent(event("interview.invited", payload, event_id="invite-2"))
    started = [(e.rule, e.workflow_type) for e in reply.executions]
    assert started == [("interview-notification", "interview_notification")]
    updates = await watch_all(stub, reply.executions[0].execution_id, deadline=60)
    status = updates[-1].status
    assert status.status == E.EXECUTION_STATE_COMPLETED, status.failure_reason
    assert status.workflow_version == "1.0.0" and status.trigger.event_id == "invite-2"
    notified = {u.event.step_succeeded.step_id for u in updates if u.event.WhichOneof("kind") == "step_succeeded"}
    assert {"notify_in_app", "notify_by_email", "record_notification"} <= notified
    data = json_format.MessageToDict(updates[0].event.execution_started.user_context.data)
    assert data == {"company": "Contoso", "job_title": "Staff Engineer", "interview_at": "2026-12-08T10:00:00Z"}


async def test_an_event_a_rule_cannot_apply_to_starts_nothing_and_is_not_recorded(stub: Stub) -> None:
    await register(stub, rule(user_context={"journey_type": "${payload.kind}"}))
    bad = event(payload={**posting(), "kind": "JOURNEY_TYPE_NOPE"}, event_id="posting-bad")
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.PublishEvent(bad)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("rule 'new-matching-posting': user_context:")
    assert await executions_of(stub, WATCHER) == []
    # Nothing was recorded: the same id, now valid, starts its workflow.
    good = event(payload={**posting(), "kind": "JOURNEY_TYPE_MONITORING"}, event_id="posting-bad")
    reply = await stub.PublishEvent(good)
    assert not reply.duplicate and len(reply.executions) == 1


@pytest.mark.parametrize(
    ("request_fields", "named"),
    [
        ({"event_type": "", "subject": WATCHER}, "event_type: required"),
        ({"event_type": "Job Posted", "subject": WATCHER}, "event_type:"),
        ({"event_type": "job.posted", "subject": ""}, "subject: required"),
        ({"event_type": "job.posted", "subject": WATCHER, "event_id": "x" * 129}, "event_id: at most 128"),
        ({"event_type": "job.posted", "subject": "a\x00b"}, "subject: must not contain NUL"),
    ],
)
async def test_a_bad_event_is_refused_naming_the_field(stub: Stub, request_fields: dict[str, str], named: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.PublishEvent(T.PublishEventRequest(**request_fields))
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith(named), refused.value.details()


async def test_client_request_ids_cannot_take_a_triggered_executions_key(stub: Stub) -> None:
    request = orchestrator_pb2.ExecuteWorkflowRequest(workflow_type="job_discovery", request_id="event/abc/rule")
    request.user_context.user_id = WATCHER
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await stub.ExecuteWorkflow(request)
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (refused.value.details() or "").startswith("request_id:")


# ---- durability: across a restart, on both stores ---------------------------------------------


async def _publish_across_a_restart(store_url: str) -> None:
    """Registers, publishes, restarts on the same store, publishes again: one execution."""
    config = ServerConfig(listen="127.0.0.1:0", store_url=store_url, agents="embedded")
    running = await start_server(config)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            await register(stub, POSTING_RULE)
            first = await stub.PublishEvent(event(event_id="posting-restart"))
            concurrent = await asyncio.gather(*(stub.PublishEvent(event(event_id="posting-race")) for _ in range(6)))
    finally:
        await running.stop(grace=0.5)
    running = await start_server(config)
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            assert [r.name for r in (await stub.ListTriggerRules(T.ListTriggerRulesRequest())).rules] == [
                "new-matching-posting"
            ]
            again = await stub.PublishEvent(event(event_id="posting-restart"))
            assert again.duplicate
            assert [e.execution_id for e in again.executions] == [e.execution_id for e in first.executions]
            assert not again.executions[0].created
            race_ids = {e.execution_id for reply in concurrent for e in reply.executions}
            assert len(race_ids) == 1
            race_again = await stub.PublishEvent(event(event_id="posting-race"))
            assert {e.execution_id for e in race_again.executions} == race_ids
            listed = {e.execution_id for e in await executions_of(stub, WATCHER)}
            assert listed == {first.executions[0].execution_id, *race_ids}
    finally:
        await running.stop(grace=0.5)


async def test_an_event_published_again_after_a_restart_starts_nothing_new_on_sqlite(tmp_path: Path) -> None:
    await _publish_across_a_restart(f"sqlite:///{tmp_path}/baton.db")


async def test_an_event_published_again_after_a_restart_starts_nothing_new_on_postgres() -> None:
    async with fresh_database() as url:
        await _publish_across_a_restart(url)


class _Later:
    """A clock `ahead` past the real one, for a retention sweep's cutoff (it never sleeps)."""

    def __init__(self, ahead: timedelta) -> None:
        self.ahead = ahead

    def now(self) -> datetime:
        return datetime.now(UTC) + self.ahead

    async def sleep_until(self, when: datetime) -> None:
        raise AssertionError("a test sweep does not sleep")


async def _published_events_expire_with_retention(store_url: str) -> None:
    """Events are deduplicated as long as finished executions are kept, then swept with them."""
    running = await start_server(ServerConfig(listen="127.0.0.1:0", store_url=store_url, agents="embedded"))
    try:
        async with grpc.aio.insecure_channel(running.address) as channel:
            stub = Stub(channel)
            await register(stub, POSTING_RULE)
            first = await stub.PublishEvent(event(event_id="posting-kept"))
            await watch_all(stub, first.executions[0].execution_id, deadline=60)
            triggers = trigger_store_for(running.store)
            assert triggers is not None

            def sweeper(ahead: timedelta) -> RetentionSweeper:
                month = timedelta(days=30)
                return RetentionSweeper(
                    running.store,
                    _Later(ahead),  # type: ignore[arg-type]
                    month,
                    forget=running.engine.forget,
                    published=triggers.delete_events_before,
                    batch=1,
                    pause=0,
                )

            await sweeper(timedelta(days=29)).sweep()  # younger than the retention: kept
            assert (await stub.PublishEvent(event(event_id="posting-kept"))).duplicate
            assert await triggers.get_event("posting-kept") is not None

            swept = await sweeper(timedelta(days=31)).sweep()
            assert swept.execution_ids == [first.executions[0].execution_id]
            assert await triggers.get_event("posting-kept") is None
            again = await stub.PublishEvent(event(event_id="posting-kept"))
            assert not again.duplicate and again.executions[0].created
            assert again.executions[0].execution_id != first.executions[0].execution_id
    finally:
        await running.stop(grace=0.5)


async def test_published_events_are_swept_by_retention_on_sqlite(tmp_path: Path) -> None:
    await _published_events_expire_with_retention(f"sqlite:///{tmp_path}/baton.db")


async def test_published_events_are_swept_by_retention_on_postgres() -> None:
    async with fresh_database() as url:
        await _published_events_expire_with_retention(url)


async def test_two_replicas_on_postgres_start_an_event_published_to_both_at_once_once() -> None:
    async with fresh_database() as url:
        servers = [
            await start_server(ServerConfig(listen="127.0.0.1:0", store_url=url, agents="embedded", replica=name))
            for name in ("replica-a", "replica-b")
        ]
        try:
            channels = [grpc.aio.insecure_channel(s.address) for s in servers]
            stubs = [Stub(c) for c in channels]
            await register(stubs[0], POSTING_RULE)
            replies = await asyncio.gather(
                *(stubs[n % 2].PublishEvent(event(event_id="posting-replicas")) for n in range(8))
            )
            ids = {e.execution_id for reply in replies for e in reply.executions}
            assert len(ids) == 1
            assert sum(1 for reply in replies if not reply.duplicate) == 1
            for channel in channels:
                await channel.close()
        finally:
            for server in servers:
                await server.stop(grace=0.5)


# ---- authorization ------------------------------------------------------------------------


@pytest.fixture
async def secured(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, Any]]:
    keys = make_keys(tmp_path / "keys")
    running = await start_secured(tmp_path, keys)
    try:
        yield running, keys
    finally:
        await running.stop(grace=0.5)


async def test_publishing_needs_the_publisher_or_admin_role_and_the_subject_owns_what_starts(
    secured: tuple[RunningServer, Any],
) -> None:
    running, keys = secured
    admin = bearer(keys.token("ada", "admin"))
    publisher = bearer(keys.token("feed", "publisher"))
    watcher = bearer(keys.token(WATCHER))
    operator = bearer(keys.token("oscar", "operator"))
    async with grpc.aio.insecure_channel(running.address) as channel:
        stub = Stub(channel)
        for who in (publisher, watcher, operator):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.RegisterTriggerRule(T.RegisterTriggerRuleRequest(rule=POSTING_RULE), metadata=who)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
        await stub.RegisterTriggerRule(T.RegisterTriggerRuleRequest(rule=POSTING_RULE), metadata=admin)
        listed = await stub.ListTriggerRules(T.ListTriggerRulesRequest(), metadata=operator)
        assert [r.name for r in listed.rules] == ["new-matching-posting"]

        for who in (watcher, operator):
            with pytest.raises(grpc.aio.AioRpcError) as refused:
                await stub.PublishEvent(event(event_id="auth-1"), metadata=who)
            assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
            assert "publisher" in (refused.value.details() or "")
        reply = await stub.PublishEvent(event(event_id="auth-1"), metadata=publisher)
        execution_id = reply.executions[0].execution_id
        # The subject owns it: they see it, the publisher (who reads nothing) does not.
        mine = await stub.ListExecutions(orchestrator_pb2.ListExecutionsRequest(), metadata=watcher)
        assert [e.execution_id for e in mine.executions] == [execution_id]
        status = await stub.GetExecution(
            orchestrator_pb2.GetExecutionRequest(execution_id=execution_id), metadata=watcher
        )
        assert status.user_id == WATCHER and status.trigger.event_id == "auth-1"
        with pytest.raises(grpc.aio.AioRpcError) as hidden:
            await stub.GetExecution(orchestrator_pb2.GetExecutionRequest(execution_id=execution_id), metadata=publisher)
        assert hidden.value.code() == grpc.StatusCode.NOT_FOUND
        started = (
            await stub.WatchExecution(
                orchestrator_pb2.WatchExecutionRequest(execution_id=execution_id), metadata=admin
            ).read()
        ).event
        assert started.actor.subject == "feed" and "publisher" in started.actor.roles


# ---- the CLI --------------------------------------------------------------------------------


async def test_the_cli_adds_lists_and_deletes_rules_and_publishes_events(
    orchestrator: RunningServer, tmp_path: Path
) -> None:
    from tests.integration.test_cli import baton

    target = ("--target", orchestrator.address)
    examples = EXAMPLES_DIR
    added = await baton("triggers", "add", str(examples / "new_matching_posting.yaml"), *target)
    assert added.returncode == 0, added.stderr
    assert added.stdout.strip() == "rule new-matching-posting version 1: job.posted starts job_discovery"
    listed = await baton("triggers", "list", *target)
    assert listed.returncode == 0 and "new-matching-posting" in listed.stdout and "job.posted" in listed.stdout

    payload = json.dumps(posting())
    published = await baton(
        "events", "publish", "job.posted", "--subject", WATCHER, "--payload", payload, "--id", "cli-1", *target
    )
    assert published.returncode == 0, published.stderr
    lines = published.stdout.splitlines()
    assert lines[0] == "event cli-1 published"
    assert lines[1].endswith("job_discovery  (rule new-matching-posting, started)")
    execution_id = lines[1].split()[0]
    again = await baton(
        "events",
        "publish",
        "job.posted",
        "--subject",
        WATCHER,
        "--payload",
        payload,
        "--id",
        "cli-1",
        "--json",
        *target,
    )
    reply = json.loads(again.stdout)
    assert reply["duplicate"] is True and reply["executions"][0]["execution_id"] == execution_id

    bad = await baton("events", "publish", "job.posted", "--subject", WATCHER, "--payload", "[1]", *target)
    assert bad.returncode == 2 and bad.stderr.startswith("error: --payload: a JSON object")
    rule_file = tmp_path / "bad.yaml"
    rule_file.write_text("name: bad\nevent_type: x\nworkflow_type: nope\n")
    refused = await baton("triggers", "add", str(rule_file), *target)
    assert refused.returncode == 2 and refused.stderr.startswith("error: INVALID_ARGUMENT: rule.workflow_type")

    deleted = await baton("triggers", "delete", "new-matching-posting", *target)
    assert deleted.returncode == 0 and deleted.stdout.strip() == "deleted rule new-matching-posting (version 1)"
    gone = await baton("triggers", "delete", "new-matching-posting", *target)
    assert gone.returncode == 1 and gone.stderr.startswith("error: NOT_FOUND: name")


async def test_deleting_a_users_data_deletes_the_events_about_them(stub: Stub) -> None:
    await register(stub, POSTING_RULE)
    first = await stub.PublishEvent(event(event_id="posting-forgotten"))
    await watch_all(stub, first.executions[0].execution_id, deadline=60)
    deleted = await stub.DeleteUserData(orchestrator_pb2.DeleteUserDataRequest(user_id=WATCHER))
    assert deleted.executions_deleted == 1
    again = await stub.PublishEvent(event(event_id="posting-forgotten"))
    assert not again.duplicate and again.executions[0].created
    assert again.executions[0].execution_id != first.executions[0].execution_id


async def test_a_triggered_execution_is_planned_from_the_latest_registered_version(stub: Stub) -> None:
    from baton.v1 import registry_pb2

    from tests.integration.test_registry import with_extra_step

    await stub.RegisterWorkflow(registry_pb2.RegisterWorkflowRequest(definition_yaml=with_extra_step("1.1.0")))
    await register(stub, POSTING_RULE)
    published = await stub.PublishEvent(event(event_id="posting-registered"))
    execution_id = published.executions[0].execution_id
    updates = await watch_all(stub, execution_id, deadline=60)
    # As ExecuteWorkflow would: the new version, with its extra step, not the built-in 1.0.0.
    plan = updates[0].event.execution_started.plan
    assert "summarize_search" in {step.step_id for step in plan.workflow_steps}
    assert updates[-1].status.workflow_version == "1.1.0"
    assert updates[-1].status.status == execution_pb2.EXECUTION_STATE_COMPLETED
