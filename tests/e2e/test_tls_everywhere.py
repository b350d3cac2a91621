"""TLS on every hop with real processes: the CLI, grpcurl and Envoy in front, the orchestrator, the agents."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from server.envoy import Certificates, Endpoint, FrontProxy, Tls, front_proxy_config, sds_files, start_envoy
from server.envoy.descriptors import descriptor_set_bytes
from tests.conftest import ROOT, free_port, output_of, spawn, wait_for_line
from tests.tls_support import Issued, TestCA, TlsFiles, peer_serial, write_party

pytestmark = pytest.mark.timeout(120)


@dataclass
class Parties:
    ca: TestCA
    orchestrator: TlsFiles
    agents: TlsFiles
    user: TlsFiles
    stranger: TlsFiles
    """A client certificate from another CA."""


@pytest.fixture
def parties(tmp_path: Path) -> Parties:
    ca, other = TestCA(), TestCA("an untrusted CA")
    return Parties(
        ca=ca,
        orchestrator=write_party(ca, ca.server("orchestrator"), tmp_path / "orchestrator", "tls"),
        agents=write_party(ca, ca.server("agents"), tmp_path / "agents", "tls"),
        user=write_party(ca, ca.client("user-1"), tmp_path / "user", "tls"),
        stranger=write_party(ca, other.client("user-1"), tmp_path / "stranger", "tls"),
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def _grpcurl(*args: str, data: dict[str, object] | None = None) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    command = [binary, "-max-time", "20", *(["-d", json.dumps(data)] if data is not None else [])]
    return subprocess.run([*command, *args], capture_output=True, text=True, timeout=60, check=False)


def _mtls(files: TlsFiles) -> list[str]:
    return ["-cacert", str(files.ca), "-cert", str(files.cert), "-key", str(files.key)]


def _serve_agents(processes: list[subprocess.Popen[str]], parties: Parties) -> str:
    port = free_port()
    proc = spawn(
        "-m",
        "server.cli",
        "agents",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        *parties.agents.args(),
        "--tls-allow-client",
        "orchestrator",
    )
    processes.append(proc)
    wait_for_line(proc, "agents serving on")
    assert "agents transport: mTLS" in wait_for_line(proc, "agents transport:")
    return f"127.0.0.1:{port}"


def _serve(processes: list[subprocess.Popen[str]], tmp_path: Path, *args: str) -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    proc = spawn(
        "-m",
        "server.cli",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--store",
        f"sqlite:///{tmp_path / 'baton.db'}",
        *args,
    )
    processes.append(proc)
    wait_for_line(proc, "baton serving on")
    return proc, f"127.0.0.1:{port}"


def _cli(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "server.cli", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **env},
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


def test_a_journey_runs_with_mtls_from_the_cli_through_the_orchestrator_to_the_agents_processes(
    parties: Parties, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    agents = _serve_agents(processes, parties)
    server, target = _serve(processes, tmp_path, "--agents", agents, *parties.orchestrator.args())
    transport = wait_for_line(server, "baton transport:")
    assert "mTLS" in transport and "agents over mTLS" in transport
    # The client's TLS comes from the environment, as a shell or a pod would set it once.
    env = {"BATON_TLS_CA": str(parties.user.ca), "BATON_TLS_CERT": str(parties.user.cert)}
    env["BATON_TLS_KEY"] = str(parties.user.key)
    ran = _cli("run", "document_analysis", "--user", "u-tls", "--target", target, env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr + output_of(server)
    assert "execution completed" in ran.stdout
    # Without a client certificate, or with another CA's, the orchestrator is out of reach.
    refused = _cli("health", "--target", target, "--tls-ca", str(parties.user.ca), env={})
    assert refused.returncode == 1 and "UNAVAILABLE" in refused.stderr
    stranger = _cli("health", "--target", target, *parties.stranger.args(), env={})
    assert stranger.returncode == 1 and "UNAVAILABLE" in stranger.stderr
    # A client file that is wrong is a usage error naming the flag and the file.
    missing = _cli("health", "--target", target, "--tls-ca", str(tmp_path / "nope.crt"), env={})
    assert missing.returncode == 2 and "--tls-ca: no such file" in missing.stderr


def test_grpcurl_reaches_an_mtls_orchestrator_only_with_a_certificate_from_its_ca(
    parties: Parties, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    _, target = _serve(processes, tmp_path, *parties.orchestrator.args())
    listed = _grpcurl(*_mtls(parties.user), target, "list")
    assert listed.returncode == 0, listed.stderr
    assert "baton.v1.Orchestrator" in listed.stdout.split()
    health = _grpcurl(*_mtls(parties.user), target, "baton.v1.Orchestrator/GetSystemHealth")
    assert health.returncode == 0, health.stderr
    assert json.loads(health.stdout)["overall_health"]
    assert _grpcurl("-cacert", str(parties.user.ca), target, "list").returncode != 0
    assert _grpcurl(*_mtls(parties.stranger), target, "list").returncode != 0
    assert _grpcurl("-plaintext", target, "list").returncode != 0


def _envoy_serial(address: str, parties: Parties) -> int:
    context = ssl.create_default_context(cafile=str(parties.user.ca))
    context.load_cert_chain(str(parties.user.cert), str(parties.user.key))
    host, _, port = address.rpartition(":")
    with (
        socket.create_connection((host, int(port)), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return peer_serial(der)


def _replace(issued: Issued, files: TlsFiles) -> None:
    """Moves new files into place (Envoy watches its certificates' directory for files moved in)."""
    for data, path in ((issued.cert_pem, files.cert), (issued.key_pem, files.key)):
        staged = path.with_suffix(".new")
        staged.write_bytes(data)
        os.replace(staged, path)


def test_serve_http_with_mtls_serves_rest_and_grpc_over_mtls_and_reloads_envoys_certificate(
    parties: Parties, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    server, target = _serve(processes, tmp_path, "--http", "127.0.0.1:0", *parties.orchestrator.args())
    found = re.search(r"https://(\S+) \(Envoy pid", wait_for_line(server, "baton REST API on"))
    assert found, output_of(server)
    front = found[1]
    # REST over HTTPS with a client certificate (the front requires one, as the gRPC port does).
    context = ssl.create_default_context(cafile=str(parties.user.ca))
    context.load_cert_chain(str(parties.user.cert), str(parties.user.key))
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=context))
    with opener.open(f"https://{front}/api/v1/orchestration/health", timeout=20) as reply:
        assert reply.status == 200
        assert json.loads(reply.read())["overall_health"] == "healthy"
    # gRPC through Envoy, which talks mTLS to the server.
    health = _grpcurl(*_mtls(parties.user), front, "baton.v1.Orchestrator/GetSystemHealth")
    assert health.returncode == 0, health.stderr + output_of(server)
    assert _grpcurl("-cacert", str(parties.user.ca), front, "list").returncode != 0
    # New files moved into place: Envoy's next handshake shows the new certificate, no restart.
    assert _envoy_serial(front, parties) == peer_serial(parties.orchestrator.cert.read_bytes())
    renewed = parties.ca.server("orchestrator")
    _replace(renewed, parties.orchestrator)
    deadline = time.monotonic() + 10
    while _envoy_serial(front, parties) != renewed.serial:
        assert time.monotonic() < deadline, "Envoy did not reload the certificate"
        time.sleep(0.1)
    assert _envoy_serial(target, parties) == renewed.serial  # and the server's own port


async def test_a_standalone_front_proxy_terminates_tls_and_talks_mtls_to_the_orchestrator(
    parties: Parties, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    _, target = _serve(processes, tmp_path, *parties.orchestrator.args())
    # Envoy's own client certificate, from the orchestrator's CA; its listener needs none.
    envoy_files = write_party(parties.ca, parties.ca.server("envoy"), tmp_path / "envoy", "tls")
    workdir = Path(tempfile.mkdtemp(dir=tmp_path))
    (workdir / "baton.pb").write_bytes(descriptor_set_bytes())
    tls = Tls(
        sds_dir=str(workdir),
        listener=Certificates(cert=str(envoy_files.cert), key=str(envoy_files.key)),
        upstream=Certificates(cert=str(envoy_files.cert), key=str(envoy_files.key), ca=str(envoy_files.ca)),
        upstream_server_name="localhost",
    )
    for name, text in sds_files(tls).items():
        (workdir / name).write_text(text)
    spec = FrontProxy(
        listen=Endpoint("127.0.0.1", 0),
        orchestrators=(Endpoint.parse(target.replace("127.0.0.1", "localhost"), "orchestrator"),),
        descriptor_path=str(workdir / "baton.pb"),
        admin=Endpoint("127.0.0.1", 0),
        tls=tls,
    )
    envoy = await start_envoy(front_proxy_config(spec), workdir, listener="front")
    try:
        front = str(envoy.listen)
        health = _grpcurl(
            "-cacert", str(envoy_files.ca), "-servername", "localhost", front, "grpc.health.v1.Health/Check"
        )
        assert health.returncode == 0, health.stderr
        assert json.loads(health.stdout)["status"] == "SERVING"
        status = _grpcurl("-cacert", str(envoy_files.ca), front, "baton.v1.Orchestrator/GetSystemHealth")
        assert status.returncode == 0, status.stderr
        assert _grpcurl("-plaintext", front, "list").returncode != 0
    finally:
        await envoy.stop()


def test_serve_refuses_plaintext_on_a_network_address_unless_asked_and_then_says_so(
    tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    port = free_port()
    refused = _cli(
        "serve", "--listen", f"0.0.0.0:{port}", "--store", f"sqlite:///{tmp_path}/a.db", "--auth", "none", env={}
    )
    assert refused.returncode == 2
    assert f"listen: 0.0.0.0:{port} is not a loopback address" in refused.stderr
    assert "--plaintext" in refused.stderr
    proc = spawn(
        "-m",
        "server.cli",
        "serve",
        "--listen",
        f"0.0.0.0:{port}",
        "--store",
        f"sqlite:///{tmp_path}/b.db",
        "--plaintext",
        "--auth",
        "none",
    )
    processes.append(proc)
    assert "PLAINTEXT on a network address" in wait_for_line(proc, "baton transport:")
    agents = _cli("agents", "serve", "--listen", f"0.0.0.0:{free_port()}", env={})
    assert agents.returncode == 2 and "is not a loopback address" in agents.stderr


def test_the_cli_verifies_the_servers_name_and_can_use_the_system_roots(
    parties: Parties, tmp_path: Path, processes: list[subprocess.Popen[str]]
) -> None:
    # A TLS-only server whose certificate names a DNS name, not the address dialled.
    named = write_party(
        parties.ca, parties.ca.server("orchestrator", ("orchestrator.internal",)), tmp_path / "n", "tls"
    )
    _, target = _serve(processes, tmp_path, "--tls-cert", str(named.cert), "--tls-key", str(named.key))
    ca = ["--tls-ca", str(named.ca)]
    mismatch = _cli("health", "--target", target, *ca, env={})
    assert mismatch.returncode == 1 and "UNAVAILABLE" in mismatch.stderr
    named_ok = _cli("health", "--target", target, *ca, "--tls-server-name", "orchestrator.internal", env={})
    assert named_ok.returncode == 0, named_ok.stderr
    # --tls alone verifies against the system's roots (gRPC's, which this variable replaces).
    roots = {"GRPC_DEFAULT_SSL_ROOTS_FILE_PATH": str(named.ca), "BATON_TLS_SERVER_NAME": "orchestrator.internal"}
    system = _cli("health", "--target", target, "--tls", env=roots)
    assert system.returncode == 0, system.stderr
    assert _cli("health", "--target", target, env={}).returncode == 1  # plaintext to a TLS port
