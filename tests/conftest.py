"""Shared fixtures: a real orchestrator with the reference fleet on loopback, over real SQLite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from baton.v1 import orchestrator_pb2_grpc

from server.app import RunningServer, start_server
from server.config import ServerConfig

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
async def orchestrator(tmp_path: Path) -> AsyncIterator[RunningServer]:
    """An orchestrator on 127.0.0.1:0 with the embedded reference fleet and a fresh SQLite store.

    The fleet serves FaultInjection (off by default), which many tests use to slow or fail agents.
    """
    running = await start_server(
        ServerConfig(
            listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded", agent_faults=True
        )
    )
    try:
        yield running
    finally:
        await running.stop(grace=0.5)


@pytest.fixture
async def stub(orchestrator: RunningServer) -> AsyncIterator[orchestrator_pb2_grpc.OrchestratorStub]:
    async with grpc.aio.insecure_channel(orchestrator.address) as channel:
        yield orchestrator_pb2_grpc.OrchestratorStub(channel)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_line(proc: subprocess.Popen[str], needle: str, timeout: float = 20.0) -> str:
    """Polls the process's log until a line contains `needle`."""
    log = _LOGS[proc.pid]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in log.read_text().splitlines():
            if needle in line:
                return line
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited with {proc.returncode} before printing {needle!r}:\n{log.read_text()}"
            )
        time.sleep(0.05)
    raise AssertionError(f"no {needle!r} within {timeout}s:\n{log.read_text()}")


_LOGS: dict[int, Path] = {}


def spawn(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Starts `python ARGS` from the repo root, its output going to a log file (never a full pipe)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    log = Path(tempfile.mkstemp(prefix="baton-test-", suffix=".log")[1])
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, *args], cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, text=True, **kwargs
        )
    _LOGS[proc.pid] = log
    return proc


def serve_orchestrator(
    processes: list[subprocess.Popen[str]], store: Path | str, agents: str = "embedded", *extra: str, port: int = 0
) -> tuple[subprocess.Popen[str], str]:
    """Runs `baton serve` as a process (as a user would) and waits until it serves.

    Args:
        processes: where the process is recorded (killed at the end of the test).
        store: a SQLite file, or a store URL (``postgresql://...``).
        agents: the --agents argument.
        extra: more arguments.
        port: the port to listen on; a free one by default.

    Returns:
        The process and its HOST:PORT.
    """
    port = port or free_port()
    proc = spawn(
        "-m",
        "server.cli",
        "serve",
        "--listen",
        f"127.0.0.1:{port}",
        "--store",
        store if isinstance(store, str) else f"sqlite:///{store}",
        "--agents",
        agents,
        *extra,
    )
    processes.append(proc)
    wait_for_line(proc, "baton serving on")
    return proc, f"127.0.0.1:{port}"


def output_of(proc: subprocess.Popen[str]) -> str:
    """What the process printed so far."""
    return _LOGS[proc.pid].read_text()


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed at the end whatever happens."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
        log = _LOGS.pop(proc.pid, None)
        if log is not None:
            log.unlink(missing_ok=True)
