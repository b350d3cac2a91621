"""Drives Hypothesis over every method: one example is one call (a request built from the method's
descriptor, or raw bytes), judged by the `Fuzzer`'s oracle; a run is batches of examples, each
batch seeded from the run's seed, until a number of cases or a time is reached."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from tests.fuzz.domain import requests
from tests.fuzz.runner import Fuzzer, Method
from tests.fuzz.strategies import odds

__all__ = ["RAW_SHARE", "run"]

_CREATES = ("/baton.v1.Orchestrator/ExecuteWorkflow", "/baton.v1.SeedApi/Execute")

RAW_SHARE = 0.15
"""The share of calls that send raw bytes instead of a built request."""
BATCH = 100
"""Examples per Hypothesis run (a time-bounded run checks the clock between batches)."""

# Bytes no decoder should trust: field number 0, wire types 6 and 7, an 11-byte varint, a length
# past the end, a length of 2**64-1, an unterminated group, and nesting 200 levels deep.
_WIRE_TRAPS = (
    b"\x00",
    b"\x0e",
    b"\x0f",
    b"\x08" + b"\xff" * 11,
    b"\x0a\xff",
    b"\x0a" + b"\xff" * 9 + b"\x01",
    b"\x0b",
    b"\x0a\x80\x80\x80\x80\x10",
    b"\x0a\x00" * 1000,
    b"\x12\x02\x0a\x00",
)


def _nested(depth: int, tag: int) -> bytes:
    inner = b""
    for _ in range(depth):
        inner = bytes([tag]) + _varint(len(inner)) + inner
    return inner


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


@st.composite
def _raw(draw: st.DrawFn, method: Method, fuzzer: Fuzzer) -> bytes:
    """Random bytes, a trap, deep nesting, or a valid request mutated (cut, flipped, spliced)."""
    roll = odds(draw)
    if roll < 0.35:
        return draw(st.binary(max_size=64))
    if roll < 0.5:
        return draw(st.sampled_from(_WIRE_TRAPS))
    if roll < 0.6:
        return _nested(
            draw(st.sampled_from([50, 101, 200, 1000])), draw(st.sampled_from([0x0A, 0x12, 0x1A, 0x22, 0x32]))
        )
    valid = bytearray(draw(requests(method.input, fuzzer.pool)).SerializeToString())
    if not valid:
        return draw(st.binary(min_size=1, max_size=16))
    at = draw(st.integers(0, len(valid) - 1))
    mutation = draw(st.sampled_from(["cut", "flip", "splice", "byte"]))
    if mutation == "cut":
        return bytes(valid[:at])
    if mutation == "flip":
        valid[at] ^= 1 << draw(st.integers(0, 7))
    elif mutation == "byte":
        valid[at] = draw(st.integers(0, 255))
    else:
        valid[at:at] = draw(st.binary(min_size=1, max_size=12))
    return bytes(valid)


def _weighted(methods: list[Method]) -> list[Method]:
    """The baton services' unary methods three times, other unary twice, server streams (which
    cost their read deadline) once."""
    out: list[Method] = []
    for method in methods:
        if method.server_streaming and not method.client_streaming:
            weight = 1
        elif method.path in _CREATES:
            weight = 12  # the deepest: planning, the engine, the store, the agents
        elif method.path.startswith("/baton.v1."):
            weight = 3
        else:
            weight = 2
        out.extend([method] * weight)
    return out


def _one_case(fuzzer: Fuzzer, weighted: list[Method], data: st.DataObject) -> None:
    method = data.draw(st.sampled_from(weighted), label="method")
    raw = odds(data.draw) < RAW_SHARE
    count = data.draw(st.integers(1, 3)) if method.client_streaming else 1
    payloads = []
    for _ in range(count):
        if raw:
            payloads.append(data.draw(_raw(method, fuzzer)))
        else:
            payloads.append(data.draw(requests(method.input, fuzzer.pool)).SerializeToString())
    fuzzer.send(method, payloads, raw=raw)


def run(fuzzer: Fuzzer, *, seed: int, cases: int | None = None, seconds: float | None = None) -> None:
    """Sends `cases` calls, or as many as fit in `seconds`, in seeded batches of examples."""
    weighted = _weighted(fuzzer.methods)
    deadline = time.monotonic() + seconds if seconds is not None else None
    batch_no = 0
    first = fuzzer.stats.requests
    sent = 0
    while (cases is None or sent < cases) and (deadline is None or time.monotonic() < deadline):
        size = BATCH if cases is None else min(BATCH, cases - sent)

        @settings(
            max_examples=size,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @hypothesis_seed(seed * 1_000_003 + batch_no)
        @given(st.data())
        def batch(data: st.DataObject) -> None:
            # No clock here: what a case draws must not depend on outside state (Hypothesis
            # replays prefixes and calls that flaky), so a time-bounded run stops between batches.
            _one_case(fuzzer, weighted, data)

        before = fuzzer.stats.requests
        batch()
        sent = fuzzer.stats.requests - first
        batch_no += 1
        if fuzzer.stats.requests == before:
            break
