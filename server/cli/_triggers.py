"""The CLI's event-driven trigger commands: `baton events publish` and `baton triggers add|list|delete`."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

from baton.v1 import triggers_pb2
from rich.table import Table
from rich.text import Text

from server.cli._common import EXIT_OK, RPC_TIMEOUT, UsageError, ask, print_json
from server.cli._format import make_console
from server.client import BatonClient
from server.triggers import RuleError, rule_from_yaml

MAX_RULE_FILE = 64 * 1024
"""Bytes of a rule file read (a rule is at most 16 KiB serialized)."""

Target = Callable[[argparse.ArgumentParser], None]
"""Adds --target, --token and the TLS options to a command (server.cli._parser)."""


def add_trigger_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser], target: Target) -> None:
    """Adds `events publish` and `triggers add|list|delete`."""
    p = commands.add_parser(
        "events",
        help="publish events that start workflows (publishers)",
        description="Publish events to the orchestrator's trigger rules (see `baton triggers`).",
    )
    events = p.add_subparsers(dest="events_command", required=True, metavar="COMMAND")
    p = events.add_parser(
        "publish",
        help="publish an event",
        description="Publish an event: every trigger rule of its type whose condition holds starts its workflow for "
        "the subject. Publishing an event id again starts nothing new and prints what the first publication "
        "started. Needs the publisher or admin role.",
    )
    p.add_argument("event_type", metavar="TYPE", help="the event's type, e.g. job.posted")
    p.add_argument("--subject", required=True, metavar="USER", help="the user the event is about (owns what starts)")
    p.add_argument("--payload", default="{}", metavar="JSON", help="the event's data as a JSON object (default {})")
    p.add_argument("--id", default="", metavar="ID", help="the event's id, its deduplication key (default: a new one)")
    p.add_argument("--json", action="store_true", help="print the PublishEventResponse as JSON (proto field names)")
    target(p)
    p.set_defaults(handler=cmd_publish)

    p = commands.add_parser(
        "triggers",
        help="register, list and delete trigger rules (admins)",
        description="Trigger rules map published events to workflows (see the README, Event-driven triggers).",
    )
    triggers = p.add_subparsers(dest="triggers_command", required=True, metavar="COMMAND")
    p = triggers.add_parser(
        "add",
        help="register a rule from a YAML file",
        description="Register the rule a YAML file describes (server/triggers/examples has two). A rule of the same "
        "name with another definition is refused unless --replace.",
    )
    p.add_argument("file", metavar="FILE.yaml")
    p.add_argument("--replace", action="store_true", help="replace a rule of the same name (its version goes up)")
    p.add_argument("--json", action="store_true", help="print the registered TriggerRule as JSON")
    target(p)
    p.set_defaults(handler=cmd_triggers_add)
    p = triggers.add_parser("list", help="list the rules", description="List the trigger rules by name.")
    p.add_argument("--type", default="", metavar="TYPE", help="only the rules of this event type")
    p.add_argument("--json", action="store_true", help="print the ListTriggerRulesResponse as JSON")
    target(p)
    p.set_defaults(handler=cmd_triggers_list)
    p = triggers.add_parser("delete", help="delete a rule", description="Delete a trigger rule by name.")
    p.add_argument("name", metavar="NAME")
    target(p)
    p.set_defaults(handler=cmd_triggers_delete)


def cmd_publish(args: argparse.Namespace) -> int:
    """`baton events publish TYPE --subject USER [--payload JSON] [--id ID]`."""
    try:
        payload = json.loads(args.payload)
    except ValueError as error:
        raise UsageError(f"--payload: not JSON: {error}") from None
    if not isinstance(payload, dict):
        raise UsageError(f"--payload: a JSON object, got {type(payload).__name__}")
    request = triggers_pb2.PublishEventRequest(event_id=args.id, event_type=args.event_type, subject=args.subject)
    request.payload.update(payload)

    async def publish(client: BatonClient) -> triggers_pb2.PublishEventResponse:
        reply: triggers_pb2.PublishEventResponse = await client.stub.PublishEvent(request, timeout=RPC_TIMEOUT)
        return reply

    reply = ask(args, publish)
    if args.json:
        print_json(reply)
        return EXIT_OK
    console = make_console()
    seen = "published before: nothing new started" if reply.duplicate else "published"
    console.print(f"event {reply.event_id} {seen}", markup=False)
    if not reply.executions:
        console.print("no rule matched: nothing started", markup=False)
    for execution in reply.executions:
        state = "started" if execution.created else "started earlier"
        console.print(
            f"{execution.execution_id}  {execution.workflow_type}  (rule {execution.rule}, {state})", markup=False
        )
    return EXIT_OK


def cmd_triggers_add(args: argparse.Namespace) -> int:
    """`baton triggers add FILE.yaml [--replace]`."""
    path = Path(args.file)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_RULE_FILE + 1)
    except OSError as error:
        raise UsageError(f"{args.file}: {error.strerror or error}") from None
    if len(data) > MAX_RULE_FILE:
        raise UsageError(f"{args.file}: larger than {MAX_RULE_FILE // 1024} KiB; a rule is far smaller")
    try:
        rule = rule_from_yaml(data.decode("utf-8"), source=args.file)
    except (RuleError, UnicodeDecodeError) as error:
        raise UsageError(str(error)) from None
    request = triggers_pb2.RegisterTriggerRuleRequest(rule=rule, replace=args.replace)

    async def register(client: BatonClient) -> triggers_pb2.TriggerRule:
        reply: triggers_pb2.TriggerRule = await client.stub.RegisterTriggerRule(request, timeout=RPC_TIMEOUT)
        return reply

    stored = ask(args, register)
    if args.json:
        print_json(stored)
        return EXIT_OK
    make_console().print(
        f"rule {stored.name} version {stored.version}: {stored.event_type} starts {stored.workflow_type}", markup=False
    )
    return EXIT_OK


def cmd_triggers_list(args: argparse.Namespace) -> int:
    """`baton triggers list [--type TYPE]`."""

    async def fetch(client: BatonClient) -> triggers_pb2.ListTriggerRulesResponse:
        request = triggers_pb2.ListTriggerRulesRequest(event_type=args.type)
        reply: triggers_pb2.ListTriggerRulesResponse = await client.stub.ListTriggerRules(request, timeout=RPC_TIMEOUT)
        return reply

    reply = ask(args, fetch)
    if args.json:
        print_json(reply)
        return EXIT_OK
    console = make_console()
    if not reply.rules:
        console.print("no trigger rules", markup=False)
        return EXIT_OK
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("name", "version", "event type", "condition", "starts"):
        table.add_column(column, justify="right" if column == "version" else "left")
    for rule in reply.rules:
        table.add_row(
            Text(rule.name),
            str(rule.version),
            Text(rule.event_type),
            Text(rule.condition or "-"),
            Text(rule.workflow_type),
        )
    console.print(table)
    return EXIT_OK


def cmd_triggers_delete(args: argparse.Namespace) -> int:
    """`baton triggers delete NAME`."""

    async def delete(client: BatonClient) -> triggers_pb2.DeleteTriggerRuleResponse:
        request = triggers_pb2.DeleteTriggerRuleRequest(name=args.name)
        reply: triggers_pb2.DeleteTriggerRuleResponse = await client.stub.DeleteTriggerRule(
            request, timeout=RPC_TIMEOUT
        )
        return reply

    deleted = ask(args, delete)
    make_console().print(f"deleted rule {deleted.rule.name} (version {deleted.rule.version})", markup=False)
    return EXIT_OK


__all__ = ["add_trigger_commands"]
