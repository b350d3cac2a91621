"""Signing keys: reading a verifier's public keys (PEM or JWKS), and minting test keys and tokens.

Rules:

- **Asymmetric only.** A key file holds public keys: RSA (RS256/384/512, PS256/384/512), EC on
  P-256, P-384 or P-521 (ES256, ES384, ES512) or Ed25519/Ed448 (EdDSA). A symmetric (`oct`) JWK,
  a private key or anything else is refused when the file is read, naming the file: a verifier
  that holds a shared secret could also sign, and a private key has no business on a server
  that only verifies.
- **Each key accepts only its own algorithms**: those of its type, or the one its JWK's `alg`
  names. `none` and HS* are never among them, so no token can choose how it is checked.
- **kid**: a JWKS file's keys may carry a `kid`; duplicates are refused. Tokens minted here carry
  the RFC 7638 thumbprint of their key as `kid`, the `kid` `keygen` writes into jwks.json.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from jwt.algorithms import ECAlgorithm, OKPAlgorithm, RSAAlgorithm

PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | ed448.Ed448PublicKey
PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | ed448.Ed448PrivateKey

RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}
ASYMMETRIC_ALGORITHMS = frozenset({*RSA_ALGORITHMS, *EC_ALGORITHMS.values(), "EdDSA"})
"""Every algorithm a token may be signed with."""
MAX_KEY_FILE_BYTES = 1024 * 1024
"""A key file larger than this is refused (a JWKS of a few keys is a few KiB)."""
_MIN_RSA_BITS = 2048


class KeyFileError(ValueError):
    """The key file cannot be used; the message names the file and why."""


@dataclass(frozen=True)
class VerificationKey:
    """One public key and the algorithms a token signed with it may use."""

    key: PublicKey
    algorithms: tuple[str, ...]
    """The algorithms it verifies (a non-empty subset of ASYMMETRIC_ALGORITHMS)."""
    kid: str | None = None
    """Its JWK `kid`; None for a PEM key or a JWK without one."""


def algorithms_of(key: PublicKey) -> tuple[str, ...]:
    """The algorithms a public key verifies (empty for a key type no algorithm fits)."""
    if isinstance(key, rsa.RSAPublicKey):
        return RSA_ALGORITHMS
    if isinstance(key, ec.EllipticCurvePublicKey):
        algorithm = EC_ALGORITHMS.get(key.curve.name)
        return (algorithm,) if algorithm else ()
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return ("EdDSA",)
    return ()


def load_verification_keys(path: Path) -> tuple[VerificationKey, ...]:
    """Reads the public keys a verifier trusts from a PEM file or a JWKS JSON file.

    Raises:
        KeyFileError: the file cannot be read, or holds anything but usable public keys.
    """
    try:
        data = path.read_bytes()[: MAX_KEY_FILE_BYTES + 1]
    except OSError as error:
        raise KeyFileError(f"jwt_key: cannot read {path}: {error.strerror or error}") from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(f"jwt_key: {path} is larger than {MAX_KEY_FILE_BYTES} bytes")
    text = data.decode("utf-8", errors="replace").strip()
    if text.startswith("{"):
        return _jwks_keys(path, text)
    if text.startswith("-----BEGIN"):
        return (_pem_key(path, data),)
    raise KeyFileError(f"jwt_key: {path} is neither a PEM public key nor a JWKS JSON file")


def _checked(path: Path, key: object, what: str, kid: str | None = None) -> VerificationKey:
    if not isinstance(key, PublicKey):
        raise KeyFileError(f"jwt_key: {path}: {what} is not an RSA, EC or Ed25519/Ed448 public key")
    algorithms = algorithms_of(key)
    if not algorithms:
        raise KeyFileError(f"jwt_key: {path}: {what} is on a curve no JWT algorithm uses")
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < _MIN_RSA_BITS:
        raise KeyFileError(f"jwt_key: {path}: {what} is a {key.key_size}-bit RSA key; at least {_MIN_RSA_BITS}")
    return VerificationKey(key=key, algorithms=algorithms, kid=kid)


def _pem_key(path: Path, data: bytes) -> VerificationKey:
    if b"PRIVATE KEY" in data:
        raise KeyFileError(f"jwt_key: {path} holds a private key; give the server the public key only")
    try:
        if b"BEGIN CERTIFICATE" in data:
            key: object = x509.load_pem_x509_certificate(data).public_key()
        else:
            key = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise KeyFileError(f"jwt_key: {path} is not a readable PEM public key ({error})") from None
    return _checked(path, key, "its key")


def _jwks_keys(path: Path, text: str) -> tuple[VerificationKey, ...]:
    try:
        document = json.loads(text)
    except ValueError as error:
        raise KeyFileError(f"jwt_key: {path} is not JSON ({error})") from None
    entries = document.get("keys") if isinstance(document, dict) else None
    if isinstance(document, dict) and "kty" in document:
        entries = [document]  # a single JWK
    if not isinstance(entries, list) or not entries:
        raise KeyFileError(f"jwt_key: {path} is not a JWKS (an object with a non-empty `keys` list)")
    keys: list[VerificationKey] = []
    for index, entry in enumerate(entries):
        keys.append(_jwk(path, index, entry))
    kids = [k.kid for k in keys if k.kid is not None]
    if len(kids) != len(set(kids)):
        raise KeyFileError(f"jwt_key: {path} names the same kid twice")
    return tuple(keys)


def _jwk(path: Path, index: int, entry: object) -> VerificationKey:
    what = f"key {index}"
    if not isinstance(entry, dict):
        raise KeyFileError(f"jwt_key: {path}: {what} is not a JSON object")
    kid = entry.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise KeyFileError(f"jwt_key: {path}: {what} has a kid that is not a string")
    if kid is not None:
        what = f"key {index} (kid {kid[:64]!r})"
    if entry.get("kty") == "oct":
        raise KeyFileError(f"jwt_key: {path}: {what} is a symmetric (oct) key; only public keys are accepted")
    if "d" in entry:
        raise KeyFileError(f"jwt_key: {path}: {what} is a private key; give the server the public keys only")
    alg = entry.get("alg")
    if alg is not None and alg not in ASYMMETRIC_ALGORITHMS:
        raise KeyFileError(f"jwt_key: {path}: {what} names alg {str(alg)[:16]!r}; only asymmetric algorithms")
    try:
        jwk = jwt.PyJWK.from_dict(entry)
    except jwt.PyJWTError as error:
        raise KeyFileError(f"jwt_key: {path}: {what} cannot be used ({error})") from None
    checked = _checked(path, jwk.key, what, kid)
    if alg is not None:
        if alg not in checked.algorithms:
            raise KeyFileError(f"jwt_key: {path}: {what} names alg {alg}, which its key type cannot verify")
        return VerificationKey(key=checked.key, algorithms=(alg,), kid=kid)
    return checked


# ---- minting (developer tools: `baton auth keygen` and `baton auth token`) ---------------------


def public_jwk(key: PublicKey) -> dict[str, Any]:
    """The public key as a JWK (without kid)."""
    if isinstance(key, rsa.RSAPublicKey):
        return dict(RSAAlgorithm.to_jwk(key, as_dict=True))
    if isinstance(key, ec.EllipticCurvePublicKey):
        return dict(ECAlgorithm.to_jwk(key, as_dict=True))
    return dict(OKPAlgorithm.to_jwk(key, as_dict=True))


def thumbprint(key: PublicKey) -> str:
    """The key's RFC 7638 JWK thumbprint (SHA-256, base64url): its kid."""
    jwk = public_jwk(key)
    members = {"RSA": ("e", "kty", "n"), "EC": ("crv", "kty", "x", "y"), "OKP": ("crv", "kty", "x")}[jwk["kty"]]
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def generate_key_pair(directory: Path, kind: str = "ec") -> dict[str, Path]:
    """Writes a new key pair: private.pem (mode 0600), public.pem and jwks.json (the public key with its kid).

    Args:
        directory: where the files go (created if missing).
        kind: "ec" (P-256, ES256), "rsa" (3072 bits, RS256) or "ed25519" (EdDSA).

    Returns:
        The files written, by name.
    """
    private: PrivateKey
    if kind == "ec":
        private = ec.generate_private_key(ec.SECP256R1())
    elif kind == "rsa":
        private = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif kind == "ed25519":
        private = ed25519.Ed25519PrivateKey.generate()
    else:
        raise ValueError(f"kind: expected ec, rsa or ed25519, got {kind!r}")
    directory.mkdir(parents=True, exist_ok=True)
    files = {name: directory / name for name in ("private.pem", "public.pem", "jwks.json")}
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    files["private.pem"].touch(mode=0o600, exist_ok=True)
    files["private.pem"].chmod(0o600)
    files["private.pem"].write_bytes(pem)
    public = private.public_key()
    files["public.pem"].write_bytes(
        public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    jwk = {**public_jwk(public), "kid": thumbprint(public), "use": "sig"}
    files["jwks.json"].write_text(json.dumps({"keys": [jwk]}, indent=2) + "\n")
    return files


def load_private_key(path: Path) -> PrivateKey:
    """Reads a PEM private key (unencrypted) to sign tokens with.

    Raises:
        KeyFileError: the file cannot be read or is not an RSA, EC or Ed25519/Ed448 private key.
    """
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except OSError as error:
        raise KeyFileError(f"key: cannot read {path}: {error.strerror or error}") from None
    except (ValueError, TypeError) as error:
        raise KeyFileError(f"key: {path} is not an unencrypted PEM private key ({error})") from None
    if not isinstance(key, PrivateKey):
        raise KeyFileError(f"key: {path} is not an RSA, EC or Ed25519/Ed448 private key")
    return key


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_ttl(text: str) -> float:
    """Seconds from `90`, `90s`, `15m`, `1h` or `7d`.

    Raises:
        ValueError: anything else, or zero.
    """
    match = _DURATION.match(text.strip())
    if not match or float(match[1]) <= 0:
        raise ValueError(f"expected a duration above 0 such as 90s, 15m, 1h or 7d, got {text!r}")
    return float(match[1]) * _UNITS[match[2]]


def mint_token(
    key: PrivateKey,
    subject: str,
    *,
    roles: Iterable[str] = (),
    ttl_seconds: float = 3600.0,
    issuer: str = "",
    audience: str = "",
    now: float | None = None,
) -> str:
    """Signs a JWT for `subject` (a developer's test token).

    Args:
        key: the private key; the algorithm follows from it (ES256 for P-256, RS256 for RSA, ...).
        subject: the `sub` claim.
        roles: the `roles` claim; empty leaves it out (the subject is then a user).
        ttl_seconds: seconds until `exp`.
        issuer: the `iss` claim; empty leaves it out.
        audience: the `aud` claim; empty leaves it out.
        now: the issue time (Unix seconds; default the current time).

    Returns:
        The token (header.payload.signature).
    """
    public = key.public_key()
    algorithm = algorithms_of(public)[0]
    issued = time.time() if now is None else now
    claims: dict[str, Any] = {
        "sub": subject,
        "iat": int(issued),
        "exp": int(issued + ttl_seconds),
        "jti": uuid.uuid4().hex,
    }
    if roles:
        claims["roles"] = list(roles)
    if issuer:
        claims["iss"] = issuer
    if audience:
        claims["aud"] = audience
    return jwt.encode(claims, key, algorithm=algorithm, headers={"kid": thumbprint(public)})
