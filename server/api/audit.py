"""The audit trail at the API's edge: who a request's actor is, and AuditEntry pages that fit a reply.

Rules:
1. The actor of a client's request is built here, once: the authenticated principal's subject
   and roles (`server.auth.current_principal()`), the peer address gRPC saw, and, only with
   authentication off, the user_id the request claimed (unverified, so kept apart from subject).
   The engine stamps it on the one event the request causes.
2. A page of entries never exceeds the reply budget (server.api.sizing): entries are added until
   the next would not fit, and the page token then resumes after the last one sent.
"""

from __future__ import annotations

import grpc
from baton.v1 import execution_pb2, orchestrator_pb2
from google.protobuf.message import DecodeError

from server.api.errors import invalid
from server.api.limits import MAX_STRING_BYTES
from server.auth import current_principal
from server.store import AuditPage, AuditRecord, audit_page_token

E = execution_pb2


def actor_of(context: grpc.aio.ServicerContext, claimed_user: str = "") -> execution_pb2.Actor:
    """The actor of the request being served (rule 1).

    Args:
        context: the RPC's context (its peer is recorded).
        claimed_user: the user_id the request names as its own, recorded only with
            authentication off; empty for requests that name none (controls).
    """
    principal = current_principal()
    actor = E.Actor(peer=_peer(context))
    if principal.authenticated:
        actor.subject = principal.subject
        actor.roles.extend(sorted(role.value for role in principal.roles))
    else:
        actor.claimed_user = claimed_user
    return actor


def _peer(context: grpc.aio.ServicerContext) -> str:
    try:
        peer = context.peer()
    except Exception:  # a context without a transport (an in-process call) has no peer
        return ""
    return peer if isinstance(peer, str) else ""


def check_exact(field: str, value: str) -> None:
    """Bounds a string a request matches exactly (a filter, a user to delete) as any stored string is;
    NUL is refused as in any key (server.api.limits.check_key: no store can hold it)."""
    size = len(value.encode("utf-8", "surrogatepass"))
    if size > MAX_STRING_BYTES:
        raise invalid(field, f"at most {MAX_STRING_BYTES} bytes, got {size}")
    if "\x00" in value:
        raise invalid(field, "must not contain NUL (U+0000)")


def audit_entry(record: AuditRecord) -> orchestrator_pb2.AuditEntry:
    """The AuditEntry of a stored record."""
    entry = orchestrator_pb2.AuditEntry(
        execution_id=record.execution_id,
        user_id=record.user_id,
        sequence=record.sequence,
        action=record.action,
        reason=record.reason,
    )
    entry.time.FromDatetime(record.recorded_at)
    try:
        entry.actor.ParseFromString(record.actor)
    except DecodeError:
        entry.actor.Clear()  # written by the store itself; a damaged row still lists its entry
    return entry


def audit_page(page: AuditPage, budget: int) -> orchestrator_pb2.ListAuditEventsResponse:
    """A reply of the page's entries that fits `budget` bytes (rule 2)."""
    reply = orchestrator_pb2.ListAuditEventsResponse()
    size = 0
    for index, record in enumerate(page.records):
        entry = audit_entry(record)
        # Each entry costs its size plus a tag and a length prefix of at most 6 bytes.
        size += entry.ByteSize() + 6
        if size > budget and index > 0:
            reply.next_page_token = audit_page_token(page.records[index - 1].audit_no)
            return reply
        reply.entries.append(entry)
    reply.next_page_token = page.next_page_token
    return reply
