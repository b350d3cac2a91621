"""TLS files checked at start-up: each wrong file is a ConfigError naming the flag, the file and what is wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from agents_clients.tls import TlsError, TlsFiles, is_loopback, load
from server.config import ConfigError, ServerConfig
from server.tls import transport
from tests.tls_support import TestCA


@pytest.fixture
def ca() -> TestCA:
    return TestCA()


def _files(ca: TestCA, tmp_path: Path, **kw: bool) -> TlsFiles:
    cert, key = ca.server(**kw).write(tmp_path, "server") if kw else ca.server().write(tmp_path, "server")
    return TlsFiles(cert=str(cert), key=str(key), ca=str(ca.write(tmp_path / "ca.crt")))


def test_good_files_load_with_the_certificates_serial_and_names(ca: TestCA, tmp_path: Path) -> None:
    files = _files(ca, tmp_path)
    material = load(files)
    assert material.serial is not None
    assert {"baton-server", "localhost", "127.0.0.1", "::1"} <= set(material.names)
    assert material.ca_pem == ca.cert_pem


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        ("missing cert", "--tls-cert: no such file"),
        ("cert not PEM", "holds no PEM block"),
        ("cert PEM of something else", "holds no valid PEM certificate"),
        ("missing key", "--tls-key: no such file"),
        ("key not a key", "--tls-key:"),
        ("key of another certificate", "does not match the certificate"),
        ("encrypted key", "is encrypted"),
        ("missing ca", "--tls-ca: no such file"),
        ("ca not PEM", "--tls-ca:"),
    ],
)
def test_a_wrong_file_is_an_error_naming_the_flag_and_the_file(
    ca: TestCA, tmp_path: Path, damage: str, expected: str
) -> None:
    files = _files(ca, tmp_path)
    paths = {"cert": files.cert, "key": files.key, "ca": files.ca}
    target = next(paths[word] for word in damage.split() if word in paths)
    other_key = ec.generate_private_key(ec.SECP256R1())
    if damage.startswith("missing"):
        Path(target).unlink()
    elif damage.endswith("not PEM"):
        Path(target).write_text("hello")
    elif damage == "cert PEM of something else":
        Path(target).write_bytes(Path(files.key).read_bytes())
    elif damage == "key not a key":
        Path(target).write_bytes(Path(files.cert).read_bytes())
    elif damage == "key of another certificate":
        Path(target).write_bytes(
            other_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
    elif damage == "encrypted key":
        Path(target).write_bytes(
            other_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"secret"),
            )
        )
    with pytest.raises(TlsError) as error:
        load(files)
    assert expected in str(error.value)
    assert target in str(error.value)


def test_an_expired_certificate_is_an_error_with_its_date(ca: TestCA, tmp_path: Path) -> None:
    cert, key = ca.issue("old", ("localhost",), expired=True).write(tmp_path, "old")
    with pytest.raises(TlsError, match=r"--tls-cert: the certificate in .*old.crt' expired on \d{4}-\d\d-\d\d"):
        load(TlsFiles(cert=str(cert), key=str(key)))


def test_a_certificate_without_its_key_or_a_ca_without_a_certificate_is_refused(ca: TestCA, tmp_path: Path) -> None:
    files = _files(ca, tmp_path)
    with pytest.raises(TlsError, match="--tls-cert needs --tls-key"):
        load(TlsFiles(cert=files.cert))
    with pytest.raises(ConfigError, match="--tls-ca needs --tls-cert and --tls-key"):
        transport(ServerConfig(listen="127.0.0.1:0", tls=TlsFiles(ca=files.ca)), ())


def test_the_server_reports_bad_files_as_config_errors_before_binding(ca: TestCA, tmp_path: Path) -> None:
    files = _files(ca, tmp_path)
    Path(files.key).write_text("-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError, match=f"--tls-key: '{files.key}' holds no valid PEM private key"):
        transport(ServerConfig(listen="127.0.0.1:0", tls=files), ())
    with pytest.raises(ConfigError, match="--agents-tls-ca: no such file"):
        transport(ServerConfig(listen="127.0.0.1:0", agents_tls_ca=str(tmp_path / "none.crt")), ["127.0.0.1:1"])


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.3.2.1", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("", False),
        ("10.0.0.5", False),
        ("baton.example.com", False),
    ],
)
def test_only_loopback_hosts_count_as_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_plaintext_on_a_network_address_is_refused_unless_asked_for() -> None:
    with pytest.raises(ConfigError, match=r"listen: 0\.0\.0\.0:0 is not a loopback address .* --plaintext"):
        transport(ServerConfig(listen="0.0.0.0:0", auth="none"), ())
    allowed = transport(ServerConfig(listen="0.0.0.0:0", plaintext=True, auth="none"), ())
    assert allowed.exposed and "PLAINTEXT on a network address" in allowed.description


def test_plaintext_calls_to_agents_off_loopback_are_refused_unless_asked_for(ca: TestCA, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"agents: 10\.0\.0\.7:50061 is not a loopback address"):
        transport(ServerConfig(listen="127.0.0.1:0"), ["127.0.0.1:50061", "10.0.0.7:50061"])
    assert transport(ServerConfig(listen="127.0.0.1:0", plaintext=True), ["10.0.0.7:50061"]).agents is None
    # With the orchestrator's certificate the calls are mTLS, and allowed anywhere.
    secured = transport(ServerConfig(listen="0.0.0.0:0", tls=_files(ca, tmp_path), auth="none"), ["10.0.0.7:50061"])
    assert secured.agents is not None and "agents over mTLS" in secured.description
    assert secured.description.startswith("mTLS")


def test_the_embedded_default_is_plaintext_on_loopback_and_says_so() -> None:
    described = transport(ServerConfig(), ()).description
    assert described.startswith("plaintext on loopback only")
    assert "embedded agents in-process" in described


def test_the_bundled_envoy_follows_the_ports_rules(ca: TestCA, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"http: 0\.0\.0\.0:8080 is not a loopback address"):
        transport(ServerConfig(listen="127.0.0.1:0", http="0.0.0.0:8080"), ())
    assert transport(ServerConfig(listen="127.0.0.1:0", http="127.0.0.1:8080"), ()).server is None
    # Under mTLS Envoy presents the server's certificate as its client certificate: it must come from the CA.
    files = _files(ca, tmp_path)
    assert transport(ServerConfig(listen="127.0.0.1:0", http="0.0.0.0:8080", tls=files), ()).server is not None
    foreign = TlsFiles(cert=files.cert, key=files.key, ca=str(TestCA("another").write(tmp_path / "other.crt")))
    with pytest.raises(ConfigError, match="must be issued by the CA of --tls-ca"):
        transport(ServerConfig(listen="127.0.0.1:0", http="127.0.0.1:8080", tls=foreign), ())
    assert transport(ServerConfig(listen="127.0.0.1:0", tls=foreign), ()).server is not None  # no Envoy: fine
