"""Shared fixtures: a real orchestrator with the reference fleet on loopback, over real SQLite."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
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
    """An orchestrator on 127.0.0.1:0 with the embedded reference fleet and a fresh SQLite store."""
    running = await start_server(
        ServerConfig(listen="127.0.0.1:0", store_url=f"sqlite:///{tmp_path}/baton.db", agents="embedded")
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
    """Reads the process's stdout until a line contains `needle`."""
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if needle in line:
            return line
        if not line and proc.poll() is not None:
            raise AssertionError(f"process exited with {proc.returncode} before printing {needle!r}")
    raise AssertionError(f"no {needle!r} within {timeout}s")


def spawn(*args: str, **kwargs: Any) -> subprocess.Popen[str]:
    """Starts `python -m ...` from the repo root with unbuffered output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.Popen(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        **kwargs,
    )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test starts; killed at the end whatever happens."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)
