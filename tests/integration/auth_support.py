"""Helpers for the authentication tests: a key pair, tokens for every kind of caller, a server with --auth jwt."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from server.app import RunningServer, start_server
from server.auth.keys import PrivateKey, generate_key_pair, load_private_key, mint_token
from server.config import ServerConfig

Metadata = tuple[tuple[str, str], ...]

ALICE = "alice"
"""User A: owns the execution the tests try to reach."""
BOB = "bob"
"""User B: another user."""


@dataclass(frozen=True)
class Keys:
    """A key pair written by `generate_key_pair`, and its private key."""

    directory: Path
    private: PrivateKey

    @property
    def public_pem(self) -> Path:
        return self.directory / "public.pem"

    def token(self, subject: str, *roles: str, ttl: float = 600.0, now: float | None = None) -> str:
        return mint_token(self.private, subject, roles=roles, ttl_seconds=ttl, now=now)


def make_keys(directory: Path) -> Keys:
    files = generate_key_pair(directory, "ec")
    return Keys(directory=directory, private=load_private_key(files["private.pem"]))


def bearer(token: str) -> Metadata:
    return (("authorization", f"Bearer {token}"),)


def callers(keys: Keys) -> dict[str, Metadata]:
    """Every kind of caller, by name, as the metadata it sends."""
    stranger = ec.generate_private_key(ec.SECP256R1())
    return {
        "no token": (),
        "bad token": bearer(mint_token(stranger, ALICE, roles=["admin"])),
        "expired token": bearer(keys.token(ALICE, ttl=60, now=time.time() - 3600)),
        "user A": bearer(keys.token(ALICE)),
        "user B": bearer(keys.token(BOB)),
        "operator": bearer(keys.token("oscar", "operator")),
        "admin": bearer(keys.token("ada", "admin")),
    }


async def start_secured(tmp_path: Path, keys: Keys, **config: str) -> RunningServer:
    """An orchestrator with --auth jwt on 127.0.0.1:0, the embedded fleet and a fresh SQLite store."""
    return await start_server(
        ServerConfig(
            listen="127.0.0.1:0",
            store_url=f"sqlite:///{tmp_path}/baton.db",
            agents="embedded",
            auth="jwt",
            jwt_key=str(keys.public_pem),
            **config,
        )
    )
