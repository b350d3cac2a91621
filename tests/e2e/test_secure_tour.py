"""Issue 10's Done-when, tried as a new user would: the README's tour with TLS and JWT both on.

Real processes on loopback: the reference agents over mTLS, `baton serve --auth jwt` over mTLS,
the CLI with a token from `baton auth token`, grpcurl with certificates and a bearer header.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.e2e.test_tls_everywhere import Parties, _cli, _grpcurl, _mtls, _serve, _serve_agents, parties, processes
from tests.tls_support import TestCA, write_party

__all__ = ["parties", "processes"]  # fixtures, imported for pytest

pytestmark = pytest.mark.timeout(180)


def test_the_tour_works_with_mtls_and_tokens_and_user_b_never_reaches_user_a(
    parties: Parties, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    keys = tmp_path / "keys"
    made = _cli("auth", "keygen", "--out", str(keys), env={})
    assert made.returncode == 0, made.stderr
    agents = _serve_agents(processes, parties)
    server, target = _serve(
        processes,
        tmp_path,
        "--agents",
        agents,
        *parties.orchestrator.args(),
        "--auth",
        "jwt",
        "--jwt-key",
        str(keys / "public.pem"),
    )

    def token(sub: str, *roles: str) -> str:
        minted = _cli("auth", "token", "--key", str(keys / "private.pem"), "--sub", sub,
                      *[a for r in roles for a in ("--role", r)], env={})  # fmt: skip
        assert minted.returncode == 0, minted.stderr
        return minted.stdout.strip()

    tls_env = {
        "BATON_TLS_CA": str(parties.user.ca),
        "BATON_TLS_CERT": str(parties.user.cert),
        "BATON_TLS_KEY": str(parties.user.key),
    }
    alice = {**tls_env, "BATON_TOKEN": token("alice")}
    bob = {**tls_env, "BATON_TOKEN": token("bob")}

    # The tour: run a journey to the end, then look at it.
    ran = _cli("run", "document_analysis", "--target", target, env=alice)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "execution completed" in ran.stdout
    execution_id = re.search(r"execution ([0-9a-f-]{36}) completed", ran.stdout)
    assert execution_id is not None, ran.stdout
    eid = execution_id.group(1)
    status = _cli("status", eid, "--json", "--target", target, env=alice)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["user_id"] == "alice"

    # Bob: NOT_FOUND for Alice's execution, whatever he tries, and an empty list.
    for command in (("status", eid), ("watch", eid), ("cancel", eid), ("pause", eid), ("approve", eid)):
        tried = _cli(*command, "--target", target, env=bob)
        assert tried.returncode != 0 and "NOT_FOUND" in tried.stderr, (command, tried.stdout, tried.stderr)
        assert "document_analysis" not in tried.stdout
    listed = _grpcurl(*_mtls(parties.user), "-H", f"authorization: Bearer {bob['BATON_TOKEN']}",
                      target, "baton.v1.Orchestrator/ListExecutions")  # fmt: skip
    assert listed.returncode == 0, listed.stderr
    assert eid not in listed.stdout
    mine = _grpcurl(*_mtls(parties.user), "-H", f"authorization: Bearer {alice['BATON_TOKEN']}",
                    target, "baton.v1.Orchestrator/ListExecutions")  # fmt: skip
    assert eid in mine.stdout

    # No token: UNAUTHENTICATED, but health stays open; a certificate from another CA gets nothing.
    anonymous = _cli("status", eid, "--target", target, env=tls_env)
    assert anonymous.returncode != 0 and "UNAUTHENTICATED" in anonymous.stderr
    health = _grpcurl(*_mtls(parties.user), target, "grpc.health.v1.Health/Check")
    assert health.returncode == 0 and json.loads(health.stdout)["status"] == "SERVING", health.stderr
    other = TestCA("another CA")
    stranger = write_party(other, other.client("alice"), tmp_path / "stranger", "tls")
    assert _grpcurl(*_mtls(stranger), target, "grpc.health.v1.Health/Check").returncode != 0

    # An operator reads everything (health too); a user may not read the system's health.
    assert "PERMISSION_DENIED" in _cli("health", "--target", target, env=alice).stderr
    operator = _cli("health", "--target", target, env={**tls_env, "BATON_TOKEN": token("oscar", "operator")})
    assert operator.returncode == 0, operator.stderr
    assert server.poll() is None
