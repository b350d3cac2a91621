"""A typed async client of the baton orchestrator: submit, watch (resumed by sequence), control, read.

from server.client import BatonClient

async with BatonClient("127.0.0.1:50051") as client:
    execution = await client.submit("document_analysis", user_id="u1")
    async for update in client.watch(execution.execution_id):
        ...
"""

from server.client._channel import RECONNECT_OPTIONS, Tls, open_channel
from server.client._client import SIGNALS, VIEWS, BatonClient, ViewName
from server.client._errors import (
    AlreadyExists,
    BatonError,
    DeadlineExceeded,
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    ResourceExhausted,
    RpcError,
    Unauthenticated,
    Unavailable,
    WatchError,
    from_rpc_error,
)
from server.client._outputs import StepResult, unpack
from server.client._watch import TERMINAL, Reconnect, Watch

__all__ = [
    # The client and what it is built from.
    "BatonClient",
    "Reconnect",
    "Tls",
    "RECONNECT_OPTIONS",
    "open_channel",
    # What it returns.
    "StepResult",
    "Watch",
    "unpack",
    # Names and states.
    "SIGNALS",
    "TERMINAL",
    "VIEWS",
    "ViewName",
    # Errors: every one is a BatonError; RpcError's subclasses keep the status code and details.
    "AlreadyExists",
    "BatonError",
    "DeadlineExceeded",
    "FailedPrecondition",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "RpcError",
    "Unauthenticated",
    "Unavailable",
    "WatchError",
    "from_rpc_error",
]
