"""Delivery of terminal callbacks: a bounded queue, async workers, caps per destination and owner.

Rules:
1. ``enqueue`` never blocks: past ``max_pending`` callbacks or ``max_pending_bytes`` a new one
   is dropped with a warning (the outbox keeps it owed), so memory stays bounded whatever the
   receivers do.
2. A fixed number of worker tasks take callbacks in order. One whose origin (scheme, host,
   port) or owner already has its cap of deliveries in flight is parked on that key and queued
   again when one of those finishes: a slow receiver (or one user's many receivers) holds at
   most ``per_destination`` (``per_owner``) workers while everyone else's callbacks flow.
3. An attempt is one POST: redirects are not followed, the attempt is bounded by
   ``connect_timeout`` and ``timeout``; the status line decides, a 2xx body is never waited
   for, and at most ``max_response_bytes`` of another are read (for the log).
4. Every address connected to passes the DestinationPolicy, checked by ``AddressGuard``,
   aiohttp's socket factory, which is handed each resolved address right before the connect:
   what was resolved is what is judged, so no DNS answer (rebinding included) and no spelling
   of a host gets around it. An allowed host name (``--callback-allow NAME``) skips the check.
5. A 2xx answer is a delivery. A 3xx or 4xx answer, a refused address or an unusable URL fail
   for good; a 5xx answer, a timeout or a connection error is retried after a backoff with
   jitter (a timer, not a sleeping worker), up to ``attempts`` in all and never past the
   callback's deadline. A callback given with attempts already made (by an earlier process)
   goes on counting from them: its backoff and attempt numbers continue.
6. Every attempt carries the same Baton-Delivery-Id (derived from the execution id, so a
   callback sent again for the same execution keeps it) and a fresh timestamp and signature.
7. This module keeps nothing: durability is the outbox's (server/callbacks/_outbox.py), which
   claims callbacks from the store, enqueues them here, records each retry
   (``add_retry_listener``) and each outcome (``add_outcome_listener``). What is pending at
   shutdown is abandoned here and stays owed in the store.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import ipaddress
import logging
import random
import socket
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import aiohttp
from aiohappyeyeballs import AddrInfoType
from yarl import URL

from server.callbacks._config import CallbackConfig
from server.callbacks._policy import DestinationPolicy
from server.callbacks.signing import SIGNATURE_HEADER, signature_header

logger = logging.getLogger(__name__)

_USER_AGENT = "baton-callbacks/1"
_ANSWER_SECONDS = 1.0


class DeliveryOutcome(enum.Enum):
    """How a callback ended."""

    DELIVERED = "delivered"
    """The receiver answered 2xx."""
    REJECTED = "rejected"
    """The receiver answered 3xx (not followed) or 4xx; not retried."""
    REFUSED = "refused"
    """The URL is unusable or every address it resolved to is refused; not retried."""
    EXHAUSTED = "exhausted"
    """Every attempt timed out, failed to connect or got a 5xx."""
    DROPPED = "dropped"
    """Never attempted: the queue was full, or the notifier closed."""
    ABANDONED = "abandoned"
    """Still pending when the notifier closed."""
    WITHDRAWN = "withdrawn"
    """No longer owed: its execution was deleted, or another process took it over (`withdraw`)."""


@dataclass(frozen=True)
class CallbackDelivery:
    """One callback to deliver: everything needed to send it, or to store it in an outbox."""

    delivery_id: str
    """Baton-Delivery-Id: the same for every attempt, derived from the execution id and its run."""
    execution_id: str
    owner: str
    """The execution's user_id, the key of the per-owner cap (empty: no cap)."""
    url: str
    body: bytes
    """The JSON of the terminal ExecutionStatus, at most CallbackConfig.max_body_bytes."""
    abridged: bool = False
    """Whether something was left out of the status to fit the body (see _body)."""
    attempts: int = 0
    """Attempts an earlier process already made (rule 5): numbering and backoff go on from them."""
    deadline: float | None = None
    """Unix time after which no attempt is made (the callback is EXHAUSTED); None for none."""


OutcomeListener = Callable[[CallbackDelivery, DeliveryOutcome, str, int], None]
"""Called with a callback, how it ended, a sentence saying why and the attempts made in all."""
RetryListener = Callable[[CallbackDelivery, int, float, str], None]
"""Called when a failed attempt is to be retried: the callback, the attempts made in all, the
seconds until the next and what the failed one came to."""


class RefusedAddressError(OSError):
    """A resolved address the policy refuses; raised instead of connecting to it."""


class AddressGuard:
    """aiohttp's socket factory for one attempt: refuses every address the policy refuses.

    aiohttp (through aiohappyeyeballs) calls it with each address it is about to connect to,
    literal or resolved, so the check is on the very address of the connection (rule 4).
    """

    def __init__(self, policy: DestinationPolicy, *, trusted: bool) -> None:
        self.policy = policy
        self.trusted = trusted
        """The URL's host is an allowed host name: every address it resolves to is allowed."""
        self.tried = 0
        self.refused: list[str] = []
        """Why each refused address was refused."""

    def __call__(self, addr_info: AddrInfoType) -> socket.socket:
        family, kind, proto, _, sockaddr = addr_info
        self.tried += 1
        if not self.trusted:
            try:
                problem = self.policy.address_problem(ipaddress.ip_address(sockaddr[0]))
            except ValueError:
                problem = f"{sockaddr[0]!r} is not an IP address"
            if problem is not None:
                self.refused.append(problem)
                raise RefusedAddressError(f"callback destination refused: {problem}")
        return socket.socket(family, kind, proto)

    @property
    def all_refused(self) -> bool:
        """Whether addresses were tried and every one was refused."""
        return self.tried > 0 and len(self.refused) == self.tried


@dataclass(eq=False)
class _Job:
    delivery: CallbackDelivery
    keys: tuple[str, ...]
    attempt: int = 0
    timer: asyncio.TimerHandle | None = None
    woken_for: str | None = None
    """The key whose free slot this queued job holds (see CallbackNotifier._admit)."""


class CallbackNotifier:
    """A terminal listener of the engine that POSTs each final status to its callback_url."""

    def __init__(
        self,
        config: CallbackConfig | None = None,
        *,
        secret: bytes | None = None,
        clock: Callable[[], float] = time.time,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        """Prepares the notifier; `start()` starts its workers.

        Args:
            config: the settings (defaults when None).
            secret: the signing secret; None sends callbacks unsigned.
            clock: Unix time, for the signatures' timestamps.
            jitter: a number in [0, 1) per retry, spreading the retries of many callbacks.

        Raises:
            ValueError: a setting is invalid; the message names it.
        """
        self.config = config or CallbackConfig()
        self.policy = self.config.validate()
        self.secret = secret
        self._clock = clock
        self._jitter = jitter
        self._timeout = aiohttp.ClientTimeout(
            total=self.config.timeout, connect=self.config.connect_timeout, sock_connect=self.config.connect_timeout
        )
        self._queue: asyncio.Queue[_Job] = asyncio.Queue()
        self._live: set[_Job] = set()
        self._pending_bytes = 0
        # Per key (an origin or an owner), only while non-zero or non-empty: memory follows the
        # callbacks pending, not every key ever seen.
        self._active: dict[str, int] = {}
        self._woken: dict[str, int] = {}
        """Jobs queued again to take a free slot of the key (see _admit)."""
        self._parked: dict[str, deque[_Job]] = {}
        self._workers: list[asyncio.Task[None]] = []
        self._idle = asyncio.Event()
        self._idle.set()
        self._listeners: list[OutcomeListener] = []
        self._retry_listeners: list[RetryListener] = []
        self._closed = False
        self._warned_unsigned = False

    @classmethod
    def from_config(cls, config: CallbackConfig) -> CallbackNotifier:
        """A notifier with the secret of `config.secret_file`, saying at start-up how it signs.

        Raises:
            ValueError: a setting is invalid or the secret unreadable; the message names it.
        """
        notifier = cls(config, secret=config.read_secret())
        if notifier.secret is None:
            # INFO, not WARNING: a deployment that sends no callback has nothing to fix; the
            # first callback actually sent unsigned is a warning (see enqueue).
            logger.info("callbacks are unsigned: give --callback-secret-file so receivers can verify them")
        else:
            logger.info("callbacks are signed (%s, secret from %s)", SIGNATURE_HEADER, config.secret_file)
        if config.allow:
            logger.info("callbacks may also go to %s", ", ".join(config.allow))
        return notifier

    def add_outcome_listener(self, listener: OutcomeListener) -> None:
        """Registers a function called once with each callback's outcome."""
        self._listeners.append(listener)

    def add_retry_listener(self, listener: RetryListener) -> None:
        """Registers a function called each time a failed attempt is to be retried."""
        self._retry_listeners.append(listener)

    @property
    def pending(self) -> int:
        """Callbacks queued, parked, waiting to retry or in flight."""
        return len(self._live)

    def start(self) -> None:
        """Starts the workers (in the running event loop)."""
        if not self._workers and not self._closed:
            loop = asyncio.get_running_loop()
            self._workers = [loop.create_task(self._work()) for _ in range(self.config.workers)]

    def enqueue(self, delivery: CallbackDelivery) -> None:
        """Queues a callback (never blocks); its outcome is reported to the listeners."""
        if self._closed:
            self._report(delivery, DeliveryOutcome.DROPPED, "the server is shutting down")
            return
        size = len(delivery.body)
        if len(self._live) >= self.config.max_pending or self._pending_bytes + size > self.config.max_pending_bytes:
            self._report(
                delivery,
                DeliveryOutcome.DROPPED,
                f"the queue is full ({len(self._live)} callbacks, {self._pending_bytes} bytes pending)",
            )
            return
        problem = self.policy.url_problem(delivery.url)
        if problem is not None:
            self._report(delivery, DeliveryOutcome.REFUSED, f"callback_url: {problem}")
            return
        url = URL(delivery.url)
        keys: tuple[str, ...] = (f"origin {url.scheme}://{url.raw_host}:{url.port}",)
        if delivery.owner:
            keys += (f"owner {delivery.owner}",)
        if self.secret is None and not self._warned_unsigned:
            self._warned_unsigned = True
            logger.warning("callbacks are sent unsigned: give --callback-secret-file so receivers can verify them")
        job = _Job(delivery, keys, attempt=delivery.attempts)
        self._live.add(job)
        self._pending_bytes += size
        self._idle.clear()
        self._queue.put_nowait(job)

    def withdraw(self, delivery_id: str, why: str) -> None:
        """Stops delivering a callback held here (its retry timer cancelled; an attempt in flight
        finishes unreported); its outcome is WITHDRAWN."""
        for job in [job for job in self._live if job.delivery.delivery_id == delivery_id]:
            if job.timer is not None:
                job.timer.cancel()
                job.timer = None
            self._finish(job, DeliveryOutcome.WITHDRAWN, why)

    async def close(self) -> None:
        """Stops taking callbacks, gives those pending `close_grace` seconds, abandons the rest."""
        if self._closed:
            return
        self._closed = True
        if self._workers:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), self.config.close_grace)
        for job in self._live:
            if job.timer is not None:
                job.timer.cancel()
        for worker in self._workers:
            worker.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        for job in list(self._live):
            self._finish(job, DeliveryOutcome.ABANDONED, "the server shut down first")

    # ---- the workers ------------------------------------------------------------------------

    async def _work(self) -> None:
        while True:
            job = await self._queue.get()
            if not self._admit(job):
                continue
            try:
                await self._run(job)
            except Exception as error:
                # A bug must cost one callback, never a worker.
                logger.exception("callback of execution %s failed unexpectedly", job.delivery.execution_id)
                self._finish(job, DeliveryOutcome.EXHAUSTED, f"unexpected {type(error).__name__}")
            finally:
                for key in job.keys:
                    self._release(key)

    def _cap(self, key: str) -> int:
        return self.config.per_owner if key.startswith("owner ") else self.config.per_destination

    def _admit(self, job: _Job) -> bool:
        """Counts the job in flight on its keys; or parks it on a key at its cap and says False.

        A key's free slots are held for the jobs woken for it (``_woken``), so parked jobs go
        first, in order. A job woken for one key but parked on another hands that key's slot on.
        """
        woken_for, job.woken_for = job.woken_for, None
        if woken_for is not None:
            _count(self._woken, woken_for, -1)
        busy = next((key for key in job.keys if self._used(key) >= self._cap(key)), None)
        if busy is None:
            for key in job.keys:
                _count(self._active, key, +1)
            return True
        self._parked.setdefault(busy, deque()).append(job)
        if woken_for is not None and woken_for != busy:
            self._wake(woken_for)
        return False

    def _used(self, key: str) -> int:
        return self._active.get(key, 0) + self._woken.get(key, 0)

    def _release(self, key: str) -> None:
        _count(self._active, key, -1)
        self._wake(key)

    def _wake(self, key: str) -> None:
        """Queues parked jobs of `key` again, as many as it has free slots."""
        parked = self._parked.get(key)
        while parked and self._used(key) < self._cap(key):
            job = parked.popleft()
            job.woken_for = key
            _count(self._woken, key, +1)
            self._queue.put_nowait(job)
        if not parked:
            self._parked.pop(key, None)

    async def _run(self, job: _Job) -> None:
        deadline = job.delivery.deadline
        if deadline is not None and self._clock() >= deadline:
            self._finish(job, DeliveryOutcome.EXHAUSTED, f"its deadline passed after {job.attempt} attempts")
            return
        job.attempt += 1
        outcome, detail = await self._attempt(job)
        if outcome is not None:
            self._finish(job, outcome, detail)
        elif job.attempt >= self.config.attempts:
            self._finish(job, DeliveryOutcome.EXHAUSTED, f"{detail} (after {job.attempt} attempts)")
        else:
            base = min(self.config.max_backoff, self.config.backoff * 2 ** min(job.attempt - 1, 60))
            delay = base * (0.5 + 0.5 * self._jitter())
            if deadline is not None and self._clock() + delay >= deadline:
                why = f"{detail} (after {job.attempt} attempts; its deadline passes before the next)"
                self._finish(job, DeliveryOutcome.EXHAUSTED, why)
                return
            logger.info(
                "callback of execution %s to %s: %s; attempt %d in %.1fs",
                job.delivery.execution_id,
                _origin(job.delivery.url),
                detail,
                job.attempt + 1,
                delay,
            )
            job.timer = asyncio.get_running_loop().call_later(delay, self._retry, job)
            for listener in self._retry_listeners:
                try:
                    listener(job.delivery, job.attempt, delay, detail)
                except Exception:
                    logger.exception("callback retry listener failed for execution %s", job.delivery.execution_id)

    def _retry(self, job: _Job) -> None:
        job.timer = None
        if job in self._live:
            self._queue.put_nowait(job)

    async def _attempt(self, job: _Job) -> tuple[DeliveryOutcome | None, str]:
        """POSTs once; returns the outcome (None: worth retrying) and what happened."""
        delivery = job.delivery
        url = URL(delivery.url)
        guard = AddressGuard(self.policy, trusted=self.policy.trusts_host(url.raw_host or ""))
        # A connector per attempt: its socket factory (the guard) records this attempt's
        # refusals; callbacks are one per execution, so connection reuse would gain little.
        connector = aiohttp.TCPConnector(socket_factory=guard, force_close=True, use_dns_cache=False)
        try:
            async with (
                aiohttp.ClientSession(
                    connector=connector, timeout=self._timeout, trust_env=False, auto_decompress=False
                ) as session,
                session.post(url, data=delivery.body, headers=self._headers(job), allow_redirects=False) as response,
            ):
                status = response.status
                location = response.headers.get("Location", "")
                # The status decides; a failure's first bytes are only for the log, and a 2xx's
                # body is never waited for (a receiver that never sends it has still answered).
                text = "" if 200 <= status < 300 else await self._answer_text(response)
        except aiohttp.ClientConnectorError as error:
            if guard.all_refused:
                return DeliveryOutcome.REFUSED, "; ".join(dict.fromkeys(guard.refused))
            return None, f"cannot connect ({error.os_error.strerror or error.os_error})"
        except TimeoutError:
            return None, f"no answer within {self.config.timeout:g}s"
        except aiohttp.InvalidURL as error:
            return DeliveryOutcome.REFUSED, f"unusable URL ({error})"
        except (aiohttp.ClientError, OSError) as error:
            return None, f"{type(error).__name__}: {str(error)[:200]}"
        if 200 <= status < 300:
            return DeliveryOutcome.DELIVERED, f"HTTP {status}"
        if 300 <= status < 400:
            return DeliveryOutcome.REJECTED, f"HTTP {status} redirect to {location[:200]!r} (not followed)"
        if status >= 500:
            return None, f"HTTP {status} {text!r}"
        return DeliveryOutcome.REJECTED, f"HTTP {status} {text!r}"

    async def _answer_text(self, response: aiohttp.ClientResponse) -> str:
        """At most max_response_bytes of the answer, waited for at most a second, for the log."""
        try:
            async with asyncio.timeout(_ANSWER_SECONDS):
                answer = await response.content.read(self.config.max_response_bytes)
        except (TimeoutError, aiohttp.ClientError, OSError):
            return ""
        return answer.decode("utf-8", "replace")[:200]

    def _headers(self, job: _Job) -> dict[str, str]:
        delivery = job.delivery
        headers = {
            "Content-Type": "application/json",
            "User-Agent": _USER_AGENT,
            "Baton-Execution-Id": delivery.execution_id,
            "Baton-Delivery-Id": delivery.delivery_id,
            "Baton-Delivery-Attempt": str(job.attempt),
        }
        if delivery.abridged:
            headers["Baton-Status-Abridged"] = "true"
        if self.secret is not None:
            headers[SIGNATURE_HEADER] = signature_header(self.secret, delivery.body, int(self._clock()))
        return headers

    # ---- outcomes ---------------------------------------------------------------------------

    def _finish(self, job: _Job, outcome: DeliveryOutcome, detail: str) -> None:
        if job not in self._live:
            return
        self._live.discard(job)
        self._pending_bytes -= len(job.delivery.body)
        if not self._live:
            self._idle.set()
        self._report(job.delivery, outcome, detail, job.attempt)

    def _report(self, delivery: CallbackDelivery, outcome: DeliveryOutcome, detail: str, attempts: int = 0) -> None:
        level = logging.INFO if outcome is DeliveryOutcome.DELIVERED else logging.WARNING
        logger.log(
            level,
            "callback of execution %s to %s %s: %s (delivery %s)",
            delivery.execution_id,
            _origin(delivery.url),
            outcome.value,
            detail,
            delivery.delivery_id,
        )
        for listener in self._listeners:
            try:
                listener(delivery, outcome, detail, attempts or delivery.attempts)
            except Exception:
                logger.exception("callback outcome listener failed for execution %s", delivery.execution_id)


def _count(counts: dict[str, int], key: str, change: int) -> None:
    """Adds `change` to a count, removing it at zero."""
    value = counts.get(key, 0) + change
    if value:
        counts[key] = value
    else:
        counts.pop(key, None)


def _origin(url: str) -> str:
    """What of a URL is logged: its query may hold a receiver's token."""
    try:
        parsed = URL(url)
        return f"{parsed.scheme}://{parsed.raw_host}:{parsed.port}"
    except ValueError:
        return "an unusable URL"
