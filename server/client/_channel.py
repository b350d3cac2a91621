"""Channels to the orchestrator: plaintext or TLS (mTLS with a client certificate), a bearer token on every call."""

from __future__ import annotations

from collections.abc import AsyncIterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from agents_clients.tls import ClientTls, TlsFiles

RECONNECT_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.initial_reconnect_backoff_ms", 200),
    ("grpc.min_reconnect_backoff_ms", 200),
    ("grpc.max_reconnect_backoff_ms", 2000),
)
"""The channel's own reconnect backoff, shorter than gRPC's default (1 s growing to 120 s): a
server that restarts is found again within about two seconds, so a resumed watch does not wait
for a connection attempt scheduled long after the server came back."""


@dataclass(frozen=True)
class Tls:
    """How to reach the orchestrator over TLS.

    An empty ``Tls()`` verifies the server against the system's roots; ``ca`` against a CA of
    your own; ``cert`` and ``key`` add a client certificate (mTLS).
    """

    ca: str = ""
    """PEM file of the CA that verifies the server's certificate; empty: the system's roots."""
    cert: str = ""
    """PEM file of the client certificate, for a server that requires mTLS; empty for none."""
    key: str = ""
    """PEM file of that certificate's private key."""
    server_name: str = ""
    """The name the server's certificate must hold when it is not the target's host (an IP
    address, say); empty: the target's host."""

    def files(self) -> TlsFiles:
        """The files as agents_clients.tls reads them (errors name --tls-ca, --tls-cert, --tls-key)."""
        return TlsFiles(cert=self.cert, key=self.key, ca=self.ca)


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


def open_channel(
    target: str,
    *,
    token: str = "",
    tls: Tls | None = None,
    interceptors: Sequence[grpc.aio.ClientInterceptor] = (),
    options: Sequence[tuple[str, Any]] = RECONNECT_OPTIONS,
) -> grpc.aio.Channel:
    """A channel to the orchestrator at `target`, sending `token` as a bearer token on every call.

    Args:
        target: HOST:PORT.
        token: a bearer token (JWT) for a server run with ``--auth jwt``; empty for none.
        tls: TLS settings; None for plaintext (loopback, or a trusted network).
        interceptors: more client interceptors, run before the token's (a client span's, say).
        options: channel options.

    Raises:
        agents_clients.tls.TlsError: a TLS file is missing or wrong (the message names it).
    """
    chain = [*interceptors, *([_UnaryBearer(token), _StreamBearer(token)] if token else [])] or None
    if tls is None:
        return grpc.aio.insecure_channel(target, options=tuple(options), interceptors=chain)
    credentials = ClientTls(tls.files())
    named = [("grpc.ssl_target_name_override", tls.server_name)] if tls.server_name else []
    return credentials.channel(target, [*options, *named], chain)
