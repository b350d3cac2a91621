"""Verifying bearer tokens: a JWT's signature, expiry, issuer and audience, then its subject and roles.

Rules:

- A token is accepted only when it is signed by one of the key file's public keys with one of
  that key's algorithms (server.auth.keys), has `exp` (not past, with LEEWAY_SECONDS for clock
  skew) and a non-empty string `sub` of at most MAX_SUBJECT characters, and, when the server
  is configured with them, the expected `iss` and an `aud` naming the expected audience. A
  token that names an audience when the server expects none is refused too (RFC 7519 §4.1.3:
  a token for another service is not one for this one).
- `roles` is optional (absent or empty: a user); when present it must be a list of the role
  words user, operator and admin. Anything else is a bad token, never a guess.
- Which key: a JWKS key whose `kid` is the token's; a token without `kid` is checked with the
  only key when there is one, else refused (trying every key would let one bad key be enough).
- Every refusal is an AuthenticationError whose message says what is wrong with the token in
  words of the verifier, never the token or its claims' values.
- Key rotation: the key file is looked at (stat) at most every RELOAD_INTERVAL seconds and
  re-read when it changed. A file that cannot be read back keeps the previous keys in use
  (logged once per change), so a half-written file never locks everyone out.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path

import jwt

from server.auth import Principal, Role
from server.auth.keys import ASYMMETRIC_ALGORITHMS, KeyFileError, VerificationKey, load_verification_keys

logger = logging.getLogger(__name__)

MAX_TOKEN_CHARS = 8192
"""A longer bearer token is refused before it is parsed."""
MAX_SUBJECT = 256
"""Characters of a token's `sub` (it becomes the owner of executions: a user_id)."""
LEEWAY_SECONDS = 30.0
"""Clock skew allowed between the token's issuer and this server, for exp, nbf and iat."""
RELOAD_INTERVAL = 1.0
"""Seconds between looks at the key file for a change."""
_KNOWN_ALGORITHMS = ASYMMETRIC_ALGORITHMS | {"none", "HS256", "HS384", "HS512", "ES256K"}
_ROLE_WORDS = ", ".join(r.value for r in Role)
_ROLE_VALUES = frozenset(r.value for r in Role)


class AuthenticationError(Exception):
    """The bearer token is missing or not acceptable; the message says why without quoting it."""


def _file_signature(path: Path) -> tuple[int, int, int]:
    st = os.stat(path)
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class JwtVerifier:
    """Verifies bearer JWTs against the public keys of a PEM or JWKS file (see the module docstring)."""

    def __init__(
        self,
        key_file: str | Path,
        *,
        issuer: str = "",
        audience: str = "",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        """Reads the key file.

        Args:
            key_file: a PEM public key (or certificate) or a JWKS JSON file.
            issuer: the `iss` a token must have; empty: not checked.
            audience: the audience a token's `aud` must name; empty: a token must name none.
            monotonic: the clock the key file's reload interval is measured with.

        Raises:
            KeyFileError: the file cannot be read or holds anything but usable public keys.
        """
        self.path = Path(key_file)
        self.issuer = issuer
        self.audience = audience
        self._monotonic = monotonic
        self._signature = _file_signature(self.path) if self.path.exists() else None
        self.keys = load_verification_keys(self.path)
        self._checked_at = monotonic()

    def describe(self) -> str:
        """One line for the start-up log: the file, its keys' algorithms, issuer and audience."""
        algorithms = sorted({a for k in self.keys for a in k.algorithms})
        return (
            f"JWT bearer tokens, {len(self.keys)} key(s) from {self.path} ({', '.join(algorithms)})"
            f", issuer {self.issuer or '(any)'}, audience {self.audience or '(none)'}"
        )

    def _current_keys(self) -> tuple[VerificationKey, ...]:
        now = self._monotonic()
        if now - self._checked_at < RELOAD_INTERVAL:
            return self.keys
        self._checked_at = now
        try:
            signature = _file_signature(self.path)
        except OSError as error:
            if self._signature is not None:
                logger.warning("jwt key file %s: %s; keeping the keys read before", self.path, error.strerror)
                self._signature = None
            return self.keys
        if signature == self._signature:
            return self.keys
        self._signature = signature
        try:
            self.keys = load_verification_keys(self.path)
        except KeyFileError as error:
            logger.warning("%s; keeping the keys read before", error)
        else:
            logger.info("jwt key file %s reloaded: %d key(s)", self.path, len(self.keys))
        return self.keys

    def _key_for(self, header: dict[str, object]) -> VerificationKey:
        keys = self._current_keys()
        kid = header.get("kid")
        if kid is None:
            if len(keys) == 1:
                return keys[0]
            raise AuthenticationError(f"the bearer token names no key (kid) and the server trusts {len(keys)}")
        if not isinstance(kid, str):
            raise AuthenticationError("the bearer token's kid is not a string")
        for key in keys:
            # A PEM key has no kid: it checks any token (the file holds nothing else).
            if key.kid is None and len(keys) == 1:
                return key
            if key.kid == kid:
                return key
        raise AuthenticationError("the bearer token names a key (kid) the server does not trust")

    def verify(self, token: str) -> Principal:
        """The principal a bearer token authenticates.

        Raises:
            AuthenticationError: the token is not acceptable (see the module docstring).
        """
        if not token:
            raise AuthenticationError("the bearer token is empty")
        if len(token) > MAX_TOKEN_CHARS:
            raise AuthenticationError(f"the bearer token is longer than {MAX_TOKEN_CHARS} characters")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("the bearer token is not a well-formed JWT") from None
        key = self._key_for(header)
        algorithm = header.get("alg")
        if algorithm not in key.algorithms:
            named = algorithm if isinstance(algorithm, str) and algorithm in _KNOWN_ALGORITHMS else "an unknown one"
            raise AuthenticationError(
                f"the bearer token's algorithm ({named}) is not allowed; its key verifies {', '.join(key.algorithms)}"
            )
        required = ["exp", "sub", *(["iss"] if self.issuer else []), *(["aud"] if self.audience else [])]
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=list(key.algorithms),
                issuer=self.issuer or None,
                audience=self.audience or None,
                leeway=LEEWAY_SECONDS,
                options={"require": required},
            )
        except jwt.PyJWTError as error:
            raise AuthenticationError(_reason(error)) from None
        except Exception:
            # Whatever a crafted token makes the decoder raise, it is a bad token, not a server error.
            logger.debug("token decoding failed", exc_info=True)
            raise AuthenticationError("the bearer token is not a well-formed JWT") from None
        return Principal(subject=_subject(claims), roles=_roles(claims))


def _reason(error: jwt.PyJWTError) -> str:
    """The refusal's words for a PyJWT error (its own messages may quote claims)."""
    if isinstance(error, jwt.ExpiredSignatureError):
        return "the bearer token has expired"
    if isinstance(error, jwt.ImmatureSignatureError):
        return "the bearer token is not valid yet (nbf)"
    if isinstance(error, jwt.InvalidAudienceError):
        return "the bearer token is not for this server (its aud claim)"
    if isinstance(error, jwt.InvalidIssuerError):
        return "the bearer token is not from the issuer this server trusts (its iss claim)"
    if isinstance(error, jwt.MissingRequiredClaimError):
        return f"the bearer token has no {error.claim} claim"
    if isinstance(error, jwt.InvalidSignatureError):
        return "the bearer token's signature does not verify"
    if isinstance(error, jwt.InvalidAlgorithmError):
        return "the bearer token's algorithm is not allowed"
    if isinstance(error, jwt.exceptions.InvalidSubjectError):
        return "the bearer token's sub claim is not a string"
    if isinstance(error, jwt.InvalidIssuedAtError):
        return "the bearer token's iat claim is not a time in the past"
    return "the bearer token is not a well-formed JWT"


def _subject(claims: dict[str, object]) -> str:
    subject = claims.get("sub")
    if not isinstance(subject, str) or not subject:
        raise AuthenticationError("the bearer token's sub claim is empty")
    if len(subject) > MAX_SUBJECT:
        raise AuthenticationError(f"the bearer token's sub claim is longer than {MAX_SUBJECT} characters")
    return subject


def _roles(claims: dict[str, object]) -> frozenset[Role]:
    if "roles" not in claims:
        return frozenset({Role.USER})
    words = claims["roles"]
    if not isinstance(words, list) or not all(isinstance(w, str) and w in _ROLE_VALUES for w in words):
        raise AuthenticationError(f"the bearer token's roles claim must be a list of {_ROLE_WORDS}")
    return frozenset(Role(w) for w in words) or frozenset({Role.USER})
