"""The CLI with authentication: `baton auth keygen/token`, --token and BATON_TOKEN against `baton serve --auth jwt`."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from server.app import RunningServer, _authentication
from server.cli import main
from server.config import ConfigError, ServerConfig
from tests.conftest import output_of, serve_orchestrator
from tests.integration.auth_support import ALICE, BOB, Keys, make_keys, start_secured
from tests.integration.test_cli import baton

pytestmark = pytest.mark.timeout(90)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return make_keys(tmp_path_factory.mktemp("keys"))


@pytest.fixture
async def secured(tmp_path: Path, keys: Keys) -> AsyncIterator[RunningServer]:
    running = await start_secured(tmp_path, keys)
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
def no_token_in_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.delenv("BATON_TOKEN", raising=False)
    yield


async def test_the_tour_works_with_a_token_from_the_flag_or_the_environment(
    secured: RunningServer, keys: Keys, monkeypatch: pytest.MonkeyPatch, no_token_in_env: None
) -> None:
    target = ("--target", secured.address)
    alice = keys.token(ALICE)
    run = await baton("run", "document_analysis", "--detach", *target, "--token", alice)
    assert run.returncode == 0, run.stderr
    execution_id = run.stdout.strip()

    watched = await baton("watch", execution_id, *target, "--token", alice)
    assert watched.returncode == 0, watched.stderr
    monkeypatch.setenv("BATON_TOKEN", alice)
    status = await baton("status", execution_id, "--json", *target)
    assert status.returncode == 0, status.stderr
    assert '"status": "EXECUTION_STATE_COMPLETED"' in status.stdout
    # --token wins over the environment: user B is told the execution does not exist.
    other = await baton("status", execution_id, *target, "--token", keys.token(BOB))
    assert other.returncode == 1
    assert f"NOT_FOUND: execution_id: no execution '{execution_id}'" in other.stderr
    # Health is for operators.
    denied = await baton("health", *target)
    assert (denied.returncode, denied.stderr.strip()) == (
        1,
        "error: PERMISSION_DENIED: GetSystemHealth needs the operator or admin role",
    )
    health = await baton("health", *target, "--token", keys.token("oscar", "operator"))
    assert health.returncode == 0, health.stderr


async def test_without_a_token_the_cli_says_unauthenticated_without_a_traceback(
    secured: RunningServer, no_token_in_env: None
) -> None:
    result = await baton("status", "x", "--target", secured.address)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: UNAUTHENTICATED: authorization: a bearer token is required (metadata `authorization: Bearer <JWT>`)"
    )


def test_keygen_and_token_make_a_pair_the_server_accepts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from server.auth.verifier import JwtVerifier

    assert main(["auth", "keygen", "--out", str(tmp_path / "k")]) == 0
    assert main(["auth", "keygen", "--out", str(tmp_path / "k")]) == 2  # never overwritten by accident
    capsys.readouterr()
    assert (
        main(
            [
                "auth",
                "token",
                "--key",
                str(tmp_path / "k/private.pem"),
                "--sub",
                "alice",
                "--role",
                "operator",
                "--ttl",
                "15m",
                "--audience",
                "baton",
            ]
        )
        == 0
    )
    token = capsys.readouterr().out.strip()
    principal = JwtVerifier(tmp_path / "k/jwks.json", audience="baton").verify(token)
    assert (principal.subject, {r.value for r in principal.roles}) == ("alice", {"operator"})
    assert main(["auth", "token", "--key", str(tmp_path / "k/private.pem"), "--sub", "a", "--ttl", "soon"]) == 2
    assert main(["auth", "token", "--key", str(tmp_path / "k/public.pem"), "--sub", "a"]) == 2
    assert "not an unencrypted PEM private key" in capsys.readouterr().err


def test_serving_beyond_loopback_without_saying_auth_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = ("--store", f"sqlite:///{tmp_path}/b.db")
    assert main(["serve", "--listen", "0.0.0.0:1", *store]) == 2
    assert "no --auth was given" in capsys.readouterr().err
    assert main(["serve", "--listen", "127.0.0.1:1", "--auth", "jwt", *store]) == 2
    assert "--auth jwt needs --jwt-key FILE" in capsys.readouterr().err
    bad = tmp_path / "secret.txt"
    bad.write_text("hunter2")
    assert main(["serve", "--listen", "127.0.0.1:0", "--auth", "jwt", "--jwt-key", str(bad), *store]) == 2
    assert "neither a PEM public key nor a JWKS" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("listen", "allowed"),
    [
        ("127.0.0.1:50051", True),
        ("127.0.0.9:1", True),
        ("localhost:1", True),
        ("[::1]:1", True),
        ("0.0.0.0:50051", False),
        ("[::]:1", False),
        ("10.1.2.3:1", False),
        ("baton.example:1", False),
    ],
)
def test_auth_none_is_implicit_only_on_loopback(listen: str, allowed: bool) -> None:
    if allowed:
        ServerConfig(listen=listen)
    else:
        with pytest.raises(ConfigError, match=r"^auth: "):
            ServerConfig(listen=listen)
    ServerConfig(listen=listen, auth="none")  # said explicitly, always allowed


def test_auth_none_said_explicitly_beyond_loopback_warns_loudly(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="server.app"):
        interceptors, line = _authentication(ServerConfig(listen="0.0.0.0:50051", auth="none"))
    assert interceptors == []
    assert "AUTHENTICATION IS OFF on 0.0.0.0:50051" in caplog.text
    assert line.startswith("authentication off (--auth none)")


def test_serve_logs_which_authentication_is_on(
    processes: list[subprocess.Popen[str]], tmp_path: Path, keys: Keys
) -> None:
    proc, _ = serve_orchestrator(
        processes, tmp_path / "b.db", "embedded", "--auth", "jwt", "--jwt-key", str(keys.public_pem)
    )
    assert f"authentication: JWT bearer tokens, 1 key(s) from {keys.public_pem} (ES256)" in output_of(proc)
    proc, _ = serve_orchestrator(processes, tmp_path / "c.db")
    assert "authentication off (the default on loopback" in output_of(proc)
