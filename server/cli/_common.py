"""What every CLI command shares: exit statuses, errors, the orchestrator's address and one-call RPCs."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import TypeVar

import grpc
from baton.v1 import orchestrator_pb2_grpc
from google.protobuf.message import Message

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


def ask(target: str, rpc: Callable[[orchestrator_pb2_grpc.OrchestratorStub], Awaitable[_Reply]]) -> _Reply:
    """Makes one unary call to the orchestrator at `target` and returns its answer."""

    async def call() -> _Reply:
        async with grpc.aio.insecure_channel(target) as channel:
            return await rpc(orchestrator_stub(channel))

    return asyncio.run(call())


def print_json(message: Message) -> None:
    """Prints a message as indented JSON with proto field names."""
    print(json.dumps(to_json(message), indent=2))
