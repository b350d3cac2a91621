"""The callback notifier's settings: a frozen value validated once, and the signing secret's file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from server.callbacks._policy import DestinationPolicy
from server.engine.callback import DEFAULT_CALLBACK_DEADLINE

MIN_SECRET_BYTES = 16
"""The shortest signing secret accepted (32 random bytes, hex or base64, are recommended)."""
MAX_SECRET_BYTES = 4096
MAX_DEADLINE = 30 * 86_400.0
"""The longest --callback-deadline: a callback owed longer is an outbox row kept for nothing."""


@dataclass(frozen=True)
class CallbackConfig:
    """How terminal callbacks are checked, signed and delivered."""

    allow: tuple[str, ...] = ()
    """--callback-allow: CIDRs, addresses or host names exempt from the refusal of internal
    addresses (see server.callbacks._policy). Default: none, so only public addresses."""
    secret_file: str = ""
    """--callback-secret-file: a file whose bytes (trailing whitespace stripped, at least 16)
    sign every callback. Empty: callbacks are sent unsigned, which start-up says."""
    workers: int = 32
    """Deliveries in flight at once (asyncio tasks, no threads). Default 32."""
    per_destination: int = 4
    """Deliveries in flight at once to one origin (scheme, host, port), so one slow receiver
    holds at most this many workers. Default 4."""
    per_owner: int = 4
    """Deliveries in flight at once for one execution owner (its user_id), so one user's slow
    receivers, on however many hosts, hold at most this many workers. Default 4."""
    max_pending: int = 10_000
    """Callbacks held in memory (waiting, in flight or waiting to retry): the window over the
    store's outbox, whose other rows wait there. Past it an enqueued one is dropped with a warning
    (the outbox then leaves it owed). Default 10,000."""
    max_pending_bytes: int = 64 * 1024 * 1024
    """Bytes of bodies held in memory; past it a new one is dropped (still owed). Default 64 MiB."""
    max_body_bytes: int = 1024 * 1024
    """The largest body POSTed: a larger status leaves out step outputs (named in
    results.omitted_outputs) and says so in the Baton-Status-Abridged header. Default 1 MiB."""
    connect_timeout: float = 5.0
    """Seconds to resolve and connect, per attempt. Default 5."""
    timeout: float = 10.0
    """Seconds an attempt may take in all (connect, send, response headers). Default 10."""
    max_response_bytes: int = 1024
    """Bytes read of a non-2xx answer's body, for the log (a 2xx's is not read). Default 1 KiB."""
    attempts: int = 100_000
    """Attempts per callback at most; 5xx answers, timeouts and connection errors are retried,
    3xx and 4xx answers and refused addresses are not. The callback's deadline
    (``--callback-deadline``, recorded when it is scheduled) ends the retries first with the
    default, 100,000."""
    backoff: float = 1.0
    """--callback-backoff: seconds before the first retry, doubling each time, with jitter (a
    random 50-100 % of it); the attempt count is kept in the store, so the doubling goes on
    across restarts. Default 1."""
    max_backoff: float = 60.0
    """--callback-max-backoff: the longest wait between attempts. Default 60."""
    poll_interval: float = 1.0
    """Seconds between looks at the store's outbox for callbacks due (a retry after a restart,
    one another replica gave up); an execution that ends here is looked for at once. Default 1."""
    deadline: float = DEFAULT_CALLBACK_DEADLINE
    """--callback-deadline: seconds after an execution's end during which its callback is
    retried; recorded in its callback_scheduled event, so a restart (or a change of the flag)
    does not move it. Default 86,400 (24 h); 1 s to 30 days."""
    close_grace: float = 2.0
    """Seconds a shutting-down server waits for callbacks still in flight. Default 2."""

    def validate(self) -> DestinationPolicy:
        """Checks every setting and returns the destination policy of `allow`.

        Raises:
            ValueError: a setting is out of range or an allow rule unreadable; the message names it.
        """
        for name in ("workers", "per_destination", "per_owner", "max_pending", "attempts"):
            if not 1 <= getattr(self, name) <= 100_000:
                raise ValueError(f"callbacks.{name}: expected 1 to 100000, got {getattr(self, name)}")
        for name in ("max_pending_bytes", "max_body_bytes", "max_response_bytes"):
            if not 1024 <= getattr(self, name) <= 1 << 34:
                raise ValueError(f"callbacks.{name}: expected 1 KiB to 16 GiB, got {getattr(self, name)}")
        for name in ("connect_timeout", "timeout", "backoff", "max_backoff", "close_grace", "poll_interval"):
            if not 0 < getattr(self, name) <= 3600:
                raise ValueError(f"callbacks.{name}: expected seconds above 0 and at most 3600")
        if not 1 <= self.deadline <= MAX_DEADLINE:
            raise ValueError(f"callbacks.deadline: expected 1 second to 30 days, got {self.deadline:g} seconds")
        return DestinationPolicy(self.allow)

    def read_secret(self) -> bytes | None:
        """The signing secret from `secret_file`; None when there is none.

        Raises:
            ValueError: the file cannot be read, or its secret is too short or too long.
        """
        if not self.secret_file:
            return None
        try:
            with Path(self.secret_file).open("rb") as file:
                secret = file.read(MAX_SECRET_BYTES + 1).rstrip()
        except OSError as error:
            raise ValueError(f"callback_secret_file: cannot read {self.secret_file!r}: {error.strerror}") from None
        if not MIN_SECRET_BYTES <= len(secret) <= MAX_SECRET_BYTES:
            raise ValueError(
                f"callback_secret_file: the secret must be {MIN_SECRET_BYTES} to {MAX_SECRET_BYTES} bytes, "
                f"got {len(secret)}"
            )
        return secret
