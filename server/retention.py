"""Retention: a periodic sweep that deletes finished executions older than a configured age.

Rules:
1. Only terminal executions (completed, failed, cancelled; quarantined ones are failed) whose
   latest event, their end, is older than the cutoff go, with their events and audit entries.
   Unfinished executions are never deleted, however old.
2. A sweep deletes in batches (`batch` executions per store transaction) with a pause between,
   so a large backlog never holds the store's writer for long; it ends when a batch comes back
   short.
3. Sweeps are idempotent and safe on several replicas at once (the PostgreSQL store skips rows
   another replica is deleting); a failed sweep is logged and tried again at the next interval.
4. What a sweep deleted is dropped from this process's memory too (`forget`).
5. Published events (server.triggers) first published before the same cutoff go too, in the same
   batches: an event id is deduplicated as long as finished executions are kept. Publishing a
   swept id again starts its rules again; an execution it started earlier and still stored is
   found by its request id instead (server.api.triggers, rule 3), so nothing starts twice while
   that execution is kept.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

from server.engine import Clock
from server.store.base import Deletion, ExecutionStore

logger = logging.getLogger(__name__)

DEFAULT_BATCH = 200
"""Executions deleted per store transaction."""
DEFAULT_PAUSE = 0.05
"""Seconds between two batches of one sweep, leaving the store to other writers."""
MIN_INTERVAL = 60.0
MAX_INTERVAL = 3600.0


def sweep_interval(retention: timedelta) -> float:
    """Seconds between sweeps: a tenth of the retention, at least a minute and at most an hour."""
    return min(MAX_INTERVAL, max(MIN_INTERVAL, retention.total_seconds() / 10))


async def sweep(
    store: ExecutionStore,
    cutoff: datetime,
    *,
    batch: int = DEFAULT_BATCH,
    pause: float = DEFAULT_PAUSE,
    forget: Callable[[list[str]], None] | None = None,
) -> Deletion:
    """Deletes every terminal execution last updated before `cutoff`, in batches (rules 1, 2, 4).

    Returns:
        Everything this sweep deleted.
    """
    deleted: list[str] = []
    events = 0
    while True:
        deletion = await store.delete_finished_before(cutoff, batch)
        deleted += deletion.execution_ids
        events += deletion.events
        if forget is not None and deletion.execution_ids:
            forget(deletion.execution_ids)
        if len(deletion.execution_ids) < batch:
            return Deletion(execution_ids=deleted, events=events)
        await asyncio.sleep(pause)


async def sweep_published(
    delete: Callable[[datetime, int], Awaitable[int]], cutoff: datetime, batch: int, pause: float
) -> int:
    """Deletes the published events first published before `cutoff`, in batches (rule 5); returns how many."""
    deleted = 0
    while True:
        count = await delete(cutoff, batch)
        deleted += count
        if count < batch:
            return deleted
        await asyncio.sleep(pause)


class RetentionSweeper:
    """Runs `sweep` every interval with the cutoff `retention` before the clock's now."""

    def __init__(
        self,
        store: ExecutionStore,
        clock: Clock,
        retention: timedelta,
        *,
        forget: Callable[[list[str]], None] | None = None,
        published: Callable[[datetime, int], Awaitable[int]] | None = None,
        batch: int = DEFAULT_BATCH,
        interval: float | None = None,
        pause: float = DEFAULT_PAUSE,
    ) -> None:
        """Configures the sweeper; `run` starts it.

        Args:
            retention: how long a finished execution is kept after its end.
            forget: called with each batch of deleted execution ids (to drop them from memory).
            published: deletes up to a number of published events older than a cutoff, returning
                how many (TriggerStore.delete_events_before); None when the store keeps none.
            batch: executions per store transaction.
            interval: seconds between sweeps; default `sweep_interval(retention)`.
            pause: seconds between two batches of one sweep.

        Raises:
            ValueError: a retention or batch below 1.
        """
        if retention <= timedelta(0):
            raise ValueError(f"retention must be positive, not {retention}")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, not {batch}")
        self.store = store
        self.clock = clock
        self.retention = retention
        self.forget = forget
        self.published = published
        self.batch = batch
        self.interval = sweep_interval(retention) if interval is None else interval
        self.pause = pause

    async def sweep(self) -> Deletion:
        """One sweep now: deletes what ended more than `retention` ago; logs what it deleted."""
        cutoff = self.clock.now() - self.retention
        deletion = await sweep(self.store, cutoff, batch=self.batch, pause=self.pause, forget=self.forget)
        if deletion.execution_ids:
            logger.info(
                "retention: deleted %d executions and %d events that ended before %s",
                len(deletion.execution_ids),
                deletion.events,
                cutoff.isoformat(timespec="seconds"),
            )
        if self.published is not None:
            published = await sweep_published(self.published, cutoff, self.batch, self.pause)
            if published:
                logger.info(
                    "retention: deleted %d published events first published before %s",
                    published,
                    cutoff.isoformat(timespec="seconds"),
                )
        return deletion

    async def run(self) -> None:
        """Sweeps at once, then every interval, until cancelled (rule 3)."""
        while True:
            try:
                await self.sweep()
            except Exception:
                logger.exception("retention sweep failed; trying again in %.0fs", self.interval)
            await self.clock.sleep_until(self.clock.now() + timedelta(seconds=self.interval))
