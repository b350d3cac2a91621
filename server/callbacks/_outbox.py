"""The durable side of callbacks: the store's outbox, relayed to the in-memory notifier.

Rules:
1. The outbox row of a callback is written by the engine's append that ends the execution
   (server/engine/callback.py): from then on the callback is owed whatever crashes. This relay
   only claims, sends through the CallbackNotifier and records outcomes.
2. Memory is a window over the outbox: the relay claims at most as many due rows as the
   notifier has room for (``max_pending`` callbacks); the rest wait in the store.
3. A claim is this process's until a time (the claim window): rows due are claimed at start-up,
   when an execution ends here (`wake`) and every ``poll_interval``; held rows' claims are
   renewed while they wait, and a failed attempt moves the row's next attempt and attempt count
   on in the store (`reschedule_callback`), so backoff and deadline carry across restarts. The
   store's single process (not ``shared``) frees every claim at start-up: what a killed process
   held is due again at once. With replicas a dead replica's claims lapse after the window.
4. Each attempt's body is the execution's status folded from its history up to the
   callback_scheduled event, rendered again for each process that sends it: the same bytes.
5. The outcome is one event appended with the row's deletion, in one transaction, only while
   this process still holds the row (`finish_callback`): the history records exactly one
   callback_delivered or callback_failed. An outcome that is not final (the notifier dropped
   or abandoned the callback) frees the claim, and the callback stays owed. A callback whose row
   this process no longer holds when it records a retry (its execution deleted, its claim
   taken over) is withdrawn from the notifier: nothing more is sent about deleted data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Sequence
from datetime import UTC, datetime

from baton.v1 import execution_pb2

from server.callbacks._body import callback_body
from server.callbacks._delivery import CallbackDelivery, CallbackNotifier, DeliveryOutcome
from server.engine import FoldError, fold, render
from server.store.base import (
    CallbackClaimLostError,
    CorruptHistoryError,
    ExecutionNotFoundError,
    ExecutionStore,
    PendingCallback,
)

logger = logging.getLogger(__name__)

E = execution_pb2

_FINAL = frozenset(
    {DeliveryOutcome.DELIVERED, DeliveryOutcome.REJECTED, DeliveryOutcome.REFUSED, DeliveryOutcome.EXHAUSTED}
)
_MIN_CLAIM_SECONDS = 60.0


class CallbackRelay:
    """Claims owed callbacks from the store, has the notifier send them, records the outcomes."""

    def __init__(
        self,
        store: ExecutionStore,
        notifier: CallbackNotifier,
        *,
        owner: str,
        shared: bool,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Prepares the relay; `start()` starts it.

        Args:
            store: the store holding the outbox.
            notifier: sends the callbacks (its config gives the window and the poll interval).
            owner: this process's name in claims (a replica's name with replicas).
            shared: other processes use the store (replicas): claims are left to lapse, not freed
                at start-up.
            clock: Unix time.
        """
        self.store = store
        self.notifier = notifier
        self.owner = owner
        self.shared = shared
        self._clock = clock
        config = notifier.config
        self.claim_seconds = max(_MIN_CLAIM_SECONDS, 3 * (config.timeout + config.connect_timeout))
        """How long a claim holds unless renewed: longer than any attempt (rule 3)."""
        self._held: dict[str, PendingCallback] = {}
        self._writes: set[asyncio.Task[None]] = set()
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        notifier.add_outcome_listener(self._on_outcome)
        notifier.add_retry_listener(self._on_retry)

    @property
    def held(self) -> int:
        """Callbacks this process holds (claimed, not yet finished)."""
        return len(self._held)

    async def start(self) -> None:
        """Frees stale claims (alone on the store), starts the notifier and the claim loop."""
        if not self.shared:
            freed = await self.store.release_callbacks(None)
            if freed:
                logger.info("callbacks: %d claims of an earlier process freed; they are sent again", freed)
        self.notifier.start()
        self._task = asyncio.create_task(self._loop(), name="callback relay")

    def wake(self, *_: object) -> None:
        """Looks at the outbox now (an engine's terminal listener: a callback was just scheduled)."""
        self._wakeup.set()

    def forget(self, execution_ids: Sequence[str]) -> None:
        """Stops sending the callbacks of deleted executions (their rows went with them)."""
        gone = set(execution_ids)
        for pending in [p for p in self._held.values() if p.execution_id in gone]:
            self.notifier.withdraw(pending.delivery_id, "its execution was deleted")

    async def close(self) -> None:
        """Stops claiming, closes the notifier (its grace), records what came of it, frees the rest."""
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.notifier.close()
        while self._writes:
            await asyncio.gather(*list(self._writes), return_exceptions=True)
        if self._held:
            with contextlib.suppress(Exception):
                await self.store.release_callbacks(self.owner, list(self._held))
            self._held.clear()

    # ---- claiming -----------------------------------------------------------------------------

    async def _loop(self) -> None:
        config = self.notifier.config
        renew_every = self.claim_seconds / 3
        renewed = self._clock()
        while not self._closed:
            more = False
            try:
                more = await self._claim()
                if self._held and self._clock() - renewed >= renew_every:
                    renewed = self._clock()
                    until = _at(renewed + self.claim_seconds)
                    asked = list(self._held)
                    kept = await self.store.renew_callbacks(self.owner, asked, until)
                    for delivery_id in set(asked) - kept:
                        if delivery_id in self._held:  # not finished meanwhile: gone or taken (rule 5)
                            self.notifier.withdraw(delivery_id, "no longer owed by this process")
            except asyncio.CancelledError:
                raise
            except Exception:
                # The store may be down for a while: the callbacks stay owed there.
                logger.exception("callbacks: looking at the outbox failed; trying again")
            if more:
                continue
            self._wakeup.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow the cancel that close()
            # sends when the wake-up comes at the same moment (and `_closed` ends the loop anyway).
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(config.poll_interval):
                    await self._wakeup.wait()

    async def _claim(self) -> bool:
        """Claims due rows into the free part of the window; True when it was filled (look again)."""
        room = self.notifier.config.max_pending - max(self.notifier.pending, len(self._held))
        if room <= 0 or self._closed:
            return False
        now = self._clock()
        claimed = await self.store.claim_callbacks(self.owner, _at(now), _at(now + self.claim_seconds), room)
        for pending in claimed:
            if pending.delivery_id in self._held:
                continue
            try:
                delivery, problem = await self._delivery(pending)
            except Exception:
                # The store failed us (not the history): still owed, looked at again later.
                logger.exception("callback of execution %s: its status cannot be read now", pending.execution_id)
                self._write(self._release(pending))
                continue
            self._held[pending.delivery_id] = pending
            if delivery is None:
                self._write(self._finish(pending, "callback_failed", problem, pending.attempts))
                continue
            self.notifier.enqueue(delivery)
        return len(claimed) == room

    async def _delivery(self, pending: PendingCallback) -> tuple[CallbackDelivery | None, str]:
        """The callback of a row (rule 4), or None and why it can never be sent.

        Raises:
            Exception: whatever the store raises but CorruptHistoryError (a failure of the moment).
        """
        try:
            events = await self.store.read_events(pending.execution_id, limit=pending.scheduled_sequence)
            state = fold(pending.execution_id, events)
        except (CorruptHistoryError, FoldError) as error:
            return None, f"the execution's history cannot be read: {str(error)[:200]}"
        body, abridged = callback_body(render(state), self.notifier.config.max_body_bytes)
        delivery = CallbackDelivery(
            delivery_id=pending.delivery_id,
            execution_id=pending.execution_id,
            owner=pending.user_id,
            url=pending.url,
            body=body,
            abridged=abridged,
            attempts=pending.attempts,
            deadline=pending.deadline.timestamp(),
        )
        return delivery, ""

    # ---- outcomes -----------------------------------------------------------------------------

    def _on_retry(self, delivery: CallbackDelivery, attempts: int, delay: float, detail: str) -> None:
        if delivery.delivery_id not in self._held:
            return
        now = self._clock()
        next_at, until = _at(now + delay), _at(now + delay + self.claim_seconds)

        async def record() -> None:
            held = await self.store.reschedule_callback(
                self.owner, delivery.delivery_id, attempts, next_at, until, detail
            )
            if not held:
                # Its execution was deleted (DeleteUserData, retention, on any replica), or another
                # replica took the row after this one's claim lapsed: not this one's to send.
                self.notifier.withdraw(delivery.delivery_id, "no longer owed by this process")

        self._write(record())

    def _on_outcome(self, delivery: CallbackDelivery, outcome: DeliveryOutcome, detail: str, attempts: int) -> None:
        pending = self._held.get(delivery.delivery_id)
        if pending is None:
            return
        if outcome in _FINAL:
            kind = "callback_delivered" if outcome is DeliveryOutcome.DELIVERED else "callback_failed"
            self._write(self._finish(pending, kind, detail, attempts))
            return
        del self._held[delivery.delivery_id]
        if outcome is not DeliveryOutcome.WITHDRAWN:  # DROPPED or ABANDONED: still owed (rule 5)
            self._write(self._release(pending))

    async def _finish(self, pending: PendingCallback, kind: str, detail: str, attempts: int) -> None:
        event = E.ExecutionEvent()
        event.time.FromDatetime(_at(self._clock()))
        body = E.CallbackDelivered if kind == "callback_delivered" else E.CallbackFailed
        getattr(event, kind).CopyFrom(body(delivery_id=pending.delivery_id, attempts=attempts, detail=detail[:1000]))
        try:
            await self.store.finish_callback(self.owner, pending, event)
        except (CallbackClaimLostError, ExecutionNotFoundError) as gone:
            logger.warning("callback of execution %s: outcome not recorded: %s", pending.execution_id, gone)
        finally:
            self._held.pop(pending.delivery_id, None)

    async def _release(self, pending: PendingCallback) -> None:
        await self.store.release_callbacks(self.owner, [pending.delivery_id])

    def _write(self, write: Coroutine[object, object, None]) -> None:
        task = asyncio.create_task(_logged(write))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)


async def _logged(write: Coroutine[object, object, None]) -> None:
    try:
        await write
    except Exception:
        # The row stays owed in the store; its claim lapses and it is sent again (at least once).
        logger.exception("callbacks: recording in the outbox failed")


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


__all__ = ["CallbackRelay"]
