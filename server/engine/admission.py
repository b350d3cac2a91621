"""Admission control: which executions start now, which wait in the queue, and in what order.

Rules (the stores implement 2, 4 and 5 in SQL under one lock; this module is their one statement
in Python, used by the memory store of the unit tests, and the contract tests hold both SQL
stores to it):

1. Without ``max_running`` (0, the default) every execution is admitted as it is recorded:
   nothing waits, nothing is refused, and nothing changes for anyone who does not ask for limits.
2. A new execution is admitted at once when fewer than ``max_running`` admitted executions are
   unfinished and nobody waits; otherwise it waits (QUEUED, holding no runner) when fewer than
   ``max_queued`` wait (0: no bound); otherwise it is refused at once (`QueueFullError`, which
   the API answers RESOURCE_EXHAUSTED with a ``google.rpc.RetryInfo``). Nothing is recorded
   for a refused one.
3. An admitted execution holds its slot until it ends: a paused one, or one waiting for an
   approval, holds it too (its agents' work may resume at any moment).
4. When slots are free the waiting executions are admitted in order of their effective class,
   highest first, FIFO within a class (creation time, then the store's creation order).
5. Aging: effective class = min(CRITICAL, priority + floor(waited / aging_seconds)), where
   waited is the time since the execution was recorded (LOW 1, MEDIUM 2, HIGH 3, CRITICAL 4).
   So a LOW execution is CRITICAL after 3 * aging_seconds, and from then on only executions
   recorded before it can be admitted ahead of it: whatever arrives, its wait is bounded by
   3 * aging_seconds plus the time to admit the at most ``max_queued`` executions ahead of it.
6. Every decision is made by the store inside one lock (SQLite: its single writer; PostgreSQL:
   a transaction-level advisory lock), so replicas sharing a store share one queue and one count
   of running executions, and a restarted process finds the queue as it was.
7. Only CancelExecution acts on a waiting execution (it ends CANCELLED, nothing having run);
   pause, resume and signals answer FAILED_PRECONDITION naming its queue position. Its
   execution timeout counts from submission, queue time included.
8. A rerun (RerunExecution, server/engine/rerun.py) of a failed or cancelled execution is not
   queued: it runs at once, whatever ``max_running`` says, and holds a slot again until it ends
   (it is admitted and unfinished). One cancelled while it waited was never admitted: it is not
   rerun (submit it again).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from server.engine.ports import ExecutionRecord

PRIORITY_CRITICAL = 4
"""The highest class (baton.v1.Priority PRIORITY_CRITICAL); aging stops there."""

DEFAULT_AGING_SECONDS = 60.0
"""Seconds of waiting that raise an execution's effective class by one."""

DEFAULT_RETRY_AFTER_SECONDS = 2.0
"""The RetryInfo delay a refused submission is given."""


@dataclass(frozen=True)
class AdmissionLimits:
    """How many executions may run and wait at once (the `baton serve` flags)."""

    max_running: int = 0
    """Admitted, unfinished executions at most (over every replica sharing the store); 0, the
    default, admits every execution as it is recorded (rule 1)."""
    max_queued: int = 0
    """Executions waiting for admission at most; a submission past it is refused at once. 0, the
    default, bounds the queue by nothing. Meaningful only with max_running."""
    aging_seconds: float = DEFAULT_AGING_SECONDS
    """Seconds of waiting per class of aging (rule 5). Default 60."""
    retry_after_seconds: float = DEFAULT_RETRY_AFTER_SECONDS
    """The delay a refused submission's RetryInfo asks for. Default 2."""

    def validate(self) -> None:
        """Raises ValueError naming the field when a value is out of range."""
        if self.max_running < 0:
            raise ValueError(f"max_running: must be 0 (no limit) or more, got {self.max_running}")
        if self.max_queued < 0:
            raise ValueError(f"max_queued: must be 0 (no limit) or more, got {self.max_queued}")
        if self.max_queued and not self.max_running:
            raise ValueError("max_queued: needs max_running (without it nothing ever waits)")
        if not (math.isfinite(self.aging_seconds) and 0.001 <= self.aging_seconds <= 86_400 * 365):
            raise ValueError(f"aging_seconds: must be from 0.001 to a year, got {self.aging_seconds}")
        if not (math.isfinite(self.retry_after_seconds) and 0 < self.retry_after_seconds <= 3600):
            raise ValueError(f"retry_after_seconds: must be above 0 and at most 3600, got {self.retry_after_seconds}")

    @property
    def bounded(self) -> bool:
        """Whether executions may wait at all (max_running is set)."""
        return self.max_running > 0

    @property
    def aging_micros(self) -> int:
        """aging_seconds in whole microseconds (at least 1), as the SQL stores compute it."""
        return max(1, round(self.aging_seconds * 1_000_000))


class QueueFullError(Exception):
    """A submission refused because max_queued executions already wait (rule 2).

    Attributes:
        max_queued: the limit.
        retry_after: seconds the caller should wait before trying again.
    """

    def __init__(self, max_queued: int, retry_after: float) -> None:
        super().__init__(
            f"max_queued: {max_queued} executions wait for admission, the most allowed; try again in {retry_after:g}s"
        )
        self.max_queued = max_queued
        self.retry_after = retry_after


def admit_new(limits: AdmissionLimits | None, running: int, queued: int) -> bool:
    """Rule 2 for one new execution, given the counts the store holds under its lock.

    Returns:
        True: admitted now; False: it waits.

    Raises:
        QueueFullError: refused, max_queued executions wait.
    """
    if limits is None or not limits.bounded:
        return True
    if running < limits.max_running and queued == 0:
        return True
    if limits.max_queued and queued >= limits.max_queued:
        raise QueueFullError(limits.max_queued, limits.retry_after_seconds)
    return False


@dataclass
class Tally:
    """What a store counted under its lock (admitted and unfinished, waiting), kept by one batch."""

    running: int = 0
    queued: int = 0

    def place(self, limits: AdmissionLimits | None, record: ExecutionRecord) -> ExecutionRecord:
        """`admit_new` for one new execution, counted; the record marked waiting when it waits.

        Raises:
            QueueFullError: refused, max_queued executions wait.
        """
        if admit_new(limits, self.running, self.queued):
            self.running += 1
            return record
        self.queued += 1
        return replace(record, waiting=True)


def effective_class(priority: int, created_at: datetime, now: datetime, aging_seconds: float) -> int:
    """Rule 5: the class a waiting execution competes in at `now`."""
    micros = max(0, round((now - created_at).total_seconds() * 1_000_000))
    aging = max(1, round(aging_seconds * 1_000_000))
    return min(PRIORITY_CRITICAL, priority + micros // aging)
