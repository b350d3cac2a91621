"""TLS and mTLS for baton's gRPC servers and channels, from PEM files that are reloaded when they change.

Shared by the orchestrator (its port, its channels to the agents, the CLI's channels) and the
reference agents (their port), so it imports nothing of either.

Rules:

- **Checked at start.** A certificate, key or CA file that is missing, unreadable, not PEM, a key
  that does not match its certificate, or a certificate that has expired is a TlsError naming the
  setting, the file and what is wrong, before anything listens.
- **Reloaded, never dropped.** A server asks for its certificates on every TLS handshake
  (grpc.dynamic_ssl_server_credentials); the files' stat signatures say whether to read them
  again, so a new connection sees new files at once. Channels cannot change credentials, so a
  client checks at most once per `interval` and its owner rebuilds the channels. A replacement
  that does not load (a key written before its certificate, say) is logged once and the
  previous certificates stay in use until the files change again.
- **Names on top of the CA.** With mTLS the CA decides who may connect; an allow-list of client
  names (a SAN or the CN of the client certificate) narrows who may call. grpc.health.v1 is
  exempt from the names (not from the CA), so proxies and probes holding a certificate from the
  CA can tell whether a server is up.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization

logger = logging.getLogger(__name__)

HEALTH_SERVICE = "grpc.health.v1.Health"
"""The service every server answers without a name check (the CA still applies)."""


class TlsError(ValueError):
    """A TLS setting or file is wrong; the message names the setting, the file and what is wrong."""


def is_loopback(host: str) -> bool:
    """Whether a listen or dial host is loopback only (127.0.0.0/8, ::1 or localhost).

    A wildcard (0.0.0.0, ::, empty) and any other name are not: they may be reached from elsewhere.
    """
    host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class TlsFiles:
    """Where one party's PEM files are; empty strings mean "not given"."""

    cert: str = ""
    """The certificate chain this party presents (leaf first)."""
    key: str = ""
    """The private key of that certificate (unencrypted PEM)."""
    ca: str = ""
    """CA certificates this party trusts to verify its peers: on a server, client certificates
    are then required (mTLS); on a client, the server's certificate is verified against them
    (else against the system's roots)."""
    setting: str = "--tls"
    """The flag prefix named in errors: `--tls` names --tls-cert, --tls-key and --tls-ca."""

    @property
    def identity(self) -> bool:
        """Whether a certificate and key are given."""
        return bool(self.cert or self.key)

    def check(self, *, need_identity: bool = False) -> None:
        """Checks which files are given together (not their contents).

        Raises:
            TlsError: a certificate without its key or a key without its certificate, or (with
                `need_identity`) neither.
        """
        if bool(self.cert) != bool(self.key):
            given, missing = ("cert", "key") if self.cert else ("key", "cert")
            raise TlsError(f"{self.setting}-{given} needs {self.setting}-{missing} too")
        if need_identity and not self.cert:
            raise TlsError(f"{self.setting}-cert and {self.setting}-key are needed")


@dataclass(frozen=True)
class TlsMaterial:
    """The PEM bytes of one party, checked."""

    cert_pem: bytes | None
    key_pem: bytes | None
    ca_pem: bytes | None
    serial: int | None
    """The leaf certificate's serial number (None without a certificate)."""
    names: tuple[str, ...]
    """The leaf certificate's CN and SANs."""


def _read(path: str, setting: str) -> bytes:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise TlsError(f"{setting}: no such file {path!r}") from None
    except OSError as exc:
        raise TlsError(f"{setting}: cannot read {path!r}: {exc.strerror or exc}") from None
    if b"-----BEGIN" not in data:
        raise TlsError(f"{setting}: {path!r} holds no PEM block (expected -----BEGIN …-----)")
    return data


def _certificates(path: str, setting: str, data: bytes) -> list[x509.Certificate]:
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise TlsError(f"{setting}: {path!r} holds no valid PEM certificate ({exc})") from None
    return certificates


def _names(cert: x509.Certificate) -> tuple[str, ...]:
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return tuple(names)
    names += [str(v) for v in san.get_values_for_type(x509.DNSName)]
    names += [str(v) for v in san.get_values_for_type(x509.IPAddress)]
    names += [str(v) for v in san.get_values_for_type(x509.UniformResourceIdentifier)]
    return tuple(names)


def _spki(public_key: Any) -> bytes:
    return bytes(public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))


def load(files: TlsFiles, *, now: datetime.datetime | None = None) -> TlsMaterial:
    """Reads and checks the files.

    Args:
        files: the files; only those given are read.
        now: the time the certificate must be valid at (default: now).

    Raises:
        TlsError: a file is missing, unreadable or wrong; the message names the setting and file.
    """
    files.check()
    cert_pem = key_pem = ca_pem = None
    serial = None
    names: tuple[str, ...] = ()
    if files.cert:
        setting = f"{files.setting}-cert"
        cert_pem = _read(files.cert, setting)
        leaf = _certificates(files.cert, setting, cert_pem)[0]
        moment = now or datetime.datetime.now(datetime.UTC)
        if leaf.not_valid_after_utc < moment:
            raise TlsError(
                f"{setting}: the certificate in {files.cert!r} expired on {leaf.not_valid_after_utc:%Y-%m-%d}"
            )
        # A few minutes of clock skew between the issuer and this host are not an error.
        if leaf.not_valid_before_utc > moment + datetime.timedelta(minutes=5):
            raise TlsError(
                f"{setting}: the certificate in {files.cert!r} is not valid before "
                f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC"
            )
        serial, names = leaf.serial_number, _names(leaf)
        setting = f"{files.setting}-key"
        key_pem = _read(files.key, setting)
        try:
            key = serialization.load_pem_private_key(key_pem, password=None)
        except TypeError:
            raise TlsError(f"{setting}: the key in {files.key!r} is encrypted; give an unencrypted key") from None
        except (ValueError, UnsupportedAlgorithm) as exc:
            raise TlsError(f"{setting}: {files.key!r} holds no valid PEM private key ({exc})") from None
        if _spki(key.public_key()) != _spki(leaf.public_key()):
            raise TlsError(f"{setting}: the key in {files.key!r} does not match the certificate in {files.cert!r}")
    if files.ca:
        setting = f"{files.setting}-ca"
        ca_pem = _read(files.ca, setting)
        _certificates(files.ca, setting, ca_pem)
    return TlsMaterial(cert_pem, key_pem, ca_pem, serial, names)


def issued_by(cert_pem: bytes, ca_pem: bytes) -> bool:
    """Whether a certificate chain (PEM) was issued by one of the CA certificates (PEM) given."""
    chain = x509.load_pem_x509_certificates(cert_pem)
    authorities = x509.load_pem_x509_certificates(ca_pem)
    for cert in chain:
        for authority in authorities:
            try:
                cert.verify_directly_issued_by(authority)
            except (ValueError, TypeError, InvalidSignature):
                continue
            return True
    return False


def _signature(paths: Iterable[str]) -> tuple[tuple[int, int, int, int], ...]:
    """What changes when a file is replaced or rewritten (a Kubernetes Secret's symlink swap included)."""
    signature = []
    for path in paths:
        try:
            st = os.stat(path)
        except OSError:
            signature.append((0, 0, -1, 0))
            continue
        signature.append((st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    return tuple(signature)


class _Reloader:
    """Holds the current material of some files and reloads it when their signature changes."""

    def __init__(self, files: TlsFiles, interval: float) -> None:
        self.files = files
        self._paths = [p for p in (files.cert, files.key, files.ca) if p]
        self._interval = interval
        self._seen = _signature(self._paths)
        self.material = load(files)
        self._checked = time.monotonic()

    def reload(self) -> bool:
        """Reloads the files if they changed since last seen; True if new material is in use."""
        if self._interval > 0:
            moment = time.monotonic()
            if moment - self._checked < self._interval:
                return False
            self._checked = moment
        signature = _signature(self._paths)
        if signature == self._seen:
            return False
        self._seen = signature  # a bad replacement is reported once, and retried when it changes again
        try:
            material = load(self.files)
        except TlsError as exc:
            logger.error("TLS files changed but cannot be used, keeping the previous ones: %s", exc)
            return False
        self.material = material
        logger.info("TLS files reloaded (certificate serial %s)", material.serial)
        return True


class ServerTls:
    """A server's TLS: credentials that pick up new files on the next handshake."""

    def __init__(self, files: TlsFiles) -> None:
        """Loads the files.

        Raises:
            TlsError: the files are missing or wrong (a certificate and key are required).
        """
        files.check(need_identity=True)
        self._reloader = _Reloader(files, interval=0.0)
        self.mutual = bool(files.ca)
        """Whether clients must present a certificate from the CA."""

    @property
    def material(self) -> TlsMaterial:
        """The certificates in use."""
        return self._reloader.material

    def _configuration(self) -> grpc.ServerCertificateConfiguration:
        m = self._reloader.material
        return grpc.ssl_server_certificate_configuration([(m.key_pem, m.cert_pem)], root_certificates=m.ca_pem)

    def _fetch(self) -> grpc.ServerCertificateConfiguration | None:
        # Called by gRPC on every handshake, on its own thread: None keeps the configuration.
        try:
            return self._configuration() if self._reloader.reload() else None
        except Exception:
            logger.exception("TLS reload failed; keeping the previous certificates")
            return None

    def credentials(self) -> grpc.ServerCredentials:
        """Credentials for `server.add_secure_port`, reloading the files as they change."""
        return grpc.dynamic_ssl_server_credentials(
            self._configuration(), self._fetch, require_client_authentication=self.mutual
        )

    def describe(self) -> str:
        """How this server secures its port, for the start-up line."""
        files = self._reloader.files
        if self.mutual:
            return f"mTLS (certificate {files.cert}; clients need a certificate from {files.ca})"
        return f"TLS (certificate {files.cert}; no client certificates)"


class ClientTls:
    """A client's TLS: channel credentials from files, rebuilt when the files change."""

    def __init__(self, files: TlsFiles, *, interval: float = 1.0) -> None:
        """Loads the files (a certificate and key are optional: they make it mTLS).

        Args:
            files: the client certificate and key (optional) and the CA that verifies servers
                (else the system's roots).
            interval: seconds between checks of the files in `refresh`.

        Raises:
            TlsError: the files are missing or wrong.
        """
        self._reloader = _Reloader(files, interval)
        self._credentials = self._build()

    def _build(self) -> grpc.ChannelCredentials:
        m = self._reloader.material
        return grpc.ssl_channel_credentials(
            root_certificates=m.ca_pem, private_key=m.key_pem, certificate_chain=m.cert_pem
        )

    @property
    def material(self) -> TlsMaterial:
        """The certificates in use."""
        return self._reloader.material

    def credentials(self) -> grpc.ChannelCredentials:
        """The current channel credentials."""
        return self._credentials

    def refresh(self) -> bool:
        """Checks the files (at most once per interval); True if they changed and new credentials are in use."""
        if not self._reloader.reload():
            return False
        self._credentials = self._build()
        return True

    def channel(
        self,
        target: str,
        options: Iterable[tuple[str, Any]] = (),
        interceptors: Sequence[grpc.aio.ClientInterceptor] | None = None,
    ) -> grpc.aio.Channel:
        """A new secure channel to `target` with the current credentials."""
        return grpc.aio.secure_channel(target, self._credentials, options=tuple(options), interceptors=interceptors)


def peer_names(context: grpc.aio.ServicerContext[Any, Any]) -> tuple[str, ...]:
    """The names in the client certificate of a call: its SANs, then its CN; () without one."""
    auth = context.auth_context()
    names = [*auth.get("x509_subject_alternative_name", ()), *auth.get("x509_common_name", ())]
    return tuple(n.decode(errors="replace") for n in names)


class AllowedClients(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Refuses calls whose client certificate names none of `allowed` (PERMISSION_DENIED).

    Needs mTLS: without a client certificate a call has no names and is refused. grpc.health.v1
    is exempt (see the module's rules).
    """

    def __init__(self, allowed: Iterable[str]) -> None:
        self.allowed = frozenset(allowed)

    async def _check(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        names = peer_names(context)
        if not self.allowed.intersection(names):
            shown = ", ".join(names[:4])[:200] or "none (no client certificate)"
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED,
                f"client certificate names {shown}; this server accepts only {', '.join(sorted(self.allowed))}",
            )

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method or ""
        if handler is None or method.startswith(f"/{HEALTH_SERVICE}/"):
            return handler
        return _guarded(handler, self._check)


def _guarded(
    handler: grpc.RpcMethodHandler, check: Callable[[grpc.aio.ServicerContext[Any, Any]], Awaitable[None]]
) -> grpc.RpcMethodHandler:
    """The handler with `check` run before its behaviour, whatever its kind."""

    async def run(behavior: Callable[..., Any], request: Any, context: Any) -> Any:
        await check(context)
        return behavior(request, context)

    def unary(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: Any) -> Any:
            result = await run(behavior, request, context)
            return await result if isinstance(result, Awaitable) else result

        return call

    def streaming(behavior: Callable[..., Any]) -> Callable[..., Any]:
        async def call(request: Any, context: Any) -> AsyncIterator[Any]:
            result = await run(behavior, request, context)
            if isinstance(result, Awaitable):
                await result  # a handler that writes with context.write() and returns nothing
                return
            async for item in result:
                yield item

        return call

    kinds = (
        (handler.unary_unary, unary, grpc.unary_unary_rpc_method_handler),
        (handler.stream_unary, unary, grpc.stream_unary_rpc_method_handler),
        (handler.unary_stream, streaming, grpc.unary_stream_rpc_method_handler),
        (handler.stream_stream, streaming, grpc.stream_stream_rpc_method_handler),
    )
    for behavior, wrap, make in kinds:
        if behavior is not None:
            return make(
                wrap(behavior),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
    return handler
