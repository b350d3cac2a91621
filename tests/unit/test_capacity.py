"""Bulkheads, rate limits and the job boards' limits around a caller (agents_clients.capacity,
agents_clients.boards), and their settings (server.cli._capacity): the conformance table."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from baton.v1 import common_pb2, job_discovery_pb2
from google.protobuf.message import Message

from agents_clients import (
    AGENT_CAPACITY,
    BOARD_SUSPENDED,
    BoardGuard,
    BoardLimitsConfig,
    CapacityCaller,
    CapacityConfig,
    RateLimit,
)
from server.cli._capacity import capacity_from
from server.cli._parser import build_parser
from server.config import ConfigError, agents_resilience
from server.engine.ports import AgentCall, AgentCallError, AgentReply, CallOrigin

ACTIVE, LIMITED, SUSPENDED = (
    common_pb2.ACCOUNT_HEALTH_ACTIVE,
    common_pb2.ACCOUNT_HEALTH_LIMITED,
    common_pb2.ACCOUNT_HEALTH_SUSPENDED,
)


class SlowCaller:
    """Answers every call after `latency` seconds; records the calls and how many overlapped."""

    def __init__(self, latency: float = 0.05, output: Message | None = None) -> None:
        self.latency = latency
        self.output = output or common_pb2.Quality()
        self.calls: list[AgentCall] = []
        self.in_flight = 0
        self.most = 0

    async def call(self, call: AgentCall) -> AgentReply:
        self.calls.append(call)
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        try:
            await asyncio.sleep(self.latency)
        finally:
            self.in_flight -= 1
        return AgentReply(output=self.output)


def _call(
    agent: str = "analytics", operation: str = "RecordEvents", step: str = "s", timeout: float = 5.0, **payload: object
) -> AgentCall:
    return AgentCall(
        agent=agent,
        operation=operation,
        payload={"user_id": "u", **payload},
        timeout=timeout,
        idempotency_key=f"ex/{step}",
        origin=CallOrigin("ex", step, 1, "step"),
    )


# ---- rule 1-3 of capacity: scopes, waiting within the attempt, visible waits -------------------


async def test_a_bulkhead_of_one_serialises_calls_and_lists_the_waiting_one() -> None:
    inner = SlowCaller(0.05)
    caller = CapacityCaller(inner, CapacityConfig(bulkheads={"analytics": 1}))
    seen: list[list[str]] = []
    caller.waits.add_listener(lambda execution_id: seen.append([w.prompt for w in caller.waits.of(execution_id)]))
    await asyncio.gather(caller.call(_call(step="a")), caller.call(_call(step="b")))
    assert inner.most == 1 and len(inner.calls) == 2
    assert seen == [["waiting for agent capacity: analytics.RecordEvents, bulkhead analytics"], []]
    assert caller.counts.held == 1 and caller.counts.held_by == {"bulkhead analytics": 1}
    assert inner.calls[1].timeout < 5.0  # the wait came out of the attempt's timeout
    assert caller.bulkheads["analytics"].in_use == 0


async def test_an_operation_scope_limits_only_that_operation() -> None:
    inner = SlowCaller(0.05)
    caller = CapacityCaller(inner, CapacityConfig(bulkheads={"analytics.GetInsights": 1}))
    await asyncio.gather(*(caller.call(_call(step=f"s{i}")) for i in range(3)))
    assert inner.most == 3


async def test_past_the_waiters_bound_a_call_fails_unsent_and_retryably() -> None:
    inner = SlowCaller(0.05)
    caller = CapacityCaller(inner, CapacityConfig(bulkheads={"analytics": 1}, max_waiting=0))
    results = await asyncio.gather(caller.call(_call(step="a")), caller.call(_call(step="b")), return_exceptions=True)
    refused = results[1]
    assert isinstance(refused, AgentCallError)
    assert (refused.error_type, refused.retryable) == (AGENT_CAPACITY, True)
    assert "bulkhead analytics" in refused.message and len(inner.calls) == 1
    assert caller.counts.refused == 1 and len(caller.waits) == 0


async def test_a_wait_longer_than_the_attempts_timeout_fails_unsent() -> None:
    inner = SlowCaller(0.3)
    caller = CapacityCaller(inner, CapacityConfig(bulkheads={"analytics": 1}))
    results = await asyncio.gather(
        caller.call(_call(step="a")), caller.call(_call(step="b", timeout=0.05)), return_exceptions=True
    )
    assert isinstance(results[1], AgentCallError) and results[1].error_type == AGENT_CAPACITY
    assert len(inner.calls) == 1 and len(caller.waits) == 0


async def test_a_cancelled_waiting_call_gives_back_its_place_and_leaves_the_list() -> None:
    inner = SlowCaller(0.1)
    caller = CapacityCaller(inner, CapacityConfig(bulkheads={"analytics": 1}))
    first = asyncio.create_task(caller.call(_call(step="a")))
    second = asyncio.create_task(caller.call(_call(step="b")))
    await asyncio.sleep(0.02)
    assert len(caller.waits) == 1
    second.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert len(caller.waits) == 0 and caller.bulkheads["analytics"].waiting == 0
    assert caller.bulkheads["analytics"].in_use == 0 and len(inner.calls) == 1


async def test_an_ending_executions_waiting_step_calls_give_up_unsent_but_not_its_compensations() -> None:
    inner = SlowCaller(0.2)
    caller = CapacityCaller(inner, CapacityConfig(bulkheads={"analytics": 1}))
    holder = asyncio.create_task(caller.call(_call(step="held")))
    await asyncio.sleep(0.01)
    step_call = asyncio.create_task(caller.call(_call(step="s")))
    undo = _call(step="u")
    undo = dataclasses.replace(undo, origin=CallOrigin("ex", "u", 1, "compensation"))
    compensation = asyncio.create_task(caller.call(undo))
    await asyncio.sleep(0.01)
    caller.abandon("ex")
    results = await asyncio.gather(holder, step_call, compensation, return_exceptions=True)
    refused = results[1]
    assert isinstance(refused, AgentCallError) and refused.error_type == AGENT_CAPACITY
    assert not refused.retryable and "the execution is ending" in refused.message
    assert [c.origin.step_id for c in inner.calls if c.origin] == ["held", "u"]
    assert caller.bulkheads["analytics"].in_use == 0 and len(caller.waits) == 0


async def test_a_rate_limit_holds_calls_to_its_pace() -> None:
    inner = SlowCaller(0.0)
    caller = CapacityCaller(inner, CapacityConfig(rate_limits={"analytics": RateLimit(20.0, 1)}))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(4):
        await caller.call(_call(step=f"s{i}"))
    assert loop.time() - started >= 3 / 20 - 0.01
    assert caller.counts.held == 3


# ---- the job boards (agents_clients.boards) ---------------------------------------------------


def _guard() -> BoardGuard:
    guard = BoardGuard(BoardLimitsConfig(quota_window=100, limited_share=0.5, min_rate=0.01))
    guard.learn(
        [
            {"job_id": "j-li", "source": "linkedin"},
            {"job_id": "j-in", "source": "indeed"},
            {"job_id": "j-gd", "source": "glassdoor"},
        ]
    )
    return guard


def test_a_limited_boards_pace_is_a_share_of_its_quotas_even_pace_and_a_spent_one_gets_the_floor() -> None:
    guard = _guard()
    guard.update(
        {"linkedin": LIMITED, "indeed": ACTIVE, "glassdoor": ACTIVE}, {"linkedin": 40, "indeed": 0, "glassdoor": 9}
    )
    assert guard.boards["linkedin"].bucket is not None and guard.boards["linkedin"].bucket.rate == pytest.approx(0.2)
    assert guard.boards["indeed"].bucket is not None and guard.boards["indeed"].bucket.rate == pytest.approx(0.01)
    assert guard.boards["glassdoor"].bucket is None  # active with quota left: not paced
    guard.update({"linkedin": LIMITED}, {"linkedin": 0})
    bucket = guard.boards["linkedin"].bucket
    assert bucket is not None and bucket.rate == pytest.approx(0.01)  # floored


def test_an_automation_calls_jobs_on_a_suspended_board_are_taken_out() -> None:
    guard = _guard()
    guard.update({"linkedin": SUSPENDED, "indeed": LIMITED}, {"indeed": 10})
    checked = guard.check("automation", {"user_id": "u", "job_ids": ["j-li", "j-in", "j-unknown"]})
    assert checked.payload["job_ids"] == ["j-in", "j-unknown"]  # an unknown job's board: sent
    assert checked.dropped == (("j-li", "linkedin"),) and checked.paced == ("indeed",)
    assert guard.dropped == 1


async def test_an_automation_call_whose_every_job_is_on_a_suspended_board_is_refused_unsent() -> None:
    guard = _guard()
    guard.update({"linkedin": SUSPENDED}, {})
    inner = SlowCaller(0.0)
    caller = CapacityCaller(inner, boards=guard)
    with pytest.raises(AgentCallError) as refused:
        await caller.call(_call("automation", "SubmitApplication", job_ids=["j-li"]))
    assert (refused.value.error_type, refused.value.retryable) == (BOARD_SUSPENDED, False)
    assert "linkedin" in refused.value.message and inner.calls == []
    # Withdrawals name applications, not jobs: a compensation always goes through.
    await caller.call(_call("automation", "WithdrawApplication", application_ids=["app-1"]))
    assert len(inner.calls) == 1


async def test_calls_for_a_limited_board_wait_for_its_bucket_and_say_which_board() -> None:
    guard = BoardGuard(BoardLimitsConfig(quota_window=1, limited_share=1.0, min_rate=0.01))
    guard.learn([{"job_id": "j-li", "source": "linkedin"}])
    guard.update({"linkedin": LIMITED}, {"linkedin": 10})  # 10 calls a second, burst 1
    inner = SlowCaller(0.0)
    caller = CapacityCaller(inner, boards=guard)
    prompts: list[str] = []
    caller.waits.add_listener(lambda e: prompts.extend(w.prompt for w in caller.waits.of(e)))
    loop = asyncio.get_running_loop()
    started = loop.time()
    for i in range(3):
        await caller.call(_call("automation", "SubmitApplication", step=f"s{i}", job_ids=["j-li"]))
    assert loop.time() - started >= 0.19
    assert prompts and all(p.endswith("board linkedin (limited)") for p in prompts)
    # The same board searched with an explicit source list is paced too; other boards are not.
    await caller.call(_call("job_discovery", "SearchJobs", sources=["indeed"]))
    assert caller.counts.held_by == {"board linkedin (limited)": 2}


async def test_the_guard_learns_each_jobs_board_from_the_search_replies_passing_through() -> None:
    reply = job_discovery_pb2.SearchJobsResponse(jobs=[job_discovery_pb2.JobPosting(job_id="j9", source="dice")])
    caller = CapacityCaller(SlowCaller(0.0, reply))
    await caller.call(_call("job_discovery", "SearchJobs"))
    assert caller.boards.board_of("j9") == "dice"
    # A request is a user's to write: it never moves a job to another board.
    await caller.call(_call("matching_intelligence", "ScoreMatches", jobs=[{"job_id": "j9", "source": "direct"}]))
    assert caller.boards.board_of("j9") == "dice"


# ---- settings: flags over the YAML file's resilience section ----------------------------------


def _args(*flags: str):  # type: ignore[no-untyped-def]
    return build_parser().parse_args(["serve", *flags])


def test_flags_and_yaml_set_bulkheads_rate_limits_and_the_boards_settings(tmp_path: Path) -> None:
    path = tmp_path / "agents.yaml"
    path.write_text(
        "agents:\n  default: 127.0.0.1:50061\n"
        "resilience:\n"
        "  bulkheads: {job_discovery: 4, automation.SubmitApplication: 2}\n"
        "  rate_limits: {job_discovery: 5/s:10}\n"
        "  capacity: {max_waiting: 7, board_min_rate: 2/m}\n"
    )
    config = capacity_from(
        _args("--bulkhead", "automation.SubmitApplication=1", "--rate-limit", "analytics=30/m"),
        agents_resilience(str(path)),
    )
    assert config.bulkheads == {"job_discovery": 4, "automation.SubmitApplication": 1}
    assert config.rate_limits == {"job_discovery": RateLimit(5.0, 10), "analytics": RateLimit(0.5, 1)}
    assert config.max_waiting == 7 and config.boards.min_rate == pytest.approx(1 / 30)


@pytest.mark.parametrize(
    ("flags", "section", "message"),
    [
        (("--bulkhead", "nobody=2"), {}, "--bulkhead nobody: unknown agent 'nobody'"),
        (("--bulkhead", "automation.Fly=2"), {}, "--bulkhead automation.Fly: agent 'automation' has no operation"),
        (("--bulkhead", "automation=0"), {}, "bulkheads.automation: expected calls in flight from 1"),
        (("--bulkhead", "automation"), {}, "--bulkhead: expected SCOPE=VALUE"),
        (("--bulkhead", "automation=two"), {}, "--bulkhead automation: expected a whole number"),
        (("--rate-limit", "automation=5"), {}, "--rate-limit automation: expected RATE/s[:BURST]"),
        (("--rate-limit", "automation=0/s"), {}, "--rate-limit automation: expected a rate above 0"),
        (("--rate-limit", "automation=5/s:0"), {}, "--rate-limit automation: expected a burst from 1"),
        (("--capacity-max-waiting", "-1"), {}, "capacity.max_waiting"),
        (("--board-limited-share", "0"), {}, "boards.limited_share"),
        (("--board-min-rate", "fast"), {}, "--board-min-rate: expected RATE/s"),
        ((), {"bulkheads": {"automation": "x"}}, "resilience.bulkheads.automation: expected a whole number"),
        ((), {"rate_limits": {"automation": 5}}, "resilience.rate_limits.automation: expected RATE/s[:BURST] as text"),
        ((), {"capacity": {"max_wait": 5}}, "resilience.capacity.max_wait: unknown"),
        ((), {"bulkheads": [1]}, "resilience.bulkheads: expected a mapping"),
    ],
)
def test_bad_limits_are_refused_naming_the_setting(
    flags: tuple[str, ...], section: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigError) as refused:
        capacity_from(_args(*flags), section)
    assert str(refused.value).startswith(message), refused.value
