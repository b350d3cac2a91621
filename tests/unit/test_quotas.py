"""Per-user quotas (server.api.quotas): a token bucket of submissions, open watches and unread bytes."""

from __future__ import annotations

import grpc
import pytest

from server.api.errors import RequestError
from server.api.quotas import SubmissionBuckets, WatchLedger, peer_host, watcher
from server.auth import ANONYMOUS, Principal, Role, set_principal
from server.config import ConfigError, LimitsConfig

_MIB = 1024 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_user_may_burst_a_minutes_worth_then_one_submission_per_refill() -> None:
    clock = Clock()
    buckets = SubmissionBuckets(6, clock=clock)
    for _ in range(6):
        buckets.take("u1")
    with pytest.raises(RequestError) as raised:
        buckets.take("u1")
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.message == (
        "submissions_per_minute: more than 6 submissions a minute for this user; try again in 10.0s"
    )
    buckets.take("u2")  # another user's bucket is full
    clock.now += 10  # one token refilled (6 a minute)
    buckets.take("u1")
    with pytest.raises(RequestError):
        buckets.take("u1")


def test_zero_submissions_per_minute_means_no_limit() -> None:
    buckets = SubmissionBuckets(0)
    for _ in range(1000):
        buckets.take("u1")


def test_full_buckets_are_forgotten_so_made_up_users_cost_no_lasting_memory() -> None:
    clock = Clock()
    buckets = SubmissionBuckets(60, clock=clock)
    for n in range(10_001):
        buckets.take(f"old-{n}")
    clock.now += 60  # every old bucket has refilled: as good as new, so forgotten at the next sweep
    for n in range(10_002):
        buckets.take(f"new-{n}")
    assert len(buckets._buckets) <= 10_002
    assert not any(user.startswith("old-") for user in buckets._buckets)


def test_open_watches_are_bounded_per_user_and_released() -> None:
    ledger = WatchLedger(LimitsConfig(watches_per_user=2))
    ledger.open("a")
    ledger.open("a")
    ledger.open("b")
    with pytest.raises(RequestError) as raised:
        ledger.open("a")
    assert raised.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert raised.value.message.startswith("watches_per_user: 2 watches are open for this user")
    ledger.close("a")
    ledger.open("a")
    for user in ("a", "a", "b"):
        ledger.close(user)
    assert ledger.open_watches("a") == 0 and not ledger._open


def test_pending_bytes_are_bounded_per_user_and_in_all_but_one_update_always_goes() -> None:
    ledger = WatchLedger(LimitsConfig(watch_pending_bytes_per_user=2 * _MIB, watch_pending_bytes=3 * _MIB))
    assert ledger.reserve("a", 5 * _MIB) is None  # alone, even an update past every bound is sent
    assert ledger.reserve("a", 1) == "watch_pending_bytes_per_user"
    ledger.release("a", 5 * _MIB)
    assert ledger.reserve("a", _MIB) is None
    assert ledger.reserve("b", _MIB) is None
    assert ledger.reserve("c", _MIB) is None
    assert ledger.reserve("d", 1) == "watch_pending_bytes"
    for user in ("a", "b", "c"):
        ledger.release(user, _MIB)
    assert ledger.pending_total == 0 and not ledger._pending


def test_a_watchs_user_is_the_subject_when_authenticated_else_the_peers_address() -> None:
    assert peer_host("ipv4:10.0.0.7:51234") == "ipv4:10.0.0.7"
    assert peer_host("ipv6:[::1]:51234") == "ipv6:[::1]"
    assert peer_host("unix:/tmp/sock") == "unix:/tmp/sock"
    assert watcher("ipv4:10.0.0.7:1") == "peer:ipv4:10.0.0.7"
    token = set_principal(Principal(subject="alice", roles=frozenset({Role.USER})))
    try:
        assert watcher("ipv4:10.0.0.7:1") == "user:alice"
    finally:
        set_principal(ANONYMOUS)
        del token


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("max_json_depth", 17),
        ("max_plan_steps", 201),
        ("max_string_bytes", 100),
        ("watch_stall", 0),
        ("watches_per_user", -1),
        ("submissions_per_minute", -1),
        ("watch_pending_bytes_per_user", 1),
    ],
)
def test_limits_out_of_range_are_refused_naming_the_setting(field: str, value: float) -> None:
    with pytest.raises(ConfigError, match=f"limits.{field}: expected"):
        LimitsConfig(**{field: value})  # type: ignore[arg-type]
