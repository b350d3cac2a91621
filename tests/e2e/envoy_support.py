"""Helpers of the Envoy end-to-end tests: JSON over HTTP with the standard library, processes' liveness."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HTTP_TIMEOUT = 30.0
"""Seconds any one HTTP request may take before the test fails."""

_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""An opener that ignores proxies named in the environment: the tests talk to loopback only."""


def call(method: str, url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    """Sends one JSON request; returns the status and the decoded JSON body."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with _DIRECT.open(request, timeout=HTTP_TIMEOUT) as reply:
            return int(reply.status), json.loads(reply.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return int(error.code), json.loads(text)
        except json.JSONDecodeError:
            return int(error.code), text.decode()


def stream_lines(address: str, path: str) -> Iterator[dict[str, Any]]:
    """GETs a streaming endpoint and yields each newline-delimited JSON object as it arrives."""
    host, _, port = address.rpartition(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=HTTP_TIMEOUT)
    try:
        connection.request("GET", path)
        reply = connection.getresponse()
        if reply.status != 200:
            raise AssertionError(f"GET {path}: {reply.status} {reply.read()!r}")
        while line := reply.readline():
            if line.strip():
                yield json.loads(line)
    finally:
        connection.close()


def alive(pid: int) -> bool:
    """Whether a process exists and has not exited (a zombie has exited)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


def wait_until_gone(pid: int, timeout: float = 15.0) -> bool:
    """Polls until the process has exited; False if it still runs after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
