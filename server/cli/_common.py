"""What every CLI command shares: exit statuses, errors, the orchestrator's address and one-call RPCs."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from typing import Any, TypeVar

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
TOKEN_ENV = "BATON_TOKEN"
"""The environment variable holding the bearer token when --token is not given."""

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


def _with_token(details: grpc.aio.ClientCallDetails, token: str) -> grpc.aio.ClientCallDetails:
    metadata = grpc.aio.Metadata(*(details.metadata or ()), ("authorization", f"Bearer {token}"))
    return grpc.aio.ClientCallDetails(
        details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
    )


# Two classes: grpc.aio files an interceptor under the first call type it implements only.
class _UnaryBearer(grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_unary(self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any) -> Any:
        return await continuation(_with_token(details, self.token), request)


class _StreamBearer(grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    def __init__(self, token: str) -> None:
        self.token = token

    async def intercept_unary_stream(
        self, continuation: Any, details: grpc.aio.ClientCallDetails, request: Any
    ) -> AsyncIterable[Any]:
        return await continuation(_with_token(details, self.token), request)  # type: ignore[no-any-return]


def token_of(args: argparse.Namespace) -> str:
    """The bearer token: --token, else $BATON_TOKEN, else none (empty)."""
    return str(getattr(args, "token", None) or os.environ.get(TOKEN_ENV, "")).strip()


def connect(args: argparse.Namespace, extra: Sequence[grpc.aio.ClientInterceptor] = ()) -> grpc.aio.Channel:
    """A channel to the orchestrator at --target, sending the bearer token (token_of) on every call.

    TLS when --tls, --tls-ca or --tls-cert is given.

    Args:
        extra: interceptors that run before the token's (a client span's, say).

    Raises:
        UsageError: a TLS file is missing or wrong (the message names the flag and the file).
    """
    token = token_of(args)
    interceptors = [*extra, *([_UnaryBearer(token), _StreamBearer(token)] if token else [])] or None
    files = TlsFiles(cert=args.tls_cert or "", key=args.tls_key or "", ca=args.tls_ca or "")
    if not (args.tls or files.ca or files.identity):
        return grpc.aio.insecure_channel(args.target, interceptors=interceptors)
    try:
        tls = ClientTls(files)
    except TlsError as exc:
        raise UsageError(str(exc)) from None
    # A certificate whose names do not include the host dialled (an IP address, say) is checked
    # against the name given instead.
    options = [("grpc.ssl_target_name_override", args.tls_server_name)] if args.tls_server_name else []
    return tls.channel(args.target, options, interceptors)


def ask(args: argparse.Namespace, rpc: Callable[[orchestrator_pb2_grpc.OrchestratorStub], Awaitable[_Reply]]) -> _Reply:
    """Makes one unary call to the orchestrator at --target (with the token) and returns its answer."""

    async def call() -> _Reply:
        async with connect(args) as channel:
            return await rpc(orchestrator_stub(channel))

    return asyncio.run(call())


def print_json(message: Message) -> None:
    """Prints a message as indented JSON with proto field names."""
    print(json.dumps(to_json(message), indent=2))
