"""The bulkhead and the token bucket (agents_clients.limiters): first come first served, bounded
waiting, deadlines and cancellation that leak nothing, a bucket's waits known in advance."""

from __future__ import annotations

import asyncio

import pytest

from agents_clients.limiters import Bulkhead, CapacityFull, CapacityTimeout, TokenBucket


class FakeTime:
    """A monotonic clock that moves only when told, and a sleep that records and skips."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_bulkhead_admits_its_limit_then_serves_waiters_in_arrival_order() -> None:
    bulkhead = Bulkhead(2, max_waiting=10)
    await bulkhead.acquire(1)
    await bulkhead.acquire(1)
    order: list[int] = []

    async def waiter(n: int) -> None:
        await bulkhead.acquire(5)
        order.append(n)

    tasks = [asyncio.create_task(waiter(n)) for n in range(3)]
    await asyncio.sleep(0)
    assert (bulkhead.in_use, bulkhead.waiting) == (2, 3)
    for _ in range(3):
        bulkhead.release()
        await asyncio.sleep(0)
    await asyncio.gather(*tasks)
    assert order == [0, 1, 2]
    assert (bulkhead.in_use, bulkhead.waiting) == (2, 0)


async def test_a_newcomer_does_not_overtake_a_waiter_when_a_slot_frees() -> None:
    bulkhead = Bulkhead(1, max_waiting=10)
    await bulkhead.acquire(1)
    first = asyncio.create_task(bulkhead.acquire(5))
    await asyncio.sleep(0)
    bulkhead.release()  # the slot is the waiter's now
    assert not bulkhead.try_acquire()
    await first
    assert bulkhead.in_use == 1


async def test_a_bulkhead_refuses_at_once_past_its_waiters_bound() -> None:
    bulkhead = Bulkhead(1, max_waiting=1)
    await bulkhead.acquire(1)
    waiting = asyncio.create_task(bulkhead.acquire(5))
    await asyncio.sleep(0)
    with pytest.raises(CapacityFull):
        await bulkhead.acquire(5)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)
    assert bulkhead.waiting == 0


async def test_a_bulkhead_wait_ends_at_its_timeout_and_leaves_the_queue() -> None:
    bulkhead = Bulkhead(1, max_waiting=5)
    await bulkhead.acquire(1)
    with pytest.raises(CapacityTimeout):
        await bulkhead.acquire(0.01)
    assert bulkhead.waiting == 0
    bulkhead.release()
    assert bulkhead.in_use == 0


async def test_a_cancelled_waiter_leaves_the_queue_and_the_slot_goes_to_the_next() -> None:
    bulkhead = Bulkhead(1, max_waiting=5)
    await bulkhead.acquire(1)
    cancelled = asyncio.create_task(bulkhead.acquire(5))
    second = asyncio.create_task(bulkhead.acquire(5))
    await asyncio.sleep(0)
    cancelled.cancel()
    await asyncio.gather(cancelled, return_exceptions=True)
    bulkhead.release()
    await second
    assert (bulkhead.in_use, bulkhead.waiting) == (1, 0)


async def test_a_slot_granted_as_the_waiter_is_cancelled_is_passed_on_not_lost() -> None:
    bulkhead = Bulkhead(1, max_waiting=5)
    await bulkhead.acquire(1)
    first = asyncio.create_task(bulkhead.acquire(5))
    second = asyncio.create_task(bulkhead.acquire(5))
    await asyncio.sleep(0)
    bulkhead.release()  # granted to `first`...
    first.cancel()  # ...which is cancelled before it runs again
    await asyncio.gather(first, return_exceptions=True)
    await asyncio.wait_for(second, 1)  # the slot moved on
    assert (bulkhead.in_use, bulkhead.waiting) == (1, 0)
    bulkhead.release()
    assert bulkhead.in_use == 0


async def test_a_token_bucket_spends_its_burst_then_paces_callers_one_rate_step_apart() -> None:
    time = FakeTime()
    bucket = TokenBucket(2.0, 2, max_waiting=10, clock=time.clock, sleep=time.sleep)
    await bucket.acquire(1)
    await bucket.acquire(1)
    assert time.slept == []
    await bucket.acquire(1)
    await bucket.acquire(1)
    assert time.slept == pytest.approx([0.5, 0.5])


async def test_a_token_bucket_reserves_in_arrival_order_so_the_waits_grow() -> None:
    time = FakeTime()
    gate = asyncio.Event()
    slept: list[float] = []

    async def held_sleep(seconds: float) -> None:
        slept.append(seconds)
        await gate.wait()

    bucket = TokenBucket(1.0, 1, max_waiting=10, clock=time.clock, sleep=held_sleep)
    await bucket.acquire(1)
    tasks = [asyncio.create_task(bucket.acquire(10)) for _ in range(3)]
    await asyncio.sleep(0)
    assert slept == pytest.approx([1.0, 2.0, 3.0])
    assert bucket.waiting == 3
    gate.set()
    await asyncio.gather(*tasks)
    assert bucket.waiting == 0


async def test_a_token_bucket_refuses_at_once_a_wait_longer_than_the_time_left() -> None:
    time = FakeTime()
    bucket = TokenBucket(0.5, 1, max_waiting=10, clock=time.clock, sleep=time.sleep)
    await bucket.acquire(1)
    with pytest.raises(CapacityTimeout) as refused:
        await bucket.acquire(1.0)
    assert refused.value.wait == pytest.approx(2.0)
    assert time.slept == []  # nothing was waited for, and nothing reserved:
    time.now += 2.0
    await bucket.acquire(0)


async def test_a_token_bucket_refuses_past_its_waiters_bound_and_a_cancelled_wait_gives_its_token_back() -> None:
    time = FakeTime()
    gate = asyncio.Event()

    async def held_sleep(seconds: float) -> None:
        await gate.wait()

    bucket = TokenBucket(1.0, 1, max_waiting=1, clock=time.clock, sleep=held_sleep)
    await bucket.acquire(1)
    waiter = asyncio.create_task(bucket.acquire(10))
    await asyncio.sleep(0)
    with pytest.raises(CapacityFull):
        await bucket.acquire(10)
    assert bucket.tokens() == pytest.approx(-1.0)
    waiter.cancel()
    await asyncio.gather(waiter, return_exceptions=True)
    assert bucket.tokens() == pytest.approx(0.0) and bucket.waiting == 0


def test_limits_out_of_range_are_refused() -> None:
    with pytest.raises(ValueError):
        Bulkhead(0, 1)
    with pytest.raises(ValueError):
        TokenBucket(0.0, 1, 1)
    with pytest.raises(ValueError):
        TokenBucket(float("nan"), 1, 1)
    with pytest.raises(ValueError):
        TokenBucket(1.0, 0, 1)
