"""What every CLI command shares: exit statuses, errors, the orchestrator's address and one-call RPCs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc
from google.protobuf.message import Message

from agents_clients.tls import TlsError
from server.cli._format import to_json
from server.client import BatonClient, Tls, from_rpc_error

DEFAULT_TARGET = "127.0.0.1:50051"
"""Where the client commands find the orchestrator unless --target says otherwise."""
RPC_TIMEOUT = 10.0
"""The deadline, in seconds, of every unary call the CLI makes."""
TOKEN_ENV = "BATON_TOKEN"
"""The environment variable holding the bearer token when --token is not given."""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

_Reply = TypeVar("_Reply")


class UsageError(Exception):
    """The command line or a file it names is wrong; printed as `error: …` with exit status 2."""


class CommandError(Exception):
    """A command could not do its job (a server could not bind its port, say); `error: …`, exit status 1."""


def token_of(args: argparse.Namespace) -> str:
    """The bearer token: --token, else $BATON_TOKEN, else none (empty)."""
    return str(getattr(args, "token", None) or os.environ.get(TOKEN_ENV, "")).strip()


def connect(args: argparse.Namespace, extra: Sequence[grpc.aio.ClientInterceptor] = ()) -> BatonClient:
    """A client of the orchestrator at --target, sending the bearer token (token_of) on every call.

    TLS when --tls, --tls-ca or --tls-cert is given.

    Args:
        extra: interceptors that run before the token's (a client span's, say).

    Raises:
        UsageError: a TLS file is missing or wrong (the message names the flag and the file).
    """
    tls: Tls | None = None
    if args.tls or args.tls_ca or args.tls_cert or args.tls_key:
        names = {"ca": args.tls_ca, "cert": args.tls_cert, "key": args.tls_key, "server_name": args.tls_server_name}
        tls = Tls(**{name: value or "" for name, value in names.items()})
    try:
        return BatonClient(args.target, token=token_of(args), tls=tls, timeout=RPC_TIMEOUT, interceptors=extra)
    except TlsError as exc:
        raise UsageError(str(exc)) from None


def ask(args: argparse.Namespace, rpc: Callable[[BatonClient], Awaitable[_Reply]]) -> _Reply:
    """Makes one call to the orchestrator at --target (with the token) and returns its answer.

    Raises:
        server.client.RpcError: the server answered an error (a call on `client.stub`'s too).
    """

    async def call() -> _Reply:
        async with connect(args) as client:
            try:
                return await rpc(client)
            except grpc.aio.AioRpcError as exc:
                raise from_rpc_error(exc) from exc

    return asyncio.run(call())


def print_json(message: Message) -> None:
    """Prints a message as indented JSON with proto field names."""
    print(json.dumps(to_json(message), indent=2))
