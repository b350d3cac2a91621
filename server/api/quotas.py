"""Per-user quotas: submissions per minute (a token bucket), open watches, and watch bytes not yet read.

Who "the user" is: the authenticated subject (``server.auth.current_principal().subject``) when
authentication is on. With it off, a submission's user is the request's own user_id (callers
can name any, so the quota only stops a client that means no harm from hurting everyone),
and a watch's user is the peer's network address (``ipv4:10.0.0.7``, its port dropped: one
client may open many connections), since a watch names no user and reading its execution's
owner would cost a store read on every journey's hot path. Behind a proxy every client shares
the proxy's address: size the watch limits for that, or turn authentication on.

Every table here is bounded: a user's entry goes as soon as it holds nothing (no open watch,
no pending bytes, a full bucket), so a flood of made-up user ids costs no memory that lasts.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import grpc

from server.api.errors import RequestError
from server.auth import current_principal
from server.config import LimitsConfig

#: Buckets kept at most; past this, full ones (indistinguishable from new ones) are dropped.
_MAX_BUCKETS = 10_000


def resource_exhausted(limit: str, message: str) -> RequestError:
    """A RESOURCE_EXHAUSTED naming the limit."""
    return RequestError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"{limit}: {message}")


def peer_host(peer: str) -> str:
    """The address part of a gRPC peer string: ``ipv4:1.2.3.4:5678`` → ``ipv4:1.2.3.4``."""
    if peer.startswith(("ipv4:", "ipv6:")):
        host, sep, port = peer.rpartition(":")
        if sep and port.isdigit():
            return host
    return peer


def watcher(peer: str) -> str:
    """The user a watch counts against: the authenticated subject, else the peer's address."""
    principal = current_principal()
    if principal.authenticated:
        return f"user:{principal.subject}"
    return f"peer:{peer_host(peer)}"


class SubmissionBuckets:
    """A token bucket per user: `per_minute` tokens, refilled evenly; each submission takes one."""

    def __init__(self, per_minute: int, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        """user → (tokens, when they were counted)."""
        self._sweep_at = _MAX_BUCKETS
        """The table's size at which full buckets are next swept (doubling: amortized O(1))."""

    def take(self, user: str) -> None:
        """Takes a token of `user`'s bucket.

        Raises:
            RequestError: RESOURCE_EXHAUSTED naming the limit and when a token is next free.
        """
        if self.per_minute <= 0:
            return
        now = self._clock()
        rate = self.per_minute / 60.0
        tokens, then = self._buckets.get(user, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - then) * rate)
        if tokens < 1.0:
            self._buckets[user] = (tokens, now)
            wait = (1.0 - tokens) / rate
            raise resource_exhausted(
                "submissions_per_minute",
                f"more than {self.per_minute} submissions a minute for this user; try again in {wait:.1f}s",
            )
        self._buckets[user] = (tokens - 1.0, now)
        if len(self._buckets) > self._sweep_at:
            self._forget_full(now, rate)
            self._sweep_at = max(_MAX_BUCKETS, 2 * len(self._buckets))

    def _forget_full(self, now: float, rate: float) -> None:
        full = [u for u, (tokens, then) in self._buckets.items() if tokens + (now - then) * rate >= self.per_minute]
        for user in full:
            del self._buckets[user]


class WatchLedger:
    """Open watches and pending (sent, not yet taken) watch bytes, per user and in all."""

    def __init__(self, config: LimitsConfig) -> None:
        self.config = config
        self._open: dict[str, int] = {}
        self._pending: dict[str, int] = {}
        self.pending_total = 0
        """Bytes of watch updates handed to gRPC and not yet taken, over every user."""

    def open_watches(self, user: str) -> int:
        """The user's open watches."""
        return self._open.get(user, 0)

    def pending(self, user: str) -> int:
        """The user's pending bytes."""
        return self._pending.get(user, 0)

    def open(self, user: str) -> None:
        """Counts a new watch of `user`.

        Raises:
            RequestError: RESOURCE_EXHAUSTED when the user has `watches_per_user` open.
        """
        count = self._open.get(user, 0)
        limit = self.config.watches_per_user
        if limit > 0 and count >= limit:
            raise resource_exhausted(
                "watches_per_user", f"{count} watches are open for this user, the most allowed; close one first"
            )
        self._open[user] = count + 1

    def close(self, user: str) -> None:
        """Uncounts a watch of `user`."""
        count = self._open.get(user, 0) - 1
        if count > 0:
            self._open[user] = count
        else:
            self._open.pop(user, None)

    def reserve(self, user: str, size: int) -> str | None:
        """Counts `size` bytes about to be handed to gRPC for `user`; returns the limit it would
        break instead (and counts nothing) when it would break one."""
        mine = self._pending.get(user, 0)
        per_user = self.config.watch_pending_bytes_per_user
        # A single update larger than a limit still goes out when nothing else is pending,
        # or no update could ever be sent to a client that reads.
        if per_user > 0 and mine and mine + size > per_user:
            return "watch_pending_bytes_per_user"
        total = self.config.watch_pending_bytes
        if total > 0 and self.pending_total and self.pending_total + size > total:
            return "watch_pending_bytes"
        self._pending[user] = mine + size
        self.pending_total += size
        return None

    def release(self, user: str, size: int) -> None:
        """Uncounts `size` pending bytes of `user` (their write completed or failed)."""
        left = self._pending.get(user, 0) - size
        if left > 0:
            self._pending[user] = left
        else:
            self._pending.pop(user, None)
        self.pending_total = max(0, self.pending_total - size)
