"""Recorded durations of agent operations, in memory on the hot path and persisted in batches.

Rules:
1. `record` (called by the engine when a step's attempt gets its answer, engine.
   add_attempt_listener) only adds to two in-memory sketches of the operation: the total (what
   estimates read) and the delta since the last flush. No store write happens per step.
2. `flush` hands the store every delta in one call (one transaction), which merges them into the
   stored sketches and returns the merged ones; they become the totals (plus whatever was
   recorded during the write), so with replicas each one's totals take in the others' samples at
   every flush. A failed flush keeps its deltas for the next one. `run` flushes every
   `flush_interval` seconds; `close` flushes a last time (at shutdown).
3. An operation's history is *trusted* from `min_samples` successful attempts on (default
   MIN_SAMPLES = 20): below that the planner keeps the definition's declared duration, and says so.
4. A stored sketch that cannot be read is logged and started afresh (an estimate is advice; a
   bad row must not stop the server).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from server.engine.ports import Clock
from server.estimates._sketch import DurationSketch, SketchFormatError
from server.planner import RecordedDurations
from server.store._durations import SketchMerge, SketchRow

__all__ = ["DEFAULT_FLUSH_INTERVAL", "MIN_SAMPLES", "DurationRecorder", "DurationStore", "OperationStats"]

logger = logging.getLogger(__name__)

MIN_SAMPLES = 20
"""Successful attempts of an operation before its history replaces the declared duration."""

DEFAULT_FLUSH_INTERVAL = 5.0
"""Seconds between flushes of the recorded durations to the store."""


class DurationStore(Protocol):
    """What the recorder needs of a store (both stores have it)."""

    async def load_duration_sketches(self) -> list[SketchRow]: ...

    async def merge_duration_sketches(
        self, deltas: Sequence[SketchRow], merge: SketchMerge, now: datetime
    ) -> list[SketchRow]: ...


@dataclass(frozen=True)
class OperationStats:
    """One operation's recorded durations, in seconds."""

    agent: str
    operation: str
    samples: int
    p50: float
    p95: float
    p99: float
    mean: float


def merge_encoded(stored: bytes | None, delta: bytes) -> tuple[bytes, int]:
    """The store's merge function (server/store/_durations.py): stored ⊕ delta, and the count."""
    total = DurationSketch.from_bytes(delta)
    if stored:
        try:
            base = DurationSketch.from_bytes(stored)
            base.merge(total)
            total = base
        except SketchFormatError as error:
            logger.error("a stored duration sketch is unreadable (%s); it starts afresh", error)  # rule 4
    return total.to_bytes(), total.count


class DurationRecorder:
    """Per-operation duration sketches: record, estimate, flush (rules at the top of the module)."""

    def __init__(
        self,
        store: DurationStore | None,
        clock: Clock,
        *,
        min_samples: int = MIN_SAMPLES,
        flush_interval: float = DEFAULT_FLUSH_INTERVAL,
    ) -> None:
        """
        Args:
            store: where sketches persist; None keeps them in memory only (tests, tools).
            clock: the time written with each flush.
            min_samples: rule 3's threshold, at least 1.
            flush_interval: seconds between flushes (rule 2), above 0.
        """
        if min_samples < 1:
            raise ValueError(f"min_samples must be at least 1, not {min_samples}")
        if not flush_interval > 0:
            raise ValueError(f"flush_interval must be above 0, not {flush_interval}")
        self.store = store
        self.clock = clock
        self.min_samples = min_samples
        self.flush_interval = flush_interval
        self._totals: dict[tuple[str, str], DurationSketch] = {}
        self._deltas: dict[tuple[str, str], DurationSketch] = {}
        self._stats: dict[tuple[str, str], OperationStats] = {}
        self._flushing = asyncio.Lock()
        self.flushes = 0
        """Flushes that wrote to the store."""

    # ---- the hot path (rule 1) ------------------------------------------------------------------

    def record(self, agent: str, operation: str, seconds: float) -> None:
        """Adds one successful attempt's duration (engine.AttemptListener)."""
        key = (agent, operation)
        self._totals.setdefault(key, DurationSketch()).add(seconds)
        self._deltas.setdefault(key, DurationSketch()).add(seconds)
        self._stats.pop(key, None)

    # ---- reading ----------------------------------------------------------------------------------

    def stats(self, agent: str, operation: str) -> OperationStats | None:
        """The operation's samples and percentiles; None before any sample."""
        key = (agent, operation)
        cached = self._stats.get(key)
        if cached is not None:
            return cached
        sketch = self._totals.get(key)
        if sketch is None or sketch.count == 0:
            return None
        p50, p95, p99 = (sketch.quantile(q) or 0.0 for q in (0.5, 0.95, 0.99))
        stats = OperationStats(agent, operation, sketch.count, p50, p95, p99, sketch.sum / sketch.count)
        self._stats[key] = stats
        return stats

    def all_stats(self) -> list[OperationStats]:
        """Every operation's stats, by agent and operation."""
        return [s for key in sorted(self._totals) if (s := self.stats(*key)) is not None]

    def estimate(self, agent: str, operation: str) -> RecordedDurations | None:
        """The planner's hook (server.planner.Estimates): the recorded p50/p95/p99 with the
        sample count, and whether there are enough (rule 3); None before any sample."""
        stats = self.stats(agent, operation)
        if stats is None:
            return None
        return RecordedDurations(
            stats.p50, stats.p95, samples=stats.samples, enough=stats.samples >= self.min_samples, p99=stats.p99
        )

    # ---- persistence (rule 2) ---------------------------------------------------------------------

    async def load(self) -> int:
        """Reads the stored sketches into the totals; returns how many operations were read."""
        if self.store is None:
            return 0
        loaded = 0
        for row in await self.store.load_duration_sketches():
            key = (row.agent, row.operation)
            try:
                sketch = DurationSketch.from_bytes(row.sketch)
            except SketchFormatError as error:
                logger.error("duration sketch of %s.%s is unreadable (%s); ignored", row.agent, row.operation, error)
                continue
            pending = self._deltas.get(key)
            if pending is not None:
                sketch.merge(pending)
            self._totals[key] = sketch
            self._stats.pop(key, None)
            loaded += 1
        return loaded

    async def flush(self) -> int:
        """Writes what was recorded since the last flush; returns the operations written."""
        if self.store is None:
            self._deltas.clear()
            return 0
        async with self._flushing:
            pending, self._deltas = self._deltas, {}
            if not pending:
                return 0
            rows = [SketchRow(a, o, s.count, s.to_bytes()) for (a, o), s in sorted(pending.items())]
            try:
                merged = await self.store.merge_duration_sketches(rows, merge_encoded, self.clock.now())
            except BaseException:
                # Kept for the next flush, with what was recorded meanwhile.
                for key, sketch in pending.items():
                    later = self._deltas.get(key)
                    if later is not None:
                        sketch.merge(later)
                    self._deltas[key] = sketch
                raise
            for row in merged:
                key = (row.agent, row.operation)
                total = DurationSketch.from_bytes(row.sketch)
                later = self._deltas.get(key)
                if later is not None:
                    total.merge(later)
                self._totals[key] = total
                self._stats.pop(key, None)
            self.flushes += 1
            return len(merged)

    async def run(self) -> None:
        """Flushes every flush_interval seconds until cancelled."""
        while True:
            await asyncio.sleep(self.flush_interval)
            try:
                await self.flush()
            except Exception:
                logger.exception("flushing recorded durations failed; trying again")

    async def close(self) -> None:
        """The last flush (at shutdown); a failure is logged, not raised."""
        try:
            await self.flush()
        except Exception:
            logger.exception(
                "the last flush of recorded durations failed: %d operations' recent samples are lost", len(self._deltas)
            )
