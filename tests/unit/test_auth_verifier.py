"""The JWT verifier and key files: what is accepted, what is refused and with which words, key rotation."""

from __future__ import annotations

import base64
import json
import re
import time
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from server.auth import Role
from server.auth.keys import (
    KeyFileError,
    PrivateKey,
    generate_key_pair,
    load_private_key,
    load_verification_keys,
    mint_token,
    parse_ttl,
    public_jwk,
    thumbprint,
)
from server.auth.verifier import MAX_SUBJECT, AuthenticationError, JwtVerifier


def _public_pem(key: PrivateKey, path: Path) -> Path:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    path.write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM, spki))
    return path


@pytest.fixture(scope="module")
def ec_key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def verifier(ec_key: ec.EllipticCurvePrivateKey, tmp_path: Path) -> JwtVerifier:
    return JwtVerifier(_public_pem(ec_key, tmp_path / "public.pem"))


def _refusal(verifier: JwtVerifier, token: str) -> str:
    with pytest.raises(AuthenticationError) as raised:
        verifier.verify(token)
    message = str(raised.value)
    assert len(token) < 8 or token[-8:] not in message  # never the token, nor its signature
    return message


def _claims(**claims: Any) -> dict[str, Any]:
    # A day ahead: some are built when the tests are collected, which may be long before they run.
    return {"sub": "alice", "exp": int(time.time()) + 86_400, **claims}


# ---- accepted --------------------------------------------------------------------------------


def test_a_minted_token_authenticates_its_subject_as_a_user(verifier: JwtVerifier, ec_key: PrivateKey) -> None:
    principal = verifier.verify(mint_token(ec_key, "alice"))
    assert principal.subject == "alice"
    assert principal.roles == {Role.USER}
    assert principal.authenticated


def test_the_roles_claim_grants_its_roles(verifier: JwtVerifier, ec_key: PrivateKey) -> None:
    principal = verifier.verify(mint_token(ec_key, "ops", roles=["operator", "admin"]))
    assert principal.roles == {Role.OPERATOR, Role.ADMIN}
    assert principal.reads_all


@pytest.mark.parametrize("algorithm", ["RS256", "RS512", "PS256", "PS384"])
def test_an_rsa_key_verifies_every_rsa_algorithm(rsa_key: rsa.RSAPrivateKey, tmp_path: Path, algorithm: str) -> None:
    verifier = JwtVerifier(_public_pem(rsa_key, tmp_path / "rsa.pem"))
    assert verifier.verify(jwt.encode(_claims(), rsa_key, algorithm=algorithm)).subject == "alice"


def test_an_ed25519_key_verifies_eddsa(tmp_path: Path) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    verifier = JwtVerifier(_public_pem(key, tmp_path / "ed.pem"))
    assert verifier.verify(mint_token(key, "alice")).subject == "alice"


def test_issuer_and_audience_are_checked_when_configured(ec_key: PrivateKey, tmp_path: Path) -> None:
    verifier = JwtVerifier(_public_pem(ec_key, tmp_path / "p.pem"), issuer="https://id.example", audience="baton")
    good = mint_token(ec_key, "alice", issuer="https://id.example", audience="baton")
    assert verifier.verify(good).subject == "alice"
    assert "iss claim" in _refusal(verifier, mint_token(ec_key, "alice", issuer="https://evil", audience="baton"))
    assert "aud claim" in _refusal(verifier, mint_token(ec_key, "alice", issuer="https://id.example", audience="x"))
    assert "no iss claim" in _refusal(verifier, mint_token(ec_key, "alice", audience="baton"))
    assert "no aud claim" in _refusal(verifier, mint_token(ec_key, "alice", issuer="https://id.example"))


def test_a_token_for_an_audience_is_refused_by_a_server_that_expects_none(
    verifier: JwtVerifier, ec_key: PrivateKey
) -> None:
    assert "aud claim" in _refusal(verifier, mint_token(ec_key, "alice", audience="another-service"))


# ---- refused ---------------------------------------------------------------------------------


def test_an_expired_token_is_refused(verifier: JwtVerifier, ec_key: PrivateKey) -> None:
    token = mint_token(ec_key, "alice", ttl_seconds=60, now=time.time() - 3600)
    assert _refusal(verifier, token) == "the bearer token has expired"


def test_a_token_signed_by_another_key_is_refused(verifier: JwtVerifier) -> None:
    other = ec.generate_private_key(ec.SECP256R1())
    assert _refusal(verifier, mint_token(other, "alice")) == "the bearer token's signature does not verify"


def test_a_tampered_payload_is_refused(verifier: JwtVerifier, ec_key: PrivateKey) -> None:
    header, _, signature = mint_token(ec_key, "alice").split(".")
    forged = base64.urlsafe_b64encode(json.dumps(_claims(sub="mallory", roles=["admin"])).encode()).rstrip(b"=")
    assert "signature" in _refusal(verifier, f"{header}.{forged.decode()}.{signature}")


def test_a_token_signed_with_a_key_of_another_type_is_refused(verifier: JwtVerifier, rsa_key: PrivateKey) -> None:
    message = _refusal(verifier, jwt.encode(_claims(), rsa_key, algorithm="RS256"))
    assert message == "the bearer token's algorithm (RS256) is not allowed; its key verifies ES256"


def test_the_none_algorithm_is_refused(verifier: JwtVerifier) -> None:
    token = jwt.encode(_claims(), None, algorithm="none")
    assert "algorithm (none) is not allowed" in _refusal(verifier, token)


def test_hs256_signed_with_the_public_key_as_secret_is_refused(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> None:
    # The classic algorithm confusion: the attacker knows the public key and uses it as an HMAC secret.
    pem = _public_pem(rsa_key, tmp_path / "rsa.pem")
    verifier = JwtVerifier(pem)
    header = base64.urlsafe_b64encode(b'{"alg":"HS256","typ":"JWT"}').rstrip(b"=")
    payload = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = hmac.new(pem.read_bytes(), header + b"." + payload, hashlib.sha256).digest()
    token = b".".join([header, payload, base64.urlsafe_b64encode(signature).rstrip(b"=")]).decode()
    assert "algorithm (HS256) is not allowed" in _refusal(verifier, token)


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        ({"sub": "alice"}, "the bearer token has no exp claim"),
        ({"exp": int(time.time()) + 600}, "the bearer token has no sub claim"),
        (_claims(sub=""), "the bearer token's sub claim is empty"),
        (_claims(sub=42), "the bearer token's sub claim is not a string"),
        (_claims(sub="x" * (MAX_SUBJECT + 1)), f"the bearer token's sub claim is longer than {MAX_SUBJECT} characters"),
        (_claims(exp="tomorrow"), "the bearer token is not a well-formed JWT"),
        (_claims(nbf=int(time.time()) + 3600), "the bearer token is not valid yet (nbf)"),
    ],
    ids=["no exp", "no sub", "empty sub", "numeric sub", "long sub", "text exp", "not yet valid"],
)
def test_a_token_with_a_missing_or_bad_claim_is_refused(
    verifier: JwtVerifier, ec_key: PrivateKey, claims: dict[str, Any], expected: str
) -> None:
    assert _refusal(verifier, jwt.encode(claims, ec_key, algorithm="ES256")) == expected


@pytest.mark.parametrize("roles", ["admin", ["root"], ["user", 1], {"admin": True}, None, ["Admin"]], ids=repr)
def test_a_malformed_roles_claim_is_a_bad_token_not_a_guess(
    verifier: JwtVerifier, ec_key: PrivateKey, roles: object
) -> None:
    token = jwt.encode(_claims(roles=roles), ec_key, algorithm="ES256")
    assert (
        _refusal(verifier, token) == "the bearer token's roles claim must be a list of user, operator, admin, publisher"
    )


def test_an_empty_roles_list_means_a_user(verifier: JwtVerifier, ec_key: PrivateKey) -> None:
    assert verifier.verify(jwt.encode(_claims(roles=[]), ec_key, algorithm="ES256")).roles == {Role.USER}


@pytest.mark.parametrize("token", ["", "x", "a.b.c", "e30.e30.", "." * 3, "ä.ö.ü", "x" * 9000])
def test_garbage_is_refused_as_a_bad_token(verifier: JwtVerifier, token: str) -> None:
    message = _refusal(verifier, token)
    assert message.startswith("the bearer token")


# ---- JWKS files --------------------------------------------------------------------------------


def _jwks(path: Path, *entries: dict[str, Any]) -> Path:
    path.write_text(json.dumps({"keys": list(entries)}))
    return path


def test_a_jwks_picks_the_key_by_the_tokens_kid(tmp_path: Path, ec_key: PrivateKey, rsa_key: PrivateKey) -> None:
    jwks = _jwks(
        tmp_path / "jwks.json",
        {**public_jwk(ec_key.public_key()), "kid": "ec-1"},
        {**public_jwk(rsa_key.public_key()), "kid": "rsa-1", "alg": "PS256"},
    )
    verifier = JwtVerifier(jwks)
    assert verifier.verify(jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-1"})).subject
    assert verifier.verify(jwt.encode(_claims(), rsa_key, algorithm="PS256", headers={"kid": "rsa-1"})).subject
    # The RSA key names PS256: RS256 with it is refused, though the key type could verify it.
    rs256 = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "rsa-1"})
    assert "algorithm (RS256) is not allowed" in _refusal(verifier, rs256)
    # The EC key's kid on a token the RSA key signed: the wrong key checks it.
    crossed = jwt.encode(_claims(), rsa_key, algorithm="RS256", headers={"kid": "ec-1"})
    assert "not allowed" in _refusal(verifier, crossed)
    unknown = jwt.encode(_claims(), ec_key, algorithm="ES256", headers={"kid": "ec-2"})
    assert _refusal(verifier, unknown) == "the bearer token names a key (kid) the server does not trust"
    no_kid = jwt.encode(_claims(), ec_key, algorithm="ES256")
    assert _refusal(verifier, no_kid) == "the bearer token names no key (kid) and the server trusts 2"


def test_keygen_writes_a_pair_whose_tokens_both_public_files_verify(tmp_path: Path) -> None:
    files = generate_key_pair(tmp_path / "keys", "rsa")
    assert files["private.pem"].stat().st_mode & 0o777 == 0o600
    key = load_private_key(files["private.pem"])
    token = mint_token(key, "alice", roles=["operator"], issuer="iss", audience="aud")
    assert jwt.get_unverified_header(token)["kid"] == thumbprint(key.public_key())
    for public in (files["public.pem"], files["jwks.json"]):
        principal = JwtVerifier(public, issuer="iss", audience="aud").verify(token)
        assert (principal.subject, principal.roles) == ("alice", {Role.OPERATOR})


def test_the_thumbprint_is_rfc_7638s() -> None:
    # RFC 7638 §3.1's example key and thumbprint.
    jwk = {
        "kty": "RSA",
        "e": "AQAB",
        "n": (
            "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJE"
            "CPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2Q"
            "vzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6"
            "WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw"
        ),
    }
    key = jwt.PyJWK.from_dict(jwk).key
    assert thumbprint(key) == "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ('{"keys": [{"kty": "oct", "k": "c2VjcmV0"}]}', "symmetric (oct) key"),
        ('{"keys": []}', "not a JWKS"),
        ('{"keys": [{"kty": "RSA", "alg": "HS256", "n": "AQAB", "e": "AQAB"}]}', "only asymmetric algorithms"),
        ("not a key", "neither a PEM public key nor a JWKS"),
        ("{broken", "is not JSON"),
        ("-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n", "not a readable PEM public key"),
    ],
    ids=["oct", "empty", "hs alg", "garbage", "bad json", "bad pem"],
)
def test_a_key_file_of_anything_but_public_keys_is_refused_naming_the_file(
    tmp_path: Path, content: str, expected: str
) -> None:
    path = tmp_path / "key"
    path.write_text(content)
    with pytest.raises(KeyFileError, match=re.escape(expected)) as raised:
        load_verification_keys(path)
    assert str(path) in str(raised.value)


def test_a_private_key_file_is_refused(tmp_path: Path, ec_key: ec.EllipticCurvePrivateKey) -> None:
    pem = tmp_path / "private.pem"
    pkcs8 = serialization.PrivateFormat.PKCS8
    pem.write_bytes(ec_key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
    with pytest.raises(KeyFileError, match="holds a private key"):
        load_verification_keys(pem)
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(ec_key))
    with pytest.raises(KeyFileError, match="is a private key"):
        load_verification_keys(_jwks(tmp_path / "jwks.json", jwk))


def test_a_small_rsa_key_is_refused(tmp_path: Path) -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    with pytest.raises(KeyFileError, match="1024-bit RSA key"):
        load_verification_keys(_public_pem(small, tmp_path / "small.pem"))


# ---- rotation ----------------------------------------------------------------------------------


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_rotated_key_file_is_picked_up_and_a_broken_one_keeps_the_old_keys(tmp_path: Path) -> None:
    old = ec.generate_private_key(ec.SECP256R1())
    new = ec.generate_private_key(ec.SECP256R1())
    path = _public_pem(old, tmp_path / "public.pem")
    clock = _Clock()
    verifier = JwtVerifier(path, monotonic=clock)
    assert verifier.verify(mint_token(old, "alice")).subject == "alice"

    _jwks(tmp_path / "public.pem", {**public_jwk(new.public_key()), "kid": thumbprint(new.public_key())})
    # Within the reload interval the file is not looked at.
    assert "signature" in _refusal(verifier, mint_token(new, "alice"))
    clock.now += 1.5
    assert verifier.verify(mint_token(new, "alice")).subject == "alice"
    assert "kid" in _refusal(verifier, mint_token(old, "alice"))

    path.write_text("half written")
    clock.now += 1.5
    assert verifier.verify(mint_token(new, "alice")).subject == "alice"


def test_ttls_parse() -> None:
    assert [parse_ttl(t) for t in ("90", "90s", "15m", "1h", "7d", "0.5h")] == [90, 90, 900, 3600, 604800, 1800]
    for bad in ("", "0", "1w", "-1h", "h"):
        with pytest.raises(ValueError, match="expected a duration"):
            parse_ttl(bad)
