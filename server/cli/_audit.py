"""The CLI's audit-trail commands: audit (operators) and delete-user (admins)."""

from __future__ import annotations

import argparse

from baton.v1 import execution_pb2, orchestrator_pb2
from rich.table import Table
from rich.text import Text

from server.cli._common import EXIT_OK, RPC_TIMEOUT, UsageError, ask, print_json
from server.cli._format import make_console, when
from server.client import BatonClient

MAX_LIMIT = 100_000
"""The most entries `baton audit --limit` fetches."""


def who(actor: execution_pb2.Actor) -> str:
    """The actor in a few words: `alice (admin)`, or `claims u1` with authentication off."""
    if actor.subject:
        roles = f" ({', '.join(actor.roles)})" if actor.roles else ""
        return f"{actor.subject}{roles}"
    if actor.claimed_user:
        return f"anonymous, claims {actor.claimed_user}"
    return "anonymous"


def render_audit(entries: list[orchestrator_pb2.AuditEntry]) -> Table:
    """A table of entries, newest first as given; text is shown as it is (no markup)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("time (UTC)", "who", "from", "action", "execution", "#", "owner", "reason"):
        table.add_column(column, justify="right" if column == "#" else "left")
    for entry in entries:
        table.add_row(
            when(entry.time).strftime("%Y-%m-%d %H:%M:%S"),
            Text(who(entry.actor)),
            Text(entry.actor.peer),
            Text(entry.action),
            Text(entry.execution_id or "-"),
            str(entry.sequence) if entry.sequence else "",
            Text(entry.user_id),
            Text(entry.reason),
        )
    return table


def cmd_audit(args: argparse.Namespace) -> int:
    """`baton audit`: lists the audit trail, newest first, page by page up to --limit entries."""
    if not 1 <= args.limit <= MAX_LIMIT:
        raise UsageError(f"--limit: expected 1 to {MAX_LIMIT}, got {args.limit}")

    async def fetch(client: BatonClient) -> orchestrator_pb2.ListAuditEventsResponse:
        collected = orchestrator_pb2.ListAuditEventsResponse()
        token = ""
        while len(collected.entries) < args.limit:
            request = orchestrator_pb2.ListAuditEventsRequest(
                subject=args.subject,
                execution_id=args.execution,
                user_id=args.user,
                page_size=min(1000, args.limit - len(collected.entries)),
                page_token=token,
            )
            page = await client.stub.ListAuditEvents(request, timeout=RPC_TIMEOUT)
            collected.entries.extend(page.entries)
            token = page.next_page_token
            if not token:
                break
        collected.next_page_token = token
        return collected

    reply = ask(args, fetch)
    if args.json:
        print_json(reply)
        return EXIT_OK
    console = make_console()
    if not reply.entries:
        console.print("no audit entries", markup=False)
        return EXIT_OK
    console.print(render_audit(list(reply.entries)))
    if reply.next_page_token:
        console.print(f"(more: raise --limit past {args.limit} to see older entries)", markup=False)
    return EXIT_OK


def cmd_delete_user(args: argparse.Namespace) -> int:
    """`baton delete-user`: deletes everything stored about a user."""
    if not args.user_id:
        raise UsageError("USER: required")
    request = orchestrator_pb2.DeleteUserDataRequest(user_id=args.user_id)
    reply: orchestrator_pb2.DeleteUserDataResponse = ask(
        args, lambda client: client.stub.DeleteUserData(request, timeout=RPC_TIMEOUT)
    )
    print(
        f"deleted user {args.user_id}: {reply.executions_deleted} executions, {reply.events_deleted} events"
        " (the deletion is recorded in the audit trail)"
    )
    return EXIT_OK
