"""A test certificate authority made with `cryptography`: CAs, server and client certificates as PEM files."""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
"""The names a loopback server's certificate holds (DNS and IP SANs)."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _san(names: tuple[str, ...]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@dataclass(frozen=True)
class Issued:
    """A certificate and its key, as PEM, with the certificate's serial number."""

    cert_pem: bytes
    key_pem: bytes
    serial: int

    def write(self, directory: Path, stem: str) -> tuple[Path, Path]:
        """Writes STEM.crt and STEM.key into `directory`; returns their paths."""
        cert, key = directory / f"{stem}.crt", directory / f"{stem}.key"
        cert.write_bytes(self.cert_pem)
        key.write_bytes(self.key_pem)
        return cert, key


class TestCA:
    """A self-signed certificate authority issuing server and client certificates."""

    __test__ = False  # not a pytest test class, whatever its name

    def __init__(self, name: str = "baton test CA") -> None:
        self._key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC)
        self._name = _name(name)
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(self._name)
            .issuer_name(self._name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.cert_pem = self.cert.public_bytes(serialization.Encoding.PEM)

    def write(self, path: Path) -> Path:
        """Writes the CA certificate (PEM) to `path`; returns it."""
        path.write_bytes(self.cert_pem)
        return path

    def issue(
        self,
        common_name: str,
        names: tuple[str, ...] = (),
        *,
        server: bool = True,
        client: bool = True,
        expired: bool = False,
    ) -> Issued:
        """Issues a certificate for `common_name` with `names` as SANs (IP addresses or DNS names).

        With `expired`, its validity ended a day ago.
        """
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2 if expired else 0)
        serial = x509.random_serial_number()
        usages = [
            u for u, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client)) if on
        ]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self._name)
            .public_key(key.public_key())
            .serial_number(serial)
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
        )
        if names:
            builder = builder.add_extension(_san(names), critical=False)
        cert = builder.sign(self._key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key), serial)

    def server(self, common_name: str = "baton-server", names: tuple[str, ...] = LOOPBACK_NAMES) -> Issued:
        """A certificate a loopback server presents (also usable as its client certificate)."""
        return self.issue(common_name, names)

    def client(self, common_name: str, names: tuple[str, ...] = ()) -> Issued:
        """A client certificate for `common_name` (its DNS SANs: `names`)."""
        return self.issue(common_name, names, server=False)


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files of one party: its certificate, key and the CA it trusts."""

    cert: Path
    key: Path
    ca: Path

    def args(self, prefix: str = "--tls") -> list[str]:
        """`--tls-cert C --tls-key K --tls-ca A` (with another prefix: `--agents-tls`…)."""
        return [f"{prefix}-cert", str(self.cert), f"{prefix}-key", str(self.key), f"{prefix}-ca", str(self.ca)]


def write_party(ca: TestCA, issued: Issued, directory: Path, stem: str) -> TlsFiles:
    """Writes a party's certificate, key and the CA into `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    cert, key = issued.write(directory, stem)
    return TlsFiles(cert, key, ca.write(directory / "ca.crt"))


def peer_serial(cert_pem_or_der: bytes) -> int:
    """The serial number of a certificate given as PEM or DER."""
    if cert_pem_or_der.startswith(b"-----"):
        return int(x509.load_pem_x509_certificate(cert_pem_or_der).serial_number)
    return int(x509.load_der_x509_certificate(cert_pem_or_der).serial_number)
