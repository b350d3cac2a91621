"""The server interceptor that authenticates every RPC's bearer token and applies the policy's role gate.

Rules:

- grpc.health.v1 and server reflection stay open: probes and load balancers carry no token.
- Every other RPC needs `authorization: Bearer <JWT>` metadata, verified by the verifier
  (server.auth.verifier); missing, several, or not acceptable → UNAUTHENTICATED, the message
  saying why and never quoting the token.
- An authenticated caller without a role the policy (server.auth.policy) names for the RPC, or
  any caller of an RPC the policy does not name (of any service but the open ones) →
  PERMISSION_DENIED: a new RPC is closed until the policy names it.
- The principal is set in the context variable inside the handler's own behaviour (not in
  `intercept_service`, which runs in another task), so the servicer reads it with
  `current_principal()` for the whole call, streams included.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Protocol

import grpc

from agents_clients.handlers import with_preamble
from server.auth import Principal, set_principal
from server.auth.policy import POLICY, Rule
from server.auth.verifier import AuthenticationError

logger = logging.getLogger(__name__)

OPEN_SERVICES = frozenset(
    {
        "grpc.health.v1.Health",
        "grpc.reflection.v1alpha.ServerReflection",
        "grpc.reflection.v1.ServerReflection",
    }
)
"""Services every caller may use without a token."""
_BEARER = "bearer "


class TokenVerifier(Protocol):
    """What the interceptor needs of a verifier."""

    def verify(self, token: str) -> Principal:
        """The principal a token authenticates; raises AuthenticationError when it does not."""
        ...


class Refusal(Exception):
    """An RPC the interceptor refuses, with its status."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def bearer_token(metadata: Sequence[tuple[str, str | bytes]] | None) -> str:
    """The bearer token of a call's metadata.

    Raises:
        Refusal: UNAUTHENTICATED when there is none, several, or another scheme.
    """
    values = [value for key, value in metadata or () if key.lower() == "authorization"]
    if not values:
        raise Refusal(
            grpc.StatusCode.UNAUTHENTICATED,
            "authorization: a bearer token is required (metadata `authorization: Bearer <JWT>`)",
        )
    if len(values) > 1:
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "authorization: more than one authorization header")
    value = values[0]
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if not text[: len(_BEARER)].lower() == _BEARER:
        raise Refusal(grpc.StatusCode.UNAUTHENTICATED, "authorization: expected `Bearer <JWT>`")
    return text[len(_BEARER) :].strip()


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Authenticates bearer tokens and applies the policy's role gate (see the module docstring)."""

    def __init__(self, verifier: TokenVerifier, policy: Mapping[str, Rule] = POLICY) -> None:
        """Wires the interceptor.

        Args:
            verifier: checks tokens.
            policy: full method name → rule (default the server's one table).
        """
        self.verifier = verifier
        self.policy = policy

    def admit(self, method: str, metadata: Sequence[tuple[str, str | bytes]] | None) -> Principal:
        """The principal of a call of `method`, if it may make the call.

        Raises:
            Refusal: UNAUTHENTICATED or PERMISSION_DENIED, saying why.
        """
        token = bearer_token(metadata)
        try:
            principal = self.verifier.verify(token)
        except AuthenticationError as error:
            raise Refusal(grpc.StatusCode.UNAUTHENTICATED, f"authorization: {error}") from None
        rule = self.policy.get(method)
        name = method.rpartition("/")[2]
        if rule is None:
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"{name}: no access rule names this method")
        if not rule.admits(principal):
            raise Refusal(grpc.StatusCode.PERMISSION_DENIED, f"{name} needs {rule.needed()}")
        return principal

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method: str = handler_call_details.method
        service = method.lstrip("/").partition("/")[0]
        if handler is None or service in OPEN_SERVICES:
            return handler
        metadata = handler_call_details.invocation_metadata
        return _guarded(handler, lambda: self.admit(method, metadata))


async def _admitted(admit: Callable[[], Principal], context: grpc.aio.ServicerContext) -> None:
    try:
        set_principal(admit())
    except Refusal as refusal:
        logger.debug("refused: %s", refusal.message)
        await context.abort(refusal.code, refusal.message)


def _guarded(handler: grpc.RpcMethodHandler, admit: Callable[[], Principal]) -> grpc.RpcMethodHandler:
    """The handler with the admission (and the principal set) in front of its behaviour."""

    async def admitted(request: object, context: grpc.aio.ServicerContext) -> None:
        await _admitted(admit, context)

    return with_preamble(handler, admitted)


__all__ = ["OPEN_SERVICES", "AuthInterceptor", "Refusal", "TokenVerifier", "bearer_token"]
