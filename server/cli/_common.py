"""What every CLI command shares: exit statuses, errors, the orchestrator's address and one-call RPCs."""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from baton.v1 import orchestrator_pb2_grpc
from google.protobuf.message import Message

from agents_clients.tls import ClientTls, TlsError, TlsFiles
from server.cli._format import to_json

DEFAULT_TARGET = "127.0.0.1:50051"
"""Where the client commands find the orchestrator unless --target says otherwise."""
RPC_TIMEOUT = 10.0
"""The deadline, in seconds, of every unary call the CLI makes."""
MAX_RECONNECTS = 20
"""Consecutive failed attempts to resume a broken watch before giving up."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_Reply = TypeVar("_Reply", bound=Message)


class UsageError(Exception):
    """The command line or a file it names is wrong; printed as `error: …` with exit status 2."""


class CommandError(Exception):
    """A command could not do its job (a server could not bind its port, say); `error: …`, exit status 1."""


def orchestrator_stub(channel: grpc.aio.Channel) -> orchestrator_pb2_grpc.OrchestratorStub:
    """Returns an Orchestrator stub on a channel (the generated stubs are untyped)."""
    return orchestrator_pb2_grpc.OrchestratorStub(channel)  # type: ignore[no-untyped-call]


def open_channel(args: argparse.Namespace) -> grpc.aio.Channel:
    """A channel to the orchestrator at --target: TLS when --tls, --tls-ca or --tls-cert is given.

    Raises:
        UsageError: a TLS file is missing or wrong (the message names the flag and the file).
    """
    files = TlsFiles(cert=args.tls_cert or "", key=args.tls_key or "", ca=args.tls_ca or "")
    if not (args.tls or files.ca or files.identity):
        return grpc.aio.insecure_channel(args.target)
    try:
        tls = ClientTls(files)
    except TlsError as exc:
        raise UsageError(str(exc)) from None
    # A certificate whose names do not include the host dialled (an IP address, say) is checked
    # against the name given instead.
    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name else []
    return tls.channel(args.target, options)


def ask(args: argparse.Namespace, rpc: Callable[[orchestrator_pb2_grpc.OrchestratorStub], Awaitable[_Reply]]) -> _Reply:
    """Makes one unary call to the orchestrator at --target and returns its answer."""

    async def call() -> _Reply:
        async with open_channel(args) as channel:
            return await rpc(orchestrator_stub(channel))

    return asyncio.run(call())


def print_json(message: Message) -> None:
    """Prints a message as indented JSON with proto field names."""
    print(json.dumps(to_json(message), indent=2))
