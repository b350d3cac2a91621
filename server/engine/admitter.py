"""The engine's side of admission control: asks the store to admit waiting executions, starts them.

The decisions are the store's (server/engine/admission.py, rules 2-6); this loop only says when
to ask: when an execution ends here or a waiting one is submitted (a slot may be free), and
every `interval` seconds (an execution that ended on another replica, or was quarantined, freed
one). Asks coalesce: however many wake-ups come while it asks, it asks once more.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta

from server.engine.admission import AdmissionLimits
from server.engine.ports import Clock, ExecutionStore

logger = logging.getLogger(__name__)

#: Called with the ids the store admitted, in admission order: starts them.
StartAdmitted = Callable[[list[str]], Awaitable[None]]


class Admitter:
    """Admits waiting executions when slots may have freed up, and hands them to `start`."""

    def __init__(
        self,
        store: ExecutionStore,
        clock: Clock,
        limits: AdmissionLimits,
        start: StartAdmitted,
        *,
        interval: float = 1.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.limits = limits
        self._start = start
        self.interval = interval
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def wake(self) -> None:
        """Asks for an admission soon (starting the loop on first use)."""
        if self._closing:
            return
        self._wanted.set()
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="engine admission")

    async def admit_now(self) -> list[str]:
        """One admission: the store admits into the free slots; the admitted are started."""
        admitted = await self.store.admit(self.limits, self.clock.now())
        if admitted:
            logger.info("admitted %d queued executions", len(admitted))
            await self._start(admitted)
        return admitted

    async def _loop(self) -> None:
        while not self._closing:
            self._wanted.clear()
            try:
                await self.admit_now()
            except Exception:
                logger.exception("admitting queued executions failed; trying again")
            waits: list[asyncio.Future[object]] = [
                asyncio.ensure_future(self._wanted.wait()),
                asyncio.ensure_future(self.clock.sleep_until(self.clock.now() + timedelta(seconds=self.interval))),
            ]
            try:
                await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waits:
                    waiter.cancel()

    async def close(self) -> None:
        """Stops the loop (an admission in flight is committed or not, as any store write)."""
        self._closing = True
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
