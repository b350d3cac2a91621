"""Who caused an event: the engine stamps a client's actor on exactly the event its command causes.

Driven through `decide` (pure) and the Engine over a memory store; the gRPC side is in
tests/integration/test_audit.py.
"""

from __future__ import annotations

from typing import Any

import pytest
from baton.v1 import execution_pb2 as E
from baton.v1 import journey_pb2
from baton.v1 import plan_pb2 as P

from server.api.audit import actor_of, audit_page
from server.auth import ANONYMOUS, Principal, Role, set_principal
from server.engine import AgentCallError, ExecutionState, SignalCommand, Submission, decide, fold
from server.engine.inbox import Cancel, InternalFailure, Outcome, Pause, Resume
from server.store import AuditPage, AuditRecord
from server.store._page_tokens import decode_audit_token
from tests.unit.engine_support import Harness, approval_step, plan, started_event, step, submit_step
from tests.unit.fakes import START, reply


def _actor(subject: str) -> E.Actor:
    return E.Actor(subject=subject, roles=["user"], peer="ipv4:127.0.0.1:9")


def _state(p: P.OrchestrationPlan) -> ExecutionState:
    return fold("ex", [started_event(p)])


def _rng() -> float:
    return 0.5


def _stamped(events: list[E.ExecutionEvent]) -> list[tuple[str, str]]:
    """(kind, subject) of every event; subject '-' for an event without an actor."""
    return [(e.WhichOneof("kind") or "", e.actor.subject if e.HasField("actor") else "-") for e in events]


# ---- decide: exactly the event the command causes ------------------------------------------------


def test_a_cancel_that_unwinds_stamps_the_unwinding_and_not_the_compensation_or_the_end() -> None:
    state = _state(plan(submit_step(), step("B", "submit")))
    decide(state, START, rng=_rng)
    decide(state, START, [Outcome("submit", 1, reply({"applications": [{"application_id": "a-1"}]}))], rng=_rng)

    cancelling = decide(state, START, [Cancel("stop", _actor("alice"))], rng=_rng)
    finished = decide(state, START, [Outcome("submit", 1, reply({}), compensation=True)], rng=_rng)

    assert _stamped(cancelling.events) == [("execution_unwinding", "alice"), ("compensation_started", "-")]
    assert _stamped(finished.events) == [("compensation_succeeded", "-"), ("execution_cancelled", "-")]
    assert cancelling.events[0].actor == _actor("alice")


def test_a_cancel_that_ends_at_once_stamps_the_end() -> None:
    state = _state(plan(step("A")))
    decision = decide(state, START, [Cancel("stop", _actor("bob"))], rng=_rng)
    assert _stamped(decision.events) == [("execution_cancelled", "bob")]


def test_pause_and_resume_stamp_their_own_events() -> None:
    state = _state(plan(step("A")))
    paused = decide(state, START, [Pause("p", _actor("carol"))], rng=_rng)
    resumed = decide(state, START, [Resume("r", _actor("dave"))], rng=_rng)
    assert _stamped(paused.events) == [("execution_paused", "carol")]
    assert _stamped(resumed.events)[0] == ("execution_resumed", "dave")
    assert all(subject == "-" for _, subject in _stamped(resumed.events)[1:])  # the steps it then starts


def test_a_rejection_stamps_the_signal_and_not_the_unwinding_it_leads_to() -> None:
    state = _state(plan(approval_step("ok", data={"job_ids": ["j1"]}), step("B", "ok")))
    decide(state, START, rng=_rng)

    decision = decide(state, START, [SignalCommand(E.SIGNAL_REJECT, reason="no", actor=_actor("erin"))], rng=_rng)

    assert _stamped(decision.events) == [("signal_received", "erin"), ("execution_cancelled", "-")]


def test_a_refused_command_stamps_nothing_that_follows_in_the_same_round() -> None:
    state = _state(plan(step("A"), step("B", "A")))
    decide(state, START, rng=_rng)

    decision = decide(
        state,
        START,
        [Resume("not paused", _actor("mallory")), Outcome("A", 1, reply({})), Pause("p", _actor("frank"))],
        rng=_rng,
    )

    assert decision.refused == {0: "execution ex is running, not paused"}
    assert _stamped(decision.events) == [("step_succeeded", "-"), ("execution_paused", "frank")]


def test_commands_without_an_actor_and_the_engines_own_stamp_nothing() -> None:
    state = _state(plan(step("A", retries=0)))
    decide(state, START, rng=_rng)
    failed = decide(state, START, [Outcome("A", 1, AgentCallError("INTERNAL", "x", retryable=False))], rng=_rng)
    other = _state(plan(step("A")))
    internal = decide(other, START, [InternalFailure("runner kept dying")], rng=_rng)
    plain = decide(_state(plan(step("A"))), START, [Cancel("no actor")], rng=_rng)

    assert all(not e.HasField("actor") for e in [*failed.events, *internal.events, *plain.events])


# ---- the engine: submission and commands through the runner --------------------------------------


async def test_the_engine_stamps_the_submission_and_each_command_and_nothing_else() -> None:
    h = Harness(latency=1.0)
    p = plan(step("A"), approval_step("ok", "A", data={"job_ids": ["j1", "j2"]}), step("B", "ok"))
    await h.engine.submit(
        Submission(
            execution_id="ex-1",
            plan=p,
            user_context=journey_pb2.UserJourney(user_id="u1"),
            actor=_actor("submitter"),
        )
    )
    await h.engine.pause("ex-1", "hold on", actor=_actor("pauser"))
    await h.engine.resume("ex-1", "go", actor=_actor("resumer"))
    for _ in range(20):
        await h.settle()
        if h.state("ex-1").steps["ok"].phase.value == "waiting":
            break
        wake = h.clock.next_wake()
        if wake is not None:
            h.clock.advance_to(wake)
    await h.engine.signal("ex-1", SignalCommand(E.SIGNAL_INPUT, payload={"note": "x"}, actor=_actor("inputter")))
    await h.engine.signal("ex-1", SignalCommand(E.SIGNAL_APPROVE, actor=_actor("approver")))
    await h.run("ex-1")

    stamped = [(kind, who) for kind, who in _stamped(h.store.events["ex-1"]) if who != "-"]
    assert stamped == [
        ("execution_started", "submitter"),
        ("execution_paused", "pauser"),
        ("execution_resumed", "resumer"),
        ("signal_received", "inputter"),
        ("signal_received", "approver"),
    ]
    assert h.kinds("ex-1")[-1] == "execution_completed"
    assert [record.action for record in reversed(h.store.audit.values())] == [k for k, _ in reversed(stamped)]


async def test_cancelling_through_the_engine_stamps_the_cancel() -> None:
    h = Harness(latency=5.0)
    execution_id = await h.submit(plan(step("A")))
    await h.settle()
    await h.engine.cancel(execution_id, "stop", actor=_actor("canceller"))
    await h.run(execution_id)
    assert [(k, s) for k, s in _stamped(h.store.events[execution_id]) if s != "-"] == [
        ("execution_cancelled", "canceller")
    ]


# ---- the API's actor and pages -----------------------------------------------------------------


class _Context:
    def __init__(self, peer: Any) -> None:
        self._peer = peer

    def peer(self) -> Any:
        if isinstance(self._peer, Exception):
            raise self._peer
        return self._peer


def test_with_authentication_off_the_actor_is_anonymous_and_keeps_the_claimed_user_apart() -> None:
    token = set_principal(ANONYMOUS)
    try:
        actor = actor_of(_Context("ipv4:127.0.0.1:5"), claimed_user="u1")  # type: ignore[arg-type]
    finally:
        token.var.reset(token)
    assert actor == E.Actor(peer="ipv4:127.0.0.1:5", claimed_user="u1")


def test_an_authenticated_actor_names_the_subject_and_roles_and_no_claimed_user() -> None:
    token = set_principal(Principal(subject="alice", roles=frozenset({Role.OPERATOR, Role.USER})))
    try:
        actor = actor_of(_Context("ipv6:[::1]:7"), claimed_user="someone-else")  # type: ignore[arg-type]
    finally:
        token.var.reset(token)
    assert actor == E.Actor(subject="alice", roles=["operator", "user"], peer="ipv6:[::1]:7")


@pytest.mark.parametrize("peer", [RuntimeError("no transport"), None])
def test_a_context_without_a_peer_gives_an_empty_peer(peer: Any) -> None:
    assert actor_of(_Context(peer)).peer == ""  # type: ignore[arg-type]


def test_a_page_too_large_for_a_reply_stops_early_and_resumes_after_the_last_entry_sent() -> None:
    big = E.Actor(claimed_user="u" * 100_000).SerializeToString()
    records = [AuditRecord(f"x{n}", "u1", 1, START, "execution_started", "", big, audit_no=n) for n in range(10, 0, -1)]
    page = AuditPage(records=records, next_page_token="later")

    reply = audit_page(page, budget=350_000)
    whole = audit_page(page, budget=10_000_000)

    assert [e.execution_id for e in reply.entries] == ["x10", "x9", "x8"]
    assert reply.ByteSize() <= 350_000
    assert reply.next_page_token != "later" and reply.next_page_token
    assert len(whole.entries) == 10 and whole.next_page_token == "later"
    assert whole.entries[0].actor.claimed_user == "u" * 100_000
    assert decode_audit_token(reply.next_page_token) == 8  # the next page starts with x7
