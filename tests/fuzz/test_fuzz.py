"""The CI-sized fuzz run: a few thousand generated requests and raw bytes on every RPC of both ports.

The server never answers INTERNAL or UNKNOWN, never dies, is healthy after, still runs a journey,
and leaks no task. The long run is ``python -m tests.fuzz`` (README: Fuzzing).
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.fuzz.__main__ import summary
from tests.fuzz.campaign import run
from tests.fuzz.runner import Fuzzer
from tests.fuzz.target import ServerThread

CASES = 7000
SEED = 20260611


@pytest.fixture
def fuzzer() -> Iterator[Fuzzer]:
    target = ServerThread().start()
    fuzzer = Fuzzer(target)
    try:
        yield fuzzer
    finally:
        fuzzer.close()
        target.stop()


@pytest.mark.timeout(600)
def test_every_rpc_survives_generated_requests_and_raw_bytes_without_internal_or_unknown(fuzzer: Fuzzer) -> None:
    started = time.monotonic()
    fuzzer.baseline()
    run(fuzzer, seed=SEED, cases=CASES)
    stats = fuzzer.finish()
    report = summary(stats, time.monotonic() - started)
    print(report)
    assert stats.requests >= CASES * 0.95, report
    assert stats.raw_requests > CASES * 0.05, report
    assert stats.executions, report
    # Every method was called, on both ports.
    assert set(stats.per_method) == {m.key for m in fuzzer.methods}, report
    assert not stats.findings, report
    assert all(result == "ok" for result in stats.checks.values()), report
