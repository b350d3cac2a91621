"""The CLI's workflow registry commands: workflows register | list | show | deprecate (admins)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from baton.v1 import registry_pb2
from rich.table import Table
from rich.text import Text

from server.cli._common import EXIT_OK, RPC_TIMEOUT, UsageError, ask, print_json
from server.cli._format import make_console, when
from server.planner import MAX_DEFINITION_BYTES

R = registry_pb2


def state_of(info: registry_pb2.WorkflowDefinitionInfo) -> str:
    """One word for where a version stands: latest, available, deprecated or unusable."""
    if info.problem:
        return "unusable"
    if info.deprecated:
        return "deprecated"
    return "latest" if info.latest else "available"


def render_versions(versions: list[registry_pb2.WorkflowDefinitionInfo]) -> Table:
    """A table of versions, in the order given; text is shown as it is (no markup)."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    for column in ("type", "version", "state", "origin", "registered (UTC)", "by", "steps", "note"):
        table.add_column(column, justify="right" if column == "steps" else "left")
    for info in versions:
        note = info.problem or info.deprecation_reason or info.description
        table.add_row(
            Text(info.workflow_type),
            Text(info.version),
            state_of(info),
            "built-in" if info.builtin else "registered",
            when(info.registered_at).strftime("%Y-%m-%d %H:%M:%S"),
            Text(info.registered_by or "-"),
            str(len(info.step_ids)),
            Text(note[:80] + ("…" if len(note) > 80 else "")),
        )
    return table


def cmd_register(args: argparse.Namespace) -> int:
    """`baton workflows register FILE`: registers the definition in FILE as a new version."""
    path = Path(args.file)
    try:
        size = path.stat().st_size
        if size > MAX_DEFINITION_BYTES:
            raise UsageError(f"{path}: {size} bytes; a definition may take at most {MAX_DEFINITION_BYTES}")
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{path}: cannot be read: {error}") from None
    request = R.RegisterWorkflowRequest(definition_yaml=text, version=args.version or "")
    reply: registry_pb2.RegisterWorkflowResponse = ask(
        args, lambda client: client.stub.RegisterWorkflow(request, timeout=RPC_TIMEOUT)
    )
    if args.json:
        print_json(reply)
        return EXIT_OK
    info = reply.workflow
    if reply.created:
        latest = "; new executions of the type get it" if info.latest else ""
        print(f"registered {info.workflow_type} {info.version} ({len(info.step_ids)} steps{latest})")
    else:
        print(f"{info.workflow_type} {info.version} is already registered with this definition (nothing changed)")
    return EXIT_OK


def cmd_list(args: argparse.Namespace) -> int:
    """`baton workflows list [TYPE]`: every registered version, by type, newest first."""
    request = R.ListWorkflowsRequest(workflow_type=args.workflow_type or "")
    reply: registry_pb2.ListWorkflowsResponse = ask(
        args, lambda client: client.stub.ListWorkflows(request, timeout=RPC_TIMEOUT)
    )
    if args.json:
        print_json(reply)
        return EXIT_OK
    console = make_console()
    if not reply.workflows:
        console.print("no workflows registered", markup=False)
        return EXIT_OK
    console.print(render_versions(list(reply.workflows)))
    return EXIT_OK


def cmd_show(args: argparse.Namespace) -> int:
    """`baton workflows show TYPE [--version V]`: one version and its definition."""
    request = R.GetWorkflowRequest(workflow_type=args.workflow_type, version=args.version or "")
    info: registry_pb2.WorkflowDefinitionInfo = ask(
        args, lambda client: client.stub.GetWorkflow(request, timeout=RPC_TIMEOUT)
    )
    if args.json:
        print_json(info)
        return EXIT_OK
    console = make_console()
    origin = "built-in" if info.builtin else f"registered by {info.registered_by or 'anonymous'}"
    registered = when(info.registered_at).strftime("%Y-%m-%d %H:%M:%S")
    header = f"{info.workflow_type} {info.version} ({state_of(info)}, {origin}, {registered} UTC)"
    console.print(header, markup=False, highlight=False)
    if info.deprecated:
        reason = f": {info.deprecation_reason}" if info.deprecation_reason else ""
        console.print(f"deprecated {when(info.deprecated_at):%Y-%m-%d %H:%M:%S} UTC{reason}", markup=False)
    if info.problem:
        console.print(f"unusable: {info.problem}", markup=False)
    console.print(f"steps: {', '.join(info.step_ids) or '-'}", markup=False, highlight=False)
    console.print(f"digest: {info.digest}", markup=False, highlight=False)
    print()
    print(info.definition_yaml.rstrip("\n"))
    return EXIT_OK


def cmd_deprecate(args: argparse.Namespace) -> int:
    """`baton workflows deprecate TYPE --version V`: refuses new executions of the version."""
    request = R.DeprecateWorkflowRequest(workflow_type=args.workflow_type, version=args.version, reason=args.reason)
    info: registry_pb2.WorkflowDefinitionInfo = ask(
        args, lambda client: client.stub.DeprecateWorkflow(request, timeout=RPC_TIMEOUT)
    )
    if args.json:
        print_json(info)
        return EXIT_OK
    print(
        f"deprecated {info.workflow_type} {info.version}: new executions naming it are refused; "
        "running ones finish with it"
    )
    return EXIT_OK


def add_workflow_commands(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    target: Callable[[argparse.ArgumentParser], None],
) -> None:
    """Adds `workflows` and its subcommands; `target` adds the client options (--target, --token, TLS)."""
    p = commands.add_parser(
        "workflows",
        help="the workflow registry: register, list, show and deprecate versions (admins)",
        description="Manage versioned workflow definitions. A version is immutable once registered; executions "
        "are pinned to the version they started with (see the README, 'Workflow registry').",
    )
    sub = p.add_subparsers(dest="workflows_command", required=True, metavar="COMMAND")

    q = sub.add_parser(
        "register",
        help="register a definition (YAML) as a new version",
        description="Register the definition in FILE. The version is --version, else the file's version key, else "
        "the next patch version after the type's highest (1.0.0 for a new type). Registering the identical "
        "definition again changes nothing.",
    )
    q.add_argument("file", metavar="FILE.yaml")
    q.add_argument("--version", default="", metavar="V", help="the version, MAJOR.MINOR.PATCH")
    q.add_argument("--json", action="store_true", help="print the RegisterWorkflowResponse as JSON")
    target(q)
    q.set_defaults(handler=cmd_register)

    q = sub.add_parser("list", help="list registered versions", description="List every version, newest first.")
    q.add_argument("workflow_type", nargs="?", default="", metavar="TYPE", help="only this workflow type's versions")
    q.add_argument("--json", action="store_true", help="print the ListWorkflowsResponse as JSON")
    target(q)
    q.set_defaults(handler=cmd_list)

    q = sub.add_parser(
        "show", help="show one version and its definition", description="Print a version's facts and its YAML."
    )
    q.add_argument("workflow_type", metavar="TYPE")
    q.add_argument("--version", default="", metavar="V", help="the version (default: the latest)")
    q.add_argument("--json", action="store_true", help="print the WorkflowDefinitionInfo as JSON")
    target(q)
    q.set_defaults(handler=cmd_show)

    q = sub.add_parser(
        "deprecate",
        help="deprecate a version: new executions are refused, running ones finish",
        description="Deprecate a version. Executions naming it are refused; those already started finish with it; "
        "executions naming no version get the highest version still allowed.",
    )
    q.add_argument("workflow_type", metavar="TYPE")
    q.add_argument("--version", required=True, metavar="V", help="the version to deprecate")
    q.add_argument("--reason", default="", help="why, shown with the version and in refusals")
    q.add_argument("--json", action="store_true", help="print the WorkflowDefinitionInfo as JSON")
    target(q)
    q.set_defaults(handler=cmd_deprecate)
