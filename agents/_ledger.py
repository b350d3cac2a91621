"""The Automation agent's SQLite ledger of applications and of answers already given per idempotency key."""

from __future__ import annotations

import logging
import sqlite3
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from baton.v1 import automation_pb2
from google.protobuf.message import Message

logger = logging.getLogger(__name__)

M = TypeVar("M", bound=Message)

_SCHEMA_VERSION = 1

# Rule: a row in idempotent_responses is written in the same transaction as the applications it
# answered for, so a request is either applied and remembered, or neither.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS applications (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    application_id   TEXT    NOT NULL UNIQUE,
    user_id          TEXT    NOT NULL,
    job_id           TEXT    NOT NULL,
    state            INTEGER NOT NULL,
    submitted_at_ns  INTEGER NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    source           TEXT    NOT NULL,
    document_id      TEXT    NOT NULL,
    cover_note       TEXT    NOT NULL,
    withdrawn_at_ns  INTEGER,
    withdraw_reason  TEXT
);
CREATE INDEX IF NOT EXISTS applications_by_user ON applications (user_id, seq);
CREATE TABLE IF NOT EXISTS idempotent_responses (
    method           TEXT    NOT NULL,
    user_id          TEXT    NOT NULL,
    idempotency_key  TEXT    NOT NULL,
    response         BLOB    NOT NULL,
    created_at_ns    INTEGER NOT NULL,
    PRIMARY KEY (method, user_id, idempotency_key)
);
"""

_COLUMNS = "application_id, user_id, job_id, state, submitted_at_ns, idempotency_key, source"


@dataclass(frozen=True)
class NewApplication:
    """One application to record."""

    job_id: str
    """The job applied to."""
    source: str
    """The board the job is on."""


class UnknownApplicationsError(LookupError):
    """Some application ids do not exist, or belong to another user."""

    def __init__(self, application_ids: Sequence[str]) -> None:
        super().__init__(", ".join(application_ids))
        self.application_ids = list(application_ids)


class ApplicationLedger:
    """Applications and idempotent answers in one SQLite database (a file, or ``:memory:``).

    Every method runs synchronously on the caller's thread: the agent calls it from the event
    loop, where a write is one short transaction, and the loop never interleaves two of them.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._db = sqlite3.connect(path, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 5000")
        if path != ":memory:":
            self._db.execute("PRAGMA journal_mode = WAL")
        # FULL makes each commit reach the disk before the agent answers: an answered application
        # survives a crash of the process or of the machine.
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.executescript(_SCHEMA)
        self._db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        counts = dict(self._db.execute("SELECT state, COUNT(*) FROM applications GROUP BY state").fetchall())
        self.submitted = sum(counts.values())
        self.withdrawn = counts.get(automation_pb2.APPLICATION_STATE_WITHDRAWN, 0)
        self.replays = 0
        # Counts of the open transaction, added to the totals only when it commits.
        self._pending_submitted = 0
        self._pending_withdrawn = 0

    def close(self) -> None:
        """Closes the database."""
        self._db.close()

    def once(self, method: str, user_id: str, key: str, response_type: type[M], apply: Callable[[], M]) -> M:
        """Runs `apply` in a transaction, once per (method, user, idempotency key).

        Args:
            method: The operation's name; keys of different operations never collide.
            user_id: The requesting user; keys of different users never collide.
            key: The request's idempotency key; empty means the request is not deduplicated.
            response_type: The response message class, to read a stored answer.
            apply: Writes the request's effects with :meth:`insert` / :meth:`withdraw` and
                returns the response; it runs inside the transaction.

        Returns:
            The stored response when the key was already applied (nothing is written), else
            the new response, stored under the key in the same transaction as its effects.

        The key names the effect, not the request: a repeated key is answered with the stored
        response even when the request differs. The orchestrator sends one key for every
        attempt of a step and rebuilds each attempt's request from the execution's context, so
        what the first attempt applied must stay the step's only effect, whatever a later
        attempt asks; refusing the differing request instead would fail a step whose effect
        already happened.
        """
        self._db.execute("BEGIN IMMEDIATE")
        self._pending_submitted = self._pending_withdrawn = 0
        try:
            if key:
                row = self._db.execute(
                    "SELECT response FROM idempotent_responses"
                    " WHERE method = ? AND user_id = ? AND idempotency_key = ?",
                    (method, user_id, key),
                ).fetchone()
                if row is not None:
                    self._db.execute("ROLLBACK")
                    self.replays += 1
                    return response_type.FromString(row[0])
            response = apply()
            if key:
                self._db.execute(
                    "INSERT INTO idempotent_responses VALUES (?, ?, ?, ?, ?)",
                    (method, user_id, key, response.SerializeToString(), time.time_ns()),
                )
            self._db.execute("COMMIT")
            self.submitted += self._pending_submitted
            self.withdrawn += self._pending_withdrawn
        except BaseException:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
            raise
        return response

    def insert(
        self,
        user_id: str,
        applications: Sequence[NewApplication],
        *,
        key: str,
        document_id: str,
        cover_note: str,
        now_ns: int,
    ) -> list[automation_pb2.Application]:
        """Records submitted applications; call it inside :meth:`once`."""
        made = []
        for new in applications:
            application = automation_pb2.Application(
                application_id=f"app-{uuid.uuid4().hex}",
                user_id=user_id,
                job_id=new.job_id,
                state=automation_pb2.APPLICATION_STATE_SUBMITTED,
                idempotency_key=key,
                source=new.source,
            )
            application.submitted_at.FromNanoseconds(now_ns)
            self._db.execute(
                f"INSERT INTO applications ({_COLUMNS}, document_id, cover_note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    application.application_id,
                    user_id,
                    new.job_id,
                    application.state,
                    now_ns,
                    key,
                    new.source,
                    document_id,
                    cover_note,
                ),
            )
            made.append(application)
        self._pending_submitted += len(made)
        return made

    def withdraw(
        self, user_id: str, application_ids: Sequence[str], *, reason: str, now_ns: int
    ) -> list[automation_pb2.Application]:
        """Withdraws a user's applications; call it inside :meth:`once`.

        Raises:
            UnknownApplicationsError: an id is unknown or is another user's; nothing is changed.
        """
        found = {
            row[0]: row
            for row in self._db.execute(
                f"SELECT {_COLUMNS} FROM applications WHERE user_id = ? AND application_id IN "
                f"({', '.join('?' * len(application_ids))})",
                (user_id, *application_ids),
            )
        }
        unknown = [a for a in application_ids if a not in found]
        if unknown:
            raise UnknownApplicationsError(unknown)
        withdrawn = automation_pb2.APPLICATION_STATE_WITHDRAWN
        changed = self._db.execute(
            f"UPDATE applications SET state = ?, withdrawn_at_ns = ?, withdraw_reason = ?"
            f" WHERE state != ? AND application_id IN ({', '.join('?' * len(application_ids))})",
            (withdrawn, now_ns, reason, withdrawn, *application_ids),
        ).rowcount
        self._pending_withdrawn += changed
        applications = [_application(found[a]) for a in application_ids]
        for application in applications:
            application.state = withdrawn
        return applications

    def list(self, user_id: str) -> list[automation_pb2.Application]:
        """Returns a user's applications, oldest first."""
        rows = self._db.execute(f"SELECT {_COLUMNS} FROM applications WHERE user_id = ? ORDER BY seq", (user_id,))
        return [_application(row) for row in rows]


def _application(row: tuple[str, str, str, int, int, str, str]) -> automation_pb2.Application:
    application_id, user_id, job_id, state, submitted_at_ns, key, source = row
    application = automation_pb2.Application(
        application_id=application_id,
        user_id=user_id,
        job_id=job_id,
        state=state,  # type: ignore[arg-type]
        idempotency_key=key,
        source=source,
    )
    application.submitted_at.FromNanoseconds(submitted_at_ns)
    return application
