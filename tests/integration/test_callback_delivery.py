"""The callback notifier against real HTTP receivers on 127.0.0.1 (aiohttp), allowed by rule."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import pytest
from aiohttp import web

from server.callbacks import CallbackConfig, CallbackNotifier, DeliveryOutcome, verify_signature
from tests.conftest import free_port
from tests.integration.callback_support import Outcomes, Receiver, SilentServer, delivery

SECRET = b"a-test-secret-of-32-bytes-length"
Make = Callable[..., Any]


@asynccontextmanager
async def started(**settings: Any) -> AsyncIterator[tuple[CallbackNotifier, Outcomes]]:
    """A started notifier allowed to reach 127.0.0.1 (unless `allow` says otherwise), closed after."""
    defaults: dict[str, Any] = {
        "allow": ("127.0.0.1",),
        "backoff": 0.05,
        "timeout": 3.0,
        "connect_timeout": 1.0,
        "close_grace": 0.2,
    }
    notifier = CallbackNotifier(CallbackConfig(**{**defaults, **settings}), secret=SECRET, jitter=lambda: 0.0)
    outcomes = Outcomes()
    notifier.add_outcome_listener(outcomes)
    notifier.start()
    try:
        yield notifier, outcomes
    finally:
        await notifier.close()


async def test_a_callback_is_posted_signed_with_its_execution_and_delivery_ids() -> None:
    async with Receiver(204) as receiver, started() as (notifier, outcomes):
        sent = delivery("e1", receiver.url + "?token=abc")
        notifier.enqueue(sent)
        outcome, detail, _ = await outcomes.of("e1")
        assert (outcome, detail) == (DeliveryOutcome.DELIVERED, "HTTP 204")
        [got] = receiver.received
    assert got.body == sent.body
    assert got.headers["Content-Type"] == "application/json"
    assert got.headers["Baton-Execution-Id"] == "e1"
    assert got.headers["Baton-Delivery-Id"] == sent.delivery_id
    assert got.headers["Baton-Delivery-Attempt"] == "1"
    assert "Baton-Status-Abridged" not in got.headers
    assert verify_signature(SECRET, got.headers["Baton-Signature"], got.body)
    assert not verify_signature(b"not the deployment's secret!!", got.headers["Baton-Signature"], got.body)


async def test_a_5xx_is_retried_with_the_same_delivery_id_and_a_fresh_valid_signature() -> None:
    async with Receiver(503, 500, 200) as receiver, started() as (notifier, outcomes):
        notifier.enqueue(delivery("e1", receiver.url))
        outcome, _, _ = await outcomes.of("e1")
    assert outcome is DeliveryOutcome.DELIVERED
    assert len(receiver.received) == 3
    assert len({r.headers["Baton-Delivery-Id"] for r in receiver.received}) == 1
    assert [r.headers["Baton-Delivery-Attempt"] for r in receiver.received] == ["1", "2", "3"]
    assert all(verify_signature(SECRET, r.headers["Baton-Signature"], r.body) for r in receiver.received)
    # Backoff doubles from 0.05 s (jitter pinned to its lower half).
    gaps = [b.at - a.at for a, b in zip(receiver.received, receiver.received[1:], strict=False)]
    assert gaps[0] >= 0.02 and gaps[1] >= 0.045


async def test_a_4xx_is_not_retried() -> None:
    async with Receiver(410) as receiver, started() as (notifier, outcomes):
        notifier.enqueue(delivery("e1", receiver.url))
        outcome, detail, _ = await outcomes.of("e1")
        await asyncio.sleep(0.2)
    assert outcome is DeliveryOutcome.REJECTED and "HTTP 410" in detail
    assert len(receiver.received) == 1


async def test_connection_errors_are_retried_until_the_attempts_run_out() -> None:
    async with started(attempts=3) as (notifier, outcomes):
        notifier.enqueue(delivery("e1", f"http://127.0.0.1:{free_port()}/hook"))
        outcome, detail, _ = await outcomes.of("e1")
    assert outcome is DeliveryOutcome.EXHAUSTED
    assert "cannot connect" in detail and "after 3 attempts" in detail


async def test_a_redirect_to_another_local_port_is_not_followed() -> None:
    async with Receiver(200) as inside:

        async def redirect(request: web.Request) -> web.StreamResponse:
            raise web.HTTPFound(inside.url)

        async with Receiver(redirect) as outside, started() as (notifier, outcomes):
            notifier.enqueue(delivery("e1", outside.url))
            outcome, detail, _ = await outcomes.of("e1")
            await asyncio.sleep(0.2)
    assert outcome is DeliveryOutcome.REJECTED
    assert "HTTP 302" in detail and "not followed" in detail
    assert len(outside.received) == 1
    assert inside.received == []


async def test_a_host_name_resolving_to_loopback_is_refused_at_delivery_unless_allowed() -> None:
    async with Receiver(200) as receiver:
        url = f"http://localhost:{receiver.port}/hook"
        async with started(allow=(), attempts=5) as (notifier, outcomes):
            notifier.enqueue(delivery("refused", url))
            outcome, detail, _ = await outcomes.of("refused")
            await asyncio.sleep(0.2)
        assert outcome is DeliveryOutcome.REFUSED, detail
        assert "loopback" in detail and "--callback-allow" in detail
        assert receiver.received == []
        # The same URL reaches the receiver once its address, or the name itself, is allowed.
        for allow in (("127.0.0.0/8",), ("localhost",)):
            async with started(allow=allow) as (notifier, outcomes):
                notifier.enqueue(delivery(f"allowed by {allow}", url))
                outcome, detail, _ = await outcomes.of(f"allowed by {allow}")
            assert outcome is DeliveryOutcome.DELIVERED, detail
    assert len(receiver.received) == 2


@pytest.mark.parametrize("host", ["127.1", "2130706433", "0x7f000001", "0177.0.0.1", "[::ffff:127.0.0.1]"])
async def test_a_literal_internal_address_queued_anyway_is_refused_before_connecting(host: str) -> None:
    async with Receiver(200) as receiver, started(allow=()) as (notifier, outcomes):
        notifier.enqueue(delivery("e1", f"http://{host}:{receiver.port}/hook"))
        outcome, detail, _ = await outcomes.of("e1")
    assert outcome is DeliveryOutcome.REFUSED and "loopback" in detail
    assert receiver.received == []


async def _delay_of_a_good_callback(notifier: CallbackNotifier, outcomes: Outcomes, url: str) -> float:
    await asyncio.sleep(0.2)  # the slow ones are in flight
    start = time.monotonic()
    notifier.enqueue(delivery("good", url, owner="alice"))
    outcome, _, at = await outcomes.of("good")
    assert outcome is DeliveryOutcome.DELIVERED
    return at - start


async def test_thirty_receivers_that_never_answer_do_not_delay_another_users_callback() -> None:
    async with AsyncExitStack() as stack:
        silent = [await stack.enter_async_context(SilentServer()) for _ in range(30)]
        receiver = await stack.enter_async_context(Receiver(200))
        notifier, outcomes = await stack.enter_async_context(started(timeout=3.0, attempts=1))
        for i, server in enumerate(silent):
            notifier.enqueue(delivery(f"slow{i}", server.url, owner=f"user{i}"))
        delay = await _delay_of_a_good_callback(notifier, outcomes, receiver.url)
        assert delay < 1.0, f"the good callback waited {delay:.2f}s behind 30 silent receivers"
        assert all(s.connections == 1 for s in silent)


async def test_one_slow_destination_holds_at_most_its_cap_of_workers() -> None:
    async with (
        SilentServer() as slow,
        Receiver(200) as receiver,
        started(workers=4, per_destination=2, timeout=3.0, attempts=1) as (notifier, outcomes),
    ):
        for i in range(30):
            notifier.enqueue(delivery(f"slow{i}", slow.url, owner=f"user{i}"))
        delay = await _delay_of_a_good_callback(notifier, outcomes, receiver.url)
        assert delay < 1.0, f"the good callback waited {delay:.2f}s behind one slow receiver"
        assert slow.connections == 2


async def test_one_owners_slow_receivers_hold_at_most_their_cap_of_workers() -> None:
    async with AsyncExitStack() as stack:
        silent = [await stack.enter_async_context(SilentServer()) for _ in range(30)]
        receiver = await stack.enter_async_context(Receiver(200))
        notifier, outcomes = await stack.enter_async_context(started(workers=4, per_owner=2, timeout=3.0, attempts=1))
        for i, server in enumerate(silent):
            notifier.enqueue(delivery(f"slow{i}", server.url, owner="mallory"))
        delay = await _delay_of_a_good_callback(notifier, outcomes, receiver.url)
        assert delay < 1.0, f"the good callback waited {delay:.2f}s behind another user's receivers"
        assert sum(s.connections for s in silent) == 2


async def test_a_parked_callback_is_not_held_up_by_one_parked_before_it_for_another_reason() -> None:
    # Origin R admits one delivery at a time, and so does each owner. X and Y wait for R; when R
    # frees, X still waits for its owner (busy with a silent receiver), so Y must go at once,
    # not when the silent receiver's attempt times out.
    async def answer_slowly(request: web.Request) -> web.StreamResponse:
        await asyncio.sleep(0.3)
        return web.Response(status=200)

    async with (
        SilentServer() as silent,
        Receiver(answer_slowly) as receiver,
        started(workers=4, per_destination=1, per_owner=1, timeout=5.0, attempts=1) as (notifier, outcomes),
    ):
        notifier.enqueue(delivery("z", silent.url, owner="x-owner"))
        await asyncio.wait_for(silent.connected.wait(), 5)
        start = time.monotonic()
        notifier.enqueue(delivery("first", receiver.url, owner="someone"))
        await asyncio.sleep(0.05)
        notifier.enqueue(delivery("x", receiver.url, owner="x-owner"))
        notifier.enqueue(delivery("y", receiver.url, owner="y-owner"))
        outcome, _, at = await outcomes.of("y")
        assert outcome is DeliveryOutcome.DELIVERED
        assert at - start < 1.5, f"y waited {at - start:.2f}s"
        assert "x" not in outcomes.seen
        outcome, _, _ = await outcomes.of("x")
        assert outcome is DeliveryOutcome.DELIVERED
        # The bookkeeping of caps is empty again once nothing is pending.
        assert (notifier.pending, notifier._active, notifier._woken, notifier._parked) == (0, {}, {}, {})


async def test_an_attempt_that_gets_no_answer_ends_at_its_timeout() -> None:
    async with SilentServer() as slow, started(timeout=0.5, attempts=2) as (notifier, outcomes):
        start = time.monotonic()
        notifier.enqueue(delivery("e1", slow.url))
        outcome, detail, at = await outcomes.of("e1")
    assert outcome is DeliveryOutcome.EXHAUSTED and "no answer within 0.5s" in detail
    assert 0.9 < at - start < 2.5
    assert slow.connections == 2


async def test_an_endless_answer_is_read_only_up_to_the_bound() -> None:
    async def endless(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=404)
        await response.prepare(request)
        while True:
            await response.write(b"x" * 65536)

    async with Receiver(endless) as receiver, started(timeout=5.0) as (notifier, outcomes):
        start = time.monotonic()
        notifier.enqueue(delivery("e1", receiver.url))
        outcome, detail, at = await outcomes.of("e1")
    assert outcome is DeliveryOutcome.REJECTED and detail == f"HTTP 404 {'x' * 200!r}"
    assert at - start < 2.0


async def test_a_2xx_whose_body_never_comes_is_a_delivery() -> None:
    async def headers_only(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(status=200, headers={"Content-Length": "100"})
        await response.prepare(request)
        await asyncio.sleep(30)
        return response

    async with Receiver(headers_only) as receiver, started(timeout=5.0) as (notifier, outcomes):
        start = time.monotonic()
        notifier.enqueue(delivery("e1", receiver.url))
        outcome, _, at = await outcomes.of("e1")
    assert outcome is DeliveryOutcome.DELIVERED and at - start < 2.0
    assert len(receiver.received) == 1


async def test_a_full_queue_drops_new_callbacks_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    notifier = CallbackNotifier(CallbackConfig(allow=("127.0.0.1",), max_pending=2, max_pending_bytes=1024))
    outcomes = Outcomes()
    notifier.add_outcome_listener(outcomes)
    with caplog.at_level(logging.WARNING, logger="server.callbacks"):
        for i in range(3):
            notifier.enqueue(delivery(f"e{i}", "http://127.0.0.1:9/hook"))
        notifier.enqueue(delivery("big", "http://127.0.0.1:9/hook", body=b"x" * 1000))
    assert notifier.pending == 2
    assert outcomes.seen["e2"][0] is DeliveryOutcome.DROPPED and "queue is full" in outcomes.seen["e2"][1]
    assert outcomes.seen["big"][0] is DeliveryOutcome.DROPPED
    assert "callback of execution e2 to http://127.0.0.1:9 dropped: the queue is full" in caplog.text
    await notifier.close()
    assert {outcomes.seen[e][0] for e in ("e0", "e1")} == {DeliveryOutcome.ABANDONED}


async def test_closing_abandons_what_is_still_pending_after_its_grace() -> None:
    async with SilentServer() as slow, started(close_grace=0.3, timeout=10.0) as (notifier, outcomes):
        notifier.enqueue(delivery("e1", slow.url))
        await asyncio.sleep(0.2)
        start = time.monotonic()
        await notifier.close()
        assert time.monotonic() - start < 1.5
        assert (await outcomes.of("e1"))[0] is DeliveryOutcome.ABANDONED
        assert all(worker.done() for worker in notifier._workers)
        notifier.enqueue(delivery("late", slow.url))
        assert (await outcomes.of("late"))[0] is DeliveryOutcome.DROPPED


async def test_without_a_secret_callbacks_are_unsigned_and_start_up_says_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="server.callbacks"):
        notifier = CallbackNotifier.from_config(CallbackConfig(allow=("127.0.0.1",)))
    assert "INFO" in caplog.text and "callbacks are unsigned" in caplog.text
    caplog.clear()
    outcomes = Outcomes()
    notifier.add_outcome_listener(outcomes)
    notifier.start()
    async with Receiver(200) as receiver:
        with caplog.at_level(logging.WARNING, logger="server.callbacks"):
            notifier.enqueue(delivery("e1", receiver.url))
            notifier.enqueue(delivery("e2", receiver.url))
        await outcomes.of("e1")
        await outcomes.of("e2")
        await notifier.close()
    assert caplog.text.count("callbacks are sent unsigned") == 1
    got = receiver.received[0]
    assert "Baton-Signature" not in got.headers and got.headers["Baton-Delivery-Id"]
