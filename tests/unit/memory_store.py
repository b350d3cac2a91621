"""An in-memory ExecutionStore with the SQLite store's contract, for the engine's tests and simulations.

It behaves as the real store does wherever a caller could tell: events are serialized when
appended and decoded when read (so a caller's later change to an event changes nothing stored,
and an undecodable payload is a CorruptHistoryError), a commit is a suspension point, sequence
conflicts and unknown executions fail the write alone, create_execution is idempotent on
(user_id, request_id), an append un-parks, a quarantined execution stays FAILED, lists filter
and page newest first with the same page tokens, events with an actor are audit entries,
deletions remove executions with their events and entries, and admission follows
server/engine/admission.py (rules 2-5). It is not durable and has no writers.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime

from baton.v1 import execution_pb2

from server.engine.admission import AdmissionLimits, Tally, effective_class
from server.engine.ports import Lease, LeaseLostError
from server.store._audit import audit_fields, deletion_reason
from server.store._keys import check_new_keys, storable_text
from server.store._page_tokens import decode_audit_token, decode_page_token, encode_audit_token, encode_page_token
from server.store._sqlite_rows import event_micros, from_micros, to_micros
from server.store.base import (
    DEFAULT_AUDIT_PAGE_SIZE,
    TERMINAL_STATES,
    USER_DATA_DELETED,
    AuditPage,
    AuditQuery,
    AuditRecord,
    CommitListener,
    CorruptHistoryError,
    Deletion,
    DeletionNote,
    ExecutionNotFoundError,
    ExecutionPage,
    ExecutionQuery,
    ExecutionRecord,
    NewExecution,
    SequenceConflictError,
    UnfinishedExecution,
    UnfinishedExecutionsError,
)

logger = logging.getLogger(__name__)

_MAX_PAGE_SIZE = 1000
_DEFAULT_PAGE_SIZE = 50


def _decode(execution_id: str, sequence: int, payload: bytes) -> execution_pb2.ExecutionEvent:
    try:
        event = execution_pb2.ExecutionEvent.FromString(payload)
    except Exception as error:
        raise CorruptHistoryError(execution_id, sequence, f"{type(error).__name__}: {error}") from error
    if event.sequence != sequence:
        raise CorruptHistoryError(execution_id, sequence, f"the stored event says sequence {event.sequence}")
    return event


class _EventsView(Mapping[str, list[execution_pb2.ExecutionEvent]]):
    """execution_id → its decoded events (a fresh copy on every lookup), for tests to inspect."""

    def __init__(self, payloads: dict[str, list[bytes]]) -> None:
        self._payloads = payloads

    def __getitem__(self, execution_id: str) -> list[execution_pb2.ExecutionEvent]:
        payloads = self._payloads[execution_id]
        return [_decode(execution_id, n, payload) for n, payload in enumerate(payloads, start=1)]

    def __iter__(self) -> Iterator[str]:
        return iter(self._payloads)

    def __len__(self) -> int:
        return len(self._payloads)


class MemoryStore:
    """An ExecutionStore in memory; see the module docstring for what it shares with SQLite."""

    def __init__(self) -> None:
        self.records: dict[str, ExecutionRecord] = {}
        """The summary rows by execution id (read them; write through the store's methods)."""
        self.appends = 0
        """Appends committed so far."""
        self._payloads: dict[str, list[bytes]] = {}
        self._parked: dict[str, datetime | None] = {}
        self._wanted: dict[str, str] = {}
        self._listeners: list[CommitListener] = []
        self.audit: dict[int, AuditRecord] = {}
        """The audit entries by number, in the order they were recorded (read them)."""
        self._audit_no = 0
        self._subjects: dict[int, str] = {}
        self._order: dict[str, int] = {}
        """Creation order, the last tie-break of admission (the stores' row order)."""

    @property
    def events(self) -> Mapping[str, list[execution_pb2.ExecutionEvent]]:
        """Each execution's events, decoded afresh on every lookup."""
        return _EventsView(self._payloads)

    def write_raw(self, execution_id: str, payload: bytes) -> None:
        """Appends stored bytes as they are, bypassing every check (tests poison histories with it)."""
        self._payloads[execution_id].append(payload)

    def parked(self, execution_id: str) -> tuple[bool, datetime | None]:
        """Whether the execution is parked, and until when."""
        return execution_id in self._parked, self._parked.get(execution_id)

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def create_execution(
        self, new: NewExecution, first_event: execution_pb2.ExecutionEvent
    ) -> tuple[ExecutionRecord, bool]:
        if first_event.sequence != 1:
            raise ValueError(f"the first event's sequence must be 1, not {first_event.sequence}")
        check_new_keys(new)
        created_at = from_micros(to_micros(new.created_at))
        payload = first_event.SerializeToString()
        entries = _entries([first_event])
        await asyncio.sleep(0)  # a commit is a suspension point, as in the real stores
        if new.request_id:
            for record in self.records.values():
                if (record.user_id, record.request_id) == (new.user_id, new.request_id):
                    return record, False
        if new.execution_id in self.records:
            raise ValueError(f"execution_id {new.execution_id!r} is taken by another request")
        record = self._tally().place(new.admission, new.queued_record(created_at))
        self.records[new.execution_id] = record
        self._order[new.execution_id] = len(self._order)
        self._payloads[new.execution_id] = [payload]
        self._index(record, entries)
        self._notify(new.execution_id, [first_event])
        return record, True

    async def append(self, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int) -> None:
        if not events:
            raise ValueError(f"append to {execution_id} carries no events")
        first = events[0].sequence
        for offset, event in enumerate(events):
            if event.sequence != first + offset:
                raise ValueError(
                    f"append to {execution_id}: event {offset} has sequence {event.sequence}, expected {first + offset}"
                )
        # Serialized now: a caller's later change to the events changes nothing stored.
        payloads = [event.SerializeToString() for event in events]
        entries = _entries(events)
        latest = max(event_micros(event) for event in events)
        await asyncio.sleep(0)  # a commit is a suspension point, as in the real stores
        record = self.records.get(execution_id)
        if record is None:
            raise ExecutionNotFoundError(execution_id)
        if first != record.last_sequence + 1:
            raise SequenceConflictError(
                f"execution {execution_id}: append starts at sequence {first}, but its last sequence is"
                f" {record.last_sequence}"
            )
        self.appends += 1
        self._payloads[execution_id].extend(payloads)
        self._index(record, entries)
        self._parked.pop(execution_id, None)
        self.records[execution_id] = dataclasses.replace(
            record,
            state=record.state if record.quarantine_error else state,
            last_sequence=events[-1].sequence,
            updated_at=max(record.updated_at, from_micros(latest)),
        )
        self._notify(execution_id, list(events))

    async def park(self, execution_id: str, wake_at: datetime | None) -> None:
        if wake_at is not None:
            wake_at = from_micros(to_micros(wake_at))
        await asyncio.sleep(0)
        if execution_id not in self.records:
            raise ExecutionNotFoundError(execution_id)
        self._parked[execution_id] = wake_at
        self._free(execution_id)  # a parked execution needs no holder until it is due

    # ---- leases (ReplicaStore) -------------------------------------------------------------------

    async def claim(
        self, lease: Lease, now: datetime, limit: int, execution_ids: Sequence[str] = (), *, ended: bool = False
    ) -> list[str]:
        await asyncio.sleep(0)
        named = bool(execution_ids)
        candidates = list(execution_ids) or [r.execution_id for r in sorted(self.records.values(), key=_age)]
        taken: list[str] = []
        for execution_id in candidates:
            record = self.records.get(execution_id)
            if record is None or len(taken) >= limit:
                continue
            if record.quarantine_error or (record.state in TERMINAL_STATES and not (named and ended)):
                continue
            held = record.owner and record.owner != lease.owner
            if held and record.lease_expires_at is not None and record.lease_expires_at > now:
                continue
            if not named and self._wanted.get(execution_id, lease.owner) != lease.owner:
                continue  # another replica asked for it: it takes it
            if not named and execution_id in self._parked:
                wake_at = self._parked[execution_id]
                if wake_at is None or wake_at > now:
                    continue
            self.records[execution_id] = dataclasses.replace(record, owner=lease.owner, lease_expires_at=lease.until)
            self._wanted.pop(execution_id, None)
            taken.append(execution_id)
        return taken

    async def want(self, execution_id: str, owner: str) -> None:
        await asyncio.sleep(0)
        record = self.records.get(execution_id)
        if record is not None and record.owner and record.owner != owner:
            self._wanted[execution_id] = owner

    async def wanted(self, owner: str) -> list[str]:
        await asyncio.sleep(0)
        return [i for i in self._wanted if (r := self.records.get(i)) is not None and r.owner == owner]

    async def renew(self, lease: Lease, execution_ids: Sequence[str]) -> set[str]:
        await asyncio.sleep(0)
        held = set()
        for execution_id in execution_ids:
            record = self.records.get(execution_id)
            if record is not None and record.owner == lease.owner:
                self.records[execution_id] = dataclasses.replace(record, lease_expires_at=lease.until)
                held.add(execution_id)
        return held

    async def release(self, owner: str, execution_ids: Sequence[str]) -> None:
        await asyncio.sleep(0)
        for execution_id in execution_ids:
            self._free(execution_id, owner)

    async def append_fenced(
        self, lease: Lease, execution_id: str, events: Sequence[execution_pb2.ExecutionEvent], state: int
    ) -> None:
        record = self.records.get(execution_id)
        if record is not None and record.owner != lease.owner:
            raise LeaseLostError(execution_id, record.owner)
        await self.append(execution_id, events, state)

    def _free(self, execution_id: str, owner: str | None = None) -> None:
        record = self.records.get(execution_id)
        if record is not None and record.owner and owner in (None, record.owner):
            self.records[execution_id] = dataclasses.replace(record, owner="", lease_expires_at=None)

    async def quarantine(self, execution_id: str, error: str) -> None:
        await asyncio.sleep(0)
        self._free(execution_id)
        record = self.records.get(execution_id)
        if record is None:
            raise ExecutionNotFoundError(execution_id)
        self._parked.pop(execution_id, None)
        self.records[execution_id] = dataclasses.replace(
            record, state=execution_pb2.EXECUTION_STATE_FAILED, quarantine_error=storable_text(error)
        )

    async def read_events(
        self, execution_id: str, after_sequence: int = 0, limit: int | None = None
    ) -> list[execution_pb2.ExecutionEvent]:
        if limit is not None and limit <= 0:
            return []
        payloads = self._payloads.get(execution_id, [])
        start = max(after_sequence, 0)
        stop = len(payloads) if limit is None else start + limit
        return [_decode(execution_id, n, p) for n, p in enumerate(payloads[start:stop], start=start + 1)]

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        return self.records.get(execution_id)

    async def list_executions(self, query: ExecutionQuery) -> ExecutionPage:
        if query.page_size < 0:
            raise ValueError(f"page_size must not be negative, not {query.page_size}")
        after = decode_page_token(query.page_token) if query.page_token else None
        size = min(query.page_size or _DEFAULT_PAGE_SIZE, _MAX_PAGE_SIZE)
        rows = sorted(self.records.values(), key=_position, reverse=True)
        picked = [
            record
            for record in rows
            if (not query.user_id or record.user_id == query.user_id)
            and (not query.states or record.state in query.states)
            and (not query.workflow_type or record.workflow_type == query.workflow_type)
            and (after is None or _position(record) < after)
        ]
        page = picked[:size]
        token = encode_page_token(*_position(page[-1])) if len(picked) > size else ""
        return ExecutionPage(records=page, next_page_token=token)

    async def unfinished_executions(self) -> list[UnfinishedExecution]:
        rows = sorted((r for r in self.records.values() if r.state not in TERMINAL_STATES), key=_position)
        return [
            UnfinishedExecution(
                execution_id=r.execution_id,
                parked=r.execution_id in self._parked,
                wake_at=self._parked.get(r.execution_id),
                waiting=r.waiting,
            )
            for r in rows
        ]

    # ---- admission (server/engine/admission.py) -------------------------------------------------

    def _tally(self) -> Tally:
        unfinished = [r for r in self.records.values() if r.state not in TERMINAL_STATES]
        waiting = sum(1 for r in unfinished if r.waiting)
        return Tally(running=len(unfinished) - waiting, queued=waiting)

    def _queue(self, aging_seconds: float, now: datetime) -> list[ExecutionRecord]:
        """Waiting executions in admission order (rules 4 and 5)."""
        waiting = [r for r in self.records.values() if r.waiting and r.state not in TERMINAL_STATES]
        return sorted(
            waiting,
            key=lambda r: (
                -effective_class(r.priority or 2, r.created_at, now, aging_seconds),
                r.created_at,
                self._order[r.execution_id],
            ),
        )

    async def admit(self, limits: AdmissionLimits, now: datetime) -> list[str]:
        await asyncio.sleep(0)  # a commit is a suspension point, as in the real stores
        queue = self._queue(limits.aging_seconds, now)
        free = len(queue) if not limits.bounded else max(0, limits.max_running - self._tally().running)
        admitted = [r.execution_id for r in queue[:free]]
        for execution_id in admitted:
            self.records[execution_id] = dataclasses.replace(self.records[execution_id], waiting=False)
        return admitted

    async def queue_position(self, execution_id: str, aging_seconds: float, now: datetime) -> int:
        queue = [r.execution_id for r in self._queue(aging_seconds, now)]
        return queue.index(execution_id) + 1 if execution_id in queue else 0

    async def count_waiting(self) -> int:
        return self._tally().queued

    async def count_by_state(self) -> dict[int, int]:
        counts: dict[int, int] = {}
        for r in self.records.values():
            counts[r.state] = counts.get(r.state, 0) + 1
        return counts

    def add_commit_listener(self, listener: CommitListener) -> None:
        self._listeners.append(listener)

    # ---- the audit trail and deletion ----------------------------------------------------------

    def _index(self, record: ExecutionRecord, entries: list[tuple[int, datetime, tuple[str, str, str, bytes]]]) -> None:
        for sequence, at, (subject, action, reason, actor) in entries:
            self._audit_no += 1
            self.audit[self._audit_no] = AuditRecord(
                record.execution_id, record.user_id, sequence, at, action, reason, actor, self._audit_no
            )
            self._subjects[self._audit_no] = subject

    async def list_audit(self, query: AuditQuery) -> AuditPage:
        if not 0 <= query.page_size <= _MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be from 0 to {_MAX_PAGE_SIZE}, not {query.page_size}")
        after = decode_audit_token(query.page_token) if query.page_token else None
        size = query.page_size or DEFAULT_AUDIT_PAGE_SIZE
        picked = [
            (no, entry)
            for no, entry in sorted(self.audit.items(), reverse=True)
            if (not query.execution_id or entry.execution_id == query.execution_id)
            and (not query.user_id or entry.user_id == query.user_id)
            and (not query.subject or self._subjects[no] == query.subject)
            and (after is None or no < after)
        ]
        token = encode_audit_token(picked[size - 1][0]) if len(picked) > size else ""
        return AuditPage(records=[entry for _, entry in picked[:size]], next_page_token=token)

    async def delete_user_data(self, user_id: str, note: DeletionNote | None = None) -> Deletion:
        at = None if note is None else from_micros(to_micros(note.recorded_at))
        await asyncio.sleep(0)
        owned = sorted((r for r in self.records.values() if r.user_id == user_id), key=_position)
        unfinished = [(r.execution_id, r.state) for r in owned if r.state not in TERMINAL_STATES]
        if unfinished:
            raise UnfinishedExecutionsError(user_id, unfinished)
        deletion = self._delete([r.execution_id for r in owned])
        if note is not None and at is not None:
            self._audit_no += 1
            self.audit[self._audit_no] = AuditRecord(
                "", user_id, 0, at, USER_DATA_DELETED, deletion_reason(deletion), note.actor, self._audit_no
            )
            self._subjects[self._audit_no] = note.subject
        return deletion

    async def delete_finished_before(self, cutoff: datetime, limit: int) -> Deletion:
        if limit < 1:
            raise ValueError(f"limit must be at least 1, not {limit}")
        cutoff = from_micros(to_micros(cutoff))
        await asyncio.sleep(0)
        expired = [
            r.execution_id for r in self.records.values() if r.state in TERMINAL_STATES and r.updated_at < cutoff
        ]
        return self._delete(expired[:limit])

    def _delete(self, execution_ids: list[str]) -> Deletion:
        gone = set(execution_ids)
        events = sum(len(self._payloads.pop(execution_id, [])) for execution_id in execution_ids)
        for execution_id in execution_ids:
            del self.records[execution_id]
            self._parked.pop(execution_id, None)
            self._wanted.pop(execution_id, None)
        for no in [no for no, entry in self.audit.items() if entry.execution_id in gone]:
            del self.audit[no]
            del self._subjects[no]
        return Deletion(execution_ids=list(execution_ids), events=events)

    def inject_raw_event(self, execution_id: str, payload: bytes) -> None:
        """Stores raw bytes as the execution's next event (for tests of corrupt histories)."""
        record = self.records[execution_id]
        self._payloads[execution_id].append(payload)
        self.records[execution_id] = dataclasses.replace(record, last_sequence=record.last_sequence + 1)

    def _notify(self, execution_id: str, events: list[execution_pb2.ExecutionEvent]) -> None:
        for listener in self._listeners:
            try:
                listener(execution_id, events)
            except Exception:
                logger.exception("commit listener failed for execution %s", execution_id)


def _entries(events: Sequence[execution_pb2.ExecutionEvent]) -> list[tuple[int, datetime, tuple[str, str, str, bytes]]]:
    """(sequence, time, audit fields) of the events a client caused."""
    entries = []
    for event in events:
        fields = audit_fields(event)
        if fields is not None:
            entries.append((event.sequence, from_micros(event_micros(event)), fields))
    return entries


def _position(record: ExecutionRecord) -> tuple[int, str]:
    """Where a record sorts in lists: (created_at microseconds, execution_id)."""
    return to_micros(record.created_at.astimezone(UTC)), record.execution_id


def _age(record: ExecutionRecord) -> tuple[datetime, str]:
    return record.created_at, record.execution_id
