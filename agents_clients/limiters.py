"""Two asyncio limiters: a bulkhead (how many calls run at once) and a token bucket (how fast they start).

Rules, for both:
1. **First come, first served.** Waiters are served in arrival order; a newcomer never overtakes
   someone already waiting (no barging), so a busy agent cannot starve an early caller.
2. **Bounded waiting.** At most `max_waiting` callers wait at once; one more is refused at once
   with `CapacityFull`, so nobody pins memory by sending calls faster than they can be served.
3. **Deadlines and cancellation.** A wait ends at its timeout (`CapacityTimeout`) or when its task
   is cancelled; either way the waiter leaves the queue, and a slot granted to it at that very
   moment is passed on (nothing leaks). A token bucket knows at once how long a caller would wait
   and refuses (`CapacityTimeout`) without waiting when that is past the caller's timeout.
4. Time comes from an injected monotonic clock (and, for the bucket, an injected sleep), so the
   unit tests (tests/unit/test_limiters.py) skip time instead of sleeping.

Why not a library: aiolimiter (the usual asyncio rate limiter) neither bounds its waiters nor
says how many wait, and asyncio.Semaphore neither; both are what a status and a health page need.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable


class CapacityFull(Exception):
    """As many callers wait as the limiter allows (rule 2); the caller was not queued."""


class CapacityTimeout(Exception):
    """The caller's timeout would pass (or passed) before it got its slot or token (rule 3).

    Attributes:
        wait: for a token bucket, the seconds the caller would have had to wait; else 0.
    """

    def __init__(self, message: str, wait: float = 0.0) -> None:
        super().__init__(message)
        self.wait = wait


class Bulkhead:
    """At most `limit` holders at once; the others wait, first come first served (module rules)."""

    def __init__(self, limit: int, max_waiting: int) -> None:
        if limit < 1 or max_waiting < 0:
            raise ValueError(f"bulkhead: limit must be 1 or more and max_waiting 0 or more, got {limit}, {max_waiting}")
        self.limit = limit
        self.max_waiting = max_waiting
        self.in_use = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        """Callers waiting for a slot now."""
        return len(self._waiters)

    def try_acquire(self) -> bool:
        """Takes a slot if one is free and nobody waits for it."""
        if self.in_use < self.limit and not self._waiters:
            self.in_use += 1
            return True
        return False

    async def acquire(self, within: float) -> None:
        """Takes a slot, waiting at most `within` seconds for it.

        Raises:
            CapacityFull: `max_waiting` callers wait already.
            CapacityTimeout: no slot came within `within` seconds.
        """
        if self.try_acquire():
            return
        if len(self._waiters) >= self.max_waiting:
            raise CapacityFull(f"{self.in_use} calls in flight (the limit) and {len(self._waiters)} waiting (the most)")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(future)
        try:
            async with asyncio.timeout(max(within, 0.0)):
                await future
        except TimeoutError:
            self._give_up(future)
            raise CapacityTimeout(f"no free slot in {max(within, 0.0):.3g} s ({self.in_use} calls in flight)") from None
        except BaseException:
            self._give_up(future)
            raise

    def _give_up(self, future: asyncio.Future[None]) -> None:
        if future.done() and not future.cancelled():
            self.release()  # granted in the same instant the wait ended: pass the slot on
        else:
            future.cancel()
            self._waiters.remove(future)

    def release(self) -> None:
        """Frees a slot: hands it to the first waiter, if any."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot moves to the waiter: in_use is unchanged
                return
        self.in_use -= 1


class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up; a call takes one (module rules).

    Tokens are reserved in arrival order: a caller that finds none takes the next one to come
    (the count goes below zero) and sleeps until it has come, so the waits are first come first
    served and known in advance.
    """

    def __init__(
        self,
        rate: float,
        burst: int,
        max_waiting: int,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not (math.isfinite(rate) and rate > 0) or burst < 1 or max_waiting < 0:
            raise ValueError(f"token bucket: rate must be above 0 and burst 1 or more, got {rate}, {burst}")
        self.rate = rate
        self.burst = burst
        self.max_waiting = max_waiting
        self._clock = clock
        self._sleep = sleep
        self._tokens = float(burst)
        self._updated = clock()
        self.waiting = 0
        """Callers sleeping until their token comes."""

    def tokens(self) -> float:
        """Tokens available now (below zero: reserved by waiters ahead)."""
        now = self._clock()
        self._tokens = min(float(self.burst), self._tokens + (now - self._updated) * self.rate)
        self._updated = now
        return self._tokens

    def try_acquire(self) -> bool:
        """Takes a token if one is there now."""
        if self.tokens() >= 1.0:
            self._tokens -= 1.0
            return True
        return False

    def wait_for_next(self) -> float:
        """Seconds a caller arriving now would wait for its token."""
        return max(0.0, (1.0 - self.tokens()) / self.rate)

    async def acquire(self, within: float) -> None:
        """Takes a token, waiting for it when it comes within `within` seconds.

        Raises:
            CapacityFull: `max_waiting` callers wait already.
            CapacityTimeout: the token would come later (refused at once, nothing reserved).
        """
        if self.try_acquire():
            return
        if self.waiting >= self.max_waiting:
            raise CapacityFull(f"{self.waiting} calls wait for a token (the most)")
        wait = self.wait_for_next()
        if wait > within:
            left = max(within, 0.0)
            raise CapacityTimeout(f"the next token comes in {wait:.3g} s, after the {left:.3g} s left", wait)
        self._tokens -= 1.0
        self.waiting += 1
        try:
            await self._sleep(wait)
        except BaseException:
            self._tokens += 1.0  # unused: whoever comes next may have it
            raise
        finally:
            self.waiting -= 1
