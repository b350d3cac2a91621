"""The reference agent fleet over real gRPC on loopback: every agent, fault injection, health, reflection."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import (
    analytics_pb2,
    analytics_pb2_grpc,
    automation_pb2,
    automation_pb2_grpc,
    common_pb2,
    document_intelligence_pb2,
    document_intelligence_pb2_grpc,
    faults_pb2,
    faults_pb2_grpc,
    job_discovery_pb2,
    job_discovery_pb2_grpc,
    matching_intelligence_pb2,
    matching_intelligence_pb2_grpc,
    security_pb2,
    security_pb2_grpc,
    ui_ux_pb2,
    ui_ux_pb2_grpc,
)
from google.protobuf.duration_pb2 import Duration
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from agents import SERVICE_NAMES, Fleet, FleetConfig, start_fleet
from agents_clients.catalog import AGENTS, operation, operations

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "agents" / "data"
JOBS = json.loads((DATA / "jobs.json").read_text(encoding="utf-8"))["jobs"]
KEY = "baton-idempotency-key"
AGENT_STUBS: dict[str, Any] = {
    "document_intelligence": document_intelligence_pb2_grpc.DocumentIntelligenceStub,
    "job_discovery": job_discovery_pb2_grpc.JobDiscoveryStub,
    "matching_intelligence": matching_intelligence_pb2_grpc.MatchingIntelligenceStub,
    "automation": automation_pb2_grpc.AutomationStub,
    "ui_ux": ui_ux_pb2_grpc.UiUxStub,
    "analytics": analytics_pb2_grpc.AnalyticsStub,
    "security": security_pb2_grpc.SecurityStub,
}


# ---- fixtures and helpers -----------------------------------------------------------------------


@pytest.fixture
async def fleet() -> AsyncIterator[Fleet]:
    """The fleet on 127.0.0.1:0 with an in-memory ledger."""
    started = await start_fleet(FleetConfig(seed=7, faults=True))
    try:
        yield started
    finally:
        await started.stop(grace=0)


@pytest.fixture
async def channel(fleet: Fleet) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(fleet.address) as opened:
        yield opened


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    """Awaits a call that must fail and returns its error."""
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call
    return raised.value


async def set_faults(channel: grpc.aio.Channel, latency_ms: float = 0.0, **fields: Any) -> faults_pb2.FaultConfig:
    config = faults_pb2.FaultConfig(**fields)
    config.latency.FromNanoseconds(round(latency_ms * 1e6))
    answer: faults_pb2.FaultConfig = await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)
    return answer


def analytics(channel: grpc.aio.Channel) -> analytics_pb2_grpc.AnalyticsStub:
    return analytics_pb2_grpc.AnalyticsStub(channel)


def events(user_id: str = "u1", count: int = 1) -> analytics_pb2.RecordEventsRequest:
    return analytics_pb2.RecordEventsRequest(
        user_id=user_id, events=[analytics_pb2.AnalyticsEvent(name="step") for _ in range(count)]
    )


async def status_of(channel: grpc.aio.Channel, agent: str) -> common_pb2.AgentStatus:
    answer: common_pb2.AgentStatus = await AGENT_STUBS[agent](channel).GetStatus(common_pb2.GetStatusRequest())
    return answer


class FleetProcess:
    """``python -m agents`` in a child process, as an operator would run it."""

    def __init__(self, process: asyncio.subprocess.Process, address: str) -> None:
        self.process = process
        self.address = address

    @classmethod
    async def start(cls, *args: str) -> FleetProcess:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "agents",
            "--listen",
            "127.0.0.1:0",
            *args,
            cwd=ROOT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdout=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=20)).decode()
        if not line.startswith("agents serving on "):
            process.kill()
            raise RuntimeError(f"the fleet did not start: {line!r}")
        return cls(process, line.removeprefix("agents serving on ").strip())

    async def wait(self) -> int:
        return await asyncio.wait_for(self.process.wait(), timeout=20)

    def kill(self) -> None:
        if self.process.returncode is None:
            self.process.kill()


@pytest.fixture
async def fleet_processes() -> AsyncIterator[list[FleetProcess]]:
    """Fleet processes a test starts; killed at the end whatever happens."""
    started: list[FleetProcess] = []
    yield started
    for fleet_process in started:
        fleet_process.kill()
        await fleet_process.process.wait()


# ---- server composition -------------------------------------------------------------------------


async def test_health_reports_serving_for_the_server_and_every_service(channel: grpc.aio.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", *SERVICE_NAMES):
        answer = await health.Check(health_pb2.HealthCheckRequest(service=service))
        assert answer.status == health_pb2.HealthCheckResponse.SERVING, service


async def test_reflection_lists_the_seven_agents_fault_injection_and_health(channel: grpc.aio.Channel) -> None:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    responses = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
    listed = {service.name async for response in responses for service in response.list_services_response.service}
    assert set(SERVICE_NAMES) | {"grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection"} <= listed
    assert len(SERVICE_NAMES) == 8


async def test_a_second_fleet_cannot_bind_a_port_that_is_taken(fleet: Fleet) -> None:
    with pytest.raises(RuntimeError, match="cannot listen"):
        await start_fleet(FleetConfig(listen=fleet.address))


@pytest.mark.parametrize(("agent", "name"), [(a, n) for a in AGENTS for n in operations(a) if n != "GetStatus"])
async def test_every_operation_without_a_user_id_answers_invalid_argument(
    channel: grpc.aio.Channel, agent: str, name: str
) -> None:
    op = operation(agent, name)
    call = channel.unary_unary(
        op.path,
        request_serializer=op.request_class.SerializeToString,
        response_deserializer=op.response_class.FromString,
    )
    error = await rpc_error(call(op.new_request(), timeout=5))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "user_id is required"


@pytest.mark.parametrize("agent", AGENTS)
async def test_get_status_reports_the_agent_healthy_with_its_seed_metrics(
    channel: grpc.aio.Channel, agent: str
) -> None:
    seed_metrics = {
        "document_intelligence": {"documents_analyzed"},
        "job_discovery": {"search_performance", "data_freshness"},
        "matching_intelligence": {"model_performance", "prediction_confidence", "processing_capacity"},
        "automation": {"success_rate", "queue_backlog"},
        "ui_ux": {"user_sessions"},
        "analytics": {"data_processing_lag", "insight_accuracy", "storage_utilization"},
        "security": {"threat_level", "active_incidents", "compliance_status"},
    }
    status = await status_of(channel, agent)
    assert status.agent == agent
    assert status.status == common_pb2.AGENT_HEALTH_HEALTHY
    assert status.requests_served == 0
    assert status.error_rate == 0.0
    assert seed_metrics[agent] <= set(status.metrics.fields)


async def test_get_status_measures_the_operations_served_and_their_response_time(channel: grpc.aio.Channel) -> None:
    for _ in range(3):
        await analytics(channel).RecordEvents(events())
    status = await status_of(channel, "analytics")
    assert status.requests_served == 3
    assert status.response_time.ToNanoseconds() > 0
    assert status.metrics.fields["events_recorded"].number_value == 3


# ---- document intelligence ----------------------------------------------------------------------


async def test_analyze_document_reads_the_bundled_sample_resume(channel: grpc.aio.Channel) -> None:
    stub = document_intelligence_pb2_grpc.DocumentIntelligenceStub(channel)
    answer = await stub.AnalyzeDocument(document_intelligence_pb2.AnalyzeDocumentRequest(user_id="u1"))
    assert answer.document_id == "resume"
    assert answer.candidate_name == "Jordan Rivera"
    assert {"python", "go", "kubernetes", "postgresql", "grpc"} <= set(answer.skills)
    assert list(answer.titles) == ["Senior Backend Engineer", "Software Engineer", "Junior Developer"]
    assert answer.years_experience >= 10.0  # Jul 2015 to the present
    assert list(answer.sections)[:4] == ["SUMMARY", "EXPERIENCE", "SKILLS", "EDUCATION"]
    assert answer.profile_completeness == 100.0
    assert answer.word_count > 200
    assert {"accuracy", "completeness", "consistency"} <= set(answer.quality.metrics)
    assert 0 < answer.quality.score <= 100


async def test_analyze_document_sums_dated_positions_counting_overlaps_once(channel: grpc.aio.Channel) -> None:
    content = (
        "Name: Ana Lee\n\nEXPERIENCE\n"
        "Data Engineer, Trey Research | Jan 2018 - Dec 2019\n"
        "Analytics Consultant (part time), Fourth Coffee | Jun 2019 - Dec 2019\n"
        "Lead Data Scientist at Proseware | 2020 - 2021\n\n"
        "SKILLS\nPython, SQL, Spark, Airflow\n"
    )
    stub = document_intelligence_pb2_grpc.DocumentIntelligenceStub(channel)
    answer = await stub.AnalyzeDocument(
        document_intelligence_pb2.AnalyzeDocumentRequest(user_id="u1", document_id="cv-2", content=content)
    )
    assert answer.document_id == "cv-2"
    assert answer.candidate_name == "Ana Lee"
    assert answer.years_experience == 4.0
    assert list(answer.titles) == ["Data Engineer", "Analytics Consultant", "Lead Data Scientist"]
    assert list(answer.skills) == ["python", "sql", "spark", "airflow"]
    assert answer.profile_completeness < 100.0


async def test_optimize_document_lists_missing_target_skills_and_raises_the_score(channel: grpc.aio.Channel) -> None:
    stub = document_intelligence_pb2_grpc.DocumentIntelligenceStub(channel)
    answer = await stub.OptimizeDocument(
        document_intelligence_pb2.OptimizeDocumentRequest(
            user_id="u1", target_skills=["Python", "Rust", "k8s", "Figma"]
        )
    )
    assert list(answer.missing_skills) == ["rust", "figma"]
    assert any("rust" in s for s in answer.suggestions)
    assert answer.score_after > answer.score_before
    assert answer.quality.score > 0


# ---- job discovery ------------------------------------------------------------------------------


async def test_search_jobs_ranks_postings_matching_the_skills_first(channel: grpc.aio.Channel) -> None:
    skills = {"pytorch", "machine learning", "kubernetes"}
    stub = job_discovery_pb2_grpc.JobDiscoveryStub(channel)
    answer = await stub.SearchJobs(job_discovery_pb2.SearchJobsRequest(user_id="u1", skills=sorted(skills), limit=100))
    overlaps = [len(skills & set(job.skills)) for job in answer.jobs]
    assert overlaps == sorted(overlaps, reverse=True)
    assert overlaps[0] == 3
    assert min(overlaps) >= 1
    assert answer.total_matches == len(answer.jobs)
    assert answer.quality.metrics["coverage"] == 100.0


async def test_search_jobs_honours_the_limit_and_reports_the_total_before_it(channel: grpc.aio.Channel) -> None:
    stub = job_discovery_pb2_grpc.JobDiscoveryStub(channel)
    default = await stub.SearchJobs(job_discovery_pb2.SearchJobsRequest(user_id="u1"))
    assert len(default.jobs) == 20
    assert default.total_matches == len(JOBS) >= 100
    five = await stub.SearchJobs(job_discovery_pb2.SearchJobsRequest(user_id="u1", keywords=["engineer"], limit=5))
    assert len(five.jobs) == 5
    assert five.total_matches > 5
    error = await rpc_error(stub.SearchJobs(job_discovery_pb2.SearchJobsRequest(user_id="u1", limit=101)))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("limit")


async def test_search_jobs_filters_by_remote_location_and_board(channel: grpc.aio.Channel) -> None:
    stub = job_discovery_pb2_grpc.JobDiscoveryStub(channel)
    remote = await stub.SearchJobs(
        job_discovery_pb2.SearchJobsRequest(user_id="u1", remote_only=True, sources=["linkedin"], limit=100)
    )
    assert remote.jobs
    assert all(job.remote and job.source == "linkedin" for job in remote.jobs)
    assert list(remote.sources_searched) == ["linkedin"]
    seattle = await stub.SearchJobs(
        job_discovery_pb2.SearchJobsRequest(user_id="u1", location="Seattle", titles=["Backend Engineer"], limit=100)
    )
    assert all(job.location == "Seattle, WA" or job.remote for job in seattle.jobs)
    error = await rpc_error(stub.SearchJobs(job_discovery_pb2.SearchJobsRequest(user_id="u1", sources=["monster"])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("sources")


async def test_search_jobs_spends_the_quota_of_each_board_searched(channel: grpc.aio.Channel) -> None:
    before = (await status_of(channel, "job_discovery")).api_rate_limits
    stub = job_discovery_pb2_grpc.JobDiscoveryStub(channel)
    await stub.SearchJobs(job_discovery_pb2.SearchJobsRequest(user_id="u1", sources=["indeed"]))
    after = await status_of(channel, "job_discovery")
    assert after.api_rate_limits["indeed"] == before["indeed"] - 1
    assert after.api_rate_limits["linkedin"] == before["linkedin"]
    assert after.metrics.fields["searches"].number_value == 1


# ---- matching intelligence ----------------------------------------------------------------------


def posting(job_id: str, title: str, seniority: str, *skills: str) -> job_discovery_pb2.JobPosting:
    return job_discovery_pb2.JobPosting(job_id=job_id, title=title, seniority=seniority, skills=skills, company="Co")


async def test_score_matches_returns_the_best_fit_first_with_skill_gaps(channel: grpc.aio.Channel) -> None:
    jobs = [
        posting("designer", "UX Designer", "mid", "figma", "spark"),
        posting("backend", "Backend Engineer", "mid", "python", "postgresql", "rest apis"),
        posting("data", "Data Engineer", "senior", "python", "spark", "airflow"),
    ]
    request = matching_intelligence_pb2.ScoreMatchesRequest(
        user_id="u1",
        skills=["Python", "Postgres", "REST APIs"],
        titles=["Backend Developer"],
        years_experience=4,
        jobs=jobs,
    )
    stub = matching_intelligence_pb2_grpc.MatchingIntelligenceStub(channel)
    answer = await stub.ScoreMatches(request)
    assert [m.job_id for m in answer.matches] == ["backend", "data", "designer"]
    best = answer.matches[0]
    assert best.score == 100.0
    assert list(best.matched_skills) == ["python", "postgresql", "rest apis"]
    assert list(answer.matches[1].missing_skills) == ["spark", "airflow"]
    assert list(answer.skill_gaps) == ["spark", "figma", "airflow"]

    request.top_n, request.min_score = 1, 10
    top = await stub.ScoreMatches(request)
    assert [m.job_id for m in top.matches] == ["backend"]
    request.top_n, request.min_score = 0, 30
    kept = await stub.ScoreMatches(request)
    assert all(m.score >= 30 for m in kept.matches)
    assert "designer" not in [m.job_id for m in kept.matches]


# ---- automation ---------------------------------------------------------------------------------


async def test_submit_application_with_the_same_idempotency_key_applies_once(channel: grpc.aio.Channel) -> None:
    stub = automation_pb2_grpc.AutomationStub(channel)
    request = automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=[JOBS[0]["job_id"], "job-unknown"])
    first = await stub.SubmitApplication(request, metadata=((KEY, "exec-1/submit"),))
    again = await stub.SubmitApplication(request, metadata=((KEY, "exec-1/submit"),))
    assert again == first
    assert [a.job_id for a in first.applications] == [JOBS[0]["job_id"], "job-unknown"]
    assert [a.source for a in first.applications] == [JOBS[0]["source"], "direct"]
    assert all(a.idempotency_key == "exec-1/submit" for a in first.applications)
    assert all(a.state == automation_pb2.APPLICATION_STATE_SUBMITTED for a in first.applications)
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert [a.application_id for a in listed.applications] == [a.application_id for a in first.applications]
    status = await status_of(channel, "automation")
    assert status.metrics.fields["idempotent_replays"].number_value == 1


async def test_submit_application_without_a_key_or_with_a_new_key_applies_again(channel: grpc.aio.Channel) -> None:
    stub = automation_pb2_grpc.AutomationStub(channel)
    request = automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=["job-0001"])
    await stub.SubmitApplication(request)
    await stub.SubmitApplication(request)
    await stub.SubmitApplication(request, metadata=((KEY, "k1"),))
    await stub.SubmitApplication(request, metadata=((KEY, "k2"),))
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert [a.idempotency_key for a in listed.applications] == ["", "", "k1", "k2"]


async def test_withdraw_application_sets_withdrawn_once_per_key(channel: grpc.aio.Channel) -> None:
    stub = automation_pb2_grpc.AutomationStub(channel)
    submitted = await stub.SubmitApplication(
        automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=["job-0001", "job-0002"])
    )
    first_id = submitted.applications[0].application_id
    withdraw = automation_pb2.WithdrawApplicationRequest(user_id="u1", application_ids=[first_id], reason="saga")
    withdrawn = await stub.WithdrawApplication(withdraw, metadata=((KEY, "exec-1/compensate"),))
    assert [a.state for a in withdrawn.applications] == [automation_pb2.APPLICATION_STATE_WITHDRAWN]
    assert await stub.WithdrawApplication(withdraw, metadata=((KEY, "exec-1/compensate"),)) == withdrawn
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert [a.state for a in listed.applications] == [
        automation_pb2.APPLICATION_STATE_WITHDRAWN,
        automation_pb2.APPLICATION_STATE_SUBMITTED,
    ]
    assert (await status_of(channel, "automation")).metrics.fields["applications_withdrawn"].number_value == 1


async def test_withdrawing_an_unknown_or_another_users_application_answers_not_found(
    channel: grpc.aio.Channel,
) -> None:
    stub = automation_pb2_grpc.AutomationStub(channel)
    theirs = await stub.SubmitApplication(automation_pb2.SubmitApplicationRequest(user_id="u2", job_ids=["job-0001"]))
    for application_id in ("app-nope", theirs.applications[0].application_id):
        error = await rpc_error(
            stub.WithdrawApplication(
                automation_pb2.WithdrawApplicationRequest(user_id="u1", application_ids=[application_id])
            )
        )
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert application_id in error.details()
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u2"))
    assert listed.applications[0].state == automation_pb2.APPLICATION_STATE_SUBMITTED


async def test_a_repeated_submission_key_is_answered_with_the_original_even_for_a_different_request(
    channel: grpc.aio.Channel,
) -> None:
    # The key names the effect, not the request: a step's retry rebuilds its request from the
    # execution's context, and whatever it rebuilds, the jobs first applied to stay the only ones.
    stub = automation_pb2_grpc.AutomationStub(channel)
    first = await stub.SubmitApplication(
        automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=["job-0001"]), metadata=((KEY, "exec-1/apply"),)
    )
    other = automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=["job-0002", "job-0003"])
    assert await stub.SubmitApplication(other, metadata=((KEY, "exec-1/apply"),)) == first
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert [a.job_id for a in listed.applications] == ["job-0001"]
    # The same key of another user is another effect.
    theirs = await stub.SubmitApplication(
        automation_pb2.SubmitApplicationRequest(user_id="u2", job_ids=["job-0002"]), metadata=((KEY, "exec-1/apply"),)
    )
    assert [a.job_id for a in theirs.applications] == ["job-0002"]


async def test_a_repeated_withdrawal_key_is_answered_with_the_original_even_for_a_different_request(
    channel: grpc.aio.Channel,
) -> None:
    stub = automation_pb2_grpc.AutomationStub(channel)
    submitted = await stub.SubmitApplication(
        automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=["job-0001", "job-0002"])
    )
    first_id, second_id = (a.application_id for a in submitted.applications)
    key = ((KEY, "exec-1/apply/compensate"),)
    withdrawn = await stub.WithdrawApplication(
        automation_pb2.WithdrawApplicationRequest(user_id="u1", application_ids=[first_id]), metadata=key
    )
    again = await stub.WithdrawApplication(
        automation_pb2.WithdrawApplicationRequest(user_id="u1", application_ids=[second_id], reason="other"),
        metadata=key,
    )
    assert again == withdrawn
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert [a.state for a in listed.applications] == [
        automation_pb2.APPLICATION_STATE_WITHDRAWN,
        automation_pb2.APPLICATION_STATE_SUBMITTED,
    ]


@pytest.mark.parametrize(
    ("job_ids", "field"),
    [([], "job_ids"), ([f"job-{i}" for i in range(51)], "job_ids"), (["job-1", ""], "job_ids[1]")],
)
async def test_submit_application_with_bad_job_ids_answers_invalid_argument_naming_the_field(
    channel: grpc.aio.Channel, job_ids: list[str], field: str
) -> None:
    stub = automation_pb2_grpc.AutomationStub(channel)
    error = await rpc_error(
        stub.SubmitApplication(automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=job_ids))
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field + " ")
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert not listed.applications


async def test_automation_reports_every_board_account_active(channel: grpc.aio.Channel) -> None:
    status = await status_of(channel, "automation")
    assert {"linkedin", "indeed", "glassdoor", "ziprecruiter"} <= set(status.account_health)
    assert set(status.account_health.values()) == {common_pb2.ACCOUNT_HEALTH_ACTIVE}


async def test_ledger_survives_a_kill_and_a_restart(tmp_path: Path, fleet_processes: list[FleetProcess]) -> None:
    ledger = str(tmp_path / "ledger.db")
    first = await FleetProcess.start("--ledger", ledger)
    fleet_processes.append(first)
    request = automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=["job-0001", "job-0002"])
    async with grpc.aio.insecure_channel(first.address) as opened:
        submitted = await automation_pb2_grpc.AutomationStub(opened).SubmitApplication(
            request, metadata=((KEY, "exec-9/submit"),)
        )
    first.kill()  # SIGKILL: no graceful stop, no final commit
    assert await first.wait() == -signal.SIGKILL

    second = await FleetProcess.start("--ledger", ledger)
    fleet_processes.append(second)
    async with grpc.aio.insecure_channel(second.address) as opened:
        stub = automation_pb2_grpc.AutomationStub(opened)
        listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
        replayed = await stub.SubmitApplication(request, metadata=((KEY, "exec-9/submit"),))
        relisted = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert list(listed.applications) == list(submitted.applications)
    assert replayed == submitted
    assert len(relisted.applications) == 2
    second.process.send_signal(signal.SIGTERM)
    assert await second.wait() == 0


# ---- ui_ux, analytics, security -----------------------------------------------------------------


async def test_notify_delivers_and_returns_an_id(channel: grpc.aio.Channel) -> None:
    stub = ui_ux_pb2_grpc.UiUxStub(channel)
    first = await stub.Notify(ui_ux_pb2.NotifyRequest(user_id="u1", title="Jobs found", message="12 new matches"))
    second = await stub.Notify(ui_ux_pb2.NotifyRequest(user_id="u2", channel="email", title="Hi"))
    assert first.delivered and first.channel == "in_app"
    assert second.channel == "email"
    assert first.notification_id and first.notification_id != second.notification_id
    assert first.quality.score > 0
    error = await rpc_error(stub.Notify(ui_ux_pb2.NotifyRequest(user_id="u1", channel="fax")))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("channel")
    status = await status_of(channel, "ui_ux")
    assert status.metrics.fields["user_sessions"].number_value == 2


async def test_record_events_counts_events_per_user(channel: grpc.aio.Channel) -> None:
    stub = analytics(channel)
    assert (await stub.RecordEvents(events("u1", 2))).total_for_user == 2
    assert (await stub.RecordEvents(events("u2", 1))).total_for_user == 1
    answer = await stub.RecordEvents(events("u1", 3))
    assert (answer.recorded, answer.total_for_user) == (3, 5)
    assert answer.quality.score == 100.0
    empty = await stub.RecordEvents(analytics_pb2.RecordEventsRequest(user_id="u3"))
    assert (empty.recorded, empty.total_for_user) == (0, 0)


async def test_get_insights_summarises_scores_and_recommends_the_gaps(channel: grpc.aio.Channel) -> None:
    stub = analytics(channel)
    answer = await stub.GetInsights(
        analytics_pb2.GetInsightsRequest(user_id="u1", match_scores=[90, 75, 20, 15], skill_gaps=["Spark", "airflow"])
    )
    insights = {i.name: i.value for i in answer.insights}
    assert insights["mean_match_score"] == 50.0
    assert insights["max_match_score"] == 90.0
    assert insights["strong_matches"] == 2
    assert insights["skill_gaps"] == 2
    assert any("spark" in r for r in answer.recommendations)
    assert any("2 strong matches" in r for r in answer.recommendations)
    error = await rpc_error(stub.GetInsights(analytics_pb2.GetInsightsRequest(user_id="u1", match_scores=[50, 101])))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith("match_scores[1]")


async def test_screen_compliance_flags_pii_and_masks_it(channel: grpc.aio.Channel) -> None:
    stub = security_pb2_grpc.SecurityStub(channel)
    content = "Jordan Rivera\nSSN: 123-45-6789\nCard 4111 1111 1111 1111, ref 1234 5678 9012 3456\n"
    answer = await stub.ScreenCompliance(security_pb2.ScreenComplianceRequest(user_id="u1", content=content))
    assert answer.compliance_status == security_pb2.COMPLIANCE_STATUS_NON_COMPLIANT
    assert not answer.compliant
    by_rule = {f.rule: f for f in answer.findings}
    assert set(by_rule) == {"pii.ssn", "pii.credit_card"}  # the second number fails the Luhn check
    assert "***-**-6789" in by_rule["pii.ssn"].detail
    assert "123-45" not in by_rule["pii.ssn"].detail
    assert "1111 1111 1111" not in by_rule["pii.credit_card"].detail
    assert by_rule["pii.ssn"].severity == "critical"
    status = await status_of(channel, "security")
    assert status.metrics.fields["active_incidents"].number_value == 1
    assert status.metrics.fields["threat_level"].string_value == "medium"


async def test_screen_compliance_passes_clean_content_and_flags_discriminatory_jobs(
    channel: grpc.aio.Channel,
) -> None:
    stub = security_pb2_grpc.SecurityStub(channel)
    clean = await stub.ScreenCompliance(
        security_pb2.ScreenComplianceRequest(user_id="u1", content="I build reliable services in Python.")
    )
    assert clean.compliance_status == security_pb2.COMPLIANCE_STATUS_COMPLIANT
    assert clean.compliant and not clean.findings
    flagged = next(j["job_id"] for j in JOBS if "Recent graduates only" in j["description"])
    answer = await stub.ScreenCompliance(
        security_pb2.ScreenComplianceRequest(user_id="u1", content="Cover note", job_ids=[flagged, "job-unknown"])
    )
    assert answer.compliance_status == security_pb2.COMPLIANCE_STATUS_AT_RISK
    assert answer.compliant
    assert [f.rule for f in answer.findings] == ["discrimination.age"]
    assert flagged in answer.findings[0].detail
    assert answer.quality.metrics["coverage"] == 50.0


# ---- fault injection ----------------------------------------------------------------------------


async def test_fault_injection_fail_next_answers_unavailable_then_recovers(channel: grpc.aio.Channel) -> None:
    configured = await set_faults(channel, agent="analytics", fail_next=2)
    assert (configured.agent, configured.fail_next, configured.error_code) == ("analytics", 2, "UNAVAILABLE")
    for _ in range(2):
        error = await rpc_error(analytics(channel).RecordEvents(events()))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert (await analytics(channel).RecordEvents(events())).recorded == 1
    status = await status_of(channel, "analytics")
    assert status.error_rate == pytest.approx(200 / 3, abs=0.01)
    assert status.status == common_pb2.AGENT_HEALTH_DEGRADED
    assert (await status_of(channel, "ui_ux")).status == common_pb2.AGENT_HEALTH_HEALTHY


async def test_fault_injection_counts_down_and_reports_the_remaining_faults(channel: grpc.aio.Channel) -> None:
    await set_faults(channel, agent="analytics", fail_next=3, error_code="resource_exhausted")
    error = await rpc_error(analytics(channel).RecordEvents(events()))
    assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    remaining = await faults_pb2_grpc.FaultInjectionStub(channel).GetFaults(
        faults_pb2.GetFaultsRequest(agent="analytics")
    )
    assert remaining.fail_next == 2
    default = await faults_pb2_grpc.FaultInjectionStub(channel).GetFaults(faults_pb2.GetFaultsRequest())
    assert default.fail_next == 0


async def test_fault_injection_restricted_to_operations_leaves_the_others_and_get_status_alone(
    channel: grpc.aio.Channel,
) -> None:
    await set_faults(channel, agent="analytics", error_rate=1.0, operations=["GetInsights"])
    assert (await analytics(channel).RecordEvents(events())).recorded == 1
    error = await rpc_error(analytics(channel).GetInsights(analytics_pb2.GetInsightsRequest(user_id="u1")))
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert (await status_of(channel, "analytics")).agent == "analytics"


async def test_fault_injection_for_every_agent_fails_the_fleets_next_operations(channel: grpc.aio.Channel) -> None:
    await set_faults(channel, fail_next=2)
    notify = ui_ux_pb2_grpc.UiUxStub(channel).Notify(ui_ux_pb2.NotifyRequest(user_id="u1"))
    assert (await rpc_error(notify)).code() == grpc.StatusCode.UNAVAILABLE
    assert (await rpc_error(analytics(channel).RecordEvents(events()))).code() == grpc.StatusCode.UNAVAILABLE
    assert (await analytics(channel).RecordEvents(events())).recorded == 1


async def test_fault_injection_latency_delays_operations_without_blocking_others(channel: grpc.aio.Channel) -> None:
    await set_faults(channel, agent="ui_ux", latency_ms=300)
    started = time.perf_counter()
    slow = asyncio.ensure_future(ui_ux_pb2_grpc.UiUxStub(channel).Notify(ui_ux_pb2.NotifyRequest(user_id="u1")))
    await analytics(channel).RecordEvents(events())
    fast = time.perf_counter() - started
    await slow
    assert fast < 0.2
    assert time.perf_counter() - started >= 0.3
    await status_of(channel, "ui_ux")
    assert time.perf_counter() - started < 1.0


async def test_fault_injection_error_rate_follows_its_seed(channel: grpc.aio.Channel) -> None:
    async def pattern() -> list[bool]:
        await set_faults(channel, agent="analytics", error_rate=0.5, seed=42)
        outcomes = []
        for _ in range(30):
            try:
                await analytics(channel).RecordEvents(events())
                outcomes.append(True)
            except grpc.aio.AioRpcError:
                outcomes.append(False)
        return outcomes

    first = await pattern()
    assert await pattern() == first
    assert 5 < first.count(False) < 25


async def test_latency_after_effect_applies_the_submission_and_answers_past_the_callers_deadline(
    channel: grpc.aio.Channel,
) -> None:
    config = faults_pb2.FaultConfig(agent="automation", operations=["SubmitApplication"])
    config.latency_after_effect.FromSeconds(60)
    await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)
    stub = automation_pb2_grpc.AutomationStub(channel)
    request = automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=["job-0001"])
    error = await rpc_error(stub.SubmitApplication(request, timeout=1.0, metadata=((KEY, "exec-1/apply"),)))
    assert error.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert [a.job_id for a in listed.applications] == ["job-0001"]
    # Once the fault is gone, the retry under the same key is answered with what was applied.
    await set_faults(channel, agent="automation")
    retried = await stub.SubmitApplication(request, timeout=10, metadata=((KEY, "exec-1/apply"),))
    assert list(retried.applications) == list(listed.applications)
    listed = await stub.ListApplications(automation_pb2.ListApplicationsRequest(user_id="u1"))
    assert len(listed.applications) == 1


async def test_latency_after_effect_delays_only_operations_that_succeed(channel: grpc.aio.Channel) -> None:
    config = faults_pb2.FaultConfig(agent="automation")
    config.latency_after_effect.FromSeconds(60)
    await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)
    stub = automation_pb2_grpc.AutomationStub(channel)
    error = await rpc_error(
        stub.SubmitApplication(automation_pb2.SubmitApplicationRequest(user_id="u1", job_ids=[]), timeout=10)
    )
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_latency_after_effect_round_trips_through_set_and_get_faults(channel: grpc.aio.Channel) -> None:
    config = faults_pb2.FaultConfig(agent="automation", operations=["SubmitApplication"])
    config.latency_after_effect.FromMilliseconds(1500)
    answer = await faults_pb2_grpc.FaultInjectionStub(channel).SetFaults(config)
    assert answer.latency_after_effect.ToMilliseconds() == 1500
    got = await faults_pb2_grpc.FaultInjectionStub(channel).GetFaults(faults_pb2.GetFaultsRequest(agent="automation"))
    assert got.latency_after_effect.ToMilliseconds() == 1500
    assert not got.HasField("latency") or got.latency.ToNanoseconds() == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"error_rate": 1.5}, "error_rate"),
        ({"error_code": "SOMETIMES"}, "error_code"),
        ({"error_code": "OK"}, "error_code"),
        ({"agent": "nobody"}, "agent"),
        ({"agent": "analytics", "operations": ["SearchJobs"]}, "operations"),
        ({"fail_next": -1}, "fail_next"),
        ({"latency_after_effect": Duration(seconds=-1)}, "latency_after_effect"),
    ],
)
async def test_set_faults_with_a_bad_field_answers_invalid_argument_naming_it(
    channel: grpc.aio.Channel, fields: dict[str, Any], field: str
) -> None:
    error = await rpc_error(set_faults(channel, **fields))
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error.details().startswith(field + " ")


async def test_start_up_faults_apply_to_every_agent_but_not_get_status() -> None:
    fleet = await start_fleet(FleetConfig(error_rate=1.0, latency_ms=50, seed=1, faults=True))
    try:
        async with grpc.aio.insecure_channel(fleet.address) as opened:
            started = time.perf_counter()
            error = await rpc_error(analytics(opened).RecordEvents(events()))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert time.perf_counter() - started >= 0.05
            for agent in AGENTS:
                assert (await status_of(opened, agent)).agent == agent
            default = await faults_pb2_grpc.FaultInjectionStub(opened).GetFaults(faults_pb2.GetFaultsRequest())
            assert (default.error_rate, default.latency.ToMilliseconds(), default.seed) == (1.0, 50, 1)
    finally:
        await fleet.stop(grace=0)


async def test_crash_after_kills_the_agent_process(fleet_processes: list[FleetProcess]) -> None:
    crashing = await FleetProcess.start("--faults")
    fleet_processes.append(crashing)
    async with grpc.aio.insecure_channel(crashing.address) as opened:
        await set_faults(opened, agent="analytics", crash_after=2)
        assert (await analytics(opened).RecordEvents(events())).recorded == 1
        error = await rpc_error(analytics(opened).RecordEvents(events(), timeout=10))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert await crashing.wait() == 137


async def test_without_faults_enabled_fault_injection_is_not_served_and_cannot_crash_the_fleet(
    fleet_processes: list[FleetProcess],
) -> None:
    plain = await FleetProcess.start()
    fleet_processes.append(plain)
    async with grpc.aio.insecure_channel(plain.address) as opened:
        for fields in ({"agent": "analytics", "crash_after": 1}, {"crash_after": 1}, {"error_rate": 1.0}):
            error = await rpc_error(set_faults(opened, **fields))
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED, fields
        error = await rpc_error(faults_pb2_grpc.FaultInjectionStub(opened).GetFaults(faults_pb2.GetFaultsRequest()))
        assert error.code() == grpc.StatusCode.UNIMPLEMENTED
        for _ in range(3):
            assert (await analytics(opened).RecordEvents(events())).recorded == 1
        health = health_pb2_grpc.HealthStub(opened)
        fault_service = faults_pb2.DESCRIPTOR.services_by_name["FaultInjection"].full_name
        error = await rpc_error(health.Check(health_pb2.HealthCheckRequest(service=fault_service)))
        assert error.code() == grpc.StatusCode.NOT_FOUND
    assert plain.process.returncode is None


async def test_start_up_faults_apply_without_fault_injection_being_served() -> None:
    fleet = await start_fleet(FleetConfig(error_rate=1.0, seed=1))
    try:
        async with grpc.aio.insecure_channel(fleet.address) as opened:
            error = await rpc_error(analytics(opened).RecordEvents(events()))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            # The process running the fleet may still change its faults, without the service.
            fleet.set_faults(faults_pb2.FaultConfig())
            assert (await analytics(opened).RecordEvents(events())).recorded == 1
            error = await rpc_error(set_faults(opened, error_rate=1.0))
            assert error.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        await fleet.stop(grace=0)


async def test_the_fleet_refuses_a_request_past_its_message_limit() -> None:
    fleet = await start_fleet(FleetConfig(max_message_bytes=64 * 1024))
    try:
        async with grpc.aio.insecure_channel(fleet.address) as opened:
            big = analytics_pb2.RecordEventsRequest(
                user_id="u1", events=[analytics_pb2.AnalyticsEvent(name="x" * (100 * 1024))]
            )
            error = await rpc_error(analytics(opened).RecordEvents(big))
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert (await analytics(opened).RecordEvents(events())).recorded == 1
    finally:
        await fleet.stop(grace=0)


# ---- data ---------------------------------------------------------------------------------------


def test_make_jobs_regenerates_exactly_the_committed_jobs_json(tmp_path: Path) -> None:
    out = tmp_path / "jobs.json"
    subprocess.run([sys.executable, str(DATA / "make_jobs.py"), "--out", str(out)], check=True, timeout=60)
    assert out.read_bytes() == (DATA / "jobs.json").read_bytes()


def test_the_bundled_postings_are_complete_and_distinct() -> None:
    assert len(JOBS) >= 100
    assert len({j["job_id"] for j in JOBS}) == len(JOBS)
    assert {j["source"] for j in JOBS} == {"linkedin", "indeed", "glassdoor", "ziprecruiter"}
    assert {j["seniority"] for j in JOBS} == {"junior", "mid", "senior", "lead"}
    for job in JOBS:
        assert job["title"] and job["company"] and job["location"] and job["description"] and job["skills"]
        assert 0 < job["salary_min"] < job["salary_max"]
